"""The download cache's writes: one lock per file being downloaded, errors that name the cache
folder, and the record of the URL each cached file came from. :mod:`sparsercnn.weights.download`
fetches through them, and :mod:`sparsercnn.weights.http_download` writes the file."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TypeVar

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

CACHE_ENV = "SPARSERCNN_CACHE"

T = TypeVar("T")


def cache_write(folder: Path, action: Callable[[], T]) -> T:
    """Run ``action``, which writes in the download cache ``folder``; an OS error (a read-only
    or missing folder, no space) becomes one that names the folder and says what to do."""
    try:
        return action()
    except OSError as error:
        raise PermissionError(
            f"cannot write in the download cache {folder} ({error.strerror or error}); set "
            f"{CACHE_ENV} to a writable folder, or download the file yourself and give its path"
        ) from error


def url_record(dst: Path) -> Path:
    """The file beside the cached ``dst`` that records the URL it was downloaded from."""
    return dst.with_name(dst.name + ".url")


def recorded_url(dst: Path) -> str | None:
    """The URL the cached ``dst`` (or its ``.part``) was downloaded from, if recorded: None for
    any file outside the cache, and for one put in it by hand."""
    record = url_record(dst)
    return record.read_text().strip() if record.is_file() else None


@contextmanager
def download_lock(dst: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``dst``'s download (the file ``dst.lock``, removed afterwards),
    so that processes fetching the same file at once (the ranks of a ``torchrun``) download it
    once: the others wait, then find it in the cache. No lock where ``fcntl`` is missing
    (Windows)."""
    folder = dst.parent
    cache_write(folder, lambda: folder.mkdir(parents=True, exist_ok=True))
    if fcntl is None:
        yield
        return
    lock_path = dst.with_name(dst.name + ".lock")
    handle = _locked(lock_path, dst)
    try:
        yield
    finally:
        lock_path.unlink(missing_ok=True)  # before unlocking: a waiter then sees it is stale
        handle.close()


def _locked(lock_path: Path, dst: Path) -> IO[str]:
    """An open ``lock_path`` this process holds the lock of. A waiter that gets the lock of a
    file its holder has since removed tries again with the new file."""
    assert fcntl is not None
    while True:
        handle = cache_write(lock_path.parent, lambda: open(lock_path, "a"))  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another process downloading %s", dst)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if os.stat(lock_path).st_ino == os.fstat(handle.fileno()).st_ino:
                return handle
        except FileNotFoundError:
            pass
        handle.close()
