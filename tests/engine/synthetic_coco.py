"""Test data of the engine tests: a tiny COCO-format data set written to a temp folder and the
"tiny" preset adapted to it (seconds-scale training on a CPU). A plain module with a distinct
name, importable by the test files and by the subprocesses of the distributed test."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sparsercnn.config import Config
from sparsercnn.presets import get_preset

CATEGORIES: list[dict[str, Any]] = [{"id": 1, "name": "red"}, {"id": 3, "name": "green"}]
_COLOURS = {1: (210, 40, 40), 3: (40, 210, 40)}


@dataclass(frozen=True)
class TinyCoco:
    json_path: Path
    image_dir: Path
    num_images: int


def write_tiny_coco(root: Path, num_images: int = 6, seed: int = 0) -> TinyCoco:
    """``num_images`` noisy 96x128 PNGs with two filled rectangles each, as a COCO JSON."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for index in range(num_images):
        height, width = 96, 128
        pixels = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
        for category in CATEGORIES:
            w, h = (int(v) for v in rng.integers(16, 40, 2))
            x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            pixels[y : y + h, x : x + w] = _COLOURS[category["id"]]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": category["id"],
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
        Image.fromarray(pixels).save(root / f"{index:03d}.png")
        images.append(
            {"id": index + 1, "file_name": f"{index:03d}.png", "height": height, "width": width}
        )
    json_path = root / "instances.json"
    data = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    json_path.write_text(json.dumps(data))
    return TinyCoco(json_path=json_path, image_dir=root, num_images=num_images)


def tiny_config() -> Config:
    """The "tiny" preset for the tiny data set: 2 classes, quick logging, no periodic work."""
    cfg = get_preset("tiny")
    cfg.model.num_classes = len(CATEGORIES)
    cfg.train.batch_size = 1
    cfg.train.num_workers = 0
    cfg.train.max_iter = 3
    cfg.train.log_period = 1
    cfg.train.checkpoint_period = 1000
    cfg.train.eval_period = 0
    return cfg
