"""Paths as the user gave them: whether one names a file the user may read (and the error of
one they may not), where one lies relative to a folder (as written: no links resolved), which
file one resolves to (and whether it has changed since), and the folders a command makes for
one (removed again, where empty, when it fails)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def is_below(path: Path, folder: Path, strictly: bool = False) -> bool:
    """Whether ``path`` is ``folder`` or inside it (``strictly``: inside only), by absolute
    path without resolving links."""
    path, folder = Path(os.path.abspath(path)), Path(os.path.abspath(folder))
    return path.is_relative_to(folder) and not (strictly and path == folder)


def check_file(path: Path, what: str, wanted: str) -> None:
    """Raise unless ``path`` is a file the user may read, naming it as ``what`` ("model file",
    "checkpoint").

    Raises:
        IsADirectoryError: ``path`` is a folder; the message asks for ``wanted`` in it ("the
            .safetensors file").
        FileNotFoundError: nothing is at ``path``.
        PermissionError: the user may not read it, or look into its folder
            (:func:`permission_error`).
    """
    try:
        if path.is_dir():
            raise IsADirectoryError(f"{what} {path} is a folder; give {wanted} in it")
        if not path.is_file():
            raise FileNotFoundError(f"{what} {path} does not exist")
        # Opened, not only looked at: a file of another user's, or without read permission, is
        # told here rather than as a raw "[Errno 13]" (or a damaged file) by whatever reads it.
        with open(path, "rb"):
            pass
    except PermissionError as error:
        raise permission_error(f"{what} {path}", error) from None


def permission_error(name: str, error: PermissionError) -> PermissionError:
    """The error for a file the user may not read, ``name`` being what and which it is ("model
    file x.safetensors"): "model file x.safetensors cannot be read (Permission denied); check
    its permissions", rather than ``error``'s "[Errno 13] Permission denied: 'x.safetensors'"."""
    return PermissionError(
        f"{name} cannot be read ({error.strerror or error}); check its permissions"
    )


# A file as it is at one time (:func:`file_version`): device, file number, size and modification
# time (ns). A file replaced or rewritten since, or another machine's copy, has another.
FileVersion = tuple[int, int, int, int]


def file_version(path: str | os.PathLike[str]) -> FileVersion | None:
    """The :data:`FileVersion` of the file that ``path`` resolves to (links followed), by which
    a later look tells whether it is still the file an earlier one read; ``None`` where nothing
    is there, or it cannot be looked at."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def file_identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """The file that ``path`` resolves to (links followed, and another case or Unicode form
    where the file system ignores them), as the file system tells files apart: ``(device, file
    number)`` of its :func:`file_version`; ``None`` where nothing is there, or where the file
    system numbers no files (``st_ino`` 0, as some Windows ones give)."""
    version = file_version(path)
    return version[:2] if version is not None and version[1] else None


def same_file(path: str | os.PathLike[str], other: str | os.PathLike[str]) -> bool:
    """Whether ``path`` and ``other`` name one file: by :func:`file_identity` where both have
    one, else (one since deleted, a file system that numbers no files) by their paths with
    links resolved."""
    identities = file_identity(path), file_identity(other)
    if None not in identities:
        return identities[0] == identities[1]
    return os.path.realpath(path) == os.path.realpath(other)


def missing_folders(folder: Path) -> list[Path]:
    """The folders that making ``folder`` (``mkdir(parents=True)``) creates: it and those above
    it that do not exist yet, deepest first."""
    missing = []
    for path in (folder, *folder.parents):
        if path.exists():
            break
        missing.append(path)
    return missing


def remove_empty_folders(folders: Iterable[Path]) -> None:
    """Remove those of ``folders`` that are empty folders (those a failed command made, as
    :func:`missing_folders` listed them before, or those above a file removed), deepest first,
    so that one left empty by removing another goes too; any that holds something stays."""
    for folder in sorted(folders, key=lambda path: len(path.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
