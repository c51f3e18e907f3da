"""The result of inference on one image: selection by written score."""

from __future__ import annotations

import torch

from sparsercnn.data.categories import CategoryMap
from sparsercnn.prediction import Prediction

CATEGORIES = CategoryMap([4, 9], ["cat", "dog"])


def test_above_keeps_the_detection_whose_written_score_is_the_threshold() -> None:
    """0.12345678 is written 0.123457 (to_coco_results): above(0.123457), a threshold copied
    from the JSON, dropped it, comparing the unrounded score."""
    prediction = Prediction(
        boxes=torch.zeros(3, 4),
        scores=torch.tensor([0.9, 0.12345678, 0.1]),
        labels=torch.tensor([1, 0, 1]),
        class_names=["dog", "cat", "dog"],
        category_ids=[9, 4, 9],
        image_size=(10, 20),
        source="a.jpg",
    )
    (_, copied, _) = [record["score"] for record in prediction.to_coco_results(CATEGORIES)]
    assert copied == 0.123457
    assert prediction.above(copied).class_names == ["dog", "cat"]
