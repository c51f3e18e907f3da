"""``evaluate_detections_file``: a COCO results file scored as faster-coco-eval scores it, with
its records given their images by id or by ``predict``'s file names, and its faults named."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import pytest
from faster_coco_eval import COCO, COCOeval_faster

from sparsercnn.cli.predict_sequences import write_outputs
from sparsercnn.engine.detections_evaluation import evaluate_detections_file
from sparsercnn.evaluation.coco_evaluator import METRIC_NAMES, RECALL_NAMES


def _ground_truth() -> dict[str, Any]:
    """Five images (one without objects), category ids 2 and 5, objects of every COCO size,
    a crowd region."""
    sizes = {10: (480, 640), 11: (300, 400), 12: (200, 200), 13: (640, 480), 14: (100, 120)}
    boxes = {
        10: [(2, [10, 10, 300, 200]), (5, [400, 300, 30, 20]), (5, [50, 400, 8, 9])],
        11: [(2, [0, 0, 120, 90]), (2, [200, 100, 60, 70]), (5, [300, 200, 90, 90], 1)],
        12: [(5, [20, 30, 40, 50]), (2, [100, 100, 25, 30])],
        13: [(5, [10, 10, 400, 500]), (2, [300, 50, 12, 15])],
        14: [],
    }
    annotations = []
    for image_id, image_boxes in boxes.items():
        for category_id, bbox, *crowd in image_boxes:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category_id,
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": crowd[0] if crowd else 0,
                }
            )
    return {
        "images": [
            {"id": i, "file_name": f"sub/{i}.jpg", "height": h, "width": w}
            for i, (h, w) in sizes.items()
        ],
        "annotations": annotations,
        "categories": [{"id": 2, "name": "cat"}, {"id": 5, "name": "dog"}],
    }


def _detections(ground_truth: dict[str, Any]) -> list[dict[str, Any]]:
    """Each object found with a jittered box (some missed), plus false positives."""
    rng = random.Random(0)
    records = []
    for ann in ground_truth["annotations"]:
        if rng.random() < 0.2:
            continue
        x, y, w, h = ann["bbox"]
        jitter = [rng.uniform(-0.15, 0.15) * s for s in (w, h, w, h)]
        records.append(
            {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"]
                if rng.random() < 0.85
                else 7 - ann["category_id"],
                "bbox": [round(v + j, 2) for v, j in zip([x, y, w, h], jitter, strict=True)],
                "score": round(rng.uniform(0.05, 1.0), 6),
            }
        )
    for image in ground_truth["images"]:
        for _ in range(3):
            records.append(
                {
                    "image_id": image["id"],
                    "category_id": rng.choice([2, 5]),
                    "bbox": [rng.uniform(0, 50), rng.uniform(0, 50), 30.0, 40.0],
                    "score": round(rng.uniform(0.0, 0.6), 6),
                }
            )
    return records


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_metrics_equal_faster_coco_eval_on_the_same_two_files(tmp_path: Path) -> None:
    ground_truth = _ground_truth()
    gt_path = _write(tmp_path / "instances.json", ground_truth)
    det_path = _write(tmp_path / "detections.json", _detections(ground_truth))
    report = evaluate_detections_file(det_path, gt_path)
    coco = COCO(str(gt_path))
    direct = COCOeval_faster(coco, coco.loadRes(str(det_path)), iouType="bbox")
    direct.evaluate()
    direct.accumulate()
    direct.summarize()
    expected = dict(zip(METRIC_NAMES + RECALL_NAMES, direct.stats[:12].tolist(), strict=True))
    assert 0.1 < expected["AP"] < 0.9  # a test of scoring, not of a perfect or empty file
    for name, value in expected.items():
        assert getattr(report.result, name) == value, name
    assert report.result.num_images == 5
    assert "no model ran: no images/s figures" in report.format()


def test_the_metrics_file_names_the_annotation_file_scored_against(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """metrics.json named the detections, not the ground truth they were scored on: by its
    absolute path, whatever folder the command ran in."""
    ground_truth = _ground_truth()
    gt_path = _write(tmp_path / "instances.json", ground_truth)
    det_path = _write(tmp_path / "detections.json", _detections(ground_truth))
    monkeypatch.chdir(tmp_path)
    evaluate_detections_file(det_path, "instances.json", metrics_path=tmp_path / "metrics.json")
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["ground_truth_file"] == str(gt_path) and gt_path.is_absolute()


def test_predict_records_are_matched_by_the_end_of_their_file_name(tmp_path: Path) -> None:
    """``predict`` names an image by the path it was given, not by its id."""
    ground_truth = _ground_truth()
    gt_path = _write(tmp_path / "instances.json", ground_truth)
    records = _detections(ground_truth)
    by_id = evaluate_detections_file(_write(tmp_path / "ids.json", records), gt_path)
    for record in records:
        record["file_name"] = f"/data/val/sub/{record.pop('image_id')}.jpg"
    by_name = evaluate_detections_file(_write(tmp_path / "names.json", records), gt_path)
    assert by_name.result.to_dict() == by_id.result.to_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"image_id": 99},
            r"d.json: 1 record of 1 image id that .*instances.json does not have: 99; these are "
            r"detections of other images \(another data set's\?\)",
        ),
        (
            {"category_id": 0},
            r"d.json: image id 10: 1 record of category id 0, which is not among the categories "
            r"evaluated on .*instances.json \(their ids: 2, 5\); a record's category_id is the "
            r"data set's category id",
        ),
        ({"bbox": [1, 2, -3, 4]}, r"d.json: image id 10: 1 of its \d+ detections has a neg"),
    ],
)
def test_records_that_do_not_fit_the_data_set_name_the_file(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    ground_truth = _ground_truth()
    gt_path = _write(tmp_path / "instances.json", ground_truth)
    records = _detections(ground_truth)
    records[0] = {**records[0], **change}
    with pytest.raises(ValueError, match=message):
        evaluate_detections_file(_write(tmp_path / "d.json", records), gt_path)


@pytest.mark.parametrize(
    "change", [{"category_id": 0}, {"bbox": [1, 2, -3, 4]}, {"score": float("nan")}]
)
def test_a_refused_record_is_refused_before_the_files_are_accepted(
    tmp_path: Path, change: dict[str, Any]
) -> None:
    """Was: a NaN score or negative size was refused after on_accepted, so that eval warned
    that --output would be replaced and then replaced nothing."""
    ground_truth = _ground_truth()
    gt_path = _write(tmp_path / "instances.json", ground_truth)
    records = _detections(ground_truth)
    records[3] = {**records[3], **change}
    accepted: list[bool] = []
    with pytest.raises(ValueError, match=r"d.json: (image id|record 3)"):
        evaluate_detections_file(
            _write(tmp_path / "d.json", records), gt_path, on_accepted=lambda: accepted.append(True)
        )
    assert accepted == []


def test_non_finite_numbers_are_said_to_be_the_file_s_by_record(tmp_path: Path) -> None:
    """A NaN in a detections file was refused as a model's output, "after diverged training or
    from damaged weights", by its image id: it is the file's, named by its record."""
    ground_truth = _ground_truth()
    gt_path = _write(tmp_path / "instances.json", ground_truth)
    records = _detections(ground_truth)
    records[2] = {**records[2], "score": float("nan")}
    records[4] = {**records[4], "bbox": [1.0, 2.0, float("inf"), 4.0]}
    det_path = _write(tmp_path / "d.json", records)
    with pytest.raises(ValueError) as refused:
        evaluate_detections_file(det_path, gt_path)
    message = str(refused.value)
    assert message.startswith(f"{det_path}: record 2 ({json.dumps(records[2])}) has a NaN or ")
    assert "infinite score: the file holds non-finite numbers (2 records with some)" in message
    assert "model" not in message and "\n" not in message


