"""Encoder specs -> encoders: ``clip:<hub id or local folder>``, ``tiny-clip``, ``handcrafted``, ``random-clip:<arch>``.

Every kind of encoder is one :class:`EncoderKind` entry in :data:`ENCODERS`; adding an
encoder is adding an entry. An unknown spec, or a model that cannot be loaded, raises
EncoderUnavailable with the fix; there is never a silent fallback to another encoder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from annotator_core.encoders.base import Encoder, EncoderInfo
from annotator_core.errors import EncoderUnavailable


@dataclass(frozen=True)
class EncoderKind:
    """One kind of encoder: the spec form it answers to, one line of help, and how to load it."""

    form: str  # as shown to users: an exact name, or "prefix:<argument>"
    help: str
    has_text: bool
    # (argument after the prefix, device, cpu precision, cache folder for prepared models) -> encoder
    load: Callable[[str, str, str | None, Path | None], Encoder]
    #: Random weights for measuring speed only: refused by ``va ingest`` without its benchmark flag.
    benchmark_only: bool = False
    #: Runs on torch (so a process that embeds with it must import torch and set its threads).
    uses_torch: bool = True
    #: (argument) -> what a job's driver needs, without building the model; None: load it and look.
    describe: Callable[[str], EncoderInfo] | None = None

    @property
    def prefix(self) -> str | None:
        """``"clip:"`` for a form ``clip:<...>``; None for an exact name."""
        return self.form.split("<", 1)[0] if "<" in self.form else None

    def argument(self, spec: str) -> str | None:
        """What follows the prefix when ``spec`` is of this kind (``""`` for an exact name), else None."""
        if self.prefix is None:
            return "" if spec == self.form else None
        return spec[len(self.prefix) :].strip() if spec.startswith(self.prefix) else None


def _handcrafted(argument: str, device: str, cpu_precision: str | None, cache_dir: Path | None) -> Encoder:
    from annotator_core.encoders.handcrafted import HandcraftedEncoder

    return HandcraftedEncoder()


def _tiny_clip(argument: str, device: str, cpu_precision: str | None, cache_dir: Path | None) -> Encoder:
    from annotator_core.encoders.tiny_clip import load_tiny_clip

    return load_tiny_clip(device=device, cpu_precision=cpu_precision, cache_dir=cache_dir)


def _random_clip(argument: str, device: str, cpu_precision: str | None, cache_dir: Path | None) -> Encoder:
    from annotator_core.encoders.random_clip import load_random_clip

    return load_random_clip(argument, device=device, cpu_precision=cpu_precision, cache_dir=cache_dir)


def _describe_random_clip(argument: str) -> EncoderInfo:
    from annotator_core.encoders.random_clip import describe_random_clip

    return describe_random_clip(argument)


def _describe_clip(argument: str) -> EncoderInfo:
    _named(argument)
    from annotator_core.encoders.hub import describe_clip

    return describe_clip(argument)


def _named(argument: str) -> None:
    if not argument:
        raise EncoderUnavailable(
            "encoder spec 'clip:' names no model; use clip:<hub id or local folder>, "
            "e.g. clip:openai/clip-vit-base-patch32."
        )


def _clip(argument: str, device: str, cpu_precision: str | None, cache_dir: Path | None) -> Encoder:
    _named(argument)
    from annotator_core.encoders.hub import load_clip

    return load_clip(argument, device=device, cpu_precision=cpu_precision, cache_dir=cache_dir)


ENCODERS = (
    EncoderKind(
        "clip:<hub id or local folder>",
        "a CLIP-family model through transformers (CLIP, SigLIP); the production encoder, "
        "e.g. clip:openai/clip-vit-base-patch32 or clip:/models/clip-vit-base-patch32",
        has_text=True,
        load=_clip,
        describe=_describe_clip,
    ),
    EncoderKind(
        "tiny-clip",
        "a tiny randomly initialised CLIP with fixed weights, for tests (no download)",
        has_text=True,
        load=_tiny_clip,
    ),
    EncoderKind(
        "handcrafted",
        "colour layout, colour histograms, edge and optical-flow motion statistics; no weights, no text search",
        has_text=False,
        load=_handcrafted,
        uses_torch=False,
    ),
    EncoderKind(
        "random-clip:<vit-b-32|vit-l-14>",
        "a real-size CLIP architecture with RANDOM weights, for throughput benchmarks only; its vectors mean nothing",
        has_text=True,
        load=_random_clip,
        benchmark_only=True,
        describe=_describe_random_clip,
    ),
)


def _kind_of(spec: str) -> tuple[EncoderKind, str] | None:
    for kind in ENCODERS:
        argument = kind.argument(spec)
        if argument is not None:
            return kind, argument
    return None


def available_encoder_specs() -> dict[str, str]:
    """The spec forms ``load_encoder`` accepts, each with one line on what it is."""
    return {kind.form: kind.help for kind in ENCODERS}


def is_benchmark_only(spec: str | None) -> bool:
    """Whether ``spec`` names a random-weights model that only benchmarks may use."""
    found = _kind_of((spec or "").strip())
    return found is not None and found[0].benchmark_only


def spec_has_text(spec: str | None) -> bool:
    """Whether the encoder a spec names has a text tower, without loading it."""
    found = _kind_of((spec or "").strip())
    return found is not None and found[0].has_text


def spec_uses_torch(spec: str | None) -> bool:
    """Whether the encoder a spec names runs on torch, without loading it (True for an unknown spec)."""
    found = _kind_of((spec or "").strip())
    return found is None or found[0].uses_torch


def describe_encoder(spec: str) -> EncoderInfo:
    """Name, vector size and frame size of the encoder ``spec`` names, checked as loading it would check it.

    For ``clip:`` and ``random-clip:`` without building the model: a job's driver needs only these, and
    building a ViT there costs seconds of a core (ViT-L/14: tens) and its memory, before any work starts.
    """
    kind, argument = _found(spec)
    if kind.describe is not None:
        return kind.describe(argument)
    return EncoderInfo.of(kind.load(argument, "cpu", None, None))


def _found(spec: str) -> tuple[EncoderKind, str]:
    spec = (spec or "").strip()
    found = _kind_of(spec)
    if found is None:
        raise EncoderUnavailable(
            f"unknown encoder spec {spec!r}; expected one of: {', '.join(k.form for k in ENCODERS)} "
            "(set VA_ENCODER or --encoder)."
        )
    return found


def load_encoder(
    spec: str, *, device: str = "auto", cpu_precision: str | None = None, cache_dir: Path | None = None
) -> Encoder:
    """Build the encoder named by ``spec`` on ``device`` (auto, cpu, cuda, cuda:N).

    ``cpu_precision`` (float32, bfloat16 or int8; None is the default of :mod:`.clip`) applies to CLIP models on
    CPU; ``cache_dir`` is where int8 keeps its prepared ONNX vision tower between processes (None: per process).
    """
    kind, argument = _found(spec)
    return kind.load(argument, device, cpu_precision, cache_dir)
