"""benchmarks/quality_caveat.py: the labelled sets it replays (search-found labels with k random ones)."""

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
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("quality_caveat", ROOT / "benchmarks" / "quality_caveat.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _task(bench: ModuleType) -> object:
    rng = np.random.default_rng(0)
    x = bench.se.l2_rows(rng.standard_normal((200, 8)).astype(np.float32))
    truth = np.zeros(200, dtype=bool)
    truth[:20] = True
    search = np.arange(200)  # the search ranks the positives first
    random = rng.permutation(200)
    return bench.se.Task(x, truth, x[:50], truth[:50], random, search)


def test_search_with_random_takes_the_search_top_and_k_random_shots_not_among_them(bench: ModuleType) -> None:
    task = _task(bench)
    rows = bench.search_with_random(task, 30, 5)
    assert rows.shape == (30,) and np.unique(rows).shape == (30,)
    np.testing.assert_array_equal(rows[:25], np.arange(25))
    expected = [r for r in task.random if r >= 25][:5]
    np.testing.assert_array_equal(rows[25:], expected)
    np.testing.assert_array_equal(bench.search_with_random(task, 30, 0), np.arange(30))
    with pytest.raises(ValueError, match=r"k must be within 0\.\.n"):
        bench.search_with_random(task, 10, 11)


def test_the_share_bins_split_none_from_some(bench: ModuleType) -> None:
    share = np.array([0.0, 0.01, 0.02, 0.1, 0.5])
    assert bench.in_bin(share, 0.0, 0.0).tolist() == [True, False, False, False, False]
    assert bench.in_bin(share, 0.0, 0.02).tolist() == [False, True, True, False, False]
    assert bench.in_bin(share, 0.1, 0.2).tolist() == [False, False, False, False, False]
