"""Saving a drawing: the image formats that can hold one, chosen by the file's suffix.

A drawing (detections on an image, a figure of panels) is written atomically in the format its
file name's suffix names; formats that cannot hold it faithfully are refused up front, so that
a command fails before its model runs rather than after.
"""

from __future__ import annotations

import io
import os
from functools import cache
from pathlib import Path

from PIL import Image

from sparsercnn.atomic_file import atomic_write

# Quality of JPEG drawings: boxes and labels stay crisp at a moderate file size.
JPEG_QUALITY = 92


def drawing_format(
    path: str | os.PathLike[str],
    *,
    flag: str | None = None,
    advice: str = "name the file .png or .jpg",
) -> str:
    """The Pillow format that :func:`save_drawing` writes to ``path`` (by its suffix).

    Args:
        path: the file to write.
        flag: the command-line flag that gave ``path``, named in the error (None: none).
        advice: what the error says to do (a file named after its image cannot be renamed).

    Raises:
        ValueError: Pillow cannot write the suffix's format, or not as an RGB image of the
            drawing's size (:func:`_drawing_format_problem`); the message names the file.
    """
    path = Path(path)
    image_format = Image.registered_extensions().get(path.suffix.lower())
    given = f"{flag} {path}" if flag else str(path)
    if image_format is None or image_format not in Image.SAVE:
        raise ValueError(
            f"{given}: {path.suffix or 'no suffix'} is not an image format Pillow can write; "
            f"{advice}"
        )
    problem = _drawing_format_problem(image_format)
    if problem is not None:
        raise ValueError(f"{given}: {image_format} {problem}; {advice}")
    return image_format


@cache
def _drawing_format_problem(image_format: str) -> str | None:
    """Why a drawing cannot be written faithfully in Pillow's ``image_format``, or None.

    A small RGB image is written in memory and, where Pillow reads the format back, read
    again: some formats take 1-bit or palette images only (XBM, MSP, Palm), need a plug-in
    (HDF5, WMF) or shrink and stretch the image to icon sizes (ICO, ICNS), which would fail
    after the model has run, or change the drawing without a word.
    """
    size = (300, 2)  # wider than the largest icon, and not square
    buffer = io.BytesIO()
    try:
        Image.new("RGB", size).save(buffer, format=image_format)
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"cannot hold this drawing ({error})"
    buffer.seek(0)
    try:
        with Image.open(buffer) as written:
            written_size = written.size
    except (OSError, ValueError, SyntaxError):  # written, but Pillow cannot read it (PDF, PS)
        return None
    if written_size != size:
        return f"would resize the drawing (to {written_size[0]}x{written_size[1]} for a 300x2 one)"
    return None


def save_drawing(image: Image.Image, path: str | os.PathLike[str]) -> Path:
    """Write ``image`` atomically in the format its file name's suffix names (``.png``,
    ``.jpg``, ``.webp``, ...; alpha is dropped for formats without it).

    Raises:
        ValueError: Pillow cannot write the suffix's format; the message names the file.
    """
    path = Path(path)
    image_format = drawing_format(path)
    if image_format == "JPEG" and image.mode != "RGB":
        image = image.convert("RGB")
    options = {"quality": JPEG_QUALITY} if image_format == "JPEG" else {}
    return atomic_write(path, lambda tmp: image.save(tmp, format=image_format, **options))
