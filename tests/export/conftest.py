"""Fixtures of the export tests: an untrained tiny model whose label map is the synthetic data
set's (:func:`tests.synthetic_coco.write_coco`: red id 1, green id 3), so that its exports can
be evaluated on that set."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sparsercnn import build_model, get_preset
from sparsercnn.data.categories import CategoryMap
from sparsercnn.model_file import save_model_file


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with the synthetic set's categories, written once per test module."""
    torch.manual_seed(0)
    config = get_preset("tiny")
    config.model.num_classes = 2
    categories = CategoryMap([1, 3], ["red", "green"])
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    return save_model_file(path, build_model(config), config, categories)
