"""Writing our safetensors files (model files, backbone files) reproducibly, and checking their
header and tensor data when they are read.

safetensors checks that a file's header is JSON and that its sizes add up, not its tensor data
nor what the header says: a file damaged inside a tensor, or in a header's dtype, shape or
metadata where the sizes still add up (a bad copy, a disk error), loads, with wrong weights or a
wrong config. :func:`write_safetensors` therefore stores two CRC-32 in the metadata, as 8 hex
digits each, both defined by the file alone:

- ``tensors_crc32`` (:data:`DIGEST_KEY`): of every byte after the header, as safetensors stores
  them;
- ``header_crc32`` (:data:`HEADER_DIGEST_KEY`): of what the JSON header says, in one form: the
  header without ``header_crc32`` itself, as UTF-8 JSON with sorted keys and no spaces
  (:func:`_header_crc32`). Another program that re-saves the same tensors and metadata (its own
  key order and layout, as safetensors' ``save_file(tensors, metadata=handle.metadata())``
  writes them) keeps it valid; a changed dtype, shape, data offset, name or metadata value does
  not.

:func:`check_header_crc32` and :func:`load_tensors` compare them when the file is read, with
its header read once (:func:`read_header`) and its data once (the latter's CRC-32 is summed from
the loaded tensors); a file without one (another program's, or one sparsercnn wrote before it
stored that one) is not checked on that part.
CRC-32 rather than SHA-256: it is there for accidental damage (it catches every burst of up to
32 bits, any other damage but once in 4 billion), not for tampering, and it is about twice as
fast as SHA-256 with SHA instructions (machine A, BENCHMARKS.md session 32: about 0.2 s
estimated for a 440 MB ResNet-50 model on one core).
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors import safe_open
from safetensors.torch import save, save_file
from torch import Tensor

from sparsercnn.atomic_file import atomic_write
from sparsercnn.fetched_file import checksum_verified
from sparsercnn.file_chunks import chunks

DIGEST_KEY = "tensors_crc32"
HEADER_DIGEST_KEY = "header_crc32"
# Written first in each digest's place: a digest has the same length, so the header keeps its
# size and every tensor its offsets when the digests replace them.
_PLACEHOLDER = "0" * 8


def write_safetensors(
    path: str | Path, tensors: dict[str, Tensor], metadata: dict[str, str]
) -> Path:
    """Write ``tensors`` (contiguous, on the CPU) and ``metadata`` with the CRC-32 of the tensor
    data (:data:`DIGEST_KEY`) and of the header (:data:`HEADER_DIGEST_KEY`) to ``path``
    atomically; the same tensors and metadata always give the same bytes.

    Raises:
        OSError: the file could not be written (:func:`~sparsercnn.atomic_file.atomic_write`).
    """
    placeholders = {DIGEST_KEY: _PLACEHOLDER, HEADER_DIGEST_KEY: _PLACEHOLDER}

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp), metadata={**metadata, **placeholders})
        _finish_header(tmp)

    return atomic_write(path, write)


def _finish_header(path: Path) -> None:
    """Put the CRC-32 of the tensor data and then that of the header of the safetensors file
    ``path`` in its header and sort the header's keys, in place.

    safetensors writes its metadata in hash-map order, which changes from one process to the
    next, so that equal models would differ in bytes. Sorting keeps the header's length (the same
    entries, compact JSON, padded with spaces as before) and every tensor's data offsets. The
    tensor data are read back in chunks, never held whole a second time.
    """
    with open(path, "r+b") as handle:
        length = handle.read(8)
        size = int.from_bytes(length, "little")
        header = json.loads(handle.read(size))
        header["__metadata__"][DIGEST_KEY] = _data_crc32(handle)
        header["__metadata__"][HEADER_DIGEST_KEY] = _header_crc32(header)
        encoded = _canonical_json(header)
        assert len(encoded) <= size, "sorted safetensors header longer than the original"
        handle.seek(0)
        handle.write(length + encoded.ljust(size))


def _header_crc32(header: Mapping[str, Any]) -> str:
    """The :data:`HEADER_DIGEST_KEY` of a safetensors file whose parsed JSON header is
    ``header``: the CRC-32, as 8 hex digits, of ``header`` without that entry of its
    ``__metadata__`` (:func:`_canonical_json`), so that it depends on what the header says, not
    on how a program lays it out."""
    metadata = {k: v for k, v in header.get("__metadata__", {}).items() if k != HEADER_DIGEST_KEY}
    return f"{zlib.crc32(_canonical_json({**header, '__metadata__': metadata})):08x}"


def _canonical_json(value: object) -> bytes:
    """``value`` as UTF-8 JSON with sorted keys and no spaces: one text for one value."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def _data_crc32(handle: BinaryIO) -> str:
    """The CRC-32, as 8 hex digits, of what is left to read of ``handle``: a safetensors file's
    tensor data once its header is read."""
    crc = 0
    for chunk in chunks(handle):
        crc = zlib.crc32(chunk, crc)
    return f"{crc:08x}"


