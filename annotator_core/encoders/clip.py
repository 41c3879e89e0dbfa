"""CLIP-family encoders through Hugging Face transformers, and the tiny test CLIP built in code.

``ClipEncoder`` wraps any model whose class has ``get_image_features`` and
``get_text_features`` (CLIP, SigLIP, ...). Frames are preprocessed in torch
from the model's own image-processor settings (resize, centre crop, mean/std),
so a whole batch is resized at once. Each frame is embedded, the frame vectors
of a shot are L2-normalised and averaged, and the mean is L2-normalised again.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from annotator_core.encoders.base import Encoder, l2_normalise
from annotator_core.errors import EncoderUnavailable

DEFAULT_CLIP = "openai/clip-vit-base-patch32"
TINY_CLIP_SEED = 0
TINY_IMAGE_SIZE = 32
TINY_TEXT_LENGTH = 64
# Frames per forward pass: large enough to keep a GPU busy, small enough for CPU memory.
FRAME_BATCH = 64

_OFFLINE_FIX = (
    "point VA_ENCODER at a local folder `clip:/path/to/clip-vit-base-patch32` "
    "(made with save_pretrained on a machine with internet) or use `handcrafted`"
)


@dataclass(frozen=True)
class Preprocess:
    """What the model's image processor does, as numbers: resize, optional centre crop, normalise."""

    resize: tuple[int, int] | int  # (height, width), or the length of the shortest edge
    crop: tuple[int, int] | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_processor(cls, processor: Any) -> Preprocess:
        size = _size_dict(getattr(processor, "size", None))
        crop_size = _size_dict(getattr(processor, "crop_size", None))
        resize: tuple[int, int] | int
        if size.get("shortest_edge"):
            resize = int(size["shortest_edge"])
        elif size.get("height") and size.get("width"):
            resize = (int(size["height"]), int(size["width"]))
        else:
            raise EncoderUnavailable(f"image processor {type(processor).__name__} has no usable size ({size})")
        crop = None
        if getattr(processor, "do_center_crop", False) and crop_size.get("height"):
            crop = (int(crop_size["height"]), int(crop_size["width"]))
        mean = tuple(float(v) for v in (getattr(processor, "image_mean", None) or (0.5, 0.5, 0.5)))
        std = tuple(float(v) for v in (getattr(processor, "image_std", None) or (0.5, 0.5, 0.5)))
        return cls(resize=resize, crop=crop, mean=mean, std=std)  # type: ignore[arg-type]

    @property
    def output_size(self) -> tuple[int, int]:
        if self.crop is not None:
            return self.crop
        if isinstance(self.resize, int):
            return (self.resize, self.resize)
        return self.resize


def _size_dict(size: Any) -> dict[str, Any]:
    if size is None:
        return {}
    if isinstance(size, int):
        return {"height": size, "width": size}
    if isinstance(size, dict):
        return dict(size)
    return {k: getattr(size, k) for k in ("height", "width", "shortest_edge") if hasattr(size, k)}


