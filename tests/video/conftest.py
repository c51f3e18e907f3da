"""A short test clip shared by the video tests (PyAV, the ``video`` extra, is needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sparsercnn.data.categories import CategoryMap
from sparsercnn.model import build_model
from sparsercnn.model_file import save_model_file
from sparsercnn.presets import get_preset
from tests.video.clips import write_clip

pytest.importorskip("av")


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """24 frames of 64x96 at 12 fps (2 s): see :mod:`tests.video.clips`."""
    return write_clip(tmp_path / "clip.mp4")


@pytest.fixture
def unclipped_model_file(tmp_path: Path) -> Path:
    """The untrained tiny model of ``model_file`` without box clipping: it keeps all its top
    detections on every frame, where clipping empties a varying number of an untrained model's
    boxes."""
    cfg = get_preset("tiny")
    cfg.model.num_classes = 2
    cfg.model.clip_boxes = False
    torch.manual_seed(0)
    categories = CategoryMap([3, 7], ["cat", "dog"])
    return save_model_file(tmp_path / "unclipped.safetensors", build_model(cfg), cfg, categories)
