"""Saving drawings: formats that cannot hold one refused before writing, the usual ones kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from sparsercnn.visualization.drawing_file import drawing_format, save_drawing


def _gray(width: int = 320, height: int = 240) -> Image.Image:
    return Image.new("RGB", (width, height), (128, 128, 128))


@pytest.mark.parametrize(
    ("suffix", "problem"),
    [
        (".xbm", r"XBM cannot hold this drawing \(cannot write mode RGB"),  # 1-bit only
        (".msp", r"MSP cannot hold this drawing"),
        (".icns", r"ICNS would resize the drawing \(to 1024x1024"),  # stretched to an icon
    ],
)
def test_formats_that_cannot_hold_a_drawing_are_refused_before_writing(
    tmp_path: Path, suffix: str, problem: str
) -> None:
    path = tmp_path / f"figure{suffix}"
    with pytest.raises(ValueError, match=rf"^--output {path}: {problem}.*name the file \.png"):
        drawing_format(path, flag="--output")
    with pytest.raises(ValueError, match=problem):
        save_drawing(_gray(), path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif", ".bmp", ".gif"])
def test_drawings_keep_their_size_in_the_usual_formats(tmp_path: Path, suffix: str) -> None:
    image = _gray(333, 77)
    path = save_drawing(image, tmp_path / f"figure{suffix}")
    assert drawing_format(path) and Image.open(path).size == image.size
