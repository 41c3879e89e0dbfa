"""Rewards the live product can measure (issue 13), each on a small known sequence of builds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from annotator_core.errors import ValidationFailed
from annotator_core.rewards import (
    REWARDS,
    BuildSignals,
    average_precision,
    batch_counts,
    random_sample_ap,
    rewards_for,
)

# Three builds: the first from search and random, then a top-positive batch, then a borderline one.
BUILDS = [
    BuildSignals(
        quality=0.60, random_ap=math.nan, batch=batch_counts(["search"] * 3 + ["random"] * 2, [1, 1, 0, 0, 0])
    ),
    BuildSignals(quality=0.70, random_ap=0.50, batch=batch_counts(["top_positive"] * 4, [1, 1, 1, 0])),
    BuildSignals(quality=0.65, random_ap=0.75, batch=batch_counts(["borderline", "random"], [0, 1]), random_labels=3),
]


def _replay(name: str) -> list[dict[str, float]]:
    previous = None
    out = []
    for build in BUILDS:
        out.append(rewards_for(name, previous, build))
        previous = build
    return out


def test_quality_reward_is_the_change_in_quality_for_each_new_batch_source() -> None:
    first, second, third = _replay("quality")
    assert first == {}
    assert second == {"top_positive": pytest.approx(0.10)}
    assert third == {"borderline": pytest.approx(-0.05), "random": pytest.approx(-0.05)}


def test_random_ap_reward_waits_for_a_sample_with_both_classes() -> None:
    first, second, third = _replay("random-ap")
    assert first == {} and second == {}  # the first build's random sample had no positive
    assert third == {"borderline": pytest.approx(0.25), "random": pytest.approx(0.25)}


def test_yield_reward_is_the_share_of_positives_per_source() -> None:
    first, second, third = _replay("yield")
    assert first == {"search": pytest.approx(2 / 3), "random": 0.0}
    assert second == {"top_positive": 0.75}
    assert third == {"borderline": 0.0, "random": 1.0}


def test_signals_survive_a_json_round_trip() -> None:
    import json

    for build in BUILDS:
        back = BuildSignals.from_dict(json.loads(json.dumps(build.as_dict())))
        assert back.batch == build.batch and back.quality == build.quality
        assert back.random_labels == build.random_labels
        assert (math.isnan(back.random_ap) and math.isnan(build.random_ap)) or back.random_ap == build.random_ap


def test_signals_saved_before_the_random_sample_was_counted_read_as_none() -> None:
    old = {"quality": 0.7, "random_ap": 0.5, "batch": {"random": [1, 4]}}
    assert BuildSignals.from_dict(old).random_labels == 0


def test_average_precision_matches_scikit_learn_and_is_pessimistic_on_ties() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random(300) < 0.1
    scores = rng.normal(size=300) + truth
    assert average_precision(scores, truth) == pytest.approx(average_precision_score(truth, scores))
    assert average_precision(np.zeros(10), np.arange(10) < 2) == pytest.approx(
        (1 / 9 + 2 / 10) / 2
    )  # a constant score ranks the negatives first
    assert math.isnan(average_precision(scores, np.zeros(300, dtype=bool)))


def test_random_sample_ap_uses_only_random_feed_rows() -> None:
    out_of_fold = np.array([3.0, 2.0, 1.0, 0.0, -1.0, 5.0])
    labels = np.array([1, 0, 1, 0, 0, 0], dtype=bool)
    from_random = np.array([1, 1, 1, 1, 0, 0], dtype=bool)  # the last two came from other sources
    assert random_sample_ap(out_of_fold, labels, from_random) == pytest.approx((1 + 2 / 3) / 2)
    assert math.isnan(random_sample_ap(out_of_fold, labels, ~from_random))  # only negatives there


def test_unknown_reward_and_bad_input_are_refused() -> None:
    assert set(REWARDS) == {"quality", "random-ap", "yield"}
    with pytest.raises(ValidationFailed, match="unknown reward 'test-ap'; use one of quality, random-ap, yield"):
        rewards_for("test-ap", None, BUILDS[0])
    with pytest.raises(ValidationFailed, match="parallel sequences"):
        batch_counts(["search"], [True, False])
