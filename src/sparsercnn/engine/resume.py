"""Resuming a training run: whether a checkpoint may continue it, what that changes, and
restoring its states.

What a resume refuses (another model, a checkpoint past ``train.max_iter``) or changes (the
learning-rate schedule, the batch, other settings) is decided from the checkpoint's config and
the resumed run's alone (:func:`check_resume`), so that a command says it before the data is
read; :func:`restore_training_state` then loads the model, optimizer, scaler and RNG states,
saying it only where the command did not (the checkpoint it checked turned out damaged). The
file format is :mod:`sparsercnn.engine.checkpoint`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparsercnn.config import Config, TrainConfig, override_arguments, override_value
from sparsercnn.data.categories import CategoryMap
from sparsercnn.engine.checkpoint import (
    DamagedCheckpointError,
    load_training_checkpoint,
    look_at_checkpoint,
    resolve_checkpoint_path,
)
from sparsercnn.engine.lr_schedule import Schedule, resumed_steps, scaled_lr, train_lr_factor
from sparsercnn.engine.rng_state import restore_rng_states
from sparsercnn.engine.training_images import log_data_change
from sparsercnn.model_file import load_state_dict_strict
from sparsercnn.text import listing

logger = logging.getLogger(__name__)

# The model settings a resumed run may change: dropout acts in training only, the prior
# probability in the initialisation only, on-demand FPN levels compute the same outputs, and
# the label map (``num_classes``) is checked on its own.
RESUMABLE_MODEL_KEYS = frozenset({"dropout", "prior_prob", "fpn_on_demand_levels", "num_classes"})


@dataclass(frozen=True)
class ResumePoint:
    """Where a resumed run continues (see :func:`restore_training_state`).

    Attributes:
        path: the checkpoint read.
        iteration: optimiser steps already taken.
        best_ap: the best evaluation AP of the run so far (``None``: never evaluated).
        best_iteration: the iteration of ``best_ap``.
        best_model_crc32: the ``tensors_crc32`` of the ``model_best`` file that holds
            ``best_ap``'s model, as the run wrote it (``None``: no best, or a checkpoint written
            before this was recorded), which tells that file from one the run wrote after this
            checkpoint (:meth:`~sparsercnn.engine.trainer.Trainer._check_model_best`).
        last_evaluation: the iteration of the run's last evaluation (``None``: none, or a
            checkpoint written before this was recorded).
        steps: the decays of a completed run that a larger ``max_iter`` extends
            (:func:`~sparsercnn.engine.lr_schedule.resumed_steps`); ``None`` where the resumed
            run's ``train.steps`` stand.
    """

    path: Path
    iteration: int
    best_ap: float | None
    best_iteration: int | None
    best_model_crc32: str | None
    last_evaluation: int | None
    steps: tuple[int, ...] | None


@dataclass(frozen=True)
class CheckedResume:
    """A resume checked before the data is read (:func:`check_resume`): the checkpoint it read,
    whose refusals passed and whose messages were said; :func:`restore_training_state` says them
    again only if it resumes from another one (this one turned out damaged).

    Attributes:
        path: the checkpoint.
        iteration: optimiser steps it holds.
    """

    path: Path
    iteration: int


def restore_training_state(
    source: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    config: Config,
    categories: CategoryMap,
    rank: int = 0,
    world_size: int = 1,
    data: Mapping[str, Any] | None = None,
    *,
    budget_extends: bool = False,
    extends_hint: bool = False,
    checked: CheckedResume | None = None,
) -> ResumePoint:
    """Continue a run: load a checkpoint into the model, optimizer and scaler, restore the RNGs.

    The checkpoint's tensors are copied into the model and the optimizer: none of them stays a
    view of the file (:func:`~sparsercnn.engine.checkpoint.load_training_checkpoint` maps it),
    which the run prunes later.

    Args:
        source: a ``checkpoint_*.pt`` file, or the run folder (its newest readable checkpoint).
        model, optimizer, scaler: built from ``config`` as for a new run; loaded in place.
        config: the configuration of the resumed run; what of it cannot continue the run is
            refused, and what it changes said (:func:`check_resume`).
        categories: the label map of the data; it must equal the checkpoint's.
        rank: this process's rank, whose RNG states are restored; a rank the checkpoint has
            none of (more processes than the run had) keeps its own, rather than repeating
            rank 0's random numbers.
        world_size: the resumed run's number of processes; another number than the
            checkpoint's (one RNG state per rank) is warned about, as is any change of the
            images per step or the learning rate.
        data: the training images of the resumed run
            (:func:`~sparsercnn.engine.training_images.data_identity`); other images than the
            checkpoint's ``extra["data"]`` are warned about, those added, removed or resized
            named (:func:`~sparsercnn.engine.training_images.log_data_change`).
        budget_extends, extends_hint: as :func:`check_resume`.
        checked: the resume as a command checked it before reading the data: its messages are
            not said again if this checkpoint is the one it read.

    Raises:
        ValueError: the checkpoint is of a run with another label map, another model or past
            ``train.max_iter`` (:func:`check_resume`), or cannot be read (see
            :func:`~sparsercnn.engine.checkpoint.load_training_checkpoint`).
    """
    state = load_training_checkpoint(source)
    path = Path(state["path"])
    saved_config = Config.from_run_dict(state["config"])
    saved_categories = CategoryMap.from_dict(state["categories"])
    if saved_categories != categories:
        raise ValueError(
            f"{path} was trained with {saved_categories}, but the data set has {categories}; "
            "resume with the data set of that run"
        )
    rng = state["rng"]
    iteration = int(state["iteration"])
    said = checked is not None and (checked.path, checked.iteration) == (path, iteration)
    steps = _checked_resume(
        path,
        saved_config,
        len(rng),
        iteration,
        config,
        world_size,
        budget_extends=budget_extends,
        extends_hint=extends_hint,
        say=rank == 0 and not said,
    )
    load_state_dict_strict(model, state["model"], source=str(path))
    optimizer.load_state_dict(_copied(state["optimizer"]))
    if scaler is not None and state["scaler"] is not None:
        scaler.load_state_dict(state["scaler"])
    if rank < len(rng):
        restore_rng_states(rng[rank])
    log_data_change(state["extra"].get("data"), data)
    logger.info("resumed from %s at iteration %d", path, iteration)
    extra = state["extra"]
    return ResumePoint(
        path,
        iteration,
        extra.get("best_ap"),
        extra.get("best_iteration"),
        extra.get("best_model_crc32"),
        extra.get("last_evaluation"),
        steps,
    )


def _copied(optimizer_state: dict[str, Any]) -> dict[str, Any]:
    """``optimizer_state`` with its tensors (moments, step counts) copied out of the mapped
    checkpoint: the optimizer keeps a tensor it is given that is on its parameter's device
    already (on the CPU) and would train on views of the file."""
    return {
        **optimizer_state,
        "state": {
            key: {
                name: value.clone() if isinstance(value, torch.Tensor) else value
                for name, value in entries.items()
            }
            for key, entries in optimizer_state["state"].items()
        },
    }


def check_resume(
    source: str | Path,
    config: Config,
    world_size: int = 1,
    *,
    budget_extends: bool = False,
    extends_hint: bool = False,
    say: bool = True,
) -> CheckedResume | None:
    """Refuse, then say, what resuming from ``source`` with ``config`` does, from the checkpoint's
    config alone (its tensors mapped, not read): what :func:`restore_training_state` would
    refuse and say after the data's check, so that a command says it first.

    Refused: another model (:func:`check_same_model`), a checkpoint past ``train.max_iter``.
    Said (``say``; rank 0): other images per step or learning rate (:func:`log_batch_changes`),
    another schedule or other settings (:func:`log_config_changes`), then what of the schedule
    the run trains it never reaches (:meth:`~sparsercnn.config.TrainConfig.schedule_notes`), or
    that it has nothing left to train.

    Args:
        source: a ``checkpoint_*.pt`` file, or a run folder (the checkpoint resuming reads first).
        config: the resumed run's config (``model.num_classes`` the data's).
        world_size: the resumed run's number of processes.
        budget_extends: a time budget trains a completed run on
            (:class:`~sparsercnn.engine.time_budget.BudgetedSchedule`): it is not "nothing to
            train".
        extends_hint: a time budget would (the command extends runs with one): the "nothing to
            train" line says so.
        say: log the messages (rank 0); the refusals are raised either way.

    Returns:
        The checkpoint checked; ``None`` where it is damaged (resuming then reads an older one,
        and :func:`restore_training_state` says what this would have).

    Raises:
        FileNotFoundError: as :func:`~sparsercnn.engine.checkpoint.resolve_checkpoint_path`.
        ValueError: another model, past ``train.max_iter``, or not a training checkpoint.
    """
    path = resolve_checkpoint_path(source)
    try:
        state = look_at_checkpoint(path)
    except DamagedCheckpointError:
        return None
    iteration = int(state["iteration"])
    saved = Config.from_run_dict(state["config"])
    _checked_resume(
        path,
        saved,
        len(state["rng"]),
        iteration,
        config,
        world_size,
        budget_extends=budget_extends,
        extends_hint=extends_hint,
        say=say,
    )
    return CheckedResume(path, iteration)


def _checked_resume(
    path: Path,
    saved: Config,
    saved_world_size: int,
    iteration: int,
    current: Config,
    world_size: int,
    *,
    budget_extends: bool,
    extends_hint: bool,
    say: bool,
) -> tuple[int, ...] | None:
    """:func:`check_resume` of the checkpoint at ``path`` (``saved``: its config, of a run of
    ``saved_world_size`` processes, at ``iteration``); returns the decays of a completed run
    extended (:attr:`ResumePoint.steps`)."""
    check_same_model(saved, current, path)
    train = current.train
    if iteration > train.max_iter:
        raise ValueError(
            f"{path} is at iteration {iteration}, past train.max_iter {train.max_iter}: resume "
            f"with --set train.max_iter={iteration} or more, or from an earlier "
            "checkpoint_*.pt of the run"
        )
    # A completed run extended gets a fresh run's decays ahead; the schedule is then settled.
    steps = resumed_steps(Schedule.of(saved.train), iteration, Schedule.of(train))
    if not say:
        return steps
    settled = current if steps is None else _with_steps(current, steps)
    log_batch_changes(saved, saved_world_size, settled, world_size)
    total_batch = train.batch_size * train.grad_accum_steps * world_size
    base_lr = scaled_lr(train.lr, total_batch, train.reference_batch_size, train.scale_lr)
    log_config_changes(saved, settled, iteration, base_lr=base_lr, extended=steps is not None)
    if iteration < train.max_iter:
        # A completed run that a time budget extends has its schedule from the budget's refits,
        # which judge it; one with nothing to train never reaches any of it.
        for note in settled.train.schedule_notes():
            logger.warning("%s", note)
    elif not budget_extends:
        logger.info(
            "%s is at iteration %d, the end of train.max_iter %d: nothing to train (raise "
            "train.max_iter%s to continue the run)",
            path,
            iteration,
            train.max_iter,
            ", or give a time budget," if extends_hint else "",
        )
    return steps


def _with_steps(config: Config, steps: tuple[int, ...]) -> Config:
    """``config`` with ``train.steps`` replaced."""
    return replace(config, train=replace(config.train, steps=steps))


def check_same_model(saved: Config, current: Config, source: str | Path) -> None:
    """Refuse to continue the run of checkpoint ``source`` (``saved``: its config) with another
    model (``current``): a model setting changed other than :data:`RESUMABLE_MODEL_KEYS` (its
    weights would be loaded into another architecture, or one that computes something else with
    them), or another ``train.freeze`` (the optimizer state holds other tensors).

    Raises:
        ValueError: naming each changed key with both values, and what to do.
    """
    changed = [
        f"model.{key} {old!r} -> {new!r}"
        for key, (old, new) in model_changes(saved, current).items()
    ]
    if saved.train.freeze != current.train.freeze:
        changed.append(f"train.freeze {saved.train.freeze!r} -> {current.train.freeze!r}")
    if changed:
        raise ValueError(
            f"{source} is from a run with another model ({listing(changed, limit=4)}): resume "
            "with the run's own settings (--resume without --preset, --config, --freeze or "
            "--set model.* reads them from its config.json), or start a new run in another "
            "output folder"
        )


def model_changes(saved: Config, current: Config) -> dict[str, tuple[Any, Any]]:
    """The model settings of ``current`` that differ from ``saved``'s and that a resumed run
    may not change (all but :data:`RESUMABLE_MODEL_KEYS`): ``{"key": (saved's, current's)}``."""
    return {
        key: (getattr(saved.model, key), value)
        for key, value in vars(current.model).items()
        if key not in RESUMABLE_MODEL_KEYS and getattr(saved.model, key) != value
    }


def log_config_changes(
    saved: Config, current: Config, iteration: int, *, base_lr: float, extended: bool
) -> None:
    """Say once what the config of a run resumed at ``iteration`` changes from the run's own
    (``saved``, its checkpoint's): the learning-rate schedule (:func:`_log_schedule_change`),
    and every other changed setting with both values and the ``--set`` that keeps the run's
    (warning). The images per step, the learning rate and the data order are
    :func:`log_batch_changes`'s to say, the model :func:`check_same_model`'s to refuse.

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
# (train_lr_factor) and its length.
_SCHEDULE_KEYS = frozenset(
    f"train.{name}" for name in ("max_iter", "steps", "gamma", "warmup_iters", "warmup_factor")
)
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
    learning rates the run trained with or raises the rate."""
    if not changed:
        return
    taken = Schedule.of(saved).decays_taken(iteration)
    change = _schedule_change(saved, current, iteration, taken)
    text = f"schedule {change} on resume at iteration {iteration}: "
    text += _schedule_changes(saved, current)
    if extended:
        text += " (the decays of a fresh run of that length; set train.steps to choose others)"
    # The run's rate: its own schedule with only the decays it took (one at ``iteration`` that
    # ``current`` puts later is no rise: the run never trained at the decayed rate).
    before = base_lr * train_lr_factor(saved, iteration, steps=taken)
    after = base_lr * train_lr_factor(current, iteration)
    rises = after > before * (1.0 + 1e-6)
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


def _schedule_changes(saved: TrainConfig, current: TrainConfig) -> str:
    """The learning-rate schedule of ``saved`` against ``current``, for a message:
    ``max_iter 100 -> 300, steps [80] -> [240], warm-up 10 -> 10``, with ``gamma`` and
    ``warm-up factor`` where they differ."""
    text = (
        f"max_iter {saved.max_iter} -> {current.max_iter}, steps {list(saved.steps)} -> "
        f"{list(current.steps)}, warm-up {saved.warmup_iters} -> {current.warmup_iters}"
    )
    if saved.gamma != current.gamma:
        text += f", gamma {saved.gamma:g} -> {current.gamma:g}"
    if saved.warmup_factor != current.warmup_factor:
        text += f", warm-up factor {saved.warmup_factor:g} -> {current.warmup_factor:g}"
    return text


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
    old_total = old.batch_size * old.grad_accum_steps * saved_world_size
    new_total = new.batch_size * new.grad_accum_steps * world_size
    old_lr = scaled_lr(old.lr, old_total, old.reference_batch_size, old.scale_lr)
    new_lr = scaled_lr(new.lr, new_total, new.reference_batch_size, new.scale_lr)
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
