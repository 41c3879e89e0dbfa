"""How far to trust model quality when few labels came from a random sample (issue 13; the caveat's evidence).

A build's quality score cross-validates on the labelled shots only. Labels found
by search cover shots like the query, so on them a model that finds nothing
elsewhere in the catalog can still score well. This replays labels an annotator
finds by search with ``k`` random shots among them, on the tasks of
``sample_efficiency.py`` (Fashion-MNIST, its zero-shot proxy as the search, the
same seeds): for each label, run, prevalence and n, the labelled set is the top
n − k of the search ranking and k shots of the task's random order. At every
point a build shows (≥ 10 positives and 10 negatives) it records the test AP of
what a build trains and the quality a build shows, and prints, by the share k / n
of random labels, how often the model is useless (test AP < 0.1) and what the
score read there. The annotation UI's caveat threshold
(``annotator_core.metrics.MIN_SAMPLE_SHARE``) is taken from this table.

    .venv/bin/python benchmarks/quality_caveat.py                       # 6 runs, ~3 min on 2 cores
    .venv/bin/python benchmarks/quality_caveat.py --bootstraps 1 --labels 0 6 --prevalence 0.02   # smoke
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sample_efficiency as se  # the sibling benchmark: its tasks, seeds and build

from annotator_core.metrics import MIN_SAMPLE_SHARE

RANDOM_COUNTS = (0, 2, 5, 10, 20, 40)
SHARE_BINS = ((0.0, 0.0), (0.0, 0.02), (0.02, 0.05), (0.05, 0.1), (0.1, 0.2), (0.2, 0.5))
SHOWN_MIN = se.MIN_EACH  # a build needs this many of each class, so smaller sets never show a score


def search_with_random(task: se.Task, n: int, k: int) -> np.ndarray:
    """The top n − k of the search ranking and the first k shots of the random order not among them."""
    if not 0 <= k <= n:
        raise ValueError(f"k must be within 0..n, got k={k}, n={n}")
    searched = task.search[: n - k]
    taken = set(searched.tolist())
    extra = [int(r) for r in task.random if int(r) not in taken][:k]
    return np.concatenate([searched, np.asarray(extra, dtype=searched.dtype)])


def replay(task: se.Task, seed: int) -> list[tuple[int, int, float, float]]:
    """(n, k, test AP, quality shown) at every (n, k) a build would show."""
    out = []
    for n in se.SIZES:
        for k in RANDOM_COUNTS:
            if k > n // 2:
                continue
            rows = search_with_random(task, n, k)
            y = task.truth[rows]
            pos = int(y.sum())
            if pos < SHOWN_MIN or n - pos < SHOWN_MIN:
                continue
            x = task.corpus[rows]
            logits = se.fit(x, y).decision_function(task.test_x, normalised=True)
            quality = se.shown_quality(x, y, task, seed, ["search"] * (n - k) + ["random"] * k).value
            out.append((n, k, float(average_precision_score(task.test_y, logits)), quality))
    return out


def in_bin(share: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return share == 0.0 if hi == 0.0 else (share > lo) & (share <= hi)


def report(points: np.ndarray, prevalences: list[float]) -> None:
    """points: rows of (prevalence, n, k, test AP, quality)."""
    prevalence, n, k, ap, quality = points.T
    share, useless = k / n, ap < se.USELESS_AP
    print(f"\nPoints a build shows (≥ {SHOWN_MIN} + {SHOWN_MIN}), by the share of labels from a random sample:")
    print(f"useless = test AP < {se.USELESS_AP}; the score shown there: median (10th–90th percentile)")
    header = "".join(f" | {p:>5.1%}: useless (points)" for p in prevalences)
    print(f"{'random share':<14} | all: useless (points) | score shown at useless{header}")
    for lo, hi in SHARE_BINS:
        m = in_bin(share, lo, hi)
        name = "0" if hi == 0.0 else f"({lo:.0%}, {hi:.0%}]"
        scores = quality[m & useless]
        shown = (
            f"{np.median(scores):.2f} ({np.percentile(scores, 10):.2f}–{np.percentile(scores, 90):.2f})"
            if scores.size
            else "—"
        )
        cells = "".join(
            f" | {useless[m & (prevalence == p)].mean():>12.0%} ({int((m & (prevalence == p)).sum()):>4})"
            if (m & (prevalence == p)).any()
            else f" | {'—':>19}"
            for p in prevalences
        )
        print(f"{name:<14} | {useless[m].mean():>12.0%} ({int(m.sum()):>5}) | {shown:<22}{cells}")
    below = share < MIN_SAMPLE_SHARE
    print(
        f"\nThe UI's caveat (annotator_core.metrics.MIN_SAMPLE_SHARE = {MIN_SAMPLE_SHARE:.0%}): below it "
        f"{useless[below].mean():.0%} of {int(below.sum())} points useless; at or above it "
        f"{useless[~below].mean():.0%} of {int((~below).sum())}."
    )
    print("\nBy n and random labels k (useless share, points):")
    print(f"{'n':>5} " + "".join(f"| k={kk:<12}" for kk in RANDOM_COUNTS))
    for size in se.SIZES:
        cells = []
        for kk in RANDOM_COUNTS:
            m = (n == size) & (k == kk)
            cells.append(f"| {useless[m].mean():>4.0%} ({int(m.sum()):>4})   " if m.any() else f"| {'—':<14}")
        print(f"{size:>5} " + "".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    se.add_task_arguments(parser, bootstraps=6)
    args = parser.parse_args()
    started = time.perf_counter()
    pool = se.task_pool(args)
    rows = []
    for prevalence in args.prevalence:
        for label in args.labels:
            for b in range(args.bootstraps):
                task = se.make_task(pool, label, b, prevalence, zs_examples=args.zs_examples, zs_noise=args.zs_noise)
                rows += [(prevalence, *point) for point in replay(task, b)]
        print(f"  prevalence {prevalence:.1%} done at {time.perf_counter() - started:.0f} s")
    print(
        f"{args.data} pool {len(pool.corpus_x) + len(pool.test_x):,}, {se.features_name(args.components, pool)}, "
        f"{args.bootstraps} runs × {len(args.labels)} labels; "
        f"search = sample_efficiency's zero-shot proxy; k random labels of {RANDOM_COUNTS} among n of {se.SIZES}"
    )
    report(np.asarray(rows, dtype=np.float64), args.prevalence)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
