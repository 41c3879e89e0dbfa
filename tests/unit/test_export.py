"""ONNX export: one graph for several labels, scored by onnxruntime like predict_proba."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.datasets import load_digits

from annotator_core.classifier import l2_rows, train, unit_mean
from annotator_core.errors import DimensionMismatch, ValidationFailed
from annotator_core.export import onnx_labels, onnx_metadata, to_onnx


@pytest.fixture(scope="module")
def digit_classifiers():
    """Three real one-vs-rest classifiers (digits 0, 3, 8) on the same 64-d features."""
    data = load_digits()
    x = l2_rows(data.data.astype(np.float32))
    return x, {f"digit-{d}": train(x, data.target == d, encoder="pixels", C=10.0) for d in (8, 0, 3)}


def test_onnx_matches_predict_proba_for_every_label(digit_classifiers) -> None:
    x, classifiers = digit_classifiers
    session = ort.InferenceSession(to_onnx(classifiers), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["embeddings"]
    assert [o.name for o in session.get_outputs()] == ["scores"]
    # unnormalised rows too: the graph normalises like predict_proba does
    inputs = np.concatenate([x, x[:100] * 13.0, np.zeros((1, 64), dtype=np.float32)])
    (scores,) = session.run(["scores"], {"embeddings": inputs})
    assert scores.dtype == np.float32 and scores.shape == (len(inputs), 3)
    for column, clf in enumerate(classifiers.values()):
        np.testing.assert_allclose(scores[:, column], clf.predict_proba(inputs), atol=1e-5, rtol=0)


def test_metadata_names_columns_encoder_and_dim(digit_classifiers) -> None:
    _, classifiers = digit_classifiers
    model = to_onnx(classifiers)
    assert onnx_labels(model) == ["digit-8", "digit-0", "digit-3"]
    assert onnx_metadata(model) == {
        "labels": ["digit-8", "digit-0", "digit-3"],
        "encoder": "pixels",
        "dim": 64,
    }


def test_mixed_encoders_are_refused(digit_classifiers) -> None:
    x, classifiers = digit_classifiers
    other = train(x[:, :32], np.arange(len(x)) % 2 == 0, encoder="other")
    with pytest.raises(DimensionMismatch, match="export labels of one encoder together"):
        to_onnx({"digit-8": classifiers["digit-8"], "odd": other})


def test_empty_and_garbage_are_refused() -> None:
    with pytest.raises(ValidationFailed, match="no classifiers"):
        to_onnx({})
    with pytest.raises(ValidationFailed, match=r"not an ONNX model|no 'labels' metadata"):
        onnx_labels(b"\x00not onnx")


def test_centred_classifier_exports_with_parity() -> None:
    """Centring on the corpus mean folds into the bias: the exported graph scores like predict_proba."""
    data = load_digits()
    rng = np.random.default_rng(0)
    x = l2_rows(data.data.astype(np.float32) + 40.0 * rng.random(64).astype(np.float32))  # a large common offset
    y = data.target == 5
    clf = train(x[:30], y[:30], encoder="pixels", C=10.0, centre=unit_mean(x))
    assert clf.info["centred"] is True
    session = ort.InferenceSession(to_onnx({"five": clf}), providers=["CPUExecutionProvider"])
    inputs = np.concatenate([x, x[:100] * 13.0])
    (scores,) = session.run(["scores"], {"embeddings": inputs})
    np.testing.assert_allclose(scores[:, 0], clf.predict_proba(inputs), atol=1e-5, rtol=0)
