"""Relevance feedback: the query behind "more like my positives" (a label's annotations as one search vector).

Pure functions, arrays in and a vector out, no I/O; the workspace reads the annotations and vectors.
"""

from __future__ import annotations

import numpy as np

from annotator_core.classifier import l2_rows
from annotator_core.errors import ValidationFailed

# "More like my positives": how much the negatives' mean is subtracted (Rocchio's beta). Chosen on runs 0-5 of the
# sample-efficiency replay among 0, 0.25 and 0.5 (with 1-3 positives, re-ranked each page), confirmed on runs 6-11.
LIKE_NEGATIVE_WEIGHT = 0.5


def like_positives(positives: np.ndarray, negatives: np.ndarray, *, beta: float = LIKE_NEGATIVE_WEIGHT) -> np.ndarray:
    """Rocchio's relevance-feedback query: unit(mean of the positives − beta · mean of the negatives), float32 [dim].

    Before the first build it ranks the corpus by likeness to everything labelled positive so far, not to one
    shot or the text query alone; subtracting the negatives steers it away from what was already rejected.
    """
    raw = np.asarray(positives, dtype=np.float32)
    if raw.ndim != 2 or raw.shape[0] == 0:
        raise ValidationFailed(f"like_positives needs at least one positive vector, got shape {raw.shape}.")
    pos = l2_rows(raw)
    query = pos.mean(axis=0, dtype=np.float64)
    neg = np.asarray(negatives, dtype=np.float32)
    if neg.size:
        query = query - beta * l2_rows(neg.reshape(-1, pos.shape[1])).mean(axis=0, dtype=np.float64)
    norm = float(np.linalg.norm(query))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValidationFailed("the positives' and negatives' means cancel out; label more positives.")
    return (query / norm).astype(np.float32)
