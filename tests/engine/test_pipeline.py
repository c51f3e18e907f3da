"""``train_from_coco``'s training data: decoded at the resolution the augmentation needs, kept in
memory within ``train.image_cache_mb``; evaluation data decoded in full. Its checks of the
arguments and the data, and the report of its validation set."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from sparsercnn.data.coco import CocoDataset
from sparsercnn.data.transforms import InferenceTransform, TrainTransform
from sparsercnn.engine import model_evaluation, pipeline
from sparsercnn.engine.run_lock import RunFolderInUseError
from sparsercnn.run_files import RUN_LOCK_FILE
from tests.lock_holder import lock_held_elsewhere
from tests.synthetic_coco import SyntheticCoco, tiny_config


def test_training_images_are_decoded_for_the_transform_and_cached(
    tiny_coco: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[CocoDataset] = []

    def recording_dataset(*args: Any, **kwargs: Any) -> CocoDataset:
        built.append(CocoDataset(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(pipeline, "CocoDataset", recording_dataset)
    monkeypatch.setattr(model_evaluation, "CocoDataset", recording_dataset)
    cfg = tiny_config()
    cfg.train.max_iter = 1
    cfg.train.image_cache_mb = 3
    pipeline.train_from_coco(
        cfg,
        train_json=tiny_coco.json_path,
        train_images=tiny_coco.image_dir,
        val_json=tiny_coco.json_path,
        val_images=tiny_coco.image_dir,
        output_dir=tmp_path / "run",
    )

    train_set, val_set = built
    assert isinstance(train_set.transform, TrainTransform)
    assert train_set.decode_size == train_set.transform.source_size
    assert train_set.image_cache.max_bytes == 3 * 2**20
    assert len(train_set.image_cache) == 1  # the one image of the one step
    # Evaluation decodes for the test resize, as predictors do, and caches nothing.
    assert isinstance(val_set.transform, InferenceTransform)
    assert val_set.decode_size == val_set.transform.source_size
    assert val_set.image_cache.max_bytes == 0
    # Only the evaluated set keeps the ground truth (the training set's was 55 MB for COCO
    # train2017, never read), the same as a dataset built on its own has.
    assert not train_set.keep_ground_truth and val_set.keep_ground_truth
    assert not [name for name in vars(train_set) if name.startswith("_gt_")]
    assert val_set.gt_dict() == CocoDataset(tiny_coco.json_path, tiny_coco.image_dir).gt_dict()


def test_a_multi_process_run_reports_its_last_evaluation_instead_of_evaluating_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """model_best's evaluation predates a resume: a single process evaluates its file again,
    but rank 0 of a multi-process run cannot (the evaluation gathers over every rank, which
    have finished): the report is then of model_final's evaluation, and names that file."""
    from types import SimpleNamespace

    def evaluate(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("rank 0 alone would wait for the other ranks")

    monkeypatch.setattr(pipeline, "evaluate", evaluate)
    final = SimpleNamespace()
    result = SimpleNamespace(
        best_evaluation=None,
        final_evaluation=final,
        model_best_path=tmp_path / "model_best.safetensors",
        model_final_path=tmp_path / "model_final.safetensors",
    )
    report = pipeline._training_evaluation_report(
        result,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        tiny_config(),
        "cpu",
        distributed=True,
    )
    assert report is not None and report.evaluation is final
    assert report.model_file == result.model_final_path


@pytest.mark.parametrize("given", ["val_json", "val_images"])
def test_half_a_validation_set_is_refused_before_anything_is_written(
    tiny_coco: SyntheticCoco, tmp_path: Path, given: str
) -> None:
    """A val_json without val_images (or the reverse) used to train without any evaluation."""
    validation = {"val_json": tiny_coco.json_path, "val_images": tiny_coco.image_dir}
    missing = "val_images" if given == "val_json" else "val_json"
    with pytest.raises(ValueError, match=f"{given} is given without {missing}: give both"):
        pipeline.train_from_coco(
            tiny_config(),
            train_json=tiny_coco.json_path,
            train_images=tiny_coco.image_dir,
            output_dir=tmp_path / "run",
            **{given: validation[given]},  # type: ignore[arg-type]
        )
    assert not (tmp_path / "run").exists()


def test_a_preset_name_for_cfg_says_how_to_make_a_config(
    tiny_coco: SyntheticCoco, tmp_path: Path
) -> None:
    """Was "AttributeError: 'str' object has no attribute 'input'"."""
    with pytest.raises(TypeError, match=r"cfg must be a Config \(get_preset\(name\) makes one"):
        pipeline.train_from_coco(
            "tiny",  # type: ignore[arg-type]
            train_json=tiny_coco.json_path,
            train_images=tiny_coco.image_dir,
            output_dir=tmp_path / "run",
        )
    assert not (tmp_path / "run").exists()


def test_a_validation_set_sharing_training_images_is_warned_about_before_training(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Started(Exception):
        pass

    def trainer(*args: Any, **kwargs: Any) -> None:
        raise Started

    monkeypatch.setattr(pipeline, "Trainer", trainer)
    with (
        caplog.at_level(logging.WARNING, logger="sparsercnn.engine.pipeline"),
        pytest.raises(Started),
    ):
        pipeline.train_from_coco(
            tiny_config(),
            train_json=tiny_coco.json_path,
            train_images=tiny_coco.image_dir,
            val_json=tiny_coco.json_path,
            val_images=tiny_coco.image_dir,
            output_dir=tmp_path / "run",
        )
    (line,) = [r.getMessage() for r in caplog.records if "validation set" in r.getMessage()]
    assert line.startswith(f"6 of the 6 images of the validation set {tiny_coco.json_path} are")


def test_a_run_parses_its_validation_json_and_prepares_its_ground_truth_once(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    coco_index_builds: list[int],
) -> None:
    """Every periodic evaluation parsed and checked the validation JSON again (``gt_dict``) and
    built a new COCO index of it, as did the final one and the report: one of each per run."""
    import json

    parsed: list[str] = []
    load = json.load

    def counted_load(file: Any, **kwargs: Any) -> Any:
        parsed.append(getattr(file, "name", ""))
        return load(file, **kwargs)

    monkeypatch.setattr(json, "load", counted_load)
    indexed = coco_index_builds
    cfg = tiny_config()
    cfg.train.max_iter = 3
    cfg.train.eval_period = 1
    result = pipeline.train_from_coco(
        cfg,
        train_json=tiny_coco.json_path,
        train_images=tiny_coco.image_dir,
        val_json=tiny_coco.json_path,
        val_images=tiny_coco.image_dir,
        output_dir=tmp_path / "run",
    )
    assert result.evaluation_report is not None
    # One parse for the training set, one for the validation set (the same file here).
    assert parsed.count(str(tiny_coco.json_path)) == 2
    assert len(indexed) == 1


def test_a_run_into_a_folder_another_run_holds_is_refused_before_its_data_is_read(
    tiny_coco: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: two ``train_from_coco`` into one folder (a notebook's and a background job's) both
    wrote its checkpoints, metrics.jsonl and model files. The folder given as a str is held
    too (was: AttributeError on ``str.resolve``)."""

    def not_reached(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the data was read")

    monkeypatch.setattr(pipeline, "CocoDataset", not_reached)
    run = tmp_path / "run"
    run.mkdir()
    with (
        lock_held_elsewhere(run / RUN_LOCK_FILE) as other,
        pytest.raises(
            RunFolderInUseError, match=f"in use by another training run \\(process {other.pid}"
        ),
    ):
        pipeline.train_from_coco(
            tiny_config(),
            train_json=tiny_coco.json_path,
            train_images=tiny_coco.image_dir,
            output_dir=str(run),
        )


def test_a_resume_of_a_folder_that_does_not_exist_makes_none(
    tiny_coco: SyntheticCoco, tmp_path: Path
) -> None:
    """Was: the run-folder lock made the folder (a typo's) before the resume was refused,
    leaving it empty."""
    run = tmp_path / "typo"
    with pytest.raises(FileNotFoundError):
        pipeline.train_from_coco(
            tiny_config(),
            train_json=tiny_coco.json_path,
            train_images=tiny_coco.image_dir,
            output_dir=run,
            resume=True,
        )
    assert not run.exists()


def test_a_new_run_is_told_once_what_of_its_schedule_it_never_reaches(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """tiny's decays (2400, 2800) and 50 warm-up steps with a max_iter of 1: was said by the
    CLI alone, so that a Python caller's new run was told nothing. Said before the data are
    read, and once in a run."""
    cfg = tiny_config()
    cfg.train.max_iter = 1
    notes = [
        "train.steps [2400, 2800] are not before train.max_iter=1: the learning rate does not "
        "decay there; set train.steps to change that",
        "train.warmup_iters=50 is more than train.max_iter=1: the learning rate never reaches "
        "train.lr",
    ]
    data = {"train_json": tiny_coco.json_path, "train_images": tiny_coco.image_dir}

    def not_read(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the data's check")

    with monkeypatch.context() as stopped, caplog.at_level(logging.WARNING, logger="sparsercnn"):
        stopped.setattr(pipeline, "CocoDataset", not_read)
        with pytest.raises(RuntimeError, match="the data's check"):
            pipeline.train_from_coco(cfg, **data, output_dir=tmp_path / "stopped")
    assert [r.getMessage() for r in caplog.records] == notes
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sparsercnn"):
        pipeline.train_from_coco(cfg, **data, output_dir=tmp_path / "run")
    assert [r.getMessage() for r in caplog.records if r.getMessage() in notes] == notes
