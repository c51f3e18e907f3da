"""The API's request options applied to detections: score threshold, then the best few."""

from __future__ import annotations

from typing import Any

import torch

from sparsercnn.prediction import Prediction
from sparsercnn.serving.schemas import Detection, DetectOptions, detections_of, limit_detections


def four_detections(scores: list[float] | None = None) -> Prediction:
    return Prediction(
        boxes=torch.arange(16, dtype=torch.float32).reshape(4, 4),
        scores=torch.tensor(scores or [0.9, 0.7, 0.5, 0.1]),
        labels=torch.tensor([1, 0, 1, 0]),
        class_names=["dog", "cat", "dog", "cat"],
        category_ids=[9, 4, 9, 4],
        image_size=(20, 30),
        source="<input 0>",
    )


def _limited(prediction: Prediction, **options: Any) -> list[Detection]:
    """The response items of ``prediction`` under the request's ``options``."""
    return detections_of(limit_detections(prediction, DetectOptions(**options)))


def test_threshold_and_max_detections_keep_the_best_in_order() -> None:
    prediction = four_detections()
    detections = detections_of(prediction)
    limited = _limited(prediction, score_threshold=0.2, max_detections=2)
    assert limited == detections[:2]
    assert [(d.score, d.category_name, d.category_id) for d in limited] == [
        (0.9, "dog", 9),
        (0.7, "cat", 4),
    ]
    # Fewer left than max_detections: all of them; no option: every detection.
    assert _limited(prediction, score_threshold=0.6, max_detections=3) == detections[:2]
    assert _limited(prediction) == detections
    assert _limited(prediction, score_threshold=0.95) == []


def test_a_threshold_copied_from_a_score_keeps_its_detection() -> None:
    """A score is given to 6 significant digits: 0.12345678 (float32 0.123456784) reads
    0.123457, and a threshold of 0.123457 dropped it (compared with the unrounded score)."""
    prediction = four_detections([0.9, 0.7, 0.12345678, 0.1])
    detections = detections_of(prediction)
    assert detections[2].score == 0.123457
    assert _limited(prediction, score_threshold=detections[2].score) == detections[:3]
    assert _limited(prediction, score_threshold=0.123457, max_detections=3) == detections[:3]
