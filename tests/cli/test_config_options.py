"""What ``train``'s config options say before the data's check: a ``--config`` is read once,
and the config it resolves is the one trained."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparsercnn.cli import config_options
from sparsercnn.cli.main import main
from sparsercnn.config import Config
from sparsercnn.presets import get_preset
from tests.synthetic_coco import SyntheticCoco


def test_a_config_file_is_read_once_for_the_whole_setup(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    handed: list[Config],
) -> None:
    """``--config`` was loaded and the ``--set`` overrides applied three times before the
    data's check (by the options' check, by the schedule notes and by the starting weights),
    and again after it: ``training_config`` resolved the file anew instead of taking the config
    the options' check returned."""
    config_file = tmp_path / "config.json"
    config_file.write_text(get_preset("tiny").to_json())
    reads: list[Path] = []
    load = config_options.load_config_file

    def counted(path: Path, what: str, *, of_run: bool = False) -> Config:
        reads.append(path)
        return load(path, what, of_run=of_run)

    monkeypatch.setattr(config_options, "load_config_file", counted)
    files = ["--train-json", str(tiny_coco.json_path), "--train-images", str(tiny_coco.image_dir)]
    argv = ["train", *files, "--output-dir", str(tmp_path / "run"), "--config", str(config_file)]
    assert main([*argv, "--set", "train.max_iter=30"]) == 1  # stopped at train_from_coco
    assert reads == [config_file]
    assert handed == [get_preset("tiny").apply_overrides(["train.max_iter=30"])]


@pytest.mark.parametrize("preset", ["tiny", "auto"])
def test_a_num_classes_other_than_the_data_s_is_refused_before_its_check(
    preset: str,
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    no_data_check: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--set model.num_classes=3`` on a data set of 2 categories was listed by the recipe as
    what the run trains with, then set back to 2 by an INFO line: silently overruled. It is
    refused before the data's check; the data's own count is accepted."""
    files = ["--train-json", str(tiny_coco.json_path), "--train-images", str(tiny_coco.image_dir)]
    argv = ["train", *files, "--output-dir", str(tmp_path / "run"), "--preset", preset]
    assert main([*argv, "--set", "model.num_classes=3"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"--set model.num_classes=3: --train-json {tiny_coco.json_path} has 2 categories" in line
    assert "give a JSON of those categories and their annotations only" in line
    assert not (tmp_path / "run").exists()
    assert main([*argv, "--set", "model.num_classes=2"]) == 1  # stopped at the data's check
    assert "the data's check" in capsys.readouterr().err
