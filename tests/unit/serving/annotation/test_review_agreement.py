"""Review helpers on tables small enough to work out by hand: agreement, Cohen's and Fleiss' kappa, contradictions."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from serving.annotation.review import (
    agreement,
    annotator_disagreements,
    cohen_kappa,
    fleiss_kappa,
    model_contradictions,
    votes_by_shot,
)


@dataclass(frozen=True)
class Row:
    shot_id: str
    annotator: str
    value: bool | None


def two_raters(both_yes: int, only_a: int, only_b: int, both_no: int) -> tuple[list[bool], list[bool]]:
    """The two raters' answers behind a 2x2 agreement table."""
    a = [True] * both_yes + [True] * only_a + [False] * only_b + [False] * both_no
    b = [True] * both_yes + [False] * only_a + [True] * only_b + [False] * both_no
    return a, b


def test_cohen_kappa_of_a_table_worked_by_hand() -> None:
    # 50 items: 20 both yes, 5 only A, 10 only B, 15 both no. Observed agreement 35/50 = 0.7;
    # A says yes 25/50, B 30/50, so chance agreement 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = 0.2 / 0.5 = 0.4.
    a, b = two_raters(20, 5, 10, 15)
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(b, a) == pytest.approx(0.4)  # symmetric


@pytest.mark.parametrize(
    ("a", "b", "kappa"),
    [
        ([True, False, True, False], [True, False, True, False], 1.0),  # perfect agreement
        ([True, False], [False, True], -1.0),  # perfect disagreement, both balanced: chance is 0.5
        ([True, True, False, False], [True, False, True, False], 0.0),  # agreement exactly at chance
        ([True, True, True], [True, True, True], 1.0),  # neither varies and they agree: chance is 1
        ([True, True], [False, False], 0.0),  # neither varies and they disagree: chance is 0, observed 0
    ],
)
def test_cohen_kappa_edge_cases(a: list[bool], b: list[bool], kappa: float) -> None:
    assert cohen_kappa(a, b) == pytest.approx(kappa)


def test_cohen_kappa_of_no_items_is_none() -> None:
    assert cohen_kappa([], []) is None


def test_fleiss_kappa_of_a_table_worked_by_hand() -> None:
    # Four shots, three raters each: 3+/0-, 2+/1-, 0+/3-, 1+/2-. Per-shot agreement 1, 1/3, 1, 1/3 (mean 2/3);
    # 6 of 12 votes positive, so chance agreement 0.5^2 + 0.5^2 = 0.5; kappa = (2/3 - 0.5) / 0.5 = 1/3.
    votes = {
        "s1": {"a": True, "b": True, "c": True},
        "s2": {"a": True, "b": True, "c": False},
        "s3": {"a": False, "b": False, "c": False},
        "s4": {"a": True, "b": False, "c": False},
    }
    assert fleiss_kappa(votes) == pytest.approx(1 / 3)


def test_fleiss_kappa_ignores_shots_with_one_rater_and_is_none_without_any_pair() -> None:
    assert fleiss_kappa({"s1": {"a": True}, "s2": {"b": False}}) is None
    assert fleiss_kappa({}) is None
    both = {"s1": {"a": True, "b": True}, "s2": {"a": False, "b": False}}
    assert fleiss_kappa({**both, "s3": {"c": True}}) == pytest.approx(fleiss_kappa(both)) == pytest.approx(1.0)


def test_agreement_summary_worked_by_hand() -> None:
    votes = {
        "s1": {"ann": True, "ben": True},
        "s2": {"ann": True, "ben": False},
        "s3": {"ann": False, "ben": False, "cat": False},
        "s4": {"cat": True},  # one annotator: counted as annotated, not in agreement
    }
    out = agreement(votes)
    assert out["annotators"] == ["ann", "ben", "cat"]
    assert out["shots_annotated"] == 4 and out["shots_with_several_annotators"] == 3
    assert out["agreement"] == pytest.approx(2 / 3)  # s1 and s3 agree, s2 does not
    # ann/ben over s1-s3: observed 2/3, chance 2/3 * 1/3 + 1/3 * 2/3 = 4/9, kappa (2/9) / (5/9) = 0.4.
    # ann/cat and ben/cat share only s3, where both say no and never vary: kappa 1.
    assert [(p["annotators"], p["shots"]) for p in out["pairs"]] == [
        (["ann", "ben"], 3),
        (["ann", "cat"], 1),
        (["ben", "cat"], 1),
    ]
    assert [p["cohen_kappa"] for p in out["pairs"]] == pytest.approx([0.4, 1.0, 1.0])
    assert out["cohen_kappa"] == pytest.approx(0.8)  # the mean over pairs
    # Fleiss over s1-s3: per-shot agreement 1, 0, 1 (mean 2/3); 3 of 7 votes positive, chance 25/49.
    assert out["fleiss_kappa"] == pytest.approx((2 / 3 - 25 / 49) / (1 - 25 / 49)) == pytest.approx(23 / 72)


def test_agreement_of_single_annotations_has_nothing_to_compare() -> None:
    out = agreement({"s1": {"ann": True}, "s2": {"ben": False}})
    assert out["shots_annotated"] == 2 and out["shots_with_several_annotators"] == 0
    assert out["agreement"] is None and out["cohen_kappa"] is None and out["fleiss_kappa"] is None
    assert out["pairs"] == []  # ann and ben never labelled the same shot


def test_votes_by_shot_leaves_out_withdrawn_annotations() -> None:
    rows = [Row("s1", "ann", True), Row("s1", "ben", None), Row("s2", "ben", False), Row("s3", "ann", None)]
    assert votes_by_shot(rows) == {"s1": {"ann": True}, "s2": {"ben": False}}


def test_annotator_disagreements_lists_only_split_shots_with_votes_sorted_by_name() -> None:
    votes = {"s1": {"ben": False, "ann": True}, "s2": {"ann": True, "ben": True}, "s3": {"cat": False}}
    assert annotator_disagreements(votes) == [{"shot_id": "s1", "votes": {"ann": True, "ben": False}}]


def test_model_contradictions_are_confident_opposites_most_confident_first() -> None:
    consensus = {"p-low": True, "p-lower": True, "p-edge": True, "n-high": False, "n-ok": False, "unscored": True}
    scores = {"p-low": 0.15, "p-lower": 0.01, "p-edge": 0.2, "n-high": 0.9, "n-ok": 0.5}
    out = model_contradictions(consensus, scores)
    # Thresholds are strict: a positive at exactly 0.2 is not a contradiction.
    assert [(r["shot_id"], r["consensus"]) for r in out] == [("p-lower", True), ("n-high", False), ("p-low", True)]
    assert [r["score"] for r in out] == pytest.approx([0.01, 0.9, 0.15])
    strict = model_contradictions(consensus, scores, high=0.95, low=0.05)
    assert [r["shot_id"] for r in strict] == ["p-lower"]
