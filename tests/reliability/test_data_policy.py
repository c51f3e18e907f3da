"""One data policy, tried as a user would through ``sparsercnn validate`` and ``train``: what
``validate`` calls an error, ``train`` refuses before its first step (or drops up front with
``--skip-invalid``), and no image is ever swapped for another silently."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from sparsercnn.cli.main import main
from sparsercnn.data.categories import CategoryMap
from sparsercnn.engine import model_evaluation, pipeline
from sparsercnn.model import build_model
from sparsercnn.model_file import save_model_file
from sparsercnn.presets import get_preset
from tests.synthetic_coco import WriteCoco, truncate

NUM_IMAGES = 6


def write_jpegs(write_coco: WriteCoco, *, with_boxes: bool = True) -> tuple[Path, Path]:
    """Six 96x128 JPEGs ``000.jpg``... with a red box each (or none), and their COCO JSON."""
    data = write_coco(
        num_images=NUM_IMAGES,
        file_format="jpg",
        categories=[{"id": 1, "name": "red"}],
        objects_per_image=1 if with_boxes else 0,
    )
    return data.json_path, data.image_dir


def spoil(path: Path, how: str) -> None:
    if how == "truncated":
        truncate(path)
    elif how == "empty":
        path.write_bytes(b"")
    else:
        path.write_text("a text file named .jpg")


def validate(json_path: Path, image_dir: Path) -> int:
    return main(["validate", "--json", str(json_path), "--images", str(image_dir)])


def train(json_path: Path, image_dir: Path, output_dir: Path, *extra: str) -> int:
    return main(
        [
            "train",
            "--train-json",
            str(json_path),
            "--train-images",
            str(image_dir),
            "--output-dir",
            str(output_dir),
            "--preset",
            "tiny",
            "--device",
            "cpu",
            *extra,
            "--set",
            "train.max_iter=3",
            "train.batch_size=2",
            "train.log_period=1",
            "train.checkpoint_period=1000",
        ]
    )


def training_records(output_dir: Path) -> list[dict[str, Any]]:
    lines = (output_dir / "metrics.jsonl").read_text().splitlines()
    return [record for record in map(json.loads, lines) if "loss" in record]


@pytest.fixture
def no_trainer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if training gets as far as building the trainer (model, first step)."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the trainer was built: the data should have been refused first")

    monkeypatch.setattr(pipeline, "Trainer", refuse)


def test_validate_reports_a_truncated_jpeg(
    write_coco: WriteCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    json_path, image_dir = write_jpegs(write_coco)
    spoil(image_dir / "003.jpg", "truncated")
    assert validate(json_path, image_dir) == 2
    out = capsys.readouterr().out
    assert "[image_file_unreadable]" in out and "003.jpg" in out and "truncated" in out
    assert "FAILED" in out and "--skip-invalid" in out


@pytest.mark.parametrize("how", ["truncated", "empty", "text"])
def test_train_refuses_what_validate_calls_an_error(
    write_coco: WriteCoco,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_trainer: None,
    how: str,
) -> None:
    json_path, image_dir = write_jpegs(write_coco)
    spoil(image_dir / "001.jpg", how)
    spoil(image_dir / "004.jpg", how)
    assert validate(json_path, image_dir) == 2
    assert train(json_path, image_dir, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert err.startswith("sparsercnn train: error: ")
    assert "bad files (2): 001.jpg, 004.jpg" in err
    assert "--skip-invalid" in err and "skip_invalid=True in Python" in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_skip_invalid_drops_bad_images_up_front_and_trains(
    write_coco: WriteCoco, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    json_path, image_dir = write_jpegs(write_coco)
    spoil(image_dir / "002.jpg", "truncated")
    with caplog.at_level(logging.INFO):
        assert train(json_path, image_dir, tmp_path / "run", "--skip-invalid") == 0
    (summary,) = [r.message for r in caplog.records if "--skip-invalid dropped" in r.message]
    assert "dropped 1 of 6 images and 1 of 6 annotations" in summary and "002.jpg" in summary
    assert not [r for r in caplog.records if "replacing image" in r.message]
    records = training_records(tmp_path / "run")
    assert [r["iter"] for r in records] == [1, 2, 3]
    assert sum(r["skipped_images"] for r in records) == 0


def test_zero_annotations_is_an_error_before_training(
    write_coco: WriteCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_trainer: None
) -> None:
    json_path, image_dir = write_jpegs(write_coco, with_boxes=False)
    assert validate(json_path, image_dir) == 2
    assert "[no_boxes]" in capsys.readouterr().out
    for extra in ((), ("--skip-invalid",)):
        assert train(json_path, image_dir, tmp_path / "run", *extra) == 2
        err = capsys.readouterr().err
        assert "no usable box" in err and "nothing to learn" in err


def test_eval_refuses_unreadable_images_before_running_the_model(
    write_coco: WriteCoco,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    json_path, image_dir = write_jpegs(write_coco)
    spoil(image_dir / "002.jpg", "truncated")
    cfg = get_preset("tiny")
    cfg.model.num_classes = 1
    model_path = save_model_file(
        tmp_path / "model.safetensors", build_model(cfg), cfg, CategoryMap([1], ["red"])
    )

    def run_model(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model ran: the data should have been refused first")

    monkeypatch.setattr(model_evaluation, "evaluate", run_model)
    args = ["--json", str(json_path), "--images", str(image_dir), "--workers", "0"]
    assert main(["eval", "--model", str(model_path), *args]) == 2
    err = capsys.readouterr().err
    assert "bad files (1): 002.jpg" in err


def spoil_after_the_check(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Break ``path`` once the datasets are built, just before the trainer is."""
    real_trainer = pipeline.Trainer

    def trainer_after_spoiling(*args: Any, **kwargs: Any) -> Any:
        spoil(path, "text")
        return real_trainer(*args, **kwargs)

    monkeypatch.setattr(pipeline, "Trainer", trainer_after_spoiling)


