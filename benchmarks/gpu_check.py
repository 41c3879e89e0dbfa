"""GPU check: what one GPU machine embeds alone, inside the Ray Data ingest, and how many decode CPUs it needs.

Run it on the machine (or pod) with the GPU, from the repository root; it prints in a few minutes:

1. model alone: images/s of real-size ViT-B/32 and ViT-L/14 (``random-clip:<arch>``: transformers'
   CLIPConfig values, random weights, so the cost of the real models) in float16 on the GPU, at
   batch 64-512, on pixels already on the GPU;
2. the same inside the pipeline: ``run_ingest`` (Ray Data, actor pool, one GPU per actor) with
   ViT-B/32 on a synthetic catalog made with ffmpeg (test patterns cut every 2 s);
3. decode frames/s on this machine's CPUs (decode + shot detection + frame sampling, from the run's
   per-stage times) and the sampled frames one CPU hands the GPU per second;
4. the ratio "pipeline vs model alone" (goal >= 0.7x) and, where the GPU waits for decode, how many
   decode CPUs per GPU the pipeline needs to keep it busy: the figure the cost model of
   docs/deploy.md calls cores_per_pod.

Without an NVIDIA GPU it says so and exits with status 0, having measured nothing.

    .venv/bin/python benchmarks/gpu_check.py                  # all of it (about 3-5 minutes)
    .venv/bin/python benchmarks/gpu_check.py --titles 8 --json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

GOAL_RATIO = 0.7
PATTERNS = ("testsrc", "smptebars", "rgbtestsrc", "testsrc2", "yuvtestsrc", "smptehdbars")


def gpu_or_none() -> str | None:
    """The GPU's name, or None (with torch unable to see one, there is nothing to measure)."""
    import torch

    if not torch.cuda.is_available():
        return None
    return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"


