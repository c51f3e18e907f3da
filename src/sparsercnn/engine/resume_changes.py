"""What a resumed run changes from the run it continues, said once before it trains: the
learning-rate schedule and other settings (:func:`log_config_changes`), the images per step, the
learning rate and the data order (:func:`log_batch_changes`). What a resume refuses is
:mod:`sparsercnn.engine.resume`'s, which calls these.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sparsercnn.config import Config, TrainConfig, override_arguments, override_value
from sparsercnn.engine.lr_schedule import (
    Schedule,
    decays_all_behind,
    fresh_decays_ahead,
    images_per_step,
    run_lr,
    train_lr_factor,
)

logger = logging.getLogger(__name__)


def log_config_changes(
    saved: Config, current: Config, iteration: int, *, base_lr: float, extended: bool
) -> None:
    """Say once what the config of a run resumed at ``iteration`` changes from the run's own
    (``saved``, its checkpoint's): the learning-rate schedule (:func:`_log_schedule_change`),
    and every other changed setting with both values and the ``--set`` that keeps the run's
    (warning). The images per step, the learning rate and the data order are
    :func:`log_batch_changes`'s to say, the model
    :func:`~sparsercnn.engine.resume.check_same_model`'s to refuse.

    Args:
        saved, current: the checkpoint's config and the resumed run's, its schedule settled
            (a completed run extended).
        iteration: the iteration the run resumes at.
        base_lr: the resumed run's learning rate before its schedule's factor (the linear
            scaling rule applied), to give the rates of a rise.
        extended: ``current.train.steps`` are those the trainer gave a run that completed
            ``saved``'s schedule: a fresh run's of its length
            (:func:`~sparsercnn.engine.lr_schedule.resumed_steps`), not steps the user chose.
    """
    differences = saved.differences(current)
    schedule = {key: values for key, values in differences.items() if key in _SCHEDULE_KEYS}
    _log_schedule_change(saved.train, current.train, iteration, base_lr, schedule, extended)
    changed = {
        key: values for key, values in differences.items() if key not in _SAID_APART_ON_RESUME
    }
    if changed:
        logger.warning(
            "resuming with other settings than the run's: %s; --set %s keeps the run's",
            ", ".join(
                f"{key} {override_value(old)} -> {override_value(new)}"
                for key, (old, new) in changed.items()
            ),
            override_arguments({key: old for key, (old, _) in changed.items()}),
        )


# The learning-rate schedule: the settings that give the factor of every iteration
# (train_lr_factor) and its length, as the line of its change names them, in its order.
_SCHEDULE_LABELS = {
    "train.max_iter": "max_iter",
    "train.steps": "steps",
    "train.warmup_iters": "warm-up",
    "train.gamma": "gamma",
    "train.warmup_factor": "warm-up factor",
}
_SCHEDULE_KEYS = frozenset(_SCHEDULE_LABELS)
# Said apart on resume: the schedule (_log_schedule_change), the batch and the data order
# (log_batch_changes); and the starting weights, which a resumed run does not load.
_SAID_APART_ON_RESUME = frozenset(
    {
        *_SCHEDULE_KEYS,
        "train.batch_size",
        "train.grad_accum_steps",
        "train.lr",
        "train.reference_batch_size",
        "train.scale_lr",
        "train.aspect_ratio_grouping",
        "train.init_from",
        "train.backbone_weights",
    }
)


def _log_schedule_change(
    saved: TrainConfig,
    current: TrainConfig,
    iteration: int,
    base_lr: float,
    changed: Mapping[str, tuple[Any, Any]],
    extended: bool,
) -> None:
    """One line for a changed learning-rate schedule on resume (``changed``: the
    :data:`_SCHEDULE_KEYS` that differ, ``{"train.key": (saved's, current's)}``): how it changes
    (:func:`_schedule_change`) and what (:func:`_schedule_changes`), where the learning rate rises
    at ``iteration`` above the run's (its own schedule with only the decays it took), and, for a
    completed run ``extended``, that the decays ahead are a fresh run's of that length. Info, or a
    warning with the ``--set`` that keeps the run's schedule where the change replaces the
    learning rates the run trained with or raises the rate, or with the ``--set`` that gives
    a fresh run's decays ahead where it extends a run whose decays are all behind it (the steps
    added would train at the decayed rate)."""
    if not changed:
        return
    taken = Schedule.of(saved).decays_taken(iteration)
    change = _schedule_change(saved, current, iteration, taken)
    text = f"schedule {change} on resume at iteration {iteration}: "
    text += _schedule_changes(changed)
    if extended:
        text += " (the decays of a fresh run of that length; set train.steps to choose others)"
    # The run's rate: its own schedule with only the decays it took (one at ``iteration`` that
    # ``current`` puts later is no rise: the run never trained at the decayed rate).
    before = base_lr * train_lr_factor(saved, iteration, steps=taken)
    after = base_lr * train_lr_factor(current, iteration)
    rises = after > before * (1.0 + 1e-6)
    if change == "extended" and decays_all_behind(Schedule.of(current), iteration):
        ahead = fresh_decays_ahead(iteration, current.max_iter)
        logger.warning(
            "%s; its decays %s are all behind iteration %d: the steps added train at lr %.3g; "
            "--set %s gives them a fresh run's decays ahead instead",
            text,
            list(taken),
            iteration,
            after,
            override_arguments({"train.steps": list(ahead)}),
        )
        return
    if rises:
        text += f"; the learning rate rises from {before:.3g} to {after:.3g} there"
    if not (rises or change.startswith("replaced")):
        logger.info("%s", text)
        return
    logger.warning(
        "%s; to keep the run's schedule, resume without --preset or --config (the run's "
        "config.json), or with --set %s",
        text,
        override_arguments({key: old for key, (old, _) in changed.items()}),
    )


def _schedule_changes(changed: Mapping[str, tuple[Any, Any]]) -> str:
    """The schedule settings ``changed`` (``{"train.key": (saved's, current's)}``, of
    :data:`_SCHEDULE_KEYS`) for a message, in :data:`_SCHEDULE_LABELS`'s order and words:
    ``max_iter 100 -> 300, steps [80] -> [240]``."""
    return ", ".join(
        f"{label} {_shown(changed[key][0])} -> {_shown(changed[key][1])}"
        for key, label in _SCHEDULE_LABELS.items()
        if key in changed
    )


def _shown(value: object) -> str:
    """A schedule setting for a message: a float in its shortest form (``0.1``), steps as a
    list (``[80, 90]``)."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(list(value)) if isinstance(value, tuple) else str(value)


