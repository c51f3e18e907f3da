"""A prepared :class:`CocoGroundTruth` serves any number of evaluators and evaluations, each
scoring exactly as with ground truth prepared for it alone."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sparsercnn.evaluation import CocoEvaluator, CocoGroundTruth
from sparsercnn.structures import Detections

CATEGORY_IDS = [3, 7]


def _coco() -> dict[str, Any]:
    """Two images; a crowd region (COCOeval marks it ignored in the index it is given) and two
    equal boxes (a tie in the matching, decided by the order of the ground truth)."""
    annotations = [
        {"id": 10, "image_id": 1, "category_id": 3, "bbox": [10, 10, 40, 30], "iscrowd": 1},
        {"id": 11, "image_id": 1, "category_id": 3, "bbox": [12, 10, 40, 30]},
        {"id": 12, "image_id": 1, "category_id": 3, "bbox": [12, 10, 40, 30]},
        {"id": 13, "image_id": 2, "category_id": 7, "bbox": [0, 0, 20, 20], "area": 900.0},
    ]
    images = [{"id": i, "width": 64, "height": 48, "file_name": f"{i}.png"} for i in (1, 2)]
    categories = [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]
    return {"images": images, "annotations": annotations, "categories": categories}


def _detections(shift: float) -> list[Detections]:
    boxes = torch.tensor([[12.0 + shift, 10.0, 52.0 + shift, 40.0], [11.0, 9.0, 50.0, 41.0]])
    return [
        {"boxes": boxes, "scores": torch.tensor([0.9, 0.6]), "labels": torch.tensor([0, 0])},
        {
            "boxes": torch.tensor([[1.0 + shift, 0.0, 21.0 + shift, 20.0]]),
            "scores": torch.tensor([0.8]),
            "labels": torch.tensor([1]),
        },
    ]


def test_a_shared_ground_truth_scores_as_a_new_one_every_time(
    coco_index_builds: list[int],
) -> None:
    indexed = coco_index_builds
    shared = CocoGroundTruth(_coco(), CATEGORY_IDS)
    for shift in (0.0, 3.0, 0.0, 9.0):
        evaluator = CocoEvaluator(shared)
        evaluator.update([1, 2], _detections(shift))
        fresh = CocoEvaluator(_coco(), CATEGORY_IDS)
        fresh.update([1, 2], _detections(shift))
        got, expected = evaluator.evaluate(), fresh.evaluate()
        assert got.to_dict() == expected.to_dict()
        for a, b in zip(got.precision_recall, expected.precision_recall, strict=True):
            assert (a.precision_50_95 == b.precision_50_95).all()
    assert len(indexed) == 1 + 4  # the shared one, and each fresh one


def test_a_prepared_ground_truth_takes_no_second_label_map() -> None:
    shared = CocoGroundTruth(_coco(), CATEGORY_IDS, ["cat", "dog"])
    with pytest.raises(ValueError, match="has its label map and class names"):
        CocoEvaluator(shared, CATEGORY_IDS)
    with pytest.raises(ValueError, match="label_to_category_id is needed"):
        CocoEvaluator(_coco())


def test_a_given_dict_is_left_as_it_was_and_an_owned_one_is_indexed_uncopied() -> None:
    """Every dict was deep-copied, also the one ``CocoDataset.gt_dict()`` makes for each
    evaluation; only a caller's dict is, faster-coco-eval's edits (ids renumbered, ``ignore``
    flags) staying out of it."""
    given = _coco()
    before = copy.deepcopy(given)
    copied = CocoEvaluator(CocoGroundTruth(given, CATEGORY_IDS))
    copied.update([1, 2], _detections(0.0))
    expected = copied.evaluate().to_dict()
    assert given == before
    owned = _coco()
    shared = CocoGroundTruth(owned, CATEGORY_IDS, owned=True)
    assert shared.coco.anns[1] is owned["annotations"][0]
    evaluator = CocoEvaluator(shared)
    evaluator.update([1, 2], _detections(0.0))
    assert evaluator.evaluate().to_dict() == expected


def test_a_repeated_image_id_is_refused_naming_it() -> None:
    """Two images of one id were merged into one: the objects of the second were scored
    against the detections of the first, or not at all."""
    coco = _coco()
    coco["images"].append({"id": 2, "width": 64, "height": 48, "file_name": "3.png"})
    with pytest.raises(ValueError, match="image id 2 appears 2 times in 'images'"):
        CocoGroundTruth(coco, CATEGORY_IDS)


def test_the_category_ids_records_may_name_are_the_label_map_s() -> None:
    """Every update checks its records' category ids against those of the label map, kept
    once, sorted, the order COCOeval scores them in (was: a set, sorted again at each use)."""
    ground_truth = CocoGroundTruth(_coco(), CATEGORY_IDS[::-1])
    assert ground_truth.category_ids == [3, 7]
    evaluator = CocoEvaluator(ground_truth)
    record = {"image_id": 1, "category_id": 7, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.5}
    evaluator.extend([1], [[record]])
    with pytest.raises(ValueError, match=r"category id 5, .*\(their ids: 3, 7\)"):
        evaluator.extend([2], [[{**record, "image_id": 2, "category_id": 5}]])


def test_ids_are_integers_whole_floats_read_as_such_and_others_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: every id went through int(), so image_id 2.5 became image 2 unsaid (and "2" too).
    Whole floats (pandas' 2.0) and numpy integers are read as the integers, the floats counted
    in one warning; anything else is refused, naming the entry. Annotation ids, renumbered and
    never read, are neither (was: a whole-float annotation id counted in the warning)."""
    coco = _coco()
    coco["images"][1]["id"] = 2.0
    coco["annotations"][3]["image_id"] = np.int64(2)
    coco["annotations"][3]["category_id"] = 7.0
    coco["annotations"][0]["id"] = 11.0  # renumbered, never read: neither counted nor refused
    coco["annotations"][1]["id"] = "x"
    ground_truth = CocoGroundTruth(coco, CATEGORY_IDS)
    assert ground_truth.image_ids == {1, 2}
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "2 ids written as whole floats" in warning
    assert "(images[].id 1, annotations[].category_id 1)" in warning
    evaluator = CocoEvaluator(ground_truth)
    evaluator.update([1, 2], _detections(0.0))
    assert evaluator.evaluate().num_detections == 3
    for key, value, problem in (
        ("image_id", 2.5, "is 2.5, not an integer: COCO ids are integers"),
        ("category_id", "7", 'is "7", not an integer: write it as 7, without quotes'),
        ("category_id", True, "is true, not an integer"),
    ):
        bad = _coco()
        bad["annotations"][3][key] = value
        path = tmp_path / "gt.json"
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=rf"gt.json: annotations\[3\]: '{key}' {problem}"):
            CocoGroundTruth(path, CATEGORY_IDS)


