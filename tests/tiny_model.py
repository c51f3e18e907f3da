"""The untrained tiny model file the tests share (:func:`write_tiny_model_file`), and a copy
with an int8 calibration (:func:`write_int8_calibrated_copy`)."""

from __future__ import annotations

from pathlib import Path

import torch

from sparsercnn.data.categories import CategoryMap
from sparsercnn.model import build_model
from sparsercnn.model.int8_features import calibrate
from sparsercnn.model_file import load_model_file, save_model_file
from sparsercnn.presets import get_preset


def write_tiny_model_file(path: Path, categories: CategoryMap | None = None) -> Path:
    """An untrained "tiny" model file with two classes, by default category ids 3 ("cat") and
    7 ("dog"); the same weights on every call."""
    cfg = get_preset("tiny")
    cfg.model.num_classes = 2
    torch.manual_seed(0)
    categories = categories or CategoryMap([3, 7], ["cat", "dog"])
    return save_model_file(path, build_model(cfg), cfg, categories)


def write_int8_calibrated_copy(model_file: Path, path: Path) -> Path:
    """``model_file`` with an int8 calibration on one random 64x96 image, as ``export --int8``
    writes it to a ``.safetensors`` output (the same weights)."""
    loaded = load_model_file(model_file)
    model = loaded.model.eval()
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8)
    with torch.no_grad():
        calibration = calibrate(model.backbone, model.fpn, [model.preprocess([image]).tensor])
    return save_model_file(
        path, model, loaded.config, loaded.categories, int8_calibration=calibration
    )
