"""TimeBudget: measurement window, stop decision; the evaluation-time guess; the periodic work's
share of the budget and the schedule refit of a run."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import pytest

from sparsercnn.config import TrainConfig
from sparsercnn.engine import time_budget
from sparsercnn.engine.lr_schedule import train_lr_factor
from sparsercnn.engine.time_budget import (
    EVAL_OVERHEAD_S,
    FINISH_OVERHEAD_S,
    BudgetedSchedule,
    PeriodicWork,
    TimeBudget,
    estimate_eval_seconds,
)


def test_measures_after_skipped_iterations() -> None:
    budget = TimeBudget(100.0, time.perf_counter(), skip_iters=2, measure_iters=3, pace_window=5)
    assert [budget.record(s) for s in (9.0, 9.0, 1.0, 2.0)] == [False] * 4
    assert budget.seconds_per_iter == pytest.approx(1.5)
    assert budget.record(3.0) is True  # the first refit once 3 are measured
    assert budget.seconds_per_iter == pytest.approx(2.0)
    # The pace averages up to 5 recent iterations; a refit is asked for every 25 iterations.
    assert budget.record(4.0) is False
    assert budget.seconds_per_iter == pytest.approx(2.5)
    assert [budget.record(1.0) for _ in range(24)] == [False] * 23 + [True]
    assert budget.seconds_per_iter == pytest.approx(1.0)


def test_a_few_slow_steps_barely_move_the_pace() -> None:
    budget = TimeBudget(1000.0, time.perf_counter(), skip_iters=0)  # default window: 100
    for _ in range(100):
        budget.record(0.1)
    for _ in range(8):  # an evaluation's worth of slow steps used to double the pace
        budget.record(0.3)
    assert budget.seconds_per_iter == pytest.approx(0.116)


def test_should_stop_accounts_for_the_reserve(monkeypatch: pytest.MonkeyPatch) -> None:
    """The budget's clock (its module's ``perf_counter``) stands still: the real one may move
    on by any amount between two lines on a loaded machine."""
    monkeypatch.setattr(time_budget, "time", SimpleNamespace(perf_counter=lambda: 105.0))
    budget = TimeBudget(10.0, 100.0)  # 5 s of 10 spent
    assert budget.remaining() == 5.0
    assert not budget.should_stop(next_iter_seconds=1.0, reserve_seconds=2.0)
    assert budget.should_stop(next_iter_seconds=1.0, reserve_seconds=4.5)


def test_rejects_empty_budget() -> None:
    with pytest.raises(ValueError, match="positive"):
        TimeBudget(0.0, time.perf_counter())


def test_eval_estimate_scales_with_images() -> None:
    small = estimate_eval_seconds(2.0, images_per_iter=4, num_eval_images=10)
    large = estimate_eval_seconds(2.0, images_per_iter=4, num_eval_images=1000)
    assert small > EVAL_OVERHEAD_S
    assert large - EVAL_OVERHEAD_S == pytest.approx(100 * (small - EVAL_OVERHEAD_S))


def _work(eval_seconds: float | None, eval_images: int | None = 10) -> PeriodicWork:
    return PeriodicWork(
        checkpoint_period=10,
        checkpoint_seconds=3.0,
        eval_period=20,
        eval_seconds=eval_seconds,
        eval_images=eval_images,
        images_per_iter=2,
    )


def test_periodic_work_reserve_and_spread() -> None:
    unmeasured = _work(eval_seconds=None)
    guess = estimate_eval_seconds(1.0, images_per_iter=2, num_eval_images=10)
    assert unmeasured.end_reserve(1.0) == pytest.approx(3.0 + FINISH_OVERHEAD_S + guess)
    measured = _work(eval_seconds=8.0)
    assert measured.end_reserve(1.0) == pytest.approx(3.0 + FINISH_OVERHEAD_S + 8.0)
    assert measured.cost_per_iter(1.0) == pytest.approx(1.0 + 3.0 / 10 + 8.0 / 20)
    no_eval = _work(eval_seconds=None, eval_images=None)
    assert no_eval.end_reserve(1.0) == pytest.approx(3.0 + FINISH_OVERHEAD_S)
    # No measured pace: no guess of the evaluation.
    assert unmeasured.end_reserve(None) == pytest.approx(3.0 + FINISH_OVERHEAD_S)


def test_a_slow_first_step_does_not_stop_the_run() -> None:
    """The first step decodes the image cache and warms up (6.6 s where later ones took 0.3-0.6
    s): the evaluation of 400 images guessed from it (169 s) stopped a 2-minute run after one
    step. A measured pace still decides."""
    train = TrainConfig(max_iter=384, steps=(307, 358), warmup_iters=19, batch_size=8)
    budget = TimeBudget(90.0, 0.0)
    clock = 6.6
    budget.elapsed = lambda: clock  # type: ignore[method-assign]
    schedule = BudgetedSchedule(budget, train)
    work = PeriodicWork(
        checkpoint_period=100,
        checkpoint_seconds=0.0,
        eval_period=0,
        eval_seconds=None,
        eval_images=400,
        images_per_iter=8,
    )
    assert schedule.after_step(6.6, iteration=1, work=work) == (False, False)
    for iteration in range(2, 11):
        clock += 0.4
        assert not schedule.after_step(0.4, iteration=iteration, work=work)[1]
    # Fitted at iteration 10 (2 skipped, 8 measured at 0.4 s): 79.8 s left, minus the end
    # reserve (the evaluation guessed at 400 x 0.05 s + 2 s, and FINISH_OVERHEAD_S).
    reserve = 400 * 0.4 / 8 + EVAL_OVERHEAD_S + FINISH_OVERHEAD_S
    assert train.max_iter == 10 + int((90.0 - clock - reserve) / 0.4)


def test_budgeted_schedule_shortens_the_configured_schedule_then_stops() -> None:
    train = TrainConfig(max_iter=1000, steps=(800, 900), warmup_iters=100, checkpoint_period=0)
    budget = TimeBudget(20.0, time.perf_counter(), skip_iters=0, measure_iters=2)
    schedule = BudgetedSchedule(budget, train)
    work = _work(eval_seconds=None, eval_images=None)
    assert schedule.after_step(0.5, iteration=1, work=work) == (False, False)
    refitted, stop = schedule.after_step(0.5, iteration=2, work=work)
    # About 20 - 2 (reserve) seconds left at 0.5 s per iteration (plus the checkpoint share).
    assert refitted and not stop and 2 < train.max_iter < 40
    assert train.steps == (round(800 * train.max_iter / 1000), round(900 * train.max_iter / 1000))
    budget.start -= 30.0  # the budget is spent
    assert schedule.after_step(0.5, iteration=3, work=work) == (True, True)
    # The config ends where the run stopped: a run from it takes the same 3 steps, without the
    # decays the run never reached.
    assert (train.max_iter, train.steps) == (3, ())


def test_a_stopped_run_s_config_keeps_only_the_decays_it_reached(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A run stopped by its budget wrote ``max_iter 13, steps [16, 19]``: a config whose decays
    lie past its end, which a run from it warns about and never takes."""
    train = TrainConfig(max_iter=20, steps=(10, 13, 16), warmup_iters=5, checkpoint_period=0)
    trained = [train_lr_factor(train, iteration) for iteration in range(13)]
    budget = TimeBudget(100.0, time.perf_counter(), skip_iters=0, measure_iters=100)
    schedule = BudgetedSchedule(budget, train)
    budget.start -= 200.0  # spent before the first refit
    with caplog.at_level("WARNING", logger="sparsercnn.engine.time_budget"):
        assert schedule.after_step(0.5, iteration=13, work=_work(eval_seconds=None)) == (
            True,
            True,
        )
    # Iterations 0-12 ran: the decay at 10 was taken, the one at 13 and later were not.
    assert (train.max_iter, train.steps, train.warmup_iters) == (13, (10,), 5)
    assert train.schedule_notes() == []
    assert [train_lr_factor(train, iteration) for iteration in range(13)] == trained
    (message,) = [record.getMessage() for record in caplog.records]
    assert "reached at iteration 13 of 20" in message
    assert "max_iter 13, steps [10], without the decays planned at [13, 16]" in message


