"""CocoEvaluator: perfect/empty/shifted detections, pycocotools parity, label maps, subsets."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sparsercnn.evaluation import CocoEvaluator, EvaluationResult, precision_recall_curves
from sparsercnn.structures import Detections
from sparsercnn.text import non_finite_outputs

CATEGORY_IDS = [3, 7, 90]
NAMES = ["cat", "dog", "eel"]


def _image(image_id: int) -> dict[str, Any]:
    return {"id": image_id, "width": 640, "height": 480, "file_name": f"{image_id}.jpg"}


def _ann(ann_id: int, image_id: int, category_id: int, bbox: list[float]) -> dict[str, Any]:
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": bbox,
        "area": bbox[2] * bbox[3],
        "iscrowd": 0,
    }


@pytest.fixture
def ground_truth() -> dict[str, Any]:
    """4 images, non-contiguous category ids, small (<32^2), medium and large boxes."""
    boxes = [
        (1, 3, [10.0, 20.0, 200.0, 150.0]),  # large
        (1, 7, [300.0, 40.0, 50.0, 60.0]),  # medium
        (2, 3, [5.0, 5.0, 20.0, 20.0]),  # small
        (2, 90, [100.0, 100.0, 120.0, 90.0]),  # large
        (3, 7, [400.0, 300.0, 64.0, 48.0]),  # medium
        (4, 90, [50.0, 60.0, 25.0, 30.0]),  # small
        (4, 3, [200.0, 200.0, 300.0, 250.0]),  # large
    ]
    return {
        "images": [_image(i) for i in (1, 2, 3, 4)],
        "annotations": [_ann(k + 1, i, c, b) for k, (i, c, b) in enumerate(boxes)],
        "categories": [{"id": c, "name": n} for c, n in zip(CATEGORY_IDS, NAMES, strict=True)],
    }


def _gt_detections(
    gt: dict[str, Any], image_id: int, shift: float = 0.0, score: float = 0.9
) -> Detections:
    """The image's GT boxes as detections (xyxy), shifted right by ``shift`` x their width."""
    anns = [a for a in gt["annotations"] if a["image_id"] == image_id]
    boxes = []
    for a in anns:
        x, y, w, h = a["bbox"]
        boxes.append([x + shift * w, y, x + shift * w + w, y + h])
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "scores": torch.full((len(anns),), score),
        "labels": torch.tensor([CATEGORY_IDS.index(a["category_id"]) for a in anns]),
    }


def _empty() -> Detections:
    return {
        "boxes": torch.zeros(0, 4),
        "scores": torch.zeros(0),
        "labels": torch.zeros(0, dtype=torch.int64),
    }


def _evaluate(gt: dict[str, Any], detections: dict[int, Detections]) -> EvaluationResult:
    evaluator = CocoEvaluator(gt, CATEGORY_IDS, NAMES)
    evaluator.update(list(detections), list(detections.values()))
    return evaluator.evaluate()


def test_perfect_detections_give_ap_one(ground_truth: dict[str, Any]) -> None:
    result = _evaluate(ground_truth, {i: _gt_detections(ground_truth, i) for i in (1, 2, 3, 4)})
    for name in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100"):
        assert getattr(result, name) == pytest.approx(1.0), name
    assert result.per_class == {
        "cat": pytest.approx(1.0),
        "dog": pytest.approx(1.0),
        "eel": pytest.approx(1.0),
    }
    assert result.num_images == 4 and result.num_detections == 7 and not result.is_subset


def test_no_detections_give_zero_without_crash(ground_truth: dict[str, Any]) -> None:
    result = _evaluate(ground_truth, {i: _empty() for i in (1, 2, 3, 4)})
    for name in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100"):
        assert getattr(result, name) == 0.0, name
    assert result.per_class == {"cat": 0.0, "dog": 0.0, "eel": 0.0}
    assert result.num_detections == 0
    assert "AP" in result.format_table()