@dataclass(frozen=True)
class SafetensorsHeader:
    """The JSON header of a safetensors file, read once (:func:`read_header`) for its metadata
    and the checks of :func:`check_header_crc32` and :func:`load_tensors`.

    Attributes:
        entries: the parsed JSON object: each tensor's ``dtype``, ``shape`` and
            ``data_offsets`` under its name, and the metadata under ``__metadata__``.
    """

    entries: Mapping[str, Any]

    @property
    def metadata(self) -> dict[str, str]:
        """The file's metadata (``{}`` where it has none), as ``safe_open``'s ``metadata()``."""
        return dict(self.entries.get("__metadata__") or {})


def read_header(path: str | os.PathLike[str]) -> SafetensorsHeader:
    """The header of the safetensors file ``path``, read and parsed once, and checked as far as
    what is read of it here needs: a JSON object within the file, whose tensors' data end where
    the file does (a file cut short fails). ``safe_open`` checks the rest (dtypes, shapes, gaps)
    where a reader opens the file.

    Raises:
        OSError: the file cannot be read.
        ValueError: it is no safetensors file, or one cut short; the message names ``path``.
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        length = int.from_bytes(handle.read(8), "little")
        if size < 8 or length > size - 8:
            raise _not_whole(path, "its header runs past the end of the file")
        text = handle.read(length)
    try:
        entries = json.loads(text)
        metadata = entries.get("__metadata__") or {}
        data_end = max(
            (entry["data_offsets"][1] for key, entry in entries.items() if key != "__metadata__"),
            default=0,
        )
    except (ValueError, AttributeError, KeyError, TypeError, IndexError) as error:
        raise _not_whole(path, f"its header is not the JSON safetensors writes ({error})") from None
    if not isinstance(metadata, dict) or not isinstance(data_end, int):
        raise _not_whole(path, "its header is not the JSON safetensors writes")
    if (whole := 8 + length + data_end) != size:
        raise _not_whole(path, f"its header says {whole} bytes, the file has {size}")
    return SafetensorsHeader(entries)


def _not_whole(path: str | os.PathLike[str], what: str) -> ValueError:
    """The error of ``path``, which is no safetensors file, or one cut short (``what`` says
    how it fails)."""
    return ValueError(f"{path} is no whole safetensors file: {what}")


def stored_tensors_crc32(path: Path) -> str | None:
    """The :data:`DIGEST_KEY` that the header of the safetensors file at ``path`` holds (which
    tensors it is, without reading them); ``None`` where there is no whole safetensors file
    there (:func:`read_header`), or it holds none."""
    try:
        return read_header(path).metadata.get(DIGEST_KEY)
    except (OSError, ValueError):
        return None


def file_tensors_crc32(path: str | os.PathLike[str]) -> str:
    """The :data:`DIGEST_KEY` of the safetensors file ``path``: the one its header holds
    (:func:`stored_tensors_crc32`, the header alone is read), else (a file written before
    sparsercnn stored it, or by another program) computed from its tensor data.

    Raises:
        OSError: the file cannot be read.
        ValueError: it is no whole safetensors file (:func:`read_header`).
    """
    header = read_header(path)
    stored = header.metadata.get(DIGEST_KEY)
    if stored is not None:
        return stored
    with open(path, "rb") as handle:
        handle.seek(8 + int.from_bytes(handle.read(8), "little"))
        return _data_crc32(handle)


def tensors_crc32(tensors: dict[str, Tensor]) -> str:
    """The :data:`DIGEST_KEY` that :func:`write_safetensors` would store for ``tensors``
    (contiguous, on the CPU), computed in memory: safetensors' own serialisation gives the
    order of the tensors in the file (holds a copy of the tensors while it runs)."""
    data = save(tensors)
    return f"{zlib.crc32(memoryview(data)[8 + int.from_bytes(data[:8], 'little') :]):08x}"


def check_header_crc32(
    path: str | os.PathLike[str], header: SafetensorsHeader, again: Callable[[], str]
) -> None:
    """Check the ``header`` of the safetensors file ``path`` (:func:`read_header`) against
    the CRC-32 its metadata holds (:data:`HEADER_DIGEST_KEY`), before anything it says is
    used; unchecked where there is none, or where the file's SHA-256 matched
    (:func:`~sparsercnn.fetched_file.checksum_verified`).

    Args:
        again: what to do about a damaged file ("copy it again", ...), for the message; called
            only for a damaged file.

    Raises:
        ValueError: the header does not match; the message names ``path``.
    """
    stored = header.metadata.get(HEADER_DIGEST_KEY)
    if stored is None or checksum_verified(path):
        return
    if _header_crc32(header.entries) != stored:
        raise _damaged(path, "its header does not match the CRC-32 stored in it", again)


def load_tensors(
    handle: safe_open,
    path: str | os.PathLike[str],
    header: SafetensorsHeader,
    again: Callable[[], str],
) -> dict[str, Tensor]:
    """Every tensor of the safetensors file ``path``, open as ``handle`` (``safe_open``, its
    ``header`` checked: :func:`check_header_crc32`), checked against the CRC-32 of the tensor
    data its metadata holds (:data:`DIGEST_KEY`): computed from the loaded tensors, so that the
    file's data are read once. Unchecked where there is none, or where the file's SHA-256
    matched (:func:`~sparsercnn.fetched_file.checksum_verified`).

    Raises:
        ValueError: the tensor data do not match; the message names ``path``.
    """
    tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    stored = header.metadata.get(DIGEST_KEY)
    if stored is None or checksum_verified(path):
        return tensors
    # safetensors refuses a file whose data have gaps or bytes no tensor covers: the data are
    # the tensors' bytes, one after the other in the order of their offsets.
    order = sorted(tensors, key=lambda key: header.entries[key]["data_offsets"][0])
    crc = 0
    for key in order:
        crc = zlib.crc32(tensors[key].reshape(-1).view(torch.uint8).numpy(), crc)
    if f"{crc:08x}" != stored:
        raise _damaged(path, "its tensor data do not match the CRC-32 stored in its header", again)
    return tensors


def _damaged(path: str | os.PathLike[str], what: str, again: Callable[[], str]) -> ValueError:
    """The error of the safetensors file ``path`` whose header or data (``what``) do not match
    the CRC-32 stored with them."""
    return ValueError(
        f"{path} is damaged: {what} (a bad copy or a disk error); {again()}. If another "
        "program re-saved it with changed tensors or metadata, it copied our "
        f"{DIGEST_KEY} and {HEADER_DIGEST_KEY} metadata entries, which no longer fit: save "
        "it without them"
    )