def test_a_short_budget_is_named_as_given(caplog: pytest.LogCaptureFixture) -> None:
    """Was: ``--time-budget 0.02`` stopped with "time budget of 0.0 min reached"."""
    train = TrainConfig(max_iter=20, steps=(), warmup_iters=0, checkpoint_period=0)
    budget = TimeBudget(1.2, time.perf_counter(), skip_iters=0, measure_iters=100)
    schedule = BudgetedSchedule(budget, train)
    budget.start -= 200.0
    with caplog.at_level("WARNING", logger="sparsercnn.engine.time_budget"):
        schedule.after_step(0.5, iteration=3, work=_work(eval_seconds=None))
    (message,) = [record.getMessage() for record in caplog.records]
    assert message.startswith("time budget of 0.02 min reached at iteration 3 of 20")


def test_a_refit_says_whether_it_shortened_or_lengthened_the_schedule(
    caplog: pytest.LogCaptureFixture,
) -> None:
    train = TrainConfig(max_iter=1000, steps=(800, 900), warmup_iters=100, checkpoint_period=0)
    budget = TimeBudget(60.0, time.perf_counter(), skip_iters=0, measure_iters=2, refit_every=2)
    schedule = BudgetedSchedule(budget, train)
    work = _work(eval_seconds=None, eval_images=None)
    with caplog.at_level("INFO", logger="sparsercnn.engine.time_budget"):
        for iteration, seconds in enumerate([1.0, 1.0, 0.2, 0.2], start=1):
            schedule.after_step(seconds, iteration=iteration, work=work)
    refits = [r.getMessage() for r in caplog.records if "max_iter" in r.getMessage()]
    assert len(refits) == 2
    assert "schedule shortened to max_iter" in refits[0]
    assert "schedule lengthened to max_iter" in refits[1]


