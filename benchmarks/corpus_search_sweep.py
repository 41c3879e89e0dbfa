"""Recall@10 and latency of the corpus search by probes and re-score depth, in-process (issue 12).

The defaults (`VA_CORPUS_SEARCH_NPROBES`, `VA_CORPUS_SEARCH_RERANK`) were chosen from this table. It runs
on a data folder `al_scale.py --prepare-only` wrote, with the same queries as `al_scale.py`: 100 shots
(search by example, the shot itself left out) and noisy copies of them (search by vector), against exact
neighbours from a streamed pass over the float32 copy (cached beside the folder after the first run).

    .venv/bin/python benchmarks/corpus_search_sweep.py --data-dir /work/bench/al10m --probes 24 32 64 --rerank 0 20
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import al_scale

from annotator_core.corpus.files import open_corpus
from annotator_core.corpus.reads import populate
from annotator_core.corpus.search import nearest_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="a folder al_scale.py --prepare-only wrote")
    parser.add_argument("--queries", type=int, default=100, help="queries of each kind")
    parser.add_argument("--probes", type=int, nargs="+", default=[16, 24, 32, 64])
    parser.add_argument("--rerank", type=int, nargs="+", default=[0, 20])
    args = parser.parse_args()
    folder = Path(args.data_dir) / "corpus"
    corpus = open_corpus(folder)
    if corpus is None:
        sys.exit(f"no corpus in {folder}: run al_scale.py --prepare-only --data-dir {args.data_dir} first.")
    for seg in corpus.segments:
        populate(seg.codes)  # as the service does
    sizes = np.diff(np.asarray(corpus.segments[0].offsets))
    print(f"{corpus.n_rows:,} rows, {corpus.partitions} partitions of {sizes.min()}–{sizes.max()} rows "
          f"(median {int(np.median(sizes))}); load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    rng = np.random.default_rng(7)
    examples = [al_scale.shot_id(int(r)) for r in rng.choice(corpus.n_rows, size=args.queries, replace=False)]
    rows = corpus.rows_of(examples)
    base = corpus.exact_vectors(rows)
    noisy = base + rng.normal(scale=0.5 / np.sqrt(corpus.dim), size=base.shape).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    cache = Path(args.data_dir) / f"exact-neighbours-{args.queries}.npz"
    if cache.exists():
        saved = np.load(cache, allow_pickle=True)
        want_like, want_vector = list(saved["like"]), list(saved["vector"])
    else:
        started = time.perf_counter()
        nearest = al_scale.exact_neighbours(folder, np.concatenate([base, noisy]), 11)
        like = zip(nearest[: args.queries], examples, strict=True)
        want_like = [[s for s in ids if s != ex][:10] for ids, ex in like]
        want_vector = []
        for q, ids in zip(noisy, nearest[args.queries :], strict=True):
            sims = corpus.exact_vectors(corpus.rows_of(ids)) @ q
            want_vector.append([ids[j] for j in np.argsort(-sims)[:10]])
        np.savez(cache, like=np.array(want_like, dtype=object), vector=np.array(want_vector, dtype=object))
        print(f"exact neighbours in {time.perf_counter() - started:.0f} s")
    pool = ThreadPoolExecutor(2)
    print(f"{'probes':>6} {'re-score':>8}  {'by example':>26}  {'by vector':>26}")
    for rerank in args.rerank:
        for nprobes in args.probes:
            cells = []
            for queries, want, skip in ((base, want_like, rows), (noisy, want_vector, None)):
                times, recalls = [], []
                for i, q in enumerate(queries):
                    started = time.perf_counter()
                    found, _ = nearest_rows(
                        corpus, q, k=10, nprobes=nprobes, rerank=rerank, pool=pool, threads=2,
                        excluded=None if skip is None else skip[i : i + 1],
                    )  # fmt: skip
                    times.append(time.perf_counter() - started)
                    recalls.append(len(set(corpus.ids_of(found)) & set(want[i])) / 10)
                cells.append(f"p50 {np.median(times) * 1000:5.1f} ms, recall {np.mean(recalls):.3f}")
            print(f"{nprobes:>6} {rerank:>8}  {cells[0]:>26}  {cells[1]:>26}")


if __name__ == "__main__":
    main()