def test_a_category_id_written_twice_1_and_1_0_is_refused_not_merged() -> None:
    """Was: the second category silently took the id's name (and the first was lost)."""
    coco = _coco()
    coco["categories"].append({"id": 3.0, "name": "tiger"})
    with pytest.raises(ValueError, match=r"category id 3 appears 2 times in 'categories' \(1 id"):
        CocoGroundTruth(coco, CATEGORY_IDS)


@pytest.mark.parametrize("swapped", [False, True])
def test_category_ids_past_2_to_the_53_are_scored_as_distinct(swapped: bool) -> None:
    """Was: faster-coco-eval holds ids as float64, where 2**60 and 2**60 + 1 are one: its
    evaluation failed (RuntimeError: invalid detection dimension). Categories are renumbered
    for it as images are; results keep the file's ids."""
    ids = [2**60, 2**60 + 1]
    coco = _coco()
    by_old = dict(zip(CATEGORY_IDS, ids, strict=True))
    coco["categories"] = [{**c, "id": by_old[c["id"]]} for c in coco["categories"]]
    for ann in coco["annotations"]:
        ann["category_id"] = by_old[ann["category_id"]]
    evaluator = CocoEvaluator(coco, ids)
    records = [
        {"image_id": a["image_id"], "bbox": a["bbox"], "score": 0.9, "category_id": c}
        for a in coco["annotations"][1:]
        for c in [ids[1 - ids.index(a["category_id"])] if swapped else a["category_id"]]
    ]
    evaluator.extend([1, 2], [records[:2], records[2:]])
    result = evaluator.evaluate()
    ap = result.AP  # a perfect match, but of the other class where swapped
    assert ap == (0.0 if swapped else 1.0)
    assert [c.category_id for c in result.precision_recall] == ids
    assert evaluator.coco_results() == records  # the file's ids
