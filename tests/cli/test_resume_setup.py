"""How ``train`` sets up a resumed run: the run's own config.json is the config whatever
``--preset``, one of another model is refused, and what the resume refuses or changes is said
before the data's check."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from sparsercnn.cli.main import main
from sparsercnn.config import Config
from sparsercnn.data.categories import CategoryMap
from sparsercnn.engine import checkpoint as checkpoint_module
from sparsercnn.engine.checkpoint import save_training_checkpoint
from sparsercnn.presets import get_preset
from tests.damaged_archive import flip_a_byte_of_the_largest_record
from tests.synthetic_coco import SyntheticCoco


def _finished_run(run: Path) -> tuple[Config, Path]:
    """A tiny-preset run trained with ``--set train.max_iter=40 'train.steps=[30]'`` to its end:
    its config.json and its last checkpoint (a stand-in model: only its config is read first)."""
    cfg = get_preset("tiny").apply_overrides(["train.max_iter=40", "train.steps=[30]"])
    layer = torch.nn.Linear(1, 1)
    optimizer = torch.optim.AdamW(layer.parameters())
    checkpoint = save_training_checkpoint(
        run, 40, layer, optimizer, None, cfg, CategoryMap([1, 3], ["red", "green"])
    )
    (run / "config.json").write_text(cfg.to_json())
    return cfg, checkpoint


def _resume(tiny_coco: SyntheticCoco, run: Path, *extra: str) -> list[str]:
    files = ["--train-json", str(tiny_coco.json_path), "--train-images", str(tiny_coco.image_dir)]
    return ["train", *files, "--output-dir", str(run), "--resume", *extra]


def test_another_preset_than_the_runs_is_refused_naming_both(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    no_data_check: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Was: "checkpoint_0000040.pt is from a run with another model", naming neither the preset
    nor the run's config.json; a preset of the same model replaced the run's schedule."""
    cfg, _ = _finished_run(tmp_path / "run")
    assert main(_resume(tiny_coco, tmp_path / "run", "--preset", "small")) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert f"--resume: --preset small is another model than the run's in {tmp_path / 'run'} (" in (
        error
    )
    assert (
        f"{tmp_path / 'run' / 'config.json'} -> --preset small: model.backbone_width 8 -> 32"
        in (error)
    )
    assert "drop --preset small to resume it, or start a new run with --preset small" in error
    assert (tmp_path / "run" / "config.json").read_text() == cfg.to_json()


def test_the_runs_preset_resumes_with_the_runs_own_settings(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    handed: list[Config],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Was: ``--preset tiny --resume`` without the run's ``--set`` values trained the finished
    40-step run on to the preset's 3000 steps (a warning after the data's check)."""
    run = tmp_path / "run"
    cfg, checkpoint = _finished_run(run)
    argv = _resume(tiny_coco, run, "--preset", "tiny")
    with caplog.at_level(logging.INFO, logger="sparsercnn"):
        assert main(argv) == 1  # stopped at train_from_coco
    messages = [record.getMessage() for record in caplog.records]
    assert "not those of --preset tiny: train.max_iter 40 (not 3000)" in messages[0]
    assert (
        f"{checkpoint} is at iteration 40, the end of train.max_iter 40: nothing to train"
        in (messages[1])
    )
    assert not any(record.levelno >= logging.WARNING for record in caplog.records)
    assert handed == [cfg]


def test_resume_refusals_and_changes_come_before_the_data_check(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    no_data_check: None,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Was: a train.max_iter below the checkpoint's iteration, and a changed schedule or
    setting, were said only after every image was decoded."""
    run = tmp_path / "run"
    _, checkpoint = _finished_run(run)
    assert main(_resume(tiny_coco, run, "--set", "train.max_iter=20")) == 2
    assert f"error: {checkpoint} is at iteration 40, past train.max_iter 20" in (
        capsys.readouterr().err
    )
    with caplog.at_level(logging.INFO, logger="sparsercnn"):
        argv = _resume(tiny_coco, run, "--set", "train.max_iter=80", "train.log_period=5")
        assert main(argv) == 1
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0].startswith("schedule extended on resume at iteration 40: max_iter 40 -> 80")
    assert "train.log_period 10 -> 5; --set train.log_period=10 keeps the run's" in messages[1]
    assert "the data's check" in capsys.readouterr().err


def test_a_checkpoint_resumed_into_a_new_folder_brings_its_config(
    tiny_coco: SyntheticCoco, tmp_path: Path, handed: list[Config]
) -> None:
    """Was: with ``--preset auto`` (the default), "--resume: the run's config new/config.json is
    not a file"; with a fixed preset, the preset's schedule instead of the checkpoint's."""
    cfg, checkpoint = _finished_run(tmp_path / "run")
    for preset in ("auto", "tiny"):
        argv = _resume(tiny_coco, tmp_path / "new", str(checkpoint), "--preset", preset)
        assert main(argv) == 1  # stopped at train_from_coco
    assert handed == [cfg, cfg]