def test_shifted_boxes_give_intermediate_ap(ground_truth: dict[str, Any]) -> None:
    # A shift of 0.2 x width gives IoU 0.8/1.2 = 0.667: a hit at 0.5..0.65, a miss above.
    result = _evaluate(
        ground_truth, {i: _gt_detections(ground_truth, i, shift=0.2) for i in (1, 2, 3, 4)}
    )
    assert math.isclose(result.AP50, 1.0, abs_tol=1e-12)
    assert math.isclose(result.AP75, 0.0, abs_tol=1e-12)
    assert 0.0 < result.AP < 1.0
    assert math.isclose(result.AP, 0.4)  # 4 of the 10 IoU thresholds hit


def test_image_ids_beyond_float_precision_stay_apart(ground_truth: dict[str, Any]) -> None:
    """faster-coco-eval holds ids as float64, where 2**60 + 128 * k collide: the evaluator gives
    it its own ids, and the results keep the file's."""
    huge = {i: 2**60 + 128 * i for i in (1, 2, 3, 4)}
    renamed = copy.deepcopy(ground_truth)
    for image in renamed["images"]:
        image["id"] = huge[image["id"]]
    for ann in renamed["annotations"]:
        ann["image_id"], ann["id"] = huge[ann["image_id"]], 2**60 + ann["id"]
    detections = {i: _gt_detections(ground_truth, i, shift=0.2) for i in (1, 2, 3, 4)}
    evaluator = CocoEvaluator(renamed, CATEGORY_IDS, NAMES)
    evaluator.update([huge[i] for i in detections], list(detections.values()))
    result = evaluator.evaluate()
    assert result.to_dict() == _evaluate(ground_truth, detections).to_dict()
    assert {r["image_id"] for r in evaluator.coco_results()} == set(huge.values())


def test_non_contiguous_category_ids_map_to_names(ground_truth: dict[str, Any]) -> None:
    # Only label 2 (category 90, "eel") is detected: eel AP 1, the others 0.
    detections = {}
    for image_id in (1, 2, 3, 4):
        dets = _gt_detections(ground_truth, image_id)
        keep = dets["labels"] == 2
        detections[image_id] = Detections(
            boxes=dets["boxes"][keep], scores=dets["scores"][keep], labels=dets["labels"][keep]
        )
    evaluator = CocoEvaluator(ground_truth, CATEGORY_IDS, NAMES)
    evaluator.update(list(detections), list(detections.values()))
    assert {r["category_id"] for r in evaluator.coco_results()} == {90}
    result = evaluator.evaluate()
    assert result.per_class == {"cat": 0.0, "dog": 0.0, "eel": pytest.approx(1.0)}
    assert math.isclose(result.AP, 1.0 / 3.0, abs_tol=1e-12)


def test_a_shared_class_name_keeps_both_classes_apart(ground_truth: dict[str, Any]) -> None:
    # Categories 3 and 90 are both called "cat": each keeps its own per-class AP, named by id.
    ground_truth["categories"][2]["name"] = "cat"
    detections = {}
    for image_id in (1, 2, 3, 4):
        dets = _gt_detections(ground_truth, image_id)
        keep = dets["labels"] == 2  # only category 90 is detected
        detections[image_id] = Detections(
            boxes=dets["boxes"][keep], scores=dets["scores"][keep], labels=dets["labels"][keep]
        )
    evaluator = CocoEvaluator(ground_truth, CATEGORY_IDS)
    evaluator.update(list(detections), list(detections.values()))
    result = evaluator.evaluate()
    assert result.per_class == {"cat (3)": 0.0, "dog": 0.0, "cat (90)": pytest.approx(1.0)}


def test_class_without_ground_truth_is_omitted(ground_truth: dict[str, Any]) -> None:
    gt = copy.deepcopy(ground_truth)
    gt["annotations"] = [a for a in gt["annotations"] if a["category_id"] != 7]
    result = _evaluate(gt, {i: _gt_detections(gt, i) for i in (1, 2, 3, 4)})
    assert set(result.per_class) == {"cat", "eel"}
    assert math.isclose(result.AP, 1.0, abs_tol=1e-12)
    json.dumps(result.to_dict(), allow_nan=False)
    # Left out of the per-class AP, but named in the table and the files.
    assert result.classes_without_ground_truth == ["dog"]
    assert result.to_dict()["classes_without_ground_truth"] == ["dog"]
    assert "Not scored, no ground truth in these images: dog" in result.format_table()


