"""How ``train`` and ``demo`` set a ``--resume`` up before the data's check: the checkpoint it
continues from, the run's own config (its ``config.json``, else the checkpoint's) with the
``--set`` overrides, a ``--preset`` or ``--config`` of another model refused, and what the resume
changes said (:func:`~sparsercnn.engine.resume.check_resume`)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparsercnn.cli.config_options import (
    fixed_config,
    fixed_preset,
    load_config_file,
    with_weight_options,
)
from sparsercnn.config import Config, override_keys, override_value
from sparsercnn.run_files import CONFIG_FILE
from sparsercnn.text import listing

if TYPE_CHECKING:
    from sparsercnn.engine.resume import CheckedResume

logger = logging.getLogger(__name__)


def check_resume_to_start(
    args: argparse.Namespace,
    output_dir: Path,
    *,
    is_main: bool,
    world_size: int = 1,
    budget_extends: bool = True,
) -> CheckedResume:
    """:func:`~sparsercnn.cli.training_setup.check_run_to_start` of a ``--resume`` (``train``'s,
    the demo's): refusals first,
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
        with_weight_options(cfg, args),
        world_size,
        budget_given=args.time_budget is not None,
        budget_extends=budget_extends,
        say=is_main,
    )


def _resumed_checkpoint(args: argparse.Namespace, output_dir: Path) -> dict[str, Any]:
    """The checkpoint ``--resume`` continues from, as
    :func:`~sparsercnn.engine.checkpoint.load_training_checkpoint` reads it (its records'
    checksums checked, its tensors mapped): ``--resume CHECKPOINT``, else the newest readable
    one of ``output_dir`` (damaged ones skipped with a warning), which is what training then
    restores, and what the resume's messages are about.

    Raises:
        FileNotFoundError: naming the file or folder, and what to do.
        DamagedCheckpointError: ``--resume CHECKPOINT`` is damaged, or every checkpoint of
            ``output_dir`` is.
    """
    from sparsercnn.engine.checkpoint import RESUME, load_training_checkpoint

    if args.resume is True:
        return load_training_checkpoint(output_dir, flag=f"{RESUME} (--output-dir)")
    return load_training_checkpoint(args.resume)


def _run_config(
    args: argparse.Namespace, output_dir: Path, checkpoint: Mapping[str, Any]
) -> tuple[Config, str]:
    """The run's own config with the ``--set`` overrides, and the file it was read from: its
    ``config.json``, or where ``output_dir`` has none (a ``--resume CHECKPOINT`` into a new
    folder) that of ``checkpoint``, the one resumed (:func:`_resumed_checkpoint`)."""
    run_file = output_dir / CONFIG_FILE
    if run_file.is_file():
        own = load_config_file(run_file, "--resume: the run's config", of_run=True)
        origin = str(run_file)
    else:
        own, origin = Config.from_run_dict(checkpoint["config"]), str(checkpoint["path"])
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

    given = fixed_config(args)
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
