"""Recommenders over annotation sources (paper §5.2): choices on exact cases, state round trips."""

from __future__ import annotations

import json
import math

import pytest

from annotator_core.errors import ValidationFailed
from annotator_core.recommend import SOURCES, Recommender, make_recommender


def test_round_robin_cycles_through_every_source() -> None:
    rec = make_recommender("round-robin")
    seen = []
    for _ in range(2 * len(SOURCES)):
        seen.append(rec.recommend())
        rec.update({seen[-1]: 0.0})
    assert seen == list(SOURCES) * 2


def test_ucb_tries_every_source_first_then_follows_the_latest_reward() -> None:
    rec = make_recommender("ucb", c=0.01)
    first = []
    for reward in (0.01, 0.05, -0.02, 0.03, 0.0):
        first.append(rec.recommend())
        rec.update({first[-1]: reward})
    assert first == list(SOURCES)
    assert rec.recommend() == "top_positive"  # highest most-recent reward, equal counts
    rec.update({"top_positive": -0.1})  # its latest reward is what counts, not the average
    assert rec.recommend() == "borderline"


def test_ucb_bonus_favours_rarely_tried_sources() -> None:
    rec = make_recommender("ucb", c=1.0, sources=("a", "b"))
    rec.update({"a": 0.1})
    rec.update({"b": 0.0})
    for _ in range(20):
        rec.update({"a": 0.1})
    bounds = rec.upper_bounds()  # type: ignore[attr-defined]
    assert bounds["b"] == pytest.approx(0.0 + math.sqrt(math.log(22) / 1))
    assert bounds["a"] == pytest.approx(0.1 + math.sqrt(math.log(22) / 21))
    assert rec.recommend() == "b"


def test_epsilon_greedy_exploits_three_quarters_of_the_time() -> None:
    rec = make_recommender("epsilon-greedy", epsilon=0.25, seed=4)
    for source, reward in zip(SOURCES, (0.0, 0.0, 0.2, 0.0, 0.0), strict=True):
        rec.update({source: reward})
    picks = []
    for _ in range(2000):
        picks.append(rec.recommend())
        assert rec.recommend() == picks[-1]  # asking again does not change the answer
        rec.steps += 1  # move on without changing the scores
    share = picks.count("top_negative") / len(picks)
    assert share == pytest.approx(0.75 + 0.25 / len(SOURCES), abs=0.03)


def test_none_never_recommends() -> None:
    rec = make_recommender("none")
    rec.update({"search": 1.0})
    assert rec.recommend() == ""


@pytest.mark.parametrize("name", ["ucb", "epsilon-greedy", "round-robin", "none"])
def test_state_survives_a_json_round_trip(name: str) -> None:
    rec = make_recommender(name, c=0.02, epsilon=0.3, seed=9)
    for i, source in enumerate(SOURCES * 2):
        rec.update({source: 0.01 * i, "import": 5.0})  # non-arm sources are ignored
    back = Recommender.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert type(back) is type(rec)
    assert back.to_dict() == rec.to_dict()
    for _ in range(6):
        assert back.recommend() == rec.recommend()
        back.update({back.recommend(): 0.02})
        rec.update({rec.recommend(): 0.02})
    assert "import" not in rec.counts


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValidationFailed, match="unknown recommender 'thompson'; use one of ucb"):
        make_recommender("thompson")
    with pytest.raises(ValidationFailed, match="epsilon must be in"):
        make_recommender("epsilon-greedy", epsilon=1.5)
    with pytest.raises(ValidationFailed, match="must be finite"):
        make_recommender("ucb").update({"search": float("nan")})
