"""Score every shot of the corpus with the published labels, as a Ray Data job, into LanceDB.

Reads the ``shots`` table (id, vector, encoder) with ``ray.data.read_lance``,
scores each batch in a :class:`LabelScorer` actor that fuses the published
classifiers of one encoder into one ONNX Runtime session (the graph the scoring
service runs), and writes ``scores`` rows ``(shot_id, label, version, score,
model_tag)`` with a ``merge_insert`` keyed on ``(shot_id, label)``: a re-run
changes nothing, a newly published version overwrites its label's rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from annotator_core.errors import NotFoundError, ValidationFailed
from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore

SCORES_TABLE = "scores"
SCORES_SCHEMA = pa.schema(
    [
        pa.field("shot_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        pa.field("score", pa.float32(), nullable=False),
        pa.field("model_tag", pa.string(), nullable=False),
    ]
)


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
        from annotator_core.classifier import Classifier
        from annotator_core.export import to_onnx
        from serving.scoring.models import _session

        self.groups: dict[str, tuple[list[LabelModel], Any]] = {}
        for encoder in sorted({m.encoder for m in models}):
            members = [m for m in models if m.encoder == encoder]
            graph = to_onnx({m.label: Classifier.from_bytes(m.classifier_bytes) for m in members})
            self.groups[encoder] = (members, _session(graph, threads=1))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids, encoders = batch["shot_id"], batch["encoder"]
        vectors = _as_matrix(batch["vector"])
        out: dict[str, list[Any]] = {name: [] for name in SCORES_SCHEMA.names}
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


def published_models(settings: Settings, labels: Sequence[str] | None = None) -> list[LabelModel]:
    """The models the scoring service would serve (latest or pinned), optionally only ``labels``."""
    from serving.scoring.models import load_serving_set

    served = load_serving_set(Path(settings.resolved_model_store) / "models", pins=settings.scoring_pins)
    if labels:
        unknown = [lbl for lbl in labels if lbl not in served.models]
        if unknown:
            raise NotFoundError(
                f"label {unknown[0]!r} has no published model that loads (published: {sorted(served.models)}); "
                "run `va publish LABEL` first."
            )
    chosen = [served.models[lbl] for lbl in (labels or sorted(served.models))]
    if not chosen:
        raise NotFoundError("no label is published yet; run `va publish LABEL` first.")
    return [LabelModel(m.label, m.version, m.tag, m.encoder, m.dim, m.classifier.to_bytes()) for m in chosen]


def run_score_corpus(
    labels: Sequence[str] | None = None,
    *,
    settings: Settings,
    address: str | None = None,
    batch_size: int = 4096,
    progress: Callable[[int, int], None] | None = None,
) -> ScoreCorpusSummary:
    """Score every shot for the published ``labels`` (all when None) and merge the rows into ``scores``."""
    import ray

    started = time.perf_counter()
    models = published_models(settings, labels)
    store = ShotStore.from_settings(settings)
    if not store.has_shots():
        raise NotFoundError(f"no shots table in {store.uri}; run `va ingest PATH` first.")
    shots_uri = store.db.open_table("shots").to_lance().uri
    bad = [m for m in models if m.dim != store.dim()]
    if bad:
        raise ValidationFailed(
            f"label {bad[0].label!r} expects {bad[0].dim}-d vectors but the shots table holds "
            f"{store.dim()}-d ones; publish labels built on this corpus."
        )
    total = int(store.counts()["shots"])
    if not ray.is_initialized():
        ray.init(address=address or settings.ray_address or None, include_dashboard=False, log_to_driver=False)
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
    table = _scores_table(store)
    rows = done = 0
    for batch in scored.iter_batches(batch_size=max(batch_size * len(models), 65_536), batch_format="pyarrow"):
        chunk = pa.table(batch).select(SCORES_SCHEMA.names).cast(SCORES_SCHEMA)
        if chunk.num_rows:
            table.merge_insert(["shot_id", "label"]).when_matched_update_all().when_not_matched_insert_all().execute(
                chunk
            )
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


def _scores_table(store: ShotStore) -> Any:
    if SCORES_TABLE in store.table_names():
        return store.db.open_table(SCORES_TABLE)
    return store.db.create_table(SCORES_TABLE, schema=SCORES_SCHEMA, exist_ok=True)


def read_scores(store: ShotStore, *, label: str | None = None) -> pa.Table:
    """The ``scores`` rows (optionally of one label), for analytics and tests."""
    table = store.db.open_table(SCORES_TABLE)
    query = table.search()
    if label is not None:
        query = query.where(f"label = '{label.replace(chr(39), chr(39) * 2)}'")
    return query.limit(max(1, int(table.count_rows()))).to_arrow()
