"""Resuming a training run: whether a checkpoint may continue it, and restoring its states.

What a resume refuses (another model, a checkpoint past ``train.max_iter``) or changes (the
learning-rate schedule, the batch, other settings) is decided from the checkpoint's config and
the resumed run's alone (:func:`check_resume`, which chooses the checkpoint: the newest readable
one of a run folder), so that a command says it before the data is read (what it changes is
:mod:`sparsercnn.engine.resume_changes`'s to say); :func:`restore_training_state` then loads
that checkpoint's model, optimizer, scaler and RNG states, checking the resume itself only
where no command did (given the command's :class:`CheckedResume`, it takes that check's
outcome). The file format is :mod:`sparsercnn.engine.checkpoint`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparsercnn.config import Config, log_schedule_notes, override_value
from sparsercnn.data.categories import CategoryMap
from sparsercnn.engine.checkpoint import load_training_checkpoint
from sparsercnn.engine.lr_schedule import Schedule, resumed_steps, run_lr
from sparsercnn.engine.resume_changes import log_batch_changes, log_config_changes
from sparsercnn.engine.rng_state import restore_rng_states
from sparsercnn.engine.training_images import log_data_change
from sparsercnn.model_file import load_state_dict_strict
from sparsercnn.paths import FileVersion
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
            checkpoint (:func:`~sparsercnn.engine.model_best.reconcile_model_best`).
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
    """A resume checked before the data is read (:func:`check_resume`): the config it trains
    with, and the checkpoint it chose and read, whose refusals passed and whose messages were
    said; :func:`restore_training_state` restores that checkpoint with that config (another is
    refused), neither checking nor saying anything again unless the file was replaced since.

    Attributes:
        config: the resumed run's config, as checked.
        path: the checkpoint (a ``checkpoint_*.pt`` file, its records' checksums checked).
        iteration: optimiser steps it holds.
        steps: the decays of a completed run that a larger ``max_iter`` extends
            (:attr:`ResumePoint.steps`); ``None`` where ``config.train.steps`` stand.
        stamp: the file as its checksums were checked (``None``: unknown, checked again).
    """

    config: Config
    path: Path
    iteration: int
    steps: tuple[int, ...] | None = None
    stamp: FileVersion | None = None


def restore_training_state(
    source: str | Path | CheckedResume,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    config: Config,
    categories: CategoryMap,
    rank: int = 0,
    world_size: int = 1,
    data: Mapping[str, Any] | None = None,
    *,
    budget_given: bool = False,
    budget_extends: bool = False,
) -> ResumePoint:
    """Continue a run: load a checkpoint into the model, optimizer and scaler, restore the RNGs.

    The checkpoint's tensors are copied into the model and the optimizer: none of them stays a
    view of the file (:func:`~sparsercnn.engine.checkpoint.load_training_checkpoint` maps it),
    which the run prunes later.

    Args:
        source: a ``checkpoint_*.pt`` file, or the run folder (its newest readable checkpoint),
            which is checked here (:func:`check_resume`); or the resume as a command checked it
            before reading the data (:func:`check_resume` of either): its checkpoint is
            restored (its checksums not summed again where the file is the one the check
            summed), and it is not checked nor said again unless its file was replaced since.
        model, optimizer, scaler: built from ``config`` as for a new run; loaded in place.
        config: the configuration of the resumed run; what of it cannot continue the run is
            refused, and what it changes said (:func:`check_resume`). Given a
            :class:`CheckedResume`, it must be the config that resume was checked with.
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
        budget_given, budget_extends: as :func:`check_resume` (of a ``source`` checked here).

    Raises:
        ValueError: the checkpoint is of a run with another label map, another model or past
            ``train.max_iter`` (:func:`check_resume`), or cannot be read (see
            :func:`~sparsercnn.engine.checkpoint.load_training_checkpoint`); a
            :class:`CheckedResume` checked with another config than ``config``, or whose
            checkpoint file holds another iteration now, or was replaced since by one that
            :func:`check_resume` refuses.
    """
    if isinstance(source, CheckedResume):
        # Its checksums are not summed a second time: the run-folder lock keeps the run's
        # checkpoints as they were since the check; a file another run replaced since (a
        # --resume CHECKPOINT of another folder), or another machine's copy, has another stamp:
        # summed again, refused if it holds another iteration than the one checked, and its
        # config checked again (_as_checked).
        state = load_training_checkpoint(source.path, summed=source.stamp)
    else:
        state = load_training_checkpoint(source)
    path = Path(state["path"])
    saved_categories = CategoryMap.from_dict(state["categories"])
    if saved_categories != categories:
        raise ValueError(
            f"{path} was trained with {saved_categories}, but the data set has {categories}; "
            "resume with the data set of that run"
        )
    if isinstance(source, CheckedResume):
        checked = _as_checked(
            source,
            state,
            config,
            world_size,
            budget_given=budget_given,
            budget_extends=budget_extends,
            say=rank == 0,
        )
    else:
        checked = check_resume(
            state,
            config,
            world_size,
            budget_given=budget_given,
            budget_extends=budget_extends,
            say=rank == 0,
        )
    rng = state["rng"]
    iteration = checked.iteration
    load_state_dict_strict(model, state["model"], source=str(path))
    optimizer.load_state_dict(state["optimizer"])
    _copy_out_of_file(optimizer)
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
        checked.steps,
    )


def _as_checked(
    checked: CheckedResume,
    state: Mapping[str, Any],
    config: Config,
    world_size: int,
    *,
    budget_given: bool,
    budget_extends: bool,
    say: bool,
) -> CheckedResume:
    """``checked``, the resume a command checked, once ``state`` (its checkpoint, read again to
    restore it) and ``config`` (the config restored with) are those it checked. A checkpoint
    file replaced or rewritten since the check (another stamp) is checked again whole
    (:func:`check_resume`; ``world_size``, ``budget_given``, ``budget_extends`` and ``say`` as
    its): its config may be another run's.

    Raises:
        ValueError: ``config`` is not the config the resume was checked with (the keys that
            differ named), the checkpoint holds another iteration than when it was checked, or
            (replaced since) :func:`check_resume` refuses it.
    """
    if config != checked.config:
        changed = [
            f"{key} {override_value(old)} -> {override_value(new)}"
            for key, (old, new) in checked.config.differences(config).items()
        ]
        raise ValueError(
            f"{checked.path}: the resume was checked with another config than the one it is "
            f"restored with ({listing(changed, limit=4)}): check it again (check_resume) with "
            "the config the run trains with"
        )
    iteration = int(state["iteration"])
    if iteration != checked.iteration:
        raise ValueError(
            f"{checked.path} holds iteration {iteration}, not {checked.iteration} as when the "
            "resume was checked (another run wrote it since): check the resume again"
        )
    if checked.stamp is not None and state.get("stamp") == checked.stamp:
        return checked
    if say and checked.stamp is not None:
        logger.warning(
            "%s was rewritten or replaced since the resume was checked: checked again",
            checked.path,
        )
    return check_resume(
        state,
        config,
        world_size,
        budget_given=budget_given,
        budget_extends=budget_extends,
        say=say,
    )


def _copy_out_of_file(optimizer: torch.optim.Optimizer) -> None:
    """Copy the optimizer's CPU tensors (moments of CPU parameters, step counts) out of the
    mapped checkpoint: ``load_state_dict`` keeps a tensor that is on its parameter's device
    already, which would stay a view of the file; one it moved to a GPU is a copy already."""
    for entries in optimizer.state.values():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor) and value.device.type == "cpu":
                entries[name] = value.clone()


def check_resume(
    source: str | Path | Mapping[str, Any],
    config: Config,
    world_size: int = 1,
    *,
    budget_given: bool = False,
    budget_extends: bool = False,
    say: bool = True,
) -> CheckedResume:
    """Refuse, then say, what resuming from ``source`` with ``config`` does, from the checkpoint's
    config alone (its records' checksums checked, its tensors mapped, not loaded): what
    :func:`restore_training_state` would refuse and say after the data's check, so that a
    command says it first, of the checkpoint it will restore.

    Refused: another model (:func:`check_same_model`), a checkpoint past ``train.max_iter``.
    Said (``say``; rank 0): other images per step or learning rate (:func:`log_batch_changes`),
    another schedule or other settings (:func:`log_config_changes`), then what of the schedule
    the run trains it never reaches (:meth:`~sparsercnn.config.TrainConfig.schedule_notes`), or
    that it has nothing left to train.

    Args:
        source: a ``checkpoint_*.pt`` file, or a run folder: its newest readable checkpoint,
            damaged ones skipped with a warning
            (:func:`~sparsercnn.engine.checkpoint.load_training_checkpoint`); or the checkpoint
            as that function read it already (a command's, which may take the run's config from
            it), not read again.
        config: the resumed run's config (``model.num_classes`` the data's).
        world_size: the resumed run's number of processes.
        budget_given: the run has a time budget.
        budget_extends: a time budget trains a completed run on
            (:class:`~sparsercnn.engine.time_budget.BudgetedSchedule`; the demo's does not):
            given one, such a run is not "nothing to train"; without one, that line says a
            budget would continue it.
        say: log the messages (rank 0); the refusals are raised either way.

    Returns:
        The resume checked, with the checkpoint :func:`restore_training_state` restores and the
        decays a larger ``max_iter`` extends.

    Raises:
        FileNotFoundError: as :func:`~sparsercnn.engine.checkpoint.resolve_checkpoint_path`.
        DamagedCheckpointError: the checkpoint file is damaged, or every one of the folder.
        ValueError: another model, past ``train.max_iter``, or not a training checkpoint.
    """
    state = source if isinstance(source, Mapping) else load_training_checkpoint(source)
    path = Path(state["path"])
    iteration = int(state["iteration"])
    saved = Config.from_run_dict(state["config"])
    steps = _checked_resume(
        path,
        saved,
        len(state["rng"]),
        iteration,
        config,
        world_size,
        budget_given=budget_given,
        budget_extends=budget_extends,
        say=say,
    )
    return CheckedResume(config, path, iteration, steps, state.get("stamp"))


def _checked_resume(
    path: Path,
    saved: Config,
    saved_world_size: int,
    iteration: int,
    current: Config,
    world_size: int,
    *,
    budget_given: bool,
    budget_extends: bool,
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
    base_lr = run_lr(train, world_size)
    log_config_changes(saved, settled, iteration, base_lr=base_lr, extended=steps is not None)
    if iteration < train.max_iter:
        # A completed run that a time budget extends has its schedule from the budget's refits,
        # which judge it; one with nothing to train never reaches any of it.
        log_schedule_notes(settled.train)
    elif not (budget_given and budget_extends):
        logger.info(
            "%s is at iteration %d, the end of train.max_iter %d: nothing to train (raise "
            "train.max_iter%s to continue the run)",
            path,
            iteration,
            train.max_iter,
            ", or give a time budget," if budget_extends else "",
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
    changed = list(model_changes(saved, current).values())
    if saved.train.freeze != current.train.freeze:
        changed.append(f"train.freeze {saved.train.freeze!r} -> {current.train.freeze!r}")
    if changed:
        raise ValueError(
            f"{source} is from a run with another model ({listing(changed, limit=4)}): resume "
            "with the run's own settings (--resume without --preset, --config, --freeze or "
            "--set model.* reads them from its config.json), or start a new run in another "
            "output folder"
        )


def model_changes(saved: Config, current: Config) -> dict[str, str]:
    """The model settings of ``current`` that differ from ``saved``'s and that a resumed run
    may not change (all but :data:`RESUMABLE_MODEL_KEYS`), each with both values for a message:
    ``{"backbone_width": "model.backbone_width 8 -> 32"}``."""
    return {
        key: f"model.{key} {getattr(saved.model, key)!r} -> {value!r}"
        for key, value in vars(current.model).items()
        if key not in RESUMABLE_MODEL_KEYS and getattr(saved.model, key) != value
    }
