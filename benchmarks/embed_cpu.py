"""CPU embedding paths side by side on a real-size CLIP vision tower (random weights): images/s and cosine to float32.

Every path embeds the same 224x224 frames through the encoder the pipeline uses (``ClipEncoder``:
preprocessing, batching, pooling) built from ``random-clip:<arch>`` (transformers' CLIPConfig values,
random weights: the cost of the real model, vectors that mean nothing):

- ``float32``: torch in float32 (``VA_CPU_PRECISION=float32``);
- ``bfloat16``: torch with bfloat16 autocast (``VA_CPU_PRECISION=bfloat16``);
- ``onnx`` (with ``--onnx``): the vision tower exported to ONNX and run by ONNX Runtime (float32), same
  preprocessing.

each at every ``--threads`` and ``--batches`` value, in interleaved rounds (best kept: other work on
the machine only slows a run). Cosine is per image, to the float32 vectors of the same frames, plain
and centred on float32's mean vector (random weights put all images near one direction).

    .venv/bin/python benchmarks/embed_cpu.py --arch vit-b-32 --batches 16 32 --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from annotator_core.encoders import l2_normalise, load_encoder
from annotator_core.encoders.clip import ClipEncoder, resolve_cpu_precision


def frames_for(n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` 224x224 RGB frames with structure (smooth gradients, blobs) and some noise, uint8."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:224, 0:224].astype(np.float32) / 224
    out = np.empty((n, 224, 224, 3), np.uint8)
    for i in range(n):
        a, b, c = rng.uniform(0, 6, 3)
        base = np.stack([np.sin(a * xs + b * ys), np.cos(b * xs - c * ys), np.sin(c * (xs + ys))], axis=-1)
        out[i] = np.clip(127 + 100 * base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    return out


def torch_path(encoder: ClipEncoder, precision: str) -> ClipEncoder:
    """The same model through ``ClipEncoder`` at another CPU precision (the weights are shared, not copied)."""
    return ClipEncoder(
        name=encoder.name,
        model=encoder.model,
        tokenizer=encoder.tokenizer,
        preprocess=encoder.preprocess,
        device="cpu",
        cpu_precision=precision,
    )


class OnnxVision:
    """The vision tower (pixels -> image embedding) as ONNX, behind the encoder's own preprocessing."""

    def __init__(self, encoder: ClipEncoder, folder: Path) -> None:
        import torch

        class Vision(torch.nn.Module):
            def __init__(self, model: Any) -> None:
                super().__init__()
                self.model = model

            def forward(self, pixel_values: Any) -> Any:
                out = self.model.get_image_features(pixel_values=pixel_values)
                return out.pooler_output if hasattr(out, "pooler_output") else out

        self.encoder = encoder
        self.path = folder / "vision.onnx"
        t0 = time.perf_counter()
        dummy = torch.zeros(2, 3, *encoder.frame_size)
        torch.onnx.export(
            Vision(encoder.model).eval(),
            (dummy,),
            str(self.path),
            input_names=["pixel_values"],
            output_names=["image_embeds"],
            dynamic_axes={"pixel_values": {0: "n"}, "image_embeds": {0: "n"}},
            opset_version=17,
            dynamo=False,
        )
        self.export_s = time.perf_counter() - t0
        self.threads = 0
        self.session: Any = None

    def use_threads(self, threads: int) -> None:
        import onnxruntime as ort

        if threads == self.threads:
            return
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.threads = threads

    def embed(self, frames: np.ndarray) -> np.ndarray:
        """Frames already at the model's 224x224 (as the pipeline hands them): scale, normalise, run."""
        mean = np.asarray(self.encoder.preprocess.mean, np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(self.encoder.preprocess.std, np.float32).reshape(1, 3, 1, 1)
        pixels = (frames.transpose(0, 3, 1, 2).astype(np.float32) / 255.0 - mean) / std
        return l2_normalise(self.session.run(None, {"pixel_values": pixels})[0])


def _per_frame(encoder: ClipEncoder) -> Any:
    return lambda frames: encoder.embed_shots([frame[None] for frame in frames])


def images_per_s(embed: Any, frames: np.ndarray, *, repeats: int) -> tuple[float, np.ndarray]:
    vectors = embed(frames)  # warm-up (first call allocates, oneDNN picks kernels)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        vectors = embed(frames)
        best = min(best, time.perf_counter() - t0)
    return len(frames) / best, vectors


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="vit-b-32", help="random-clip architecture: vit-b-32 or vit-l-14")
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 32, 64], help="frames per forward pass (<= 64)")
    parser.add_argument("--threads", type=int, nargs="+", default=[os.cpu_count() or 1], help="torch/ORT threads")
    parser.add_argument("--paths", nargs="+", default=["float32", "bfloat16"], help="float32, bfloat16")
    parser.add_argument("--onnx", action="store_true", help="also export the vision tower and run ONNX Runtime")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per setting (best kept)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    t0 = time.perf_counter()
    base = load_encoder(f"random-clip:{args.arch}", device="cpu", cpu_precision="float32")
    assert isinstance(base, ClipEncoder)
    build_s = time.perf_counter() - t0
    # One single-frame shot per frame: one forward pass of the whole batch (batches up to 64 frames).
    paths: dict[str, Any] = {p: _per_frame(torch_path(base, p)) for p in args.paths}
    onnx: OnnxVision | None = None
    with tempfile.TemporaryDirectory(prefix="va-onnx-") as tmp:
        if args.onnx:
            onnx = OnnxVision(base, Path(tmp))
            paths["onnx"] = onnx.embed
        results: list[dict[str, Any]] = []
        if not args.json:
            print(
                f"{'path':10}{'threads':>8}{'batch':>7}{'images/s':>12}{'cos min':>12}{'centred min':>14}", flush=True
            )
        for threads in args.threads:
            torch.set_num_threads(threads)
            if onnx is not None:
                onnx.use_threads(threads)
            for batch in args.batches:
                frames = frames_for(batch)
                reference = None
                for name, embed in paths.items():
                    rate, vectors = images_per_s(embed, frames, repeats=args.repeats)
                    vectors = l2_normalise(vectors)
                    if reference is None and name == "float32":
                        reference = vectors
                    cosine = None
                    if reference is not None:
                        # Random weights put every image near one direction; centring on float32's mean
                        # compares what tells images apart, which a plain cosine near 1 would hide.
                        centre = reference.mean(axis=0)
                        cosine = (vectors * reference).sum(axis=1)
                        centred = (l2_normalise(vectors - centre) * l2_normalise(reference - centre)).sum(axis=1)
                    row = {"path": name, "threads": threads, "batch": batch, "images_per_s": round(rate, 2)}
                    if cosine is not None:
                        row["cosine_min"] = round(float(cosine.min()), 5)
                        row["cosine_mean"] = round(float(cosine.mean()), 5)
                        row["centred_cosine_min"] = round(float(centred.min()), 5)
                    results.append(row)
                    if not args.json:
                        cos = "-"
                        if cosine is not None:
                            cos = f"{row['cosine_min']:>12.5f}{row['centred_cosine_min']:>14.5f}"
                        print(f"{name:10}{threads:>8}{batch:>7}{rate:>12.2f}{cos:>12}", flush=True)
    load = os.getloadavg()
    summary = {
        "arch": args.arch,
        "parameters_vision_m": round(sum(p.numel() for p in base.model.vision_model.parameters()) / 1e6, 1),
        "build_s": round(build_s, 1),
        "onnx_export_s": round(onnx.export_s, 1) if onnx else None,
        "auto_resolves_to": resolve_cpu_precision("auto"),
        "load_average": [round(x, 2) for x in load],
        "results": results,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(
        f"{args.arch}: vision tower {summary['parameters_vision_m']}M parameters (random weights), built in "
        f"{build_s:.0f} s; VA_CPU_PRECISION=auto is {summary['auto_resolves_to']} on this CPU; "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
