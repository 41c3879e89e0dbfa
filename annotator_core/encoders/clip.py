"""The CLIP-family encoder through Hugging Face transformers.

Loading one from a folder or the hub is :mod:`.hub`; the tiny test CLIP is :mod:`.tiny_clip`.

``ClipEncoder`` wraps any model whose class has ``get_image_features`` and
``get_text_features`` (CLIP, SigLIP, ...). Frames are preprocessed in torch
from the model's own image-processor settings (resize, centre crop, mean/std),
so a whole batch is resized at once. Each frame is embedded, the frame vectors
of a shot are L2-normalised and averaged, and the mean is L2-normalised again.

On CPU, ``VA_CPU_PRECISION=auto`` (the default) takes the fastest path that keeps image vectors at
cosine >= 0.99 to float32's, plain and centred on the mean, that this CPU's flags allow
(:func:`auto_cpu_precision`):

- ``int8`` where the CPU has VNNI (``avx512_vnni``, ``avx_vnni``, ``amx_int8``): the vision tower in
  ONNX Runtime with int8 weights (:mod:`.onnx_vision`). On an AMD EPYC with AVX512-VNNI and AVX512-BF16
  (ViT-B/32, random weights, real frames, batch 32, 2 threads, side by side): 3.2-3.9x float32 alone,
  bfloat16 autocast 1.05-1.8x; cosine to float32 min 0.9999, centred min 0.993 (bfloat16 0.9991).
- else ``bfloat16`` autocast where the CPU computes bfloat16 natively (``avx512_bf16``, ``amx_bf16``);
- else ``float32``: on an AVX2-only CPU bfloat16 is emulated (0.14-0.5x float32) and int8 (uint8
  weights, no VNNI) gave 1.2-1.3x alone and 1.08x inside the pipeline.

The figures and commands are in benchmarks/README.md ("Real-size models and the CPU embedding path").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from annotator_core.encoders.base import Encoder, l2_normalise
from annotator_core.errors import EncoderUnavailable

# Frames per forward pass: large enough to keep a GPU busy, small enough for CPU memory.
FRAME_BATCH = 64

# How a CLIP runs on CPU (the VA_CPU_PRECISION setting): float32; bfloat16 autocast; or int8, the vision
# tower as ONNX Runtime with dynamically quantised weights (:mod:`.onnx_vision`; the text tower stays float32).
# bfloat16 and int8 keep image vectors at cosine >= 0.99 to float32's. "auto" is the fastest of them this CPU's
# flags allow (:func:`auto_cpu_precision`): int8 with VNNI, bfloat16 with native bfloat16 (AVX512-BF16, AMX;
# emulated it is several times slower than float32), else float32. GPUs use float16.
CPU_PRECISIONS = ("auto", "float32", "bfloat16", "int8")
DEFAULT_CPU_PRECISION = "auto"


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
        cpu_precision: str | None = None,
        cache_dir: Path | None = None,
        text_padding: str | bool = True,
        text_max_length: int | None = None,
    ) -> None:
        import torch

        self.name = name
        self.device = resolve_device(device)
        self.dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        self.cpu_precision = resolve_cpu_precision(cpu_precision or DEFAULT_CPU_PRECISION)
        # Weights stay float32 on CPU; bfloat16 autocast runs the matrix products in bfloat16.
        self._autocast = self.device == "cpu" and self.cpu_precision == "bfloat16"
        self.model = model.to(self.device, dtype=self.dtype).eval()
        self.tokenizer = tokenizer
        self.preprocess = preprocess
        self.frame_size = preprocess.output_size
        self.text_padding = text_padding
        self.text_max_length = text_max_length
        self._mean = torch.tensor(preprocess.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(preprocess.std, device=self.device).view(1, 3, 1, 1)
        # int8: the vision tower through ONNX Runtime, prepared once per process (and per cache_dir on disk), on the
        # first frames embedded: an encoder that only embeds texts (search, the ingest driver) never prepares it.
        self._int8 = self.device == "cpu" and self.cpu_precision == "int8"
        self._onnx: Any = None
        self._cache_dir = cache_dir
        with torch.inference_mode():
            probe = self.model.get_image_features(
                pixel_values=self._pixels(np.zeros((1, *self.frame_size, 3), np.uint8))
            )
        self.dim = int(embedding_of(probe).shape[1])

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
        with torch.inference_mode(), self._precision():
            out = self.model.get_text_features(**inputs)
        return l2_normalise(embedding_of(out).float().cpu().numpy())

    def _image_features_list(self, frames: list[np.ndarray]) -> np.ndarray:
        same = all(f.shape == frames[0].shape for f in frames)
        if same:
            return self._image_features(np.stack(frames))
        return np.concatenate([self._image_features(f[None]) for f in frames])

    def _image_features(self, frames: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            pixels = self._pixels(frames)
            if self._int8:
                return self._int8_vision()(pixels.numpy())
            with self._precision():
                out = self.model.get_image_features(pixel_values=pixels)
        return embedding_of(out).float().cpu().numpy()

    def _int8_vision(self) -> Any:
        import torch

        if self._onnx is None:
            from annotator_core.encoders.onnx_vision import int8_vision

            self._onnx = int8_vision(
                self.model,
                name=self.name,
                frame_size=self.frame_size,
                threads=torch.get_num_threads(),
                cache_dir=self._cache_dir,
            )
        return self._onnx

    def _precision(self) -> Any:
        import contextlib

        import torch

        if self._autocast:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

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


def embedding_of(out: Any) -> Any:
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


def resolve_cpu_precision(precision: str) -> str:
    """``float32``, ``bfloat16`` or ``int8``; ``auto`` is decided from this CPU's flags (:func:`auto_cpu_precision`)."""
    if precision not in CPU_PRECISIONS:
        raise EncoderUnavailable(
            f"CPU precision {precision!r} is not one of {', '.join(CPU_PRECISIONS)}; set VA_CPU_PRECISION to one."
        )
    if precision != "auto":
        return precision
    return auto_cpu_precision(cpu_flags())


# CPU flags (Linux /proc/cpuinfo names) behind ``auto``.
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})  # int8 dot products in one instruction
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # native bfloat16 matrix products


def auto_cpu_precision(flags: frozenset[str] | set[str]) -> str:
    """What ``auto`` is on a CPU with these flags: int8 with VNNI, else bfloat16 with native bfloat16, else float32.

    Measured on ViT-B/32 (random weights, real frames, batch 32, 2 threads; benchmarks/README.md): on an AMD EPYC
    with AVX512-VNNI and AVX512-BF16, int8 (ONNX Runtime, int8 weights) 3.2-3.9x float32, bfloat16 1.05-1.8x, both at
    cosine >= 0.99 to float32, plain and centred on the mean; on an AVX2 CPU without either, int8 (uint8 weights)
    1.2-1.3x and bfloat16 (emulated) 0.14-0.5x, so float32 stays there.
    """
    if VNNI_FLAGS & flags:
        return "int8"
    if BF16_FLAGS & flags:
        return "bfloat16"
    return "float32"


def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags as Linux names them (empty where /proc/cpuinfo cannot be read)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return frozenset(next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), []))
    except OSError:
        return frozenset()


def cpu_has_vnni() -> bool:
    """Whether this CPU has int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX-INT8; Linux flags)."""
    return bool(VNNI_FLAGS & cpu_flags())
