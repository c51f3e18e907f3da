"""Atomic file writes: readers see the old file or the complete new one, never a partial file.

Used for everything the package writes that a user keeps: model files, training checkpoints,
results and metrics JSON, plots. :func:`ensure_writable_dir` checks an output folder before a
long job writes there.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

_TEMPORARY_SUFFIX = ".tmp"


def leftover_temporaries(directory: str | Path, name_pattern: str) -> list[Path]:
    """The temporary files :func:`atomic_write` left in ``directory`` for destinations whose
    names match the glob ``name_pattern``: a process killed mid-write leaves its file behind."""
    pattern = f".{name_pattern}.*{_TEMPORARY_SUFFIX}"
    return sorted(Path(directory).glob(pattern))


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)``, flush it to disk, then rename it to ``path``.

    The temporary file lives in the destination folder (so the rename is atomic), gets the
    permissions a plain ``open()`` would give, and is removed if ``write`` raises.

    Raises:
        OSError: the write failed (a full disk, ...); the message names ``path``, which is left
            as it was. The subclass follows the errno (``PermissionError`` for EACCES, ...).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=_TEMPORARY_SUFFIX
        )
    except OSError as error:
        raise _naming(error, path) from error
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _naming(error, path) from error
        raise
    fsync_directory(path.parent)
    return path


def _naming(error: OSError, path: Path) -> OSError:
    """``error`` as a one-line error of the same kind that names the file not written."""
    reason = error.strerror or str(error)
    message = f"could not write {path} ({reason}); any previous version of it is intact"
    if error.errno is None:
        return OSError(message)
    return OSError(error.errno, message)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def fsync_directory(directory: Path) -> None:
    """Make renames in ``directory`` durable (best effort: some platforms cannot open folders)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def ensure_writable_dir(directory: str | Path) -> Path:
    """Create ``directory`` if needed and check that files can be written in it.

    Called before a long job, so that a wrong output path fails at once with an error that says
    what to do, instead of after hours of work.

    Raises:
        NotADirectoryError: ``directory`` (or a folder above it) is an existing file.
        PermissionError: the folder cannot be created or written (permissions, read-only disk).
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(
            f"output folder {directory} is an existing file; choose another folder path"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except (FileExistsError, NotADirectoryError) as error:
        blocker = next(p for p in directory.parents if p.exists() and not p.is_dir())
        raise NotADirectoryError(
            f"cannot create output folder {directory}: {blocker} is a file, not a folder; "
            "choose another folder path"
        ) from error
    except OSError as error:
        if error.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        raise PermissionError(
            f"cannot write in output folder {directory} ({error.strerror}); choose a folder you "
            "can write to, or change its permissions"
        ) from error
    return directory
