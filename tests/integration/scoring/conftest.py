"""Fixtures of the scoring tests live in scoring_support.py (shared with the test modules as plain helpers)."""

from scoring_support import corpus, scoring_server

__all__ = ["corpus", "scoring_server"]
