"""The learning-rate schedule as pure functions of the iteration (spec 9).

:func:`lr_factor` is the multiplier of the base learning rate at an iteration (linear warm-up,
then step decay; :func:`train_lr_factor` that of a training config), :func:`scaled_lr` the base
learning rate for the actual batch size (:func:`run_lr` that of a run), :func:`decay_steps`
where a schedule of a given length decays, :func:`decays_ahead` where a run takes the decays
still ahead of it (:func:`fresh_decays_ahead` those of a fresh run; :func:`decays_all_behind`
whether a run has none left), :func:`fit_schedule_to_budget` shortens a schedule so that
training fits a time budget, and :func:`extended_schedule` continues one a run has completed
(:func:`resumed_steps`: the decays of a resumed run that a larger ``max_iter`` extends so). The
trainer sets ``lr = run_lr(train, world_size) * train_lr_factor(train, iteration)`` before every
optimiser step.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sparsercnn.config import TrainConfig


def lr_factor(
    iteration: int,
    *,
    steps: Sequence[int],
    gamma: float,
    warmup_iters: int,
    warmup_factor: float,
) -> float:
    """Multiplier of the base learning rate at ``iteration`` (0-based, the step about to be taken).

    Linear warm-up followed by multi-step decay, as detectron2's ``WarmupMultiStepLR`` (spec 9):

    - decay: ``gamma ** k`` with ``k`` the number of ``steps`` that are ``<= iteration``;
    - warm-up, for ``iteration < warmup_iters``: the decay is multiplied by
      ``warmup_factor * (1 - a) + a`` with ``a = iteration / warmup_iters``, so the factor is
      ``warmup_factor`` at iteration 0 and reaches 1 at ``warmup_iters``.

    Args:
        iteration: number of optimiser steps already taken, ``>= 0``.
        steps: iterations at which the learning rate is multiplied by ``gamma`` (any order).
        gamma: decay per step (0.1 in the paper).
        warmup_iters: length of the linear warm-up; 0 disables it.
        warmup_factor: factor at iteration 0 (0.01 official, 0.001 mmdetection).

    Returns:
        The factor, ``> 0`` for positive ``gamma`` and ``warmup_factor``.
    """
    if iteration < 0:
        raise ValueError(f"iteration must be >= 0, got {iteration}")
    decay = gamma ** bisect.bisect_right(sorted(steps), iteration)
    if iteration >= warmup_iters:
        return decay
    alpha = iteration / warmup_iters
    return decay * (warmup_factor * (1.0 - alpha) + alpha)


def train_lr_factor(
    train: TrainConfig, iteration: int, *, steps: Sequence[int] | None = None
) -> float:
    """:func:`lr_factor` at ``iteration`` of the schedule of ``train`` (its ``steps``, ``gamma``,
    ``warmup_iters`` and ``warmup_factor``); ``steps``: these decays instead of ``train.steps``
    (the decays a resumed run took, say)."""
    return lr_factor(
        iteration,
        steps=train.steps if steps is None else steps,
        gamma=train.gamma,
        warmup_iters=train.warmup_iters,
        warmup_factor=train.warmup_factor,
    )


def scaled_lr(base_lr: float, total_batch: int, reference_batch: int, enabled: bool) -> float:
    """The learning rate for ``total_batch`` images per optimiser step (linear scaling rule).

    The recipe's ``base_lr`` (2.5e-5) was tuned for ``reference_batch`` images per step (16 =
    8 GPUs x 2). The linear scaling rule (Goyal et al., 2017, "Accurate, Large Minibatch SGD")
    keeps the expected update per image constant by scaling the rate with the batch:
    ``base_lr * total_batch / reference_batch``. It is an approximation for AdamW; with very
    small batches the official repository's issues (spec 13, #2 and #3) suggest not going above
    the scaled value.

    Args:
        base_lr: learning rate tuned for ``reference_batch``.
        total_batch: images per optimiser step over all processes and accumulated micro-batches
            (``batch_size * world_size * grad_accum_steps``).
        reference_batch: batch size ``base_lr`` belongs to.
        enabled: False returns ``base_lr`` unchanged.
    """
    if base_lr <= 0:
        raise ValueError(f"the learning rate must be > 0, got {base_lr}")
    if total_batch < 1 or reference_batch < 1:
        raise ValueError(
            f"batch sizes must be >= 1, got total_batch={total_batch}, "
            f"reference_batch={reference_batch}"
        )
    if not enabled:
        return base_lr
    return base_lr * total_batch / reference_batch


def images_per_step(train: TrainConfig, world_size: int) -> int:
    """Images per optimiser step of a run of ``train`` in ``world_size`` processes:
    ``batch_size * grad_accum_steps * world_size``."""
    return train.batch_size * train.grad_accum_steps * world_size


def run_lr(train: TrainConfig, world_size: int) -> float:
    """The base learning rate of a run of ``train`` in ``world_size`` processes: ``train.lr``
    scaled to its :func:`images_per_step` (:func:`scaled_lr`), before the schedule's factor."""
    return scaled_lr(
        train.lr, images_per_step(train, world_size), train.reference_batch_size, train.scale_lr
    )


