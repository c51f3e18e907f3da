"""How ``train`` and ``demo`` set a run up: the config (a fixed preset, a config file, the
automatic recipe, or on ``--resume`` the run's own), the starting weights (read once), what is
left of ``--time-budget`` after the recipe's timing, and a run folder that a refused run does not
leave behind."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from sparsercnn.cli.common import AUTO_PRESET
from sparsercnn.config import (
    Config,
    TrainConfig,
    log_schedule_notes,
    override_keys,
    override_value,
)
from sparsercnn.presets import get_preset
from sparsercnn.run_files import CONFIG_FILE
from sparsercnn.text import listing

if TYPE_CHECKING:
    from sparsercnn.data.policy import Inspection
    from sparsercnn.data.validation import CheckedCoco
    from sparsercnn.engine.distributed import DistInfo
    from sparsercnn.engine.model_init import StartingWeights
    from sparsercnn.engine.resume import CheckedResume

logger = logging.getLogger(__name__)

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
def removed_if_refused(folder: Path) -> Iterator[None]:
    """Undo a refused run's setup when the command fails: if all it added to ``folder`` are
    setup files (:data:`_SETUP_FILES`: a run stopped before its first record and checkpoint),
    they are removed, and so is ``folder`` if the command
    made it. A refused ``train`` leaves no run folder behind and nothing that would refuse the
    next try; a run that wrote a log record, a checkpoint or a model file keeps everything (it
    can be resumed, or its log read), and files that were there before are never touched."""
    before = {entry.name for entry in folder.iterdir()} if folder.is_dir() else None
    try:
        yield
    except BaseException:
        if folder.is_dir():
            added = [entry for entry in folder.iterdir() if entry.name not in (before or set())]
            if all(path.name in _SETUP_FILES for path in added):
                for path in added:
                    path.unlink()
                if before is None and not any(folder.iterdir()):
                    folder.rmdir()
        raise


def check_config_arguments(args: argparse.Namespace) -> Config | None:
    """Refuse a bad ``--config``, ``--preset`` or ``--set`` of a new run before any work (the
    data's check, the recipe's timing): the fixed config is resolved, the overrides of ``auto``
    parsed and refused if they fit none of the models it may choose; and a new run that would
    freeze weights it does not load (``--freeze`` without ``--init-from``). A ``--resume``
    trains with the run's own config, against which :func:`check_resume_to_start` checks them.

    Returns:
        What the options say of a new run (:func:`_given_config`), which
        :func:`check_run_to_start` and :func:`starting_weights` take; ``None`` on ``--resume``.

    Raises:
        ValueError: the message names the key or option.
    """
    if args.resume:
        return None
    given = _given_config(args)
    train = given.train
    if train.freeze != "none" and not train.init_from:
        # --backbone-weights hold no FPN, which --freeze backbone freezes too.
        raise ValueError(
            f"--freeze {train.freeze} (train.freeze) freezes the ResNet and the FPN, which only "
            "--init-from (train.init_from) loads: without it they stay frozen at their random "
            "initialisation; start from a detector checkpoint, or train without --freeze "
            "(model.freeze_at freezes early ResNet stages)"
        )
    return given


def fixed_preset(args: argparse.Namespace) -> bool:
    """Whether the options fix the config (``--config``, or a ``--preset`` other than
    ``auto``, whose recipe chooses it from the data)."""
    return bool(args.config) or args.preset != AUTO_PRESET


def _given_config(args: argparse.Namespace) -> Config:
    """What the options say before the data is read: the fixed ``--preset`` or ``--config``, or
    for ``auto`` the first model it may choose that the overrides fit
    (:func:`_auto_candidates`), with the ``--set`` overrides, ``--init-from``,
    ``--backbone-weights`` and ``--freeze``.

    Raises:
        ValueError: a bad override, or (``auto``) overrides that fit none of its models.
    """
    if fixed_preset(args):
        return _with_weight_options(resolve_config(args), args)
    overrides = list(args.overrides)
    errors: dict[str, ValueError] = {}
    for name in _auto_candidates(args):
        try:
            return _with_weight_options(get_preset(name).apply_overrides(overrides), args)
        except ValueError as error:
            errors[name] = error
    if len({str(error) for error in errors.values()}) == 1:
        raise next(iter(errors.values()))  # the same for every model: an unknown key, a range
    refusals = "; ".join(f"{name}: {error}" for name, error in errors.items())
    raise ValueError(
        f"--set {' '.join(overrides)} fits none of the models --preset auto may choose "
        f"({refusals}); give values that fit one of them, or a fixed --preset"
    )


def _auto_candidates(args: argparse.Namespace) -> tuple[str, ...]:
    """The presets whose model ``--preset auto`` may train with these options
    (:func:`~sparsercnn.recipe.auto_recipe.candidate_presets`)."""
    from sparsercnn.recipe.auto_recipe import candidate_presets

    train_overrides = _train_overrides(list(args.overrides))
    train = _with_weight_options(Config().apply_overrides(train_overrides), args).train
    return candidate_presets(bool(train.init_from), bool(train.backbone_weights))


def _train_overrides(overrides: list[str]) -> list[str]:
    """The ``train.*`` overrides of ``overrides``: those that hold whatever model the run
    trains (the model's are checked against the model it trains)."""
    keys = override_keys(overrides)
    return [item for item, key in zip(overrides, keys, strict=True) if key.startswith("train.")]


def check_run_to_start(
    args: argparse.Namespace,
    output_dir: Path,
    given: Config | None,
    *,
    is_main: bool,
    world_size: int = 1,
) -> CheckedResume | None:
    """Refuse, before any data work (the data's check decodes every image), what training would
    refuse after it, and say what a resume changes: a new run where another run's checkpoints
    or outputs are (its ``recipe.json`` and ``report/`` too, :data:`COMMAND_OUTPUT_FILES`); a
    ``--resume`` with no run to continue, with a ``--preset`` or ``--config`` not the run's
    (:func:`check_resume_to_start`), or that changes its model or ends before its checkpoint;
    then what the resume changes (:func:`~sparsercnn.engine.resume.check_resume`, of the
    ``world_size`` processes that resume it; a ``--time-budget`` trains a completed run on), or
    what a new run's schedule never reaches (:func:`say_schedule_notes`, of ``given``: what
    :func:`check_config_arguments` returned). ``is_main``: this process may create
    ``output_dir`` (rank 0), else it only looks, and says nothing.

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
    assert given is not None, "check_config_arguments resolves a new run's config"
    if is_main:
        say_schedule_notes(args, given)
    return None


def say_schedule_notes(args: argparse.Namespace, given: Config) -> None:
    """Warn of what of its learning-rate schedule a new run of a fixed ``--preset`` or
    ``--config`` (``given``, as :func:`check_config_arguments` resolved it) never reaches
    (:meth:`~sparsercnn.config.TrainConfig.schedule_notes`), before the data's check;
    ``auto``'s schedule is the recipe's, said with it (:func:`_auto_config`), and a resumed
    run's with what the resume changes (:func:`~sparsercnn.engine.resume.check_resume`)."""
    if fixed_preset(args):
        log_schedule_notes(given.train)


def check_resume_to_start(
    args: argparse.Namespace,
    output_dir: Path,
    *,
    is_main: bool,
    world_size: int = 1,
    budget_extends: bool = True,
) -> CheckedResume:
    """:func:`check_run_to_start` of a ``--resume`` (``train``'s, the demo's): refusals first,
    then what the resume changes; ``budget_extends``: a ``--time-budget`` trains a completed run
    on (the demo's, a default, does not).

    The resume trains with the run's own config whatever ``--preset`` or ``--config`` (one of
    another model is refused): its ``config.json``, or where ``output_dir`` has none (a
    ``--resume CHECKPOINT`` into a new folder) the checkpoint's, with the ``--set`` overrides,
    ``--init-from``, ``--backbone-weights`` and ``--freeze``. A run's ``config.json`` is never
    rewritten into another preset's."""
    from sparsercnn.engine.resume import check_resume

    if args.resume is True and not output_dir.is_dir():
        raise FileNotFoundError(
            f"--resume: {output_dir} (--output-dir) is not a run folder; give the "
            "--output-dir of the run to continue, or start a new run without --resume"
        )
    checkpoint = _resumed_checkpoint(args, output_dir)
    cfg, origin = _run_config(args, output_dir, checkpoint)
    if fixed_preset(args):
        _check_given_is_runs(args, cfg, origin, output_dir, say=is_main)
    return check_resume(
        checkpoint,
        _with_weight_options(cfg, args),
        world_size,
        budget_given=args.time_budget is not None,
        budget_extends=budget_extends,
        say=is_main,
    )


def _resumed_checkpoint(args: argparse.Namespace, output_dir: Path) -> Path:
    """The checkpoint ``--resume`` continues from: ``--resume CHECKPOINT``, else the newest of
    ``output_dir``.

    Raises:
        FileNotFoundError: naming the file or folder, and what to do.
    """
    from sparsercnn.engine.checkpoint import RESUME, resolve_checkpoint_path

    if args.resume is True:
        return resolve_checkpoint_path(output_dir, flag=f"{RESUME} (--output-dir)")
    return resolve_checkpoint_path(args.resume)


def _run_config(args: argparse.Namespace, output_dir: Path, checkpoint: Path) -> tuple[Config, str]:
    """The run's own config with the ``--set`` overrides, and the file it was read from: its
    ``config.json``, or where ``output_dir`` has none (a ``--resume CHECKPOINT`` into a new
    folder) that of ``checkpoint``, the one resumed."""
    from sparsercnn.engine.checkpoint import read_checkpoint_config

    run_file = output_dir / CONFIG_FILE
    if run_file.is_file():
        own = load_config_file(run_file, "--resume: the run's config", of_run=True)
        origin = str(run_file)
    else:
        own, origin = read_checkpoint_config(checkpoint), str(checkpoint)
    try:
        return own.apply_overrides(list(args.overrides)), origin
    except ValueError as error:
        raise ValueError(f"--set: {error} (in the run's config, {origin})") from error


def _check_given_is_runs(
    args: argparse.Namespace, run: Config, origin: str, output_dir: Path, *, say: bool
) -> None:
    """Refuse a resume's ``--preset`` or ``--config`` whose model (with the ``--set`` overrides)
    is not the run's (``run``, read from ``origin``, with them); say (``say``), where the model
    is the run's, which of its other settings stand instead of the option's.

    The option's config is compared without the overrides, but for the keys they set, which
    are the run's in both: the overrides are checked against the config the run trains with
    (``run``), not against the option's, which may not fit them (a width of the run's).
    """
    from sparsercnn.engine.resume import model_changes

    given = _fixed_config(args)
    overridden = set(override_keys(list(args.overrides)))
    option = f"--config {args.config}" if args.config else f"--preset {args.preset}"
    keys = [
        change
        for key, change in model_changes(run, given).items()
        if f"model.{key}" not in overridden
    ]
    if keys:
        raise ValueError(
            f"--resume: {option} is another model than the run's in {output_dir} ({origin} -> "
            f"{option}: {listing(keys, limit=3)}); --resume continues a run with its own "
            f"config.json: drop {option} to resume it, or start a new run with {option} in "
            "another --output-dir"
        )
    others = {
        key: values
        for key, values in run.differences(given).items()
        if key != "model.num_classes" and key not in overridden
    }
    if others and say:
        logger.info(
            "resuming with the run's own settings (%s), not those of %s: %s (--set changes them)",
            origin,
            option,
            ", ".join(
                f"{key} {override_value(old)} (not {override_value(new)})"
                for key, (old, new) in others.items()
            ),
        )


def starting_weights(args: argparse.Namespace, given: Config | None) -> StartingWeights | None:
    """The files of ``train.init_from`` and ``train.backbone_weights`` (``--init-from``,
    ``--backbone-weights``, or ``--set``), read and converted once, before the data's check (a
    wrong file is named at once): the recipe reads the architecture off them and training loads
    them (:func:`training_config`, ``train_from_coco``); a fixed ``--preset`` or ``--config``
    of another architecture is refused then, and so are ``--set`` values that change the
    weights' architecture, which ``auto`` keeps. ``given``: what :func:`check_config_arguments`
    returned. None without any, and on ``--resume`` (the run restores its own weights)."""
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
        from sparsercnn.recipe.auto_recipe import check_overrides_fit_weights

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


def resolve_config(args: argparse.Namespace) -> Config:
    """The config of a fixed ``--preset`` or ``--config``, with the ``--set`` overrides applied."""
    return _fixed_config(args).apply_overrides(list(args.overrides))


def _fixed_config(args: argparse.Namespace) -> Config:
    """The config of a fixed ``--preset`` or ``--config``, without the ``--set`` overrides."""
    if not args.config:
        return get_preset(args.preset)
    return load_config_file(args.config, "--config")


def load_config_file(path: Path, what: str, *, of_run: bool = False) -> Config:
    """A ``config.json`` (``of_run``: the one a training run wrote, see
    :meth:`Config.from_run_dict`); errors name ``what`` (the flag or the run folder) and the
    file."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} is not a file")
    try:
        return Config.load(path, of_run=of_run)
    except ValueError as error:
        if str(path) in str(error):
            raise
        raise ValueError(f"{what} {path}: {error}") from error


def training_config(
    args: argparse.Namespace,
    train_json: Path,
    train_images: Path,
    output_dir: Path,
    dist_info: DistInfo,
    weights: StartingWeights | None = None,
    checked: CheckedData | None = None,
    resumed: CheckedResume | None = None,
) -> Config:
    """The config of a training run (``train``, ``demo``): on ``--resume`` the run's own, as
    :func:`check_run_to_start` read it (``resumed``, which it returned); else a fixed
    ``--preset`` or ``--config``, or with ``--preset auto`` the recipe chosen from the training
    set (rank 0 chooses, every rank trains with it) and ``weights`` (:func:`starting_weights`:
    the recipe takes their architecture). ``--set`` overrides apply last, then ``--init-from``,
    ``--backbone-weights`` and ``--freeze``.
    ``checked``: the sets as :func:`check_training_data` found them (rank 0's), whose training
    set the recipe profiles without checking it again; None: the recipe checks it."""
    from sparsercnn.config import Config
    from sparsercnn.engine.distributed import computed_on_main

    if args.resume:
        assert resumed is not None, "check_run_to_start checks a resume first"
        return resumed.config
    if fixed_preset(args):
        cfg = resolve_config(args)
    else:
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
        cfg = Config.from_dict(chosen)
    return _with_weight_options(cfg, args)


def _with_weight_options(cfg: Config, args: argparse.Namespace) -> Config:
    """``cfg`` with the ``--init-from``, ``--backbone-weights`` and ``--freeze`` given."""
    # Typed values go into the config as they are (a checkpoint named "2024" stays a string).
    weights = {
        "init_from": args.init_from,
        "backbone_weights": args.backbone_weights,
        "freeze": args.freeze,
    }
    given = {name: value for name, value in weights.items() if value}
    return replace(cfg, train=replace(cfg.train, **given))


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
    cache_mb = _overridden_train_value(overrides, "image_cache_mb")
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
        cfg = _with_weight_options(recipe.config.apply_overrides(overrides), args)
    except ValueError as error:
        # They fit another model auto may choose (check_config_arguments), not the one it
        # took: the recipe takes one they fit from scratch, not with --init-from's checkpoint.
        raise ValueError(
            f"--set: {error} (in the model --preset auto chose for this data and budget); "
            "give values that fit it, or a fixed --preset"
        ) from error
    print(recipe.format(trained=cfg), flush=True)
    log_schedule_notes(cfg.train)
    text = json.dumps(recipe.to_dict(trained=cfg), indent=2)
    atomic_write(output_dir / RECIPE_FILE, lambda tmp: tmp.write_text(text))
    return cfg


def _overridden_train_value(overrides: list[str], name: str) -> int | None:
    """The value ``N`` of a ``train.<name>=N`` override, None without one: what the recipe must
    know before reading the data (the image cache it prices loading with; it reads the step
    budget and the batch off the overrides it is given)."""
    if f"train.{name}" not in override_keys(overrides):
        return None
    value: int = getattr(Config().apply_overrides(_train_overrides(overrides)).train, name)
    return value