def _schedule_change(
    saved: TrainConfig, current: TrainConfig, iteration: int, taken: tuple[int, ...]
) -> str:
    """How ``current`` changes the ``saved`` schedule of a run resumed at ``iteration`` (which
    took the decays ``taken``): "replaced" where it gives the iterations trained other learning
    rates (another warm-up or warm-up factor, other decays before ``iteration``: another
    preset's whole schedule, say, or another gamma after a decay), else "extended" or
    "shortened" (``max_iter``), or "changed ahead" (only decays still to come, or the gamma of
    those)."""
    warmed = iteration > 0 and saved.warmup_iters > 0
    if (
        saved.warmup_iters != current.warmup_iters
        or taken != Schedule.of(current).decays_taken(iteration)
        or (taken and saved.gamma != current.gamma)
        or (warmed and saved.warmup_factor != current.warmup_factor)
    ):
        return "replaced (not the learning rates the run trained with)"
    if current.max_iter != saved.max_iter:
        return "extended" if current.max_iter > saved.max_iter else "shortened"
    return "changed ahead"


def log_batch_changes(
    saved: Config, saved_world_size: int, current: Config, world_size: int
) -> None:
    """Warn when a resumed run takes other steps than the run it continues: another number of
    processes (each reads its own shard: another data order), other images per step, another
    learning rate (``train.lr``, or the linear scaling of a changed batch), or aspect-ratio
    grouping turned on or off (other batches)."""
    old, new = saved.train, current.train
    if old.aspect_ratio_grouping != new.aspect_ratio_grouping:
        logger.warning(
            "resuming a run trained %s aspect-ratio grouping %s it (other batches from here on); "
            "--set %s continues as it was",
            "with" if old.aspect_ratio_grouping else "without",
            "without" if old.aspect_ratio_grouping else "with",
            override_arguments({"train.aspect_ratio_grouping": old.aspect_ratio_grouping}),
        )
    old_total, new_total = images_per_step(old, saved_world_size), images_per_step(new, world_size)
    old_lr, new_lr = run_lr(old, saved_world_size), run_lr(new, world_size)
    if (saved_world_size, old_total, old_lr) == (world_size, new_total, new_lr):
        return
    logger.warning(
        "resuming a run of %d process(es) x %d image(s) x %d micro-batch(es) (%d images/step, "
        "lr %.3g) with %d x %d x %d (%d images/step, lr %.3g): it does not continue as the "
        "interrupted run would have",
        saved_world_size,
        old.batch_size,
        old.grad_accum_steps,
        old_total,
        old_lr,
        world_size,
        new.batch_size,
        new.grad_accum_steps,
        new_total,
        new_lr,
    )
