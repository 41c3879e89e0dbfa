"""Annotation service overhead: build round trip and search latency over HTTP vs the engine in-process.

For each corpus size it writes N synthetic shots (a mixture of 10 Gaussian
clusters on the unit sphere, so a label has a real answer) to LanceDB in
chunks of 200,000 (memory stays bounded at 10M), builds the ANN index as
ingest does, labels 50 + 50 shots, then times, side by side,

- search by example: ``ShotStore.search_like`` in-process vs ``GET /api/search?like=…&label=…``;
- search by vector: ``ShotStore.search`` in-process vs ``POST /api/search/vector`` (fresh draws
  from the mixture, like a new shot's or a text query's embedding);
- build (unless ``--builds 0``): ``LabelWorkspace.build()`` in-process vs ``POST /api/labels/{l}/build``.

Search recall@10 of both kinds is measured against exact search (a streamed
pass over the same vectors, regenerated chunk by chunk from the seed).

The service runs as ``va serve`` in its own process (one worker), so the
client does not share its interpreter.

    .venv/bin/python benchmarks/annotation_service.py --sizes 100000,1000000
    # 10M, search only, the table kept for later runs (write ~15 min, index build hours on 2 cores):
    .venv/bin/python benchmarks/annotation_service.py --sizes 10000000 --builds 0 --sweep 16,32,64 \\
        --data-dir /var/tmp/va-10m
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
from search_latency import mixture_chunks

CHUNK = 200_000
K = 10  # recall@K against exact search
LIMIT = 50  # results a search asks for, as the UI does


def corpus_chunks(n: int, dim: int, seed: int = 1) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(first row, unit vectors, class 0-9) of N shots, CHUNK rows at a time, the same for a seed.

    The vectors are search_latency.py's topic/scene mixture (shaped like shot embeddings: neighbours
    within scenes, scenes within topics); a shot's class is its topic mod 10, the answer a label follows.
    """
    for start, x, topic in mixture_chunks(n, dim, seed=seed, chunk=CHUNK):
        yield start, x, topic % 10


def shot_ids(n: int, rows: np.ndarray) -> list[str]:
    """The shot id of each row: 100 videos of N/100 shots, 50 frames apart."""
    per_video = n // 100 or 1
    return [f"v{r // per_video % 100:04d}:{r % per_video * 50}" for r in rows.tolist()]


