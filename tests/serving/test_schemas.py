"""The API's request options applied to predictions: score threshold, then the best few."""

from __future__ import annotations

import pytest
import torch

from sparsercnn.prediction import Prediction
from sparsercnn.serving.schemas import DetectOptions, limit_prediction


def four_detections() -> Prediction:
    return Prediction(
        boxes=torch.arange(16, dtype=torch.float32).reshape(4, 4),
        scores=torch.tensor([0.9, 0.7, 0.5, 0.1]),
        labels=torch.tensor([1, 0, 1, 0]),
        class_names=["dog", "cat", "dog", "cat"],
        category_ids=[9, 4, 9, 4],
        image_size=(20, 30),
        source="<input 0>",
    )


def test_threshold_then_max_detections_keep_the_best_in_order() -> None:
    prediction = four_detections()
    limited = limit_prediction(prediction, DetectOptions(score_threshold=0.2, max_detections=2))
    assert limited.scores.tolist() == pytest.approx([0.9, 0.7])
    assert limited.class_names == ["dog", "cat"]
    assert limited.category_ids == [9, 4] and limited.labels.tolist() == [1, 0]
    assert torch.equal(limited.boxes, prediction.boxes[:2])
    assert (limited.image_size, limited.source) == ((20, 30), "<input 0>")
    # Fewer left than max_detections: all of them; no option: every detection.
    few = limit_prediction(prediction, DetectOptions(score_threshold=0.6, max_detections=3))
    assert few.scores.tolist() == pytest.approx([0.9, 0.7])
    assert limit_prediction(prediction, DetectOptions()).class_names == prediction.class_names
    none = limit_prediction(prediction, DetectOptions(score_threshold=0.95, max_detections=1))
    assert none.boxes.shape == (0, 4) and none.class_names == [] and none.category_ids == []
