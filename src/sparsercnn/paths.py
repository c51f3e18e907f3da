"""Paths as the user gave them: whether one names a file, where one lies relative to a folder
(as written: no links resolved), and which file one resolves to."""

from __future__ import annotations

import os
from pathlib import Path


def is_below(path: Path, folder: Path, strictly: bool = False) -> bool:
    """Whether ``path`` is ``folder`` or inside it (``strictly``: inside only), by absolute
    path without resolving links."""
    path, folder = Path(os.path.abspath(path)), Path(os.path.abspath(folder))
    return path.is_relative_to(folder) and not (strictly and path == folder)


def check_file(path: Path, what: str, wanted: str) -> None:
    """Raise unless ``path`` is a file, naming it as ``what`` ("model file", "checkpoint").

    Raises:
        IsADirectoryError: ``path`` is a folder; the message asks for ``wanted`` in it ("the
            .safetensors file").
        FileNotFoundError: nothing is at ``path``.
    """
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder; give {wanted} in it")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")


def file_identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """The file that ``path`` resolves to (links followed, and another case or Unicode form
    where the file system ignores them), as the file system tells files apart: ``(device, file
    number)``; ``None`` where nothing is there, or where the file system numbers no files
    (``st_ino`` 0, as some Windows ones give)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino) if stat.st_ino else None
