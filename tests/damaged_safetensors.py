"""A safetensors file damaged the way a bad copy or disk damages it, for the tests of its readers:
one byte of its tensor data changed, which its CRC-32 catches (:func:`flip_a_tensor_byte`), or
tensor data that cannot be read, a disk error (:class:`UnreadableTensorData`)."""

from __future__ import annotations

import errno
from pathlib import Path

import torch

from tests.wrapped_safe_open import WrappedSafeOpen


def flip_a_tensor_byte(path: Path, fraction: float = 0.5) -> None:
    """Invert one byte of ``path``'s tensor data (the bytes after its header), ``fraction`` of the
    way through them (0: the first byte, 1: the last)."""
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")
    data[start + round(fraction * (len(data) - 1 - start))] ^= 0xFF
    path.write_bytes(bytes(data))


class UnreadableTensorData(WrappedSafeOpen):
    """``safe_open`` for a file whose header reads but whose tensor data do not (a disk error):
    :meth:`get_tensor` raises ``EIO``; put in place of a reader's ``safe_open`` with
    ``monkeypatch.setattr``."""

    def get_tensor(self, key: str) -> torch.Tensor:
        raise OSError(errno.EIO, "Input/output error")
