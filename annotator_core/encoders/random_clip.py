"""Real-size CLIP architectures with random weights, for measuring throughput only.

A model of the real architecture costs exactly what the trained one does (the same
FLOPs, memory and kernels), so ingest speed can be measured where no weights can be
downloaded. Its vectors mean nothing: the spec is ``random-clip:<architecture>``, that
name is what the ``encoder`` column of every row it writes carries, ``va demo`` never
offers it, and ``va ingest`` refuses it without ``--allow-random-weights-benchmark``.

The configs are transformers' own ``CLIPConfig`` values (its defaults are ViT-B/32) and
the model goes through :class:`ClipEncoder` like ``clip:`` does: the same preprocessing
(OpenAI CLIP's resize, crop and mean/std), batching, device and dtype.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from annotator_core.encoders.base import EncoderInfo
from annotator_core.encoders.clip import ClipEncoder, Preprocess
from annotator_core.encoders.tiny_clip import tiny_tokenizer
from annotator_core.errors import EncoderUnavailable

RANDOM_CLIP_SEED = 0
PREFIX = "random-clip:"
TEXT_LENGTH = 77  # CLIP's context length

# Overrides of transformers' CLIPConfig defaults (which are ViT-B/32's), per architecture.
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "vit-b-32": {"text_config": {}, "vision_config": {}, "projection_dim": 512},
    "vit-l-14": {
        "text_config": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12},
        "vision_config": {
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "patch_size": 14,
        },
        "projection_dim": 768,
    },
}

# OpenAI CLIP's image processor: shortest edge to 224, centre crop 224, these mean and std.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_SIZE = 224


def _known(architecture: str) -> dict[str, Any]:
    if architecture not in ARCHITECTURES:
        raise EncoderUnavailable(
            f"encoder spec '{PREFIX}{architecture}' names no known architecture; "
            f"expected one of: {', '.join(PREFIX + a for a in ARCHITECTURES)}."
        )
    return ARCHITECTURES[architecture]


def describe_random_clip(architecture: str) -> EncoderInfo:
    """Name, vector size and frame size of ``architecture``, without building its model (seconds of a core)."""
    overrides = _known(architecture)
    return EncoderInfo(f"{PREFIX}{architecture}", int(overrides["projection_dim"]), (IMAGE_SIZE, IMAGE_SIZE), True)


def random_clip_config(architecture: str) -> Any:
    from transformers import CLIPConfig

    overrides = _known(architecture)
    tokenizer_ids = tiny_tokenizer(TEXT_LENGTH)
    text = {
        "max_position_embeddings": TEXT_LENGTH,
        "pad_token_id": tokenizer_ids.pad_token_id,
        "bos_token_id": tokenizer_ids.bos_token_id,
        "eos_token_id": tokenizer_ids.eos_token_id,
        **overrides["text_config"],
    }
    vision = {"image_size": IMAGE_SIZE, **overrides["vision_config"]}
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=overrides["projection_dim"])


def load_random_clip(
    architecture: str, *, device: str = "auto", cpu_precision: str | None = None, cache_dir: Path | None = None
) -> ClipEncoder:
    """The ``architecture`` (vit-b-32, vit-l-14) with seeded random weights, through the ``clip:`` code path."""
    import torch
    from transformers import CLIPModel

    config = random_clip_config(architecture)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_CLIP_SEED)
        model = CLIPModel(config)
    preprocess = Preprocess(resize=IMAGE_SIZE, crop=(IMAGE_SIZE, IMAGE_SIZE), mean=CLIP_MEAN, std=CLIP_STD)
    return ClipEncoder(
        name=f"{PREFIX}{architecture}",
        model=model,
        # Byte-level ids (< 259) inside CLIP's 49,408-token embedding: the text tower costs what the real one does.
        tokenizer=tiny_tokenizer(TEXT_LENGTH),
        preprocess=preprocess,
        device=device,
        cpu_precision=cpu_precision,
        cache_dir=cache_dir,
        text_max_length=TEXT_LENGTH,
    )