@pytest.mark.parametrize("paces", [[1.0] * 40, [0.3] * 12 + [1.5] * 28, [1.5] * 12 + [0.2] * 28])
def test_the_final_config_gives_every_learning_rate_the_run_trained_with(
    paces: list[float],
) -> None:
    """Refits during the warm-up and around the steps: the schedule the run ends with gives
    the learning rate of every iteration it ran (so a run from its config.json follows them)."""
    train = TrainConfig(max_iter=200, steps=(160, 187), warmup_iters=20, checkpoint_period=0)
    budget = TimeBudget(40.0, 0.0, skip_iters=0, measure_iters=4, refit_every=3, pace_window=3)
    schedule = BudgetedSchedule(budget, train)
    work = _work(eval_seconds=None, eval_images=None)
    clock, factors = 0.0, []
    budget.elapsed = lambda: clock  # type: ignore[method-assign]
    for iteration, seconds in enumerate(paces, start=1):
        factors.append(train_lr_factor(train, iteration - 1))  # the learning rate of this step
        clock += seconds
        if schedule.after_step(seconds, iteration=iteration, work=work)[1]:
            break
    assert train.max_iter < 200  # refitted
    assert factors == [train_lr_factor(train, i) for i in range(len(factors))]
    # Only decays the run took, each once.
    assert sorted(set(train.steps)) == list(train.steps) and train.schedule_notes() == []


