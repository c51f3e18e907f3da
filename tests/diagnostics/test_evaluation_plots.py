"""Evaluation plots (the ``--report-dir`` files): every plot written and readable, the confusion
matrix consistent with the ground truth, and the label summary counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from sparsercnn.cli.main import main
from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.coco import CocoDataset
from sparsercnn.diagnostics import evaluation_plots
from sparsercnn.diagnostics.evaluation_plots import write_evaluation_report
from sparsercnn.diagnostics.ground_truth import LabelSummary, ground_truth_by_image
from sparsercnn.engine.model_evaluation import evaluate_model_file
from sparsercnn.structures import Detections
from tests.diagnostics.diagnostics_data import DiagnosticsData


def test_report_files(data: DiagnosticsData, tmp_path_factory: pytest.TempPathFactory) -> None:
    output = tmp_path_factory.mktemp("report")
    report = evaluate_model_file(data.model_file, data.json_path, data.image_dir, num_workers=0)
    paths = write_evaluation_report(report, output, score_threshold=0.0, num_samples=2)
    assert set(paths) == {
        "precision_recall",
        "confusion_matrix",
        "confusion_matrix_json",
        "dataset_labels",
        "sample_1",
        "sample_2",
    }
    for name, path in paths.items():
        assert path.parent in (output, output / "samples") and path.stat().st_size > 0
        if path.suffix == ".png":
            with Image.open(path) as image:
                assert image.format == "PNG" and image.width > 100, name
    with Image.open(paths["sample_1"]) as sample:
        # GT | predictions of the 128 x 96 image in 256 x 192 panels (enlarged as the stage
        # figure's, so that captions and titles are legible), 8-pixel gaps, titles above.
        assert sample.width == 3 * 8 + 2 * 256 and 2 * 8 + 192 < sample.height < 2 * 8 + 240
    record = json.loads(paths["confusion_matrix_json"].read_text())
    matrix = np.array(record["matrix"])
    assert record["rows (ground truth)"] == ["red", "green", "background"]
    assert record["columns (predicted)"] == ["red", "green", "missed"]
    # Every ground-truth box is in its class row; with no threshold, every one of the 16
    # detections per image is in a column.
    assert matrix[:2].sum() == sum(data.objects_per_image)
    assert matrix[:, :2].sum() == 16 * len(data.objects_per_image)
    # A second report with fewer samples into the same folder: the first report's other
    # samples (another model's detections, perhaps) do not stay beside it. A user's files stay,
    # numbered ones too: only what a report recorded as its own is deleted.
    (output / "samples" / "notes.png").write_bytes(b"mine")
    (output / "samples" / "000123.png").write_bytes(b"mine too")
    write_evaluation_report(report, output, score_threshold=0.0, num_samples=1)
    samples = sorted(p.name for p in (output / "samples").iterdir())
    assert samples == [".sparsercnn-samples.json", "000123.png", "1.png", "notes.png"]
    assert json.loads((output / "samples" / ".sparsercnn-samples.json").read_text()) == ["1.png"]


def test_label_summary(data: DiagnosticsData) -> None:
    dataset = CocoDataset(data.json_path, data.image_dir)
    categories = CategoryMap.from_coco(dataset.gt_dict()["categories"])
    by_image = ground_truth_by_image(dataset.gt_dict(), categories)
    summary = LabelSummary.from_ground_truth(by_image, categories)
    assert summary.objects_per_image.tolist() == data.objects_per_image
    assert int(summary.class_counts.sum()) == sum(data.objects_per_image)
    assert len(summary.sqrt_areas) == sum(data.objects_per_image)
    assert summary.sqrt_areas.max() == pytest.approx(np.sqrt(110 * 80))
    large = by_image[3]  # image index 2, id 3: one object at [8, 6, 110, 80] (xywh)
    assert large.boxes.tolist() == [[8.0, 6.0, 118.0, 86.0]] and large.labels.tolist() == [1]


def test_eval_stages_report_dir_uses_that_stage(
    data: DiagnosticsData, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``eval --stages 1 --report-dir``: metrics and plots come from one pass of stage 1."""
    output = tmp_path_factory.mktemp("eval_stages")
    code = main(
        [
            "eval",
            "--model",
            str(data.model_file),
            "--json",
            str(data.json_path),
            "--images",
            str(data.image_dir),
            "--workers",
            "0",
            "--stages",
            "1",
            "--output",
            str(output / "metrics.json"),
            "--report-dir",
            str(output / "report"),
        ]
    )
    assert code == 0
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["num_stages"] == 1
    stage_1 = evaluate_model_file(
        data.model_file, data.json_path, data.image_dir, num_stages=1, num_workers=0
    )
    every_stage = evaluate_model_file(
        data.model_file, data.json_path, data.image_dir, num_workers=0
    )
    assert metrics["AP50"] == stage_1.result.AP50
    assert stage_1.result.AP50 != every_stage.result.AP50  # the check above tells them apart
    # The precision-recall curves drawn are stage 1's (matplotlib's PNG bytes are reproducible).
    written = (output / "report" / "precision_recall.png").read_bytes()
    expected = write_evaluation_report(stage_1, output / "expected")["precision_recall"]
    last = write_evaluation_report(every_stage, output / "last")["precision_recall"]
    assert written == expected.read_bytes() != last.read_bytes()


