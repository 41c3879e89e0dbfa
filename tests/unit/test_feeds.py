"""The four feeds on hand-made scores and, as properties, on any scores."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from annotator_core.errors import ValidationFailed
from annotator_core.feeds import FEEDS, LABELLING_CYCLE, build_feeds, next_feed


def test_hand_made_scores() -> None:
    scores = np.array([0.9, 0.1, 0.55, 0.48, 0.99, 0.02, 0.7, 0.35], dtype=np.float32)
    labelled = np.array([4, 3])  # 0.99 and 0.48 already labelled
    feeds = build_feeds(scores, labelled=labelled, size=3, seed=0)
    assert feeds.top_positive.tolist() == [4, 0, 6]  # labelled shots stay in the top feeds
    assert feeds.top_negative.tolist() == [5, 1, 7]
    assert feeds.borderline.tolist() == [2, 7, 6]  # 0.55, 0.35, 0.7 (0.48 is labelled)
    assert len(feeds.random) == 3 and not set(feeds.random.tolist()) & {3, 4}
    assert list(feeds.as_dict()) == list(FEEDS)


def test_bool_mask_and_indices_agree() -> None:
    rng = np.random.default_rng(3)
    scores = rng.random(1000).astype(np.float32)
    idx = rng.choice(1000, 100, replace=False)
    mask = np.zeros(1000, dtype=bool)
    mask[idx] = True
    a = build_feeds(scores, labelled=idx, size=20, seed=5)
    b = build_feeds(scores, labelled=mask, size=20, seed=5)
    for name in FEEDS:
        assert getattr(a, name).tolist() == getattr(b, name).tolist()


def test_small_corpus_gives_what_there_is() -> None:
    scores = np.array([0.2, 0.8, 0.6], dtype=np.float32)
    feeds = build_feeds(scores, labelled=np.array([0, 1]), size=50)
    assert feeds.top_positive.tolist() == [1, 2, 0]
    assert feeds.borderline.tolist() == [2] and feeds.random.tolist() == [2]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="NaN"):
        build_feeds(np.array([0.1, np.nan]), labelled=np.array([], dtype=np.int64))
    with pytest.raises(ValidationFailed, match=r"labelled mask has shape \(2,\); expected \(3,\)"):
        build_feeds(np.zeros(3), labelled=np.zeros(2, dtype=bool))
    with pytest.raises(ValidationFailed, match=r"outside 0\.\.2"):
        build_feeds(np.zeros(3), labelled=np.array([7]))


@settings(max_examples=150, deadline=None)
@given(
    scores=arrays(np.float32, st.integers(1, 300), elements=st.floats(0, 1, width=32)),
    size=st.integers(0, 60),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_feed_properties(scores, size, seed, data) -> None:
    n = scores.shape[0]
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    feeds = build_feeds(scores, labelled=mask, size=size, seed=seed)
    unlabelled = int((~mask).sum())
    assert len(feeds.top_positive) == len(feeds.top_negative) == min(size, n)
    assert len(feeds.borderline) == len(feeds.random) == min(size, unlabelled)
    for name in FEEDS:
        picked = getattr(feeds, name)
        assert len(set(picked.tolist())) == len(picked)  # no shot twice in a feed
    top = scores[feeds.top_positive]
    assert np.all(np.diff(top) <= 0)  # highest first
    rest = np.delete(scores, feeds.top_positive)
    assert top.size == 0 or rest.size == 0 or rest.max() <= top.min()  # truly the top
    bottom = scores[feeds.top_negative]
    assert np.all(np.diff(bottom) >= 0)
    rest = np.delete(scores, feeds.top_negative)
    assert bottom.size == 0 or rest.size == 0 or rest.min() >= bottom.max()
    assert not mask[feeds.borderline].any() and not mask[feeds.random].any()
    dist = np.abs(scores - 0.5)
    chosen = dist[feeds.borderline]
    assert np.all(np.diff(chosen) >= 0)
    others = np.setdiff1d(np.flatnonzero(~mask), feeds.borderline)
    assert chosen.size == 0 or others.size == 0 or dist[others].min() >= chosen.max()
    again = build_feeds(scores, labelled=mask, size=size, seed=seed)
    assert again.random.tolist() == feeds.random.tolist()  # same seed, same sample


@pytest.mark.parametrize("order", ["random", "ascending", "constant"])
def test_large_corpus_matches_a_full_sort(order: str) -> None:
    """Above the prefilter size the sampled threshold must still give exactly the full sort's answer."""
    rng = np.random.default_rng(7)
    n = 200_003
    scores = {
        "random": rng.random(n).astype(np.float32),
        "ascending": np.linspace(0, 1, n, dtype=np.float32),  # worst case for a strided sample
        "constant": np.full(n, 0.25, dtype=np.float32),
    }[order]
    labelled = rng.choice(n, 5000, replace=False)
    feeds = build_feeds(scores, labelled=labelled, size=50, seed=1)
    np.testing.assert_array_equal(scores[feeds.top_positive], np.sort(scores)[::-1][:50])
    np.testing.assert_array_equal(scores[feeds.top_negative], np.sort(scores)[:50])
    mask = np.zeros(n, dtype=bool)
    mask[labelled] = True
    dist = np.abs(scores[~mask] - np.float32(0.5))
    np.testing.assert_array_equal(np.abs(scores[feeds.borderline] - np.float32(0.5)), np.sort(dist)[:50])


def test_next_feed_is_borderline_every_other_build_and_the_other_three_in_turn_between() -> None:
    got = [next_feed(v) for v in range(1, 14)]
    assert got[0::2] == ["borderline"] * 7
    assert got[1::2] == ["random", "top_positive", "top_negative", "random", "top_positive", "top_negative"]
    assert set(LABELLING_CYCLE) == set(FEEDS)


@pytest.mark.parametrize("version", [0, -3])
def test_next_feed_refuses_a_version_that_is_not_a_build(version: int) -> None:
    with pytest.raises(ValidationFailed, match="versions count from 1"):
        next_feed(version)