def test_a_longer_refit_never_moves_a_passed_step_or_warm_up_back() -> None:
    train = TrainConfig(max_iter=1000, steps=(800, 900), warmup_iters=100, checkpoint_period=0)
    budget = TimeBudget(
        1000.0, time.perf_counter(), skip_iters=0, measure_iters=1, refit_every=1, pace_window=1
    )
    schedule = BudgetedSchedule(budget, train)
    work = _work(eval_seconds=None, eval_images=None)
    budget.start -= 500.0  # half the budget spent, at 1 s per step: about 500 steps left
    schedule.after_step(1.0, iteration=490, work=work)
    shortened = (train.max_iter, train.steps, train.warmup_iters)
    assert shortened[0] < 1000 and shortened[1][0] < 800
    assert shortened[2] == 100  # the warm-up was over at iteration 490: not scaled
    # Past the first step, the pace halves: the run is lengthened, the passed step stays put.
    passed = shortened[1][0] + 1
    schedule.after_step(0.5, iteration=passed, work=work)
    assert train.max_iter > shortened[0]
    assert train.steps[0] == shortened[1][0] and train.steps[1] > shortened[1][1]
    assert train.warmup_iters == 100


def test_a_budget_extends_a_schedule_the_run_completed() -> None:
    """A run stopped by its budget at 39 (its config: max_iter 39, steps [36]), resumed with a
    new budget, had nothing to train: the budget only ever shortens the configured schedule."""
    train = TrainConfig(max_iter=39, steps=(36,), warmup_iters=5, checkpoint_period=0)
    budget = TimeBudget(100.0, time.perf_counter(), skip_iters=0, measure_iters=2)
    schedule = BudgetedSchedule(budget, train, extend_from=39)
    # Until the pace is measured: as many steps more, and no decay ahead.
    assert (train.max_iter, train.steps) == (41, (36,))
    work = _work(eval_seconds=None, eval_images=None)
    assert schedule.after_step(0.5, iteration=40, work=work) == (False, False)
    refitted, stop = schedule.after_step(0.5, iteration=41, work=work)
    # About 100 - 2 (reserve) seconds left at 0.5 s per step and the checkpoints' share.
    assert refitted and not stop and 100 < train.max_iter < 41 + 98 / 0.5
    # The decay taken stays; the second of a fresh run of that length follows.
    assert train.steps == (36, round(train.max_iter * 14 / 15))


