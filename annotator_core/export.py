"""ONNX export of one or several labels' classifiers as a single graph.

The graph takes ``embeddings`` float32 [N, dim] and returns ``scores`` float32
[N, n_labels], column j being P(label j) — exactly what
:meth:`Classifier.predict_proba` computes:

    x̂ = x / max(‖x‖₂, 1e-12);  scores = sigmoid(x̂ · W + b)

with W [dim, n_labels] the stacked coefficient vectors. It is built from
standard ONNX operators with skl2onnx's opset conventions rather than by
converting a scikit-learn ``LogisticRegression`` per label: the converter
emits one [N, 2] probability output per model (a zipmap, or a class pair),
whereas the scoring service wants every label from one matrix product.
The metadata (``labels``, ``encoder``, ``dim``) lets a loader check what it serves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from annotator_core.classifier import NORM_FLOOR, Classifier
from annotator_core.errors import DimensionMismatch, ValidationFailed

INPUT_NAME = "embeddings"
OUTPUT_NAME = "scores"
OPSET = 17  # ReduceL2 takes `axes` as an attribute up to opset 17; every onnxruntime since 1.13 runs it


def to_onnx(classifiers: Mapping[str, Classifier]) -> bytes:
    """Serialise ``classifiers`` (label -> classifier, column order = mapping order) as ONNX bytes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if not classifiers:
        raise ValidationFailed("no classifiers to export; pass at least one label's classifier.")
    labels = list(classifiers)
    first = classifiers[labels[0]]
    for name, clf in classifiers.items():
        if clf.dim != first.dim or clf.encoder != first.encoder:
            raise DimensionMismatch(
                f"label {name!r} was trained on {clf.encoder or '?'} ({clf.dim}-d) but {labels[0]!r} on "
                f"{first.encoder or '?'} ({first.dim}-d); export labels of one encoder together."
            )
    weights = np.stack([classifiers[name].coef for name in labels], axis=1).astype(np.float32)
    bias = np.array([classifiers[name].intercept for name in labels], dtype=np.float32)

    nodes = [
        helper.make_node("ReduceL2", [INPUT_NAME], ["norm"], axes=[1], keepdims=1),
        helper.make_node("Max", ["norm", "norm_floor"], ["safe_norm"]),
        helper.make_node("Div", [INPUT_NAME, "safe_norm"], ["unit"]),
        helper.make_node("MatMul", ["unit", "weights"], ["product"]),
        helper.make_node("Add", ["product", "bias"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], [OUTPUT_NAME]),
    ]
    graph = helper.make_graph(
        nodes,
        "va_label_scores",
        inputs=[helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, first.dim])],
        outputs=[helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None, len(labels)])],
        initializer=[
            numpy_helper.from_array(weights, "weights"),
            numpy_helper.from_array(bias, "bias"),
            numpy_helper.from_array(np.array(NORM_FLOOR, dtype=np.float32), "norm_floor"),
        ],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="video-annotator",
        doc_string="P(label) per column for L2-normalised shot embeddings.",
    )
    model.ir_version = 8  # readable by onnxruntime >= 1.14
    helper.set_model_props(model, {"labels": json.dumps(labels), "encoder": first.encoder, "dim": str(first.dim)})
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def onnx_metadata(model_bytes: bytes) -> dict[str, Any]:
    """The model's metadata: ``labels`` (list), ``encoder`` (str), ``dim`` (int)."""
    import onnx

    try:
        model = onnx.load_model_from_string(model_bytes)
    except Exception as exc:  # protobuf raises its own DecodeError for bad bytes
        raise ValidationFailed(f"bytes are not an ONNX model ({exc}); export one with to_onnx().") from None
    props = {p.key: p.value for p in model.metadata_props}
    if "labels" not in props:
        raise ValidationFailed("ONNX model has no 'labels' metadata; export it with annotator_core.export.to_onnx.")
    return {
        "labels": list(json.loads(props["labels"])),
        "encoder": props.get("encoder", ""),
        "dim": int(props.get("dim", "0")),
    }


def onnx_labels(model_bytes: bytes) -> list[str]:
    """Label names in the order of the ``scores`` columns."""
    labels: list[str] = onnx_metadata(model_bytes)["labels"]
    return labels
