"""Load test of the scoring service against ONNX Runtime in-process.

For 1, 10 and 56 labels (the paper's count) on one worker: requests/s, vectors/s
and p50/p99 latency for single-vector and 256-vector requests as JSON, raw
float32 and Arrow IPC, at concurrency 1 (and 4 connections for throughput),
next to the same graph called in-process; then clip scoring throughput with the
offline (handcrafted) and tiny CLIP encoders on real footage (bikes.mp4).

    .venv/bin/python benchmarks/scoring_load.py            # about 5 minutes on 2 cores
    .venv/bin/python benchmarks/scoring_load.py --quick    # fewer requests, for a smoke run
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration" / "scoring"))
DIM = 512


def make_labels(data_dir: Path, n_labels: int, *, encoder: str = "bench-512", dim: int = DIM) -> None:
    """``n_labels`` labels trained on random unit vectors (the service cost does not depend on the data)."""
    from annotator_core.classifier import train
    from annotator_core.settings import Settings
    from annotator_core.store import AnnotationStore
    from serving.model_store import publish

    settings = Settings(data_dir=data_dir)
    store = AnnotationStore.from_settings(settings)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, dim)).astype(np.float32)
    for i in range(n_labels):
        label = f"{encoder}-label-{i:02d}"
        store.labels.create(label)
        y = x @ rng.standard_normal(dim) > 0
        clf = train(x, y, encoder=encoder)
        store.versions.save(
            label,
            model=clf.to_bytes(),
            encoder=encoder,
            dim=dim,
            n_pos=int(y.sum()),
            n_neg=int((~y).sum()),
            model_quality=0.0,
            data_diversity=0.0,
            snapshot=[],
            snapshot_event_id=0,
        )
        publish(label, settings=settings)
    store.db.close()


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1e3, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3


def in_process(n_labels: int, batch: int, seconds: float) -> dict[str, float]:
    from annotator_core.classifier import train
    from annotator_core.onnx_session import fused_session

    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, DIM)).astype(np.float32)
    clfs = {f"l{i}": train(x, x @ rng.standard_normal(DIM) > 0, encoder="bench-512") for i in range(n_labels)}
    session = fused_session(clfs, threads=1)
    probe = rng.standard_normal((batch, DIM)).astype(np.float32)
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        session.run(["scores"], {"embeddings": probe})
        times.append(time.perf_counter() - t0)
    p50, p99 = percentiles(times)
    return {"p50_ms": p50, "p99_ms": p99, "rps": len(times) / sum(times), "vps": batch * len(times) / sum(times)}


def bodies(batch: int) -> dict[str, tuple[str, str, bytes]]:
    """(path, content type, body) per payload kind for ``batch`` random vectors."""
    import pyarrow as pa

    x = np.random.default_rng(1).standard_normal((batch, DIM)).astype(np.float32)
    table = pa.table({"vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), DIM)})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return {
        "json": ("/v1/score/embeddings", "application/json", json.dumps({"vectors": x.tolist()}).encode()),
        "f32": ("/v1/score/embeddings/binary", "application/octet-stream", x.tobytes()),
        "arrow": ("/v1/score/embeddings/binary", "application/vnd.apache.arrow.stream", sink.getvalue()),
    }


def hammer(port: int, path: str, ctype: str, body: bytes, *, seconds: float, connections: int) -> list[float]:
    """Requests back to back on ``connections`` keep-alive connections; the latency of each."""
    times: list[float] = []
    lock = threading.Lock()
    end = time.perf_counter() + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        mine = []
        headers = {"Content-Type": ctype}
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            mine.append(time.perf_counter() - t0)
            if resp.status != 200:
                raise RuntimeError(f"{path} answered {resp.status}")
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times


def serve(data_dir: Path, log: Path, **settings: str):
    from scoring_support import start_server, wait_ready

    server = start_server(data_dir, log, **settings)
    wait_ready(server.url, timeout=60)
    return server


def http_figures(port: int, batch: int, kind: str, seconds: float) -> dict[str, float]:
    path, ctype, body = bodies(batch)[kind]
    hammer(port, path, ctype, body, seconds=0.5, connections=1)  # warm-up
    one = hammer(port, path, ctype, body, seconds=seconds, connections=1)
    p50, p99 = percentiles(one)
    four = hammer(port, path, ctype, body, seconds=seconds, connections=4)
    wall = seconds
    return {
        "p50_ms": p50,
        "p99_ms": p99,
        "rps": len(one) / sum(one),
        "vps": batch * len(one) / sum(one),
        "vps_c4": batch * len(four) / wall,
    }


def clip_figures(port: int, video: Path, label: str, repeats: int) -> dict[str, float]:
    import httpx

    data = video.read_bytes()
    url = f"http://127.0.0.1:{port}/v1/score/clip"
    files = {"clip": (video.name, data, "video/mp4")}
    httpx.post(url, files=files, data={"labels": json.dumps([label])}, timeout=300)  # loads the encoder
    times, duration = [], 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        resp = httpx.post(url, files=files, data={"labels": json.dumps([label])}, timeout=300)
        times.append(time.perf_counter() - t0)
        if resp.status_code != 200:
            raise RuntimeError(resp.text)
        duration = resp.json()["duration_s"]
    mean = statistics.mean(times)
    return {"seconds_per_clip": mean, "video_s_per_s": duration / mean, "shots": len(resp.json()["shots"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Shorter runs, for a smoke test.")
    parser.add_argument("--labels", default="1,10,56", help="Label counts to measure.")
    args = parser.parse_args()
    seconds = 1.5 if args.quick else 5.0
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    work = Path(tempfile.mkdtemp(prefix="va-scoring-bench-"))
    print(f"# scoring load test ({'quick' if args.quick else 'full'}), {os.cpu_count()} CPUs, dim {DIM}, one worker")
    print(
        "| labels | batch | payload | p50 ms | p99 ms | req/s | vectors/s (c=1) | vectors/s (c=4) |"
        " in-process p50 ms | HTTP/in-process (p50) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for n_labels in [int(n) for n in args.labels.split(",")]:
        data_dir = work / f"labels-{n_labels}" / "va-data"
        make_labels(data_dir, n_labels)
        server = serve(data_dir, data_dir.parent / "serve.log", scoring_max_concurrency="64")
        port = int(server.url.rsplit(":", 1)[1])
        try:
            for batch in (1, 256):
                local = in_process(n_labels, batch, seconds / 2)
                for kind in ("json", "f32", "arrow"):
                    fig = http_figures(port, batch, kind, seconds)
                    print(
                        f"| {n_labels} | {batch} | {kind} | {fig['p50_ms']:.2f} | {fig['p99_ms']:.2f} | "
                        f"{fig['rps']:.0f} | {fig['vps']:.0f} | {fig['vps_c4']:.0f} | {local['p50_ms']:.3f} | "
                        f"{fig['p50_ms'] / local['p50_ms']:.0f}x |",
                        flush=True,
                    )
        finally:
            from scoring_support import stop_server

            stop_server(server.process)

    from scoring_support import stop_server

    print("\n| encoder | clip | shots | seconds per clip | video seconds per second |")
    print("| --- | --- | --- | --- | --- |")
    data_dir = work / "clips" / "va-data"
    from annotator_core.encoders import load_encoder
    from va_cli.demo import cached_sample_clips

    for spec in ("handcrafted", "tiny-clip"):
        make_labels(data_dir, 1, encoder=spec, dim=load_encoder(spec).dim)
    server = serve(data_dir, data_dir.parent / "serve.log")
    port = int(server.url.rsplit(":", 1)[1])
    video = cached_sample_clips()["bikes.mp4"]
    try:
        for spec in ("handcrafted", "tiny-clip"):
            fig = clip_figures(port, video, f"{spec}-label-00", 2 if args.quick else 5)
            print(
                f"| {spec} | {video.name} (10 s) | {fig['shots']} | {fig['seconds_per_clip']:.2f} | "
                f"{fig['video_s_per_s']:.1f} |",
                flush=True,
            )
    finally:
        stop_server(server.process)


if __name__ == "__main__":
    main()
