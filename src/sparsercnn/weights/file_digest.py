"""SHA-256 digests of weight files, read a chunk at a time: of a file on disk
(:func:`file_sha256`), and of a download's ``.part`` file kept as its bytes are written
(:class:`FileSha256`), so that a finished download is checked without being read again.
:mod:`sparsercnn.weights.download` compares them with the expected checksum."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sparsercnn.file_chunks import chunks


def file_sha256(path: Path) -> str:
    """The SHA-256 (hex) of the file ``path``, read once."""
    return FileSha256(path).hexdigest()


class FileSha256:
    """The SHA-256 of a file that is written by appending to it (a download's ``.part``), kept
    up to date as it is written.

    The writer passes each appended chunk to :meth:`update`, and calls :meth:`catch_up` before
    appending to the file as it is on disk (:meth:`start_over` before writing it anew). Only the
    bytes of the file not seen written (an earlier run's, or those of a write that failed
    part-way) are ever read from it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._digest = hashlib.sha256()
        self._size = 0  # how many of the file's first bytes the digest covers

    def start_over(self) -> None:
        """The file is being written anew: nothing of it is hashed."""
        self._digest, self._size = hashlib.sha256(), 0

    def catch_up(self) -> None:
        """Make the digest that of the file as it is on disk: read the bytes past those hashed,
        or the whole file where it is shorter than what was hashed (a buffered write lost)."""
        size = self.path.stat().st_size if self.path.exists() else 0
        if size < self._size:
            self.start_over()
        if size > self._size:
            with open(self.path, "rb") as handle:
                handle.seek(self._size)
                for block in chunks(handle):
                    self.update(block)

    def update(self, chunk: bytes) -> None:
        """``chunk`` was appended to the file."""
        self._digest.update(chunk)
        self._size += len(chunk)

    def hexdigest(self) -> str:
        """The SHA-256 (hex) of the file as it is on disk now."""
        self.catch_up()
        return self._digest.hexdigest()
