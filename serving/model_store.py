"""The BentoML model store both services share: publish writes a classifier version, scoring reads it.

Publishing goes through this module so neither service imports the other.
Publish a classifier version: export it to ONNX and save it in the BentoML model store.

Each publish is a new BentoML model version (older ones stay, so a pin can
roll back). The model folder holds ``model.onnx`` (the one-label graph from
:func:`annotator_core.export.to_onnx`) and ``classifier.bin`` (the
coefficients, so the service can fuse every label into one graph); its
metadata carries what an operator needs to trace a score back to the labels
behind it.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from annotator_core.errors import ValidationFailed
from annotator_core.settings import Settings
from annotator_core.store import AnnotationStore

# This product never phones home from a model save or a server start; a deployment may opt in.
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

MODEL_FILE = "model.onnx"
CLASSIFIER_FILE = "classifier.bin"
#: BentoML label that marks a model in the store as a VA classifier (its value is the VA label name).
VA_LABEL_KEY = "va-label"
#: Largest difference allowed between the exported graph and the classifier at publish time.
EXPORT_TOLERANCE = 1e-5


@dataclass(frozen=True)
class PublishedModel:
    tag: str  # BentoML tag, "name:version"
    label: str
    version: int  # the classifier version in the annotation store
    encoder: str = ""
    dim: int = 0
    path: str = ""


def model_store(settings: Settings) -> Any:
    """The BentoML model store under ``settings.resolved_model_store`` (BentoML's home folder)."""
    from bentoml._internal.models import ModelStore

    folder = Path(settings.resolved_model_store) / "models"
    folder.mkdir(parents=True, exist_ok=True)
    return ModelStore(str(folder))


def model_name(label: str) -> str:
    """A BentoML model name for a label: a readable slug plus a hash, so distinct labels never collide."""
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:40] or "label"
    digest = hashlib.sha1(label.encode()).hexdigest()[:8]
    return f"va-{slug}-{digest}"


def publish(label: str, *, version: int | None = None, settings: Settings) -> PublishedModel:
    """Export a label's classifier version (latest when ``version`` is None) as a new BentoML model."""
    import bentoml

    from annotator_core.classifier import Classifier
    from annotator_core.export import to_onnx

    store = AnnotationStore.from_settings(settings)
    try:
        info = store.versions.get(label, version)
        classifier = Classifier.from_bytes(info.model)
        model_bytes = to_onnx({label: classifier})
        _check_export(model_bytes, classifier, label=label, version=info.version)
        created_at = datetime.now(UTC).isoformat()
        metadata = {
            "label": label,
            "version": int(info.version),
            "encoder": info.encoder or classifier.encoder,
            "dim": int(info.dim or classifier.dim),
            "model_quality": float(info.model_quality),
            "data_diversity": float(info.data_diversity),
            "n_pos": int(info.n_pos),
            "n_neg": int(info.n_neg),
            "snapshot_event_id": int(info.snapshot_event_id),
            "shots_table_version": int(info.shots_table_version),
            "classifier_created_at": info.created_at.isoformat(),
            "classifier_created_by": info.created_by,
            "created_at": created_at,
        }
        with bentoml.models.create(
            model_name(label),
            labels={VA_LABEL_KEY: model_name(label)},
            metadata=metadata,
            _model_store=model_store(settings),
        ) as model:
            Path(model.path_of(MODEL_FILE)).write_bytes(model_bytes)
            Path(model.path_of(CLASSIFIER_FILE)).write_bytes(classifier.to_bytes())
        store.versions.mark_published(label, info.version)
        saved = model_store(settings).get(model.tag)
    finally:
        store.db.close()
    return PublishedModel(
        tag=str(model.tag),
        label=label,
        version=int(info.version),
        encoder=str(metadata["encoder"]),
        dim=int(info.dim or classifier.dim),
        path=str(saved.path),
    )


def _check_export(model_bytes: bytes, classifier: Any, *, label: str, version: int) -> None:
    """Refuse to publish a graph whose scores differ from the classifier's own."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    probe = rng.standard_normal((64, classifier.dim)).astype(np.float32)
    probe /= np.linalg.norm(probe, axis=1, keepdims=True)
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    got = session.run(["scores"], {"embeddings": probe})[0][:, 0]
    want = classifier.predict_proba(probe)
    worst = float(np.max(np.abs(got - want)))
    if not worst <= EXPORT_TOLERANCE:
        raise ValidationFailed(
            f"the ONNX export of {label!r} version {version} differs from the classifier by {worst:.2e} "
            f"(expected at most {EXPORT_TOLERANCE:.0e}); report this as a bug in annotator_core.export."
        )
