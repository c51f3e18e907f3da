"""A local file as :func:`~sparsercnn.weights.download.fetch` hands it on: its path, and the
SHA-256 its bytes were found to match, when one was expected.

The readers of weight files (:mod:`sparsercnn.weights.readers`, :mod:`sparsercnn.model_file`)
take it wherever they take a path. The CRC-32 checks of the bytes inside a file
(:func:`~sparsercnn.torch_archive.damaged_record`,
:func:`~sparsercnn.safetensors_file.check_crc32`) pass a file whose SHA-256 matched without
reading it: the digest covers every byte, so that a checksummed 440 MB checkpoint is read once,
by fetch, not a second time for its CRC-32. (Even an 8-digit prefix, all an mmdetection name
carries, misses accidental damage as rarely as a CRC-32 does: once in 4 billion.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FetchedFile:
    """A local file, usable as a path (``open``, :class:`~pathlib.Path`, ``str`` give its path).

    Attributes:
        path: the file.
        sha256: the SHA-256 (lower-case hex, or a prefix of at least 8 digits) that the file's
            bytes matched when fetched; None when no checksum was expected.
    """

    path: Path
    sha256: str | None = None

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return str(self.path)


def checksum_verified(file: str | os.PathLike[str]) -> bool:
    """Whether ``file`` is a :class:`FetchedFile` whose bytes matched a SHA-256: its own
    CRC-32 need not be read."""
    return isinstance(file, FetchedFile) and file.sha256 is not None