def write_corpus(settings, n: int, dim: int) -> np.ndarray:
    """Write the shots; returns each shot's class (the "truth" a label follows)."""
    from annotator_core.records import SHOTS_TABLE, shots_schema
    from annotator_core.shot_store import ShotStore

    store = ShotStore.from_settings(settings)
    store.ensure_tables(dim)
    store.upsert_videos(
        [
            dict(video_id=f"v{v:04d}", uri=f"/nowhere/v{v:04d}.mp4", title=f"Video {v}", duration_s=3600.0,
                 fps=25.0, width=640, height=360, n_frames=90000, n_shots=n // 100, status="done", error="",
                 ingested_at=datetime.datetime.now(), encoder="synthetic")
            for v in range(100)
        ]
    )  # fmt: skip
    table = store.db.open_table(SHOTS_TABLE)
    truth = np.empty(n, dtype=np.int64)
    per_video = n // 100 or 1
    for start, x, cluster in corpus_chunks(n, dim):
        m = len(x)
        truth[start : start + m] = cluster
        idx = np.arange(start, start + m)
        video = idx // per_video % 100
        frame = (idx % per_video) * 50
        data = pa.table(
            {
                "shot_id": shot_ids(n, idx),
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
        print(f"\rwritten {start + m:,} / {n:,}", end="", flush=True)
    print()
    return truth


def label_shots(settings, n: int, truth: np.ndarray, n_each: int = 50) -> str:
    """50 positives (cluster 0) and 50 negatives for the label "bench"; returns an admin's API token."""
    from annotator_core.store import AnnotationStore

    store = AnnotationStore.from_settings(settings)
    store.labels.create("bench")
    rng = np.random.default_rng(1)
    sample = rng.choice(n, size=min(n, 20_000), replace=False)
    pos = [i for i in sample if truth[i] == 0][:n_each]
    neg = [i for i in sample if truth[i] != 0][:n_each]
    for rows, value in ((pos, True), (neg, False)):
        for sid in shot_ids(n, np.asarray(rows)):
            store.annotations.annotate("bench", sid, "bench", value, source="search")
    store.users.create("bench", "admin")
    token = store.users.reset_token("bench")
    store.db.close()
    return token


def queries(n: int, dim: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the corpus to search by example, and fresh draws from the same mixture to search by vector."""
    rows = np.sort(np.random.default_rng(2).choice(n, size=count, replace=False))
    fresh = np.concatenate([x for _, x, _ in mixture_chunks(count, dim, seed=3)])
    return rows, fresh


def exact_neighbours(shots, n: int, dim: int, rows: np.ndarray, fresh: np.ndarray, k: int) -> tuple[list, list]:
    """Exact top-k shot ids of each example (itself left out) and of each fresh vector, in one streamed pass."""
    found = {r["shot_id"]: r["vector"] for r in shots.get_shots(shot_ids(n, rows), columns=["shot_id", "vector"])}
    wanted = np.concatenate([np.asarray([found[sid] for sid in shot_ids(n, rows)], np.float32), fresh])
    best_scores, best_rows = [], []
    for start, x, _ in corpus_chunks(n, dim):
        scores = x @ wanted.T  # [chunk, queries]
        inside = (rows >= start) & (rows < start + len(x))
        scores[rows[inside] - start, np.flatnonzero(inside)] = -np.inf  # an example is not its own neighbour
        top = np.argsort(-scores, axis=0)[:k] if len(x) <= k else np.argpartition(-scores, k, axis=0)[:k]
        best_scores.append(np.take_along_axis(scores, top, axis=0).T)
        best_rows.append(top.T + start)
    all_scores, all_rows = np.concatenate(best_scores, axis=1), np.concatenate(best_rows, axis=1)
    order = np.argsort(-all_scores, axis=1)[:, :k]
    ids = [shot_ids(n, r) for r in np.take_along_axis(all_rows, order, axis=1)]
    return ids[: len(rows)], ids[len(rows) :]


def recall(found: list[list[str]], exact: list[list[str]]) -> float:
    return float(np.mean([len(set(f[:K]) & set(e)) / K for f, e in zip(found, exact, strict=True)]))


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
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/api/health", timeout=2)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("va serve did not start within 120 s")


def prepare(data_dir: Path, n: int, dim: int, index: bool) -> str:
    """Write the corpus, the index and the label into ``data_dir`` unless a previous run left them there."""
    from annotator_core.settings import Settings
    from annotator_core.shot_store import ShotStore

    settings = Settings(data_dir=data_dir, encoder="handcrafted")
    done = data_dir / f"corpus-{n}-{dim}.token"
    if done.exists():
        print(f"\n== {n:,} shots, dim {dim}: reusing {data_dir}")
        return done.read_text()
    t0 = time.perf_counter()
    truth = write_corpus(settings, n, dim)
    token = label_shots(settings, n, truth)
    print(f"\n== {n:,} shots, dim {dim} (corpus written in {time.perf_counter() - t0:.1f} s)")
    if index:
        from pipelines.index import ensure_index

        t0 = time.perf_counter()
        report = ensure_index(ShotStore.from_settings(settings), settings=settings)  # as ingest leaves the table
        print(f"ANN index: {report.action} {report.index_type}, {report.partitions} partitions, "
              f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    done.write_text(token)
    return token


def run(
    n: int, dim: int, *, builds: int, searches: int, warmup: int, data_dir: Path, index: bool, sweep: list[int]
) -> dict[str, float]:
    from annotator_core.settings import Settings
    from annotator_core.shot_store import ShotStore

    token = prepare(data_dir, n, dim, index)
    settings = Settings(data_dir=data_dir, encoder="handcrafted")
    rows, fresh = queries(n, dim, searches)
    examples = shot_ids(n, rows)
    shots = ShotStore.from_settings(settings)
    t0 = time.perf_counter()
    exact_like, exact_vector = exact_neighbours(shots, n, dim, rows, fresh, K)
    print(f"exact neighbours of {searches} + {searches} queries in {time.perf_counter() - t0:.1f} s")

    timings: dict[str, list[float]] = {}
    found: dict[str, list[list[str]]] = {}

    def timed(name: str, call, items) -> None:
        call(items[0])  # the first query opens the index; cold-cache cost is not per query
        timings[name], found[name] = [], []
        for item in items:
            t = time.perf_counter()
            ids = call(item)
            timings[name].append(time.perf_counter() - t)
            found[name].append(ids)

    # A running service has the index partitions it searches cached; the first search to touch a
    # partition after a start reads and decodes it (about twice the time at 1M). Other queries warm it.
    warm = [x for _, x, _ in mixture_chunks(warmup, dim, seed=4)]
    for v in np.concatenate(warm) if warm else []:
        shots.search(v, k=LIMIT)
    timed("like engine", lambda sid: [h.shot_id for h in shots.search_like(sid, k=LIMIT)], examples)
    timed("vector engine", lambda v: [h.shot_id for h in shots.search(v, k=LIMIT)], list(fresh))
    if sweep:
        print(f"in-process search by vector at other nprobes (the service uses {shots.nprobes}):")
        configured = shots.nprobes
        for nprobes in sweep:
            shots.nprobes = nprobes
            timed(f"nprobes {nprobes}", lambda v: [h.shot_id for h in shots.search(v, k=LIMIT)], list(fresh))
            ms = timings.pop(f"nprobes {nprobes}")
            print(f"  nprobes {nprobes:4d}: p50 {pct(ms, 50):6.1f} ms, p95 {pct(ms, 95):6.1f} ms, "
                  f"recall@10 {recall(found.pop(f'nprobes {nprobes}'), exact_vector):.3f}")  # fmt: skip
        shots.nprobes = configured
    if builds:
        from annotator_core.store import AnnotationStore
        from annotator_core.workspace import LabelWorkspace

        ws = LabelWorkspace("bench", shots=shots, store=AnnotationStore.from_settings(settings), settings=settings)

        def engine_build(_: int) -> list[str]:
            ws.build(created_by="bench")
            return []

        timed("build engine", engine_build, list(range(builds + 1)))

    proc, url = start_service(data_dir)
    try:
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=600)

        def http_like(sid: str) -> list[str]:
            r = client.get("/api/search", params={"like": sid, "label": "bench", "limit": LIMIT})
            r.raise_for_status()
            return [h["shot_id"] for h in r.json()["results"]]

        def http_vector(v: np.ndarray) -> list[str]:
            r = client.post("/api/search/vector", json={"vector": v.tolist(), "label": "bench", "limit": LIMIT})
            r.raise_for_status()
            return [h["shot_id"] for h in r.json()["results"]]

        def http_build(_: int) -> list[str]:
            r = client.post("/api/labels/bench/build")
            r.raise_for_status()
            assert len(r.json()["feeds"]) == 4
            return []

        for v in np.concatenate(warm) if warm else []:
            http_vector(v)
        timed("like http", http_like, examples)
        timed("vector http", http_vector, list(fresh))
        if builds:
            timed("build http", http_build, list(range(builds + 1)))
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    exact = {"like": exact_like, "vector": exact_vector}
    load = os.getloadavg()[0]
    print(f"\n{n:,} shots x {dim}, {searches} searches of each kind, limit {LIMIT}; load average {load:.1f}")
    print(f"{'':22}{'in-process p50/p95 ms':>24}{'HTTP p50/p95 ms':>20}{'HTTP - in-process':>20}{'recall@10':>20}")
    out: dict[str, float] = {"load": load}
    for what, title in (("like", "search by example"), ("vector", "search by vector"), ("build", "build")):
        if f"{what} engine" not in timings:
            continue
        engine, http = timings[f"{what} engine"], timings[f"{what} http"]
        cells = [f"{pct(engine, 50):.1f} / {pct(engine, 95):.1f}", f"{pct(http, 50):.1f} / {pct(http, 95):.1f}",
                 f"{pct(http, 50) - pct(engine, 50):+.1f} ms"]  # fmt: skip
        if what in exact:
            r_engine, r_http = recall(found[f"{what} engine"], exact[what]), recall(found[f"{what} http"], exact[what])
            cells.append(f"{r_engine:.3f} / {r_http:.3f}")
            out[f"{what}_recall"] = r_http
        else:
            cells.append("")
        print(f"{title:22}{cells[0]:>24}{cells[1]:>20}{cells[2]:>20}{cells[3]:>20}")
        for where, values in (("engine", engine), ("http", http)):
            out[f"{what}_{where}_p50"], out[f"{what}_{where}_p95"] = pct(values, 50), pct(values, 95)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="corpus sizes, comma separated")
    parser.add_argument("--dim", type=int, default=512, help="vector width (CLIP ViT-B/32: 512)")
    parser.add_argument("--builds", type=int, default=5, help="timed builds per size (0: search only)")
    parser.add_argument("--searches", type=int, default=50, help="timed searches of each kind per size")
    parser.add_argument("--data-dir", default=None, help="keep each size's data in DIR/N and reuse it next time")
    parser.add_argument("--no-index", action="store_true", help="search without the ANN index ingest builds")
    parser.add_argument("--warmup", type=int, default=200, help="untimed searches (other queries) before timing")
    parser.add_argument("--sweep", default="", help="also time in-process search at these nprobes, e.g. 16,32,64")
    args = parser.parse_args()
    for n in (int(s) for s in args.sizes.split(",")):
        if args.data_dir:
            data_dir = Path(args.data_dir) / str(n)
            data_dir.mkdir(parents=True, exist_ok=True)
        else:
            data_dir = Path(tempfile.mkdtemp(prefix=f"va-bench-{n}-"))
        try:
            sweep = [int(v) for v in args.sweep.split(",") if v]
            run(n, args.dim, builds=args.builds, searches=args.searches, warmup=args.warmup, data_dir=data_dir,
                index=not args.no_index, sweep=sweep)  # fmt: skip
        finally:
            if not args.data_dir:
                shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
