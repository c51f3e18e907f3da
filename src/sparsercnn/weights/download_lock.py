"""The download cache's writes: one lock per file being downloaded, errors that name the cache
folder, the record of the URL each cached file (and each ``.part`` of a download under way) came
from, and the move of a finished download, with its record, into a cached file's place
(:func:`install_download`). :mod:`sparsercnn.weights.download` fetches through them, and
:mod:`sparsercnn.weights.http_download` writes the file."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TypeVar

from sparsercnn.atomic_file import atomic_write_text
from sparsercnn.file_lock import exclusive_lock

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
    """The file beside the cached ``dst`` (or a download's ``.part``) that records the URL it
    was downloaded from."""
    return dst.with_name(dst.name + ".url")


def recorded_url(dst: Path) -> str | None:
    """The URL the cached ``dst`` (or a download's ``.part``) was downloaded from, if recorded:
    None for any file outside the cache, and for one put in it by hand."""
    record = url_record(dst)
    return record.read_text().strip() if record.is_file() else None


def install_download(part: Path, dst: Path) -> None:
    """Put the complete, checked download ``part``, whose URL its own :func:`url_record` holds,
    in the place of the cached ``dst`` and its record. Until then ``dst`` stays as it was (a
    download that fails costs no cached file, of its URL or of another of its name); then it is
    removed, its record replaced, and the part moved in, in that order: a file never lies
    beside another URL's record (it would be taken as that URL's), and a process stopped
    part-way leaves the part with its record, which the next fetch resumes and finds complete.

    Raises:
        PermissionError: the cache cannot be written (:func:`cache_write`).
    """
    url = recorded_url(part)
    assert url is not None, f"{part} has no record of its URL"
    folder = dst.parent
    cache_write(folder, lambda: dst.unlink(missing_ok=True))
    cache_write(folder, lambda: atomic_write_text(url_record(dst), url + "\n"))
    cache_write(folder, lambda: os.replace(part, dst))
    cache_write(folder, lambda: url_record(part).unlink(missing_ok=True))


@contextmanager
def download_lock(dst: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``dst``'s download (:func:`~sparsercnn.file_lock.exclusive_lock`
    on the file ``dst.lock``, removed afterwards), so that processes fetching the same file at
    once (the ranks of a ``torchrun``) download it once: the others wait, then find it in the
    cache. No lock where ``fcntl`` is missing (Windows)."""
    folder = dst.parent
    cache_write(folder, lambda: folder.mkdir(parents=True, exist_ok=True))
    lock_path = dst.with_name(dst.name + ".lock")

    def waiting(holder: str | None) -> None:
        logger.info("waiting for %s, downloading %s", holder or "another process", dst)

    with ExitStack() as stack:
        cache_write(folder, lambda: stack.enter_context(exclusive_lock(lock_path, waiting)))
        yield
