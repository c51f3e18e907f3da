"""What a training command's config options say of a new run, before any data is read: the
fixed ``--preset`` or ``--config`` (read once), or the models ``--preset auto`` may choose, with
the ``--set`` overrides and the weight options (``--init-from``, ``--backbone-weights``,
``--freeze``). ``train`` and ``demo`` check them first (:func:`check_config_arguments`); a
resume's config is the run's own (:mod:`~sparsercnn.cli.resume_setup`)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from sparsercnn.cli.common import AUTO_PRESET
from sparsercnn.config import Config, override_keys
from sparsercnn.presets import get_preset


def check_config_arguments(args: argparse.Namespace) -> Config | None:
    """Refuse a bad ``--config``, ``--preset`` or ``--set`` of a new run before any work (the
    data's check, the recipe's timing): the fixed config is resolved, the overrides of ``auto``
    parsed and refused if they fit none of the models it may choose; and a new run that would
    freeze weights it does not load (``--freeze`` without ``--init-from``), and a
    ``--set model.num_classes`` other than the data's (:func:`_check_num_classes`). A ``--resume``
    trains with the run's own config, against which
    :func:`~sparsercnn.cli.resume_setup.check_resume_to_start` checks them.

    Returns:
        What the options say of a new run (:func:`_given_config`): the config a fixed
        ``--preset`` or ``--config`` trains with, which the other steps of
        :mod:`~sparsercnn.cli.training_setup` take; ``None`` on ``--resume``.

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
    _check_num_classes(args, given.model.num_classes)
    return given


def _check_num_classes(args: argparse.Namespace, num_classes: int) -> None:
    """Refuse a ``--set model.num_classes`` (``num_classes``) other than the number of
    categories of the training data (``--train-json``'s, read without its images; ``demo``'s
    data set), which training takes instead. A file that cannot be read is left to the data's
    check, which names what is wrong with it."""
    if "model.num_classes" not in override_keys(list(args.overrides)):
        return
    train_json = getattr(args, "train_json", None)
    if train_json is None:  # demo: the data set it makes
        from sparsercnn.data.demo_dataset import DEFAULT_STYLE

        found, data, fewer = DEFAULT_STYLE.num_classes, "the demo's data set", "`train` on"
    else:
        from sparsercnn.data.policy import inspect_dataset

        try:
            categories = inspect_dataset(train_json, None, image_check="none").checked.categories
        except ValueError:  # DatasetError
            return
        found, data, fewer = len(categories), f"--train-json {train_json}", "give"
    if num_classes != found:
        raise ValueError(
            f"--set model.num_classes={num_classes}: {data} has {found} categories, and the "
            "model's classes are the training JSON's categories; drop the --set, or to train on "
            f"fewer classes, {fewer} a JSON of those categories and their annotations only"
        )


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
        return with_weight_options(fixed_config(args).apply_overrides(list(args.overrides)), args)
    overrides = list(args.overrides)
    errors: dict[str, ValueError] = {}
    for name in _auto_candidates(args):
        try:
            return with_weight_options(get_preset(name).apply_overrides(overrides), args)
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
    (:func:`~sparsercnn.recipe.model_size.candidate_presets`)."""
    from sparsercnn.recipe.model_size import candidate_presets

    train_overrides = _train_overrides(list(args.overrides))
    train = with_weight_options(Config().apply_overrides(train_overrides), args).train
    return candidate_presets(bool(train.init_from), bool(train.backbone_weights))


def _train_overrides(overrides: list[str]) -> list[str]:
    """The ``train.*`` overrides of ``overrides``: those that hold whatever model the run
    trains (the model's are checked against the model it trains)."""
    keys = override_keys(overrides)
    return [item for item, key in zip(overrides, keys, strict=True) if key.startswith("train.")]


def fixed_config(args: argparse.Namespace) -> Config:
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


def with_weight_options(cfg: Config, args: argparse.Namespace) -> Config:
    """``cfg`` with the ``--init-from``, ``--backbone-weights`` and ``--freeze`` given."""
    # Typed values go into the config as they are (a checkpoint named "2024" stays a string).
    weights = {
        "init_from": args.init_from,
        "backbone_weights": args.backbone_weights,
        "freeze": args.freeze,
    }
    given = {name: value for name, value in weights.items() if value}
    return replace(cfg, train=replace(cfg.train, **given))


def overridden_train_value(overrides: list[str], name: str) -> int | None:
    """The value ``N`` of a ``train.<name>=N`` override, None without one: what the recipe must
    know before reading the data (the image cache it prices loading with; it reads the step
    budget and the batch off the overrides it is given)."""
    if f"train.{name}" not in override_keys(overrides):
        return None
    value: int = getattr(Config().apply_overrides(_train_overrides(overrides)).train, name)
    return value
