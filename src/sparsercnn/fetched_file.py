"""A local file as :func:`~sparsercnn.weights.download.fetch` hands it on: its path, and whether
its bytes matched the SHA-256 expected of them.

The readers of weight files (:mod:`sparsercnn.weights.readers`, :mod:`sparsercnn.model_file`)
take it wherever they take a path. The CRC-32 checks of the bytes inside a file
(:func:`~sparsercnn.torch_archive.damaged_record`,
:func:`~sparsercnn.safetensors_file.check_header_crc32` and
:func:`~sparsercnn.safetensors_file.load_tensors`) pass a file whose SHA-256 matched without
summing it: the digest covers every byte, so that a checksummed 440 MB checkpoint is summed
once, by fetch, not a second time for its CRC-32. (Even an 8-digit prefix, all an mmdetection name
carries, misses accidental damage as rarely as a CRC-32 does: once in 4 billion.) Fetch says so,
by keyword, once it has compared the digest (``FetchedFile(path, verified=True)``);
``FetchedFile(path)`` is a file nothing has checked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class FetchedFile:
    """A local file, usable as a path (``open``, :class:`~pathlib.Path`, ``str`` give its path).

    Attributes:
        path: the file.
        verified: whether fetch found the file's bytes to match the SHA-256 expected of them
            (False where no checksum was expected); given by keyword only, and fixed once made.
    """

    path: Path
    verified: bool = field(default=False, kw_only=True)

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return str(self.path)


def checksum_verified(file: str | os.PathLike[str]) -> bool:
    """Whether ``file`` is a :class:`FetchedFile` whose bytes matched a SHA-256: its own
    CRC-32 need not be read."""
    return isinstance(file, FetchedFile) and file.verified
