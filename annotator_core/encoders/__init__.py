"""Encoders: ``load_encoder(spec)`` turns a spec (clip:<id or folder>, tiny-clip, handcrafted) into an Encoder."""

from annotator_core.encoders.base import Encoder, l2_normalise

__all__ = ["Encoder", "l2_normalise"]
