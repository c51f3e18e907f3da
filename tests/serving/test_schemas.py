"""The API's request options applied to detections: score threshold, then the best few."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from sparsercnn.prediction import Prediction
from sparsercnn.scores import check_score_threshold
from sparsercnn.serving.errors import ApiError
from sparsercnn.serving.request_parsing import validate_options
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


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, -1e-9, 1.0000000000000002, 2, 0, 1, -0.0, 0.5, 1e-400]
)
def test_the_score_threshold_is_checked_as_the_python_api_and_the_cli_check_it(
    value: float,
) -> None:
    """The schema's own constraints checked it, with their own words ("Input should be a finite
    number", "less than or equal to 1") for what Prediction.above and --score-threshold refuse
    as "must be a number in [0, 1]"."""
    for sent in (value, repr(value), np.float64(value)):  # JSON, a form field, a Python value
        try:
            expected: float | str = check_score_threshold(value)
        except ValueError:
            expected = f"parameter score_threshold: must be a number in [0, 1] (got {sent!r})"
        try:
            got: float | str | None = validate_options(
                DetectOptions, {"score_threshold": sent}
            ).score_threshold
        except ApiError as error:
            got = str(error)
        assert got == expected
