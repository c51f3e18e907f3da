"""An exclusive lock between processes, held on a lock file (``flock``): the download cache's,
one per file downloaded, which other processes wait for
(:mod:`sparsercnn.weights.download_lock`), and a training run's on its run folder, which a
second run into it is refused (:mod:`sparsercnn.engine.run_lock`). The system releases it when
its process ends, however it ends: a killed process leaves no stale lock. The lock file names
its holder for the message of a process that finds it held, and is removed on release."""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

# What flock raises on a file system that has no such locks (some network and FUSE mounts).
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


@contextmanager
def exclusive_lock(path: Path, on_held: Callable[[str | None], None]) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created, and removed afterwards) while the
    block runs.

    Args:
        path: the lock file, in a folder that exists.
        on_held: called where another process holds the lock, with that process as the lock
            file names it (``"process 1234"``, ``"process 1234 on HOST"`` for another host;
            ``None``: not known), before this one waits for it: it says that this process
            waits, or raises to refuse instead.

    No lock where ``fcntl`` is missing (Windows), nor, with a warning, on a file system
    without ``flock``.

    Raises:
        OSError: ``path`` cannot be created.
    """
    if fcntl is None:
        yield
        return
    handle = _locked(path, on_held)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # before unlocking: a waiter then sees it is stale
        if handle is not None:
            handle.close()


def _locked(path: Path, on_held: Callable[[str | None], None]) -> IO[str] | None:
    """An open ``path`` this process holds the lock of (``None``: the file system has no
    locks). A waiter that gets the lock of a file its holder has since removed tries again with
    the new file."""
    assert fcntl is not None
    while True:
        handle = open(path, "a+")  # noqa: SIM115
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                on_held(_holder(path))
                fcntl.flock(handle, fcntl.LOCK_EX)
            except OSError as error:
                if error.errno not in _NO_LOCKS:
                    raise
                logger.warning(
                    "cannot lock %s (%s): going on without the lock, which keeps other "
                    "processes out",
                    path,
                    error.strerror,
                )
                handle.close()
                return None
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
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
