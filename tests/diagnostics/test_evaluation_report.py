"""Evaluation report: every plot written and readable, the confusion matrix consistent with the
ground truth, and the label summary counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from diagnostics_data import DiagnosticsData
from PIL import Image

from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.coco import CocoDataset
from sparsercnn.diagnostics.evaluation_report import write_evaluation_report
from sparsercnn.diagnostics.ground_truth import LabelSummary, ground_truth_by_image


def test_report_files(data: DiagnosticsData, tmp_path_factory: pytest.TempPathFactory) -> None:
    output = tmp_path_factory.mktemp("report")
    paths = write_evaluation_report(
        data.model_file, data.json_path, data.image_dir, output, score_threshold=0.0, num_samples=2
    )
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
        assert sample.size == (2 * 128 + 8, 96)  # GT | predictions of the 128 x 96 image
    record = json.loads(paths["confusion_matrix_json"].read_text())
    matrix = np.array(record["matrix"])
    assert record["rows (ground truth)"] == ["red", "green", "background"]
    assert record["columns (predicted)"] == ["red", "green", "missed"]
    # Every ground-truth box is in its class row; with no threshold, every one of the 16
    # detections per image is in a column.
    assert matrix[:2].sum() == sum(data.objects_per_image)
    assert matrix[:, :2].sum() == 16 * len(data.objects_per_image)


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
