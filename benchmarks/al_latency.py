"""Latency of one active-learning build, ours against the paper's released-code approach.

Synthetic L2-normalised 512-d vectors (the CLIP ViT-B/32 width) at 100k and 1M
shots, 1,000 labelled shots. For each corpus size, in the same process and on
the same arrays:

- **ours**: the pure functions a build calls — ``train`` (L-BFGS logistic
  regression, scikit-learn's objective), ``model_quality`` (stratified 2-fold
  CV repeated 4 times at 1,000 labels, at the same C, each fold decided at the share of a 2,048-row strided
  catalog sample the trained model flags, each fold started from the trained
  model), scoring every shot in one float32 pass (``score_matrix``, the
  in-memory scorer's scan), ``build_feeds`` (linear-time selection),
  ``data_diversity`` (counts of the precomputed ingest clusters) and the UCB
  recommendation. As in ``LabelWorkspace.build``, the scan and the feeds run
  on a thread beside the quality CV, diversity and recommendation; "total" is
  the build's wall time, "parts one after another" the sum of its parts.
- **paper**: scikit-learn ``LogisticRegressionCV`` (10 Cs × 5 folds, balanced
  accuracy, quality read from its fold scores) per build, ``predict_proba`` over
  the corpus, and a full ``argsort`` of the scores for the feeds.

Then one full ``LabelWorkspace.build`` over real stores (LanceDB + SQLite in a
temporary folder) at ``--store-shots`` shots shows what the stores add.

    .venv/bin/python benchmarks/al_latency.py            # 100k and 1M, about 3 minutes on 2 cores
    .venv/bin/python benchmarks/al_latency.py --sizes 100000 1000000 5000000
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from annotator_core.classifier import Classifier, train, unit_mean
from annotator_core.corpus.scorer import score_matrix, strided_rows
from annotator_core.feeds import build_feeds
from annotator_core.metrics import QUALITY_FOLDS, REFERENCE_ROWS, data_diversity, model_quality
from annotator_core.recommend import make_recommender
from annotator_core.settings import Settings

DIM = 512
N_CLUSTERS = 10
C = float(Settings.model_fields["classifier_c"].default)  # what a build uses unless configured


def unit_vectors(n: int, *, seed: int, chunk: int = 250_000) -> np.ndarray:
    """``n`` random unit vectors with a little shared structure, float32, made in chunks to bound memory."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((N_CLUSTERS, DIM), dtype=np.float32)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        block = out[start:stop]
        rng.standard_normal(block.shape, dtype=np.float32, out=block)
        block += 0.5 * centres[rng.integers(N_CLUSTERS, size=stop - start)]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
    return out


def labelled_set(matrix: np.ndarray, n_labels: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and labels of a concept (a random direction plus noise), about half positive."""
    rng = np.random.default_rng(seed + 1)
    rows = rng.choice(matrix.shape[0], size=n_labels, replace=False)
    direction = rng.standard_normal(DIM).astype(np.float32)
    margin = matrix[rows] @ direction + rng.normal(scale=0.3, size=n_labels).astype(np.float32)
    return rows, margin > np.median(margin)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def with_cpu(build: Callable[[], dict[str, float]]) -> dict[str, float]:
    """Run one build; add its CPU seconds (all threads), which other processes' load does not inflate."""
    cpu = time.process_time()
    t = build()
    t["total CPU s (all threads)"] = time.process_time() - cpu
    return t


def ours(matrix: np.ndarray, clusters: np.ndarray, rows: np.ndarray, y: np.ndarray, seed: int) -> dict[str, float]:
    t: dict[str, float] = {}
    x = matrix[rows]
    centre = unit_mean(x)  # as a build does: centred on the labelled rows' own mean
    t["train"], clf = timed(lambda: train(x, y, seed=seed, C=C, centre=centre))

    def scan() -> tuple[float, float]:
        score_s, scores = timed(lambda: score_matrix(matrix, clf))
        feeds_s, _ = timed(lambda: build_feeds(scores, labelled=rows, size=50, seed=seed))
        return score_s, feeds_s

    # As LabelWorkspace.build does: the corpus scan runs on a thread while the quality CV, the diversity and
    # the recommender (which need only the labelled rows) run on this one; the build waits for the scan last.
    overlapped = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="va-scan") as pool:
        scanning = pool.submit(scan)
        t["quality CV"], _ = timed(lambda: build_quality(matrix, x, y, clf, centre, seed, folds=QUALITY_FOLDS))
        labelled_clusters = clusters[rows]
        t["diversity"], _ = timed(lambda: data_diversity(labelled_clusters[y], labelled_clusters[~y], k=N_CLUSTERS))
        rec = make_recommender("ucb")
        t["recommend"], _ = timed(lambda: (rec.update({"random": 0.01}), rec.recommend()))
        t["scan wait"], (t["score corpus"], t["feeds"]) = timed(scanning.result)
    t["total"] = t["train"] + time.perf_counter() - overlapped
    parts = ("train", "quality CV", "score corpus", "feeds", "diversity", "recommend")
    t["parts one after another"] = sum(t[p] for p in parts)
    return t


