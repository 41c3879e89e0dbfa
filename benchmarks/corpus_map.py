"""The corpus map's layout library (issue 15 part 4): PaCMAP, UMAP and openTSNE on the same vectors.

For each data set it fits each library on up to ``--n`` rows, places ``--place``
further rows with the library's own ``transform`` (what ingest does past the fit
sample), and prints side by side:

- fit seconds and placement rate (rows/s);
- kNN preservation: the share of each query row's 10 nearest neighbours in the
  vector space (cosine, exact) that are also among its 10 nearest in the 2-D map,
  over ``--queries`` random rows against all fitted rows;
- trustworthiness (scikit-learn, k=10) on a random subsample of 3,000 rows;
- for the data sets with classes, 10-NN class agreement in the map (how well a
  lasso around a region picks one kind of shot).

Data sets: ``synthetic`` (``--n`` unit vectors of 512 dims around 50 centres
with varied spreads), ``fashion-mnist`` (the 70,000 real product photos of the
Debian package, pixels scaled and L2-normalised) and ``demo`` (the shot
vectors of a ``va demo`` LanceDB folder given by ``--demo-lancedb``; a few
dozen shots, so only a smoke check). The machine's load average is printed
with the figures: figures taken under load are not figures.

    .venv/bin/pip install pacmap openTSNE      # the two contenders; umap-learn is a project dependency
    .venv/bin/python benchmarks/corpus_map.py --n 100000
    .venv/bin/python benchmarks/corpus_map.py --n 20000 --libraries umap --datasets synthetic   # a quick look
"""

from __future__ import annotations

import argparse
import gzip
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.manifold import trustworthiness

FASHION = Path("/usr/share/datasets/fashion-mnist")
K = 10


def synthetic(n: int, *, dim: int = 512, centres: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    labels = rng.integers(0, centres, n)
    spread = rng.uniform(0.02, 0.06, centres).astype(np.float32)
    x = c[labels] + rng.standard_normal((n, dim)).astype(np.float32) * spread[labels, None]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels


def fashion_mnist() -> tuple[np.ndarray, np.ndarray]:
    parts = []
    labels = []
    for prefix in ("train", "t10k"):
        with gzip.open(FASHION / f"{prefix}-images-idx3-ubyte.gz") as f:
            parts.append(np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784))
        with gzip.open(FASHION / f"{prefix}-labels-idx1-ubyte.gz") as f:
            labels.append(np.frombuffer(f.read(), np.uint8, offset=8))
    x = np.concatenate(parts).astype(np.float32) / 255.0
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)
    return x, np.concatenate(labels).astype(np.int64)


def demo(uri: str) -> tuple[np.ndarray, None]:
    from annotator_core.shot_store import ShotStore

    return ShotStore(uri).vectors().matrix, None


def knn_rows(base: np.ndarray, queries: np.ndarray, k: int, *, cosine: bool) -> np.ndarray:
    out = np.empty((len(queries), k), np.int64)
    for s in range(0, len(queries), 500):
        q = queries[s : s + 500]
        d = -(q @ base.T) if cosine else (q * q).sum(1)[:, None] - 2 * q @ base.T + (base * base).sum(1)[None, :]
        part = np.argpartition(d, k + 1, axis=1)[:, : k + 1]
        order = np.take_along_axis(d, part, 1).argsort(1)
        out[s : s + 500] = np.take_along_axis(part, order, 1)[:, 1 : k + 1]  # drop the row itself
    return out


def quality(x: np.ndarray, y2: np.ndarray, classes: np.ndarray | None, *, queries: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    q = rng.choice(len(x), min(queries, len(x)), replace=False)
    high = knn_rows(x, x[q], K, cosine=True)
    low = knn_rows(y2.astype(np.float64), y2[q].astype(np.float64), K, cosine=False)
    kept = np.mean([len(set(h) & set(lo)) / K for h, lo in zip(high, low, strict=True)])
    sub = rng.choice(len(x), min(3000, len(x)), replace=False)
    out = {
        "knn_kept": float(kept),
        "trust": float(trustworthiness(x[sub], y2[sub], n_neighbors=min(K, len(sub) // 3), metric="cosine")),
    }
    if classes is not None:
        out["class_agree"] = float(np.mean(classes[low] == classes[q][:, None]))
    return out


def make(library: str, seed: int) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """(fit_transform, transform) of one library, each taking float32 rows."""
    if library == "umap":
        import umap

        model: Any = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=seed, low_memory=True)
        return model.fit_transform, model.transform
    if library == "pacmap":
        import pacmap

        model = pacmap.PaCMAP(n_components=2, n_neighbors=10, random_state=seed, save_tree=True)
        return (lambda x: model.fit_transform(x, init="pca")), (lambda x: model.transform(x))
    if library == "opentsne":
        import openTSNE

        holder: dict[str, Any] = {}

        def fit(x: np.ndarray) -> np.ndarray:
            holder["e"] = openTSNE.TSNE(n_jobs=os.cpu_count() or 1, random_state=seed, metric="cosine").fit(x)
            return np.asarray(holder["e"])

        return fit, (lambda x: np.asarray(holder["e"].transform(x)))
    raise SystemExit(f"unknown library {library!r}; use umap, pacmap or opentsne")


def run(name: str, x: np.ndarray, classes: np.ndarray | None, args: argparse.Namespace) -> None:
    n = min(args.n, len(x) - (args.place if len(x) > args.place * 4 else 0))
    fit_x, fit_c = x[:n], None if classes is None else classes[:n]
    rest = x[n : n + args.place]
    print(f"\n== {name}: fit {n:,} x {x.shape[1]}, place {len(rest):,}; load {os.getloadavg()}")
    print(f"{'library':>9} {'fit s':>8} {'place/s':>9} {'kNN kept':>9} {'trust':>7} {'class 10-NN':>11}")
    for library in args.libraries:
        fit, transform = make(library, args.seed)
        t0 = time.perf_counter()
        y2 = np.asarray(fit(fit_x), np.float32)
        fit_s = time.perf_counter() - t0
        rate = float("nan")
        if len(rest):
            t0 = time.perf_counter()
            transform(rest)
            rate = len(rest) / (time.perf_counter() - t0)
        q = quality(fit_x, y2, fit_c, queries=args.queries, seed=args.seed)
        agree = f"{q['class_agree']:.3f}" if "class_agree" in q else "-"
        print(f"{library:>9} {fit_s:8.1f} {rate:9.0f} {q['knn_kept']:9.3f} {q['trust']:7.3f} {agree:>11}", flush=True)
    print(f"load after {name}: {os.getloadavg()}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100_000, help="rows fitted per data set")
    p.add_argument("--place", type=int, default=10_000, help="further rows placed with transform")
    p.add_argument("--queries", type=int, default=2000, help="rows whose neighbours are compared")
    p.add_argument("--libraries", nargs="+", default=["pacmap", "umap", "opentsne"])
    p.add_argument("--datasets", nargs="+", default=["synthetic", "fashion-mnist", "demo"])
    p.add_argument("--demo-lancedb", default="", help="LanceDB folder of a `va demo` data dir (…/va-data/lancedb)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()}")
    for name in args.datasets:
        if name == "synthetic":
            x, c = synthetic(args.n + args.place, seed=args.seed)
            run(name, x, c, args)
        elif name == "fashion-mnist" and FASHION.exists():
            x, c = fashion_mnist()
            run(name, x, c, args)
        elif name == "demo" and args.demo_lancedb:
            run(name, demo(args.demo_lancedb)[0], None, args)
        else:
            print(f"\n== {name}: skipped (no data; see --help)")


if __name__ == "__main__":
    main()
