"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint ``checkpoint_{iteration:07d}.pt`` in the run's output folder holds the model and
optimizer states, the gradient-scaler state (or ``None``), the iteration, the random number
generator states (torch CPU and CUDA, Python ``random``, NumPy), the resolved config, the label
map and, in ``extra``, the run's best AP and its training images (ids and sizes,
:mod:`sparsercnn.engine.training_images`). Everything is stored as tensors, numbers, strings,
lists and dicts, so that it loads with ``torch.load(weights_only=True)``: loading never unpickles
arbitrary objects. Files are written atomically (the same state gives the same bytes), a
``last_checkpoint`` text file names the newest one, and only the newest ``keep`` are kept.
Resuming reads the newest readable checkpoint (a damaged one is skipped with a warning), checks
that it belongs to a compatible run and restores the model, optimizer, scaler and RNG states
(:func:`restore_training_state`); what a resume refuses or changes is decided from the checkpoint
and the resumed run's config alone (:func:`check_resume`), so that a command says it before the
data is read. Released models use :mod:`sparsercnn.model_file` instead.
"""

from __future__ import annotations

import logging
import pickle
import re
import shlex
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from sparsercnn.atomic_file import atomic_write, ensure_writable_dir, leftover_temporaries
from sparsercnn.config import Config, TrainConfig, override_arguments, override_value
from sparsercnn.data.categories import CategoryMap
from sparsercnn.engine.lr_schedule import Schedule, resumed_steps, scaled_lr, train_lr_factor
from sparsercnn.engine.rng_state import restore_rng_states, rng_states
from sparsercnn.engine.training_images import log_data_change
from sparsercnn.model_file import load_state_dict_strict, model_state_dict
from sparsercnn.run_files import MODEL_FILES, RUN_OUTPUT_FILES
from sparsercnn.text import listing
from sparsercnn.torch_archive import damaged_record

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "sparsercnn-training-checkpoint"
CHECKPOINT_VERSION = 1
LAST_CHECKPOINT_FILE = "last_checkpoint"
REQUIRED_KEYS = ("iteration", "model", "optimizer", "scaler", "rng", "config", "categories")
_NAME_PATTERN = re.compile(r"^checkpoint_(\d+)\.pt$")
# How errors name the option that resumes a run: the CLI flag (train_from_coco's ``resume``).
RESUME = "--resume"
# The model settings a resumed run may change: dropout acts in training only, the prior
# probability in the initialisation only, on-demand FPN levels compute the same outputs, and
# the label map (``num_classes``) is checked on its own.
RESUMABLE_MODEL_KEYS = frozenset({"dropout", "prior_prob", "fpn_on_demand_levels", "num_classes"})


class SupportsToDict(Protocol):
    """A label map (``CategoryMap``): anything that serialises itself to a plain dict."""

    def to_dict(self) -> dict[str, Any]: ...


class DamagedCheckpointError(ValueError):
    """A training checkpoint that cannot be read back: truncated, corrupt or incomplete.

    Attributes:
        reason: what is wrong with it, in a few words (resuming lists the files it skipped).
            Every raise for one file gives it (:func:`_damaged`); the default serves the error
            for a whole run folder and copies made from the message alone (pickling, which
            restores it after).
    """

    def __init__(self, message: str, *, reason: str = "damaged") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ResumePoint:
    """Where a resumed run continues (see :func:`restore_training_state`).

    Attributes:
        path: the checkpoint read.
        iteration: optimiser steps already taken.
        best_ap: the best evaluation AP of the run so far (``None``: never evaluated).
        best_iteration: the iteration of ``best_ap``.
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


def checkpoint_name(iteration: int) -> str:
    """File name of the checkpoint taken after ``iteration`` optimiser steps."""
    return f"checkpoint_{iteration:07d}.pt"


