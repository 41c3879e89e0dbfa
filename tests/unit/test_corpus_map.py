"""The corpus map's core: the layout and placement keep neighbours together, and selections are exact."""

from __future__ import annotations

import numpy as np
import pytest

from annotator_core.corpus_map import (
    check_polygon,
    convex_hull,
    fit_sample_rows,
    inside_polygon,
    layout,
    place_near,
    rectangle,
    sample_points,
)
from annotator_core.errors import ValidationFailed


def clustered(n: int, *, centres: int = 4, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around well-separated centres, with their centre as the class."""
    rng = np.random.default_rng(seed)
    c = np.eye(dim, dtype=np.float32)[:centres] * 3
    labels = np.arange(n) % centres
    x = c[labels] + rng.standard_normal((n, dim)).astype(np.float32) * 0.3
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def nearest_class(coords: np.ndarray, ref: np.ndarray, ref_labels: np.ndarray) -> np.ndarray:
    d = ((coords[:, None, :] - ref[None, :, :]) ** 2).sum(-1)
    return ref_labels[d.argmin(1)]


# The first UMAP call in a process compiles numba code: ~25 s of CPU, minutes of wall time on a loaded machine.
@pytest.mark.timeout(900)
def test_layout_fits_a_sample_and_places_the_rest_beside_their_own_kind() -> None:
    x, labels = clustered(400)
    result = layout(x, fit_sample=300, seed=0)
    assert result.coords.shape == (400, 2) and result.coords.dtype == np.float32
    assert result.fitted.sum() == 300
    assert np.isfinite(result.coords).all()
    fitted, placed = np.flatnonzero(result.fitted), np.flatnonzero(~result.fitted)
    # Each placed shot's nearest fitted point on the map is of its own cluster, nearly always.
    agree = nearest_class(result.coords[placed], result.coords[fitted], labels[fitted]) == labels[placed]
    assert agree.mean() > 0.95


@pytest.mark.timeout(900)
def test_layout_is_the_same_for_the_same_seed_and_handles_tiny_corpora() -> None:
    x, _ = clustered(60)
    np.testing.assert_array_equal(layout(x, fit_sample=60, seed=1).coords, layout(x, fit_sample=60, seed=1).coords)
    assert layout(x[:0]).coords.shape == (0, 2)
    tiny = layout(x[:3])
    assert tiny.coords.shape == (3, 2) and tiny.fitted.all()


def test_fit_sample_rows_are_seeded_sorted_and_bounded() -> None:
    rows = fit_sample_rows(1000, fit_sample=100, seed=3)
    assert len(rows) == 100 and (np.diff(rows) > 0).all()
    np.testing.assert_array_equal(rows, fit_sample_rows(1000, fit_sample=100, seed=3))
    assert len(fit_sample_rows(50, fit_sample=100)) == 50
    with pytest.raises(ValidationFailed, match="VA_MAP_FIT_SAMPLE"):
        fit_sample_rows(10, fit_sample=0)


def test_place_near_puts_a_new_shot_among_its_most_similar_anchors() -> None:
    x, labels = clustered(200)
    anchor_coords = np.stack([labels * 10.0, np.zeros(200)], axis=1).astype(np.float32)
    new, new_labels = clustered(40, seed=7)
    placed = place_near(x, anchor_coords, new, k=5)
    np.testing.assert_allclose(placed[:, 0], new_labels * 10.0, atol=1e-3)
    with pytest.raises(ValidationFailed, match="va map --full"):
        place_near(x[:0], anchor_coords[:0], new)


def test_inside_polygon_on_a_concave_lasso() -> None:
    # An L shape: the notch at the top right is outside.
    lasso = np.array([[0, 0], [4, 0], [4, 2], [2, 2], [2, 4], [0, 4]], dtype=float)
    points = np.array([[1, 1], [3, 1], [1, 3], [3, 3], [5, 1], [-1, 1], [1, 5]], dtype=np.float32)
    assert inside_polygon(points, lasso).tolist() == [True, True, True, False, False, False, False]


def test_inside_polygon_matches_a_rectangle_exactly() -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(-5, 5, (10_000, 2)).astype(np.float32)
    box = rectangle(2.0, -1.0, -3.0, 4.0)  # corners in any order
    expected = (points[:, 0] > -3) & (points[:, 0] < 2) & (points[:, 1] > -1) & (points[:, 1] < 4)
    np.testing.assert_array_equal(inside_polygon(points, box), expected)


@pytest.mark.parametrize(
    ("polygon", "message"),
    [
        ([[0, 0], [1, 1]], "at least 3"),
        ([[0, 0, 0], [1, 1, 1], [2, 2, 2]], "shape"),
        ([[0, 0], [1, float("nan")], [0, 1]], "finite"),
        ("not a polygon", "pairs"),
    ],
)
def test_a_bad_polygon_is_refused_naming_the_problem(polygon: object, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        check_polygon(polygon)


def test_a_rectangle_without_area_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="no area"):
        rectangle(1, 1, 1, 5)


def test_convex_hull_of_a_square_with_points_inside() -> None:
    pts = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5], [0.2, 0.7]])
    hull = convex_hull(pts)
    assert sorted(map(tuple, hull.tolist())) == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_sample_points_keeps_every_labelled_shot() -> None:
    keep = np.zeros(1000, bool)
    keep[[3, 500, 999]] = True
    rows = sample_points(1000, keep=keep, limit=100, seed=0)
    assert len(rows) == 100 and {3, 500, 999} <= set(rows.tolist())
    assert len(sample_points(50, keep=np.zeros(50, bool), limit=100)) == 50
