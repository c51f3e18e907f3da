"""Drawings staged until their run ends: the hidden files beside their targets
(:func:`staged_path`), the lock a run holds on its output folder while it stages there
(:class:`StagingLock`), and the removal of those a killed run left (:meth:`StagingLock.release`).

A :class:`~sparsercnn.drawing_writer.DrawingWriter` writes each drawing to ``.NAME.partial.EXT``
beside ``NAME.EXT`` (through an atomic write's temporary, ``..NAME.partial.EXT.XXXXXXXX.tmp``)
and moves it into place at its commit. A run killed before that (SIGKILL, a power cut) leaves
them behind, hidden. Every run holds a shared lock on its output folder's :data:`STAGING_LOCK`
from its first staged file on, which the system drops when the process ends, however it ends: a
commit that then gets that lock alone knows that no run living stages there, and removes them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import IO

from sparsercnn.image_inputs import DRAWINGS_MARKER

try:
    import fcntl
except ImportError:  # Windows: no lock, so no staged file is ever proved dead
    fcntl = None  # type: ignore[assignment]

# Held shared by every run staging drawings in its folder. Not an image or video suffix: never
# read as an input, nor taken for a drawing or a user's image.
STAGING_LOCK = f"{DRAWINGS_MARKER}.staging"
# A staged drawing (staged_path), and the temporary file an atomic write of one makes.
_STAGED_NAME = re.compile(r"\..+\.partial\.[^.]+")
_STAGED_TEMPORARY = re.compile(r"\.\..+\.partial\.[^.]+\.[^.]+\.tmp")
# What flock raises on a file system that has no such locks (some network and FUSE mounts).
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


def staged_path(target: Path) -> Path:
    """The hidden file beside ``target`` that its drawing is written to until the run ends:
    ``.NAME.partial.EXT`` beside ``NAME.EXT``. One a killed run left counts as a drawing
    (:func:`~sparsercnn.drawings_marker.is_drawing`)."""
    return target.with_name(f".{target.stem}.partial{target.suffix}")


def is_staged(path: Path) -> bool:
    """Whether ``path`` names a staged drawing (:func:`staged_path`) or the temporary file of
    one being written."""
    name = Path(path).name
    return bool(_STAGED_NAME.fullmatch(name) or _STAGED_TEMPORARY.fullmatch(name))


class StagingLock:
    """A run's shared lock on the :data:`STAGING_LOCK` of its output folder ``folder``, held
    from :meth:`hold` (its first staged file) to :meth:`release`.

    No lock where ``fcntl`` is missing (Windows) or the file system has no ``flock``: then no
    run proves another dead, and none removes staged files it did not make.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._handle: IO[str] | None = None

    def hold(self) -> None:
        """Hold the lock shared (making :attr:`folder`), unless held already; it waits only
        while another run removes dead staged files (:meth:`release`)."""
        if self._handle is not None or fcntl is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / STAGING_LOCK
        while True:
            handle = open(path, "a")  # noqa: SIM115
            try:
                fcntl.flock(handle, fcntl.LOCK_SH)
                # A run that released the lock alone has removed this file: lock the new one.
                if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                    self._handle = handle
                    return
            except FileNotFoundError:
                pass
            except OSError as error:
                handle.close()
                if error.errno in _NO_LOCKS:
                    return
                raise
            except BaseException:
                handle.close()
                raise
            handle.close()

    def release(self, sweep: bool = False, keep: Collection[Path] = ()) -> list[Path]:
        """Drop the lock. Where no other run holds it (nor that of a folder above), the lock
        file goes, and with ``sweep`` (a commit, under the marker's lock) so do the staged files
        (:func:`is_staged`) below :attr:`folder` but ``keep`` and those below a folder another
        run stages in (its own lock held), and the temporary files of a marker write a killed
        run left: their runs are dead.

        Returns:
            The files removed.
        """
        path = self.folder / STAGING_LOCK
        handle, self._handle = self._handle, None
        if fcntl is None or (handle is None and not sweep) or not self.folder.is_dir():
            return []
        try:
            if handle is None:
                handle = open(path, "a")  # noqa: SIM115
            # Taken only where no other run holds it shared.
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by another run; or a folder this run cannot write, left as it is
            if handle is not None:
                handle.close()
            return []
        with handle:
            removed = _remove_dead_staged(self.folder, keep) if sweep else []
            # Before unlocking: a run waiting sees it is gone.
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            return removed


def _remove_dead_staged(folder: Path, keep: Collection[Path]) -> list[Path]:
    """Remove the staged files below ``folder`` but ``keep``, for a run holding its staging
    lock alone and its marker's lock (:meth:`StagingLock.release`); none where a run stages in a
    folder above. Returns them."""
    if any(_held(parent / STAGING_LOCK) for parent in folder.parents):
        return []
    hidden = sorted(path for path in folder.rglob(".*") if path.is_file())
    # Another run's output folder below this one: its lock held, its staged files alive.
    living = [p.parent for p in hidden if p.name == STAGING_LOCK and p.parent != folder]
    living = [p for p in living if _held(p / STAGING_LOCK)]
    kept = {Path(os.path.abspath(p)) for p in keep}
    dead = [
        path
        for path in hidden
        if (is_staged(path) and not any(path.is_relative_to(p) for p in living))
        or (path.parent == folder and _is_marker_temporary(path.name))
    ]
    removed = []
    for path in dead:
        if Path(os.path.abspath(path)) in kept:
            continue
        with contextlib.suppress(OSError):  # one this run may not remove stays, as it was
            path.unlink()
            removed.append(path)
    return removed


def _is_marker_temporary(name: str) -> bool:
    """Whether ``name`` is the temporary file of an atomic write of the marker (written only
    under the marker's lock: one the lock's holder finds is a killed run's)."""
    return name.startswith(f".{DRAWINGS_MARKER}.") and name.endswith(".tmp")


def _held(lock: Path) -> bool:
    """Whether another process holds the lock file ``lock`` (or it cannot be told)."""
    assert fcntl is not None
    try:
        handle = open(lock)  # noqa: SIM115
    except FileNotFoundError:
        return False
    except OSError:
        return True
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
    return False