# Where a schedule decays, as fractions of its length: the small presets' 2400 and 2800 of 3000
# steps, near the paper's 210k and 250k of 270k (spec 9).
DECAY_FRACTIONS = (0.8, 14 / 15)


def decay_steps(max_iter: int) -> tuple[int, ...]:
    """The learning-rate decays of a schedule of ``max_iter`` steps (:data:`DECAY_FRACTIONS`),
    those that fall before its end (none in a run of a step or two, which a decay at its last
    step would not reach)."""
    decays = (round(max_iter * fraction) for fraction in DECAY_FRACTIONS)
    return tuple(dict.fromkeys(step for step in decays if 1 <= step < max_iter))


@dataclass(frozen=True)
class Schedule:
    """The length-related part of a schedule, all in iterations.

    Attributes:
        max_iter: total number of optimiser steps.
        steps: iterations at which the learning rate decays.
        warmup_iters: length of the linear warm-up.
    """

    max_iter: int
    steps: tuple[int, ...]
    warmup_iters: int

    @classmethod
    def of(cls, train: TrainConfig) -> Schedule:
        """The schedule of a training config (``train.max_iter``, ``steps``, ``warmup_iters``)."""
        return cls(train.max_iter, tuple(train.steps), train.warmup_iters)

    def decays_taken(self, iteration: int) -> tuple[int, ...]:
        """The decays a run that has taken ``iteration`` steps (iterations 0 to
        ``iteration - 1``) trained with: the ``steps`` before ``iteration``, as :func:`lr_factor`
        applies a step ``s`` from iteration ``s`` on. A decay at ``iteration`` is still ahead:
        no step trained at its rate, so a new schedule may move it."""
        return tuple(step for step in self.steps if step < iteration)


def decays_ahead(steps: Sequence[int], earliest: int, max_iter: int) -> tuple[int, ...]:
    """Where a run that has yet to take the decays ``steps`` (in order) takes them: each at
    ``earliest`` or later and after the one before, and only those before ``max_iter``.

    Decays due before ``earliest`` (a schedule refitted or extended past them) follow one per
    step from ``earliest`` on, never two at once: a drop of ``gamma ** 2`` in one step, which
    config.json would show as a repeated step. A decay with no room before ``max_iter`` is
    dropped: config.json then gives no decay the run never took.
    """
    ahead: list[int] = []
    for step in steps:
        step = max(step, ahead[-1] + 1 if ahead else earliest)
        if step >= max_iter:
            break
        ahead.append(step)
    return tuple(ahead)


def decays_all_behind(schedule: Schedule, iteration: int) -> bool:
    """Whether a run at ``iteration`` has taken a decay of ``schedule`` and has none ahead: its
    remaining steps, an extension's included, all train at the decayed learning rate."""
    return bool(schedule.steps) and max(schedule.steps) < iteration


def fresh_decays_ahead(iteration: int, max_iter: int) -> tuple[int, ...]:
    """The decays of a fresh run of ``max_iter`` steps (:func:`decay_steps`), none before
    ``iteration`` (:func:`decays_ahead`): the ``train.steps`` that give a run resumed at
    ``iteration``, its decays all behind it, a fresh run's decays ahead (its learning rate back
    at the base rate until the first)."""
    return decays_ahead(decay_steps(max_iter), iteration, max_iter)


