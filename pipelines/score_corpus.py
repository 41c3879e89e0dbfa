"""Score every shot of the corpus with the published labels, as a Ray Data job, into LanceDB.

Reads the ``shots`` table (id, vector, encoder) with ``ray.data.read_lance``,
scores each batch in a :class:`LabelScorer` actor that fuses the published
classifiers of one encoder into one ONNX Runtime session (the graph the scoring
service runs), and merges ``scores`` rows (:class:`~annotator_core.records.ScoreRecord`)
through :meth:`ShotStore.upsert_scores`, keyed on ``(shot_id, label)``: a re-run
changes nothing, a newly published version overwrites its label's rows.

The published models come in as :class:`LabelModel` values: reading them from the
BentoML model store is the caller's job (``va score-corpus`` does it), so this job
depends on nothing but the core library and Ray.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import ray

from annotator_core.classifier import Classifier
from annotator_core.errors import NotFoundError, ValidationFailed
from annotator_core.onnx_session import fused_session
from annotator_core.records import SHOTS_TABLE, scores_schema
from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore
from pipelines.ray_session import ray_session


@dataclass(frozen=True)
class ScoreCorpusSummary:
    labels: list[str]
    versions: dict[str, int]
    shots: int
    rows: int
    seconds: float


@dataclass(frozen=True)
class LabelModel:
    """What an actor needs to score one label: plain values, cheap to ship to Ray workers."""

    label: str
    version: int
    tag: str
    encoder: str
    dim: int
    classifier_bytes: bytes


class LabelScorer:
    """Ray Data UDF: scores a batch of shots for every label trained on the batch's encoder."""

    def __init__(self, models: Sequence[LabelModel]) -> None:
        self.groups: dict[str, tuple[list[LabelModel], Any]] = {}
        for encoder in sorted({m.encoder for m in models}):
            members = [m for m in models if m.encoder == encoder]
            session = fused_session({m.label: Classifier.from_bytes(m.classifier_bytes) for m in members}, threads=1)
            self.groups[encoder] = (members, session)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids, encoders = batch["shot_id"], batch["encoder"]
        vectors = _as_matrix(batch["vector"])
        out: dict[str, list[Any]] = {name: [] for name in scores_schema().names}
        for encoder, (members, session) in self.groups.items():
            rows = np.flatnonzero(encoders == encoder)
            if rows.size == 0:
                continue
            scores = session.run(["scores"], {"embeddings": vectors[rows]})[0]
            for j, model in enumerate(members):
                out["shot_id"].extend(ids[rows].tolist())
                out["label"].extend([model.label] * rows.size)
                out["version"].extend([model.version] * rows.size)
                out["score"].extend(scores[:, j].tolist())
                out["model_tag"].extend([model.tag] * rows.size)
        return {
            "shot_id": np.asarray(out["shot_id"], dtype=object),
            "label": np.asarray(out["label"], dtype=object),
            "version": np.asarray(out["version"], dtype=np.int64),
            "score": np.asarray(out["score"], dtype=np.float32),
            "model_tag": np.asarray(out["model_tag"], dtype=object),
        }


def _as_matrix(column: Any) -> np.ndarray:
    arr = np.asarray(column)
    if arr.dtype == object:
        arr = np.stack([np.asarray(v, dtype=np.float32) for v in arr])
    return np.ascontiguousarray(arr, dtype=np.float32)


def run_score_corpus(
    models: Sequence[LabelModel],
    *,
    settings: Settings,
    address: str | None = None,
    batch_size: int = 4096,
    progress: Callable[[int, int], None] | None = None,
) -> ScoreCorpusSummary:
    """Score every shot with the published ``models`` and merge the rows into ``scores``.

    Uses the Ray already running in this process, else starts one (local unless ``address``) and
    shuts it down on every way out, signals included.
    """
    started = time.perf_counter()
    if not models:
        raise NotFoundError("no label is published yet; run `va publish LABEL` first.")
    # Ray starts (forking its processes) before LanceDB's runtime does in this process.
    with ray_session(address or settings.ray_address or None):
        store = ShotStore.from_settings(settings)
        if not store.has_shots():
            raise NotFoundError(f"no shots table in {store.uri}; run `va ingest PATH` first.")
        shots_uri = store.db.open_table(SHOTS_TABLE).to_lance().uri
        bad = [m for m in models if m.dim != store.dim()]
        if bad:
            raise ValidationFailed(
                f"label {bad[0].label!r} expects {bad[0].dim}-d vectors but the shots table holds "
                f"{store.dim()}-d ones; publish labels built on this corpus."
            )
        total = int(store.counts()["shots"])
        dataset = ray.data.read_lance(
            shots_uri, columns=["shot_id", "vector", "encoder"], storage_options=settings.storage_options or None
        )
        scored = dataset.map_batches(
            LabelScorer,
            fn_constructor_kwargs={"models": models},
            batch_size=batch_size,
            batch_format="numpy",
            concurrency=1,
        )
        rows = done = 0
        for batch in scored.iter_batches(batch_size=max(batch_size * len(models), 65_536), batch_format="pyarrow"):
            chunk = pa.table(batch)
            store.upsert_scores(chunk)
            rows += chunk.num_rows
            done = min(total, rows // max(1, len(models)))
            if progress is not None:
                progress(done, total)
    return ScoreCorpusSummary(
        labels=[m.label for m in models],
        versions={m.label: m.version for m in models},
        shots=total,
        rows=rows,
        seconds=time.perf_counter() - started,
    )