def test_a_class_with_only_crowd_regions_is_said_to_have_only_those(
    ground_truth: dict[str, Any],
) -> None:
    """A class whose only annotations are crowd regions was said to have "no ground truth in
    these images": it has some, which COCO ignores."""
    gt = copy.deepcopy(ground_truth)
    for ann in gt["annotations"]:
        ann["iscrowd"] = int(ann["category_id"] == 7)
    gt["annotations"] = [a for a in gt["annotations"] if a["category_id"] != 90]
    gt["annotations"].append({**_ann(99, 3, 3, [0.0, 0.0, 50.0, 50.0]), "iscrowd": 1})
    result = _evaluate(gt, {i: _gt_detections(gt, i) for i in (1, 2, 3, 4)})
    assert set(result.per_class) == {"cat"}  # a crowd region beside cat's objects: scored
    assert result.classes_with_only_crowd_regions == ["dog"]
    assert result.classes_without_ground_truth == ["eel"]
    assert result.to_dict()["classes_with_only_crowd_regions"] == ["dog"]
    assert result.format_table().splitlines()[-2:] == [
        "Not scored, no ground truth in these images: eel",
        "Not scored, only crowd regions in these images (iscrowd, which COCO ignores): dog",
    ]
    # Image 2 alone: dog's crowd regions are in images 1 and 3.
    subset = _evaluate(gt, {2: _gt_detections(gt, 2)})
    assert subset.classes_without_ground_truth == ["dog", "eel"]
    assert subset.classes_with_only_crowd_regions == []


def test_table_says_what_a_dash_means(ground_truth: dict[str, Any]) -> None:
    # Only image 3 (one medium box): no small or large object, shown as "-" and explained.
    result = _evaluate(ground_truth, {3: _gt_detections(ground_truth, 3)})
    assert result.APs is None and result.APl is None and result.APm == pytest.approx(1.0)
    table = result.format_table()
    assert "APs         -" in table and "(-: no ground-truth object of that size" in table
    assert result.classes_without_ground_truth == ["cat", "eel"]
    # Was: "1 detections"; and "1 images" where the ground truth has that one image.
    assert table.startswith("COCO bbox evaluation on 1 of 4 images (subset), 1 detection\n")
    alone = {**ground_truth, "images": [i for i in ground_truth["images"] if i["id"] == 3]}
    table = _evaluate(alone, {3: _gt_detections(ground_truth, 3)}).format_table()
    assert table.startswith("COCO bbox evaluation on 1 image, 1 detection\n")
    full = _evaluate(ground_truth, {i: _gt_detections(ground_truth, i) for i in (1, 2, 3, 4)})
    assert "(-:" not in full.format_table() and "Not scored" not in full.format_table()


def test_one_line_headline_gives_the_ap_figures_and_the_images_scored(
    ground_truth: dict[str, Any],
) -> None:
    """A training run logs each evaluation on this line; the table is printed once, at the end."""
    result = _evaluate(ground_truth, {3: _gt_detections(ground_truth, 3)})
    line = result.format_line()
    assert "\n" not in line
    assert line == (
        "COCO bbox AP 100.00% AP50 100.00% AP75 100.00% APs - APm 100.00% APl - "
        "on 1 of 4 images (subset)"
    )


