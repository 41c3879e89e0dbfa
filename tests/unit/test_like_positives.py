"""The query of "more like my positives" (Rocchio relevance feedback) on exact cases."""

from __future__ import annotations

import numpy as np
import pytest

from annotator_core.errors import ValidationFailed
from annotator_core.relevance import like_positives


def test_mean_of_positives_minus_half_the_negatives_mean_unit_length() -> None:
    e = np.eye(3, dtype=np.float32)
    # positives e0 and e1 (mean ½, ½, 0), negative e1: ½ e0 + ½ e1 − ½ e1 = ½ e0 → e0
    np.testing.assert_allclose(like_positives(e[[0, 1]], e[[1]]), [1.0, 0.0, 0.0], atol=1e-7)
    # no negatives: the positives' mean direction; rows are normalised first, so a long vector does not dominate
    np.testing.assert_allclose(
        like_positives(np.array([[10.0, 0, 0], [0, 1.0, 0]]), np.empty((0, 3))), [0.7071068, 0.7071068, 0], atol=1e-6
    )
    # beta sets how far the negatives push: with beta 1, (½, ½) − e1 = (½, −½)
    np.testing.assert_allclose(like_positives(e[[0, 1]], e[[1, 1]], beta=1.0), [0.7071068, -0.7071068, 0], atol=1e-6)
    assert like_positives(e[[0]], e[[2]]).dtype == np.float32


def test_no_positive_or_a_cancelled_query_is_refused() -> None:
    e = np.eye(2, dtype=np.float32)
    with pytest.raises(ValidationFailed, match="at least one positive"):
        like_positives(np.empty((0, 2)), e)
    with pytest.raises(ValidationFailed, match="cancel out"):
        like_positives(e[[0]], e[[0]], beta=1.0)