class ClipEncoder(Encoder):
    """A vision-language model: frames and texts into one L2-normalised space."""

    has_text = True

    def __init__(
        self,
        *,
        name: str,
        model: Any,
        tokenizer: Any,
        preprocess: Preprocess,
        device: str = "auto",
        text_padding: str | bool = True,
        text_max_length: int | None = None,
    ) -> None:
        import torch

        self.name = name
        self.device = resolve_device(device)
        self.dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        self.model = model.to(self.device, dtype=self.dtype).eval()
        self.tokenizer = tokenizer
        self.preprocess = preprocess
        self.frame_size = preprocess.output_size
        self.text_padding = text_padding
        self.text_max_length = text_max_length
        self._mean = torch.tensor(preprocess.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(preprocess.std, device=self.device).view(1, 3, 1, 1)
        self.dim = int(self._image_features(np.zeros((1, *self.frame_size, 3), np.uint8)).shape[1])

    def embed_shots(self, shots: Sequence[np.ndarray]) -> np.ndarray:
        if len(shots) == 0:
            return np.zeros((0, self.dim), np.float32)
        counts = []
        for i, frames in enumerate(shots):
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
                raise ValueError(f"shot {i}: expected uint8 frames [k, H, W, 3] with k >= 1, got {frames.shape}")
            counts.append(frames.shape[0])
        per_frame = []
        batch: list[np.ndarray] = []
        for frames in shots:
            for frame in frames:
                batch.append(frame)
                if len(batch) == FRAME_BATCH:
                    per_frame.append(self._image_features_list(batch))
                    batch = []
        if batch:
            per_frame.append(self._image_features_list(batch))
        vectors = l2_normalise(np.concatenate(per_frame))
        bounds = np.cumsum([0, *counts])
        pooled = np.add.reduceat(vectors, bounds[:-1], axis=0) / np.asarray(counts, np.float32)[:, None]
        return l2_normalise(pooled)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        if len(texts) == 0:
            return np.zeros((0, self.dim), np.float32)
        tokens = self.tokenizer(
            list(texts),
            padding=self.text_padding,
            truncation=True,
            max_length=self.text_max_length,
            return_tensors="pt",
        )
        inputs = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
        with torch.inference_mode():
            out = self.model.get_text_features(**inputs)
        return l2_normalise(_features(out).float().cpu().numpy())

    def _image_features_list(self, frames: list[np.ndarray]) -> np.ndarray:
        same = all(f.shape == frames[0].shape for f in frames)
        if same:
            return self._image_features(np.stack(frames))
        return np.concatenate([self._image_features(f[None]) for f in frames])

    def _image_features(self, frames: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            pixels = self._pixels(frames)
            out = self.model.get_image_features(pixel_values=pixels)
        return _features(out).float().cpu().numpy()

    def _pixels(self, frames: np.ndarray) -> Any:
        """uint8 [n, H, W, 3] -> normalised [n, 3, h, w] on the device, as the model's processor would."""
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        h, w = x.shape[-2:]
        resize = self.preprocess.resize
        if isinstance(resize, int):
            scale = resize / min(h, w)
            target = (max(resize, round(h * scale)), max(resize, round(w * scale)))
        else:
            target = resize
        if (h, w) != target:
            x = F.interpolate(x, size=target, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        if self.preprocess.crop is not None:
            ch, cw = self.preprocess.crop
            top, left = max(0, (x.shape[-2] - ch) // 2), max(0, (x.shape[-1] - cw) // 2)
            x = x[..., top : top + ch, left : left + cw]
        x = (x - self._mean) / self._std
        return x.to(self.dtype)


def _features(out: Any) -> Any:
    """transformers 5 returns an output object (embedding in ``pooler_output``); older versions a tensor."""
    if hasattr(out, "pooler_output") and out.pooler_output is not None:
        return out.pooler_output
    if hasattr(out, "image_embeds"):
        return out.image_embeds
    return out


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EncoderUnavailable(f"device {device!r} was asked for but torch sees no CUDA GPU; use auto or cpu.")
    if device != "cpu" and not device.startswith("cuda"):
        raise EncoderUnavailable(f"device {device!r} is not one of auto, cpu, cuda, cuda:N.")
    return device


# -- loading -------------------------------------------------------------------


def load_clip(source: str, *, device: str = "auto") -> ClipEncoder:
    """``source`` is a local folder (from ``save_pretrained``) or a Hugging Face hub id."""
    name = f"clip:{source}"
    local = Path(source).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise EncoderUnavailable(
                f"encoder {name!r}: folder {source!r} has no config.json, so it is not a saved model; {_OFFLINE_FIX}."
            )
        return _from_pretrained(str(local), name=name, device=device, local_only=True)
    if source.startswith(("/", "./", "../", "~")) or local.exists():
        raise EncoderUnavailable(f"encoder {name!r}: {source!r} is not a folder with a saved model; {_OFFLINE_FIX}.")
    cached = _hub_cached(source)
    if not cached:
        _check_hub_reachable(name)
    return _from_pretrained(source, name=name, device=device, local_only=cached)


def _from_pretrained(source: str, *, name: str, device: str, local_only: bool) -> ClipEncoder:
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local_only)
        model = AutoModel.from_pretrained(source, local_files_only=local_only)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        with _quiet_transformers():
            processor = AutoImageProcessor.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError, KeyError) as exc:
        raise EncoderUnavailable(
            f"encoder {name!r} could not be loaded ({_first_line(exc)}); {_OFFLINE_FIX}."
        ) from None
    if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
        raise EncoderUnavailable(
            f"encoder {name!r}: {type(model).__name__} has no image and text towers; "
            "use a CLIP-family model (CLIP, SigLIP) or `handcrafted`."
        )
    # SigLIP was trained on texts padded to the full length; CLIP on the longest in the batch.
    siglip = "siglip" in str(getattr(config, "model_type", ""))
    max_len = getattr(getattr(config, "text_config", None), "max_position_embeddings", None)
    return ClipEncoder(
        name=name,
        model=model,
        tokenizer=tokenizer,
        preprocess=Preprocess.from_processor(processor),
        device=device,
        text_padding="max_length" if siglip else True,
        text_max_length=max_len,
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class _quiet_transformers:
    """Silence transformers' notice that torchvision is missing (the PIL processor's numbers are the same)."""

    def __enter__(self) -> None:
        self._logger = logging.getLogger("transformers")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)


# -- the tiny CLIP for tests -----------------------------------------------------


def tiny_tokenizer(max_length: int = TINY_TEXT_LENGTH) -> Any:
    """A byte-level tokenizer built in code: 256 byte symbols, then <pad>, <bos>, <eos>; no hub."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    # Specials last, so <eos> has the highest id: CLIP pools the text at the first <eos>, and
    # an eos id of 2 would switch transformers to its legacy "argmax of the ids" pooling.
    vocab = {symbol: i for i, symbol in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for special in ("<pad>", "<bos>", "<eos>"):
        vocab[special] = len(vocab)
    core = Tokenizer(BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        model_max_length=max_length,
    )


def load_tiny_clip(*, device: str = "auto") -> ClipEncoder:
    """A randomly initialised 32-d CLIP with fixed weights (torch seed), for tests: the real code path."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    tokenizer = tiny_tokenizer()
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": TINY_TEXT_LENGTH,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": TINY_IMAGE_SIZE,
            "patch_size": 8,
        },
        projection_dim=32,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_CLIP_SEED)
        model = CLIPModel(config)
    processor = CLIPImageProcessorPil(
        size={"shortest_edge": TINY_IMAGE_SIZE}, crop_size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}
    )
    return ClipEncoder(
        name="tiny-clip",
        model=model,
        tokenizer=tokenizer,
        preprocess=Preprocess.from_processor(processor),
        device=device,
        text_max_length=TINY_TEXT_LENGTH,
    )
