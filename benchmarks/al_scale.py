"""Active learning at catalog scale (issue 12): build latency, worker memory, fidelity and Ray shard throughput.

For each size it writes N synthetic shots × dim (10 Gaussian clusters on the
unit sphere, written to LanceDB in chunks of 200,000 so memory stays bounded at
10M), the BTREE key index ingest makes, and the compressed corpus
(``sync_corpus``, as ingest's last step); labels 500 + 500 shots, then prints
side by side:

- build p50 in-process (``LabelWorkspace.build`` over the mapped corpus) and
  over HTTP (``va serve`` in a subprocess, ``VA_WORKERS`` workers,
  ``VA_CORPUS_SCORER=mapped``), with the in-process breakdown;
- RSS, PSS and USS of every service worker after the builds (psutil
  ``memory_full_info``), and the sum of PSS (shared pages counted once);
- fidelity against an exact float32 build over the same labels (a streamed
  pass over LanceDB, never the whole matrix in memory): top feeds recall@50,
  the borderline |p − 0.5| bound, quality and diversity equality, and that the
  random feed holds distinct unlabelled shots;
- search in-process (the corpus probe alone) and over HTTP, by example and by
  vector, p50 and recall@10 against exact search over the float32 copy (with a
  mapped corpus the service searches it, so no LanceDB vector index is built);
- the scoring kernel against the float32-conversion-plus-sgemv it replaced,
  on the same rows in the same run;
- per-shard throughput with K Ray actors (``pipelines.corpus_shards``) on a
  local Ray with the machine's cores, or with ``--ray-nodes 2`` on a local
  two-node Ray cluster (two ``ray start`` processes, half the cores each),
  K from ``--shards``.

    .venv/bin/python benchmarks/al_scale.py --sizes 1000000 10000000
    .venv/bin/python benchmarks/al_scale.py --sizes 200000 --builds 3      # a quick look
    .venv/bin/python benchmarks/al_scale.py --sizes 10000000 --data-dir /data/al10m --prepare-only  # write once
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

CHUNK = 200_000
SHOTS_PER_VIDEO = 1000
N_LABELS = 1000
FEED = 50


def log(line: str) -> None:
    print(f"[{datetime.datetime.now():%H:%M:%S}] {line}", flush=True)


def corpus_chunks(
    n: int, dim: int, seed: int = 0, *, kind: str = "scenes"
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(first row, unit vectors, genre) of N shots, CHUNK rows at a time, the same for a seed and kind.

    ``scenes`` (the default) has the neighbourhoods real shot embeddings have: every shot is a common
    direction (CLIP's shared offset) + one of 10 genres + its title + its scene (runs of 1-60 shots) +
    its own noise, weighted so that cosine is ~0.26 between unrelated shots, ~0.5 within a genre, ~0.66
    within a title and ~0.93 within a scene. ``isotropic`` is the earlier worst case: 10 broad Gaussian
    clusters whose noise dominates, where a shot's nearest neighbours are barely nearer than the rest
    and no partition-based index or pruning can help.
    """
    rng = np.random.default_rng(seed)
    if kind == "isotropic":
        centres = rng.normal(size=(10, dim)).astype(np.float32)
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            cluster = rng.integers(0, 10, size=m)
            x = centres[cluster] + rng.normal(scale=1.5, size=(m, dim)).astype(np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            yield start, x, cluster
        return
    unit = 1.0 / np.sqrt(dim)
    common = rng.normal(scale=unit, size=dim).astype(np.float32)
    genres = rng.normal(scale=unit, size=(10, dim)).astype(np.float32)
    for start in range(0, n, CHUNK):  # CHUNK is a multiple of SHOTS_PER_VIDEO: no title straddles two chunks
        m = min(CHUNK, n - start)
        videos = (m + SHOTS_PER_VIDEO - 1) // SHOTS_PER_VIDEO
        genre_of_video = rng.integers(0, 10, size=videos)
        video = np.arange(m) // SHOTS_PER_VIDEO
        # Scene boundaries: a new scene starts at a shot with probability 1/15, and at every title's start.
        new_scene = (rng.random(m) < 1 / 15) | (np.arange(m) % SHOTS_PER_VIDEO == 0)
        scene = np.cumsum(new_scene) - 1
        x = rng.normal(scale=0.5 * unit, size=(m, dim)).astype(np.float32)
        x += common
        x += genres[genre_of_video[video]]
        x += 0.8 * rng.normal(scale=unit, size=(videos, dim)).astype(np.float32)[video]
        x += rng.normal(scale=unit, size=(int(scene[-1]) + 1, dim)).astype(np.float32)[scene]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        yield start, x, genre_of_video[video]


def shot_id(row: int) -> str:
    return f"v{row // SHOTS_PER_VIDEO:05d}:{row % SHOTS_PER_VIDEO * 50}"


def write_shots(settings: Any, n: int, dim: int, *, kind: str) -> np.ndarray:
    """N shots into LanceDB; returns the cluster of each row (the truth a label follows)."""
    from annotator_core.records import SHOTS_TABLE, shots_schema
    from annotator_core.shot_store import ShotStore

    store = ShotStore.from_settings(settings)
    store.ensure_tables(dim)
    table = store.db.open_table(SHOTS_TABLE)
    truth = np.empty(n, np.int8)
    for start, x, cluster in corpus_chunks(n, dim, kind=kind):
        m = x.shape[0]
        rows = np.arange(start, start + m)
        truth[start : start + m] = cluster
        data = pa.table(
            {
                "shot_id": [shot_id(r) for r in rows.tolist()],
                "video_id": [f"v{r // SHOTS_PER_VIDEO:05d}" for r in rows.tolist()],
                "start_frame": pa.array(rows % SHOTS_PER_VIDEO * 50, pa.int64()),
                "end_frame": pa.array(rows % SHOTS_PER_VIDEO * 50 + 50, pa.int64()),
                "start_s": pa.array(rows % SHOTS_PER_VIDEO * 2.0),
                "end_s": pa.array(rows % SHOTS_PER_VIDEO * 2.0 + 2.0),
                "thumbnail": pa.array([b""] * m, pa.binary()),
                "cluster_id": pa.array(cluster, pa.int64()),
                "encoder": pa.array(["synthetic"] * m),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel(), pa.float32()), dim),
            }
        )
        table.add(data.cast(shots_schema(dim)))
        if (start // CHUNK) % 5 == 0 or start + m == n:
            log(f"  LanceDB: {start + m:,} / {n:,} shots written")
    return truth


def label(settings: Any, truth: np.ndarray) -> str:
    """500 shots of cluster 0 positive, 500 of the others negative; returns an admin's API token."""
    from annotator_core.store import AnnotationStore

    store = AnnotationStore.from_settings(settings)
    store.labels.create("bench")
    rng = np.random.default_rng(1)
    sample = rng.choice(truth.shape[0], size=min(truth.shape[0], 50 * N_LABELS), replace=False)
    pos = [r for r in sample.tolist() if truth[r] == 0][: N_LABELS // 2]
    neg = [r for r in sample.tolist() if truth[r] != 0][: N_LABELS // 2]
    for rows, value in ((pos, True), (neg, False)):
        for r in rows:
            store.annotations.annotate("bench", shot_id(r), "bench", value, source="random")
    store.users.create("bench", "admin")
    return store.users.reset_token("bench")


class StreamingExact:
    """The exact float32 reference: every shot scored in a streamed pass over LanceDB (bounded memory)."""

    name = "exact-streamed"

    def __init__(self, shots: Any) -> None:
        self.shots = shots

    def view(self) -> StreamingExact:
        self.version = self.shots.version()
        self.n_shots = self.shots.counts()["shots"]
        return self

    def cluster_k(self, labelled: Any) -> int:
        return 10

    def labelled(self, shot_ids: Sequence[str]) -> Any:
        from annotator_core.corpus.scorer import LabelledShots

        return LabelledShots(*self.shots.vectors_of(shot_ids))

    def reference(self, *, size: int) -> np.ndarray:
        from annotator_core.corpus.scorer import strided_rows
        from annotator_core.records import SHOTS_TABLE

        ds = self.shots.db.open_table(SHOTS_TABLE).to_lance()
        table = ds.take(strided_rows(self.n_shots, size), columns=["vector"])
        column = table.column("vector").combine_chunks()
        dim = column.type.list_size
        return np.asarray(column.values.to_numpy(zero_copy_only=False), np.float32).reshape(-1, dim)

    def feeds(self, clf: Any, *, labelled_ids: Sequence[str], size: int, seed: int) -> Any:
        from annotator_core.corpus.scorer import FeedPicks
        from annotator_core.records import SHOTS_TABLE

        labelled = set(labelled_ids)
        best: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        ds = self.shots.db.open_table(SHOTS_TABLE).to_lance()
        for batch in ds.to_batches(columns=["shot_id", "vector"], batch_size=CHUNK):
            ids = np.array(batch.column(0).to_pylist(), dtype=object)
            dim = batch.schema.field("vector").type.list_size
            x = np.asarray(batch.column(1).values.to_numpy(zero_copy_only=False), np.float32).reshape(-1, dim)
            p = clf.predict_proba(x, normalised=True)
            free = np.array([s not in labelled for s in ids.tolist()])
            keys = {"top_positive": p, "top_negative": -p, "borderline": np.where(free, -np.abs(p - 0.5), -np.inf)}
            for name, key in keys.items():
                old_ids, old_p = best.get(name, (np.empty(0, object), np.empty(0, np.float32)))
                all_ids, all_p = np.concatenate([old_ids, ids]), np.concatenate([old_p, p])
                all_key = np.concatenate([_key(name, old_p, np.ones(old_p.shape[0], bool)), key])
                keep = np.argsort(-all_key, kind="stable")[:size]
                best[name] = (all_ids[keep], all_p[keep])
        feeds = {name: [(str(s), float(v)) for s, v in zip(*best[name], strict=True)] for name in best}
        feeds["random"] = []
        return FeedPicks(feeds, {"scorer": self.name, "exact": True})


def _key(name: str, p: np.ndarray, free: np.ndarray) -> np.ndarray:
    if name == "top_positive":
        return p
    if name == "top_negative":
        return -p
    return np.where(free, -np.abs(p - 0.5), -np.inf)


def p50(values: list[float]) -> float:
    return statistics.median(values) * 1000


def start_service(data_dir: Path, workers: int) -> tuple[subprocess.Popen, str]:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VA_")}
    env.update(
        VA_DATA_DIR=str(data_dir), VA_PORT=str(port), VA_ENCODER="handcrafted", VA_WORKERS=str(workers),
        VA_CORPUS_SCORER="mapped", VA_FEED_SIZE=str(FEED),
    )  # fmt: skip
    va = Path(sys.executable).parent / "va"
    proc = subprocess.Popen([str(va), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/api/health", timeout=2)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("va serve did not start within 5 minutes")


def worker_memory(proc: subprocess.Popen) -> list[dict[str, float]]:
    """RSS, PSS and USS (GB) of the service's worker processes (the children that serve requests)."""
    import psutil

    parent = psutil.Process(proc.pid)
    out = []
    for child in [parent, *parent.children(recursive=True)]:
        try:
            info = child.memory_full_info()
        except psutil.Error:
            continue
        if info.rss > 150 << 20:  # the supervisor and resource tracker are small; workers hold the app
            out.append({"pid": child.pid, "rss": info.rss / 1e9, "pss": info.pss / 1e9, "uss": info.uss / 1e9})
    return out


def bench_http(
    data_dir: Path, token: str, builds: int, workers: int, *, n: int, dim: int, searches: int
) -> dict[str, Any]:
    import httpx

    proc, url = start_service(data_dir, workers)
    try:
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=900)
        times = []
        for i in range(builds + workers):  # the first build of each worker opens the corpus
            t = time.perf_counter()
            r = client.post("/api/labels/bench/build")
            r.raise_for_status()
            if i >= workers:
                times.append(time.perf_counter() - t)
        memory = worker_memory(proc)
        search = bench_search(url, token, data_dir / "corpus", n, dim, searches) if searches else []
        return {"build_p50_ms": p50(times), "workers": memory, "search": search}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def bench_ray(
    folder: Path, shards: Sequence[int], coef: np.ndarray, intercept: float, repeats: int, *, nodes: int
) -> list[str]:
    import ray

    from annotator_core.corpus.files import open_corpus
    from pipelines.corpus_shards import RayShards

    corpus = open_corpus(folder)
    assert corpus is not None
    cpus = os.cpu_count() or 1
    temp_dir = ""
    if nodes > 1:
        address, temp_dir = start_ray_cluster(nodes)
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    lines = []
    try:
        for k in shards:
            runner = RayShards(folder, shards=k, num_cpus=min(1.0, cpus / k), scheduling_strategy="SPREAD")
            times, per_shard = [], []
            for _ in range(repeats + 1):
                t = time.perf_counter()
                found = runner.candidates(
                    corpus, coef=coef, intercept=intercept, size=FEED, labelled_rows=np.empty(0, np.int64)
                )
                times.append(time.perf_counter() - t)
                per_shard.append([c.rows_scored / max(c.seconds, 1e-9) for c in found])
            hosts = len({node for node in ray.get([a.node.remote() for a in runner.actors])})
            runner.close()
            rates = np.array(per_shard[1:])
            lines.append(
                f"  K={k} on {hosts} node(s): candidates p50 {p50(times[1:]):8.1f} ms; rows scored per shard per "
                f"second {rates.mean() / 1e6:6.1f} M (min {rates.min() / 1e6:.1f} M); rows per shard "
                f"{corpus.n_rows // k:,}"
            )
    finally:
        ray.shutdown()
        if temp_dir:
            stop_ray_cluster(temp_dir)
    return lines


def bench_kernels(folder: Path, coef: np.ndarray, *, rows: int = 1_000_000, repeats: int = 5) -> str:
    """The int8 kernel against the float32-conversion-plus-sgemv it replaced, one core, the same rows."""
    from threadpoolctl import threadpool_limits

    from annotator_core.corpus.files import open_corpus
    from annotator_core.corpus.kernel import quantise_weights, score_codes

    corpus = open_corpus(folder)
    assert corpus is not None
    seg = corpus.segments[0]
    codes = np.asarray(seg.codes[: min(rows, len(seg))])
    folded = coef.astype(np.float64) * np.asarray(seg.scales, np.float64)
    weights, step = quantise_weights(folded)
    folded32 = folded.astype(np.float32)
    ours, reference = np.empty(codes.shape[0], np.float32), np.empty(codes.shape[0], np.float32)
    buffer = np.empty((256, codes.shape[1]), np.float32)

    def sgemv() -> None:
        for start in range(0, codes.shape[0], 256):
            m = min(256, codes.shape[0] - start)
            buffer[:m] = codes[start : start + m]
            np.dot(buffer[:m], folded32, out=reference[start : start + m])

    timings: dict[str, list[float]] = {"int8 kernel": [], "float32 blocks + sgemv": []}
    with threadpool_limits(1):
        for _ in range(repeats + 1):  # the first of each reads the pages in (and compiles the kernel)
            for name, call in (
                ("int8 kernel", lambda: score_codes(codes, weights, step, 0.0, out=ours)),
                ("float32 blocks + sgemv", sgemv),
            ):
                t = time.perf_counter()
                call()
                timings[name].append(time.perf_counter() - t)
    ours_ms, blas_ms = (p50(timings[k][1:]) for k in timings)
    worst = float(np.abs(ours - reference).max())
    return (
        f"  {codes.shape[0]:,} rows, one core: int8 kernel {ours_ms:.1f} ms "
        f"({codes.shape[0] / ours_ms / 1e3:.1f} M rows/s), float32 blocks + sgemv {blas_ms:.1f} ms "
        f"({codes.shape[0] / blas_ms / 1e3:.1f} M rows/s): {blas_ms / ours_ms:.1f}x; "
        f"largest score difference {worst:.2e} (weight-rounding bound {0.5 * step * 127 * codes.shape[1]:.2e})"
    )


def exact_neighbours(folder: Path, queries: np.ndarray, k: int) -> list[list[str]]:
    """The ``k`` nearest shot ids of each query by cosine, from a streamed pass over the float32 copy."""
    from annotator_core.corpus.files import open_corpus

    corpus = open_corpus(folder)
    assert corpus is not None
    best_s = np.full((queries.shape[0], k), -np.inf, np.float32)
    best_r = np.zeros((queries.shape[0], k), np.int64)
    for seg in corpus.segments:
        for start in range(0, len(seg), CHUNK):
            x = np.asarray(seg.vectors[start : start + CHUNK])
            sims = queries @ x.T
            rows = np.broadcast_to(np.arange(start, start + x.shape[0]) + seg.start, sims.shape)
            all_s, all_r = np.concatenate([best_s, sims], axis=1), np.concatenate([best_r, rows], axis=1)
            top = np.argpartition(-all_s, k, axis=1)[:, :k]
            best_s, best_r = np.take_along_axis(all_s, top, 1), np.take_along_axis(all_r, top, 1)
    return [corpus.ids_of(r) for r in best_r]


def bench_search(url: str, token: str, folder: Path, n: int, dim: int, queries: int) -> list[str]:
    """Search by example and by vector over HTTP: p50 and recall@10 against exact search."""
    import httpx

    from annotator_core.corpus.files import open_corpus
    from annotator_core.corpus.reads import populate
    from annotator_core.corpus.search import nearest_rows
    from annotator_core.settings import Settings

    corpus = open_corpus(folder)
    assert corpus is not None
    for seg in corpus.segments:  # as the service's mapped scorer does: no page faults in the timed probes
        populate(seg.codes)
    rng = np.random.default_rng(7)
    rows = rng.choice(n, size=queries, replace=False)
    examples = [shot_id(int(r)) for r in rows]
    by_row = corpus.rows_of(examples)
    base = corpus.exact_vectors(by_row)
    noisy = base + rng.normal(scale=0.5 / np.sqrt(dim), size=base.shape).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    nearest = exact_neighbours(folder, base, 11)
    want_like = [[s for s in ids if s != ex][:10] for ids, ex in zip(nearest, examples, strict=True)]
    want_vector = exact_neighbours(folder, noisy, 10)
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
    lines = []
    settings = Settings()
    pool = ThreadPoolExecutor(max_workers=settings.corpus_threads)  # as the service's ShotSearch does
    for name, queries_, want, skip in (
        ("by example", base, want_like, by_row),
        ("by vector", noisy, want_vector, None),
    ):
        times, recalls = [], []
        for i, (q, truth) in enumerate(zip(queries_, want, strict=True)):
            t = time.perf_counter()
            rows, _ = nearest_rows(
                corpus, q, k=10, nprobes=settings.corpus_search_nprobes, rerank=settings.corpus_search_rerank,
                excluded=None if skip is None else skip[i : i + 1], pool=pool, threads=settings.corpus_threads,
            )  # fmt: skip
            times.append(time.perf_counter() - t)
            recalls.append(len(set(corpus.ids_of(rows)) & set(truth)) / len(truth))
        lines.append(
            f"{'search in-process, ' + name:34}{p50(times):10.1f}   p95 {np.percentile(times, 95) * 1000:.1f} ms, "
            f"recall@10 {np.mean(recalls):.3f} (corpus probe: {settings.corpus_search_nprobes} of "
            f"{corpus.partitions} partitions, {settings.corpus_threads} threads, "
            f"re-rank {settings.corpus_search_rerank})"
        )
    pool.shutdown()
    like = [lambda ex=ex: client.get("/api/search", params={"like": ex, "limit": 10}) for ex in examples]
    vector = [lambda v=v: client.post("/api/search/vector", json={"vector": v.tolist(), "limit": 10}) for v in noisy]
    for name, calls, want in (("by example", like, want_like), ("by vector", vector, want_vector)):
        calls[0]().raise_for_status()  # the first query opens the index
        times, recalls = [], []
        for call, truth in zip(calls, want, strict=True):
            t = time.perf_counter()
            r = call()
            times.append(time.perf_counter() - t)
            r.raise_for_status()
            got = {hit["shot_id"] for hit in r.json()["results"]}
            recalls.append(len(got & set(truth)) / len(truth))
        lines.append(
            f"{'search over HTTP, ' + name:34}{p50(times):10.1f}   p95 {np.percentile(times, 95) * 1000:.1f} ms, "
            f"recall@10 {np.mean(recalls):.3f} ({queries} queries)"
        )
    return lines


def start_ray_cluster(nodes: int) -> tuple[str, str]:
    """A local Ray cluster of ``nodes`` ``ray start`` processes sharing the cores; (address, temp folder)."""
    import re

    ray_bin = str(Path(sys.executable).parent / "ray")
    temp_dir = tempfile.mkdtemp(prefix="va-ray-", dir="/tmp")
    cpus = max(1, (os.cpu_count() or 1) // nodes)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VA_", "RAY_ADDRESS"))}
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # the driver joins with the cluster's mode
    common = ["--temp-dir", temp_dir, "--disable-usage-stats", "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}"]
    ports = [f"--{p}-port=0" for p in ("node-manager", "object-manager", "metrics-export", "dashboard-agent-listen",
                                       "dashboard-agent-grpc", "runtime-env-agent")]  # fmt: skip
    head = subprocess.run([ray_bin, "start", "--head", "--port=0", "--include-dashboard=false", *common, *ports],
                          env=env, capture_output=True, text=True, timeout=180)  # fmt: skip
    found = re.search(r"ray start --address='([^']+)'", head.stdout + head.stderr)
    if not found:
        raise RuntimeError(f"ray start --head failed:\n{head.stdout[-2000:]}\n{head.stderr[-2000:]}")
    address = found.group(1)
    for _ in range(nodes - 1):
        subprocess.run([ray_bin, "start", f"--address={address}", *common, *ports],
                       env=env, capture_output=True, text=True, timeout=180, check=True)  # fmt: skip
    return address, temp_dir


def stop_ray_cluster(temp_dir: str) -> None:
    """Stop exactly the processes of this cluster (never ``ray stop``, which ends every Ray here)."""
    import psutil

    procs = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(temp_dir in part for part in proc.info["cmdline"] or []):
                procs += [proc, *proc.children(recursive=True)]
        except psutil.Error:
            continue
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=10)
    for proc in alive:  # the GCS outlives a SIGTERM while its raylets go
        with contextlib.suppress(psutil.Error):
            proc.kill()
    shutil.rmtree(temp_dir, ignore_errors=True)


def run(n: int, args: argparse.Namespace) -> None:
    from annotator_core.corpus.files import sync_corpus
    from annotator_core.corpus.scorer import MappedScorer, ThreadShards
    from annotator_core.records import SHOTS_TABLE
    from annotator_core.settings import Settings
    from annotator_core.shot_store import ShotStore
    from annotator_core.store import AnnotationStore
    from annotator_core.workspace import LabelWorkspace
    from pipelines.index import ensure_key_indexes

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix=f"va-al-scale-{n}-"))
    settings = Settings(data_dir=data_dir, encoder="handcrafted", feed_size=FEED, corpus_scorer="mapped")
    log(f"== {n:,} shots × {args.dim} in {data_dir} (load average {os.getloadavg()[0]:.1f})")
    kind_file = data_dir / "corpus-kind"
    shots = ShotStore.from_settings(settings)
    t0 = time.perf_counter()
    if not shots.has_shots():
        truth = write_shots(settings, n, args.dim, kind=args.corpus)
        kind_file.write_text(args.corpus)
        ensure_key_indexes(shots.db.open_table(SHOTS_TABLE))
        token = label(settings, truth)
        del truth
    else:
        store = AnnotationStore.from_settings(settings)
        token = store.users.reset_token("bench")
    log(f"corpus in LanceDB in {time.perf_counter() - t0:.0f} s")
    t0 = time.perf_counter()
    corpus = sync_corpus(shots, settings.resolved_corpus_dir, progress=lambda line: None)
    log(f"compressed corpus: {corpus.n_rows:,} rows, {corpus.partitions} partitions, {time.perf_counter() - t0:.0f} s")
    if args.prepare_only:
        return

    store = AnnotationStore.from_settings(settings)
    results: dict[str, dict[str, Any]] = {}
    for prune in (True, False):
        scorer = MappedScorer(shots, settings.resolved_corpus_dir, runner=ThreadShards(shards=2, prune=prune))
        ws = LabelWorkspace("bench", shots=shots, store=store, settings=settings, scorer=scorer)
        ws.build(created_by="bench")
        runs = [ws.build(created_by="bench") for _ in range(args.builds)]
        results["pruned" if prune else "full scan"] = {
            "total": p50([r.timings["total"] for r in runs]),
            "parts": {k: p50([r.timings[k] for r in runs]) for k in runs[0].timings if not k.startswith("total")},
            "scoring": runs[-1].extra["scoring"],
            "result": runs[-1],
        }
    if n <= args.in_memory_up_to:  # the float32 path below VA_CORPUS_MAPPED_FROM, in the same run
        from annotator_core.corpus.scorer import InMemoryScorer

        ws = LabelWorkspace("bench", shots=shots, store=store, settings=settings, scorer=InMemoryScorer(shots))
        ws.build(created_by="bench")
        runs = [ws.build(created_by="bench") for _ in range(args.builds)]
        results["in memory (float32)"] = {
            "total": p50([r.timings["total"] for r in runs]),
            "parts": {k: p50([r.timings[k] for r in runs]) for k in runs[0].timings if not k.startswith("total")},
            "scoring": None,
            "result": runs[-1],
        }
        del ws
    exact = LabelWorkspace("bench", shots=shots, store=store, settings=settings, scorer=StreamingExact(shots))
    reference = exact.build(created_by="bench")
    clf = exact.classifier()

    kind = kind_file.read_text() if kind_file.exists() else "isotropic"  # folders written before --corpus
    print(
        f"\n{n:,} shots × {args.dim} ({kind} corpus), {N_LABELS} labels, feeds of {FEED} "
        f"(load average {os.getloadavg()[0]:.1f})"
    )
    print(f"{'':34}{'p50 ms':>10}")
    for name, r in results.items():
        s = r["scoring"]
        line = f"{'build in-process, ' + name:34}{r['total']:10.1f}   " + " ".join(
            f"{k} {v:.0f}" for k, v in r["parts"].items()
        )
        if s:
            line += f"   (scan {s['scan_s'] * 1000:.0f}, exact re-score {s['rescore_s'] * 1000:.0f})"
            line += f"   scored {s['rows_scored']:,}/{s['rows_total']:,} rows, {s['candidates']} candidates"
        print(line)
    if not args.skip_http:
        http = bench_http(data_dir, token, args.builds, args.workers, n=n, dim=args.dim, searches=args.searches)
        print(f"{'build over HTTP (' + str(args.workers) + ' workers)':34}{http['build_p50_ms']:10.1f}")
        for w in http["workers"]:
            print(f"  worker {w['pid']}: RSS {w['rss']:.2f} GB  PSS {w['pss']:.2f} GB  USS {w['uss']:.2f} GB")
        print(f"  workers together: PSS {sum(w['pss'] for w in http['workers']):.2f} GB")
        for line in http["search"]:
            print(line)

    print("fidelity against the exact float32 build (same labels):")
    for name, r in results.items():
        mapped = r["result"]
        row = []
        for feed in ("top_positive", "top_negative"):
            got = {i.shot_id for i in mapped.feeds[feed]}
            want = {i.shot_id for i in reference.feeds[feed]}
            row.append(f"{feed} recall@{FEED} {len(got & want) / max(len(want), 1):.3f}")
        worst = max(abs(i.score - 0.5) for i in mapped.feeds["borderline"])
        bound = max(abs(i.score - 0.5) for i in reference.feeds["borderline"])
        row.append(f"borderline max|p-0.5| {worst:.5f} (exact {bound:.5f}, allowed {bound + 0.01:.5f})")
        labelled = set(store.annotations.consensus("bench"))
        random_ids = [i.shot_id for i in mapped.feeds["random"]]
        row.append(f"random distinct unlabelled {len(set(random_ids) - labelled)}/{FEED}")
        # Quality thresholds its folds on a strided 2,048-row catalog sample (issue 13); the compressed corpus
        # orders rows by partition, so it samples other (equally uniform) rows than the table order does.
        quality_gap = abs(mapped.model_quality - reference.model_quality)
        row.append(f"diversity equal: {mapped.data_diversity == reference.data_diversity}")
        row.append(f"quality {mapped.model_quality:.4f} vs exact {reference.model_quality:.4f} (|Δ| {quality_gap:.4f})")
        print(f"  {name}: " + "; ".join(row))

    print("scoring kernel (the same rows, one core):")
    print(bench_kernels(settings.resolved_corpus_dir, clf.coef))
    if args.shards:
        where = "local Ray, one node" if args.ray_nodes < 2 else f"local Ray cluster of {args.ray_nodes} nodes"
        print(f"Ray shards ({where}):")
        for line in bench_ray(
            settings.resolved_corpus_dir, args.shards, clf.coef, clf.intercept, args.builds, nodes=args.ray_nodes
        ):
            print(line)
    if not args.keep and not args.data_dir:
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000], help="corpus sizes")
    parser.add_argument("--dim", type=int, default=512, help="vector width (CLIP ViT-B/32: 512)")
    parser.add_argument("--builds", type=int, default=5, help="timed builds per measurement")
    parser.add_argument("--workers", type=int, default=2, help="VA_WORKERS of the served run")
    parser.add_argument("--shards", type=int, nargs="*", default=[1, 2, 4], help="Ray actor counts (none: skip)")
    parser.add_argument("--skip-http", action="store_true", help="skip the va serve measurements")
    parser.add_argument("--searches", type=int, default=50, help="searches of each kind (0: none)")
    parser.add_argument("--ray-nodes", type=int, default=1, help="2+: the Ray shards on a local multi-node cluster")
    parser.add_argument(
        "--in-memory-up-to", type=int, default=2_000_000, help="also time the float32 in-memory build up to this N"
    )
    parser.add_argument(
        "--corpus",
        choices=("scenes", "isotropic"),
        default="scenes",
        help="synthetic vectors to write: scenes within titles within genres (like real shots), or the isotropic "
        "worst case (applies when the data folder is new)",
    )
    parser.add_argument("--prepare-only", action="store_true", help="write the data (and index) and stop")
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    parser.add_argument("--data-dir", default="", help="reuse (or create) this data folder; kept afterwards")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, numpy {np.__version__}, load average {os.getloadavg()[0]:.2f}")
    for n in args.sizes:
        run(n, args)


if __name__ == "__main__":
    main()
