"""The published models, read from the BentoML model store for jobs that must not import the services."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from annotator_core.errors import NotFoundError
from annotator_core.settings import Settings
from pipelines.score_corpus import LabelModel


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