def list_checkpoints(directory: str | Path) -> list[Path]:
    """The ``checkpoint_*.pt`` files of ``directory``, oldest (lowest iteration) first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _NAME_PATTERN.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def save_training_checkpoint(
    directory: str | Path,
    iteration: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    config: Config,
    categories: SupportsToDict,
    extra: Mapping[str, Any] | None = None,
    keep: int = 0,
    rng: list[dict[str, Any]] | None = None,
) -> Path:
    """Write ``checkpoint_{iteration:07d}.pt`` atomically and point ``last_checkpoint`` to it.

    The file is first written to a temporary name in the same folder, flushed to disk and then
    renamed, so a crash never leaves a partial checkpoint under the final name; the temporary
    files a killed run left in ``directory`` (of checkpoints, model files, :data:`RUN_OUTPUT_FILES`)
    are deleted.

    Args:
        directory: the run's output folder (created if needed).
        iteration: optimiser steps taken so far; training resumes at this iteration.
        model: the model (a DDP wrapper is unwrapped).
        optimizer: its state (moments, step counts) is saved.
        scaler: the fp16 gradient scaler, or ``None`` when not used.
        config: the resolved configuration of the run.
        categories: the label map (an object with ``to_dict()``).
        extra: more state of the caller (best metric so far, ...): tensors, numbers, strings,
            lists and dicts only.
        keep: keep the newest ``keep`` checkpoints and delete older ones; ``<= 0`` keeps all.
        rng: the RNG states of every rank (``rng_states()`` gathered in rank order); default
            this process's only.

    Returns:
        The path written.
    """
    directory = Path(directory)
    path = directory / checkpoint_name(iteration)
    if rng is not None and not rng:
        raise ValueError("rng must hold the states of at least one rank")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "iteration": int(iteration),
        "model": model_state_dict(model),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "rng": list(rng) if rng is not None else [rng_states()],
        "config": config.to_dict(),
        "categories": categories.to_dict(),
        "extra": dict(extra or {}),
    }
    atomic_write(path, lambda tmp: _save_payload(payload, tmp))
    pointer = directory / LAST_CHECKPOINT_FILE
    try:
        atomic_write(pointer, lambda tmp: tmp.write_text(path.name + "\n"))
    except BaseException:  # a full disk, or a second Ctrl-C that stops at once
        # A pointer left naming the previous checkpoint would resume from it, past this one:
        # without a pointer, resuming takes the newest checkpoint, this one.
        pointer.unlink(missing_ok=True)
        raise
    # A process killed while writing leaves its temporary file behind, as large as a checkpoint
    # or a model file (torchrun kills the ranks it stops after its grace period).
    for pattern in ("checkpoint_*.pt", *RUN_OUTPUT_FILES):
        for stale in leftover_temporaries(directory, pattern):
            stale.unlink(missing_ok=True)
            logger.info("deleted %s, a file left half-written by an interrupted run", stale)
    if keep > 0:
        prune_checkpoints(directory, keep, newest=path)
    logger.info("saved training checkpoint %s", path)
    return path


def _save_payload(payload: dict[str, Any], path: Path) -> None:
    # Through a file object: torch.save names the archive inside the zip after a path's file name
    # (here the random temporary one), which would make equal checkpoints differ in bytes.
    with open(path, "wb") as handle:
        torch.save(_by_value(payload), handle)


def _by_value(value: Any) -> Any:
    """``value`` rebuilt with every string interned, so that its pickle depends on values only.

    Pickle writes an object it has seen as a reference to it: a key that is one string object in
    a fresh run (``"lr"`` in the config and the optimizer) but two equal ones in a resumed run
    (one read back from the checkpoint) would otherwise change the bytes.
    """
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, dict):
        return {_by_value(key): _by_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_by_value(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_by_value(item) for item in value)
    return value


def prune_checkpoints(directory: str | Path, keep: int, newest: Path | None = None) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints of ``directory``; return the deleted.

    ``newest``: the checkpoint just written, counted as the newest. Those of later iterations,
    left by the run's future before it was resumed from an earlier checkpoint, are not counted
    (nor deleted): they would otherwise crowd out the one just written, which ``--resume``
    reads; the run overwrites them, or deletes them once past their iterations.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    found = list_checkpoints(directory)
    if newest is not None and newest in found:
        found = found[: found.index(newest) + 1]
    old = found[:-keep]
    for path in old:
        path.unlink(missing_ok=True)
        logger.debug("deleted old checkpoint %s", path)
    return old


def find_last_checkpoint(directory: str | Path) -> Path | None:
    """The checkpoint ``last_checkpoint`` names, else the newest one present, else ``None``."""
    directory = Path(directory)
    pointer = directory / LAST_CHECKPOINT_FILE
    if pointer.is_file():
        named = directory / pointer.read_text().strip()
        if named.is_file():
            return named
        logger.warning("%s names %s, which does not exist; using the newest one", pointer, named)
    found = list_checkpoints(directory)
    return found[-1] if found else None


def resolve_checkpoint_path(path_or_dir: str | Path, *, flag: str = RESUME) -> Path:
    """A checkpoint file itself, or the last checkpoint of a run folder.

    Args:
        path_or_dir: a ``checkpoint_*.pt`` file or a run's output folder.
        flag: the option that gave it, which errors name (``--resume CHECKPOINT``; a bare
            ``--resume`` gives ``--output-dir``'s folder).

    Raises:
        FileNotFoundError: ``path_or_dir`` does not exist, or is a folder without a
            checkpoint; the message names ``flag``, the path and what to do.
    """
    path = Path(path_or_dir)
    if path.is_dir():
        found = find_last_checkpoint(path)
        if found is None:
            left = _run_outputs(path)
            held = f" (only {_names(left)}: nothing to resume)" if left else ""
            raise FileNotFoundError(
                f"{flag}: no training checkpoint (checkpoint_*.pt) in {path}{held}; give the "
                "output folder of a run that saved one (or one of its checkpoint_*.pt files), "
                f"or start a new run without {RESUME}"
            )
        return found
    if not path.is_file():
        raise FileNotFoundError(
            f"{flag}: training checkpoint {path} does not exist; give one of the run's "
            "checkpoint_*.pt files, or its output folder (its newest checkpoint)"
        )
    return path


def load_training_checkpoint(path_or_dir: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_training_checkpoint`, safely.

    Args:
        path_or_dir: a ``checkpoint_*.pt`` file, or a run folder: the checkpoint its
            ``last_checkpoint`` names, else the newest; a damaged one is skipped with a warning
            naming it, and the next newest readable one is read.

    Returns:
        The checkpoint dict (tensors on the CPU) with keys ``iteration``, ``model``,
        ``optimizer``, ``scaler``, ``rng`` (a list: one ``rng_states()`` dict per rank),
        ``config``, ``categories``, ``extra`` and ``path`` (the file read).

    Raises:
        FileNotFoundError: no such file, or no checkpoint in the folder.
        DamagedCheckpointError: the file (or every checkpoint of the folder) is truncated or
            damaged (a record that does not match the checksum torch.save stored with it,
            which torch.load does not check); the message names the files.
        ValueError: not a training checkpoint, or it holds Python objects other than plain data
            (refused rather than unpickled). The message names the file and what to do.
    """
    path = Path(path_or_dir)
    if not path.is_dir():
        return _read_checkpoint(resolve_checkpoint_path(path))
    resolve_checkpoint_path(path)  # no checkpoint at all: FileNotFoundError
    damaged: list[str] = []
    for candidate in _newest_first(path):
        try:
            state = _read_checkpoint(candidate)
        except DamagedCheckpointError as error:
            damaged.append(f"{candidate.name} ({error.reason})")
            continue
        if damaged:
            logger.warning(
                "skipped damaged training checkpoint(s) in %s: %s; resuming from %s",
                path,
                "; ".join(damaged),
                candidate.name,
            )
        return state
    raise DamagedCheckpointError(
        f"every training checkpoint in {path} is damaged or truncated: {'; '.join(damaged)}. "
        "Start a new run in another output folder."
    )


def _newest_first(directory: Path) -> list[Path]:
    """The checkpoints of ``directory`` in the order resuming tries them."""
    first = find_last_checkpoint(directory)
    rest = [path for path in reversed(list_checkpoints(directory)) if path != first]
    return ([first] if first is not None else []) + rest


def _read_checkpoint(path: Path, *, mmap: bool = False) -> dict[str, Any]:
    """The checkpoint at ``path``, validated; ``mmap``: its tensors mapped, not read."""
    if path.suffix == ".safetensors":
        raise ValueError(
            f"{path} is a model file, not a training checkpoint; resume from a checkpoint_*.pt "
            "of the run, or start a new run from this model with --init-from"
        )
    if path.is_file() and not zipfile.is_zipfile(path):
        # torch.save writes a zip archive: anything else (overwritten, half-copied, truncated
        # before its directory) is a damaged checkpoint, not a pickle to refuse.
        raise _damaged(path, "truncated, or not a zip archive")
    # A look at the config only (``mmap``) reads no tensor, nor their sums; loading does both:
    # the sums are a second read of the file (a third of torch.load's time on a tiny-preset
    # checkpoint, BENCHMARKS session 32), paid for a resume never starting from wrong weights.
    damaged = None if mmap else damaged_record(path)
    if damaged is not None:
        raise _damaged(path, f"record {damaged} does not match the checksum stored with it")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path} holds Python objects other than tensors and plain data, so it was not "
            "loaded (loading it could run arbitrary code). It is not a sparsercnn training "
            f"checkpoint; use one written by `sparsercnn train`. Details: {error}"
        ) from error
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as error:
        raise _damaged(path, str(error)) from error
    return _validated(data, path)