def test_size_ranges_use_the_area_field_and_crowd_regions_are_ignored(
    ground_truth: dict[str, Any],
) -> None:
    """APs/APm/APl sort objects by the annotation's ``area`` (a segment's, in COCO's files),
    not by the box; a detection of a crowd region is neither a hit nor a false positive."""
    gt = copy.deepcopy(ground_truth)
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] == 1]
    gt["annotations"][0]["area"] = 500.0  # a 200x150 box whose object covers 500 px: small
    crowd = _ann(99, 1, 3, [400.0, 300.0, 100.0, 100.0])
    crowd["iscrowd"] = 1
    detections = _gt_detections(gt, 1)
    gt["annotations"].append(crowd)
    # The crowd region detected first, with the highest score: ignored, AP stays 1.
    detections = Detections(
        boxes=torch.cat([torch.tensor([[400.0, 300.0, 500.0, 400.0]]), detections["boxes"]]),
        scores=torch.cat([torch.tensor([0.99]), detections["scores"]]),
        labels=torch.cat([torch.tensor([0]), detections["labels"]]),
    )
    result = _evaluate(gt, {1: detections})
    assert pytest.approx(1.0) == result.AP and result.num_detections == 3
    assert result.APs == pytest.approx(1.0) and result.APm == pytest.approx(1.0)
    assert result.APl is None and result.ARl is None  # no large object by area
    assert result.per_class == {"cat": pytest.approx(1.0), "dog": pytest.approx(1.0)}
    assert result.classes_without_ground_truth == ["eel"]


def test_a_false_positive_ranked_first_and_a_missed_object(ground_truth: dict[str, Any]) -> None:
    """Hand-computed: 'cat' has 3 objects; a false positive scores highest, two objects are
    found, one is missed. Precision at recall 1/3 and 2/3 is 1/2 and 2/3 (interpolated: 2/3
    for both), 0 above: AP = 67 recall thresholds of 101 (0..0.66) at 2/3."""
    gt = copy.deepcopy(ground_truth)
    gt["annotations"] = [a for a in gt["annotations"] if a["category_id"] == 3]
    found = {1: _gt_detections(gt, 1, score=0.8), 2: _gt_detections(gt, 2, score=0.7)}
    found[3] = {  # nothing there: a false positive, ranked first
        "boxes": torch.tensor([[0.0, 0.0, 50.0, 50.0]]),
        "scores": torch.tensor([0.9]),
        "labels": torch.tensor([0]),
    }
    found[4] = _empty()  # image 4's cat is missed
    result = _evaluate(gt, found)
    expected = 67 * (2 / 3) / 101
    assert pytest.approx(expected, abs=1e-12) == result.AP
    assert pytest.approx(expected, abs=1e-12) == result.AP50
    assert pytest.approx(2 / 3) == result.AR100 and pytest.approx(2 / 3) == result.AR1
    assert result.per_class == {"cat": pytest.approx(expected, abs=1e-12)}


def test_subset_of_images_restricts_evaluation(ground_truth: dict[str, Any]) -> None:
    # Images 3 and 4 were not run: their GT must not count as missed.
    result = _evaluate(ground_truth, {i: _gt_detections(ground_truth, i) for i in (1, 2)})
    assert math.isclose(result.AP, 1.0, abs_tol=1e-12)
    assert result.is_subset and result.num_images == 2 and result.num_gt_images == 4
    assert "subset" in result.format_table()


def test_images_without_detections_count(ground_truth: dict[str, Any]) -> None:
    detections = {i: _gt_detections(ground_truth, i) for i in (1, 2, 3)}
    detections[4] = _empty()
    result = _evaluate(ground_truth, detections)
    assert 0.0 < result.AP < 1.0
    assert math.isclose(result.AR100, (2 / 3 + 1 + 1 / 2) / 3)  # recall cat 2/3, dog 1, eel 1/2


def test_duplicate_image_ids_count_once(ground_truth: dict[str, Any]) -> None:
    evaluator = CocoEvaluator(ground_truth, CATEGORY_IDS, NAMES)
    evaluator.update([1, 2], [_gt_detections(ground_truth, 1), _gt_detections(ground_truth, 2)])
    evaluator.update([2], [_gt_detections(ground_truth, 2, score=0.5)])
    assert [r["score"] for r in evaluator.coco_results()] == pytest.approx([0.9] * 4)
    result = evaluator.evaluate()
    assert result.num_images == 2 and result.num_detections == 4
    assert math.isclose(result.AP, 1.0, abs_tol=1e-12)


