"""The scoring kernels: the int8 one's exact integer sums and the weight-rounding bound the candidate margin relies
on; the float32 in-memory scan against the classifier's own scores."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from annotator_core.corpus.kernel import WEIGHT_LEVELS, quantise_weights, score_codes, score_rows, weight_error


def test_kernel_sums_equal_exact_integer_dot_products_even_at_the_extremes() -> None:
    rng = np.random.default_rng(0)
    codes = rng.integers(-127, 128, size=(3000, 1024), dtype=np.int8)
    codes[0] = 127  # the largest sum the int32 accumulator must hold: 127 × 16383 × 1024
    codes[1] = -127
    weights = rng.integers(-WEIGHT_LEVELS, WEIGHT_LEVELS + 1, size=1024).astype(np.int16)
    weights[:] = WEIGHT_LEVELS
    out = np.empty(codes.shape[0], np.float32)
    score_codes(codes, weights, 1.0, 0.0, out=out)
    exact = codes.astype(np.int64) @ weights.astype(np.int64)
    np.testing.assert_allclose(out, exact.astype(np.float32), rtol=1e-7)
    assert out[0] == np.float32(127 * WEIGHT_LEVELS * 1024) and out[1] == -out[0]


def test_kernel_reads_a_strided_slice_of_a_memory_mapped_array(tmp_path) -> None:
    rng = np.random.default_rng(1)
    codes = rng.integers(-127, 128, size=(500, 64), dtype=np.int8)
    np.save(tmp_path / "codes.npy", codes)
    mapped = np.load(tmp_path / "codes.npy", mmap_mode="r")
    weights = rng.integers(-100, 100, size=64).astype(np.int16)
    out = np.empty(200, np.float32)
    score_codes(mapped[100:300], weights, 0.5, 2.0, out=out)
    np.testing.assert_allclose(out, (codes[100:300].astype(np.int64) @ weights) * 0.5 + 2.0, rtol=1e-6)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), dim=st.sampled_from([1, 7, 64, 512]), spread=st.floats(1e-6, 1e3))
def test_weight_rounding_never_moves_a_score_past_its_bound(seed: int, dim: int, spread: float) -> None:
    rng = np.random.default_rng(seed)
    folded = rng.normal(scale=spread, size=dim) * rng.uniform(0, 1, size=dim) ** 3  # uneven magnitudes
    codes = rng.integers(-127, 128, size=(400, dim), dtype=np.int8)
    codes[0] = np.where(folded >= 0, 127, -127)  # the row the rounding can hurt most
    weights, step = quantise_weights(folded)
    assert np.abs(weights).max() <= WEIGHT_LEVELS
    out = np.empty(codes.shape[0], np.float32)
    score_codes(codes, weights, step, 0.0, out=out)
    exact = codes.astype(np.float64) @ folded
    float32_slack = 1e-6 * np.abs(codes.astype(np.float64)) @ np.abs(folded) + 1e-30
    assert np.all(np.abs(out - exact) <= weight_error(step, dim) + float32_slack)


def test_a_zero_classifier_scores_every_row_at_the_intercept() -> None:
    weights, step = quantise_weights(np.zeros(16))
    out = np.empty(5, np.float32)
    score_codes(np.ones((5, 16), np.int8), weights, step, -1.5, out=out)
    assert np.all(out == -1.5)


def test_float_scan_matches_the_classifier_on_unit_rows_and_on_a_non_contiguous_slice() -> None:
    """The in-memory scan (score_rows) gives the classifier's own probabilities, within float32 rounding."""
    from annotator_core.classifier import Classifier, l2_rows
    from annotator_core.corpus.scorer import score_matrix

    rng = np.random.default_rng(3)
    rows = l2_rows(rng.standard_normal((5000, 96)).astype(np.float32) + 0.4)
    clf = Classifier(encoder="t", dim=96, coef=rng.standard_normal(96).astype(np.float32) * 4, intercept=-1.5)
    exact = rows.astype(np.float64) @ clf.coef.astype(np.float64) + clf.intercept
    out = np.empty(5000, np.float32)
    score_rows(rows, clf.coef, clf.intercept, out=out)
    assert np.abs(out - exact).max() < 1e-4
    np.testing.assert_allclose(score_matrix(rows, clf), clf.predict_proba(rows, normalised=True), atol=1e-5)
    every_other = np.empty(2500, np.float32)
    score_rows(rows[::2], clf.coef, clf.intercept, out=every_other)
    np.testing.assert_allclose(every_other, out[::2], atol=1e-5)
    score_rows(rows[:0], clf.coef, clf.intercept, out=np.empty(0, np.float32))  # an empty corpus scores nothing
