"""The marker of a folder of drawings: which files in it a run drew, and from which inputs.

A :class:`~sparsercnn.drawing_writer.DrawingWriter` commit writes the marker
(:data:`~sparsercnn.image_inputs.DRAWINGS_MARKER`, a JSON file in the output folder) atomically
under its lock (:func:`marker_lock`): its ``"drawings"`` map each drawing, by its path below
the folder, to the input it was drawn from (absolute; ``null`` where unknown: a drawing of an
older run, whose marker listed none). Predict's input listing leaves marked
folders out (:func:`~sparsercnn.image_inputs.drawing_folders`), and a later run into the folder
asks :func:`is_drawing` which files it may replace or remove: the listed ones, never the
user's.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from stat import S_ISREG

from sparsercnn.atomic_file import atomic_write_text
from sparsercnn.file_lock import exclusive_lock
from sparsercnn.image_inputs import DRAWINGS_MARKER
from sparsercnn.paths import FileVersion, is_below
from sparsercnn.staged_drawings import is_staged

logger = logging.getLogger(__name__)

# Held by a commit while it reads, changes and rewrites the marker, so that runs into one folder
# at once (images predicted one at a time, in parallel) keep each other's drawings listed. Not
# an image or video suffix: never read as an input, nor taken for a drawing or a user's image.
_MARKER_LOCK = f"{DRAWINGS_MARKER}.lock"
# What the marker says to a user who opens it; its "drawings" map each drawing, by its path
# below the marked folder, to the input it was drawn from (absolute; null: unknown).
_MARKER_NOTE = (
    "Drawings of `sparsercnn predict --save-images`: predict leaves this folder out when it "
    "reads a folder above it; a later run into it replaces and removes only the drawings listed "
    "here (removing one only when given its input, or a folder above it, and not drawing it "
    "again; one of an unknown input, null, never), and leaves any other file."
)


def is_marked(folder: Path) -> bool:
    """Whether ``folder`` holds a marker (:data:`DRAWINGS_MARKER`): a folder of drawings."""
    return _marker_version(folder) is not None


def _marker_version(folder: Path) -> FileVersion | None:
    """The :func:`~sparsercnn.paths.file_version` of the marker of ``folder``, None where it
    holds none (nothing, or no file, by that name): one look tells both."""
    try:
        stat = os.stat(folder / DRAWINGS_MARKER)
    except OSError:
        return None
    if not S_ISREG(stat.st_mode):
        return None
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def is_drawing(path: Path) -> bool:
    """Whether the file ``path`` is a drawing of an earlier run: a folder above it that a
    :class:`~sparsercnn.drawing_writer.DrawingWriter` marked (:data:`DRAWINGS_MARKER`) lists
    it, or has a marker that lists no drawings (an older run's: any file in or below that folder
    counts), or it is a staged drawing a killed run left
    (:func:`~sparsercnn.staged_drawings.staged_path`). Any other file is the user's, which a
    drawing never replaces nor removes (and a folder holding such images is never marked:
    :meth:`~sparsercnn.drawing_writer.DrawingWriter.check_folder`). Each folder's marker is
    looked at once, and read once per version (:func:`_read_listing`)."""
    if is_staged(path):
        return True
    absolute = Path(os.path.abspath(path))
    for folder in absolute.parents:
        marked, listed = _marker_listing(folder)
        if marked and (listed is None or absolute in listed):
            return True
    return False


def _marker_listing(folder: Path) -> tuple[bool, dict[Path, str | None] | None]:
    """Whether ``folder`` is marked (:func:`is_marked`), and the drawings its marker lists
    (:func:`_read_listing`; ``None`` where it is missing or lists none), from one look at the
    marker."""
    version = _marker_version(folder)
    return (False, None) if version is None else (True, _read_listing(folder, version))


@lru_cache(maxsize=4)
def _read_listing(folder: Path, version: FileVersion) -> dict[Path, str | None] | None:
    """The drawings the marker of ``folder`` lists (:func:`write_marker`) at ``version``, as
    paths below it, each with its input (``None``: unknown), never a path outside ``folder``;
    ``None`` where it lists none (an older marker, or a damaged one). Callers must not change
    the mapping: each version of the marker (:func:`~sparsercnn.paths.file_version`) is read
    once (:func:`is_drawing` asks for each file)."""
    try:
        listed = json.loads((folder / DRAWINGS_MARKER).read_text(encoding="utf-8"))["drawings"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(listed, dict):
        return None
    return {
        folder / name: source
        for name, source in sorted(listed.items())
        if name
        and (source is None or (isinstance(source, str) and os.path.isabs(source)))
        and is_below(folder / name, folder, strictly=True)
    }


def earlier_drawings(folder: Path, suffixes: Sequence[str]) -> dict[Path, str | None]:
    """The drawings of earlier runs in ``folder``, each with its input (``None``: unknown), for
    a run that rewrites its marker: those the marker lists (:func:`_read_listing`), or, where
    an older marker lists none (so that every file below counts: :func:`is_drawing`), every
    file below with one of ``suffixes`` (those of images and videos) but staged ones
    (:func:`~sparsercnn.staged_drawings.is_staged`), of unknown inputs; none where the folder is
    not marked."""
    marked, listed = _marker_listing(folder)
    if listed is not None or not marked:
        return dict(listed or {})
    return {
        path: None
        for path in sorted(folder.rglob("*"))
        if path.suffix.lower() in suffixes and path.is_file() and not is_staged(path)
    }


def write_marker(folder: Path, drawings: Mapping[Path, str | None]) -> None:
    """Mark ``folder`` (made if missing) as a folder of drawings (:data:`DRAWINGS_MARKER`,
    written atomically), listing ``drawings`` (paths below it, each with its input, absolute,
    or ``None`` where unknown)."""
    names = {path.relative_to(folder).as_posix(): s for path, s in drawings.items()}
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"about": _MARKER_NOTE, "drawings": names}, indent=1, sort_keys=True)
    atomic_write_text(folder / DRAWINGS_MARKER, text + "\n")
    # A rewrite within one tick of the file system's clock may repeat the version (file number,
    # size, time) of a marker read before: this process forgets what it read at its own.
    _read_listing.cache_clear()


@contextmanager
def marker_lock(folder: Path) -> Iterator[None]:
    """Hold the lock of ``folder``'s marker (:data:`_MARKER_LOCK` in it,
    :func:`~sparsercnn.file_lock.exclusive_lock`) while the block runs, waiting, with a
    message, for another run that holds it; none where the folder does not exist (nothing was
    drawn there, and no marker is to be read)."""
    if not folder.is_dir():
        yield
        return

    def waiting(holder: str | None) -> None:
        logger.info(
            "waiting for %s, which lists its drawings in %s", holder or "another process", folder
        )

    with exclusive_lock(folder / _MARKER_LOCK, waiting):
        yield
