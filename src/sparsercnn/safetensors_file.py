"""Writing our safetensors files (model files, backbone files) reproducibly, and checking their
tensor data when they are read.

safetensors checks a file's header and sizes, not its tensor data: a file damaged inside a tensor
(a bad copy, a disk error) loads, with wrong weights. :func:`write_safetensors` therefore stores
under ``tensors_crc32`` in the metadata the CRC-32 of the file's tensor data, as 8 hex digits:
of every byte after the header, as safetensors stores them, so the value is defined by the file
alone. :func:`check_tensor_data` compares it when the file is read. CRC-32 rather than SHA-256:
it is there for accidental damage (it catches every burst of up to 32 bits, any other damage but
once in 4 billion), not for tampering, and it is about twice as fast as SHA-256 with SHA
instructions (machine A, BENCHMARKS.md session 32: about 0.2 s estimated for a 440 MB ResNet-50
model on one core).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from safetensors.torch import save_file
from torch import Tensor

from sparsercnn.atomic_file import atomic_write
from sparsercnn.torch_archive import CHUNK_SIZE

DIGEST_KEY = "tensors_crc32"
# Written first in the digest's place: the digest has the same length, so the header keeps its
# size and every tensor its offsets when the digest replaces it.
_PLACEHOLDER = "0" * 8


def write_safetensors(
    path: str | Path, tensors: dict[str, Tensor], metadata: dict[str, str]
) -> Path:
    """Write ``tensors`` (contiguous, on the CPU) and ``metadata`` with the CRC-32 of the tensor
    data (:data:`DIGEST_KEY`) to ``path`` atomically; the same tensors and metadata always give
    the same bytes.

    Raises:
        OSError: the file could not be written (:func:`~sparsercnn.atomic_file.atomic_write`).
    """

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp), metadata={**metadata, DIGEST_KEY: _PLACEHOLDER})
        _finish_header(tmp)

    return atomic_write(path, write)


def _finish_header(path: Path) -> None:
    """Put the CRC-32 of the tensor data of the safetensors file ``path`` in its header and sort
    the header's keys, in place.

    safetensors writes its metadata in hash-map order, which changes from one process to the
    next, so that equal models would differ in bytes. Sorting keeps the header's length (the same
    entries, compact JSON, padded with spaces as before) and every tensor's data offsets. The
    tensor data are read back in chunks, never held whole a second time.
    """
    with open(path, "r+b") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
        header["__metadata__"][DIGEST_KEY] = _data_crc32(handle)
        text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        encoded = text.encode("utf-8")
        assert len(encoded) <= size, "sorted safetensors header longer than the original"
        handle.seek(8)
        handle.write(encoded.ljust(size))


def _data_crc32(handle: BinaryIO) -> str:
    """The CRC-32, as 8 hex digits, of what is left to read of ``handle``: a safetensors file's
    tensor data once its header is read."""
    crc = 0
    while chunk := handle.read(CHUNK_SIZE):
        crc = zlib.crc32(chunk, crc)
    return f"{crc:08x}"


def check_tensor_data(path: Path, metadata: Mapping[str, str], again: str) -> None:
    """Check the tensor data of the safetensors file ``path`` against the CRC-32 its header's
    ``metadata`` holds; a file without one (written by other programs, or by sparsercnn before
    it stored one) is not checked.

    Args:
        again: what to do about a damaged file ("copy it again", ...), for the message.

    Raises:
        ValueError: the tensor data do not match; the message names ``path``.
    """
    stored = metadata.get(DIGEST_KEY)
    if stored is None:
        return
    with open(path, "rb") as handle:
        handle.seek(8 + int.from_bytes(handle.read(8), "little"))
        actual = _data_crc32(handle)
    if actual != stored:
        raise ValueError(
            f"{path} is damaged: its tensor data do not match the CRC-32 stored in its header "
            f"(a bad copy or a disk error); {again}"
        )