def test_each_image_is_kept_once_and_a_repeat_s_records_are_not_checked(
    ground_truth: dict[str, Any],
) -> None:
    """Was: repeats were kept in ``image_ids`` and de-duplicated in three places, and a
    repeat's records, never scored, could refuse the call. Each image is kept once, its first
    records; a repeat (a padded distributed sampler) is left out unchecked."""
    evaluator = CocoEvaluator(ground_truth, CATEGORY_IDS, NAMES)
    evaluator.update([1, 2, 1], [_gt_detections(ground_truth, i) for i in (1, 2, 1)])
    repeat = _gt_detections(ground_truth, 2)
    repeat["scores"][0] = float("nan")  # would be refused, were it scored
    evaluator.update([2, 3], [repeat, _gt_detections(ground_truth, 3)])
    once = CocoEvaluator(ground_truth, CATEGORY_IDS, NAMES)
    once.update([1, 2, 3], [_gt_detections(ground_truth, i) for i in (1, 2, 3)])
    assert evaluator.coco_results() == once.coco_results()
    assert evaluator.evaluate().num_images == 3


def test_invalid_inputs_raise_clear_errors(ground_truth: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="category ids \\[5\\]"):
        CocoEvaluator(ground_truth, [3, 5])
    with pytest.raises(ValueError, match="class names"):
        CocoEvaluator(ground_truth, CATEGORY_IDS, ["cat"])
    evaluator = CocoEvaluator(ground_truth, CATEGORY_IDS)
    with pytest.raises(RuntimeError, match="before any update"):
        evaluator.evaluate()
    with pytest.raises(ValueError, match="image id 99"):
        evaluator.update([99], [_empty()])


def test_unknown_image_ids_are_counted_and_the_file_named(
    ground_truth: dict[str, Any], tmp_path: Path
) -> None:
    """Was: the first unknown id alone, the others unsaid. Each unknown id counts once (a
    padded distributed sampler repeats ids), the first five are named, and so is the file."""
    path = tmp_path / "val.json"
    path.write_text(json.dumps(ground_truth))
    evaluator = CocoEvaluator(path, CATEGORY_IDS)
    ids = [1, 99, 98, 99, 2, 97, 96, 95, 94]
    with pytest.raises(ValueError) as refused:
        evaluator.update(ids, [_empty() for _ in ids])
    assert str(refused.value) == (
        f"image ids 99, 98, 97, 96, 95 ... (6 in all) are not in {path}; evaluate with the "
        "annotation file the images came from"
    )
    with pytest.raises(ValueError, match=rf"^image id 99 is not in {re.escape(str(path))};"):
        evaluator.update([1, 99], [_empty(), _empty()])
    _assert_nothing_kept(evaluator)


