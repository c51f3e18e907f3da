"""A small model and optimizer with state, and training checkpoints of them, for the tests of
checkpoint files and of resuming, and a count of the checkpoints whose records are summed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from sparsercnn.config import Config
from sparsercnn.data.categories import CategoryMap
from sparsercnn.engine import checkpoint as checkpoint_module
from sparsercnn.engine.checkpoint import save_training_checkpoint

CATEGORIES = CategoryMap([1, 2], ["cat", "dog"])


def model_and_optimizer() -> tuple[nn.Module, torch.optim.Optimizer]:
    """A seeded model with batch-norm statistics and an AdamW after one step (moments, step
    counts): every kind of state a checkpoint holds."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    model(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    return model, optimizer


def save_checkpoint(directory: Path, iteration: int, **kwargs: Any) -> Path:
    """A checkpoint of :func:`model_and_optimizer` at ``iteration`` with the default config;
    ``kwargs`` as :func:`~sparsercnn.engine.checkpoint.save_training_checkpoint` takes them."""
    model, optimizer = model_and_optimizer()
    return save_training_checkpoint(
        directory, iteration, model, optimizer, None, Config(), CATEGORIES, **kwargs
    )


def count_summed_checkpoints(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The checkpoint files whose records loading sums against their CRC-32 from now on
    (:func:`~sparsercnn.torch_archive.damaged_record`), one entry each time, in order."""
    real = checkpoint_module.damaged_record
    summed: list[Path] = []

    def counted(path: Path) -> str | None:
        summed.append(Path(path))
        return real(path)

    monkeypatch.setattr(checkpoint_module, "damaged_record", counted)
    return summed
