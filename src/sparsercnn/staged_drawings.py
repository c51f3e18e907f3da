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
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from sparsercnn.data.image_suffixes import IMAGE_SUFFIXES
from sparsercnn.file_lock import exclusive_lock, is_held, shared_lock
from sparsercnn.image_inputs import DRAWINGS_MARKER

# Held shared by every run staging drawings in its folder. Not an image or video suffix: never
# read as an input, nor taken for a drawing or a user's image.
STAGING_LOCK = f"{DRAWINGS_MARKER}.staging"
# The suffixes of the drawings a run stages: those of the images a folder gives, and .mp4 (an
# annotated video). A staged name with another is not taken for one: no run removes it.
_DRAWN_SUFFIXES = (*IMAGE_SUFFIXES, ".mp4")
# A staged drawing (staged_path): ".NAME.partial.EXT".
_STAGED_NAME = re.compile(r"\..+\.partial(\.[^.]+)")
# The temporary file of an atomic write of NAME (sparsercnn.atomic_file, through tempfile's
# mkstemp: 8 characters of a-z, 0-9 and "_").
_TEMPORARY = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.tmp")
# What a run goes on without where its output folder's file system has no locks.
_UNLOCKED = (
    "which tells other runs drawing there that this one lives (without it, no run removes the "
    "drawings staged there by runs killed before their end)"
)


def staged_path(target: Path) -> Path:
    """The hidden file beside ``target`` that its drawing is written to until the run ends:
    ``.NAME.partial.EXT`` beside ``NAME.EXT``. One a killed run left counts as a drawing
    (:func:`~sparsercnn.drawings_marker.is_drawing`)."""
    return target.with_name(f".{target.stem}.partial{target.suffix}")


def is_staged(path: Path) -> bool:
    """Whether ``path`` names a staged drawing (:func:`staged_path`) of a drawing's suffix (an
    image's, or .mp4), or the temporary file of one being written."""
    name = Path(path).name
    temporary = _TEMPORARY.fullmatch(name)
    staged = _STAGED_NAME.fullmatch(temporary.group(1) if temporary else name)
    return staged is not None and staged.group(1).lower() in _DRAWN_SUFFIXES


class StagingLock:
    """A run's shared lock on the :data:`STAGING_LOCK` of its output folder ``folder`` (made
    absolute: a sweep looks for the locks of the folders above it), held from :meth:`hold` (its
    first staged file) to :meth:`release`.

    No lock where ``fcntl`` is missing (Windows) or, with a warning, the file system has no
    ``flock`` (no lock file is left there): then no run proves another dead, and none removes
    staged files it did not make.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(os.path.abspath(folder))
        self._handle: IO[str] | None = None
        self._unlocked = False  # the file system has no locks: hold and release do nothing

    def hold(self) -> None:
        """Hold the lock shared (making :attr:`folder`), unless held already; it waits only
        while another run removes dead staged files (:meth:`release`)."""
        if self._handle is not None or self._unlocked:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self._handle = shared_lock(self.folder / STAGING_LOCK, unlocked=_UNLOCKED)
        self._unlocked = self._handle is None

    def release(self, sweep: bool = False) -> list[Path]:
        """Drop the lock. Where no other run holds it (nor that of a folder above), the lock
        file goes, and with ``sweep`` (a commit, under the marker's lock, with no staged file of
        its own left) so do the staged files of dead runs (:func:`_remove_dead_staged`).

        Returns:
            The files removed.
        """
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()
        if self._unlocked or (handle is None and not sweep) or not self.folder.is_dir():
            return []
        try:
            with exclusive_lock(self.folder / STAGING_LOCK, _refuse, unlocked=_UNLOCKED) as held:
                return _remove_dead_staged(self.folder) if held and sweep else []
        except (_HeldElsewhere, OSError):  # a run living stages there; or a folder this run
            return []  # cannot write, left as it is


class _HeldElsewhere(Exception):
    """Another run holds the staging lock: it lives, and so do its staged files."""


def _refuse(holder: str | None) -> None:
    raise _HeldElsewhere(holder)


def _remove_dead_staged(folder: Path) -> list[Path]:
    """Remove the staged files (:func:`is_staged`) of runs killed before their end below
    ``folder`` (absolute), for a run holding its staging lock alone and its marker's lock
    (:meth:`StagingLock.release`), and the temporary files of a marker write a killed run left
    in it. Left: those in hidden folders below ``folder`` (none of a drawing's folders but where
    an input given by its path is in one), those below a folder another run stages in (its own
    lock held), and all where a run stages in a folder above. Returns the files removed."""
    if any(is_held(parent / STAGING_LOCK) for parent in folder.parents):
        return []
    hidden = sorted(_hidden_files(folder))
    # Another run's output folder below this one: its lock held, its staged files alive.
    living = [p.parent for p in hidden if p.name == STAGING_LOCK and p.parent != folder]
    living = [p for p in living if is_held(p / STAGING_LOCK)]
    dead = [
        path
        for path in hidden
        if (is_staged(path) and not any(path.is_relative_to(p) for p in living))
        or (path.parent == folder and _is_marker_temporary(path.name))
    ]
    removed = []
    for path in dead:
        with contextlib.suppress(OSError):  # one this run may not remove stays, as it was
            path.unlink()
            removed.append(path)
    return removed


def _hidden_files(folder: Path) -> Iterator[Path]:
    """The files named ".*" below ``folder``, but in hidden folders below it."""
    for parent, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".")]
        yield from (Path(parent, name) for name in files if name.startswith("."))


def _is_marker_temporary(name: str) -> bool:
    """Whether ``name`` is the temporary file of an atomic write of the marker (written only
    under the marker's lock: one the lock's holder finds is a killed run's)."""
    temporary = _TEMPORARY.fullmatch(name)
    return temporary is not None and temporary.group(1) == DRAWINGS_MARKER
