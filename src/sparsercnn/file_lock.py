"""Locks between processes, held on a lock file (``flock``). Exclusive: the download cache's,
one per file downloaded, which other processes wait for
(:mod:`sparsercnn.weights.download_lock`), a training run's on its run folder, which a second
run into it is refused (:mod:`sparsercnn.engine.run_lock`), and the drawings marker's
(:mod:`sparsercnn.drawings_marker`). Shared: a run's on the folder it stages drawings in
(:mod:`sparsercnn.staged_drawings`). The system releases a lock when its process ends, however
it ends: a killed process leaves no stale lock. An exclusive lock file names its holder for the
message of a process that finds it held, and is removed on release."""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

# What flock raises on a file system that has no such locks (some network and FUSE mounts).
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)
# Times a lock is taken again on the new file where its holder removed the one locked: more in a
# row is no holder's doing (a file system whose file numbers change), and is refused.
_TRIES = 100
# What a process goes on without where the file system has no locks (the warning's last words).
_KEEPS_OUT = "which keeps other processes out"


@contextmanager
def exclusive_lock(
    path: Path, on_held: Callable[[str | None], None], *, unlocked: str = _KEEPS_OUT
) -> Iterator[bool]:
    """Hold an exclusive lock on the file ``path`` (created, and removed afterwards) while the
    block runs.

    Args:
        path: the lock file, in a folder that exists.
        on_held: called where another process holds the lock, with that process as the lock
            file names it (``"process 1234"``, ``"process 1234 on HOST"`` for another host;
            ``None``: not known), before this one waits for it: it says that this process
            waits, or raises to refuse instead.
        unlocked: what the warning of a file system without ``flock`` says the lock does.

    Yields:
        Whether the lock is held: not where ``fcntl`` is missing (Windows), nor, with a
        warning, on a file system without ``flock``.

    Raises:
        OSError: ``path`` cannot be created, or was replaced :data:`_TRIES` times in a row.
    """
    if fcntl is None:
        yield False
        return
    handle = _locked(path, fcntl.LOCK_EX, on_held, unlocked)
    try:
        yield handle is not None
    finally:
        path.unlink(missing_ok=True)  # before unlocking: a waiter then sees it is stale
        if handle is not None:
            handle.close()


def shared_lock(path: Path, *, unlocked: str) -> IO[str] | None:
    """Hold a shared lock on the file ``path`` (created) until the file returned is closed,
    waiting while another process holds it exclusively. The file stays: the process that
    then locks it exclusively (:func:`exclusive_lock`) removes it.

    Args:
        path: the lock file, in a folder that exists.
        unlocked: what the warning of a file system without ``flock`` says the lock does.

    Returns:
        The open lock file; ``None`` where ``fcntl`` is missing (Windows) or, with a warning,
        the file system has no ``flock`` (the file removed again).

    Raises:
        OSError: ``path`` cannot be created, or was replaced :data:`_TRIES` times in a row.
    """
    if fcntl is None:
        return None
    return _locked(path, fcntl.LOCK_SH, lambda holder: None, unlocked)


def is_held(path: Path) -> bool:
    """Whether another process holds the lock of the file ``path``, shared or exclusive (or
    it cannot be told: a file this process cannot read, a file system without ``flock``);
    not where the file is missing, nor where ``fcntl`` is (Windows)."""
    if fcntl is None:
        return False
    try:
        handle = open(path)  # noqa: SIM115
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


def _locked(
    path: Path, mode: int, on_held: Callable[[str | None], None], unlocked: str
) -> IO[str] | None:
    """An open ``path`` this process holds the lock of, in ``mode`` (``LOCK_EX``, whose holder
    the file then names, or ``LOCK_SH``); ``None`` where the file system has no locks (warned
    of, with ``unlocked``: what the lock does; the file removed). A waiter that gets the lock of
    a file its holder has since removed tries again with the new file, :data:`_TRIES` times."""
    assert fcntl is not None
    for _ in range(_TRIES):
        handle = open(path, "a+")  # noqa: SIM115
        try:
            try:
                fcntl.flock(handle, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                on_held(_holder(path))
                fcntl.flock(handle, mode)
            except OSError as error:
                if error.errno not in _NO_LOCKS:
                    raise
                logger.warning(
                    "cannot lock %s (%s): going on without the lock, %s",
                    path,
                    error.strerror,
                    unlocked,
                )
                handle.close()
                with suppress(OSError):
                    path.unlink(missing_ok=True)
                return None
            if _is_open(path, handle):
                if mode == fcntl.LOCK_EX:
                    handle.truncate(0)
                    handle.write(f"{os.getpid()} {socket.gethostname()}\n")
                    handle.flush()
                return handle
        except FileNotFoundError:
            pass  # removed by its holder since this process opened it
        except BaseException:
            handle.close()
            raise
        handle.close()
    raise OSError(
        errno.EAGAIN,
        f"cannot lock {path}: it was replaced {_TRIES} times in a row while this process "
        "locked it; check that no other program removes it, and run again",
    )


def _is_open(path: Path, handle: IO[str]) -> bool:
    """Whether ``path`` is still the file ``handle`` has open (not removed, nor replaced)."""
    return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino


def _holder(path: Path) -> str | None:
    """The process that holds the lock of ``path``, as its file names it: ``"process 1234"``,
    with ``" on HOST"`` for another host than this one's; ``None`` where it names none (yet)."""
    try:
        pid, _, host = path.read_text().strip().partition(" ")
    except OSError:
        return None
    if not pid.isdigit():
        return None
    return f"process {pid}" + (f" on {host}" if host and host != socket.gethostname() else "")
