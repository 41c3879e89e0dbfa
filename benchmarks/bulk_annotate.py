"""How fast a CSV import's rows reach the annotation store: AnnotationLog.annotate_many vs one annotate per row.

Usage: python -m benchmarks.bulk_annotate [--rows 50000] [--url sqlite:///…|postgresql+psycopg://…] [--single 2000]

Writes two labels with fresh names into the database given (use a throwaway one). Three runs on
a fresh label: new annotations, the same file again (every row a repeat), and every value flipped
(every row an update). The issue 11 target is >= 5,000 rows/s on SQLite.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from annotator_core.store import AnnotationStore

TARGET_ROWS_PER_S = 5_000


def _timed(what: str, rows: int, work) -> float:
    started = time.perf_counter()
    outcome = work()
    elapsed = time.perf_counter() - started
    rate = rows / elapsed
    print(f"{what:<34} {rows:>7,} rows  {elapsed:7.2f} s  {rate:>9,.0f} rows/s  {outcome}")
    return rate


def run(url: str, rows: int, single: int) -> dict[str, float]:
    store = AnnotationStore(url)
    suffix = uuid.uuid4().hex[:8]
    bulk_label, single_label = f"bulk-bench-{suffix}", f"single-bench-{suffix}"
    store.labels.create(bulk_label)
    store.labels.create(single_label)
    items = [(f"video-{i // 40:05d}:{(i % 40) * 24}", i % 3 == 0) for i in range(rows)]
    flipped = [(sid, not value) for sid, value in items]
    bulk = store.annotations.annotate_many
    rates = {
        "insert": _timed("annotate_many, new rows", rows, lambda: bulk(bulk_label, "ana", items, source="import")),
        "repeat": _timed("annotate_many, same file again", rows, lambda: bulk(bulk_label, "ana", items)),
        "update": _timed("annotate_many, every value flipped", rows, lambda: bulk(bulk_label, "ana", flipped)),
    }

    def one_by_one() -> str:
        for sid, value in items[:single]:
            store.annotations.annotate(single_label, sid, "ana", value, source="import")
        return "one transaction per row"

    rates["single"] = _timed("annotate, one row at a time", single, one_by_one)
    store.db.close()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000, help="rows in the import")
    parser.add_argument("--single", type=int, default=2_000, help="rows written one at a time, for comparison")
    parser.add_argument("--url", default="", help="database URL (default: SQLite in a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        print(f"database: {url.split('@')[-1]}")
        rates = run(url, args.rows, args.single)
    slowest = min(rates["insert"], rates["update"])
    verdict = "meets" if slowest >= TARGET_ROWS_PER_S else "misses"
    print(f"slowest bulk run {slowest:,.0f} rows/s: {verdict} the {TARGET_ROWS_PER_S:,} rows/s target")


if __name__ == "__main__":
    main()
