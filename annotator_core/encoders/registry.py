"""Encoder specs -> encoders: ``clip:<hub id or local folder>``, ``tiny-clip``, ``handcrafted``.

An unknown spec, or a model that cannot be loaded, raises EncoderUnavailable
with the fix; there is never a silent fallback to another encoder.
"""

from __future__ import annotations

from annotator_core.encoders.base import Encoder
from annotator_core.errors import EncoderUnavailable

SPECS = {
    "clip:<hub id or local folder>": "a CLIP-family model through transformers (CLIP, SigLIP); "
    "the production encoder, e.g. clip:openai/clip-vit-base-patch32 or clip:/models/clip-vit-base-patch32",
    "tiny-clip": "a tiny randomly initialised CLIP with fixed weights, for tests (no download)",
    "handcrafted": "colour layout, colour histograms, edge and optical-flow motion statistics; "
    "no weights, no text search",
}


def available_encoder_specs() -> dict[str, str]:
    """The spec forms ``load_encoder`` accepts, each with one line on what it is."""
    return dict(SPECS)


def spec_has_text(spec: str | None) -> bool:
    """Whether the encoder a spec names has a text tower, without loading it."""
    spec = (spec or "").strip()
    return spec == "tiny-clip" or spec.startswith("clip:")


def load_encoder(spec: str, *, device: str = "auto") -> Encoder:
    """Build the encoder named by ``spec`` on ``device`` (auto, cpu, cuda, cuda:N)."""
    spec = (spec or "").strip()
    if spec == "handcrafted":
        from annotator_core.encoders.handcrafted import HandcraftedEncoder

        return HandcraftedEncoder()
    if spec == "tiny-clip":
        from annotator_core.encoders.clip import load_tiny_clip

        return load_tiny_clip(device=device)
    if spec.startswith("clip:"):
        source = spec[len("clip:") :].strip()
        if not source:
            raise EncoderUnavailable(
                "encoder spec 'clip:' names no model; use clip:<hub id or local folder>, "
                "e.g. clip:openai/clip-vit-base-patch32."
            )
        from annotator_core.encoders.clip import load_clip

        return load_clip(source, device=device)
    raise EncoderUnavailable(
        f"unknown encoder spec {spec!r}; expected one of: {', '.join(SPECS)} (set VA_ENCODER or --encoder)."
    )
