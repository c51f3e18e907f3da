"""Tests of the images a predictor takes (:mod:`sparsercnn.image_inputs`)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from PIL import Image

from sparsercnn.image_inputs import to_pil


def _negative_strip_offset_tiff(path: Path) -> Path:
    """A grey TIFF whose strip offset is a signed -16: Pillow opens it, and its load raises
    ValueError("Tile offset cannot be negative"), not OSError."""
    Image.new("L", (8, 6), 128).save(path)
    data = bytearray(path.read_bytes())
    assert data[:2] == b"II"
    ifd = struct.unpack_from("<I", data, 4)[0]
    for entry in range(ifd + 2, ifd + 2 + 12 * struct.unpack_from("<H", data, ifd)[0], 12):
        if struct.unpack_from("<H", data, entry)[0] == 273:  # StripOffsets
            struct.pack_into("<HHIi", data, entry, 273, 9, 1, -16)  # type 9: SLONG
    path.write_bytes(bytes(data))
    return path


def test_a_damaged_pil_image_is_told_damaged_and_a_closed_one_closed(tmp_path: Path) -> None:
    # Every ValueError of image.load() was taken for a closed file, a damaged one included.
    damaged = _negative_strip_offset_tiff(tmp_path / "damaged.tif")
    with pytest.raises(ValueError, match=r"damaged\.tif cannot be read \(Tile offset.*damaged$"):
        to_pil(Image.open(damaged))
    good = tmp_path / "good.png"
    Image.new("RGB", (8, 6)).save(good)
    with Image.open(good) as ended:
        pass
    closed_before = Image.open(good)
    closed_before.close()
    closed_after = Image.open(good)
    closed_after.load()
    closed_after.close()
    for closed in (ended, closed_before, closed_after):
        with pytest.raises(ValueError, match=r"good\.png was closed .*inside the `with Image"):
            to_pil(closed)
    assert to_pil(Image.open(good)).size == (8, 6)


def test_a_pil_image_whose_file_object_was_closed_is_told_closed(tmp_path: Path) -> None:
    # Its file object is still there, closed: Pillow's "seek of closed file" was told damaged.
    good = tmp_path / "good.png"
    Image.new("RGB", (8, 6)).save(good)
    with open(good, "rb") as file:
        image = Image.open(file)
    with pytest.raises(ValueError, match=r"good\.png was closed .*inside the `with open"):
        to_pil(image)
    with open(good, "rb") as file:
        loaded = Image.open(file)
        loaded.load()
    assert to_pil(loaded).size == (8, 6)


def test_a_pil_image_whose_in_memory_file_was_closed_is_told_of_that_file() -> None:
    # It was told to call image.load() inside "the `with open(...)` block", and to give a path.
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6)).save(buffer, "PNG")
    with io.BytesIO(buffer.getvalue()) as file:
        image = Image.open(file)
    with pytest.raises(ValueError) as info:
        to_pil(image)
    assert str(info.value) == (
        "the PIL image's file was closed before its pixels were read: call image.load() before "
        "the file object given to Image.open is closed (or before image.close())"
    )
