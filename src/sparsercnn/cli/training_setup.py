"""How ``train`` and ``demo`` set a run up: what is refused before the data's check (the run
folder, a resume: :mod:`~sparsercnn.cli.resume_setup`), the starting weights (read once), the
data's check, the config (the options' fixed one, :mod:`~sparsercnn.cli.config_options`, the
automatic recipe, or on ``--resume`` the run's own), what is left of ``--time-budget`` after the
recipe's timing, and the run folder, held for the run's life and not left behind by a refused
run."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sparsercnn.cli.config_options import fixed_preset, overridden_train_value, with_weight_options
from sparsercnn.cli.resume_setup import check_resume_to_start
from sparsercnn.config import Config, TrainConfig
from sparsercnn.paths import missing_folders, remove_empty_folders
from sparsercnn.run_files import CONFIG_FILE

if TYPE_CHECKING:
    from sparsercnn.data.checked_coco import CheckedCoco
    from sparsercnn.data.policy import Inspection
    from sparsercnn.engine.distributed import DistInfo
    from sparsercnn.engine.model_init import StartingWeights
    from sparsercnn.engine.resume import CheckedResume


# The automatic recipe's record of its choices, beside the run's config.json.
RECIPE_FILE = "recipe.json"
# The evaluation plots ``train`` draws from the run's evaluation of its best model.
REPORT_DIR = "report"
# What ``train`` writes in a run folder besides the trainer's files (RUN_OUTPUT_FILES): another
# run's are refused as those are, whatever the new run's preset (it would leave them beside its
# own, or replace some of a report's files).
COMMAND_OUTPUT_FILES = (RECIPE_FILE, REPORT_DIR)
# What a refused run may have written before its first step (the trainer's log comes with its
# first record).
_SETUP_FILES = (RECIPE_FILE, CONFIG_FILE)


@contextmanager
def held_run_folder(folder: Path, *, make: bool, is_main: bool) -> Iterator[None]:
    """Hold the run folder of a training command for the command's life: its lock
    (:func:`~sparsercnn.engine.run_lock.run_folder_lock`: another run into it is refused at
    once, before any work; ``make`` as there), and on rank 0 (``is_main``) the undoing of a
    refused run's setup.

    When the command fails, if all it added to ``folder`` are setup files
    (:data:`_SETUP_FILES`: a run stopped before its first record and checkpoint), they are
    removed, and so are ``folder`` and the folders above it that the command made, where empty.
    A refused ``train`` leaves no run folder behind and nothing that would refuse the next try;
    a run that wrote a log record, a checkpoint or a model file keeps everything (it can be
    resumed, or its log read), and files that were there before the lock was taken (no other
    run writes them after) are never touched."""
    from sparsercnn.engine.run_lock import run_folder_lock

    made = missing_folders(folder) if is_main else []  # rank 0 makes them for the lock
    try:
        with run_folder_lock(folder, make=make):
            before = {entry.name for entry in folder.iterdir()} if folder.is_dir() else set()
            try:
                yield
            except BaseException:
                if is_main:
                    _remove_setup_files(folder, before)
                raise
    except BaseException:
        remove_empty_folders(made)
        raise


def _remove_setup_files(folder: Path, before: set[str]) -> None:
    """Remove what a refused run added to ``folder`` (the names not in ``before``) if all of it
    is setup files."""
    if not folder.is_dir():
        return
    added = [entry for entry in folder.iterdir() if entry.name not in before]
    if all(path.name in _SETUP_FILES for path in added):
        for path in added:
            path.unlink()


def check_run_to_start(
    args: argparse.Namespace,
    output_dir: Path,
    *,
    is_main: bool,
    world_size: int = 1,
) -> CheckedResume | None:
    """Refuse, before any data work (the data's check decodes every image), what training would
    refuse after it, and say what a resume changes: a new run where another run's checkpoints
    or outputs are (its ``recipe.json`` and ``report/`` too, :data:`COMMAND_OUTPUT_FILES`); a
    ``--resume`` with no run to continue, with a ``--preset`` or ``--config`` not the run's
    (:func:`~sparsercnn.cli.resume_setup.check_resume_to_start`), or that changes its model or
    ends before its checkpoint; then what the resume changes
    (:func:`~sparsercnn.engine.resume.check_resume`, of the ``world_size`` processes that resume
    it; a ``--time-budget`` trains a completed run on). What a new run's schedule never
    reaches is said by ``train_from_coco``, of the config it trains. ``is_main``: this
    process may create ``output_dir`` (rank 0), else it only looks, and says nothing.

    Returns:
        The resume as checked, with the config it trains with (:func:`training_config` takes
        it); ``None`` for a new run.

    Raises:
        FileExistsError: a new run and ``output_dir`` holds another run's files.
        FileNotFoundError: ``--resume`` and nothing to resume.
        ValueError: ``--resume`` with ``--preset`` or ``--config`` of another model than the
            run's, ``--freeze`` or ``--set`` values that change its model, or a
            ``train.max_iter`` below its checkpoint's iteration.
        NotADirectoryError, PermissionError: ``output_dir`` cannot be written.
    """
    from sparsercnn.engine.checkpoint import check_run_folder

    if args.resume:
        return check_resume_to_start(args, output_dir, is_main=is_main, world_size=world_size)
    check_run_folder(output_dir, False, is_main=is_main, also=COMMAND_OUTPUT_FILES)
    return None


def starting_weights(args: argparse.Namespace, given: Config | None) -> StartingWeights | None:
    """The files of ``train.init_from`` and ``train.backbone_weights`` (``--init-from``,
    ``--backbone-weights``, or ``--set``), read and converted once, before the data's check (a
    wrong file is named at once): the recipe reads the architecture off them and training loads
    them (:func:`training_config`, ``train_from_coco``); a fixed ``--preset`` or ``--config``
    of another architecture is refused then, and so are ``--set`` values that change the
    weights' architecture, which ``auto`` keeps. ``given``: what
    :func:`~sparsercnn.cli.config_options.check_config_arguments` returned. None without any,
    and on ``--resume`` (the run restores its own weights)."""
    from sparsercnn.engine.model_init import read_starting_weights

    if given is None:
        return None
    train = given.train
    if not (train.init_from or train.backbone_weights):
        return None
    weights = read_starting_weights(train.init_from, train.backbone_weights)
    if fixed_preset(args):
        weights.check_fits(given.model)
    else:  # auto takes the weights' architecture, which --set must keep
        from sparsercnn.recipe.model_size import check_overrides_fit_weights

        checkpoint = weights.checkpoint
        model = check_overrides_fit_weights(
            list(args.overrides),
            init_from=weights.init_from,
            init_model=checkpoint.config.model if checkpoint is not None else None,
            backbone_weights=weights.backbone_weights,
            backbone_depth=weights.backbone_depth,
        )
        if model is not None:  # a ResNet of another width than the model's, for one
            weights.check_fits(model)
    return weights


@dataclass(frozen=True)
class CheckedData:
    """What :func:`check_training_data` found in a run's sets: the data policy's inspection of
    the training set and of the validation set (``None`` without one), each accepted for
    training (:func:`~sparsercnn.data.policy.checked_for_training`)."""

    train: Inspection
    val: Inspection | None


def check_training_data(
    train: tuple[Path, Path], val: tuple[Path, Path] | None, skip_invalid: bool
) -> CheckedData | None:
    """The data policy in full (every image decoded) on the training and validation sets
    (``(json, image folder)`` each), before a run's budget starts (as a fixed preset's dataset
    checks run before the trainer's clock): bad files, and a validation set with other
    categories, are named before any recipe work. Under torchrun rank 0 checks (and later
    chooses the recipe and builds the datasets) for all ranks; what it refuses, every rank
    refuses with the same error.

    Returns:
        The sets as checked, on rank 0 (``None`` on the other ranks): the automatic recipe
        profiles the training set's entries as they are (:func:`training_config`), without a
        second check inside the time budget, and ``train_from_coco`` builds the datasets from
        them (its ``train_inspection`` and ``val_inspection``), neither parsing nor checking a
        file again.

    Raises:
        InvalidDataError, DatasetError: what training would refuse
            (:func:`~sparsercnn.data.policy.checked_for_training`, whose refusals the recipe's
            profile of the training set gives as well).
        ValueError: the validation set's categories differ from the training set's.
    """
    from sparsercnn.engine.distributed import done_on_main

    # The entries stay on rank 0, the only rank that reads them (a set's JSON can be large).
    return done_on_main(lambda: _check_data(train, val, skip_invalid))


def _check_data(
    train: tuple[Path, Path], val: tuple[Path, Path] | None, skip_invalid: bool
) -> CheckedData:
    """:func:`check_training_data` in this process."""
    from sparsercnn.data.categories import CategoryMap, check_same_categories
    from sparsercnn.data.policy import checked_for_training

    train_set = checked_for_training(*train, skip_invalid=skip_invalid)
    if val is None:
        return CheckedData(train_set, None)
    val_set = checked_for_training(*val, skip_invalid=skip_invalid)
    maps = [CategoryMap.from_coco(found.checked.categories) for found in (train_set, val_set)]
    check_same_categories(maps[0], maps[1], str(val[0]), f"{train[0]} has")
    return CheckedData(train_set, val_set)


def training_config(
    args: argparse.Namespace,
    given: Config | None,
    resumed: CheckedResume | None,
    train_json: Path,
    train_images: Path,
    output_dir: Path,
    dist_info: DistInfo,
    weights: StartingWeights | None = None,
    checked: CheckedData | None = None,
) -> Config:
    """The config of a training run (``train``, ``demo``): on ``--resume`` the run's own, as
    :func:`check_run_to_start` read it (``resumed``, which it returned); else that of a fixed
    ``--preset`` or ``--config`` as :func:`~sparsercnn.cli.config_options.check_config_arguments`
    resolved it (``given``, which it returned), or with ``--preset auto`` the recipe chosen from
    the training set (rank 0 chooses, every rank trains with it) and ``weights``
    (:func:`starting_weights`: the recipe takes their architecture). ``--set`` overrides apply
    last, then ``--init-from``, ``--backbone-weights`` and ``--freeze``.
    ``checked``: the sets as :func:`check_training_data` found them (rank 0's), whose training
    set the recipe profiles without checking it again; None: the recipe checks it."""
    from sparsercnn.engine.distributed import computed_on_main

    if args.resume:
        assert resumed is not None, "check_run_to_start checks a resume first"
        return resumed.config
    if fixed_preset(args):
        assert given is not None, "check_config_arguments resolves a new run's config"
        return given
    chosen = computed_on_main(
        lambda: _auto_config(
            args,
            train_json,
            train_images,
            output_dir,
            dist_info,
            weights,
            None if checked is None else checked.train.checked,
        ).to_dict()
    )
    return Config.from_dict(chosen)


def remaining_budget(time_budget: float | None, start: float) -> float | None:
    """Minutes of ``--time-budget`` left after what was spent since ``start``
    (``time.perf_counter()``) choosing the recipe; ``None`` without a budget.

    Raises:
        BudgetSpentError: the choice used the whole budget.
    """
    from sparsercnn.recipe.recipe import BudgetSpentError

    if time_budget is None:
        return None
    spent = time.perf_counter() - start
    if spent >= time_budget * 60:
        raise BudgetSpentError(time_budget, spent)
    return time_budget - spent / 60


def _auto_config(
    args: argparse.Namespace,
    train_json: Path,
    train_images: Path,
    output_dir: Path,
    dist_info: DistInfo,
    weights: StartingWeights | None,
    checked: CheckedCoco | None,
) -> Config:
    """Choose the recipe for the training set (``checked``: its entries as the data's check
    kept them, else checked here) and the starting ``weights``, print it and save it as
    ``recipe.json``."""
    import json

    from sparsercnn.atomic_file import atomic_write
    from sparsercnn.engine.checkpoint import check_run_folder
    from sparsercnn.recipe import recipe_for_dataset

    check_run_folder(output_dir, False, is_main=True, also=COMMAND_OUTPUT_FILES)
    overrides = list(args.overrides)
    cache_mb = overridden_train_value(overrides, "image_cache_mb")
    recipe = recipe_for_dataset(
        train_json,
        train_images,
        dist_info.device,
        time_budget_minutes=args.time_budget,
        world_size=dist_info.world_size,
        weights=weights,
        image_cache_mb=TrainConfig.image_cache_mb if cache_mb is None else cache_mb,
        skip_invalid=getattr(args, "skip_invalid", False),
        checked=checked,
        overrides=overrides,
    )
    # What the run trains with, so that the table marks what the options replaced.
    try:
        cfg = with_weight_options(recipe.config.apply_overrides(overrides), args)
    except ValueError as error:
        # They fit another model auto may choose (check_config_arguments), not the one it
        # took: the recipe takes one they fit from scratch, not with --init-from's checkpoint.
        raise ValueError(
            f"--set: {error} (in the model --preset auto chose for this data and budget); "
            "give values that fit it, or a fixed --preset"
        ) from error
    print(recipe.format(trained=cfg), flush=True)
    text = json.dumps(recipe.to_dict(trained=cfg), indent=2)
    atomic_write(output_dir / RECIPE_FILE, lambda tmp: tmp.write_text(text))
    return cfg
