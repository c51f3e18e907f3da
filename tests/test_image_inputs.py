"""Tests of the images a predictor takes (:mod:`sparsercnn.image_inputs`)."""

from __future__ import annotations

import io
import logging
import struct
from pathlib import Path

import pytest
from PIL import Image

from sparsercnn.image_inputs import expand_inputs, folder_files, to_pil


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


def test_hidden_files_in_a_folder_are_no_inputs_but_one_named_is_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A folder copied from a Mac holds ``._a.jpg`` (an AppleDouble companion, no image) beside
    ``a.jpg``: it was listed as an input, so predict refused the folder ("could not be read")
    and int8 calibration the whole export. Hidden files and folders are left out, with one log
    line; the folder given may itself be hidden, and a hidden image named by its path is read."""
    folder = tmp_path / ".photos"
    (folder / ".thumbnails").mkdir(parents=True)
    image, hidden_image = folder / "a.jpg", folder / ".b.jpg"
    for path in (image, hidden_image, folder / ".thumbnails" / "c.jpg"):
        Image.new("RGB", (8, 6), "red").save(path, format="JPEG")
    (folder / "._a.jpg").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    with caplog.at_level(logging.INFO):
        assert expand_inputs(folder) == [(image, str(image))]
    assert (
        f"{folder}: leaving out 3 hidden files (._a.jpg, .b.jpg, .thumbnails/c.jpg): a folder's "
        "files and folders named '.*' are no inputs; give such a file by its path to read it"
        in caplog.text
    )
    assert expand_inputs(hidden_image) == [(hidden_image, str(hidden_image))]


def test_a_folder_without_hidden_files_logs_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    Image.new("RGB", (8, 6)).save(tmp_path / "a.png")
    with caplog.at_level(logging.INFO):
        assert folder_files(tmp_path, [".png"]) == [tmp_path / "a.png"]
    assert "leaving out" not in caplog.text


def test_the_drawings_left_out_say_which_folders_are_marked_and_where_runs_were_killed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The line read "(in /a/drawn, /a/sub, staged)": "staged" a third place."""
    from sparsercnn.drawings_marker import write_marker

    drawing, staged = tmp_path / "drawn" / "x.png", tmp_path / "sub" / ".y.partial.png"
    for path in (drawing, staged, tmp_path / "a.png"):
        path.parent.mkdir(exist_ok=True)
        Image.new("RGB", (8, 6)).save(path, format="PNG")
    write_marker(drawing.parent, {drawing: str(tmp_path / "x.png")})
    with caplog.at_level(logging.INFO):
        assert folder_files(tmp_path, [".png"]) == [tmp_path / "a.png"]
    assert (
        f"{tmp_path}: leaving out 2 drawings of earlier runs (in {drawing.parent}; staged in "
        f"{staged.parent} by runs killed before their end)"
    ) in caplog.text