def affordable_iterations(seconds_per_iter: float, remaining_seconds: float) -> int:
    """Iterations of ``seconds_per_iter`` (> 0) that fit in ``remaining_seconds`` (0 when
    negative)."""
    if seconds_per_iter <= 0 or not math.isfinite(seconds_per_iter):
        raise ValueError(f"seconds_per_iter must be a positive number, got {seconds_per_iter}")
    return math.floor(max(remaining_seconds, 0.0) / seconds_per_iter)


def fit_schedule_to_budget(
    schedule: Schedule,
    *,
    iteration: int,
    seconds_per_iter: float,
    remaining_seconds: float,
) -> Schedule:
    """Shorten ``schedule`` so that the remaining iterations fit in ``remaining_seconds``.

    The new length is ``iteration + floor(remaining_seconds / seconds_per_iter)``, never longer
    than the original schedule and never shorter than ``iteration`` (which means: stop now).
    The decay steps are scaled by ``new_max_iter / max_iter``, so each step keeps its fraction
    of the schedule (e.g. 210k/270k stays at 7/9 of the run). The warm-up is kept: its slope
    already set the learning rate of the iterations run, and a run's ``config.json`` must
    describe the learning rates it trained with.

    Args:
        schedule: the configured schedule.
        iteration: optimiser steps already taken.
        seconds_per_iter: measured wall-clock seconds per iteration (> 0), including whatever
            per-iteration overhead (periodic evaluation, checkpoints) the caller amortises in.
        remaining_seconds: time left for the remaining iterations (may be negative: stop now).

    Returns:
        The fitted schedule (``schedule`` itself when it already fits).
    """
    if iteration < 0:
        raise ValueError(f"iteration must be >= 0, got {iteration}")
    affordable = affordable_iterations(seconds_per_iter, remaining_seconds)
    new_max_iter = max(iteration, min(schedule.max_iter, iteration + affordable))
    if new_max_iter >= schedule.max_iter:
        return schedule
    scale = new_max_iter / schedule.max_iter
    return Schedule(
        max_iter=new_max_iter,
        steps=tuple(round(step * scale) for step in schedule.steps),
        warmup_iters=schedule.warmup_iters,
    )


def extended_schedule(completed: Schedule, iteration: int, max_iter: int) -> Schedule:
    """Continue a schedule that a run has trained to its end (``iteration``, at or past
    ``completed.max_iter``) up to ``max_iter``, with the learning rates of a fresh run of
    ``max_iter`` steps as far as the run's past allows.

    The decays the run took (:meth:`Schedule.decays_taken`) are kept: a decayed learning rate
    never goes back up. The decays of a fresh run of ``max_iter`` steps (:func:`decay_steps`)
    beyond as many as were taken follow (:func:`decays_ahead`): one the fresh run would have
    taken already applies from ``iteration`` on, a second one from the step after (not both at
    once), so the learning rate is the fresh run's from there on. The warm-up is kept.

    Examples: a run stopped by its time budget at 39 after a decay at 36 (``steps [36]``),
    extended to 200 steps: ``steps (36, 187)`` (a fresh run decays at 160 and 187); one stopped
    at 39 before any decay, extended to 41 (a fresh run decays at 33 and 38): ``steps (39, 40)``.
    """
    if max_iter <= iteration:
        raise ValueError(
            f"an extended schedule must end after iteration {iteration}, got {max_iter}"
        )
    taken = completed.decays_taken(iteration)
    ahead = decays_ahead(decay_steps(max_iter)[len(taken) :], iteration, max_iter)
    return Schedule(max_iter, taken + ahead, completed.warmup_iters)


def resumed_steps(saved: Schedule, iteration: int, current: Schedule) -> tuple[int, ...] | None:
    """The decays of a run resumed at ``iteration`` from a checkpoint of schedule ``saved``
    with the schedule ``current``, where the run is extended as a fresh run; ``None`` where
    ``current.steps`` stand.

    A run at the end of its schedule (``iteration >= saved.max_iter``: trained to its end, or
    stopped by its time budget) given a larger ``max_iter`` and its own ``steps`` gets the
    decays of :func:`extended_schedule` (``None`` where those are its own steps: a fresh run of
    that length takes no more): a run stopped by its budget keeps only the decays it took, and
    would otherwise train on without any. ``steps`` other than the run's are chosen for the
    extension, and stand.
    """
    if iteration < saved.max_iter or current.max_iter <= iteration or current.steps != saved.steps:
        return None
    steps = extended_schedule(saved, iteration, current.max_iter).steps
    return None if steps == saved.steps else steps
