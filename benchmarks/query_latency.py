"""Latency of the label query routes (issue 15) over HTTP at catalog size: 1M shots x 10 labels.

Writes a synthetic catalog into LanceDB in a temporary folder (``--shots`` shots in titles of
``--per-title`` shots, ``--labels`` labels each with a score for every shot, version 1), adds the
scalar indexes the routes read with, starts ``va serve-scoring`` on it and times, one connection,
keep-alive, each request's wall time:

- ``top100``: ``POST /v1/query/shots`` ``{"labels": [L], "top_k": 100}``, L cycling over the labels;
- ``top100 page 2``: the same query's second page (``cursor``), ``limit`` 100, ``top_k`` 1000;
- ``threshold in title``: ``{"labels": [L], "threshold": 0.5, "titles": [T]}``;
- ``all of 3 labels``: ``{"labels": [L1, L2, L3], "mode": "all", "top_k": 100}``;
- ``timeline``: ``GET /v1/videos/{id}/timeline`` with every label (``--per-title`` shots x 10 scores);
- ``/livez``: BentoML's own probe, the floor any route over HTTP pays here.

Prints p50/p95 per request kind, the first request's time (the in-memory index is read then), the
worker's RSS and the load average before and after, since figures taken on a loaded machine are not figures.

    .venv/bin/python benchmarks/query_latency.py                  # 1M x 10, about 3 minutes on 2 cores
    .venv/bin/python benchmarks/query_latency.py --shots 100000   # a smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "integration" / "scoring"))
DIM = 16  # the routes never read vectors; the shots table only needs its column


def fingerprint(i: int) -> str:
    return hashlib.sha1(str(i).encode()).hexdigest()[:32]


def fill(data_dir: Path, *, shots: int, per_title: int, labels: int) -> list[str]:
    """The catalog: videos, shots and scores tables; returns the video ids."""
    from annotator_core.records import SCORES_TABLE, SHOTS_TABLE, VideoRecord, scores_schema, shots_schema
    from annotator_core.settings import Settings
    from annotator_core.shot_store import ShotStore
    from serving.scoring.score_index import ensure_score_indexes

    store = ShotStore.from_settings(Settings(data_dir=data_dir))
    titles = -(-shots // per_title)
    video_ids = [fingerprint(t) for t in range(titles)]
    store.upsert_videos(
        [
            VideoRecord(video_id=v, uri=f"/catalog/{v}.mp4", title=f"Title {t:06d}", n_shots=per_title).model_dump()
            for t, v in enumerate(video_ids)
        ]
    )
    schema = shots_schema(DIM)
    rng = np.random.default_rng(0)

    def shot_batches():
        for start in range(0, shots, 100_000):
            ids = np.arange(start, min(shots, start + 100_000))
            m = len(ids)
            t, k = ids // per_title, ids % per_title
            frame = k * 100
            yield pa.RecordBatch.from_pydict(
                {
                    "shot_id": [f"{video_ids[a]}:{b}" for a, b in zip(t.tolist(), frame.tolist(), strict=True)],
                    "video_id": [video_ids[a] for a in t.tolist()],
                    "start_frame": frame,
                    "end_frame": frame + 100,
                    "start_s": frame / 25.0,
                    "end_s": (frame + 100) / 25.0,
                    "thumbnail": [b""] * m,
                    "cluster_id": np.full(m, -1),
                    "encoder": ["synthetic"] * m,
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(m * DIM, np.float32)), DIM),
                },
                schema=schema,
            )

    store.db.create_table(SHOTS_TABLE, data=pa.RecordBatchReader.from_batches(schema, shot_batches()), mode="overwrite")
    sschema = scores_schema()

    def score_batches():
        for j in range(labels):
            for start in range(0, shots, 200_000):
                ids = np.arange(start, min(shots, start + 200_000))
                t, k = ids // per_title, ids % per_title
                yield pa.RecordBatch.from_pydict(
                    {
                        "shot_id": [f"{video_ids[a]}:{b * 100}" for a, b in zip(t.tolist(), k.tolist(), strict=True)],
                        "label": [f"label-{j:02d}"] * len(ids),
                        "version": np.ones(len(ids), dtype=np.int64),
                        "score": rng.beta(0.5, 2.0, len(ids)).astype(np.float32),
                        "model_tag": [f"label-{j:02d}:v1"] * len(ids),
                    },
                    schema=sschema,
                )

    store.db.create_table(
        SCORES_TABLE, data=pa.RecordBatchReader.from_batches(sschema, score_batches()), mode="overwrite"
    )
    print("indexed:", ", ".join(ensure_score_indexes(store)), flush=True)
    return video_ids


def timed(conn: http.client.HTTPConnection, method: str, path: str, body: dict | None = None) -> tuple[float, dict]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    t0 = time.perf_counter()
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    elapsed = time.perf_counter() - t0
    if resp.status != 200:
        raise RuntimeError(f"{method} {path} answered {resp.status}: {raw[:500]!r}")
    return elapsed, json.loads(raw) if resp.getheader("content-type", "").startswith("application/json") else {}


def p50_p95(samples: list[float]) -> str:
    ms = np.array(samples) * 1e3
    return f"p50 {np.percentile(ms, 50):7.2f} ms   p95 {np.percentile(ms, 95):7.2f} ms   (n={len(ms)})"


def rss_mb(pid: int) -> float:
    """The largest RSS among the server's process and its descendants (the worker holds the index)."""
    parent: dict[int, int] = {}
    rss: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parent[int(entry.name)] = int(stat[1])
            rss[int(entry.name)] = int((entry / "statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
        except (OSError, ValueError, IndexError):
            continue

    def under(p: int) -> bool:
        while p > 1:
            if p == pid:
                return True
            p = parent.get(p, 0)
        return False

    return max((mb for p, mb in rss.items() if under(p)), default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shots", type=int, default=1_000_000)
    parser.add_argument("--per-title", type=int, default=1000)
    parser.add_argument("--labels", type=int, default=10)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    from scoring_support import start_server, stop_server

    print(f"load average before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="va-query-bench-") as tmp:
        data_dir = Path(tmp) / "va-data"
        t0 = time.perf_counter()
        video_ids = fill(data_dir, shots=args.shots, per_title=args.per_title, labels=args.labels)
        print(
            f"catalog: {args.shots} shots x {args.labels} labels, {len(video_ids)} titles, "
            f"written in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        server = start_server(data_dir, Path(tmp) / "serve.log")
        try:
            port = int(server.url.rsplit(":", 1)[1])
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            first, _ = timed(conn, "POST", "/v1/query/shots", {"labels": ["label-00"], "top_k": 100})
            print(f"first query (reads the index): {first:.2f} s; worker RSS {rss_mb(server.process.pid):.0f} MB")
            rng = np.random.default_rng(1)
            labels = [f"label-{j:02d}" for j in range(args.labels)]
            kinds: dict[str, list[float]] = {}
            for i in range(args.requests):
                label = labels[i % len(labels)]
                title = int(rng.integers(len(video_ids)))
                elapsed, body = timed(conn, "POST", "/v1/query/shots", {"labels": [label], "top_k": 100})
                assert len(body["shots"]) == 100
                kinds.setdefault("top100 of one label", []).append(elapsed)
                query = {"labels": [label], "top_k": 1000, "limit": 100}
                _, page = timed(conn, "POST", "/v1/query/shots", query)
                elapsed, _ = timed(conn, "POST", "/v1/query/shots", query | {"cursor": page["next_cursor"]})
                kinds.setdefault("top100 page 2 (cursor)", []).append(elapsed)
                query = {"labels": [label], "threshold": 0.5, "titles": [f"Title {title:06d}"], "limit": 1000}
                elapsed, _ = timed(conn, "POST", "/v1/query/shots", query)
                kinds.setdefault("threshold 0.5 in one title", []).append(elapsed)
                three = [labels[(i + d) % len(labels)] for d in range(3)]
                elapsed, _ = timed(conn, "POST", "/v1/query/shots", {"labels": three, "mode": "all", "top_k": 100})
                kinds.setdefault("top100, all of 3 labels", []).append(elapsed)
                elapsed, body = timed(conn, "GET", f"/v1/videos/{video_ids[title]}/timeline")
                assert len(body["shot_ids"]) == min(args.per_title, args.shots) and len(body["labels"]) == args.labels
                kinds.setdefault(f"timeline ({args.per_title} shots x {args.labels} labels)", []).append(elapsed)
                elapsed, _ = timed(conn, "GET", "/livez")
                kinds.setdefault("/livez (the HTTP floor)", []).append(elapsed)
            for name, samples in kinds.items():
                print(f"{name:40s} {p50_p95(samples)}")
            print(f"worker RSS after: {rss_mb(server.process.pid):.0f} MB")
        finally:
            stop_server(server.process)
    print(f"load average after: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
