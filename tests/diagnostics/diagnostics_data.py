"""Test data of the diagnostics tests: a tiny COCO dataset and an untrained tiny model file.

The dataset has two classes (category ids 1 and 3), one image crowded with more objects than
the model has proposals, and one object covering most of an image, so that the untrained
model, with grid proposals and damped box regression, scores a non-zero AP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from sparsercnn.config import Config
from sparsercnn.data.categories import CategoryMap
from sparsercnn.model import build_model
from sparsercnn.model_file import save_model_file
from sparsercnn.presets import get_preset

CATEGORIES: list[dict[str, Any]] = [{"id": 1, "name": "red"}, {"id": 3, "name": "green"}]
COLOURS = {1: (210, 40, 40), 3: (40, 210, 40)}
NUM_PROPOSALS = 16
CROWDED_OBJECTS = 20  # > NUM_PROPOSALS: some ground truth cannot be matched


@dataclass(frozen=True)
class DiagnosticsData:
    json_path: Path
    image_dir: Path
    model_file: Path
    config: Config
    objects_per_image: list[int]


def _boxes(index: int, rng: np.random.Generator) -> list[tuple[int, list[int]]]:
    """``(category id, [x, y, w, h])`` of every object of image ``index`` (96x128 pixels)."""
    if index == 1:  # crowded: a 5 x 4 grid of small squares
        return [(1 + 2 * (k % 2), [6 + 24 * (k % 5), 4 + 24 * (k // 5), 12, 12]) for k in range(20)]
    if index == 2:  # one large object
        return [(3, [8, 6, 110, 80])]
    # Objects on cells of the 4 x 4 proposal grid (32 x 24 pixels here), which the damped box
    # regression of the test model barely moves: the untrained model finds them.
    cells = rng.choice(16, size=2, replace=False).tolist()
    return [(c, [32 * (k % 4), 24 * (k // 4), 32, 24]) for c, k in zip((1, 3), cells, strict=True)]


def write_dataset(root: Path, num_images: int = 5) -> tuple[Path, list[int]]:
    rng = np.random.default_rng(0)
    images, annotations, counts = [], [], []
    for index in range(num_images):
        pixels = rng.integers(0, 60, (96, 128, 3), dtype=np.uint8)
        objects = _boxes(index, rng)
        for category, (x, y, w, h) in objects:
            pixels[y : y + h, x : x + w] = COLOURS[category]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": category,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
        counts.append(len(objects))
        Image.fromarray(pixels).save(root / f"{index:03d}.png")
        images.append(
            {"id": index + 1, "file_name": f"{index:03d}.png", "height": 96, "width": 128}
        )
    json_path = root / "instances.json"
    data = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    json_path.write_text(json.dumps(data))
    return json_path, counts


def tiny_config() -> Config:
    cfg = get_preset("tiny")
    cfg.model.num_classes = len(CATEGORIES)
    cfg.model.num_proposals = NUM_PROPOSALS
    cfg.model.proposal_init = "grid"
    return cfg


def write_diagnostics_data(root: Path) -> DiagnosticsData:
    """Write the dataset and the model file into ``root``."""
    json_path, counts = write_dataset(root)
    cfg = tiny_config()
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():  # small refinements: boxes stay near the grid proposals
        for stage in model.head.stages:
            stage.box_deltas.weight.mul_(0.05)
            stage.box_deltas.bias.zero_()
    categories = CategoryMap.from_coco(CATEGORIES)
    model_file = save_model_file(root / "model.safetensors", model, cfg, categories)
    return DiagnosticsData(json_path, root, model_file, cfg, counts)


def write_subset_json(data: DiagnosticsData, num_images: int, path: Path) -> Path:
    """A COCO JSON with the first ``num_images`` images of the dataset (fewer model passes)."""
    coco = json.loads(data.json_path.read_text())
    ids = {image["id"] for image in coco["images"][:num_images]}
    coco["images"] = [image for image in coco["images"] if image["id"] in ids]
    coco["annotations"] = [ann for ann in coco["annotations"] if ann["image_id"] in ids]
    path.write_text(json.dumps(coco))
    return path
