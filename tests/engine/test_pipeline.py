"""``train_from_coco``'s training data: decoded at the resolution the augmentation needs, kept in
memory within ``train.image_cache_mb``; evaluation data decoded in full. ``evaluate_model_file``'s
report and files."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.coco import CocoDataset
from sparsercnn.data.transforms import InferenceTransform, TrainTransform
from sparsercnn.engine import pipeline
from tests.synthetic_coco import SyntheticCoco, tiny_config
from tests.tiny_model import write_tiny_model_file


def test_training_images_are_decoded_for_the_transform_and_cached(
    tiny_coco: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[CocoDataset] = []

    def recording_dataset(*args: Any, **kwargs: Any) -> CocoDataset:
        built.append(CocoDataset(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(pipeline, "CocoDataset", recording_dataset)
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


def test_eval_of_some_stages_says_so_and_writes_fractions(
    tiny_coco: SyntheticCoco, tmp_path: Path
) -> None:
    model = write_tiny_model_file(
        tmp_path / "model.safetensors", CategoryMap.from_coco(tiny_coco.categories)
    )
    metrics, results = tmp_path / "metrics.json", tmp_path / "results.json"
    report = pipeline.evaluate_model_file(
        model,
        tiny_coco.json_path,
        tiny_coco.image_dir,
        num_stages=1,
        num_workers=0,
        metrics_path=metrics,
        results_path=results,
    )
    assert "scored: the detections of stage 1 (--stages 1)" in report.format()
    assert "images/s model only (forward pass)," in report.format()
    written = json.loads(metrics.read_text())
    assert written["model_time_covers"] == "forward pass"
    assert written["num_stages"] == 1 and written["num_images"] == tiny_coco.num_images
    for name in ("AP", "AP50", "AP75", "AR1", "AR10", "AR100"):
        assert written[name] == getattr(report.result, name) and 0 <= written[name] <= 1
    assert written["num_detections"] == len(json.loads(results.read_text()))
    full = pipeline.evaluate_model_file(model, tiny_coco.json_path, tiny_coco.image_dir)
    assert "--stages" not in full.format()


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


def test_batch_size_zero_is_refused_not_taken_as_the_default(
    tiny_coco: SyntheticCoco, tmp_path: Path
) -> None:
    """``batch_size or test_batch_size`` took 0 for "the model's own"; None means that."""
    model = write_tiny_model_file(
        tmp_path / "model.safetensors", CategoryMap.from_coco(tiny_coco.categories)
    )
    for bad in (0, 2.5):
        with pytest.raises(ValueError, match=f"batch_size must be an integer >= 1.*got {bad}"):
            pipeline.evaluate_model_file(
                model, tiny_coco.json_path, tiny_coco.image_dir, batch_size=bad
            )  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=f"batch_size must be an integer >= 1.*got {bad}"):
            pipeline.evaluate_onnx_file(
                tmp_path / "m.onnx", tiny_coco.json_path, tiny_coco.image_dir, batch_size=bad
            )  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"num_stages \(--stages\) 1.5: .* has stages 1..2"):
        pipeline.evaluate_model_file(
            model, tiny_coco.json_path, tiny_coco.image_dir, num_stages=1.5
        )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("gpu", "device 'gpu' is not a device; use 'cpu', 'cuda' or 'cuda:N'"),
        ("mps", "device 'mps': sparsercnn runs on 'cpu', 'cuda' or 'cuda:N' only"),
    ],
)
def test_a_device_that_is_not_one_here_is_refused_in_the_runtime_s_words(
    tiny_coco: SyntheticCoco, tmp_path: Path, device: str, message: str
) -> None:
    model = write_tiny_model_file(
        tmp_path / "model.safetensors", CategoryMap.from_coco(tiny_coco.categories)
    )
    data = (model, tiny_coco.json_path, tiny_coco.image_dir)
    with pytest.raises(ValueError, match=f"^{message}$"):
        pipeline.evaluate_model_file(*data, device=device)
    with pytest.raises(ValueError, match=f"^{message}$"):
        pipeline.load_model_and_dataset(*data, device=device)
    report = pipeline.evaluate_model_file(*data, device=torch.device("cpu"), num_workers=0)
    assert report.device == "cpu" and report.to_dict()["device"] == "cpu"


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


def test_output_paths_it_cannot_write_are_refused_before_evaluating(
    tiny_coco: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder as results_path failed only after the whole evaluation; one path for both
    files had the metrics silently replace the results."""

    def evaluate(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("evaluated before checking its outputs")

    monkeypatch.setattr(pipeline, "evaluate", evaluate)
    model = write_tiny_model_file(
        tmp_path / "model.safetensors", CategoryMap.from_coco(tiny_coco.categories)
    )
    data = (tiny_coco.json_path, tiny_coco.image_dir)
    with pytest.raises(ValueError, match=f"results_path {tmp_path} is a folder"):
        pipeline.evaluate_model_file(model, *data, results_path=tmp_path)
    with pytest.raises(ValueError, match=f"metrics_path {tmp_path} is a folder"):
        pipeline.evaluate_onnx_file(tmp_path / "m.onnx", *data, metrics_path=tmp_path)
    same = tmp_path / "out.json"
    with pytest.raises(ValueError, match="results_path and metrics_path both name"):
        pipeline.evaluate_model_file(model, *data, results_path=same, metrics_path=same)


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


def test_on_accepted_runs_after_every_check_and_before_the_evaluation(
    tiny_coco: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``eval`` warns there that its outputs will be replaced: it warned before the model's
    refusals (--stages, --precision), for a command that then replaced nothing."""
    events: list[str] = []

    def evaluate(*args: Any, **kwargs: Any) -> Any:
        events.append("evaluate")
        raise RuntimeError("stop here")

    monkeypatch.setattr(pipeline, "evaluate", evaluate)
    model = write_tiny_model_file(
        tmp_path / "model.safetensors", CategoryMap.from_coco(tiny_coco.categories)
    )
    data = (model, tiny_coco.json_path, tiny_coco.image_dir)
    refused: list[dict[str, Any]] = [{"num_stages": 3}, {"precision": "int8"}]
    for options in refused:
        with pytest.raises(ValueError):
            pipeline.evaluate_model_file(
                *data, on_accepted=lambda: events.append("accepted"), **options
            )
    other = write_tiny_model_file(tmp_path / "other.safetensors")  # another label map
    with pytest.raises(ValueError, match="categories"):
        pipeline.evaluate_model_file(
            other, *data[1:], on_accepted=lambda: events.append("accepted")
        )
    assert events == []
    with pytest.raises(RuntimeError, match="stop here"):
        pipeline.evaluate_model_file(*data, on_accepted=lambda: events.append("accepted"))
    assert events == ["accepted", "evaluate"]