def test_a_resume_reads_the_runs_config_and_checkpoint_once(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    handed: list[Config],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run's config.json was read by the check before the data and again after it (and a
    checkpoint's config mapped a third time): the config the check read is the one trained."""
    run = tmp_path / "run"
    _, checkpoint = _finished_run(run)
    read: list[Path] = []
    load, look = Config.load, checkpoint_module._read_checkpoint

    def counted_load(path: Path, **kwargs: Any) -> Config:
        read.append(Path(path))
        return load(path, **kwargs)

    def counted_look(path: Path, **kwargs: Any) -> dict[str, Any]:
        read.append(path)
        return look(path, **kwargs)

    monkeypatch.setattr(Config, "load", counted_load)
    monkeypatch.setattr(checkpoint_module, "_read_checkpoint", counted_look)
    assert main(_resume(tiny_coco, run, "--set", "train.max_iter=80")) == 1
    assert sorted(read) == [checkpoint, run / "config.json"]
    assert handed[0].train.max_iter == 80
    # Into a new folder, the checkpoint holds the config. Was: looked at twice; now once.
    read.clear()
    assert main(_resume(tiny_coco, tmp_path / "new", str(checkpoint))) == 1
    assert read == [checkpoint]
    assert handed[1].train.max_iter == 40


def test_set_values_on_resume_are_checked_against_the_runs_config(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    no_data_check: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A run of tiny with 48 channels in 6 heads, resumed with its own ``--set
    model.num_heads=6``, was refused: the value fit none of auto's presets (nor tiny's 32
    channels with ``--preset tiny``), though the run trains with its config.json."""
    run = tmp_path / "run"
    widths = ["model.hidden_dim=48", "model.fpn_dim=48", "model.num_heads=6"]
    cfg = get_preset("tiny").apply_overrides(["train.max_iter=40", "train.steps=[30]", *widths])
    layer = torch.nn.Linear(1, 1)
    optimizer = torch.optim.AdamW(layer.parameters())
    save_training_checkpoint(
        run, 20, layer, optimizer, None, cfg, CategoryMap([1, 3], ["red", "green"])
    )
    (run / "config.json").write_text(cfg.to_json())
    assert main(_resume(tiny_coco, run, "--set", "model.num_heads=6")) == 1  # the data's check
    assert "the data's check" in capsys.readouterr().err
    assert main(_resume(tiny_coco, run, "--preset", "tiny", "--set", "model.num_heads=6")) == 2
    error = capsys.readouterr().err
    assert "--resume: --preset tiny is another model than the run's" in error
    assert "model.hidden_dim 48 -> 32" in error and "num_heads" not in error
    assert main(_resume(tiny_coco, run, "--set", "model.num_heads=5")) == 2
    error = capsys.readouterr().err
    assert "--set: model.hidden_dim (48) must be a multiple of model.num_heads (5)" in error
    assert f"(in the run's config, {run / 'config.json'})" in error


@pytest.mark.parametrize("named", [False, True])
def test_a_damaged_newest_checkpoint_is_skipped_before_the_data_check(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    no_data_check: None,
    caplog: pytest.LogCaptureFixture,
    named: bool,
) -> None:
    """Was: "schedule extended on resume at iteration 40" before the data's check, of a
    checkpoint damaged inside a tensor, which restoring then skipped to say another schedule at
    iteration 20. What is said first is of the checkpoint resumed. ``--resume RUN`` naming the
    run folder skips it as plain ``--resume`` does (was: refused, the folder turned into its
    newest file first)."""
    run = tmp_path / "run"
    cfg, newest = _finished_run(run)
    layer = torch.nn.Linear(1, 1)
    optimizer = torch.optim.AdamW(layer.parameters())
    categories = CategoryMap([1, 3], ["red", "green"])
    save_training_checkpoint(run, 20, layer, optimizer, None, cfg, categories)
    (run / "last_checkpoint").write_text(newest.name)
    flip_a_byte_of_the_largest_record(newest, tensor=True)
    with caplog.at_level(logging.INFO, logger="sparsercnn"):
        named_run = [str(run)] if named else []
        assert main(_resume(tiny_coco, run, *named_run, "--set", "train.max_iter=80")) == 1
    messages = [record.getMessage() for record in caplog.records]
    assert f"skipped damaged training checkpoint(s) in {run}: {newest.name} (record" in messages[0]
    assert messages[1] == "schedule extended on resume at iteration 20: max_iter 40 -> 80"
    assert not any("iteration 40" in message for message in messages)
