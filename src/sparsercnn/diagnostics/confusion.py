"""Confusion matrix of detections against ground truth, with background and missed objects.

Per image, the detections at or above a score threshold are matched greedily, best score first,
each to the still unmatched ground-truth box it overlaps most (class-agnostic, IoU at least
0.5), which is what lets a matrix show one class mistaken for another. Rows are ground-truth
classes plus ``background`` (detections that match nothing: false positives); columns are
predicted classes plus ``missed`` (ground truth no detection matched: false negatives).
Crowd regions are not ground truth here: a detection on one counts as background.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from sparsercnn.ops.boxes import box_iou
from sparsercnn.scores import passes_threshold

BACKGROUND = "background"
MISSED = "missed"


def greedy_match(
    pred_boxes: Tensor, pred_scores: Tensor, gt_boxes: Tensor, iou_threshold: float = 0.5
) -> list[tuple[int, int]]:
    """Match predictions, highest score first, to the free ground truth they overlap most.

    Args:
        pred_boxes: ``(D, 4)`` absolute xyxy pixels.
        pred_scores: ``(D,)``.
        gt_boxes: ``(M, 4)`` absolute xyxy pixels of the same image.
        iou_threshold: the least IoU of a match.

    Returns:
        ``(prediction index, ground-truth index)`` pairs; each index appears at most once.
    """
    if len(pred_boxes) == 0 or len(gt_boxes) == 0:
        return []
    # (D, M); finite for finite boxes, zero-area ones included (box_iou floors the union). A
    # predicted box with a NaN gives a NaN row, which no threshold admits: it matches nothing.
    iou = box_iou(pred_boxes.float(), gt_boxes.float())[0]
    free = torch.ones(len(gt_boxes), dtype=torch.bool)
    pairs = []
    for d in torch.argsort(pred_scores, descending=True, stable=True).tolist():
        overlaps = torch.where(free, iou[d], torch.full_like(iou[d], -1.0))
        best = int(overlaps.argmax())
        if overlaps[best] >= iou_threshold:
            free[best] = False
            pairs.append((d, best))
    return pairs


def image_confusion(
    pred_boxes: Tensor,
    pred_labels: Tensor,
    pred_scores: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    num_classes: int,
    *,
    score_threshold: float = 0.3,
    iou_threshold: float = 0.5,
) -> np.ndarray:
    """``(C + 1, C + 1)`` int64 confusion counts of one image (layout: module docstring).

    Boxes are absolute xyxy pixels of the same image, labels contiguous in ``[0, C)``.
    """
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    keep = passes_threshold(pred_scores, score_threshold)
    boxes, labels, scores = pred_boxes[keep], pred_labels[keep].tolist(), pred_scores[keep]
    gt_list = gt_labels.tolist()
    pairs = greedy_match(boxes, scores, gt_boxes, iou_threshold)
    for d, g in pairs:
        matrix[gt_list[g], labels[d]] += 1
    matched_preds = {d for d, _ in pairs}
    matched_gts = {g for _, g in pairs}
    for d, label in enumerate(labels):
        if d not in matched_preds:
            matrix[num_classes, label] += 1
    for g, label in enumerate(gt_list):
        if g not in matched_gts:
            matrix[label, num_classes] += 1
    return matrix


def confusion_matrix(
    predictions: Sequence[tuple[Tensor, Tensor, Tensor]],
    ground_truths: Sequence[tuple[Tensor, Tensor]],
    num_classes: int,
    *,
    score_threshold: float = 0.3,
    iou_threshold: float = 0.5,
) -> np.ndarray:
    """Sum of :func:`image_confusion` over images.

    Args:
        predictions: per image ``(boxes (D, 4), labels (D,), scores (D,))``.
        ground_truths: per image, in the same order, ``(boxes (M, 4), labels (M,))``.
        num_classes: ``C``.
        score_threshold: detections whose score as written is below are ignored
            (:func:`~sparsercnn.scores.passes_threshold`, as in the drawn samples).
        iou_threshold: the least IoU of a match.

    Returns:
        ``(C + 1, C + 1)`` int64: ``[g, p]`` ground truth of class ``g`` detected as ``p``;
        ``[C, p]`` unmatched detections of class ``p``; ``[g, C]`` missed ground truth of
        class ``g``; ``[C, C]`` is 0. Row sums of the first ``C`` rows are the ground-truth
        counts, column sums of the first ``C`` columns the detection counts.
    """
    if len(predictions) != len(ground_truths):
        raise ValueError(f"{len(predictions)} predictions for {len(ground_truths)} ground truths")
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for (boxes, labels, scores), (gt_boxes, gt_labels) in zip(
        predictions, ground_truths, strict=True
    ):
        matrix += image_confusion(
            boxes,
            labels,
            scores,
            gt_boxes,
            gt_labels,
            num_classes,
            score_threshold=score_threshold,
            iou_threshold=iou_threshold,
        )
    return matrix