def make_catalog(folder: Path, *, titles: int, seconds: int) -> list[Path]:
    """``titles`` 1280x720 25 fps H.264 files, a different ffmpeg test pattern every 2 s (a cut each time)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t in range(titles):
        path = folder / f"synthetic{t}.mp4"
        paths.append(path)
        segments = max(1, seconds // 2)
        cmd = ["ffmpeg", "-v", "error", "-y"]
        for s in range(segments):
            pattern = PATTERNS[(t + s) % len(PATTERNS)]
            cmd += ["-f", "lavfi", "-i", f"{pattern}=size=1280x720:rate=25:duration=2"]
        chains = [
            f"[{s}:v]hue=h={(37 * (t * segments + s)) % 360},setsar=1,format=yuv420p[s{s}]" for s in range(segments)
        ]
        graph = ";".join(chains) + ";" + "".join(f"[s{s}]" for s in range(segments))
        graph += f"concat=n={segments}:v=1:a=0[v]"
        cmd += [
            "-filter_complex",
            graph,
            "-map",
            "[v]",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "50",
            str(path),
        ]
        subprocess.run(cmd, check=True)
    return paths


def model_alone(arch: str, batches: list[int], *, seconds_per_batch: float) -> dict[str, Any]:
    """images/s of the vision tower in float16 on pixels already on the GPU, per batch size."""
    import torch

    from annotator_core.encoders import load_encoder
    from annotator_core.encoders.clip import ClipEncoder

    t0 = time.perf_counter()
    encoder = load_encoder(f"random-clip:{arch}", device="cuda")
    build_s = time.perf_counter() - t0
    assert isinstance(encoder, ClipEncoder)
    model = encoder.model  # the forward pass alone: no host-to-GPU copy, no preprocessing
    rates: dict[int, float] = {}
    for batch in batches:
        try:
            pixels = torch.randn(batch, 3, 224, 224, device="cuda", dtype=torch.float16)
            with torch.inference_mode():
                model.get_image_features(pixel_values=pixels)  # warm-up: cuDNN/cuBLAS pick their kernels
                torch.cuda.synchronize()
                done, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < seconds_per_batch:
                    model.get_image_features(pixel_values=pixels)
                    done += batch
                torch.cuda.synchronize()
            rates[batch] = done / (time.perf_counter() - t0)
        except torch.cuda.OutOfMemoryError:
            rates[batch] = float("nan")
        torch.cuda.empty_cache()
    del encoder, model
    torch.cuda.empty_cache()
    return {"arch": arch, "build_s": round(build_s, 1), "images_per_s": {b: round(r, 1) for b, r in rates.items()}}


def in_pipeline(paths: list[Path], data_dir: Path, *, arch: str, gpus: int, batch_shots: int) -> dict[str, Any]:
    """The whole ingest (Ray Data, an actor per GPU) with the real-size model, and its per-stage times."""
    from annotator_core.settings import load_settings
    from pipelines.ingest import run_ingest

    settings = load_settings(
        data_dir=data_dir, device="cuda", embed_concurrency=gpus, embed_batch_size=batch_shots, n_clusters=2
    )
    t0 = time.perf_counter()
    summary = run_ingest([str(p) for p in paths], settings=settings, encoder_spec=f"random-clip:{arch}")
    wall = time.perf_counter() - t0
    if summary.videos_failed:
        raise SystemExit(f"the pipeline failed on {summary.failures}")
    stages = summary.stage_seconds
    cpu_s = sum(stages.get(k, 0.0) for k in ("decode", "detect", "sample"))
    frames_decoded = round(summary.video_seconds * 25)  # the catalog is 25 fps
    images = summary.shots * settings.frames_per_shot
    return {
        "wall_s": round(wall, 1),
        "shots": summary.shots,
        "images": images,
        "images_per_s": images / wall,
        "embed_s": round(stages.get("embed", 0.0), 1),
        "decode_cpu_s": round(cpu_s, 1),
        "decode_frames_per_cpu_s": frames_decoded / cpu_s if cpu_s else float("nan"),
        "images_per_cpu_s": images / cpu_s if cpu_s else float("nan"),
        "stage_s": {k: round(v, 1) for k, v in stages.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 128, 256, 512], help="GPU batch sizes")
    parser.add_argument("--archs", nargs="+", default=["vit-b-32", "vit-l-14"], help="random-clip architectures")
    parser.add_argument("--titles", type=int, default=6, help="synthetic titles for the pipeline run")
    parser.add_argument("--seconds", type=int, default=40, help="length of each synthetic title")
    parser.add_argument("--seconds-per-batch", type=float, default=4.0, help="timed seconds per batch size")
    parser.add_argument("--pipeline-batch", type=int, default=128, help="shots per embedding batch in the pipeline")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = parser.parse_args()

    gpu = gpu_or_none()
    if gpu is None:
        import torch

        print(
            "gpu_check: no NVIDIA GPU is visible to torch here (torch.cuda.is_available() is False; torch "
            f"{torch.__version__}, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}), so "
            "nothing was measured. Run it on the GPU machine, with a CUDA build of torch."
        )
        return 0
    import torch

    started = time.perf_counter()
    gpus = torch.cuda.device_count()
    cpus = os.cpu_count() or 1
    print(f"gpu_check on {gpu}, {cpus} CPUs, torch {torch.__version__}", flush=True)
    report: dict[str, Any] = {"gpu": gpu, "cpus": cpus, "alone": {}}
    for arch in args.archs:
        alone = model_alone(arch, args.batches, seconds_per_batch=args.seconds_per_batch)
        report["alone"][arch] = alone
        rates = "  ".join(f"batch {b}: {r:.0f}" for b, r in alone["images_per_s"].items())
        print(f"model alone, {arch} float16 (images/s): {rates}  [built in {alone['build_s']} s]", flush=True)

    arch = args.archs[0]
    with tempfile.TemporaryDirectory(prefix="va-gpu-check-") as tmp:
        paths = make_catalog(Path(tmp) / "catalog", titles=args.titles, seconds=args.seconds)
        print(f"pipeline: {len(paths)} synthetic 720p titles of {args.seconds} s, {arch} on {gpus} GPU(s)", flush=True)
        pipe = in_pipeline(paths, Path(tmp) / "data", arch=arch, gpus=gpus, batch_shots=args.pipeline_batch)
    report["pipeline"] = pipe
    # The pipeline embeds 3 frames a shot in batches of pipeline_batch shots; compare with the nearest batch.
    frames_per_pass = 64  # ClipEncoder's FRAME_BATCH: the pipeline's forward passes are this many frames
    alone_rates = report["alone"][arch]["images_per_s"]
    alone_rate = alone_rates.get(frames_per_pass) or max(alone_rates.values())
    ratio = pipe["images_per_s"] / alone_rate
    embed_busy = pipe["embed_s"] / (pipe["wall_s"] * gpus)
    cpus_per_gpu = alone_rate / pipe["images_per_cpu_s"]
    report.update(
        ratio=ratio, embed_busy=embed_busy, decode_cpus_per_gpu=cpus_per_gpu, seconds=time.perf_counter() - started
    )
    print(
        f"pipeline, {arch}: {pipe['images_per_s']:.0f} images/s ({pipe['shots']} shots, {pipe['images']} frames "
        f"in {pipe['wall_s']} s); stages (s, summed over workers): {pipe['stage_s']}"
    )
    print(
        f"decode on these CPUs: {pipe['decode_frames_per_cpu_s']:.0f} frames/s per CPU decoded and scanned "
        f"({pipe['decode_frames_per_cpu_s'] * cpus:.0f} on all {cpus}); {pipe['images_per_cpu_s']:.1f} sampled "
        "frames/s per CPU reach the GPU"
    )
    verdict = "meets" if ratio >= GOAL_RATIO else "misses"
    print(f"ratio pipeline vs model alone (batch {frames_per_pass}): {ratio:.2f}x, {verdict} the goal >= {GOAL_RATIO}x")
    waited = "; the GPU waited for decode" if cpus / gpus < cpus_per_gpu else ""
    print(f"decode CPUs per GPU to keep {arch} busy: {cpus_per_gpu:.1f} (this machine has {cpus / gpus:.1f}{waited})")
    print(f"gpu_check took {report['seconds']:.0f} s")
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
