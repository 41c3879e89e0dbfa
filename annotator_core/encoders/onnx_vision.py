"""A CLIP vision tower as ONNX Runtime with int8 weights, for ``VA_CPU_PRECISION=int8``.

The vision tower (pixels -> image embedding) is exported to ONNX and quantised dynamically by ONNX
Runtime: the weights of every MatMul of the transformer, per output channel, activations quantised
per frame at run time. The final projection (one 768x512 MatMul in ViT-B/32, ~0.01% of the
FLOPs) stays float32: quantising it alone cost most of the centred-cosine error (benchmarks/README.md).
The weight type follows the CPU: int8 (QInt8) where it has VNNI (``avx512_vnni``/``avx_vnni``:
u8 x s8 dot products in one instruction), uint8 (QUInt8) elsewhere, as ONNX Runtime advises
(AVX2 without VNNI saturates u8 x s8). The text tower stays torch float32, so text queries are unchanged.

Activations are quantised dynamically, with one scale per input; each frame is run alone, so its
vector does not depend on the frames batched with it (as with float32 and bfloat16). On ViT-B/32 one
frame a run is as fast as 32 (28.0 vs 28.9 images/s, side by side).

Export and quantisation cost seconds to tens of seconds, so each model is prepared once per process
(kept in :data:`_SESSIONS`) and, when a ``cache_dir`` is given, once per machine: the file is keyed by
the model name, a digest of its vision weights, the weight type and the transformers, torch and
onnxruntime versions, and written atomically, so concurrent ingest actors never read a half-written file.
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
# What is quantised: MatMul weights per channel (ViT-B/32, random weights, real frames, batch 32, 2 threads).
# On an AVX2 CPU without VNNI uint8 MatMul-only was fastest (1.25x float32; int8 weights 1.19x); on an AMD
# EPYC with AVX512-VNNI int8 weights were 3.2x float32 against uint8's 1.9x. Conv/Gather add nothing.
OP_TYPES = ("MatMul",)
# MatMuls left float32, by node-name fragment: the projection into the embedding space.
KEEP_FLOAT32 = ("visual_projection",)


def weight_type() -> str:
    """ONNX Runtime's weight type for this CPU: QInt8 where it has VNNI, else QUInt8."""
    from annotator_core.encoders.clip import cpu_has_vnni

    return "QInt8" if cpu_has_vnni() else "QUInt8"


_SESSIONS: dict[str, OnnxVision] = {}
_LOCK = threading.Lock()


class OnnxVision:
    """Normalised pixels [n, 3, h, w] float32 -> image embeddings [n, d] float32 through one ORT session."""

    def __init__(self, path: Path, *, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        # ORT's idle threads spin by default; in an ingest actor that steals the cores the decode tasks share with it.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = path
        self.threads = options.intra_op_num_threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        # One frame a run: dynamic quantisation takes one activation scale per input, so a batch would make each
        # frame's vector depend on the frames beside it. On ViT-B/32 (50 tokens a frame) this is as fast as batch 32.
        x = np.ascontiguousarray(pixels, np.float32)
        runs = [self.session.run(None, {"pixel_values": x[i : i + 1]})[0] for i in range(x.shape[0])]
        return np.concatenate(runs).astype(np.float32, copy=False) if runs else np.zeros((0, 0), np.float32)


def int8_vision(
    model: Any, *, name: str, frame_size: tuple[int, int], threads: int, cache_dir: Path | None
) -> OnnxVision:
    """The int8 ONNX vision tower of ``model`` (a transformers CLIP-family model), built once per process and cache."""
    key = _cache_key(model, name=name, frame_size=frame_size)
    with _LOCK:
        # Per cache folder too: a process given a (new) cache folder leaves the prepared model there for the next.
        memo = f"{key}/{threads}/{cache_dir}"
        found = _SESSIONS.get(memo)
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
            _SESSIONS[memo] = found
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
    kept = "-f32proj" if KEEP_FLOAT32 else ""
    return f"{safe}-{h}x{w}-{versions}-{weight_type().lower()}{kept}-{digest.hexdigest()[:16]}"


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
        quantise(exported, quantised, weight_type=weight_type())
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
    source: Path,
    target: Path,
    *,
    weight_type: str,
    op_types: tuple[str, ...] | None = OP_TYPES,
    keep_float32: tuple[str, ...] = KEEP_FLOAT32,
) -> None:
    """ONNX Runtime's dynamic quantisation of ``source`` into ``target`` (per-channel ``weight_type`` weights).

    Nodes whose name contains one of ``keep_float32`` are left in float32.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    excluded = [node.name for node in graph.node if any(part in node.name for part in keep_float32)]

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
            nodes_to_exclude=excluded,
        )
    finally:
        root.setLevel(level)