def build_quality(
    matrix: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    clf: Classifier,
    centre: np.ndarray,
    seed: int,
    *,
    folds: int,
    repeats: int | None = None,
) -> float:
    """The quality estimate as a build makes it: each fold decided at the build model's share of a strided
    catalog sample, started from the build's model, and scored on the labels not from the borderline feed
    (here every third label is)."""
    reference = matrix[strided_rows(matrix.shape[0], REFERENCE_ROWS)]
    return model_quality(
        x,
        y,
        folds=folds,
        repeats=repeats,
        seed=seed,
        C=C,
        centre=centre,
        threshold="corpus",
        warm_start=clf,
        reference=reference,
        evaluate=np.arange(len(y)) % 3 != 0,
    )


def quality_before(matrix: np.ndarray, rows: np.ndarray, y: np.ndarray, seed: int) -> float:
    """Seconds of the quality estimate as builds made it until 2026-12-07 05:00 UTC: the paper's five folds,
    one split at 1,000 labels (now two folds, four splits); the same catalog share, warm start and mask."""
    x = matrix[rows]
    centre = unit_mean(x)
    clf = train(x, y, seed=seed, C=C, centre=centre)
    seconds, _ = timed(lambda: build_quality(matrix, x, y, clf, centre, seed, folds=5, repeats=1))
    return seconds


