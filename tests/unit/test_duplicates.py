"""Near-duplicate groups in memory, group-aware folds (a property test), and feeds shown once per group."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotator_core.classifier import train
from annotator_core.corpus.scorer import _InMemoryView
from annotator_core.duplicates import DuplicateGroups, one_per_group, shown_once
from annotator_core.errors import ValidationFailed
from annotator_core.folds import stratified_group_folds
from annotator_core.metrics import model_quality_estimate
from annotator_core.shot_store import VectorMatrix


def table(groups: dict[str, list[str]]) -> pa.Table:
    rows = [
        {"shot_id": sid, "group_id": head, "representative": sid == head, "encoder": "handcrafted"}
        for head, members in groups.items()
        for sid in members
    ]
    return pa.Table.from_pylist(rows)


GROUPS = {"v1:0": ["v1:0", "v2:0", "v3:0"], "v1:50": ["v1:50", "v2:50"]}


def test_lookups() -> None:
    g = DuplicateGroups.from_table(table(GROUPS), version=3)
    assert (len(g), g.n_groups, g.n_hidden, g.version) == (5, 2, 3, 3)
    assert g.group_of("v3:0") == "v1:0" and g.group_of("v1:0") == "v1:0"
    assert g.group_of("v9:0") == "v9:0"  # a singleton is its own group
    assert (g.size_of("v2:0"), g.size_of("v2:50"), g.size_of("v9:0")) == (3, 2, 1)
    assert g.members("v1:0") == ["v1:0", "v2:0", "v3:0"]  # the representative first
    assert g.members("v2:50") == ["v1:50", "v2:50"]  # a member's id names its group too
    assert g.members("v9:0") == ["v9:0"]
    assert sorted(g.hidden_ids()) == ["v2:0", "v2:50", "v3:0"]
    assert g.is_hidden(["v1:0", "v2:0", "v9:0"]).tolist() == [False, True, False]
    assert g.groups_of(["v3:0", "v9:0"]) == (["v1:0", "v9:0"], [3, 1])
    keys = g.fold_groups(["v1:0", "v9:0", "v2:0", "v8:0", "v2:50"])
    assert keys[0] == keys[2] and len(set(keys.tolist())) == 4
    assert g.first_of_each(["v2:0", "v9:0", "v1:0", "v2:50", "v1:50"]) == [0, 1, 3]
    assert g.nbytes() < 200


def test_empty_and_refusals() -> None:
    g = DuplicateGroups.from_table(table({}))
    assert (len(g), g.group_of("a:1"), g.size_of("a:1"), g.hidden_ids()) == (0, "a:1", 1, [])
    assert g.fold_groups(["a:1", "b:1"]).tolist() == [0, 1]
    twice = pa.Table.from_pylist([{"shot_id": "a:1", "group_id": "a:1"}, {"shot_id": "a:1", "group_id": "b:1"}])
    with pytest.raises(ValidationFailed, match="twice"):
        DuplicateGroups.from_table(twice)


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=4, max_size=40),
    flips=st.lists(st.booleans(), min_size=240, max_size=240),
    folds=st.integers(2, 6),
    seed=st.integers(0, 10_000),
)
def test_no_group_is_split_across_folds(sizes: list[int], flips: list[bool], folds: int, seed: int) -> None:
    groups = np.repeat(np.arange(len(sizes)), sizes)
    y = np.array(flips[: groups.shape[0]])
    split = stratified_group_folds(y, groups, folds=folds, seed=seed)
    fold_of = np.full(groups.shape[0], -1)
    for f, rows in enumerate(split):
        assert (fold_of[rows] == -1).all()  # every row in exactly one fold
        fold_of[rows] = f
    assert (fold_of >= 0).all()
    for g in np.unique(groups):
        assert np.unique(fold_of[groups == g]).shape[0] == 1  # the group is in one fold


def test_copies_in_other_folds_inflate_quality_and_group_folds_do_not() -> None:
    """Labels that are noise, each shot with near-identical copies: plain folds see the copies in training."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 64))
    y_base = rng.random(40) < 0.5
    x = np.repeat(base, 4, axis=0) + rng.normal(scale=1e-3, size=(160, 64))
    y = np.repeat(y_base, 4)
    groups = np.repeat(np.arange(40), 4)
    plain = model_quality_estimate(x, y, folds=5, seed=1, C=10.0)
    honest = model_quality_estimate(x, y, folds=5, seed=1, C=10.0, groups=groups)
    assert plain.value > 0.9  # memorised: every held-out shot has its copies in training
    assert honest.value < 0.75  # the labels are noise; held-out groups are never seen


def test_distinct_groups_score_as_plain_folds() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 8)), np.arange(30) % 3 == 0
    a = model_quality_estimate(x, y, folds=5, seed=4)
    b = model_quality_estimate(x, y, folds=5, seed=4, groups=np.arange(30))
    assert a.value == b.value


def test_diversity_counts_a_group_once_per_class() -> None:
    keys = np.array([0, 0, 0, 1, 2, 2])
    y = np.array([True, True, False, True, False, False])
    assert one_per_group(keys, y).tolist() == [0, 2, 3, 4]
    assert one_per_group(None, y).tolist() == list(range(6))


def _view(n: int, seed: int = 0) -> _InMemoryView:
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(n, 8)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    ids = np.array([f"v:{i}" for i in range(n)], dtype=object)
    return _InMemoryView(VectorMatrix(ids=ids, matrix=matrix, cluster_ids=np.zeros(n, np.int64), version=1))


def test_feeds_show_each_group_once_and_stay_full() -> None:
    view = _view(400)
    x = view.vectors.matrix
    clf = train(x[:40], np.arange(40) % 2 == 0, seed=0, encoder="test")
    scores = clf.predict_proba(x, normalised=True)
    # The 30 best-scoring shots are copies hidden behind one representative (the worst-scoring shot).
    top = np.argsort(-scores)[:30]
    head = f"v:{int(np.argmin(scores))}"
    groups = DuplicateGroups.from_table(table({head: [head, *(f"v:{i}" for i in top)]}))
    labelled = [f"v:{i}" for i in range(40)]
    picks = shown_once(view, clf, groups, labelled_ids=labelled, size=50, seed=3)
    hidden = set(groups.hidden_ids())
    for name, items in picks.feeds.items():
        ids = [sid for sid, _ in items]
        assert len(ids) == 50, name
        assert not hidden & set(ids), name
    expected = [f"v:{i}" for i in np.argsort(-scores) if f"v:{i}" not in hidden][:50]
    assert [sid for sid, _ in picks.feeds["top_positive"]] == expected  # exact, not merely full
    assert not set(labelled) & {sid for sid, _ in picks.feeds["random"]}
