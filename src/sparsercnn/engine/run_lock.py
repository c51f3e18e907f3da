"""The lock a training run holds on its run folder for the run's life, so that a second run into
the same folder (``train --resume`` of a run still going in the background, another ``train``
with the same ``--output-dir``) is refused at once rather than both writing checkpoints,
``metrics.jsonl`` and model files into it: :mod:`sparsercnn.file_lock`'s lock on the folder's
:data:`~sparsercnn.run_files.RUN_LOCK_FILE`, which dies with its process (a killed run leaves
no stale lock). Under ``torchrun`` rank 0 holds it for every rank."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sparsercnn.atomic_file import ensure_writable_dir
from sparsercnn.engine.distributed import done_on_main
from sparsercnn.file_lock import exclusive_lock
from sparsercnn.run_files import RUN_LOCK_FILE

# The run folders this process holds (resolved): holding one again (``train_from_coco`` inside
# the ``train`` command that holds it from the start) is the same hold.
_held: set[Path] = set()


class RunFolderInUseError(FileExistsError):
    """Another process runs a training run in the run folder."""


@contextmanager
def run_folder_lock(folder: str | Path, *, make: bool = True) -> Iterator[None]:
    """Hold the lock of the run folder ``folder`` while the block runs: on rank 0, which every
    rank of a ``torchrun`` waits for (they raise its refusal too); a hold within one of this
    process's is the same.

    Args:
        folder: the run's output folder.
        make: create ``folder`` where it does not exist (a new run's); ``False``: a folder that
            does not exist is not locked (a resume of it is refused).

    Raises:
        RunFolderInUseError: another process holds the folder's lock; the message names the
            folder, that process where known, and what to do.
        NotADirectoryError, PermissionError: ``folder`` cannot be created or written
            (:func:`~sparsercnn.atomic_file.ensure_writable_dir`).
    """
    with ExitStack() as stack:
        done_on_main(lambda: stack.enter_context(_held_here(Path(folder), make)))
        yield


@contextmanager
def _held_here(folder: Path, make: bool) -> Iterator[None]:
    """:func:`run_folder_lock` in this process."""
    if not (make or folder.is_dir()):
        yield
        return
    ensure_writable_dir(folder)
    key = folder.resolve()
    if key in _held:
        yield
        return
    with exclusive_lock(folder / RUN_LOCK_FILE, lambda holder: _refuse(folder, holder)):
        _held.add(key)
        try:
            yield
        finally:
            _held.discard(key)


def _refuse(folder: Path, holder: str | None) -> None:
    """Raise the refusal of a run into ``folder``, whose lock ``holder`` holds."""
    by = f"{holder}, " if holder is not None else ""
    raise RunFolderInUseError(
        f"{folder} is in use by another training run ({by}lock {folder / RUN_LOCK_FILE}); wait "
        "for that run to end (or stop it) and run again, or choose another output folder"
    )
