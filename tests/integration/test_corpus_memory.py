"""Memory at 2M shots × 512: a worker scoring the mapped corpus keeps its private memory small.

The design (annotator_core/corpus/files.py) claims a worker's private memory is
its interpreter plus 4 bytes a shot of scores and a few thousand candidates; the
int8 codes (1 GB here) are file pages the page cache shares between workers (a
lone process's USS counts them, as no other process maps them yet, so the test
reads its anonymous memory from /proc/PID/smaps_rollup). The corpus files are written
directly (no ingest), then a fresh process maps them, runs a full unpruned scan
in two threads, and reports its memory (psutil ``memory_full_info``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from annotator_core.corpus.files import write_corpus
from annotator_core.corpus.partitions import fit_centroids

pytestmark = pytest.mark.slow
N, DIM, CHUNK = 2_000_000, 512, 100_000
MB = 1 << 20

SCAN = """
import json, sys, time
import numpy as np, psutil
from pathlib import Path
from annotator_core.corpus.files import open_corpus
from annotator_core.corpus.candidates import merge_candidates
from annotator_core.corpus.scorer import ThreadShards
from annotator_core.corpus.kernel import quantise_weights, score_codes
proc = psutil.Process()
# The scoring kernel loaded once (numba's compiled code comes from its cache), so the code's file pages are
# part of the baseline: shared libraries are file pages too, and the claim is about the corpus, not the code.
score_codes(np.zeros((4, 8), np.int8), *quantise_weights(np.ones(8)), 0.0, out=np.empty(4, np.float32))
BASE_ANON = next(int(l.split()[1]) * 1024 for l in open(f"/proc/{proc.pid}/smaps_rollup") if l.startswith("Anonymous:"))
BASE_FILE = proc.memory_info().rss - BASE_ANON
corpus = open_corpus(Path(sys.argv[1]))
rng = np.random.default_rng(0)
coef = rng.standard_normal(corpus.dim).astype(np.float32) * 0.5
labelled = corpus.rows_of([f"m:{i}" for i in range(0, 2_000_000, 2000)])
runner = ThreadShards(shards=2, prune=False)
started = time.perf_counter()
found = runner.candidates(corpus, coef=coef, intercept=0.0, size=50, labelled_rows=np.sort(labelled))
merged = merge_candidates(found, size=50)
seconds = time.perf_counter() - started
info = proc.memory_full_info()
def anonymous():
    # Anonymous pages are the process's own heap; mapped corpus pages are file pages the page cache shares.
    for line in open(f"/proc/{proc.pid}/smaps_rollup"):
        if line.startswith("Anonymous:"):
            return int(line.split()[1]) * 1024
print(json.dumps({"rss": info.rss, "uss": info.uss, "pss": info.pss, "anon": anonymous(), "base_anon": BASE_ANON,
                  "base_file": BASE_FILE,
                  "scanned": sum(c.rows_scored for c in found), "seconds": seconds,
                  "candidates": {k: int(v.shape[0]) for k, v in merged.items()}}))
"""


@pytest.fixture(scope="module")
def corpus_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus-2m")
    rng = np.random.default_rng(0)
    pool = rng.standard_normal((4096, DIM)).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        for start in range(0, N, CHUNK):
            idx = np.arange(start, start + CHUNK)
            ids = np.char.add(b"m:", idx.astype("S7"))
            yield ids, pool[(idx * 2654435761) % 4096], idx % 10, np.zeros((idx.shape[0], 2), np.float32)

    write_corpus(folder, batches, version=1, centroids=fit_centroids(pool, partitions=64))
    return folder


def test_a_worker_scanning_2m_shots_keeps_private_memory_within_the_design_bound(corpus_folder: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCAN, str(corpus_folder)], capture_output=True, text=True, timeout=240, check=True
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["scanned"] == N
    codes = N * DIM  # bytes of int8 codes, shared with every other process mapping them
    # Private (anonymous) memory: what the interpreter had, plus 4 bytes a shot of scores and slack for candidates.
    bound = report["base_anon"] + 4 * N + 64 * MB
    assert report["anon"] <= bound, f"anonymous {report['anon'] / MB:.0f} MB > bound {bound / MB:.0f} MB"
    # Resident: at most the mapped codes and ids (file pages, shared between workers) on top of that and of the
    # file pages the interpreter and its libraries had before the scan.
    assert report["rss"] <= report["anon"] + report["base_file"] + codes + 80 * N + 64 * MB
    assert all(n >= 50 for n in report["candidates"].values())
