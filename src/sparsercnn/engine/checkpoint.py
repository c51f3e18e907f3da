"""Training checkpoints, the file format: everything needed to continue a run exactly where it
stopped.

A checkpoint ``checkpoint_{iteration:07d}.pt`` in the run's output folder holds the model and
optimizer states, the gradient-scaler state (or ``None``), the iteration, the random number
generator states (torch CPU and CUDA, Python ``random``, NumPy), the resolved config, the label
map and, in ``extra``, the run's evaluations (best AP, its iteration, the ``tensors_crc32`` of
the ``model_best`` file that holds it) and its training images (ids and sizes,
:mod:`sparsercnn.engine.training_images`). Everything is stored as tensors, numbers, strings,
lists and dicts, so that it loads with ``torch.load(weights_only=True)``: loading never unpickles
arbitrary objects. Files are written atomically (the same state gives the same bytes), a
``last_checkpoint`` text file names the newest one, and only the newest ``keep`` are kept.
Reading finds the newest readable checkpoint (a damaged one is skipped with a warning). Whether
a run may resume from one, what that changes, and restoring its states are
:mod:`sparsercnn.engine.resume`'s. Released models use :mod:`sparsercnn.model_file` instead.
"""

from __future__ import annotations

import logging
import pickle
import re
import shlex
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

import torch
from torch import nn

from sparsercnn.atomic_file import atomic_write, ensure_writable_dir, leftover_temporaries
from sparsercnn.config import Config
from sparsercnn.engine.rng_state import rng_states
from sparsercnn.model_file import model_state_dict
from sparsercnn.paths import FileVersion, file_version
from sparsercnn.run_files import MODEL_FILES, RUN_OUTPUT_FILES
from sparsercnn.torch_archive import damaged_record

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "sparsercnn-training-checkpoint"
CHECKPOINT_VERSION = 1
LAST_CHECKPOINT_FILE = "last_checkpoint"
REQUIRED_KEYS = ("iteration", "model", "optimizer", "scaler", "rng", "config", "categories")
_NAME_PATTERN = re.compile(r"^checkpoint_(\d+)\.pt$")
# How errors name the option that resumes a run: the CLI flag (train_from_coco's ``resume``).
RESUME = "--resume"


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
        writer = _InterruptibleWriter(handle)
        try:
            # The writer has what torch.save uses of a binary file: write and flush.
            torch.save(_by_value(payload), cast(BinaryIO, writer))
        except Exception as error:
            # A Ctrl-C (or SIGTERM) handled inside a write that torch's C++ archive writer called
            # comes out as "RuntimeError: [enforce fail at inline_container.cc] unexpected pos":
            # it is the interrupt, and stops the run as one.
            interrupt = writer.interrupt or _interrupt_behind(error)
            if interrupt is None:
                raise
            raise interrupt from None


class _InterruptibleWriter:
    """A binary file for ``torch.save`` that remembers the ``KeyboardInterrupt`` (or the command
    line's ``Terminated``) a signal raised in one of its writes, which torch turns into a
    ``RuntimeError`` on its way out."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.interrupt: KeyboardInterrupt | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.handle.write(data)
        except KeyboardInterrupt as interrupt:
            self.interrupt = interrupt
            raise

    def flush(self) -> None:
        self.handle.flush()


def _interrupt_behind(error: BaseException) -> KeyboardInterrupt | None:
    """The ``KeyboardInterrupt`` during whose handling ``error`` was raised (one raised in the
    pickling, before torch closed the archive), if any."""
    seen: BaseException | None = error.__context__
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return seen
        seen = seen.__context__
    return None


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


def load_training_checkpoint(
    path_or_dir: str | Path, *, summed: FileVersion | None = None, flag: str = RESUME
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_training_checkpoint`, safely.

    Args:
        path_or_dir: a ``checkpoint_*.pt`` file, or a run folder: the checkpoint its
            ``last_checkpoint`` names, else the newest; a damaged one is skipped with a warning
            naming it, and the next newest readable one is read.
        summed: the ``stamp`` of an earlier read, which checked its file's checksums: that
            file, found as that read found it, is not summed again (a resume checked before the
            data's check, restored after it); in a folder, any other is.
        flag: the option that gave ``path_or_dir``, which a missing file's or a folder without
            a checkpoint's error names (:func:`resolve_checkpoint_path`).

    The file is read once: its records' checksums are checked, then its tensors are mapped
    into memory (``torch.load(mmap=True)``), views of the pages that check has just read, rather
    than read again into a second copy (a copy of them is what restoring makes,
    :func:`~sparsercnn.engine.resume.restore_training_state`).

    Returns:
        The checkpoint dict (tensors on the CPU, mapped from the file: private, so that changing
        them changes no file) with keys ``iteration``, ``model``, ``optimizer``, ``scaler``,
        ``rng`` (a list: one ``rng_states()`` dict per rank), ``config``, ``categories``,
        ``extra``, ``path`` (the file read) and ``stamp`` (the file as its checksums were
        checked, a :data:`~sparsercnn.paths.FileVersion`: ``summed`` of a later read of it).

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
        return _read_checkpoint(resolve_checkpoint_path(path, flag=flag), summed=summed)
    resolve_checkpoint_path(path, flag=flag)  # no checkpoint at all: FileNotFoundError
    damaged: list[str] = []
    for candidate in _newest_first(path):
        try:
            state = _read_checkpoint(candidate, summed=summed)
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


def _read_checkpoint(path: Path, *, summed: FileVersion | None = None) -> dict[str, Any]:
    """The checkpoint at ``path``, validated, its records' checksums checked (a pass over the
    whole file; not where the file is as ``summed``, a read that checked them, found it), its
    tensors mapped."""
    if path.suffix == ".safetensors":
        raise ValueError(
            f"{path} is a model file, not a training checkpoint; resume from a checkpoint_*.pt "
            "of the run, or start a new run from this model with --init-from"
        )
    if path.is_file() and not zipfile.is_zipfile(path):
        # torch.save writes a zip archive: anything else (overwritten, half-copied, truncated
        # before its directory) is a damaged checkpoint, not a pickle to refuse.
        raise _damaged(path, "truncated, or not a zip archive")
    # The sums are a pass over the file (a third of torch.load's time on a tiny-preset
    # checkpoint, BENCHMARKS session 32), paid for a resume never starting from wrong weights;
    # the tensors are then mapped, views of the pages it read, not read a second time.
    # Stamped before the pass: a file replaced during it is not taken for the one it checked.
    stamp = file_version(path)
    damaged = None if summed is not None and stamp == summed else damaged_record(path)
    if damaged is not None:
        raise _damaged(path, f"record {damaged} does not match the checksum stored with it")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path} holds Python objects other than tensors and plain data, so it was not "
            "loaded (loading it could run arbitrary code). It is not a sparsercnn training "
            f"checkpoint; use one written by `sparsercnn train`. Details: {error}"
        ) from error
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as error:
        raise _damaged(path, str(error)) from error
    checked = _validated(data, path)
    checked["stamp"] = stamp
    return checked


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
    folder = Path(output_dir)
    # A run continued in place (``resume`` True) is made no folder: a missing one is refused
    # when its checkpoint is looked for, and a typo's folder is not left behind.
    if is_main and (resume is not True or folder.exists()):
        ensure_writable_dir(folder)
    if resume:
        return
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