@pytest.mark.parametrize("field", ["score", "box"])
def test_non_finite_detections_name_the_image(ground_truth: dict[str, Any], field: str) -> None:
    """A NaN score stopped COCOeval without naming the image, a NaN box counted as a miss."""
    detections = _gt_detections(ground_truth, 2)
    if field == "score":
        detections["scores"][1] = float("nan")
    else:
        detections["boxes"][0, 2] = float("inf")
    evaluator = CocoEvaluator(ground_truth, CATEGORY_IDS, NAMES)
    evaluator.update([1], [_gt_detections(ground_truth, 1)])
    reason = non_finite_outputs(
        1, 2, "which COCO evaluation cannot rank or match", remedy="evaluate finite detections"
    )
    # Also given another tool's detections file (eval --detections): no "use one [model]".
    assert reason.endswith("damaged weights: evaluate finite detections")
    with pytest.raises(ValueError, match=rf"^{re.escape(f'image id 2: {reason}')}$"):
        evaluator.update([2], [detections])
    assert evaluator.evaluate().num_images == 1  # nothing of the refused image was kept


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"category_id": 1}, r"image id 2: 1 record of category id 1, which is not among"),
        ({"category_id": "3"}, r"image id 2: 1 record of category id '3', which"),
        ({"bbox": [100.0, 100.0, -20.0, 90.0]}, r"image id 2: 1 of its 2 detections has a neg"),
    ],
)
def test_records_that_cannot_be_scored_as_given_name_the_image(
    ground_truth: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    """Records from elsewhere (another tool's results JSON): COCOeval skipped one of a category
    outside the label map (yet counted it among the detections) and never matched a box of
    negative width, without a word."""
    evaluator = CocoEvaluator(ground_truth, CATEGORY_IDS, NAMES)
    records = [
        {"image_id": 2, "category_id": 3, "bbox": [5.0, 5.0, 20.0, 20.0], "score": 0.9},
        {"image_id": 2, "category_id": 90, "bbox": [100.0, 100.0, 120.0, 90.0], "score": 0.8},
    ]
    records[1] = {**records[1], **change}
    with pytest.raises(ValueError, match=message):
        evaluator.extend([2], [records])  # type: ignore[list-item]
    _assert_nothing_kept(evaluator)


def test_unknown_category_ids_of_a_call_are_all_named(ground_truth: dict[str, Any]) -> None:
    """Was: those of the first image with one only, the others unsaid. Every unknown id of the
    call is named, with its records and images counted (an image given twice counts once)."""
    evaluator = CocoEvaluator(ground_truth, CATEGORY_IDS, NAMES)
    record = {"category_id": 3, "bbox": [5.0, 5.0, 20.0, 20.0], "score": 0.9}
    results = [
        [{**record, "image_id": 1}, {**record, "image_id": 1, "category_id": 0}],
        [{**record, "image_id": 3, "category_id": 91}, {**record, "image_id": 3}],
        [{**record, "image_id": 4, "category_id": 0}],
        [{**record, "image_id": 1, "category_id": 0}],
    ]
    with pytest.raises(ValueError) as refused:
        evaluator.extend([1, 3, 4, 1], results)  # type: ignore[arg-type]
    assert str(refused.value) == (
        "image ids 1, 3, 4: 3 records of category ids 0, 91, which are not among the "
        "categories evaluated on the ground-truth dict (their ids: 3, 7, 90); a record's "
        "category_id is the data set's category id (categories[].id), not a 0-based label"
    )
    _assert_nothing_kept(evaluator)


def test_a_null_or_missing_iscrowd_is_no_crowd_region(ground_truth: dict[str, Any]) -> None:
    """The data rules accept ``iscrowd: null`` (0, as in COCO's tools): so does the evaluator."""
    del ground_truth["annotations"][0]["iscrowd"]
    ground_truth["annotations"][1]["iscrowd"] = None
    ground_truth["annotations"][2]["iscrowd"] = True  # a crowd region: not missed
    detections = {i: _gt_detections(ground_truth, i) for i in (1, 2, 3, 4)}
    detections[2] = _empty()  # image 2: a missed eel, and the crowd region
    result = _evaluate(ground_truth, detections)
    # Cats of images 1 and 4 found (the crowd one is not a target), eel of image 4 only: its
    # precision is 1 up to recall 0.5, 51 of the 101 recall thresholds.
    assert result.per_class == {
        "cat": pytest.approx(1.0),
        "dog": pytest.approx(1.0),
        "eel": pytest.approx(51 / 101),
    }
    assert pytest.approx((1 + 1 + 1 / 2) / 3) == result.AR100


def test_ground_truth_from_path_and_left_unmodified(
    ground_truth: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(ground_truth))
    before = copy.deepcopy(ground_truth)
    from_dict = _evaluate(ground_truth, {1: _gt_detections(ground_truth, 1, shift=0.1)})
    assert ground_truth == before
    evaluator = CocoEvaluator(path, CATEGORY_IDS)  # names from the file
    evaluator.update([1], [_gt_detections(ground_truth, 1, shift=0.1)])
    from_path = evaluator.evaluate()
    assert from_path.to_dict() == from_dict.to_dict()


def test_precision_recall_curves(ground_truth: dict[str, Any]) -> None:
    result = _evaluate(ground_truth, {i: _gt_detections(ground_truth, i) for i in (1, 2, 3, 4)})
    assert [c.name for c in result.precision_recall] == NAMES
    for curve in result.precision_recall:
        assert curve.recall.shape == curve.precision_50.shape == (101,)
        np.testing.assert_allclose(curve.precision_50_95, 1.0)
    # Hand-made array: class 0 has no GT (all -1) and is omitted; class 1 is averaged over IoUs.
    precision = -np.ones((10, 101, 2, 4, 3))
    precision[:, :, 1, 0, -1] = np.linspace(1.0, 0.0, 10)[:, None]
    curves = precision_recall_curves(
        precision, np.linspace(0.5, 0.95, 10), np.linspace(0, 1, 101), [3, 7], {3: "a", 7: "b"}
    )
    assert [c.name for c in curves] == ["b"]
    np.testing.assert_allclose(curves[0].precision_50, 1.0)
    np.testing.assert_allclose(curves[0].precision_50_95, 0.5)


def _random_dataset(rng: np.random.Generator) -> tuple[dict[str, Any], dict[int, Detections]]:
    """Random GT (some crowd) and detections: jittered GT boxes plus random false positives."""
    images, anns, detections = [], [], {}
    for image_id in range(1, 9):
        images.append(_image(image_id))
        gt_boxes, gt_cats = [], []
        for _ in range(rng.integers(0, 12)):
            w, h = rng.uniform(4, 250, size=2)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            category = int(rng.choice(CATEGORY_IDS))
            ann = _ann(len(anns) + 1, image_id, category, [x, y, w, h])
            ann["iscrowd"] = int(rng.random() < 0.1)
            anns.append(ann)
            gt_boxes.append([x, y, x + w, y + h])
            gt_cats.append(CATEGORY_IDS.index(category))
        num_random = int(rng.integers(0, 120))  # sometimes more than maxDets=100
        wh = rng.uniform(4, 250, size=(num_random, 2))
        xy = rng.uniform(0, 380, size=(num_random, 2))
        boxes = np.concatenate([np.array(gt_boxes).reshape(-1, 4), np.hstack([xy, xy + wh])])
        boxes[: len(gt_boxes)] += rng.normal(0, 6, size=(len(gt_boxes), 4))
        labels = np.concatenate([gt_cats, rng.integers(0, 3, size=num_random)])
        labels[: len(gt_cats)][rng.random(len(gt_cats)) < 0.2] = rng.integers(0, 3)
        detections[image_id] = {
            "boxes": torch.tensor(boxes, dtype=torch.float32),
            "scores": torch.tensor(rng.random(len(boxes)), dtype=torch.float32),
            "labels": torch.tensor(labels, dtype=torch.int64),
        }
    categories = [{"id": c, "name": n} for c, n in zip(CATEGORY_IDS, NAMES, strict=True)]
    return {"images": images, "annotations": anns, "categories": categories}, detections


def test_matches_pycocotools_on_random_data() -> None:
    pycocotools_coco = pytest.importorskip("pycocotools.coco")
    pycocotools_eval = pytest.importorskip("pycocotools.cocoeval")
    gt, detections = _random_dataset(np.random.default_rng(0))
    evaluator = CocoEvaluator(gt, CATEGORY_IDS, NAMES)
    evaluator.update(list(detections), list(detections.values()))
    result = evaluator.evaluate()
    records = [dict(r) for r in evaluator.coco_results()]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = pycocotools_coco.COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        reference = pycocotools_eval.COCOeval(coco_gt, coco_gt.loadRes(records), "bbox")
        reference.evaluate()
        reference.accumulate()
        reference.summarize()
    ours = [
        result.to_dict()[k]
        for k in (
            "AP",
            "AP50",
            "AP75",
            "APs",
            "APm",
            "APl",
            "AR1",
            "AR10",
            "AR100",
            "ARs",
            "ARm",
            "ARl",
        )
    ]
    assert all(v is not None for v in ours) and 0.05 < result.AP < 0.95
    np.testing.assert_allclose(ours, reference.stats, rtol=0, atol=1e-12)
    for k, name in enumerate(NAMES):
        p = reference.eval["precision"][:, :, k, 0, -1]
        assert result.per_class[name] == pytest.approx(float(p[p > -1].mean()), abs=1e-12)
    assert not any(math.isnan(v) for v in result.per_class.values())


def _assert_nothing_kept(evaluator: CocoEvaluator) -> None:
    """Nothing of a refused call was kept: the evaluator holds no image."""
    with pytest.raises(RuntimeError, match="before any update"):
        evaluator.evaluate()
