"""What the service's near-duplicate groups cost: memory of :class:`DuplicateGroups` and the time to load and use it.

Synthetic ``duplicates`` rows shaped like a catalog's (32-hex video ids, ``VIDEO:FRAME`` shot ids), ``--rows``
grouped shots in groups of ``--group-size``. Prints the load average: figures taken under load are not figures.

    .venv/bin/python benchmarks/duplicate_groups.py --rows 3000000 --group-size 3
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pyarrow as pa

from annotator_core.duplicates import DuplicateGroups


def rows(n: int, group_size: int) -> pa.Table:
    rng = np.random.default_rng(0)
    videos = [f"{v:032x}" for v in rng.integers(0, 2**63, size=max(1, n // 500))]
    ids = [f"{videos[i % len(videos)]}:{25 * (i // len(videos))}" for i in range(n)]
    heads = [ids[i - i % group_size] for i in range(n)]
    return pa.table({"shot_id": ids, "group_id": heads})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--group-size", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    table = rows(args.rows, args.group_size)
    started = time.perf_counter()
    groups = DuplicateGroups.from_table(table, version=1)
    loaded = time.perf_counter() - started
    some = [str(s) for s in table.column("shot_id").to_pylist()[:: max(1, args.rows // 10_000)]]
    started = time.perf_counter()
    keys = groups.fold_groups(some)
    folded = time.perf_counter() - started
    started = time.perf_counter()
    hidden = groups.hidden_ids()
    listed = time.perf_counter() - started
    started = time.perf_counter()
    for sid in some[:200]:
        groups.members(groups.group_of(sid))
    members = (time.perf_counter() - started) / 200
    print(f"grouped shots {len(groups):,} in {groups.n_groups:,} groups; hidden {len(hidden):,}")
    print(f"memory {groups.nbytes() / 2**20:.1f} MiB ({groups.nbytes() / max(1, len(groups)):.0f} B a grouped shot)")
    print(f"load (from_table, once per table version) {loaded:.2f} s")
    print(f"fold_groups of {len(keys):,} labelled shots {1000 * folded:.1f} ms")
    print(f"hidden_ids (one build's exclusions) {1000 * listed:.0f} ms; a group's members {1e6 * members:.0f} us")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
