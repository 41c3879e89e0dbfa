"""Search latency and recall: LanceDB as configured (``ensure_index`` + ``ShotStore.search``) vs exact search.

Synthetic shot vectors shaped like real embeddings rather than uniform noise:
unit vectors around a shared mean direction, grouped in topics, each topic in
scenes (mixture of Gaussians on the sphere, cluster sizes skewed). Queries are
fresh draws from the same mixture (a new shot searched by example), the same
pushed away by noise (like a text query), and midpoints of two shots.

    .venv/bin/python benchmarks/search_latency.py --rows 1000000 --rows 100000

prints, per table size: index build time, p50/p95 latency and recall@10 of
LanceDB as configured, of LanceDB without the index (a few queries), and of
exact numpy search over the in-memory matrix.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from annotator_core.records import SHOTS_TABLE, shots_schema
from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore
from pipelines.index import ensure_index

K = 10
LATENCY_QUERIES = 20


def mixture(n: int, dim: int, *, seed: int, topics: int = 64, scenes: int = 4096, spec_seed: int = 0) -> np.ndarray:
    """``n`` unit vectors from a fixed (by ``spec_seed``) topic/scene mixture; ``seed`` picks the draws."""
    chunks = mixture_chunks(n, dim, seed=seed, topics=topics, scenes=scenes, spec_seed=spec_seed)
    return np.concatenate([x for _, x, _ in chunks]) if n else np.empty((0, dim), np.float32)


def mixture_chunks(
    n: int, dim: int, *, seed: int, topics: int = 64, scenes: int = 4096, spec_seed: int = 0, chunk: int = 100_000
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """:func:`mixture` as (first row, vectors, topic of each), ``chunk`` rows at a time (bounded memory at 10M)."""
    spec = np.random.default_rng(spec_seed)
    mean = spec.standard_normal(dim).astype(np.float32)
    mean /= np.linalg.norm(mean)
    topic_centres = spec.standard_normal((topics, dim)).astype(np.float32) / np.sqrt(dim)
    scene_topic = spec.integers(0, topics, scenes)
    scene_centres = topic_centres[scene_topic] + 0.7 * spec.standard_normal((scenes, dim)).astype(np.float32) / np.sqrt(
        dim
    )
    scene_weight = spec.zipf(1.3, scenes).astype(np.float64).clip(max=1000)
    scene_weight /= scene_weight.sum()
    scene_spread = spec.uniform(0.35, 0.8, scenes).astype(np.float32)
    rng = np.random.default_rng(seed)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        scene = rng.choice(scenes, m, p=scene_weight)
        noise = rng.standard_normal((m, dim), dtype=np.float32) / np.sqrt(dim)
        x = 1.0 * mean + scene_centres[scene] + scene_spread[scene, None] * noise
        yield start, (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), scene_topic[scene]


def fill(store: ShotStore, vectors: np.ndarray) -> None:
    dim = vectors.shape[1]
    schema = shots_schema(dim)

    def batches():
        for start in range(0, len(vectors), 100_000):
            chunk = vectors[start : start + 100_000]
            m = len(chunk)
            ids = np.arange(start, start + m)
            yield pa.RecordBatch.from_pydict(
                {
                    "shot_id": [f"v{i // 50}:{i % 50}" for i in ids],
                    "video_id": [f"v{i // 50}" for i in ids],
                    "start_frame": ids % 50,
                    "end_frame": ids % 50 + 1,
                    "start_s": (ids % 50).astype(np.float64),
                    "end_s": (ids % 50 + 1).astype(np.float64),
                    "thumbnail": [b""] * m,
                    "cluster_id": np.full(m, -1),
                    "encoder": ["synthetic"] * m,
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(chunk.ravel()), dim),
                },
                schema=schema,
            )

    store.db.create_table(SHOTS_TABLE, data=pa.RecordBatchReader.from_batches(schema, batches()), mode="overwrite")


def exact_top(matrix: np.ndarray, query: np.ndarray, k: int = K) -> np.ndarray:
    scores = matrix @ query
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top])]


def shot_row(shot_id: str) -> int:
    video, frame = shot_id[1:].split(":")
    return int(video) * 50 + int(frame)


def percentiles(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def run(
    rows: int, *, dim: int, queries: int, settings: Settings, folder: Path, sweep: list[tuple[int, int]]
) -> list[dict]:
    t = time.perf_counter()
    vectors = mixture(rows, dim, seed=1)
    # Three kinds of query: "example" (a new shot, searched by example), "far" (the same pushed off by
    # noise: nearest cosine ~0.4, like a text query) and "between" (the midpoint of two shots of
    # different scenes, whose neighbours lie in two places of the catalog, often in different partitions).
    n_kind = queries // 3
    near = mixture(n_kind, dim, seed=2)
    noise = np.random.default_rng(3).standard_normal((n_kind, dim)).astype(np.float32) / np.sqrt(dim)
    far = mixture(n_kind, dim, seed=4) + 2.0 * noise
    far /= np.linalg.norm(far, axis=1, keepdims=True)
    between = mixture(n_kind, dim, seed=5) + mixture(n_kind, dim, seed=6)
    between /= np.linalg.norm(between, axis=1, keepdims=True)
    query_sets = {"example": near, "far": far, "between": between}
    gen_s = time.perf_counter() - t
    store = ShotStore(str(folder / f"lancedb-{rows}"))
    t = time.perf_counter()
    fill(store, vectors)
    write_s = time.perf_counter() - t
    print(f"# {rows:,} x {dim}: generated in {gen_s:.1f} s, written in {write_s:.1f} s", flush=True)

    # Ground truth in batches; single-query latency of exact search on the first LATENCY_QUERIES.
    truth: dict[str, list[np.ndarray]] = {}
    for kind, qs in query_sets.items():
        scores = np.concatenate([vectors[i : i + 200_000] @ qs.T for i in range(0, rows, 200_000)])
        top = np.argpartition(-scores, K, axis=0)[:K].T
        truth[kind] = [t[np.argsort(-scores[t, j])] for j, t in enumerate(top)]
    exact_ms: list[float] = []
    for q in near[:LATENCY_QUERIES]:
        t = time.perf_counter()
        exact_top(vectors, q)
        exact_ms.append((time.perf_counter() - t) * 1000)
    nearest = {
        kind: float(np.mean([vectors[tr[0]] @ q for tr, q in zip(truth[kind], qs, strict=True)]))
        for kind, qs in query_sets.items()
    }
    print(f"# mean cosine of the nearest shot: {nearest}", flush=True)

    report = ensure_index(store, settings=settings)
    print(
        f"# index: {report.action} {report.index_type} partitions={report.partitions} in {report.seconds:.1f} s",
        flush=True,
    )
    results = []

    def measure(name: str, n_queries: int, search) -> None:
        for kind, qs in query_sets.items():
            ms, recalls = [], []
            for q, true in zip(qs[:n_queries], truth[kind][:n_queries], strict=True):
                t = time.perf_counter()
                hits = search(q)
                ms.append((time.perf_counter() - t) * 1000)
                found = {shot_row(h.shot_id) for h in hits}
                recalls.append(len(found & set(true.tolist())) / K)
            p50, p95 = percentiles(ms)
            results.append(
                {
                    "rows": rows,
                    "method": name,
                    "queries": f"{len(ms)} {kind}",
                    "p50": p50,
                    "p95": p95,
                    "recall": np.mean(recalls),
                }
            )
            print(results[-1], flush=True)

    store.search(near[0], k=K)  # open the index once (cold-cache cost is not per query)
    for nprobes, refine in sweep:
        store.nprobes, store.refine_factor = nprobes, refine
        label = (
            f"lancedb {report.index_type}/{report.partitions} nprobes={nprobes} refine={refine}"
            if report.action != "exact"
            else "lancedb exact (below threshold)"
        )
        measure(label, queries, lambda q: store.search(q, k=K))
        if report.action == "exact":
            break
    if report.action != "exact":
        table = store.db.open_table(SHOTS_TABLE)

        def unindexed(q):
            rows_ = table.search(q).distance_type("cosine").bypass_vector_index().select(["shot_id"]).limit(K)
            return [_Hit(r["shot_id"]) for r in rows_.to_list()]

        measure("lancedb without index", 3, unindexed)
    p50, p95 = percentiles(exact_ms)
    results.append(
        {
            "rows": rows,
            "method": "numpy exact (in memory)",
            "queries": f"{len(exact_ms)} example",
            "p50": p50,
            "p95": p95,
            "recall": 1.0,
        }
    )
    results.append(
        {
            "rows": rows,
            "method": "index build",
            "queries": "",
            "p50": report.seconds,
            "p95": 0.0,
            "recall": float("nan"),
        }
    )
    return results


class _Hit:
    def __init__(self, shot_id: str) -> None:
        self.shot_id = shot_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="table sizes (repeatable); default 1M and 100k")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--index-type", default=None, help="override VA_INDEX_TYPE")
    parser.add_argument("--nprobes", type=int, default=None)
    parser.add_argument("--refine-factor", type=int, default=None)
    parser.add_argument("--partitions", type=int, default=None)
    parser.add_argument("--dir", default=None, help="where the tables go (default: a temporary folder)")
    parser.add_argument(
        "--sweep", default=None, help="query settings to compare on one index, e.g. 16:4,32:4 (nprobes:refine)"
    )
    args = parser.parse_args()
    overrides = {
        "index_type": args.index_type,
        "search_nprobes": args.nprobes,
        "search_refine_factor": args.refine_factor,
        "index_partitions": args.partitions,
    }
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    rows_list = args.rows or [1_000_000, 100_000]
    sweep = [(settings.search_nprobes, settings.search_refine_factor)]
    if args.sweep:
        sweep = [(int(a), int(b)) for a, b in (pair.split(":") for pair in args.sweep.split(","))]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        results = []
        for rows in rows_list:
            results += run(rows, dim=args.dim, queries=args.queries, settings=settings, folder=Path(tmp), sweep=sweep)
    print()
    print(f"| rows | method | queries | p50 ms | p95 ms | recall@{K} |")
    print("|---:|---|---:|---:|---:|---:|")
    for r in results:
        if r["method"] == "index build":
            print(f"| {r['rows']:,} | index build | | {r['p50']:.1f} s | | |")
        else:
            print(
                f"| {r['rows']:,} | {r['method']} | {r['queries']} | {r['p50']:.1f} | {r['p95']:.1f} | "
                f"{r['recall']:.3f} |"
            )


if __name__ == "__main__":
    main()