def test_image_failing_mid_run_stops_training_with_the_file_named(
    write_coco: WriteCoco,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    json_path, image_dir = write_jpegs(write_coco)
    spoil_after_the_check(monkeypatch, image_dir / "005.jpg")
    # 3 steps of 2 images: the first epoch, every image once.
    assert train(json_path, image_dir, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert "image 6 ('005.jpg')" in err and "changed on disk" in err and "--skip-invalid" in err


def test_image_failing_mid_run_with_skip_invalid_is_replaced_and_counted(
    write_coco: WriteCoco,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    json_path, image_dir = write_jpegs(write_coco)
    spoil_after_the_check(monkeypatch, image_dir / "005.jpg")
    # A data-loading worker process: the count must travel with the batches.
    workers = ("--set", "train.num_workers=1")
    with caplog.at_level(logging.INFO):
        assert train(json_path, image_dir, tmp_path / "run", "--skip-invalid", *workers) == 0
    assert not [r for r in caplog.records if "--skip-invalid dropped" in r.message]
    records = training_records(tmp_path / "run")
    assert [r["iter"] for r in records] == [1, 2, 3]
    assert sum(r["skipped_images"] for r in records) == 1


def test_eval_skip_invalid_scores_what_training_evaluated(
    write_coco: WriteCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A validation set that ``train --skip-invalid`` evaluated (a bad image left out) is refused
    by ``eval`` as it stands, and ``eval --skip-invalid`` reproduces the run's last evaluation,
    saying what it left out, in its output and in the metrics file."""
    json_path, image_dir = write_jpegs(write_coco)
    spoil(image_dir / "002.jpg", "truncated")
    run = tmp_path / "run"
    val = ("--val-json", str(json_path), "--val-images", str(image_dir))
    assert train(json_path, image_dir, run, "--skip-invalid", *val) == 0
    (last,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1:]
    args = ["eval", "--model", str(run / "model_final.safetensors"), "--workers", "0"]
    args += ["--json", str(json_path), "--images", str(image_dir)]
    capsys.readouterr()
    assert main(args) == 2
    assert "bad files (1): 002.jpg" in capsys.readouterr().err

    metrics_path, results_path = tmp_path / "metrics.json", tmp_path / "results.json"
    args += ["--skip-invalid", "--output", str(metrics_path), "--results", str(results_path)]
    assert main(args) == 0
    assert "--skip-invalid left out 1 image and 1 annotation of the file" in capsys.readouterr().out
    metrics = json.loads(metrics_path.read_text())
    assert metrics["num_images"] == NUM_IMAGES - 1
    assert metrics["dropped_invalid"] == {"images": 1, "annotations": 1}
    for key in ("AP", "AP50", "AP75", "APs", "APm", "APl", "per_class"):
        assert metrics[key] == pytest.approx(last["eval"][key], abs=1e-9)
    assert 3 not in {result["image_id"] for result in json.loads(results_path.read_text())}
    # The diagnoses share the flag: they read the same kept set.
    reads = ["diagnose", "reads", *args[1:9], "--output-dir", str(tmp_path / "reads")]
    assert main(reads) == 2
    assert main([*reads, "--skip-invalid"]) == 0
    saved = json.loads((tmp_path / "reads" / "feature_reads.json").read_text())
    assert saved["num_images"] == NUM_IMAGES - 1
