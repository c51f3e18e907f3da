"""TimeBudget: measurement window, stop decision; the evaluation-time guess."""

from __future__ import annotations

import time

import pytest

from sparsercnn.engine.time_budget import (
    EVAL_OVERHEAD_S,
    TimeBudget,
    estimate_eval_seconds,
)


def test_measures_after_skipped_iterations() -> None:
    budget = TimeBudget(100.0, time.perf_counter(), skip_iters=2, measure_iters=3)
    assert [budget.record(s) for s in (9.0, 9.0, 1.0, 2.0)] == [False] * 4
    assert budget.seconds_per_iter == pytest.approx(1.5)
    assert budget.record(3.0) is True
    assert budget.seconds_per_iter == pytest.approx(2.0)
    # A sliding window of the last 3 iterations; a refit is asked for every 25 iterations.
    assert budget.record(4.0) is False
    assert budget.seconds_per_iter == pytest.approx(3.0)
    assert [budget.record(1.0) for _ in range(24)] == [False] * 23 + [True]
    assert budget.seconds_per_iter == pytest.approx(1.0)


def test_should_stop_accounts_for_the_reserve() -> None:
    budget = TimeBudget(10.0, time.perf_counter() - 5.0)  # 5 s of 10 spent
    assert not budget.should_stop(next_iter_seconds=1.0, reserve_seconds=2.0)
    assert budget.should_stop(next_iter_seconds=1.0, reserve_seconds=4.5)
    assert budget.remaining() == pytest.approx(5.0, abs=0.5)


def test_rejects_empty_budget() -> None:
    with pytest.raises(ValueError, match="positive"):
        TimeBudget(0.0, time.perf_counter())


def test_eval_estimate_scales_with_images() -> None:
    small = estimate_eval_seconds(2.0, images_per_iter=4, num_eval_images=10)
    large = estimate_eval_seconds(2.0, images_per_iter=4, num_eval_images=1000)
    assert small > EVAL_OVERHEAD_S
    assert large - EVAL_OVERHEAD_S == pytest.approx(100 * (small - EVAL_OVERHEAD_S))
