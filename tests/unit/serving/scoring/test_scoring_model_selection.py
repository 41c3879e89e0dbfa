"""Model selection in the scoring registry: which published model serves a label (newest, or the pin), and
which fused group and label columns a request gets (ServingSet.select), or a 4xx/503.

Real classifiers trained on small synthetic embeddings, fused into real ONNX Runtime sessions per encoder;
pins are tested on a real BentoML model store in tmp_path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from annotator_core.classifier import train
from serving.http_errors import ApiError, body_of
from serving.scoring.models import LoadProblem, ModelGroup, ServedModel, ServingSet

SERVED = {"bikes": ("handcrafted", 8), "bunny": ("handcrafted", 8), "faces": ("tiny-clip", 4)}


def served_model(label: str, encoder: str, dim: int, seed: int) -> ServedModel:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((40, dim)).astype(np.float32)
    classifier = train(x, x[:, 0] > 0, encoder=encoder, seed=seed)
    return ServedModel(label, f"va-{label}:v1", 1, encoder, dim, "2026-01-01T00:00:00+00:00", {}, classifier)


@pytest.fixture(scope="module")
def models() -> dict[str, ServedModel]:
    return {label: served_model(label, enc, dim, seed) for seed, (label, (enc, dim)) in enumerate(SERVED.items())}


def serving_set(models: dict[str, ServedModel], labels: list[str], *, wanted: set[str] | None = None) -> ServingSet:
    """What a load of the store would give when ``labels`` loaded (and ``wanted`` have a published model)."""
    out = ServingSet(models={label: models[label] for label in labels}, wanted=wanted or set(labels))
    for encoder in sorted({models[label].encoder for label in labels}):
        members = [models[label] for label in labels if models[label].encoder == encoder]
        out.groups[encoder] = ModelGroup(encoder, members[0].dim, members)
    return out


def refusal(s: ServingSet, labels: list[str] | None, encoder: str | None) -> tuple[int, dict[str, Any]]:
    with pytest.raises(ApiError) as caught:
        s.select(labels, encoder)
    return caught.value.status_code, body_of(caught.value)["error"]


def test_one_encoder_served_and_nothing_asked_gives_every_label(models: dict[str, ServedModel]) -> None:
    s = serving_set(models, ["bikes", "bunny"])
    group, labels = s.select(None, None)
    assert group.encoder == "handcrafted" and labels == ["bikes", "bunny"]
    assert s.select([], None)[1] == ["bikes", "bunny"]  # an empty list asks for nothing in particular
    assert s.select(None, "handcrafted")[1] == ["bikes", "bunny"]


def test_asked_labels_come_back_in_request_order_once_each_and_score_like_their_classifier(
    models: dict[str, ServedModel],
) -> None:
    s = serving_set(models, ["bikes", "bunny", "faces"])
    group, labels = s.select(["bunny", "bikes", "bunny"], None)
    assert group.encoder == "handcrafted" and labels == ["bunny", "bikes"]
    x = np.random.default_rng(9).standard_normal((5, 8)).astype(np.float32)
    scores = group.scores(x)
    for label in labels:
        np.testing.assert_allclose(scores[:, group.column[label]], models[label].classifier.predict_proba(x), atol=1e-5)
    group, labels = s.select(["faces"], "tiny-clip")
    assert group.encoder == "tiny-clip" and group.dim == 4 and labels == ["faces"]


def test_an_unknown_label_is_404_listing_the_served_ones(models: dict[str, ServedModel]) -> None:
    status, error = refusal(serving_set(models, ["bikes", "bunny"]), ["bikes", "cats"], None)
    assert status == 404 and error["code"] == "unknown_label" and error["field"] == "labels"
    assert error["expected"] == ["bikes", "bunny"] and "'cats'" in error["message"] and "va publish" in error["message"]


def test_a_label_whose_model_failed_to_load_is_503_not_404(models: dict[str, ServedModel]) -> None:
    s = serving_set(models, ["bikes"], wanted={"bikes", "bunny"})
    s.problems.append(LoadProblem("bunny", "va-bunny:v2", "/store/va-bunny/v2", "model.onnx is corrupt"))
    status, error = refusal(s, ["bunny"], None)
    assert status == 503 and error["code"] == "model_unavailable" and error["field"] == "labels"
    assert error["expected"] == ["bikes"]
    assert s.select(["bikes"], None)[1] == ["bikes"]  # the other label is still served
    assert not s.ready


def test_an_encoder_nothing_was_trained_on_is_refused(models: dict[str, ServedModel]) -> None:
    status, error = refusal(serving_set(models, ["bikes", "faces"]), None, "clip:openai/clip-vit-base-patch32")
    assert status == 422 and error["code"] == "encoder_mismatch" and error["field"] == "encoder"
    assert error["expected"] == ["handcrafted", "tiny-clip"]


def test_a_label_asked_with_another_encoder_names_its_own(models: dict[str, ServedModel]) -> None:
    status, error = refusal(serving_set(models, ["bikes", "faces"]), ["bikes"], "tiny-clip")
    assert status == 422 and error["code"] == "encoder_mismatch" and error["field"] == "encoder"
    assert error["expected"] == "handcrafted"


def test_labels_of_two_encoders_in_one_request_are_refused(models: dict[str, ServedModel]) -> None:
    status, error = refusal(serving_set(models, ["bikes", "faces"]), ["bikes", "faces"], None)
    assert status == 422 and error["field"] == "labels"
    assert "['handcrafted', 'tiny-clip']" in error["message"]


def test_several_encoders_and_no_choice_asks_which_one(models: dict[str, ServedModel]) -> None:
    s = serving_set(models, ["bikes", "faces"])
    status, error = refusal(s, None, None)
    assert status == 422 and error["field"] == "encoder" and error["expected"] == ["handcrafted", "tiny-clip"]
    assert s.select(None, "tiny-clip")[1] == ["faces"]


def test_nothing_published_is_503() -> None:
    status, error = refusal(ServingSet(), None, None)
    assert status == 503 and error["code"] == "no_models" and error["field"] == "labels"


def test_ready_needs_every_wanted_label_and_no_unreadable_model(models: dict[str, ServedModel]) -> None:
    assert not ServingSet().ready  # nothing served is not ready
    s = serving_set(models, ["bikes", "bunny"])
    assert s.ready
    s.problems.append(LoadProblem("", "va-x:1", "/store/va-x/1", "model.yaml is unreadable"))
    assert not s.ready  # a model nobody can even name might be a label's only one


@pytest.fixture()
def published_twice(make_settings: Any) -> Any:
    """A label with two classifier versions, each published to a real BentoML model store in tmp_path (v1 first)."""
    from annotator_core.store import AnnotationStore
    from serving.model_store import publish

    settings = make_settings()
    store = AnnotationStore.from_settings(settings)
    store.labels.create("bikes")
    x = np.random.default_rng(3).standard_normal((40, 8)).astype(np.float32)
    for C in (1.0, 0.05):
        classifier = train(x, x[:, 0] > 0, encoder="handcrafted", C=C)
        store.versions.save(
            "bikes", model=classifier.to_bytes(), encoder="handcrafted", dim=8, n_pos=int((x[:, 0] > 0).sum()),
            n_neg=int((x[:, 0] <= 0).sum()), model_quality=0.9, data_diversity=0.5, snapshot=[], snapshot_event_id=0,
        )  # fmt: skip
    store.db.close()
    return settings, [publish("bikes", version=v, settings=settings) for v in (1, 2)]


def test_the_newest_publish_is_served_unless_a_pin_names_another(published_twice: Any) -> None:
    from serving.scoring.models import load_serving_set

    settings, (first, second) = published_twice
    root = Path(settings.resolved_model_store) / "models"
    assert load_serving_set(root, pins={}).models["bikes"].version == 2
    bentoml_version = second.tag.split(":")[1]
    for pin, version in [("v1", 1), ("V1", 1), ("1", 1), (first.tag, 1), (bentoml_version, 2), ("v2", 2)]:
        served = load_serving_set(root, pins={"bikes": pin})
        assert served.models["bikes"].version == version, pin
        assert served.ready and not served.problems


def test_a_pin_that_matches_nothing_is_a_problem_naming_the_pin_and_keeps_what_was_served(
    published_twice: Any,
) -> None:
    from serving.scoring.models import load_serving_set

    settings, _ = published_twice
    root = Path(settings.resolved_model_store) / "models"
    fresh = load_serving_set(root, pins={"bikes": "v9"})
    assert "bikes" not in fresh.models and not fresh.ready
    (problem,) = fresh.problems
    assert problem.label == "bikes" and "'v9'" in problem.reason and "(v1)" in problem.reason
    assert "fix the pin or publish that version" in problem.reason
    with pytest.raises(ApiError) as caught:
        fresh.select(["bikes"], None)
    assert caught.value.status_code == 503  # published but not servable: unavailable, not unknown

    serving = load_serving_set(root, pins={})
    reloaded = load_serving_set(root, pins={"bikes": "v9"}, previous=serving)
    assert reloaded.models["bikes"] is serving.models["bikes"]  # a bad pin on reload keeps the model in service
    assert [p.label for p in reloaded.problems] == ["bikes"]
