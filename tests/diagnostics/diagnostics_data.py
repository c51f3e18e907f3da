"""Test data of the diagnostics tests: a tiny COCO dataset and an untrained tiny model file.

The dataset (written by :func:`tests.synthetic_coco.write_coco`) has two classes (category ids 1
and 3), one image crowded with more objects than the model has proposals, and one object
covering most of an image, so that the untrained model, with grid proposals and damped box
regression, scores a non-zero AP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sparsercnn.config import Config
from sparsercnn.data.categories import CategoryMap
from sparsercnn.model import build_model
from sparsercnn.model_file import save_model_file
from sparsercnn.presets import get_preset
from tests.synthetic_coco import CATEGORIES, Box, SyntheticCoco, write_coco

NUM_PROPOSALS = 16
CROWDED_OBJECTS = 20  # > NUM_PROPOSALS: some ground truth cannot be matched


@dataclass(frozen=True)
class DiagnosticsData:
    coco: SyntheticCoco
    model_file: Path

    @property
    def json_path(self) -> Path:
        return self.coco.json_path

    @property
    def image_dir(self) -> Path:
        return self.coco.image_dir

    @property
    def objects_per_image(self) -> list[int]:
        return self.coco.objects_per_image


def object_layout(num_images: int = 5) -> list[list[Box]]:
    """The objects of every 96x128 image: image index 1 crowded (a 5 x 4 grid of small squares),
    index 2 one large object, the others two objects on cells of the 4 x 4 proposal grid (32 x 24
    pixels here), which the damped box regression of the test model barely moves: the untrained
    model finds them."""
    rng = np.random.default_rng(0)
    layout = []
    for index in range(num_images):
        if index == 1:
            squares = [(6 + 24 * (k % 5), 4 + 24 * (k // 5), 12, 12) for k in range(20)]
            layout.append([Box(1 + 2 * (k % 2), xywh) for k, xywh in enumerate(squares)])
        elif index == 2:
            layout.append([Box(3, (8, 6, 110, 80))])
        else:
            cells = rng.choice(16, size=2, replace=False).tolist()
            cell_boxes = [(32 * (k % 4), 24 * (k // 4), 32, 24) for k in cells]
            layout.append([Box(c, xywh) for c, xywh in zip((1, 3), cell_boxes, strict=True)])
    return layout


def tiny_config() -> Config:
    cfg = get_preset("tiny")
    cfg.model.num_classes = len(CATEGORIES)
    cfg.model.num_proposals = NUM_PROPOSALS
    cfg.model.proposal_init = "grid"
    return cfg


def write_diagnostics_data(root: Path) -> DiagnosticsData:
    """Write the dataset and the model file into ``root``."""
    coco = write_coco(root, boxes=object_layout())
    cfg = tiny_config()
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():  # small refinements: boxes stay near the grid proposals
        for stage in model.head.stages:
            stage.box_deltas.weight.mul_(0.05)
            stage.box_deltas.bias.zero_()
    categories = CategoryMap.from_coco(CATEGORIES)
    model_file = save_model_file(root / "model.safetensors", model, cfg, categories)
    return DiagnosticsData(coco, model_file)


def write_subset_json(data: DiagnosticsData, num_images: int, path: Path) -> Path:
    """A COCO JSON with the first ``num_images`` images of the dataset (fewer model passes)."""
    coco = data.coco.read_json()
    ids = {image["id"] for image in coco["images"][:num_images]}
    coco["images"] = [image for image in coco["images"] if image["id"] in ids]
    coco["annotations"] = [ann for ann in coco["annotations"] if ann["image_id"] in ids]
    path.write_text(json.dumps(coco))
    return path
