"""Confusion matrix: hand-made cases, greedy order, thresholds, and sums equal to the counts."""

from __future__ import annotations

import numpy as np
import torch

from sparsercnn.diagnostics.confusion import confusion_matrix, greedy_match, image_confusion

GT_BOXES = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 40.0], [50.0, 0.0, 60.0, 10.0]])
GT_LABELS = torch.tensor([0, 1, 2])


def _matrix(boxes: list[list[float]], labels: list[int], scores: list[float]) -> np.ndarray:
    return image_confusion(
        torch.tensor(boxes).reshape(-1, 4),
        torch.tensor(labels, dtype=torch.int64),
        torch.tensor(scores),
        GT_BOXES,
        GT_LABELS,
        3,
    )


def test_perfect_detections_fill_the_diagonal() -> None:
    matrix = _matrix(GT_BOXES.tolist(), [0, 1, 2], [0.9, 0.8, 0.7])
    assert np.array_equal(matrix, np.diag([1, 1, 1, 0]))


def test_wrong_class_background_and_missed() -> None:
    boxes = [
        [0.0, 0.0, 10.0, 11.0],  # on GT 0 (class 0), predicted class 2
        [100.0, 100.0, 120.0, 120.0],  # on nothing: background row
        [20.0, 20.0, 40.0, 40.0],  # below the score threshold: ignored
    ]
    matrix = _matrix(boxes, [2, 1, 1], [0.9, 0.8, 0.1])
    expected = np.zeros((4, 4), dtype=np.int64)
    expected[0, 2] = 1  # class 0 detected as class 2
    expected[3, 1] = 1  # false positive of class 1
    expected[1, 3] = expected[2, 3] = 1  # GT 1 and 2 missed
    assert np.array_equal(matrix, expected)


def test_a_detection_whose_score_is_written_as_the_threshold_counts() -> None:
    """float32 0.29999998 is written 0.3 and drawn in the samples at --score-threshold 0.3; the
    matrix left it out, comparing the unrounded score."""
    score = float(torch.tensor(0.29999998))
    assert score < 0.3
    assert np.array_equal(_matrix(GT_BOXES.tolist()[:1], [0], [score])[0], [1, 0, 0, 0])


def test_greedy_by_score_and_iou_threshold() -> None:
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    preds = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 9.0], [0.0, 0.0, 4.0, 10.0]])
    # The higher score wins the ground truth even with the lower IoU; IoU 0.4 never matches.
    assert greedy_match(preds, torch.tensor([0.5, 0.9, 0.95]), gt) == [(1, 0)]
    assert greedy_match(preds[2:], torch.tensor([0.9]), gt) == []
    assert greedy_match(preds[:0], torch.zeros(0), gt) == []


def test_degenerate_and_non_finite_predictions_match_nothing() -> None:
    """A zero-area box (IoU 0, not 0/0) or a NaN one matches no ground truth, and does not
    keep a later, finite detection from its match."""
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 5.0, 5.0]])
    nan = float("nan")
    preds = torch.tensor([[5.0, 5.0, 5.0, 5.0], [nan, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 9.0]])
    assert greedy_match(preds, torch.tensor([0.9, 0.8, 0.7]), gt) == [(2, 0)]


def test_sums_equal_the_counts() -> None:
    generator = torch.Generator().manual_seed(0)
    predictions, ground_truths = [], []
    num_gt = np.zeros(4, dtype=np.int64)
    num_kept = np.zeros(4, dtype=np.int64)
    for _ in range(6):
        xy = torch.rand(8, 2, generator=generator) * 80
        gt_boxes = torch.cat([xy, xy + 10 + 20 * torch.rand(8, 2, generator=generator)], 1)
        gt_labels = torch.randint(0, 3, (8,), generator=generator)
        boxes = gt_boxes[:6] + torch.randn(6, 4, generator=generator) * 3
        boxes = torch.cat([boxes, torch.tensor([[0.0, 0.0, 5.0, 5.0]])])
        labels = torch.randint(0, 3, (7,), generator=generator)
        scores = torch.rand(7, generator=generator)
        predictions.append((boxes, labels, scores))
        ground_truths.append((gt_boxes, gt_labels))
        num_gt[:3] += np.bincount(gt_labels.numpy(), minlength=3)
        num_kept[:3] += np.bincount(labels[scores >= 0.3].numpy(), minlength=3)
    matrix = confusion_matrix(predictions, ground_truths, 3, score_threshold=0.3)
    assert np.array_equal(matrix[:3].sum(axis=1), num_gt[:3])
    assert np.array_equal(matrix[:, :3].sum(axis=0), num_kept[:3])
    matched = int(matrix[:3, :3].sum())
    assert int(matrix.sum()) == num_gt.sum() + num_kept.sum() - matched
    assert matrix[3, 3] == 0 and matched > 0
