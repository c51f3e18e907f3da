"""A wall-clock budget for a training run: measure the pace, then stop in time.

:class:`TimeBudget` records iteration durations (skipping the first, slow ones), reports the
pace as the mean of up to ``pace_window`` recent iterations (long enough that a few slow steps
do not swing the schedule, short enough to follow the machine's load and the data), asks for a
refit of the schedule once ``measure_iters`` are measured and then every ``refit_every``
iterations, and says when the next iteration plus the end-of-run work (final checkpoint
and evaluation) would no longer fit. :func:`fit_to_budget` turns the measurement into a shorter
schedule (:func:`~sparsercnn.engine.lr_schedule.fit_schedule_to_budget`), or a resumed run's
completed schedule into a longer one (:func:`~sparsercnn.engine.lr_schedule.extended_schedule`),
counting the periodic and end-of-run work of :class:`PeriodicWork`; :class:`BudgetedSchedule`
applies both to a training run after each step.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass

from sparsercnn.config import TrainConfig, override_arguments
from sparsercnn.engine.distributed import all_gather_object
from sparsercnn.engine.lr_schedule import (
    DECAY_FRACTIONS,
    Schedule,
    affordable_iterations,
    decays_ahead,
    extended_schedule,
    fit_schedule_to_budget,
    train_lr_factor,
)

logger = logging.getLogger(__name__)

# Before the first evaluation, its cost per image is guessed as this fraction of a training
# iteration's cost per image, plus a fixed COCOeval overhead. A forward pass only, but in fp32
# where training may run bf16: the auto recipe's 10-minute runs of session 17 measured 0.45-0.77
# (end to end, 80-100 images); 1 leaves room for a loaded machine and COCOeval.
EVAL_COST_RATIO = 1.0
EVAL_OVERHEAD_S = 2.0
# Writing the final model file and drawing the training curves.
FINISH_OVERHEAD_S = 2.0


class TimeBudget:
    """Tracks elapsed time against a budget of ``seconds`` that began at ``start``.

    Args:
        seconds: the budget from ``start`` on.
        start: ``time.perf_counter()`` value at which the budget began.
        spent: seconds of the budget spent before ``start`` (timing the recipe's steps), which
            the messages give with ``seconds`` (:meth:`describe`).
        skip_iters: first iterations left out of the measurement (start-up, allocator warm-up).
        measure_iters: iterations measured before the first refit.
        refit_every: after the first refit, ask for one this often (iterations).
        pace_window: most recent iterations averaged for :attr:`seconds_per_iter`.
    """

    def __init__(
        self,
        seconds: float,
        start: float,
        *,
        skip_iters: int = 2,
        measure_iters: int = 8,
        refit_every: int = 25,
        pace_window: int = 100,
        spent: float = 0.0,
    ) -> None:
        if seconds <= 0:
            raise ValueError(f"the time budget must be positive, got {seconds} s")
        if measure_iters < 1 or skip_iters < 0 or refit_every < 1:
            raise ValueError(
                "need measure_iters >= 1, skip_iters >= 0 and refit_every >= 1, got "
                f"{measure_iters}, {skip_iters}, {refit_every}"
            )
        self.seconds = seconds
        self.start = start
        self.spent = max(spent, 0.0)
        self.skip_iters = skip_iters
        self.measure_iters = measure_iters
        self.refit_every = refit_every
        self._seen = 0
        self._num_measured = 0
        self._recent: deque[float] = deque(maxlen=max(pace_window, measure_iters))
        self._last = 0.0

    def record(self, iteration_seconds: float) -> bool:
        """Note one iteration's duration; True when the schedule should be (re)fitted now."""
        self._seen += 1
        self._last = iteration_seconds
        if self._seen <= self.skip_iters:
            return False
        self._recent.append(iteration_seconds)
        self._num_measured += 1
        past_first = self._num_measured - self.measure_iters
        return past_first >= 0 and past_first % self.refit_every == 0

    @property
    def first_fit_iters(self) -> int:
        """Iterations recorded when the schedule is first fitted."""
        return self.skip_iters + self.measure_iters

    @property
    def seconds_per_iter(self) -> float | None:
        """Mean duration of the last ``pace_window`` measured iterations (``None`` before one)."""
        return sum(self._recent) / len(self._recent) if self._recent else None

    @property
    def pace(self) -> float:
        """:attr:`seconds_per_iter` once measured, else the last recorded iteration's duration."""
        return self.seconds_per_iter or self._last

    def describe(self) -> str:
        """The budget for a message: ``time budget 0.5 min``, or, part of it spent before
        ``start``, ``time budget 0.5 min (0.41 min for training: 0.09 min spent timing steps)``."""
        whole = f"time budget {(self.seconds + self.spent) / 60.0:.3g} min"
        if not self.spent:
            return whole
        return (
            f"{whole} ({self.seconds / 60.0:.3g} min for training: {self.spent / 60.0:.2g} min "
            "spent timing steps)"
        )

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def remaining(self) -> float:
        """Seconds left (negative once overrun)."""
        return self.seconds - self.elapsed()

    def should_stop(self, next_iter_seconds: float, reserve_seconds: float) -> bool:
        """Whether one more iteration and the ``reserve_seconds`` of final work overrun."""
        return next_iter_seconds + reserve_seconds > self.remaining()


def estimate_eval_seconds(
    seconds_per_iter: float, images_per_iter: int, num_eval_images: int
) -> float:
    """Guess the duration of an evaluation that has not been measured yet.

    Args:
        seconds_per_iter: measured seconds of one training iteration on this process.
        images_per_iter: images one training iteration processes on this process.
        num_eval_images: images this process evaluates (its shard).
    """
    per_image = seconds_per_iter / max(images_per_iter, 1)
    return EVAL_COST_RATIO * per_image * num_eval_images + EVAL_OVERHEAD_S


@dataclass(frozen=True)
class PeriodicWork:
    """The work of a run besides its optimiser steps, with what it has cost so far.

    Attributes:
        checkpoint_period: iterations between checkpoints (``<= 0``: only at the end).
        checkpoint_seconds: duration of the last checkpoint (0 before the first).
        eval_period: iterations between evaluations (``<= 0``: only at the end).
        eval_seconds: duration of the last evaluation (``None``: not measured yet).
        eval_images: images this process evaluates (``None``: no evaluation).
        images_per_iter: training images one iteration processes on this process.
    """

    checkpoint_period: int
    checkpoint_seconds: float
    eval_period: int
    eval_seconds: float | None
    eval_images: int | None
    images_per_iter: int

    def end_reserve(self, seconds_per_iter: float | None) -> float:
        """Seconds the end of the run needs: final checkpoint, evaluation, model file, plot. An
        evaluation not measured yet is guessed from ``seconds_per_iter``, the measured pace
        (``None``: not measured yet, no guess)."""
        reserve = self.checkpoint_seconds + FINISH_OVERHEAD_S
        if self.eval_images is None:
            return reserve
        if self.eval_seconds is not None:
            return reserve + self.eval_seconds
        if seconds_per_iter is not None:
            reserve += estimate_eval_seconds(
                seconds_per_iter, self.images_per_iter, self.eval_images
            )
        return reserve

    def cost_per_iter(self, seconds_per_iter: float) -> float:
        """An iteration's ``seconds_per_iter`` plus its share of the periodic checkpoints and
        evaluations."""
        seconds = seconds_per_iter
        if self.checkpoint_period > 0:
            seconds += self.checkpoint_seconds / self.checkpoint_period
        if self.eval_images is not None and self.eval_period > 0:
            seconds += (self.eval_seconds or 0.0) / self.eval_period
        return seconds


def fit_to_budget(
    budget: TimeBudget,
    configured: Schedule,
    iteration: int,
    work: PeriodicWork,
    *,
    completed_at: int | None = None,
) -> Schedule:
    """The ``configured`` schedule scaled to end, with ``work``, within the budget's time left;
    with ``completed_at`` (a resumed run that had trained ``configured`` to its end, at that
    iteration), ``configured`` extended to as many steps as the budget holds
    (:func:`~sparsercnn.engine.lr_schedule.extended_schedule`; ending at ``iteration``, with
    the decays taken, when it holds none).

    Always the configured schedule is scaled (not the last fitted one), so that a faster pace
    later can lengthen the run again. Needs a measured pace (:attr:`TimeBudget.seconds_per_iter`).
    """
    measured = budget.seconds_per_iter
    assert measured is not None, "fit_to_budget before the pace was measured"
    seconds_per_iter = work.cost_per_iter(measured)
    remaining_seconds = budget.remaining() - work.end_reserve(measured)
    if completed_at is None:
        return fit_schedule_to_budget(
            configured,
            iteration=iteration,
            seconds_per_iter=seconds_per_iter,
            remaining_seconds=remaining_seconds,
        )
    max_iter = iteration + affordable_iterations(seconds_per_iter, remaining_seconds)
    if max_iter == iteration:  # no time for another step: stop now, with the decays taken
        return Schedule(iteration, configured.decays_taken(completed_at), configured.warmup_iters)
    return extended_schedule(configured, completed_at, max_iter)


def out_of_time(budget: TimeBudget, work: PeriodicWork) -> bool:
    """Whether one more iteration and the end-of-run ``work`` would overrun the budget.

    Before the pace is measured, the next iteration is taken to be as long as the last, but no
    evaluation is guessed from it: the first iterations pay for decoding the image cache and
    warming up (6.6 s against 0.3-0.6 s later, in one run), and a guess from them stopped a
    2-minute run after its first step.
    """
    return budget.should_stop(budget.pace, work.end_reserve(budget.seconds_per_iter))


class BudgetedSchedule:
    """Keeps a training run's schedule within a :class:`TimeBudget`.

    Args:
        budget: the wall-clock budget of the run.
        train: the run's training config; ``max_iter`` and ``steps`` are changed in place
            when the schedule is refitted. Its values at construction are the configured
            schedule that every refit scales.
        extend_from: the iteration a resumed run starts at, to extend its schedule when it
            reaches ``train.max_iter`` (a run that trained its schedule to the end, or was
            stopped by its budget, resumed with a new budget): the run goes on for as many
            steps as the budget holds, with the decays a fresh run of that length would take
            (:func:`~sparsercnn.engine.lr_schedule.extended_schedule`): until the first refit
            it has ``budget.first_fit_iters`` more steps and no decay ahead. ``None``: the
            budget only shortens the schedule.

    A refit changes only the future: the warm-up is kept, and a learning-rate step moves only
    while the run has not reached it, to an iteration still ahead, after the step before it and
    before ``max_iter`` (a decay the fitted run has no room for is dropped: ``steps`` holds only
    decays the run takes). So the config the run ends with gives every learning rate it trained
    with (a run from that ``config.json`` follows the same learning rates), and a decayed
    learning rate never goes back up. A run stopped by the budget ends its config where it
    stopped: ``max_iter`` is the last iteration and ``steps`` keeps only the decays it reached
    (those planned later are logged, not written), so that ``--config <run>/config.json`` takes
    the same steps at the same learning rates.
    """

    def __init__(
        self, budget: TimeBudget, train: TrainConfig, *, extend_from: int | None = None
    ) -> None:
        self.budget = budget
        self.train = train
        self.configured = Schedule.of(train)
        self.completed_at: int | None = None
        # Whether the run has been told that its schedule ends inside the warm-up: the configured
        # schedule was judged (TrainConfig.schedule_notes); one the budget extends only its
        # refits judge.
        self._warmup_cut_said = train.warmup_iters > train.max_iter
        if extend_from is not None and extend_from >= train.max_iter:
            self._warmup_cut_said = False
            self.completed_at = iteration = extend_from
            train.max_iter = iteration + budget.first_fit_iters
            train.steps = taken = self.configured.decays_taken(iteration)
            if len(taken) < len(DECAY_FRACTIONS):
                logger.info(
                    "%s: the run's schedule ended at iteration %d; training on for as many "
                    "steps as the budget holds, with the learning-rate decays of a fresh run of "
                    "that length (fitted after %d steps)",
                    budget.describe(),
                    iteration,
                    budget.first_fit_iters,
                )
            else:
                # A fresh run takes no more decays than these: none is ahead of the extension.
                logger.warning(
                    "%s: the run's schedule ended at iteration %d with its decays %s all behind "
                    "it: training on for as many steps as the budget holds at their decayed "
                    "rate, %.3g x the base learning rate; --set %s gives them a fresh run's "
                    "decays ahead instead",
                    budget.describe(),
                    iteration,
                    list(taken),
                    train_lr_factor(train, iteration),
                    override_arguments({"train.steps": []}),
                )

    def after_step(self, seconds: float, iteration: int, work: PeriodicWork) -> tuple[bool, bool]:
        """Record an iteration of ``seconds`` that brought the run to ``iteration``.

        In a multi-process run every rank must call this; rank 0's measurements decide for all.

        Returns:
            ``(refitted, stop)``: the schedule in ``train`` was changed; the run must stop now
            (one more iteration and ``work``'s end-of-run reserve would overrun the budget).
            On a stop, ``train.max_iter`` becomes ``iteration`` and ``train.steps`` loses the
            decays at or after it (none of the run's steps took them): the config then
            describes the run as trained (a run from it takes the same steps at the same
            learning rates), and ``refitted`` is true.
        """
        refitted = False
        if self.budget.record(seconds):
            fitted = fit_to_budget(
                self.budget, self.configured, iteration, work, completed_at=self.completed_at
            )
            refitted = self._apply(all_gather_object(fitted)[0], iteration)
        stop = out_of_time(self.budget, work)
        stop = bool(all_gather_object(stop)[0]) and iteration < self.train.max_iter
        if stop:
            self._end_at(iteration)
            refitted = True
        return refitted, stop

    def _end_at(self, iteration: int) -> None:
        """Cut the schedule in ``train`` to the ``iteration`` the run stops at."""
        train = self.train
        reached = Schedule.of(train).decays_taken(iteration)
        dropped = list(train.steps[len(reached) :])
        logger.warning(
            "time budget of %.3g min reached at iteration %d of %d; stopping (the run's "
            "config now ends there: max_iter %d, steps %s%s)",
            (self.budget.seconds + self.budget.spent) / 60.0,
            iteration,
            train.max_iter,
            iteration,
            list(reached),
            f", without the decays planned at {dropped}" if dropped else "",
        )
        train.max_iter, train.steps = iteration, reached

    def _apply(self, fitted: Schedule, iteration: int) -> bool:
        train = self.train
        old = Schedule.of(train)
        # The decays taken stay; those ahead come from the fit, still ahead, where the run has
        # room to take them (a fit that stops the run now has none).
        taken = old.decays_taken(iteration)
        ahead = decays_ahead(fitted.steps[len(taken) :], iteration, fitted.max_iter)
        fitted = Schedule(fitted.max_iter, taken + ahead, old.warmup_iters)
        if fitted == old:
            logger.info("time budget: %.3f s/iteration, the schedule fits", self.budget.pace)
            return False
        train.max_iter, train.steps = fitted.max_iter, fitted.steps
        warmup_cut = fitted.warmup_iters > fitted.max_iter
        if warmup_cut and not self._warmup_cut_said:
            logger.warning(
                "the warm-up (%d steps) is longer than the %d steps the time budget allows: "
                "the learning rate will not reach its base value; set train.warmup_iters lower",
                fitted.warmup_iters,
                fitted.max_iter,
            )
        self._warmup_cut_said = warmup_cut
        change = "refitted"
        if fitted.max_iter != old.max_iter:
            change = "lengthened" if fitted.max_iter > old.max_iter else "shortened"
        logger.info(
            "%s at %.3f s/iteration: schedule %s to max_iter %d (was %d), steps %s",
            self.budget.describe(),
            self.budget.pace,
            change,
            fitted.max_iter,
            old.max_iter,
            list(fitted.steps),
        )
        return True
