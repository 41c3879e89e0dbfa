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


def digits_npz(path: Path, **drop: bool) -> Path:
    """scikit-learn's 1,797 real 8x8 digit images as an .npz of your own data would hold them."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    arrays = {"x": digits.data, "y": digits.target, "names": np.asarray([f"digit {i}" for i in range(10)])}
    np.savez(path, **{k: v for k, v in arrays.items() if not drop.get(k)})
    return path


def test_own_data_from_an_npz_becomes_a_pool_of_unit_rows_with_its_class_names(
    bench: ModuleType, tmp_path: Path
) -> None:
    pool = bench.load_pool(20_000, 0, str(digits_npz(tmp_path / "digits.npz")))
    # a tenth of the 1,797 stays outside the pool for the zero-shot query; a fifth of the pool is the test part
    assert len(pool.corpus_x) + len(pool.test_x) == 1797 * 9 // 10
    assert len(pool.test_x) == (1797 * 9 // 10) // 5
    assert len(pool.outside_x) == 1797 - 1797 * 9 // 10
    assert pool.corpus_x.shape[1] == 64  # components 0: the rows as they are, not a projection
    assert np.allclose(np.linalg.norm(pool.corpus_x, axis=1), 1.0, atol=1e-5)
    assert pool.names[3] == "digit 3"
    # the same rows, not a shuffle of class ids: each corpus row's class is the one the file gives that image
    from sklearn.datasets import load_digits

    digits = load_digits()
    unit = digits.data / np.linalg.norm(digits.data, axis=1, keepdims=True)
    first = np.flatnonzero(np.all(np.isclose(unit, pool.corpus_x[0], atol=1e-5), axis=1))
    assert len(first) >= 1 and pool.corpus_c[0] in set(digits.target[first])
    # and a replay's tasks run on it
    bench.check_labels(pool, list(range(10)), 5)
    task = bench.make_task(pool, 3, 0, 0.1, zs_examples=5, zs_noise=1.0)
    assert task.truth.any() and task.test_y.any()


def test_unusable_own_data_is_refused_with_what_to_pass(bench: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="needs x and y"):
        bench.load_dataset(str(digits_npz(tmp_path / "no_y.npz", y=True)))
    np.savez(tmp_path / "float_y.npz", x=np.ones((4, 3)), y=np.asarray([0.0, 1.0, 0.5, 1.0]))
    with pytest.raises(SystemExit, match="one class id"):
        bench.load_dataset(str(tmp_path / "float_y.npz"))
    (tmp_path / "notes.npz").write_text("not an archive")
    with pytest.raises(SystemExit, match=r"cannot read it as \.npz"):
        bench.load_dataset(str(tmp_path / "notes.npz"))
    with pytest.raises(SystemExit, match="not a known dataset"):
        bench.load_dataset("cifar")
    pool = bench.load_pool(20_000, 0, str(digits_npz(tmp_path / "digits.npz")))
    with pytest.raises(SystemExit, match="items of it lie outside the pool"):
        bench.check_labels(pool, [3], 500)
    with pytest.raises(SystemExit, match=r"class ids are 0\.\.9"):
        bench.check_labels(pool, [10], 5)
