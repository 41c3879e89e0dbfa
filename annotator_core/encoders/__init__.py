"""Encoders: ``load_encoder(spec)`` turns a spec (clip:<id or folder>, tiny-clip, handcrafted) into an Encoder."""

from annotator_core.encoders.base import Encoder, l2_normalise
from annotator_core.encoders.registry import available_encoder_specs, load_encoder, spec_has_text

__all__ = ["Encoder", "available_encoder_specs", "l2_normalise", "load_encoder", "spec_has_text"]
