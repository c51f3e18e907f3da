"""The untrained tiny model file the tests share (:func:`write_tiny_model_file`)."""

from __future__ import annotations

from pathlib import Path

import torch

from sparsercnn.data.categories import CategoryMap
from sparsercnn.model import build_model
from sparsercnn.model_file import save_model_file
from sparsercnn.presets import get_preset


def write_tiny_model_file(path: Path, categories: CategoryMap | None = None) -> Path:
    """An untrained "tiny" model file with two classes, by default category ids 3 ("cat") and
    7 ("dog"); the same weights on every call."""
    cfg = get_preset("tiny")
    cfg.model.num_classes = 2
    torch.manual_seed(0)
    categories = categories or CategoryMap([3, 7], ["cat", "dog"])
    return save_model_file(path, build_model(cfg), cfg, categories)
