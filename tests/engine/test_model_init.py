"""``prepare_model``: the starting weights' errors name the option that gave the file."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from sparsercnn.config import Config
from sparsercnn.engine.model_init import prepare_model
from sparsercnn.model import build_model
from tests.synthetic_coco import tiny_config


def _with_weights(cfg: Config, **weights: str) -> Config:
    return replace(cfg, train=replace(cfg.train, **weights))


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("init_from", "--init-from (train.init_from): checkpoint {path} does not exist"),
        ("backbone_weights", "--backbone-weights (train.backbone_weights): checkpoint {path} does"),
    ],
)
def test_a_missing_file_names_its_option(option: str, message: str, tmp_path: Path) -> None:
    cfg = tiny_config()
    missing = tmp_path / "missing.pth"
    with pytest.raises(FileNotFoundError) as raised:
        prepare_model(build_model(cfg), _with_weights(cfg, **{option: str(missing)}))
    assert str(raised.value).startswith(message.format(path=missing))


def test_a_folder_names_its_option(tmp_path: Path) -> None:
    cfg = tiny_config()
    with pytest.raises(IsADirectoryError, match=r"^--init-from \(train.init_from\): checkpoint "):
        prepare_model(build_model(cfg), _with_weights(cfg, init_from=str(tmp_path)))


def test_the_checkpoint_warnings_are_given_by_the_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The load that training does says what the conversion assumed (once: the recipe's read of
    the architecture leaves it to this one)."""
    cfg = tiny_config()
    cfg.model.num_classes = 2
    bare = tmp_path / "bare.pth"
    torch.save(build_model(cfg).state_dict(), bare)
    with caplog.at_level(logging.WARNING, logger="sparsercnn"):
        prepare_model(build_model(cfg), _with_weights(cfg, init_from=str(bare)))
    assert sum("classes that are not COCO's" in r.getMessage() for r in caplog.records) == 1
