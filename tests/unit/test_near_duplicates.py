"""The near-duplicate self-join and grouping: against brute force on random vectors with planted duplicates."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotator_core.errors import ValidationFailed
from annotator_core.near_duplicates import (
    UnionFind,
    default_threshold,
    group_near_duplicates,
    partition,
    similar_pairs,
)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def planted(n_sources: int, copies: int, *, dim: int = 64, noise: float = 0.02, seed: int = 0) -> np.ndarray:
    """``n_sources`` random unit vectors, each followed by ``copies`` noisy copies of itself (rows shuffled)."""
    rng = np.random.default_rng(seed)
    sources = unit(rng.standard_normal((n_sources, dim)))
    rows = [sources]
    for _ in range(copies):
        rows.append(unit(sources + noise * rng.standard_normal(sources.shape)))
    x = np.concatenate(rows)
    return x[rng.permutation(len(x))]


def brute_force(x: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    i, j = np.nonzero(np.triu(x @ x.T >= threshold, k=1))
    return set(zip(i.tolist(), j.tolist(), strict=True))


def as_set(pairs: np.ndarray) -> set[tuple[int, int]]:
    return {(int(a), int(b)) for a, b in pairs}


def test_union_find_joins_chains_and_keeps_the_rest_apart() -> None:
    sets = UnionFind(7)
    for a, b in [(0, 1), (1, 2), (4, 5), (2, 0)]:
        sets.union(a, b)
    roots = sets.components()
    assert roots[0] == roots[1] == roots[2]
    assert roots[4] == roots[5]
    assert len({roots[0], roots[3], roots[4], roots[6]}) == 4


def test_small_corpus_is_one_exact_partition() -> None:
    x = planted(200, 2)
    assert as_set(similar_pairs(x, threshold=0.9)) == brute_force(x, 0.9)


def test_partitioned_join_matches_brute_force_on_planted_duplicates() -> None:
    # 9,000 rows: above the exact size, so ~94 partitions. Uniform random vectors have no structure at all,
    # the worst case for partitions: most shots lie near a boundary.
    x = planted(3000, 2, dim=128, noise=0.015)
    layout = partition(x, threshold=0.93)
    assert len(layout.centroids) > 50
    truth = brute_force(x, 0.93)
    found = as_set(similar_pairs(x, threshold=0.93))
    assert found <= truth  # never a pair below the threshold
    assert len(found) >= 0.98 * len(truth), (len(found), len(truth))


def test_boundary_shots_join_their_second_partition_too() -> None:
    x = planted(3000, 2, dim=128, noise=0.015)
    layout = partition(x, threshold=0.93)
    near = (layout.extra >= 0).sum()
    assert 0 < near < len(x)
    assert sum(len(m) for m in layout.members()) == len(x) + near
    truth = brute_force(x, 0.93)
    without = as_set(similar_pairs(x, threshold=0.93, boundary_share=0.0))
    assert len(without) < 0.95 * len(as_set(similar_pairs(x, threshold=0.93)))  # the pairs a boundary splits
    assert without <= truth


def test_queries_find_exactly_the_pairs_that_touch_them() -> None:
    x = planted(3000, 2, dim=128, noise=0.015)
    queries = np.arange(0, len(x), 7)
    everything = as_set(similar_pairs(x, threshold=0.93))
    touched = {p for p in everything if p[0] % 7 == 0 or p[1] % 7 == 0}
    assert as_set(similar_pairs(x, threshold=0.93, queries=queries)) == touched


@settings(max_examples=25, deadline=None)
@given(
    n_sources=st.integers(1, 40),
    copies=st.integers(0, 3),
    threshold=st.floats(0.8, 0.99),
    seed=st.integers(0, 10_000),
)
def test_exact_join_equals_brute_force(n_sources: int, copies: int, threshold: float, seed: int) -> None:
    x = planted(n_sources, copies, dim=16, noise=0.1, seed=seed)
    found = as_set(similar_pairs(x, threshold=threshold))
    assert found == brute_force(x, threshold) or _only_ties(x, threshold, found ^ brute_force(x, threshold))


def _only_ties(x: np.ndarray, threshold: float, differing: set[tuple[int, int]]) -> bool:
    """Pairs found by one product and not the other differ only by float rounding at the threshold."""
    return all(abs(float(x[a] @ x[b]) - threshold) < 1e-5 for a, b in differing)


def test_groups_are_components_with_the_longest_shot_as_representative() -> None:
    ids = ["v:0", "v:10", "w:0", "w:5", "x:0"]
    durations = np.array([2.0, 5.0, 5.0, 1.0, 3.0])
    starts = np.array([0.0, 0.4, 0.2, 0.2, 0.0])
    groups = group_near_duplicates(
        shot_ids=ids, durations=durations, starts=starts, pairs=np.array([[0, 1], [1, 2], [3, 3]])
    )
    assert set(groups) == {"v:0", "v:10", "w:0"}  # w:5 and x:0 are singletons
    # v:10 and w:0 are equally long; w:0 starts earlier
    assert {sid: (m.group_id, m.representative) for sid, m in groups.items()} == {
        "v:0": ("w:0", False), "v:10": ("w:0", False), "w:0": ("w:0", True),
    }  # fmt: skip


def test_ties_of_length_and_start_go_to_the_smallest_shot_id() -> None:
    groups = group_near_duplicates(
        shot_ids=["b:1", "a:1"], durations=np.array([1.0, 1.0]), starts=np.array([0.0, 0.0]), pairs=np.array([[0, 1]])
    )
    assert groups["b:1"].group_id == "a:1" and groups["a:1"].representative


def test_existing_groups_absorb_new_pairs_and_merge() -> None:
    ids = ["a:0", "b:0", "c:0", "d:0", "new:0"]
    existing = {"a:0": "a:0", "b:0": "a:0", "c:0": "c:0", "d:0": "c:0"}
    durations = np.array([3.0, 1.0, 2.0, 1.0, 9.0])
    starts = np.zeros(5)
    # the new shot is near b and d: both old groups become one, named after the new, longest shot
    groups = group_near_duplicates(shot_ids=ids, durations=durations, starts=starts, pairs=np.array([[1, 4], [3, 4]]),
                              existing=existing)  # fmt: skip
    assert {m.group_id for m in groups.values()} == {"new:0"} and len(groups) == 5
    unchanged = group_near_duplicates(shot_ids=ids, durations=durations, starts=starts, pairs=np.zeros((0, 2)),
                                 existing=existing)  # fmt: skip
    assert {sid: m.group_id for sid, m in unchanged.items()} == existing


def test_bad_threshold_names_the_value_and_the_fix() -> None:
    with pytest.raises(ValidationFailed, match=r"1\.5.*VA_DUPLICATE_THRESHOLD"):
        similar_pairs(np.eye(3, dtype=np.float32), threshold=1.5)


def test_each_encoder_family_has_its_own_default() -> None:
    assert default_threshold("handcrafted") != default_threshold("clip:openai/clip-vit-base-patch32")
    # random weights put distinct shots close together: only the same picture may group
    assert default_threshold("tiny-clip") == default_threshold("random-clip:vit-b-32") > 0.99
