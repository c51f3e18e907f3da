"""The result of inference on one image: selection by written score, its records and its
dictionary."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from sparsercnn.data.categories import CategoryMap
from sparsercnn.prediction import (
    NonFiniteDetectionsError,
    Prediction,
    prediction_from_detections,
)
from sparsercnn.structures import Detections
from sparsercnn.text import non_finite_outputs

CATEGORIES = CategoryMap([4, 9], ["cat", "dog"])


def three_detections() -> Prediction:
    return Prediction(
        boxes=torch.tensor([[1.0, 2.0, 11.0, 12.0], [0.004, 0.25, 0.016, 4.0], [0, 0, 20, 10]]),
        scores=torch.tensor([0.9, 0.12345678, 0.1]),
        labels=torch.tensor([1, 0, 1]),
        class_names=["dog", "cat", "dog"],
        category_ids=[9, 4, 9],
        image_size=(10, 20),
        source="a.jpg",
    )


def test_above_keeps_the_detection_whose_written_score_is_the_threshold() -> None:
    """0.12345678 is written 0.123457 (to_coco_results): above(0.123457), a threshold copied
    from the JSON, dropped it, comparing the unrounded score."""
    prediction = three_detections()
    (_, copied, _) = [record["score"] for record in prediction.to_coco_results()]
    assert copied == 0.123457
    assert prediction.above(copied).class_names == ["dog", "cat"]


@pytest.mark.parametrize("threshold", [math.nan, math.inf, -math.inf, -0.1, 1.5])
def test_above_refuses_a_threshold_that_is_no_score(threshold: float) -> None:
    """NaN kept no detection and -inf every one, without a word."""
    with pytest.raises(ValueError, match=r"score_threshold must be a number in \[0, 1\], got"):
        three_detections().above(threshold)
    assert (
        len(three_detections().above(0.0).scores),
        len(three_detections().above(1.0).scores),
    ) == (3, 0)


def test_above_takes_a_threshold_of_numpy_or_a_0_dim_tensor() -> None:
    """A score of the model's output as the threshold: refused since above() checked it."""
    prediction = three_detections()
    assert prediction.above(prediction.scores[1]).class_names == ["dog", "cat"]
    assert prediction.above(np.float32(0.5)).class_names == ["dog"]  # type: ignore[arg-type]


def test_non_finite_detections_are_refused_with_the_shared_message() -> None:
    """The message was written out here, in the drawings' and in COCO evaluation's."""
    detections = Detections(
        boxes=torch.tensor([[0.0, 0.0, 5.0, 5.0], [0.0, 0.0, 5.0, 5.0]]),
        scores=torch.tensor([0.9, math.nan]),
        labels=torch.tensor([0, 1]),
    )
    with pytest.raises(NonFiniteDetectionsError) as info:
        prediction_from_detections(detections, CATEGORIES, (10, 20), "a.jpg")
    reason = non_finite_outputs(1, 2, "which cannot be ranked or used")
    assert (str(info.value), info.value.reason) == (f"a.jpg: {reason}", reason)
    # The server answers this reason too, where nothing is written.
    assert "written" not in reason


def test_records_name_classes_by_the_prediction() -> None:
    """Another model's label map was taken: its names and ids, silently."""
    prediction = three_detections()
    records = prediction.to_coco_results()
    assert [(r["category_id"], r["category_name"]) for r in records] == [
        (9, "dog"),
        (4, "cat"),
        (9, "dog"),
    ]
    assert "image_id" not in records[0]
    assert [r["image_id"] for r in prediction.to_coco_results(image_id=7)] == [7, 7, 7]


def test_the_dictionary_holds_both_box_forms_scores_and_classes_as_json() -> None:
    prediction = three_detections()
    as_dict = prediction.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert (as_dict["name"], as_dict["width"], as_dict["height"]) == ("a.jpg", 20, 10)
    first, second, _ = as_dict["detections"]
    assert first == {
        "bbox": {"xyxy": [1.0, 2.0, 11.0, 12.0], "xywh": [1.0, 2.0, 10.0, 10.0]},
        "score": 0.9,
        "category_id": 9,
        "category_name": "dog",
    }
    # x2 is x + w of the rounded COCO box (0.0 + 0.01), not 0.016 rounded.
    assert second["bbox"] == {"xyxy": [0.0, 0.25, 0.01, 4.0], "xywh": [0.0, 0.25, 0.01, 3.75]}
    assert second["score"] == 0.123457
