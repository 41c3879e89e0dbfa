"""A CLIP vision tower as ONNX Runtime with int8 weights, for ``VA_CPU_PRECISION=int8``.

The vision tower (pixels -> image embedding) is exported to ONNX and quantised dynamically by ONNX
Runtime: the weights of every MatMul to uint8, per output channel, activations quantised per batch at
run time. On CPUs without fast bfloat16 (AVX2 only) this was the fastest path that keeps the vectors
at cosine >= 0.99 to float32 (benchmarks/embed_cpu.py); the text tower stays torch float32, so text
queries are unchanged.

Export and quantisation cost tens of seconds, so each model is prepared once per process (kept in
:data:`_SESSIONS`) and, when a ``cache_dir`` is given, once per machine: the file is keyed by the model
name, a digest of its vision weights and the transformers, torch and onnxruntime versions, and
written atomically, so concurrent ingest actors never read a half-written file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

OPSET = 17
# What is quantised: MatMul weights as uint8 per channel. Measured on the AVX2 CPU (ViT-B/32, random weights,
# real frames): uint8 MatMul-only was faster than int8 weights and than also quantising Conv/Gather, at the
# same cosine.
WEIGHT_TYPE = "QUInt8"
OP_TYPES = ("MatMul",)

_SESSIONS: dict[str, OnnxVision] = {}
_LOCK = threading.Lock()


class OnnxVision:
    """Normalised pixels [n, 3, h, w] float32 -> image embeddings [n, d] float32 through one ORT session."""

    def __init__(self, path: Path, *, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        self.path = path
        self.threads = options.intra_op_num_threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {"pixel_values": np.ascontiguousarray(pixels, np.float32)})[0]
        return np.asarray(out, np.float32)


def int8_vision(
    model: Any, *, name: str, frame_size: tuple[int, int], threads: int, cache_dir: Path | None
) -> OnnxVision:
    """The int8 ONNX vision tower of ``model`` (a transformers CLIP-family model), built at most once per process."""
    key = _cache_key(model, name=name, frame_size=frame_size)
    with _LOCK:
        found = _SESSIONS.get(f"{key}/{threads}")
        if found is None:
            if cache_dir is not None:
                try:
                    cache_dir.mkdir(parents=True, exist_ok=True)
                except OSError:
                    cache_dir = None  # a cache only saves time: a worker that cannot write it prepares its own
            if cache_dir is not None:
                found = OnnxVision(_int8_file(model, key=key, frame_size=frame_size, folder=cache_dir), threads=threads)
            else:
                # No cache: prepare in a private folder, removed once the session holds the model in memory.
                with tempfile.TemporaryDirectory(prefix="va-onnx-") as tmp:
                    path = _int8_file(model, key=key, frame_size=frame_size, folder=Path(tmp))
                    found = OnnxVision(path, threads=threads)
            _SESSIONS[f"{key}/{threads}"] = found
        return found


def _cache_key(model: Any, *, name: str, frame_size: tuple[int, int]) -> str:
    import onnxruntime
    import torch
    import transformers

    digest = hashlib.sha256()
    for tensor_name, tensor in sorted(_vision_state(model).items()):
        digest.update(tensor_name.encode())
        digest.update(tensor.detach().to("cpu", dtype=torch.float32).contiguous().numpy().tobytes())
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:80]
    versions = f"tf{transformers.__version__}-torch{torch.__version__.split('+')[0]}-ort{onnxruntime.__version__}"
    h, w = frame_size
    return f"{safe}-{h}x{w}-{versions}-{WEIGHT_TYPE.lower()}-{digest.hexdigest()[:16]}"


def _vision_state(model: Any) -> dict[str, Any]:
    state = {f"vision.{k}": v for k, v in model.vision_model.state_dict().items()}
    projection = getattr(model, "visual_projection", None)
    if projection is not None:
        state.update({f"projection.{k}": v for k, v in projection.state_dict().items()})
    return state


def _int8_file(model: Any, *, key: str, frame_size: tuple[int, int], folder: Path) -> Path:
    final = folder / f"{key}.onnx"
    if final.is_file():
        return final
    with tempfile.TemporaryDirectory(prefix=".export-", dir=folder) as tmp:
        exported = Path(tmp) / "vision.onnx"
        quantised = Path(tmp) / "vision-int8.onnx"
        export_vision(model, exported, frame_size=frame_size)
        quantise(exported, quantised)
        os.replace(quantised, final)  # atomic: a concurrent actor sees the whole file or none
    return final


def export_vision(model: Any, path: Path, *, frame_size: tuple[int, int]) -> None:
    """The float32 vision tower of ``model`` (pixels -> projected image embedding) as ONNX at ``path``."""
    import torch

    from annotator_core.encoders.clip import embedding_of

    class Vision(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values: Any) -> Any:
            return embedding_of(self.inner.get_image_features(pixel_values=pixel_values))

    dummy = torch.zeros(2, 3, *frame_size, dtype=torch.float32)
    # The tracer warns about shape checks it freezes; the frame size is fixed by the encoder, so they hold.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            Vision(model).eval(),
            (dummy,),
            str(path),
            input_names=["pixel_values"],
            output_names=["image_embeds"],
            dynamic_axes={"pixel_values": {0: "n"}, "image_embeds": {0: "n"}},
            opset_version=OPSET,
            dynamo=False,
        )


def quantise(
    source: Path, target: Path, *, weight_type: str = WEIGHT_TYPE, op_types: tuple[str, ...] | None = OP_TYPES
) -> None:
    """ONNX Runtime's dynamic quantisation of ``source`` into ``target`` (per-channel weights)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # ONNX Runtime logs a "consider pre-processing" warning on the root logger for every model; hush it.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=getattr(QuantType, weight_type),
            per_channel=True,
            op_types_to_quantize=list(op_types) if op_types else None,
        )
    finally:
        root.setLevel(level)