def test_label_summary_keeps_classes_that_share_a_name_apart() -> None:
    """The class axis names each class as the confusion matrix does (``"shape (1)"``)."""
    categories = CategoryMap.from_coco([{"id": 1, "name": "shape"}, {"id": 3, "name": "shape"}])
    summary = LabelSummary.from_ground_truth({}, categories)
    assert summary.class_names == ["shape (1)", "shape (3)"]


def test_sample_captions_keep_classes_that_share_a_name_apart(
    data: DiagnosticsData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    coco = data.coco.read_json()
    coco["categories"] = [{"id": 1, "name": "shape"}, {"id": 3, "name": "shape"}]
    json_path = tmp_path / "same_names.json"
    json_path.write_text(json.dumps(coco))
    dataset = CocoDataset(json_path, data.image_dir)
    captured: list[list[str]] = []

    def capture(image: Image.Image, *args: Any, **kwargs: Any) -> Image.Image:
        captured.append(list(args[5]))  # class_names, after the five box arrays
        return image

    monkeypatch.setattr(evaluation_plots, "draw_ground_truth_and_predictions", capture)
    by_image = ground_truth_by_image(dataset.gt_dict(), dataset.category_map)
    none = Detections(boxes=torch.zeros(0, 4), scores=torch.zeros(0), labels=torch.zeros(0))
    evaluation_plots._write_sample(dataset, 1, by_image[1], none, tmp_path, 0.3)
    assert captured == [["shape (1)", "shape (3)"]]


def test_a_sample_with_non_finite_detections_names_the_image(
    data: DiagnosticsData, tmp_path: Path
) -> None:
    """A NaN box crashed the drawing ("cannot convert float NaN to integer"); it is refused as
    COCO evaluation refuses it, naming the image, and no sample is written."""
    dataset = CocoDataset(data.json_path, data.image_dir)
    by_image = ground_truth_by_image(dataset.gt_dict(), dataset.category_map)
    nan = Detections(
        boxes=torch.tensor([[float("nan"), 0.0, 10.0, 10.0]]),
        scores=torch.tensor([0.9]),
        labels=torch.tensor([0]),
    )
    file_name = dataset.image_info(dataset.image_ids.index(1))["file_name"]
    with pytest.raises(ValueError, match=rf"^image id 1 \(.*{file_name}\): its only detection has"):
        evaluation_plots._write_sample(dataset, 1, by_image[1], nan, tmp_path, 0.3)
    assert not (tmp_path / "samples").exists()


def _empty_detections(count: int) -> list[Detections]:
    none = Detections(boxes=torch.zeros(0, 4), scores=torch.zeros(0), labels=torch.zeros(0))
    return [none] * count


def test_a_user_s_file_named_as_a_sample_is_never_replaced(
    data: DiagnosticsData, tmp_path: Path
) -> None:
    """A user's ``samples/1.png`` in the report's folder was silently replaced by the drawing
    of image 1; the report is refused before it writes anything."""
    dataset = CocoDataset(data.json_path, data.image_dir)
    (tmp_path / "samples").mkdir()
    photo = tmp_path / "samples" / "1.png"
    photo.write_bytes(b"the user's photo")
    ids = dataset.image_ids[:2]
    with pytest.raises(ValueError, match=r"samples/1\.png is no drawing of an earlier report"):
        evaluation_plots.write_detection_plots(
            dataset, ids, _empty_detections(len(ids)), tmp_path, num_samples=2
        )
    assert photo.read_bytes() == b"the user's photo"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["1.png", "samples"]
    # Not among the samples drawn (image 1 is not drawn), it stays and does not block.
    evaluation_plots.write_detection_plots(
        dataset, ids[1:], _empty_detections(1), tmp_path, num_samples=1
    )
    assert photo.read_bytes() == b"the user's photo"


def test_a_report_killed_while_drawing_leaves_samples_the_next_one_replaces(
    data: DiagnosticsData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The samples are recorded as the report's before they are drawn: those a killed report
    drew are not taken for the user's files by the next report."""
    dataset = CocoDataset(data.json_path, data.image_dir)
    ids = dataset.image_ids[:2]
    write_sample = evaluation_plots._write_sample

    def killed_after_one(*args: Any) -> Path:
        path = write_sample(*args)
        if path.name != "1.png":
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(evaluation_plots, "_write_sample", killed_after_one)
    with pytest.raises(KeyboardInterrupt):
        evaluation_plots.write_detection_plots(
            dataset, ids, _empty_detections(2), tmp_path, num_samples=2
        )
    monkeypatch.undo()
    paths = evaluation_plots.write_detection_plots(
        dataset, ids, _empty_detections(2), tmp_path, num_samples=1
    )
    assert paths["sample_1"].is_file() and not (tmp_path / "samples" / "2.png").exists()
