"""A small model and optimizer with state, and training checkpoints of them, for the tests of
checkpoint files and of resuming."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparsercnn.config import Config
from sparsercnn.data.categories import CategoryMap
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
