"""Score every shot of the corpus with the published labels, as a Ray Data job, into LanceDB.

Reads the ``shots`` table (id, vector, encoder) with ``ray.data.read_lance``,
scores each batch in a :class:`LabelScorer` actor that fuses the published
classifiers of one encoder into one ONNX Runtime session (the graph the scoring
service runs), and merges ``scores`` rows (:class:`~annotator_core.records.ScoreRecord`)
through :meth:`ShotStore.upsert_scores`, keyed on ``(shot_id, label)``.

It scores only what is missing or stale (:func:`plan_scoring`): a shot with no row for a
label, or a row from another version than the one published now. So a re-run after an
ingest reads and writes only the new shots, and publishing a new version of a label
rescores that label once (its old rows stay, with their old version, until replaced).

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
import pyarrow.compute as pc
import ray

from annotator_core.classifier import Classifier
from annotator_core.errors import NotFoundError, ValidationFailed
from annotator_core.onnx_session import fused_session
from annotator_core.records import SHOTS_TABLE, scores_schema
from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore, sql_in
from pipelines.ray_session import ray_session

# Up to this many shots to score, the read of ``shots`` is filtered by id in Lance (reads only them);
# past it, the whole table is read and the scorer drops the shots with nothing to do.
ID_FILTER_MAX = 50_000


@dataclass(frozen=True)
class ScoreCorpusSummary:
    labels: list[str]
    versions: dict[str, int]
    shots: int  # shots in the table
    rows: int  # score rows written
    seconds: float
    scored: int = 0  # shots read and scored for at least one label
    skipped: int = 0  # shots already scored with every label's published version
    missing: dict[str, int] | None = None  # per label: shots that had no score for it
    stale: dict[str, int] | None = None  # per label: shots whose score came from another version


@dataclass(frozen=True)
class ScoringPlan:
    """Which shots each label must score: those with no row for it or a row of another version."""

    shots: int
    wanted: dict[str, pa.Array | None]  # label -> shot ids to score; None: every shot
    missing: dict[str, int]
    stale: dict[str, int]
    todo: pa.Array | None  # the union of ``wanted``: None when some label needs every shot

    @property
    def scored(self) -> int:
        return self.shots if self.todo is None else len(self.todo)

    @property
    def skipped(self) -> int:
        return self.shots - self.scored


@dataclass(frozen=True)
class LabelModel:
    """What an actor needs to score one label: plain values, cheap to ship to Ray workers."""

    label: str
    version: int
    tag: str
    encoder: str
    dim: int
    classifier_bytes: bytes


def plan_scoring(store: ShotStore, models: Sequence[LabelModel]) -> ScoringPlan:
    """Compare the ``scores`` table with the published ``models``: per label, the shots to (re)score."""
    ids = store.db.open_table(SHOTS_TABLE).to_lance().to_table(columns=["shot_id"]).column("shot_id")
    ids = ids.combine_chunks() if ids.num_chunks else pa.array([], pa.string())
    wanted: dict[str, pa.Array | None] = {}
    missing: dict[str, int] = {}
    stale: dict[str, int] = {}
    for model in models:
        rows = store.read_scores(label=model.label, columns=["shot_id", "version"])
        current = rows.filter(pc.equal(rows.column("version"), model.version)).column("shot_id")
        old = rows.filter(pc.not_equal(rows.column("version"), model.version)).column("shot_id")
        need = pc.invert(pc.is_in(ids, value_set=current.combine_chunks().cast(ids.type)))
        is_old = pc.is_in(ids, value_set=old.combine_chunks().cast(ids.type))
        todo = ids.filter(need)
        stale[model.label] = int(pc.sum(pc.and_(need, is_old)).as_py() or 0)
        missing[model.label] = len(todo) - stale[model.label]
        wanted[model.label] = None if len(todo) == len(ids) else todo
    if not wanted or any(w is None for w in wanted.values()):
        union: pa.Array | None = None
    else:
        union = pc.unique(pa.chunked_array([w for w in wanted.values() if w is not None], type=ids.type))
        union = union.combine_chunks() if isinstance(union, pa.ChunkedArray) else union
    return ScoringPlan(shots=len(ids), wanted=wanted, missing=missing, stale=stale, todo=union)


class LabelScorer:
    """Ray Data UDF: scores a batch of shots for every label trained on the batch's encoder.

    ``wanted`` (label -> shot ids, None for all) limits each label's rows to the shots it must
    (re)score; a shot no label wants is dropped before the model runs.
    """

    def __init__(self, models: Sequence[LabelModel], wanted: dict[str, pa.Array | None] | None = None) -> None:
        self.wanted = wanted or {}
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
            keep = {m.label: self._wants(m.label, ids[rows]) for m in members}
            if rows.size and not all(k is None for k in keep.values()):
                any_kept = np.zeros(rows.size, dtype=bool)
                for k in keep.values():
                    any_kept |= True if k is None else k
                rows = rows[any_kept]
                keep = {lbl: None if k is None else k[any_kept] for lbl, k in keep.items()}
            if rows.size == 0:
                continue
            scores = session.run(["scores"], {"embeddings": vectors[rows]})[0]
            for j, model in enumerate(members):
                mine = keep[model.label]
                pick = np.arange(rows.size) if mine is None else np.flatnonzero(mine)
                out["shot_id"].extend(ids[rows[pick]].tolist())
                out["label"].extend([model.label] * pick.size)
                out["version"].extend([model.version] * pick.size)
                out["score"].extend(scores[pick, j].tolist())
                out["model_tag"].extend([model.tag] * pick.size)
        return {
            "shot_id": np.asarray(out["shot_id"], dtype=object),
            "label": np.asarray(out["label"], dtype=object),
            "version": np.asarray(out["version"], dtype=np.int64),
            "score": np.asarray(out["score"], dtype=np.float32),
            "model_tag": np.asarray(out["model_tag"], dtype=object),
        }

    def _wants(self, label: str, ids: np.ndarray) -> np.ndarray | None:
        """Mask of ``ids`` that ``label`` must score; None when it scores every shot."""
        wanted = self.wanted.get(label)
        if wanted is None:
            return None
        return pc.is_in(pa.array(ids.tolist(), type=wanted.type), value_set=wanted).to_numpy(zero_copy_only=False)


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
    """Score the shots that miss a score of the published ``models`` (or hold one of another version)
    and merge the rows into ``scores``; shots already scored with every label's version are not read.

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
        plan = plan_scoring(store, models)
        total = plan.scored
        rows = done = 0
        if total == 0:
            return _summary(models, plan, rows, started)
        id_filter = (
            sql_in("shot_id", plan.todo.to_pylist()) if plan.todo is not None and total <= ID_FILTER_MAX else None
        )
        dataset = ray.data.read_lance(
            shots_uri,
            columns=["shot_id", "vector", "encoder"],
            filter=id_filter,
            storage_options=settings.storage_options or None,
        )
        scored = dataset.map_batches(
            LabelScorer,
            fn_constructor_kwargs={"models": models, "wanted": plan.wanted},
            batch_size=batch_size,
            batch_format="numpy",
            concurrency=1,
        )
        for batch in scored.iter_batches(batch_size=max(batch_size * len(models), 65_536), batch_format="pyarrow"):
            chunk = pa.table(batch)
            if chunk.num_rows == 0:
                continue
            store.upsert_scores(chunk)
            rows += chunk.num_rows
            done = min(total, done + int(pc.count_distinct(chunk.column("shot_id")).as_py()))
            if progress is not None:
                progress(done, total)
    return _summary(models, plan, rows, started)


def _summary(models: Sequence[LabelModel], plan: ScoringPlan, rows: int, started: float) -> ScoreCorpusSummary:
    return ScoreCorpusSummary(
        labels=[m.label for m in models],
        versions={m.label: m.version for m in models},
        shots=plan.shots,
        rows=rows,
        seconds=time.perf_counter() - started,
        scored=plan.scored,
        skipped=plan.skipped,
        missing=plan.missing,
        stale=plan.stale,
    )