def _validated(data: Any, path: Path) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} is not a sparsercnn training checkpoint (no format marker "
            f"{CHECKPOINT_FORMAT!r}); for model files use `sparsercnn evaluate --model`"
        )
    if data.get("format_version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"{path} has checkpoint format version {data.get('format_version')!r}; this "
            f"version of sparsercnn reads version {CHECKPOINT_VERSION}"
        )
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise _damaged(path, f"lacks {missing}")
    if not isinstance(data["rng"], list) or not data["rng"]:
        raise _damaged(path, "no RNG states")
    data.setdefault("extra", {})
    data["path"] = str(path)
    return data


def _damaged(path: Path, reason: str) -> DamagedCheckpointError:
    """The error for the checkpoint at ``path``: what is wrong with it (``reason``, in a few
    words) and what to do."""
    return DamagedCheckpointError(
        f"training checkpoint {path} is damaged ({reason}); resume from another checkpoint_*.pt "
        "of the run (`--resume` alone skips damaged ones)",
        reason=reason,
    )


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
            :func:`load_training_checkpoint`).
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
    optimizer.load_state_dict(state["optimizer"])
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
        extra.get("last_evaluation"),
        steps,
    )


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
    another schedule or other settings (:func:`log_config_changes`), and a run with nothing left
    to train.

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
        FileNotFoundError: as :func:`resolve_checkpoint_path`.
        ValueError: another model, past ``train.max_iter``, or not a training checkpoint.
    """
    path = resolve_checkpoint_path(source)
    try:
        state = _read_checkpoint(path, mmap=True)
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
    if iteration >= train.max_iter and not budget_extends:
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


def read_checkpoint_config(path: str | Path) -> Config:
    """The config of the run that wrote checkpoint ``path``, its tensors mapped rather than
    read: a look before the work that comes ahead of loading it (:func:`check_same_model`).

    Raises:
        DamagedCheckpointError, ValueError: as :func:`load_training_checkpoint`.
    """
    return Config.from_run_dict(_read_checkpoint(Path(path), mmap=True)["config"])


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


def check_run_folder(
    output_dir: str | Path,
    resume: bool | str | Path,
    *,
    is_main: bool,
    also: tuple[str, ...] = (),
) -> None:
    """Fail before any work when the run folder cannot be written (rank 0 checks) or, for a new
    run, already holds another run's checkpoints or outputs (``last_checkpoint``,
    :data:`RUN_OUTPUT_FILES`, and the file or folder names in ``also``), which the run would
    replace or leave beside its own.

    Raises:
        NotADirectoryError, PermissionError: ``output_dir`` cannot be written
            (:func:`~sparsercnn.atomic_file.ensure_writable_dir`).
        FileExistsError: a new run, and ``output_dir`` holds such files; the message names them
            and what to do: ``--resume`` where a checkpoint is there, else which files to move
            (or delete, model files never) to start the run in this folder.
    """
    if is_main:
        ensure_writable_dir(output_dir)
    if resume:
        return
    folder = Path(output_dir)
    newest = list_checkpoints(folder)[-1:]
    found = newest + _run_outputs(folder, also)
    if not found:
        return
    if newest:
        raise FileExistsError(
            f"{folder} already holds another training run ({_names(found)}); resume it "
            f"({RESUME}), move those files, or choose another output folder"
        )
    # A run stopped before its first checkpoint, a finished one whose checkpoints were deleted,
    # or files of the user's (a config.json to train with): there is nothing to resume.
    raise FileExistsError(
        f"{folder} holds files a training run writes ({_names(found)}) but no checkpoint to "
        f"resume from; a new run would replace them or leave them beside its own: "
        f"{_clearing_advice(found)}"
    )


def _run_outputs(folder: Path, also: tuple[str, ...] = ()) -> list[Path]:
    """Those of ``folder``'s checkpoint pointer (:data:`LAST_CHECKPOINT_FILE`),
    :data:`RUN_OUTPUT_FILES` and ``also`` files or folders that exist. The pointer counts alone
    too: detectron2 (and the reference Sparse R-CNN on it) names its own checkpoint so, which
    a run's first checkpoint would replace."""
    names = (LAST_CHECKPOINT_FILE, *RUN_OUTPUT_FILES, *also)
    return [folder / name for name in names if (folder / name).exists()]


def _names(paths: list[Path]) -> str:
    """``paths`` by name, a folder's with a trailing ``/``."""
    return ", ".join(f"{path.name}/" if path.is_dir() else path.name for path in paths)


def _clearing_advice(files: list[Path]) -> str:
    """How to start a run in a folder holding ``files`` and no checkpoint: move them, or delete
    them (the command), unless one is a trained model."""
    if any(path.name in MODEL_FILES for path in files):
        return "move them elsewhere (they hold a trained model), or choose another output folder"
    remove = "rm -r" if any(path.is_dir() for path in files) else "rm"
    command = " ".join(shlex.quote(str(path)) for path in files)
    return (
        f"to start a run in this folder, move them or delete them ({remove} {command}), or "
        "choose another output folder"
    )