def test_an_empty_file_scores_zero_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gt_path = _write(tmp_path / "instances.json", _ground_truth())
    with caplog.at_level(logging.WARNING):
        report = evaluate_detections_file(_write(tmp_path / "d.json", []), gt_path)
    assert report.result.AP == 0.0 and report.result.AR100 == 0.0
    assert "d.json holds no detection: every AP and AR is 0" in caplog.text


def test_images_without_records_are_scored_as_missed_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ground_truth = _ground_truth()
    gt_path = _write(tmp_path / "instances.json", ground_truth)
    records = [r for r in _detections(ground_truth) if r["image_id"] != 12]
    with caplog.at_level(logging.WARNING):
        report = evaluate_detections_file(_write(tmp_path / "d.json", records), gt_path)
    assert report.result.num_images == 5
    assert (
        f"d.json has no detection of 1 of the 5 images of {gt_path} (sub/12.jpg): scored as "
        "nothing detected there (their objects count as missed; for the AP of part of the "
        "images, give an annotation file of those images only)" in caplog.text
    )


def test_images_predict_could_not_read_are_named_as_such(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: an image predict left out as unreadable (listed in its frame list) was scored as
    missed among the images without records, and no message said that predict never read it."""
    ground_truth = _ground_truth()
    gt_path = _write(tmp_path / "instances.json", ground_truth)
    records = []
    for record in _detections(ground_truth):
        if record["image_id"] not in (11, 12):
            record["file_name"] = f"val/sub/{record.pop('image_id')}.jpg"
            records.append(record)
    output = tmp_path / "preds.json"
    unreadable = [{"file_name": "val/sub/11.jpg", "reason": "truncated"}]
    write_outputs(records, [], unreadable, output)
    with caplog.at_level(logging.WARNING):
        report = evaluate_detections_file(output, gt_path)
    assert report.result.num_images == 5
    assert (
        f"preds.json: 1 of the 5 images of {gt_path} could not be read by predict "
        f"({tmp_path / 'preds.frames.json'} lists it: val/sub/11.jpg): scored as nothing "
        "detected there (their objects count as missed); predict them again once they read"
        in caplog.text
    )
    assert f"has no detection of 1 of the 5 images of {gt_path} (sub/12.jpg)" in caplog.text


def test_skip_invalid_leaves_out_the_records_of_the_images_it_leaves_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ground_truth = _ground_truth()
    ground_truth["images"][1]["height"] = -3  # image 11: an error the data policy drops
    gt_path = _write(tmp_path / "instances.json", ground_truth)
    det_path = _write(tmp_path / "d.json", _detections(ground_truth))
    with pytest.raises(ValueError, match="error") as refused:
        evaluate_detections_file(det_path, gt_path)
    # A guard: without --images the JSON's folder, which the dataset is given, is not named.
    assert "--images <its image folder> --all" in str(refused.value)
    metrics = tmp_path / "metrics.json"
    with caplog.at_level(logging.WARNING):
        report = evaluate_detections_file(
            det_path, gt_path, skip_invalid=True, metrics_path=metrics
        )
    assert report.result.num_images == 4
    assert (
        "records of images that skip_invalid (--skip-invalid) left out are not scored"
        in caplog.text
    )
    written = json.loads(metrics.read_text())
    assert written["detections_file"] == str(det_path)
    assert written["dropped_invalid"]["images"] == 1 and "model_file" not in written


def test_boxes_outside_their_images_are_scored_with_a_warning_that_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: boxes in pixels of other images scored AP 0 with nothing to say why. The sizes are
    the annotation file's; a file of good boxes gets no such warning."""
    ground_truth = _ground_truth()
    gt_path = _write(tmp_path / "instances.json", ground_truth)
    records = _detections(ground_truth)
    with caplog.at_level(logging.WARNING):
        evaluate_detections_file(_write(tmp_path / "good.json", records), gt_path)
    assert "boxes" not in caplog.text
    for record in records:
        x, y, w, h = record["bbox"]
        record["bbox"] = [x + 1000, y + 1000, w, h]
    with caplog.at_level(logging.WARNING):
        report = evaluate_detections_file(_write(tmp_path / "d.json", records), gt_path)
    assert report.result.AP == 0.0
    assert f"d.json: {len(records)} of {len(records)} boxes lie mostly outside" in caplog.text
