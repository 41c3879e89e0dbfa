"""Published ONNX models into ONNX Runtime sessions: the one way the scoring service and corpus scoring run them.

A graph made by :func:`annotator_core.export.to_onnx` is microseconds of work per request,
so a session runs sequentially on few threads without spinning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from annotator_core.classifier import Classifier
from annotator_core.export import to_onnx


def onnx_session(graph: bytes, *, threads: int = 1) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU for ``graph`` (ONNX bytes), on ``threads`` threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One request is microseconds of work: a thread pool's hand-offs and spinning cost more than they save.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(graph, sess_options=options, providers=["CPUExecutionProvider"])


def fused_session(classifiers: Mapping[str, Classifier], *, threads: int = 1) -> Any:
    """One session scoring every label of ``classifiers`` at once: column j of ``scores`` is label j."""
    return onnx_session(to_onnx(classifiers), threads=threads)
