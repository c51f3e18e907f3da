"""Loading a model file together with the COCO dataset it is diagnosed on.

Shared first step of the ``*_of_model_file`` functions of :mod:`sparsercnn.diagnostics`: the
model in eval mode on the requested device, and the dataset with the model's test transform
(what evaluation sees), its label map checked against the model's.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from sparsercnn.data.coco import CocoDataset
from sparsercnn.data.transforms import build_test_transform
from sparsercnn.engine.pipeline import check_same_categories
from sparsercnn.model_file import LoadedModel, load_model_file


def load_model_and_dataset(
    model_file: str | Path,
    json_path: str | Path,
    image_dir: str | Path,
    device: torch.device | str = "cpu",
) -> tuple[LoadedModel, CocoDataset]:
    """The model of ``model_file`` (eval mode, on ``device``) and the dataset, test transform.

    Raises:
        ValueError: the dataset's categories differ from the model's label map.
    """
    loaded = load_model_file(model_file, device=device)
    loaded.model.eval()
    dataset = CocoDataset(
        json_path,
        image_dir,
        transform=build_test_transform(loaded.config.input),
    )
    check_same_categories(loaded.categories, dataset.category_map, str(json_path))
    return loaded, dataset


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")
