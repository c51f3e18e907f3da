"""A safetensors file damaged the way a bad copy or disk damages it, inside its tensor data, for
the tests of the readers that check its CRC-32 (:func:`flip_a_tensor_byte`)."""

from __future__ import annotations

from pathlib import Path


def flip_a_tensor_byte(path: Path, fraction: float = 0.5) -> None:
    """Invert one byte of ``path``'s tensor data (the bytes after its header), ``fraction`` of the
    way through them (0: the first byte, 1: the last)."""
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")
    data[start + round(fraction * (len(data) - 1 - start))] ^= 0xFF
    path.write_bytes(bytes(data))
