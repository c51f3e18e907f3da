"""Synthetic COCO-format data sets for the tests: dark noise images with filled rectangles, one
colour per category so that a model can learn them, and their instances JSON.

:func:`write_coco` is the one writer of such data; ``tests/conftest.py`` wraps it in the
``write_coco`` and ``tiny_coco`` fixtures. Tests that need broken data write a valid data set and
then damage a file (:func:`truncate`) or edit the JSON (:meth:`SyntheticCoco.read_json`,
:meth:`SyntheticCoco.write_json`). A plain module: subprocesses import it as
``tests.synthetic_coco`` when started from the repository root with ``python -m``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sparsercnn.config import Config
from sparsercnn.presets import get_preset

# Non-contiguous ids, as in COCO: category id 3 is the second class (label 1).
CATEGORIES: list[dict[str, Any]] = [{"id": 1, "name": "red"}, {"id": 3, "name": "green"}]
# The fill of each category, by its position in the category list.
COLOURS = [(210, 40, 40), (40, 210, 40), (40, 40, 210), (210, 210, 40), (210, 40, 210)]
NOISE_MAX = 60  # background pixels are uniform in [0, NOISE_MAX): the rectangles stand out

Size = tuple[int, int]  # (height, width) in pixels


@dataclass(frozen=True)
class Box:
    """One annotation: a category id of the data set and a box in COCO ``[x, y, w, h]`` pixels."""

    category_id: int
    xywh: tuple[float, float, float, float]
    iscrowd: bool = False


@dataclass(frozen=True)
class SyntheticCoco:
    """A written data set: ``json_path`` names images relative to ``image_dir``.

    Per-image lists follow the order of the JSON's ``images``; ``boxes`` include crowd regions.
    """

    json_path: Path
    image_dir: Path
    image_ids: list[int]
    file_names: list[str]
    sizes: list[Size]
    boxes: list[list[Box]]
    categories: list[dict[str, Any]]

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    @property
    def objects_per_image(self) -> list[int]:
        """Number of non-crowd boxes (training targets) of every image."""
        return [sum(not box.iscrowd for box in boxes) for boxes in self.boxes]

    @property
    def image_paths(self) -> list[Path]:
        return [self.image_dir / name for name in self.file_names]

    def read_json(self) -> dict[str, Any]:
        return dict(json.loads(self.json_path.read_text()))

    def write_json(self, coco: dict[str, Any]) -> None:
        """Replace the JSON (e.g. with deliberate defects); the image files stay as written."""
        self.json_path.write_text(json.dumps(coco))


# The ``write_coco`` fixture: :func:`write_coco` with a fresh folder under the test's tmp_path.
WriteCoco = Callable[..., SyntheticCoco]


def write_coco(
    root: Path,
    *,
    num_images: int | None = None,
    size: Size | list[Size] = (96, 128),
    categories: Sequence[dict[str, Any]] = CATEGORIES,
    boxes: Sequence[Sequence[Box]] | None = None,
    objects_per_image: int | None = None,
    file_names: Sequence[str] | None = None,
    file_format: str = "png",
    image_ids: Sequence[int] | None = None,
    seed: int = 0,
) -> SyntheticCoco:
    """Write images into ``root/images`` and their COCO JSON as ``root/instances.json``.

    Args:
        root: folder to write into (created if needed).
        num_images: defaults to the length of the per-image lists given, else 6.
        size: ``(height, width)`` of every image, or a list with one per image.
        categories: COCO ``{"id", "name"}`` entries; their order sets the colours.
        boxes: the annotations of every image (an empty list: an image without boxes). When
            None, each image gets ``objects_per_image`` random boxes (default: one per
            category, categories in turn), 16 to 39 pixels a side where the image allows.
        file_names: relative paths (subfolders are created; the suffix sets the format);
            default ``000.png``, ``001.png``... with ``file_format`` (``png`` or ``jpg``).
        image_ids: default 1, 2, ...; annotation ids are always 1, 2, ... in image order.
        seed: seeds the noise and the random boxes.

    Returns:
        What was written, per image in JSON order.
    """
    per_image = {"boxes": boxes, "file_names": file_names, "image_ids": image_ids}
    if isinstance(size, list):
        per_image["size"] = size
    lengths = {name: len(value) for name, value in per_image.items() if value is not None}
    num_images = num_images if num_images is not None else next(iter(lengths.values()), 6)
    wrong = {name: n for name, n in lengths.items() if n != num_images}
    if wrong:
        raise ValueError(f"{num_images} images but per-image lists of other lengths: {wrong}")
    sizes = list(size) if isinstance(size, list) else [size] * num_images
    names = list(file_names or [f"{index:03d}.{file_format}" for index in range(num_images)])
    ids = list(image_ids or range(1, num_images + 1))
    colours = {c["id"]: COLOURS[k % len(COLOURS)] for k, c in enumerate(categories)}

    image_dir = root / "images"
    rng = np.random.default_rng(seed)
    all_boxes: list[list[Box]] = []
    for index, (height, width) in enumerate(sizes):
        pixels = rng.integers(0, NOISE_MAX, (height, width, 3), dtype=np.uint8)
        if boxes is not None:
            image_boxes = list(boxes[index])
        else:
            count = len(categories) if objects_per_image is None else objects_per_image
            ids_in_turn = [categories[k % len(categories)]["id"] for k in range(count)]
            image_boxes = [_random_box(c, height, width, rng) for c in ids_in_turn]
        for box in image_boxes:
            _fill(pixels, box.xywh, colours[box.category_id])
        path = image_dir / names[index]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, **({"quality": 95} if _is_jpeg(path) else {}))
        all_boxes.append(image_boxes)

    data = SyntheticCoco(
        json_path=root / "instances.json",
        image_dir=image_dir,
        image_ids=ids,
        file_names=names,
        sizes=sizes,
        boxes=all_boxes,
        categories=[dict(category) for category in categories],
    )
    data.write_json(_coco_dict(data))
    return data


def _random_box(category_id: int, height: int, width: int, rng: np.random.Generator) -> Box:
    largest = min(40, height, width)
    w, h = (int(v) for v in rng.integers(min(16, largest // 2), largest, 2))
    x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
    return Box(category_id, (x, y, w, h))


def _fill(pixels: np.ndarray, xywh: tuple[float, ...], colour: tuple[int, int, int]) -> None:
    """Paint the pixels the box covers (clipped to the image; nothing for an empty box)."""
    x, y, w, h = xywh
    x1, y1 = max(math.floor(x), 0), max(math.floor(y), 0)
    pixels[y1 : max(math.ceil(y + h), y1), x1 : max(math.ceil(x + w), x1)] = colour


def _is_jpeg(path: Path) -> bool:
    return path.suffix.lower() in (".jpg", ".jpeg")


def _coco_dict(data: SyntheticCoco) -> dict[str, Any]:
    images = [
        {"id": image_id, "file_name": name, "height": height, "width": width}
        for image_id, name, (height, width) in zip(
            data.image_ids, data.file_names, data.sizes, strict=True
        )
    ]
    annotations = []
    for image_id, boxes in zip(data.image_ids, data.boxes, strict=True):
        for box in boxes:
            annotation = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": box.category_id,
                "bbox": list(box.xywh),
                "area": box.xywh[2] * box.xywh[3],
                "iscrowd": int(box.iscrowd),
            }
            annotations.append(annotation)
    return {"images": images, "annotations": annotations, "categories": data.categories}


def truncate(path: Path) -> None:
    """Keep the first third of a file's bytes: an image header still reads, its pixels do not."""
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 3])


def tiny_config() -> Config:
    """The "tiny" preset for :data:`CATEGORIES`: quick logging, no periodic work, 3 steps."""
    cfg = get_preset("tiny")
    cfg.model.num_classes = len(CATEGORIES)
    cfg.train.batch_size = 1
    cfg.train.num_workers = 0
    cfg.train.max_iter = 3
    cfg.train.log_period = 1
    cfg.train.checkpoint_period = 1000
    cfg.train.eval_period = 0
    return cfg
