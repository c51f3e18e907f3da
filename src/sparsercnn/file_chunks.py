"""Reading a file, or a download, whole in a stream: a chunk at a time, never all at once.

The checksums of torch.save's archive records (:mod:`sparsercnn.torch_archive`), of safetensors
tensor data (:mod:`sparsercnn.safetensors_file`) and of downloaded files
(:mod:`sparsercnn.weights.file_digest`), and downloads themselves
(:mod:`sparsercnn.weights.http_download`), read their bytes so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

# How much is read at a time: large enough that the per-call cost is nothing beside a checksum's
# or a copy's, small enough that a 440 MB file is never held whole a second time.
CHUNK_SIZE = 1 << 20


class Readable(Protocol):
    """A binary file, a zip archive's record or an HTTP response: anything with ``read(n)``."""

    def read(self, size: int, /) -> bytes: ...


def chunks(stream: Readable) -> Iterator[bytes]:
    """The rest of ``stream``, :data:`CHUNK_SIZE` bytes at a time (the last chunk shorter)."""
    while chunk := stream.read(CHUNK_SIZE):
        yield chunk