@pytest.mark.parametrize("warmup_iters", [60, 1000])
def test_an_extended_schedule_ending_inside_its_warm_up_is_warned_about_once(
    warmup_iters: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A completed run of 39 steps, inside its warm-up, extended by a new budget to about 230:
    the refits warned only where the schedule before them reached the warm-up, which the
    extension's first steps never do, so a warm-up of 1000 steps went without a word."""
    train = TrainConfig(max_iter=39, steps=(), warmup_iters=warmup_iters, checkpoint_period=0)
    budget = TimeBudget(100.0, time.perf_counter(), skip_iters=0, measure_iters=2, refit_every=1)
    schedule = BudgetedSchedule(budget, train, extend_from=39)
    assert schedule.completed_at is not None
    work = _work(eval_seconds=None, eval_images=None)
    with caplog.at_level(logging.WARNING, logger=time_budget.__name__):
        for iteration in range(40, 46):  # refitted after each step from 41 on
            schedule.after_step(0.5, iteration=iteration, work=work)
    assert 100 < train.max_iter < 1000
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    if warmup_iters < train.max_iter:
        assert warnings == []
    else:
        (warning,) = warnings
        assert warning.startswith("the warm-up (1000 steps) is longer than the ")


@pytest.mark.parametrize(
    ("configured", "iteration", "affordable", "fitted"),
    [
        # The CLI run that logged "max_iter 14 ... steps [14, 14]": both decays scaled behind
        # iteration 13 (to 11 and 13), moved to 14, which no step of a 14-step run takes. The
        # run's last step, 13, takes the first; the second has no room.
        ((20, (16, 19)), 13, 1, (14, (13,))),
        # Both scaled behind iteration 13 (to 8 and 10): they were both moved to 14. One per
        # step from 13 on, the step the run takes next (a decay at 13 is still ahead).
        ((40, (20, 24)), 13, 3, (16, (13, 14))),
        # No time left: the schedule ends at 13, where the decay at 13 is never taken.
        ((20, (10, 13)), 13, 0, (13, (10,))),
    ],
)
def test_a_refit_near_the_end_plans_only_decays_the_run_takes(
    configured: tuple[int, tuple[int, ...]],
    iteration: int,
    affordable: int,
    fitted: tuple[int, tuple[int, ...]],
) -> None:
    """A refit moved the decays still ahead to ``iteration + 1``, on or past the fitted
    ``max_iter`` or onto each other: config.json then gave decays the run never took. They
    follow one per step from ``iteration``, the next step the run takes, as an extended
    schedule's do (:func:`~sparsercnn.engine.lr_schedule.decays_ahead`)."""
    max_iter, steps = configured
    train = TrainConfig(max_iter=max_iter, steps=steps, warmup_iters=0, checkpoint_period=0)
    budget = TimeBudget(100.0, 0.0, skip_iters=0, measure_iters=1)
    # 1 s per step, the end reserve (FINISH_OVERHEAD_S) and ``affordable`` steps and a half left.
    clock = 100.0 - FINISH_OVERHEAD_S - affordable - 0.5
    budget.elapsed = lambda: clock  # type: ignore[method-assign]
    schedule = BudgetedSchedule(budget, train)
    work = PeriodicWork(
        checkpoint_period=0,
        checkpoint_seconds=0.0,
        eval_period=0,
        eval_seconds=None,
        eval_images=None,
        images_per_iter=1,
    )
    assert schedule.after_step(1.0, iteration=iteration, work=work)[0]
    assert (train.max_iter, train.steps) == fitted
    assert train.schedule_notes() == []


def test_a_refit_moves_a_decay_the_run_has_reached_but_not_taken() -> None:
    """A refit at the iteration of a decay (the step about to be taken, the first at the
    decayed rate) kept that decay where it was, as if the run had trained with it: lengthened
    again, the run decayed at the shortened schedule's step, not the configured one's."""
    train = TrainConfig(max_iter=100, steps=(80,), warmup_iters=0, checkpoint_period=0)
    budget = TimeBudget(100.0, 0.0, skip_iters=0, measure_iters=1, refit_every=1, pace_window=1)
    clock = 10.0
    budget.elapsed = lambda: clock  # type: ignore[method-assign]
    schedule = BudgetedSchedule(budget, train)
    work = _work(eval_seconds=None, eval_images=None)
    schedule.after_step(2.0, iteration=10, work=work)
    (shortened,) = train.steps
    assert train.max_iter < 100 and 10 < shortened < 80
    clock = 20.0  # the pace improves tenfold: the configured schedule fits again
    assert schedule.after_step(0.1, iteration=shortened, work=work) == (True, False)
    assert (train.max_iter, train.steps) == (100, (80,))


def test_a_budget_partly_spent_timing_steps_is_given_whole_with_what_is_left() -> None:
    """``--time-budget 0.5`` logged "time budget 0.41 min": what the recipe's timing left."""
    budget = TimeBudget(0.41 * 60.0, 0.0, spent=0.09 * 60.0)
    assert budget.describe() == (
        "time budget 0.5 min (0.41 min for training: 0.09 min spent timing steps)"
    )
    assert TimeBudget(30.0, 0.0).describe() == "time budget 0.5 min"


def test_a_budget_extending_a_run_past_all_its_decays_says_it_trains_at_the_decayed_rate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A finished run that took both its decays, resumed with a new budget, was said to train
    on "with the learning-rate decays of a fresh run of that length", at 1% of the rate."""
    train = TrainConfig(max_iter=8, steps=(6, 7), warmup_iters=0, checkpoint_period=0)
    budget = TimeBudget(100.0, time.perf_counter(), skip_iters=0, measure_iters=2)
    with caplog.at_level(logging.INFO, logger=time_budget.__name__):
        BudgetedSchedule(budget, train, extend_from=8)
    assert train.steps == (6, 7)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "time budget 1.67 min: the run's schedule ended at iteration 8 with its decays "
            "[6, 7] all behind it: training on for as many steps as the budget holds at their "
            "decayed rate, 0.01 x the base learning rate; --set 'train.steps=[]' gives them a "
            "fresh run's decays ahead instead",
        )
    ]
