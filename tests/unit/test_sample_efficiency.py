"""benchmarks/sample_efficiency.py: how its simulated annotator spends its first labels under each VA flow."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sample_efficiency", ROOT / "benchmarks" / "sample_efficiency.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def rare_task(bench: ModuleType, *, n: int = 3000, positives: int = 60, seed: int = 0) -> object:
    """A 2% label whose zero-shot ranking is noisy: positives spread over its first few hundred ranks."""
    rng = np.random.default_rng(seed)
    truth = np.zeros(n, dtype=bool)
    truth[rng.choice(n, size=positives, replace=False)] = True
    x = rng.standard_normal((n, 16)).astype(np.float32)
    x[truth, 0] += 3.0
    x = bench.l2_rows(x)
    noisy = x[:, 0] + rng.normal(0.0, 0.6, n)
    search = np.argsort(-noisy, kind="stable")
    test_truth = np.zeros(600, dtype=bool)
    test_truth[:12] = True
    test_x = rng.standard_normal((600, 16)).astype(np.float32)
    test_x[test_truth, 0] += 3.0
    return bench.Task(x, truth, bench.l2_rows(test_x), test_truth, rng.permutation(n), search)


def test_search_first_flow_tops_up_with_search_alone_after_one_mixed_batch(bench: ModuleType) -> None:
    task = rare_task(bench)
    annotator = bench.Annotator(task, 0, "search-first")
    annotator.bootstrap()
    sources = annotator.sources
    assert sources[: bench.BATCH] == ["search" if i % 2 == 0 else "random" for i in range(bench.BATCH)]
    assert min(annotator.counts()) >= bench.MIN_EACH
    # after the first batch only search is labelled until 10 positives (this task needs more than one batch)
    assert len(sources) > bench.BATCH
    assert set(sources[bench.BATCH :]) == {"search"}


def test_interleave_flow_alternates_until_the_build_minimum_at_a_batch_boundary(bench: ModuleType) -> None:
    task = rare_task(bench)
    annotator = bench.Annotator(task, 0, "interleave")
    annotator.bootstrap()
    sources = annotator.sources
    assert len(sources) % bench.BATCH == 0 and len(sources) > bench.BATCH
    assert sources == ["search" if i % 2 == 0 else "random" for i in range(len(sources))]
    assert min(annotator.counts()) >= bench.MIN_EACH
    # it stopped at the first batch boundary where the build minimum was met
    truth = task.truth[np.asarray(annotator.order)]
    cut = len(sources) - bench.BATCH
    assert min(int(truth[:cut].sum()), cut - int(truth[:cut].sum())) < bench.MIN_EACH


def test_first_batch_after_the_first_build_comes_from_the_flows_first_feed(bench: ModuleType) -> None:
    task = rare_task(bench)
    for flow, first in (("search-first", "top_positive"), ("interleave", "borderline")):
        annotator = bench.Annotator(task, 0, flow)
        annotator.bootstrap()
        start = len(annotator.order)
        fresh = bench.Annotator(task, 0, flow)
        order = fresh.run(start + bench.BATCH)
        assert len(order) == start + bench.BATCH
        assert fresh.sources[:start] == annotator.sources
        assert set(fresh.sources[start:]) == {first}, flow


def test_a_lower_build_minimum_builds_sooner_in_the_interleave_flow(bench: ModuleType) -> None:
    task = rare_task(bench)
    # the text query throughout (like_from 0), so both draw the same items until the smaller minimum
    ten = bench.Annotator(task, 0, "interleave", 10, 0)
    ten.bootstrap()
    five = bench.Annotator(task, 0, "interleave", 5, 0)
    five.bootstrap()
    assert min(five.counts()) >= 5
    assert len(five.order) < len(ten.order)
    assert five.order == ten.order[: len(five.order)]


@pytest.mark.parametrize("like_query", ["model", "rocchio"])
def test_interleave_search_half_turns_to_more_like_my_positives_from_three_positives(
    bench: ModuleType, like_query: str
) -> None:
    task = rare_task(bench, seed=3)
    liked = bench.Annotator(task, 0, "interleave", 10, 3, like_query)
    liked.bootstrap()
    text = bench.Annotator(task, 0, "interleave", 10, 0)
    text.bootstrap()
    order = np.asarray(liked.order)
    truth = task.truth[order]
    # the first page that starts with 3 positives labelled: its first search item is the product's query's best
    start = next(b for b in range(0, len(order), bench.BATCH) if truth[:b].sum() >= 3)
    assert text.order[:start] == liked.order[:start]  # the same until then
    pos, neg = task.corpus[order[:start][truth[:start]]], task.corpus[order[:start][~truth[:start]]]
    query = bench.like_positives(pos, neg, C=bench.C) if like_query == "model" else bench.rocchio_query(pos, neg)
    ranking = np.argsort(-(task.corpus @ query), kind="stable")
    best = int(ranking[~np.isin(ranking, order[:start])][0])
    assert liked.order[start] == best and liked.sources[start] == "search"
    assert text.order[start] != best  # the text query would have picked another shot


def test_paired_means_compare_only_the_runs_both_methods_cover(bench: ModuleType) -> None:
    # one label, three runs, two sizes; the baseline covers one run at the first size (a lucky 0.9) and none
    # at the second: its unpaired mean would beat VA's, the paired one compares VA's 0.5 on that run with it
    nan = float("nan")
    va = np.array([[[0.5, 0.6], [0.7, 0.7], [0.8, 0.8]]])
    baseline = np.array([[[0.9, nan], [nan, nan], [nan, nan]]])
    first, second = bench.paired_means(va, baseline)
    assert first == (0.5, 0.9, 1)
    assert second[2] == 0 and np.isnan(second[0]) and np.isnan(second[1])


@pytest.mark.parametrize("flow", ["interleave", "interleave-in-turn"])
def test_batches_after_the_first_build_follow_the_flows_cycle(bench: ModuleType, flow: str) -> None:
    # the product's flow labels borderline every other batch (annotator_core.feeds.LABELLING_CYCLE); the flow
    # before took the four feeds in turn
    task = rare_task(bench)
    boot = bench.Annotator(task, 0, flow)
    boot.bootstrap()
    start = len(boot.order)
    cycle = bench.CYCLES[flow]
    annotator = bench.Annotator(task, 0, flow)
    annotator.run(start + 7 * bench.BATCH)
    batches = [annotator.sources[start + i * bench.BATCH] for i in range(7)]
    assert batches == [cycle[i % len(cycle)] for i in range(7)]
    for i in range(7):  # each batch is one source throughout
        assert set(annotator.sources[start + i * bench.BATCH : start + (i + 1) * bench.BATCH]) == {batches[i]}
    if flow == "interleave":
        assert batches[:6] == ["borderline", "random", "borderline", "top_positive", "borderline", "top_negative"]
        assert bench.CYCLES[flow] == bench.LABELLING_CYCLE


def test_same_size_reference_draws_the_labelled_class_counts_from_the_test_part(bench: ModuleType) -> None:
    # 50 positives and 950 negatives; the model flags the first 40 positives and 95 of the negatives
    truth = np.zeros(1000, dtype=bool)
    truth[:50] = True
    flagged = np.zeros(1000, dtype=bool)
    flagged[:40] = True
    flagged[100:195] = True
    values = [bench.same_size_balanced_accuracy(truth, flagged, 10, 90, np.random.default_rng(s)) for s in range(200)]
    # unbiased for the test part's balanced accuracy (0.5 * (0.8 + 0.9)), with the noise of a 10 + 90 check
    assert np.mean(values) == pytest.approx(0.85, abs=0.01)
    assert np.std(values) > 0.03
    # asking for more positives than the test part holds takes all of them: the exact value, every draw
    everything = bench.same_size_balanced_accuracy(truth, flagged, 80, 950, np.random.default_rng(0))
    assert everything == pytest.approx(0.85)
