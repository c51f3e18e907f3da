"""Fixtures of the CLI tests that stop ``train`` before it trains."""

from __future__ import annotations

from typing import Any

import pytest

from sparsercnn.cli import train as train_command
from sparsercnn.config import Config
from sparsercnn.engine import pipeline


@pytest.fixture
def no_data_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stop ``train`` at the data's check: what comes before it is what the tests look at."""

    def stop(*args: Any) -> None:
        raise RuntimeError("the data's check")

    monkeypatch.setattr(train_command, "check_training_data", stop)


@pytest.fixture
def handed(monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    """The configs ``train`` hands ``train_from_coco`` (which is not run, nor the data's check:
    ``train`` then stops with exit status 1)."""
    seen: list[Config] = []
    monkeypatch.setattr(train_command, "check_training_data", lambda *args: None)

    def record(cfg: Config, **kwargs: Any) -> None:
        seen.append(cfg)
        raise RuntimeError("train_from_coco")

    monkeypatch.setattr(pipeline, "train_from_coco", record)
    return seen
