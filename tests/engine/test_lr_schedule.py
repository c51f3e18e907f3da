"""The learning-rate schedule: warm-up and step boundaries, linear scaling, budget fitting."""

from __future__ import annotations

import itertools
import math

import pytest

from sparsercnn.config import TrainConfig
from sparsercnn.engine.lr_schedule import (
    Schedule,
    decay_steps,
    decays_ahead,
    extended_schedule,
    fit_schedule_to_budget,
    images_per_step,
    lr_factor,
    resumed_steps,
    run_lr,
    scaled_lr,
    train_lr_factor,
)


def official(iteration: int) -> float:
    """The official schedule: 1000-iteration warm-up from 0.01, x0.1 at 210k and 250k."""
    return lr_factor(
        iteration, steps=(210_000, 250_000), gamma=0.1, warmup_iters=1000, warmup_factor=0.01
    )


def test_warmup_starts_at_warmup_factor_and_reaches_one() -> None:
    assert official(0) == pytest.approx(0.01)
    assert official(500) == pytest.approx(0.01 * 0.5 + 0.5)
    assert official(999) == pytest.approx(0.01 * 0.001 + 0.999)
    assert official(1000) == 1.0


def test_warmup_is_linear() -> None:
    factors = [official(i) for i in range(0, 1001, 100)]
    differences = [b - a for a, b in itertools.pairwise(factors)]
    assert differences == pytest.approx([differences[0]] * len(differences))


def test_decay_applies_at_each_step_and_after() -> None:
    assert official(209_999) == 1.0
    assert official(210_000) == pytest.approx(0.1)
    assert official(249_999) == pytest.approx(0.1)
    assert official(250_000) == pytest.approx(0.01)
    assert official(269_999) == pytest.approx(0.01)
    assert official(10**7) == pytest.approx(0.01)


def test_step_inside_warmup_multiplies() -> None:
    factor = lr_factor(5, steps=(5,), gamma=0.5, warmup_iters=10, warmup_factor=0.0)
    assert factor == pytest.approx(0.5 * 0.5)


def test_no_warmup_and_unsorted_steps() -> None:
    def factor(iteration: int) -> float:
        return lr_factor(iteration, steps=(20, 10), gamma=0.1, warmup_iters=0, warmup_factor=0.01)

    assert factor(0) == 1.0
    assert factor(15) == pytest.approx(0.1)
    assert factor(20) == pytest.approx(0.01)


def test_negative_iteration_is_rejected() -> None:
    with pytest.raises(ValueError, match="iteration"):
        official(-1)


def test_scaled_lr_linear_rule() -> None:
    assert scaled_lr(2.5e-5, 16, 16, True) == pytest.approx(2.5e-5)
    assert scaled_lr(2.5e-5, 4, 16, True) == pytest.approx(2.5e-5 / 4)
    assert scaled_lr(2.5e-5, 32, 16, True) == pytest.approx(5e-5)
    assert scaled_lr(2.5e-5, 4, 16, False) == 2.5e-5


def test_a_run_s_lr_is_its_lr_scaled_to_all_its_images_per_step() -> None:
    """The sum of the images per step (batch x micro-batches x processes) was written in three
    places: the trainer's, the checkpoint's and each side of a resume's batch warning."""
    train = TrainConfig(lr=1e-4, batch_size=2, grad_accum_steps=3, reference_batch_size=16)
    assert images_per_step(train, 2) == 12
    assert run_lr(train, 2) == pytest.approx(1e-4 * 12 / 16)
    train.scale_lr = False
    assert run_lr(train, 2) == 1e-4


@pytest.mark.parametrize(("lr", "total", "reference"), [(0.0, 16, 16), (1e-4, 0, 16), (1e-4, 8, 0)])
def test_scaled_lr_rejects_invalid(lr: float, total: int, reference: int) -> None:
    with pytest.raises(ValueError):
        scaled_lr(lr, total, reference, True)


SCHEDULE = Schedule(max_iter=1000, steps=(700, 900), warmup_iters=100)


def test_budget_that_fits_keeps_the_schedule() -> None:
    fitted = fit_schedule_to_budget(
        SCHEDULE, iteration=10, seconds_per_iter=0.1, remaining_seconds=1000.0
    )
    assert fitted == SCHEDULE


def test_budget_shortens_schedule_proportionally() -> None:
    # 40 s at 0.1 s/it: 400 more iterations after the 10 already done.
    fitted = fit_schedule_to_budget(
        SCHEDULE, iteration=10, seconds_per_iter=0.1, remaining_seconds=40.0
    )
    assert fitted.max_iter == 410
    assert fitted.steps == (287, 369)
    assert fitted.warmup_iters == 100  # kept: it set the learning rates already run
    for old, new in zip(SCHEDULE.steps, fitted.steps, strict=True):
        assert abs(new / fitted.max_iter - old / SCHEDULE.max_iter) <= 1 / fitted.max_iter


def test_budget_already_spent_stops_now() -> None:
    fitted = fit_schedule_to_budget(
        SCHEDULE, iteration=10, seconds_per_iter=0.1, remaining_seconds=-5.0
    )
    assert fitted.max_iter == 10


def test_budget_rejects_bad_pace() -> None:
    for pace in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="seconds_per_iter"):
            fit_schedule_to_budget(
                SCHEDULE, iteration=0, seconds_per_iter=pace, remaining_seconds=1.0
            )


def test_decay_steps_are_the_small_presets_fractions() -> None:
    assert decay_steps(3000) == (2400, 2800)
    assert decay_steps(2) == () and decay_steps(5) == (4,)


