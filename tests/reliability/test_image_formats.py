"""Images as they come from cameras and tools (CMYK JPEG, 16-bit PNG, grayscale, RGBA, EXIF
rotation) load through the data policy and ``CocoDataset`` with boxes that line up: the pixels
inside each annotated box are the bright object drawn there in the *displayed* orientation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sparsercnn.data.coco import CocoDataset
from sparsercnn.data.dataset_report import validate_coco
from sparsercnn.data.transforms import build_test_transform
from sparsercnn.presets import get_preset
from tests.synthetic_coco import Box, WriteCoco

WIDTH, HEIGHT = 80, 60  # displayed size
BOX_XYWH = (44, 10, 24, 36)  # the bright object, displayed coordinates
# Displayed image -> stored pixels for an EXIF orientation (the viewer undoes it).
STORED_FOR_ORIENTATION = {
    3: lambda a: np.rot90(a, k=2),
    6: lambda a: np.rot90(a, k=1),  # 6: the viewer turns it 90 degrees clockwise
    8: lambda a: np.rot90(a, k=-1),  # 8: the viewer turns it 90 degrees counter-clockwise
}


def displayed(dark: int, bright: int, dtype: type = np.uint8) -> np.ndarray:
    """(HEIGHT, WIDTH) dark image with the bright rectangle at BOX_XYWH."""
    array = np.full((HEIGHT, WIDTH), dark, dtype=dtype)
    x, y, w, h = BOX_XYWH
    array[y : y + h, x : x + w] = bright
    return array


def cmyk_jpeg(path: Path) -> None:
    rgb = np.repeat(displayed(20, 235)[..., None], 3, axis=2)
    Image.fromarray(rgb).convert("CMYK").save(path, quality=95)


def sixteen_bit_png(path: Path) -> None:
    image = Image.fromarray(displayed(2000, 60000, np.uint16))
    assert image.mode == "I;16"
    image.save(path)


def grayscale_jpeg(path: Path) -> None:
    Image.fromarray(displayed(20, 235)).save(path, quality=95)


def rgba_png(path: Path) -> None:
    rgba = np.repeat(displayed(20, 235)[..., None], 4, axis=2)
    rgba[..., 3] = 128  # half transparent everywhere: the colours are kept
    Image.fromarray(rgba, "RGBA").save(path)


def exif_rotated_jpeg(orientation: int) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        stored = STORED_FOR_ORIENTATION[orientation](displayed(20, 235))
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(np.ascontiguousarray(stored)).save(path, quality=95, exif=exif)

    return write


WRITERS = {
    "cmyk.jpg": cmyk_jpeg,
    "depth16.png": sixteen_bit_png,
    "gray.jpg": grayscale_jpeg,
    "rgba.png": rgba_png,
    "exif3.jpg": exif_rotated_jpeg(3),
    "exif6.jpg": exif_rotated_jpeg(6),
    "exif8.jpg": exif_rotated_jpeg(8),
}


def write_one_image_coco(write_coco: WriteCoco, name: str) -> tuple[Path, Path]:
    """A data set of one image ``name`` with its object at BOX_XYWH, in the format under test."""
    data = write_coco(
        file_names=[name],
        size=(HEIGHT, WIDTH),
        categories=[{"id": 1, "name": "object"}],
        boxes=[[Box(1, BOX_XYWH)]],
    )
    WRITERS[name](data.image_paths[0])  # the same object, stored as cameras and tools do
    return data.json_path, data.image_dir


def inside_and_outside(image: torch.Tensor, box: torch.Tensor) -> tuple[float, float]:
    """Mean brightness of ``image`` (3, h, w) inside ``box`` (xyxy, 2 px margin) and outside."""
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    gray = image.float().mean(dim=0)
    mask = torch.zeros_like(gray, dtype=torch.bool)
    mask[y1 + 2 : y2 - 2, x1 + 2 : x2 - 2] = True
    ring = torch.ones_like(mask)
    ring[max(y1 - 2, 0) : y2 + 2, max(x1 - 2, 0) : x2 + 2] = False
    return float(gray[mask].mean()), float(gray[ring].mean())


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_box_lines_up_with_the_bright_object(write_coco: WriteCoco, name: str) -> None:
    json_path, image_dir = write_one_image_coco(write_coco, name)
    report = validate_coco(json_path, image_dir)
    assert not report.errors and not report.warnings, report.format()

    sample = CocoDataset(json_path, image_dir)[0]
    assert sample.image.shape == (3, HEIGHT, WIDTH) and sample.original_size == (HEIGHT, WIDTH)
    inside, outside = inside_and_outside(sample.image, sample.target.boxes[0])
    assert inside > 200 and outside < 45, (inside, outside)

    # Through the evaluation transform (a resize) too: image and box are scaled together.
    transform = build_test_transform(get_preset("tiny").input)
    resized = CocoDataset(json_path, image_dir, transform=transform)[0]
    assert resized.image.shape[1:] != (HEIGHT, WIDTH)
    inside, outside = inside_and_outside(resized.image, resized.target.boxes[0])
    assert inside > 200 and outside < 45, (inside, outside)
