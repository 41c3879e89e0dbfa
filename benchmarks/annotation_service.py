"""Annotation service overhead: build round trip and search latency over HTTP vs the engine in-process.

For each corpus size it writes N synthetic shots (a mixture of 10 Gaussian
clusters on the unit sphere, so a label has a real answer) to LanceDB,
labels 50 + 50 shots, then times

- build: ``LabelWorkspace.build()`` in-process vs ``POST /api/labels/{l}/build``
  (request → version, metrics and the four feeds with shot spans returned);
- search by example: ``ShotStore.get_shot`` + ``ShotStore.search`` in-process vs
  ``GET /api/search?like=…&label=…``.

The service runs as ``va serve`` in its own process (one worker), so the
client does not share its interpreter. Prints p50/p95 and the HTTP/in-process ratio.

    .venv/bin/python benchmarks/annotation_service.py --sizes 100000,1000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa


def write_corpus(settings, n: int, dim: int, seed: int = 0) -> np.ndarray:
    """N shots in 10 clusters; returns each shot's cluster (the "truth" a label follows)."""
    from annotator_core.records import SHOTS_TABLE, shots_schema
    from annotator_core.shot_store import ShotStore

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, dim)).astype(np.float32)
    store = ShotStore.from_settings(settings)
    store.ensure_tables(dim)
    store.upsert_videos(
        [
            dict(video_id=f"v{v:04d}", uri=f"/nowhere/v{v:04d}.mp4", title=f"Video {v}", duration_s=3600.0,
                 fps=25.0, width=640, height=360, n_frames=90000, n_shots=n // 100, status="done", error="",
                 ingested_at=__import__("datetime").datetime.now(), encoder="synthetic")
            for v in range(100)
        ]
    )  # fmt: skip
    table = store.db.open_table(SHOTS_TABLE)
    truth = np.empty(n, dtype=np.int64)
    chunk = 200_000
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        cluster = rng.integers(0, 10, size=m)
        x = centres[cluster] + rng.normal(scale=1.5, size=(m, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        truth[start : start + m] = cluster
        idx = np.arange(start, start + m)
        video = idx // (n // 100 or 1) % 100
        frame = (idx % (n // 100 or 1)) * 50
        data = pa.table(
            {
                "shot_id": [f"v{v:04d}:{f}" for v, f in zip(video, frame, strict=True)],
                "video_id": [f"v{v:04d}" for v in video],
                "start_frame": pa.array(frame, pa.int64()),
                "end_frame": pa.array(frame + 50, pa.int64()),
                "start_s": pa.array(frame / 25.0),
                "end_s": pa.array((frame + 50) / 25.0),
                "thumbnail": pa.array([b""] * m, pa.binary()),
                "cluster_id": pa.array(cluster, pa.int64()),
                "encoder": pa.array(["synthetic"] * m),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel(), pa.float32()), dim),
            }
        )
        table.add(data.cast(shots_schema(dim)))
    return truth


def label_shots(settings, truth: np.ndarray, n_each: int = 50) -> list[str]:
    from annotator_core.shot_store import ShotStore
    from annotator_core.store import AnnotationStore

    ids = ShotStore.from_settings(settings).vectors().ids
    store = AnnotationStore.from_settings(settings)
    store.labels.create("bench")
    rng = np.random.default_rng(1)
    # vectors() order is the table's order, the same order the rows were written in.
    sample = rng.permutation(len(ids))[:20_000]
    pos = [i for i in sample if truth[i] == 0][:n_each]
    neg = [i for i in sample if truth[i] != 0][:n_each]
    for i in pos:
        store.annotations.annotate("bench", str(ids[i]), "bench", True, source="search")
    for i in neg:
        store.annotations.annotate("bench", str(ids[i]), "bench", False, source="search")
    store.users.create("bench", "admin")
    token = store.users.reset_token("bench")
    store.db.close()
    return [str(ids[i]) for i in rng.permutation(len(ids))[:200]] + [token]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def start_service(data_dir: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "VA_DATA_DIR": str(data_dir), "VA_PORT": str(port), "VA_ENCODER": "handcrafted"}
    va = Path(sys.executable).parent / "va"
    proc = subprocess.Popen([str(va), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            httpx.get(url + "/api/health", timeout=2)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("va serve did not start")


def run(n: int, dim: int, builds: int, searches: int, keep: bool, index: bool = True) -> dict[str, float]:
    from annotator_core.settings import Settings
    from annotator_core.shot_store import ShotStore
    from annotator_core.store import AnnotationStore
    from annotator_core.workspace import LabelWorkspace

    data_dir = Path(tempfile.mkdtemp(prefix=f"va-bench-{n}-"))
    settings = Settings(data_dir=data_dir, encoder="handcrafted")
    t0 = time.perf_counter()
    truth = write_corpus(settings, n, dim)
    *probe_ids, token = label_shots(settings, truth)
    print(f"\n== {n:,} shots, dim {dim} (corpus written in {time.perf_counter() - t0:.1f} s)")
    if index:
        from pipelines.index import ensure_index

        t0 = time.perf_counter()
        ensure_index(ShotStore.from_settings(settings), settings=settings)  # as ingest leaves the table
        took = time.perf_counter() - t0
        print(f"ANN index ({settings.index_type}, past {settings.index_threshold:,} shots) in {took:.1f} s")

    shots = ShotStore.from_settings(settings)
    annotations = AnnotationStore.from_settings(settings)
    ws = LabelWorkspace("bench", shots=shots, store=annotations, settings=settings)
    ws.build(created_by="bench")  # warm the vector cache, as the service's first build does
    engine_build = []
    for _ in range(builds):
        t = time.perf_counter()
        ws.build(created_by="bench")
        engine_build.append(time.perf_counter() - t)
    engine_search = []
    for sid in probe_ids[:searches]:
        t = time.perf_counter()
        vector = np.asarray(shots.get_shot(sid, columns=["shot_id", "vector"])["vector"], dtype=np.float32)
        shots.search(vector, k=51)
        engine_search.append(time.perf_counter() - t)

    proc, url = start_service(data_dir)
    try:
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=600)
        warm = client.post("/api/labels/bench/build")
        warm.raise_for_status()
        http_build = []
        for _ in range(builds):
            t = time.perf_counter()
            r = client.post("/api/labels/bench/build")
            r.raise_for_status()
            assert len(r.json()["feeds"]) == 4
            http_build.append(time.perf_counter() - t)
        http_search = []
        for sid in probe_ids[:searches]:
            t = time.perf_counter()
            r = client.get("/api/search", params={"like": sid, "label": "bench", "limit": 50})
            r.raise_for_status()
            http_search.append(time.perf_counter() - t)
        quality = client.get("/api/labels/bench").json()["latest_version"]["model_quality"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)

    out = {
        "engine_build_p50": pct(engine_build, 50), "engine_build_p95": pct(engine_build, 95),
        "http_build_p50": pct(http_build, 50), "http_build_p95": pct(http_build, 95),
        "engine_search_p50": pct(engine_search, 50), "engine_search_p95": pct(engine_search, 95),
        "http_search_p50": pct(http_search, 50), "http_search_p95": pct(http_search, 95),
    }  # fmt: skip
    print(f"model quality of the label: {quality:.3f}")
    print(f"{'':28}{'p50 ms':>10}{'p95 ms':>10}")
    for what in ("build", "search"):
        for where in ("engine", "http"):
            print(f"{what + ' ' + where:28}{out[f'{where}_{what}_p50']:10.1f}{out[f'{where}_{what}_p95']:10.1f}")
        ratio = out[f"http_{what}_p50"] / out[f"engine_{what}_p50"]
        print(f"{what + ' HTTP/engine (p50)':28}{ratio:10.2f}x")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="corpus sizes, comma separated")
    parser.add_argument("--dim", type=int, default=512, help="vector width (CLIP ViT-B/32: 512)")
    parser.add_argument("--builds", type=int, default=5, help="timed builds per size")
    parser.add_argument("--searches", type=int, default=50, help="timed searches per size")
    parser.add_argument("--keep", action="store_true", help="keep the data folders")
    parser.add_argument("--no-index", action="store_true", help="search without the ANN index ingest builds")
    args = parser.parse_args()
    for n in (int(s) for s in args.sizes.split(",")):
        run(n, args.dim, args.builds, args.searches, args.keep, index=not args.no_index)


if __name__ == "__main__":
    main()