@pytest.mark.parametrize(
    ("completed", "max_iter", "steps"),
    [
        # Stopped by its budget after a decay at 36: the second decay of a fresh 200-step run.
        (Schedule(39, (36,), 50), 200, (36, 187)),
        # Stopped before any decay: both of a fresh run's.
        (Schedule(39, (), 50), 200, (160, 187)),
        # Both taken: none more, the learning rate stays where it was.
        (Schedule(3000, (2400, 2800), 50), 4000, (2400, 2800)),
        # A fresh 41-step run is past both decays (33, 38) at iteration 39: one from there on,
        # the other from the step after (they were both put at 39, a drop of gamma ** 2).
        (Schedule(39, (), 5), 41, (39, 40)),
        # A fresh 40-step run's (32, 37): the run has one step left, room for one decay.
        (Schedule(39, (), 5), 40, (39,)),
    ],
)
def test_an_extended_schedule_keeps_the_decays_taken_and_adds_a_fresh_run_s(
    completed: Schedule, max_iter: int, steps: tuple[int, ...]
) -> None:
    assert extended_schedule(completed, 39 if completed.max_iter == 39 else 3000, max_iter) == (
        Schedule(max_iter, steps, completed.warmup_iters)
    )


def test_a_run_s_decays_taken_are_those_before_its_iteration() -> None:
    """lr_factor applies a step ``s`` from iteration ``s`` on: a run that has taken 80 steps
    (iterations 0 to 79) trained with the decays before 80, not with one at 80. The decays
    taken alone give every rate the run trained with."""
    schedule = Schedule(100, (40, 80, 93), 10)
    assert schedule.decays_taken(80) == (40,)
    assert schedule.decays_taken(81) == (40, 80)

    def factor(iteration: int, steps: tuple[int, ...]) -> float:
        return lr_factor(iteration, steps=steps, gamma=0.1, warmup_iters=10, warmup_factor=0.01)

    for taken in range(101):
        decays = schedule.decays_taken(taken)
        for iteration in range(taken):
            assert factor(iteration, decays) == factor(iteration, schedule.steps)
        # The rate of the next step is another wherever a decay falls on it.
        next_differs = factor(taken, decays) != factor(taken, schedule.steps)
        assert next_differs == (taken in schedule.steps)


def test_a_training_config_s_factor_is_lr_factor_of_its_schedule() -> None:
    train = TrainConfig(max_iter=100, steps=(40, 80), gamma=0.5, warmup_iters=10, warmup_factor=0.2)
    for iteration in (0, 5, 39, 40, 80, 99):
        assert train_lr_factor(train, iteration) == lr_factor(
            iteration, steps=(40, 80), gamma=0.5, warmup_iters=10, warmup_factor=0.2
        )
    assert train_lr_factor(train, 80, steps=(40,)) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("saved", "iteration", "current", "steps"),
    [
        # Completed (or stopped by its budget), extended with its own steps: a fresh run's.
        (Schedule(39, (), 5), 39, Schedule(41, (), 5), (39, 40)),
        (Schedule(39, (36,), 5), 39, Schedule(200, (36,), 5), (36, 187)),
        # A fresh 6-step run decays at 5 only: the run took its one decay, its steps stand.
        (Schedule(4, (2,), 2), 4, Schedule(6, (2,), 2), None),
        # Steps chosen for the extension stand, also where they are a fresh run's.
        (Schedule(39, (), 5), 39, Schedule(41, (39, 40), 5), None),
        (Schedule(39, (), 5), 39, Schedule(41, (40,), 5), None),
        # Not completed, or not extended.
        (Schedule(100, (80,), 5), 50, Schedule(200, (80,), 5), None),
        (Schedule(39, (), 5), 39, Schedule(39, (), 5), None),
    ],
)
def test_a_completed_run_extended_with_its_own_steps_gets_a_fresh_run_s_decays(
    saved: Schedule,
    iteration: int,
    current: Schedule,
    steps: tuple[int, ...] | None,
) -> None:
    assert resumed_steps(saved, iteration, current) == steps


def test_decays_ahead_follow_one_per_step_and_end_before_max_iter() -> None:
    assert decays_ahead((5, 8, 30), 10, 50) == (10, 11, 30)
    assert decays_ahead((5, 8, 30), 10, 12) == (10, 11)
    assert decays_ahead((20, 30), 10, 50) == (20, 30)
    assert decays_ahead((), 10, 50) == ()


@pytest.mark.parametrize(("iteration", "max_iter"), [(39, 41), (39, 45), (100, 107), (3000, 3100)])
def test_an_extended_run_never_decays_twice_at_once_and_reaches_a_fresh_run_s_rate(
    iteration: int, max_iter: int
) -> None:
    """A run trained to its end without a decay, extended past a fresh run's two decays: they
    coincided at ``iteration`` (``steps (39, 39)``, a hundredfold drop in one step). Each step
    now drops the rate at most once, and from the step after the decays due the rate is a
    fresh ``max_iter``-step run's."""
    extended = extended_schedule(Schedule(iteration, (), 5), iteration, max_iter)
    assert len(set(extended.steps)) == len(extended.steps) == 2
    due = sum(step <= iteration for step in decay_steps(max_iter))

    def factor(steps: tuple[int, ...], at: int) -> float:
        return lr_factor(at, steps=steps, gamma=0.1, warmup_iters=5, warmup_factor=0.01)

    for at in range(iteration, max_iter):
        ratio = factor(extended.steps, at) / factor(extended.steps, at - 1) if at else 1.0
        assert ratio >= 0.1 - 1e-12
        if at >= iteration + max(due - 1, 0):
            assert factor(extended.steps, at) == pytest.approx(factor(decay_steps(max_iter), at))