def paper(matrix: np.ndarray, clusters: np.ndarray, rows: np.ndarray, y: np.ndarray, seed: int) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegressionCV

    t: dict[str, float] = {}
    x = matrix[rows]
    model = LogisticRegressionCV(Cs=10, cv=5, scoring="balanced_accuracy", max_iter=1000, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t["train + quality CV"], _ = timed(lambda: model.fit(x, y))
    best = int(np.argmax(model.scores_[True].mean(axis=0)))
    _quality = float(np.percentile(model.scores_[True][:, best], 25))
    t["score corpus"], proba = timed(lambda: model.predict_proba(matrix)[:, 1])

    def sorted_feeds() -> None:
        order = np.argsort(proba)  # full sort of the corpus for every feed
        unlabelled = np.ones(proba.shape[0], dtype=bool)
        unlabelled[rows] = False
        _top, _bottom = order[::-1][:50], order[:50]
        border = np.argsort(np.abs(proba - 0.5))
        _border = border[unlabelled[border]][:50]
        _random = np.random.default_rng(seed).permutation(np.flatnonzero(unlabelled))[:50]

    t["feeds"], _ = timed(sorted_feeds)
    labelled_clusters = clusters[rows]
    t["diversity"], _ = timed(lambda: data_diversity(labelled_clusters[y], labelled_clusters[~y], k=N_CLUSTERS))
    t["total"] = sum(t.values())
    return t


def summarise(runs: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    out = {}
    for part in runs[0]:
        values = sorted(r[part] for r in runs)
        p95 = values[min(len(values) - 1, int(np.ceil(0.95 * len(values))) - 1)]
        out[part] = (statistics.median(values), p95)
    return out


def print_table(title: str, summary: dict[str, tuple[float, float]]) -> None:
    print(f"  {title}")
    for part, (median, p95) in summary.items():
        print(f"    {part:<20} median {median * 1000:9.1f} ms   p95 {p95 * 1000:9.1f} ms")


def bench_pure(n: int, n_labels: int, repeats: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    matrix = unit_vectors(n, seed=n)
    clusters = np.random.default_rng(n).integers(N_CLUSTERS, size=n)
    rows, y = labelled_set(matrix, n_labels, seed=n)
    print(
        f"\n{n:,} shots × {DIM}, {n_labels:,} labels ({int(y.sum())} positive); "
        f"made in {time.perf_counter() - t0:.1f} s"
    )
    ours(matrix, clusters, rows, y, 0)  # warm-up: imports, thread pools, page faults
    paper(matrix, clusters, rows, y, 0)
    ours_runs, paper_runs = [], []
    for i in range(repeats):  # interleaved, so load from other processes hits both alike
        ours_runs.append(with_cpu(lambda: ours(matrix, clusters, rows, y, i)))  # noqa: B023
        # side by side, outside the build's total and CPU: the quality CV on the paper's five folds
        ours_runs[-1]["quality CV (before)"] = quality_before(matrix, rows, y, i)
        paper_runs.append(with_cpu(lambda: paper(matrix, clusters, rows, y, i)))  # noqa: B023
    a, b = summarise(ours_runs), summarise(paper_runs)
    print_table(f"ours ({repeats} builds)", a)
    print_table(f"paper code approach ({repeats} builds)", b)
    ratio = b["total"][0] / a["total"][0]
    print(f"  => median build {a['total'][0] * 1000:.0f} ms vs {b['total'][0] * 1000:.0f} ms: {ratio:.1f}x faster")
    return a["total"][0], b["total"][0]


def bench_store(n: int, n_labels: int, repeats: int) -> None:
    """One LabelWorkspace.build over real LanceDB + SQLite stores in a temporary folder."""
    import pyarrow as pa

    from annotator_core.records import shots_schema
    from annotator_core.shot_store import ShotStore
    from annotator_core.store import AnnotationStore
    from annotator_core.workspace import LabelWorkspace

    matrix = unit_vectors(n, seed=7)
    rows, y = labelled_set(matrix, n_labels, seed=7)
    with tempfile.TemporaryDirectory(prefix="va-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        shots = ShotStore.from_settings(settings)
        ids = [f"bench:{i}" for i in range(n)]
        t0 = time.perf_counter()
        schema = shots_schema(DIM)
        table = pa.table(
            {
                "shot_id": ids,
                "video_id": ["bench"] * n,
                "start_frame": np.arange(n),
                "end_frame": np.arange(n) + 1,
                "start_s": np.arange(n, dtype=np.float64),
                "end_s": np.arange(n, dtype=np.float64) + 1,
                "thumbnail": [b""] * n,
                "cluster_id": np.random.default_rng(0).integers(N_CLUSTERS, size=n),
                "encoder": ["synthetic"] * n,
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), DIM),
            }
        ).cast(schema)
        shots.upsert_shots(table)
        annotations = AnnotationStore.from_settings(settings)
        annotations.labels.create("bench")
        for r, v in zip(rows.tolist(), y.tolist(), strict=True):
            annotations.annotations.annotate("bench", ids[r], "bench", v, source="random")
        print(f"\nstores at {n:,} shots, {n_labels:,} annotations written in {time.perf_counter() - t0:.1f} s ({tmp})")
        ws = LabelWorkspace("bench", shots=shots, store=annotations, settings=settings)
        runs = []
        for i in range(repeats + 1):
            result = ws.build(created_by="bench")
            if i == 0:
                cold = result.timings
                continue
            runs.append({k: v for k, v in result.timings.items() if k != "total_before_save"})
        print(
            f"  first build (vector matrix read from LanceDB): {cold['total'] * 1000:.0f} ms "
            f"(vectors {cold['vectors'] * 1000:.0f} ms)"
        )
        print_table(f"LabelWorkspace.build, warm ({repeats} builds)", summarise(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="corpus sizes")
    parser.add_argument("--labels", type=int, default=1000, help="labelled shots per build")
    parser.add_argument("--repeats", type=int, default=9, help="builds timed per size and approach")
    parser.add_argument("--store-shots", type=int, default=100_000, help="shots in the real-store run (0: skip)")
    args = parser.parse_args()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    for n in args.sizes:
        bench_pure(n, args.labels, args.repeats)
    if args.store_shots:
        bench_store(args.store_shots, args.labels, args.repeats)


if __name__ == "__main__":
    main()
