"""The published models a scoring service serves, loaded from the BentoML model store.

For every label the newest published model (or the one pinned in
``VA_SCORING_PINS``) is read, checked (its ONNX graph loads, its metadata
names the label, encoder and dimension, and it scores a probe batch like the
classifier it was exported from) and then all labels of one encoder are fused
into ONE ONNX Runtime session: a single [N, dim] x [dim, n_labels] product
scores every label at once.

A model that fails a check is logged with its tag, path and the reason, and
its label is not served; the service reports not-ready until every label has a
model. On a reload a label whose new model fails keeps the model it was
serving. :meth:`ModelRegistry.refresh` notices new publishes by a cheap
fingerprint of the store folder (names, versions, file times).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annotator_core.errors import NotFoundError, first_line
from annotator_core.onnx_session import fused_session, onnx_session
from annotator_core.settings import Settings
from serving.http_errors import ApiError
from serving.model_store import CLASSIFIER_FILE, MODEL_FILE, VA_LABEL_KEY

log = logging.getLogger("va.scoring")

# Per-label graph vs classifier, and fused graph vs per-label graphs, on a probe batch.
LOAD_TOLERANCE = 1e-5


@dataclass(frozen=True)
class ServedModel:
    label: str
    tag: str
    version: int
    encoder: str
    dim: int
    created_at: str
    metadata: dict[str, Any]
    classifier: Any  # annotator_core.classifier.Classifier

    def describe(self) -> dict[str, Any]:
        keep = ("model_quality", "data_diversity", "n_pos", "n_neg", "snapshot_event_id")
        return {
            "label": self.label,
            "version": self.version,
            "tag": self.tag,
            "encoder": self.encoder,
            "dim": self.dim,
            "published_at": self.created_at,
            **{k: self.metadata.get(k) for k in keep},
        }


@dataclass(frozen=True)
class LoadProblem:
    label: str  # "" when the model's own description is unreadable
    tag: str
    path: str
    reason: str

    def line(self) -> str:
        who = f"label {self.label!r} " if self.label else ""
        return f"model {self.tag} {who}at {self.path} cannot be served: {self.reason}"


class ModelGroup:
    """Every served label of one encoder in one ONNX Runtime session."""

    def __init__(self, encoder: str, dim: int, models: Sequence[ServedModel], *, threads: int = 1) -> None:
        self.encoder = encoder
        self.dim = dim
        self.labels = [m.label for m in models]
        self.column = {label: j for j, label in enumerate(self.labels)}
        self.session = fused_session({m.label: m.classifier for m in models}, threads=threads)

    def scores(self, x: np.ndarray) -> np.ndarray:
        """float32 [N, n_labels] for a checked float32 [N, dim] matrix."""
        out: np.ndarray = self.session.run(["scores"], {"embeddings": x})[0]
        return out


@dataclass
class ServingSet:
    """What one load of the store produced: served models, fused groups and the problems met."""

    models: dict[str, ServedModel] = field(default_factory=dict)
    groups: dict[str, ModelGroup] = field(default_factory=dict)
    problems: list[LoadProblem] = field(default_factory=list)
    wanted: set[str] = field(default_factory=set)  # labels that have at least one published model
    fingerprint: tuple[Any, ...] = ()

    @property
    def ready(self) -> bool:
        unreadable = any(not p.label for p in self.problems)
        return bool(self.models) and self.wanted <= set(self.models) and not unreadable

    def select(self, labels: Sequence[str] | None, encoder: str | None) -> tuple[ModelGroup, list[str]]:
        """The group and label columns a request asks for, or an ApiError naming the field."""
        if encoder is not None and encoder not in self.groups:
            raise ApiError(
                422,
                "encoder_mismatch",
                f"encoder {encoder!r} has no published labels here; the served encoders are "
                f"{sorted(self.groups)}. Embed with one of them.",
                field="encoder",
                expected=sorted(self.groups),
            )
        if labels:
            unknown = [lbl for lbl in labels if lbl not in self.models]
            if unknown:
                if unknown[0] in self.wanted:
                    raise ApiError(
                        503,
                        "model_unavailable",
                        f"label {unknown[0]!r} has a published model that failed to load: "
                        + next((p.line() for p in self.problems if p.label == unknown[0]), "see the service log."),
                        field="labels",
                        expected=sorted(self.models),
                    )
                raise ApiError(
                    404,
                    "unknown_label",
                    f"unknown label {unknown[0]!r}; the served labels are {sorted(self.models)}. "
                    "Publish it first (va publish LABEL).",
                    field="labels",
                    expected=sorted(self.models),
                )
            encoders = {self.models[lbl].encoder for lbl in labels}
            if encoder is not None and encoders != {encoder}:
                other = next(lbl for lbl in labels if self.models[lbl].encoder != encoder)
                raise ApiError(
                    422,
                    "encoder_mismatch",
                    f"label {other!r} was trained on {self.models[other].encoder!r} embeddings but the request "
                    f"says its vectors come from {encoder!r}; embed with {self.models[other].encoder!r}.",
                    field="encoder",
                    expected=self.models[other].encoder,
                )
            if len(encoders) > 1:
                raise ApiError(
                    422,
                    "invalid",
                    f"labels {list(labels)} were trained on different encoders ({sorted(encoders)}); "
                    "score labels of one encoder per request.",
                    field="labels",
                    expected=f"labels of one encoder among {sorted(encoders)}",
                )
            return self.groups[encoders.pop()], list(dict.fromkeys(labels))
        if encoder is not None:
            return self.groups[encoder], self.groups[encoder].labels
        if not self.groups:
            if self.problems:  # published, but nothing loads: say what failed, not that nothing was published
                raise ApiError(
                    503,
                    "model_unavailable",
                    f"no published model could be loaded: {self.problems[0].line()}"
                    + (f" (and {len(self.problems) - 1} more; see /v1/labels)" if len(self.problems) > 1 else ""),
                    field="labels",
                    expected="a published label whose model loads",
                )
            raise ApiError(
                503,
                "no_models",
                "no label is published yet; publish one with `va publish LABEL`.",
                field="labels",
                expected="a published label",
            )
        if len(self.groups) > 1:
            raise ApiError(
                422,
                "invalid",
                f"labels of several encoders are served ({sorted(self.groups)}); say which one made the "
                "vectors with the encoder field.",
                field="encoder",
                expected=sorted(self.groups),
            )
        group = next(iter(self.groups.values()))
        return group, group.labels


class ModelRegistry:
    """Holds the current :class:`ServingSet` and swaps in a new one when the store changes."""

    def __init__(self, settings: Settings, *, threads: int = 1) -> None:
        self.settings = settings
        self.threads = threads
        self.root = Path(settings.resolved_model_store) / "models"
        self.current = ServingSet()
        self._lock = threading.Lock()

    def refresh(self, *, force: bool = False) -> bool:
        """Reload when the store changed since the last load; True when a new set was swapped in."""
        with self._lock:
            fingerprint = store_fingerprint(self.root)
            if not force and fingerprint == self.current.fingerprint and self.current.fingerprint:
                return False
            new = load_serving_set(
                self.root, pins=self.settings.scoring_pins, previous=self.current, threads=self.threads
            )
            new.fingerprint = fingerprint
            changed = _summary(new) != _summary(self.current)
            self.current = new
            if changed:
                log.info(
                    "serving %d label(s): %s",
                    len(new.models),
                    ", ".join(f"{m.label}@v{m.version} ({m.tag})" for m in new.models.values()) or "none",
                )
            return True


def store_fingerprint(root: Path) -> tuple[Any, ...]:
    """Names, versions and file times of every model folder: changes when anything is published."""
    entries: list[tuple[str, str, int, int]] = []
    if not root.is_dir():
        return ("empty",)
    for name_dir in sorted(os.scandir(root), key=lambda e: e.name):
        if not name_dir.is_dir():
            continue
        for version_dir in os.scandir(name_dir.path):
            if version_dir.is_dir() and not version_dir.is_symlink():
                times = []
                for fname in ("model.yaml", MODEL_FILE, CLASSIFIER_FILE):
                    try:
                        times.append(os.stat(os.path.join(version_dir.path, fname)).st_mtime_ns)
                    except OSError:
                        times.append(0)
                entries.append((name_dir.name, version_dir.name, times[0], times[1] ^ times[2]))
    return ("store", *sorted(entries))


def load_serving_set(
    root: Path,
    *,
    pins: Mapping[str, str],
    previous: ServingSet | None = None,
    threads: int = 1,
) -> ServingSet:
    """Read every published VA model under ``root``; choose, check and fuse one per label."""
    out = ServingSet()
    candidates: dict[str, list[tuple[Any, Any]]] = {}  # label -> [(bentoml Model, creation time)]
    for model, problem in _read_models(root):
        if problem is not None:
            out.problems.append(problem)
            continue
        label = str(model.info.metadata.get("label", ""))
        candidates.setdefault(label, []).append((model, model.creation_time))
    out.wanted = set(candidates)
    for label, entries in sorted(candidates.items()):
        entries.sort(key=lambda e: e[1])
        try:
            chosen = _choose(label, [m for m, _ in entries], pins.get(label))
            out.models[label] = _load_model(chosen, label)
        except (_Unservable, NotFoundError) as exc:
            problem = LoadProblem(label, getattr(exc, "tag", "?"), getattr(exc, "path", str(root)), str(exc))
            out.problems.append(problem)
            kept = previous.models.get(label) if previous else None
            if kept is not None:
                out.models[label] = kept
                log.error("%s; still serving %s", problem.line(), kept.tag)
            else:
                log.error(problem.line())
    for problem in out.problems:
        if not problem.label:
            log.error(problem.line())
    by_encoder: dict[str, list[ServedModel]] = {}
    for served in out.models.values():
        by_encoder.setdefault(served.encoder, []).append(served)
    for encoder, models in sorted(by_encoder.items()):
        group = ModelGroup(encoder, models[0].dim, models, threads=threads)
        _check_fused(group, models)
        out.groups[encoder] = group
    return out


class _Unservable(Exception):
    def __init__(self, message: str, *, tag: str, path: str) -> None:
        super().__init__(message)
        self.tag = tag
        self.path = path


def _read_models(root: Path) -> list[tuple[Any, LoadProblem | None]]:
    """Every VA model in the store; unreadable descriptions come back as problems, not exceptions."""
    from bentoml._internal.models import Model

    found: list[tuple[Any, LoadProblem | None]] = []
    if not root.is_dir():
        return found
    for name_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("va-")):
        for version_dir in sorted(p for p in name_dir.iterdir() if p.is_dir() and not p.is_symlink()):
            tag = f"{name_dir.name}:{version_dir.name}"
            try:
                model = Model.from_path(str(version_dir))
            except Exception as exc:  # BentoML raises yaml/attrs/OS errors for a broken model.yaml
                found.append((None, LoadProblem("", tag, str(version_dir), f"model.yaml is unreadable ({exc})")))
                continue
            if model.info.labels.get(VA_LABEL_KEY) is None:
                continue
            found.append((model, None))
    return found


def _choose(label: str, models: Sequence[Any], pin: str | None) -> Any:
    """The pinned model (a BentoML version, a full tag, or a classifier version like "3" or "v3"), else the newest."""
    if not pin:
        return models[-1]
    wanted = pin.strip()
    for model in reversed(models):
        if wanted in (str(model.tag), model.tag.version):
            return model
    number = wanted[1:] if wanted[:1] in ("v", "V") else wanted
    if number.isdigit():
        for model in reversed(models):
            if int(model.info.metadata.get("version", -1)) == int(number):
                return model
    raise _Unservable(
        f"VA_SCORING_PINS pins {label!r} to {pin!r}, which matches no published model "
        f"(published: {[str(m.tag) + ' (v' + str(m.info.metadata.get('version')) + ')' for m in models]}); "
        "fix the pin or publish that version.",
        tag=f"{models[-1].tag.name}:{pin}",
        path=str(Path(models[-1].path).parent),
    )


def _load_model(model: Any, label: str) -> ServedModel:
    from annotator_core.classifier import Classifier
    from annotator_core.export import onnx_metadata

    tag, path = str(model.tag), str(model.path)

    def fail(reason: str) -> _Unservable:
        return _Unservable(reason, tag=tag, path=path)

    meta = dict(model.info.metadata)
    try:
        graph = Path(model.path_of(MODEL_FILE)).read_bytes()
        coefficients = Path(model.path_of(CLASSIFIER_FILE)).read_bytes()
    except OSError as exc:
        raise fail(f"a model file is missing or unreadable ({exc}); publish the label again") from None
    try:
        described = onnx_metadata(graph)
        session = onnx_session(graph, threads=1)
        classifier = Classifier.from_bytes(coefficients)
    except Exception as exc:  # onnx / onnxruntime raise their own error types for corrupt graphs
        raise fail(
            f"{MODEL_FILE} or {CLASSIFIER_FILE} is corrupt ({first_line(exc)}); publish the label again"
        ) from None
    if described["labels"] != [label]:
        raise fail(f"{MODEL_FILE} scores {described['labels']}, not [{label!r}]")
    encoder, dim = str(meta.get("encoder", "")), int(meta.get("dim", 0))
    if (described["encoder"], described["dim"]) != (encoder, dim) or classifier.dim != dim:
        raise fail(
            f"metadata says {encoder!r} ({dim}-d) but the graph says {described['encoder']!r} "
            f"({described['dim']}-d) and the coefficients {classifier.dim}-d"
        )
    probe = _probe(dim)
    got = session.run(["scores"], {"embeddings": probe})[0][:, 0]
    worst = float(np.max(np.abs(got - classifier.predict_proba(probe))))
    if not worst <= LOAD_TOLERANCE:
        raise fail(f"{MODEL_FILE} and {CLASSIFIER_FILE} disagree by {worst:.2e} on a probe batch")
    return ServedModel(
        label=label,
        tag=tag,
        version=int(meta.get("version", 0)),
        encoder=encoder,
        dim=dim,
        created_at=str(meta.get("created_at", "")),
        metadata=meta,
        classifier=classifier,
    )


def _check_fused(group: ModelGroup, models: Sequence[ServedModel]) -> None:
    probe = _probe(group.dim)
    fused = group.scores(probe)
    for j, served in enumerate(models):
        worst = float(np.max(np.abs(fused[:, j] - served.classifier.predict_proba(probe))))
        if not worst <= LOAD_TOLERANCE:
            raise RuntimeError(f"fused graph column {served.label!r} differs by {worst:.2e}; this is a bug")


def _probe(dim: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.standard_normal((32, dim)).astype(np.float32)


def _summary(s: ServingSet) -> tuple[Any, ...]:
    return tuple(sorted((m.label, m.tag) for m in s.models.values()))
