"""Atomic file writes: readers see the old file or the complete new one, never a partial file.

Used for everything the package writes that a user keeps: model files, training checkpoints,
results and metrics JSON, plots, annotated videos. A write replaces a regular file only: through
a symbolic link it replaces the link's target (:func:`write_target`), and a device, named pipe
or socket there is refused (:func:`special_file_kind`). :func:`ensure_writable_dir` checks an
output folder before a long job writes there.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

_TEMPORARY_SUFFIX = ".tmp"
# The attributes by which write_error marks its errors with the file they name and the reason
# they give: a with block then knows the errors that name a file already (AtomicFile.__exit__),
# and a file is never named twice in one message.
_WRITTEN_NAME = "written_name"
_WRITTEN_REASON = "written_reason"


def leftover_temporaries(directory: str | Path, name_pattern: str) -> list[Path]:
    """The temporary files :func:`atomic_write` left in ``directory`` for destinations whose
    names match the glob ``name_pattern``: a process killed mid-write leaves its file behind."""
    pattern = f".{name_pattern}.*{_TEMPORARY_SUFFIX}"
    return sorted(Path(directory).glob(pattern))


class AtomicFile:
    """A file written under a temporary name in its destination folder (so the rename is
    atomic) and renamed to ``path`` only once complete, for writers that stream into it (a
    video's frames) as well as for :func:`atomic_write`.

    The temporary file (:attr:`tmp`) is created at once. As a context manager, it is committed
    (:meth:`commit`) on a clean exit and discarded (:meth:`discard`) on an exception. An
    OSError leaves the block naming the file (:func:`write_error`) where it names no file or
    the temporary file (a writer that writes it through :func:`atomic_write` itself); one that
    names a file already goes on as it is: this one (:meth:`write_text`'s), or another file
    the block wrote or read (one that changes together with this one). Or call
    :meth:`commit` and :meth:`discard` directly.

    Args:
        path: the destination; its folder is created. A symbolic link there is written
            through: :attr:`path` is its target (:func:`write_target`), which is replaced and
            the link kept.
        name: how error messages name the file (default :attr:`path`): a writer whose file is
            moved on later gives the final name.

    Raises:
        OSError: ``path`` is a device, a named pipe or a socket (:func:`special_file_kind`),
            which a rename would replace by a regular file, or a loop of links; or the
            temporary file cannot be created. The message names the file (:func:`write_error`).
    """

    def __init__(self, path: str | Path, *, name: str | None = None) -> None:
        try:
            self.path = write_target(path)
        except OSError as error:
            raise write_error(error, path if name is None else name) from error
        self.name = str(self.path) if name is None else name
        kind = special_file_kind(self.path)
        if kind is not None:
            reason = f"it is {kind}, not a regular file: give the path of a regular file"
            raise write_error(OSError(reason), self.name)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=_TEMPORARY_SUFFIX
            )
        except OSError as error:
            raise write_error(error, self.name) from error
        os.close(fd)
        self.tmp: Path | None = Path(tmp_name)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            self.commit()
            return
        temporary = None if self.tmp is None else str(self.tmp)
        self.discard()
        if isinstance(exc, OSError) and _named_file(exc) in (None, temporary):
            raise write_error(exc, self.name) from exc

    def write_text(self, text: str) -> None:
        """Write ``text`` (UTF-8) to the temporary file, for a file committed later by hand or
        by a with block's exit.

        Raises:
            OSError: naming the file (:func:`write_error`); the temporary file is removed.
        """
        assert self.tmp is not None, "committed or discarded already"
        try:
            self.tmp.write_text(text, encoding="utf-8")
        except OSError as error:
            self.discard()
            raise write_error(error, self.name) from error

    def commit(self) -> Path:
        """Flush the temporary file to disk, give it the permissions a plain ``open()`` would,
        and rename it to :attr:`path`.

        Raises:
            OSError: naming the file (:func:`write_error`); :attr:`path` is left as it was and
                the temporary file removed.
        """
        assert self.tmp is not None, "committed or discarded already"
        try:
            with open(self.tmp, "rb") as handle:
                os.fsync(handle.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o666 & ~umask)  # mkstemp creates 0600 files
            os.replace(self.tmp, self.path)
        except BaseException as error:
            self.discard()
            if isinstance(error, OSError):
                raise write_error(error, self.name) from error
            raise
        self.tmp = None
        fsync_directory(self.path.parent)
        return self.path

    def discard(self) -> None:
        """Remove the temporary file; :attr:`path` is left as it was. Does nothing once
        committed or discarded."""
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
            self.tmp = None


def write_target(path: str | Path) -> Path:
    """The file that writing ``path`` replaces: where ``path`` is a symbolic link, the file it
    leads to (through every link, absolute; one that does not exist yet is created), as a
    shell's ``>`` writes through a link: the link stays, pointing at the new content. Else
    ``path`` as given.

    Raises:
        OSError: ``path`` is a loop of links (``ELOOP``), which leads to no file.
    """
    path = Path(path)
    if not path.is_symlink():
        return path
    try:
        return Path(os.path.realpath(path, strict=True))
    except FileNotFoundError:
        return Path(os.path.realpath(path))  # a dangling link: its target is created


# What a file of each kind that is no regular file, folder or link is called in messages.
_SPECIAL_FILE_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
)


def special_file_kind(path: str | Path) -> str | None:
    """What ``path`` is, in words (``"a named pipe"``), where it is a device, a named pipe or a
    socket (links followed), which an atomic write would replace by a regular file (as root,
    ``/dev/null`` itself); None where it is a regular file, a folder, or nothing."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return next((kind for is_kind, kind in _SPECIAL_FILE_KINDS if is_kind(mode)), None)


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)``, flush it to disk, then rename it to ``path``
    (:class:`AtomicFile`): the temporary file is removed if ``write`` raises.

    Raises:
        OSError: the write failed (a full disk, ...); the message names ``path``, which is left
            as it was. The subclass follows the errno (``PermissionError`` for EACCES, ...).
    """
    with AtomicFile(path) as file:
        assert file.tmp is not None
        write(file.tmp)
    return file.path


def write_error(error: OSError, name: str | Path) -> OSError:
    """``error`` as a one-line error of the same kind (by errno: ``PermissionError`` for
    EACCES, ...) that names the file ``name`` not written, rather than its temporary file. An
    error of this function gives its reason, not its message: one file is named, once."""
    reason = getattr(error, _WRITTEN_REASON, None) or error.strerror or str(error)
    message = f"could not write {name} ({reason}); any previous version of it is intact"
    named = OSError(message) if error.errno is None else OSError(error.errno, message)
    setattr(named, _WRITTEN_NAME, str(name))
    setattr(named, _WRITTEN_REASON, reason)
    return named


def _named_file(error: OSError) -> str | None:
    """The file ``error`` names: :func:`write_error`'s, else the system's (its ``filename``),
    if any."""
    named = getattr(error, _WRITTEN_NAME, None)
    if named is None and error.filename is not None:
        named = os.fsdecode(error.filename)
    return named


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
