"""A CLIP-family encoder from a local folder (``save_pretrained``) or the Hugging Face hub.

A hub id that is not in the local cache is only tried when the hub answers within
seconds; offline machines get the fix (a local folder, or ``handcrafted``) instead of
minutes of retries.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from annotator_core.encoders.base import EncoderInfo
from annotator_core.encoders.clip import ClipEncoder, Preprocess, embedding_of
from annotator_core.errors import EncoderUnavailable, first_line

DEFAULT_CLIP = "openai/clip-vit-base-patch32"
# A saved model's weights: one file, or shards with an index.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)

_OFFLINE_FIX = (
    "point VA_ENCODER at a local folder `clip:/path/to/clip-vit-base-patch32` "
    "(made with save_pretrained on a machine with internet) or use `handcrafted`"
)


def load_clip(
    source: str, *, device: str = "auto", cpu_precision: str | None = None, cache_dir: Path | None = None
) -> ClipEncoder:
    """``source`` is a local folder (from ``save_pretrained``) or a Hugging Face hub id."""
    name, where, local_only = _resolve(source)
    return _from_pretrained(
        where, name=name, device=device, cpu_precision=cpu_precision, cache_dir=cache_dir, local_only=local_only
    )


def describe_clip(source: str) -> EncoderInfo:
    """Name, vector size and frame size of the model at ``source``, without its weights in memory.

    Its config, tokenizer and image processor are read (so a bad folder fails here, before any work),
    and the weight files must be there; the vector size comes from the model's skeleton on torch's
    meta device (no memory, no initialisation). A model whose skeleton cannot run there, or a hub id
    whose weights are not cached yet, is loaded whole, as ``load_clip`` does.
    """
    name, where, local_only = _resolve(source)
    if not _weights_present(where, local_only=local_only):
        if Path(where).is_dir():
            raise EncoderUnavailable(
                f"encoder {name!r}: folder {source!r} has no weights ({', '.join(WEIGHT_FILES)}); {_OFFLINE_FIX}."
            )
        return EncoderInfo.of(load_clip(source, device="cpu"))  # downloads once, here, for every worker
    import torch
    from transformers import AutoModel

    with _load_errors(name):
        config, _tokenizer, processor = _configs(where, local_only=local_only)
    preprocess = Preprocess.from_processor(processor)
    try:
        with torch.device("meta"):
            model = AutoModel.from_config(config)
            _require_towers(model, name)
            probe = model.get_image_features(pixel_values=torch.zeros(1, 3, *preprocess.output_size))
    except EncoderUnavailable:
        raise
    except Exception:  # a skeleton the meta device cannot build or run: learn it the slow way
        return EncoderInfo.of(load_clip(source, device="cpu"))
    return EncoderInfo(name, int(embedding_of(probe).shape[1]), preprocess.output_size, True)


def _weights_present(where: str, *, local_only: bool) -> bool:
    folder = Path(where)
    if folder.is_dir():
        return any((folder / f).is_file() for f in WEIGHT_FILES)
    if not local_only:
        return False
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(where, f), str) for f in WEIGHT_FILES)


def _resolve(source: str) -> tuple[str, str, bool]:
    """(encoder name, where transformers loads it from, whether only local files may be used)."""
    name = f"clip:{source}"
    local = Path(source).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise EncoderUnavailable(
                f"encoder {name!r}: folder {source!r} has no config.json, so it is not a saved model; {_OFFLINE_FIX}."
            )
        return name, str(local), True
    if source.startswith(("/", "./", "../", "~")) or local.exists():
        raise EncoderUnavailable(f"encoder {name!r}: {source!r} is not a folder with a saved model; {_OFFLINE_FIX}.")
    cached = _hub_cached(source)
    if not cached:
        _check_hub_reachable(name)
    return name, source, cached


def _from_pretrained(
    source: str, *, name: str, device: str, cpu_precision: str | None, cache_dir: Path | None, local_only: bool
) -> ClipEncoder:
    from transformers import AutoModel

    with _load_errors(name):
        config, tokenizer, processor = _configs(source, local_only=local_only)
        model = AutoModel.from_pretrained(source, local_files_only=local_only)
    _require_towers(model, name)
    # SigLIP was trained on texts padded to the full length; CLIP on the longest in the batch.
    siglip = "siglip" in str(getattr(config, "model_type", ""))
    max_len = getattr(getattr(config, "text_config", None), "max_position_embeddings", None)
    return ClipEncoder(
        name=name,
        model=model,
        tokenizer=tokenizer,
        preprocess=Preprocess.from_processor(processor),
        device=device,
        cpu_precision=cpu_precision,
        cache_dir=cache_dir,
        text_padding="max_length" if siglip else True,
        text_max_length=max_len,
    )


def _configs(source: str, *, local_only: bool) -> tuple[Any, Any, Any]:
    """The model's config, tokenizer and image processor (small files: no weights)."""
    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer

    config = AutoConfig.from_pretrained(source, local_files_only=local_only)
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
    with _quiet_transformers():
        processor = AutoImageProcessor.from_pretrained(source, local_files_only=local_only)
    return config, tokenizer, processor


@contextlib.contextmanager
def _load_errors(name: str) -> Iterator[None]:
    """A model's missing or unreadable files as EncoderUnavailable with the fix."""
    try:
        yield
    except (OSError, ValueError, KeyError) as exc:
        raise EncoderUnavailable(f"encoder {name!r} could not be loaded ({first_line(exc)}); {_OFFLINE_FIX}.") from None


def _require_towers(model: Any, name: str) -> None:
    if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
        raise EncoderUnavailable(
            f"encoder {name!r}: {type(model).__name__} has no image and text towers; "
            "use a CLIP-family model (CLIP, SigLIP) or `handcrafted`."
        )


def _hub_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an id that is not a valid repo id is simply not cached
        return False
    return isinstance(found, str)


def _check_hub_reachable(name: str) -> None:
    """Fail in seconds, not minutes of retries, when the hub cannot be reached."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise EncoderUnavailable(
            f"encoder {name!r} is a hub id that is not in the local cache and HF_HUB_OFFLINE is set; {_OFFLINE_FIX}."
        )
    endpoint = urlparse(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", port), timeout=3):
            pass
    except OSError as exc:
        raise EncoderUnavailable(
            f"encoder {name!r} is a hub id and {constants.ENDPOINT} cannot be reached ({exc}); {_OFFLINE_FIX}."
        ) from None


class _quiet_transformers:
    """Silence transformers' notice that torchvision is missing (the PIL processor's numbers are the same)."""

    def __enter__(self) -> None:
        self._logger = logging.getLogger("transformers")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)
