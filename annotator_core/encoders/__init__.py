"""Encoders: ``load_encoder(spec)`` turns a spec (clip:<id or folder>, tiny-clip, handcrafted) into an Encoder.

``random-clip:<arch>`` (real-size architectures, random weights) exists for throughput benchmarks only.
"""

from annotator_core.encoders.base import Encoder, EncoderInfo, l2_normalise
from annotator_core.encoders.registry import (
    available_encoder_specs,
    describe_encoder,
    is_benchmark_only,
    load_encoder,
    spec_has_text,
    spec_uses_torch,
)

__all__ = [
    "Encoder",
    "EncoderInfo",
    "available_encoder_specs",
    "describe_encoder",
    "is_benchmark_only",
    "l2_normalise",
    "load_encoder",
    "spec_has_text",
    "spec_uses_torch",
]
