"""Hungarian matching of one stage's predictions to the ground truth (spec 7.1).

The matcher turns a stage's ``(B, N, C)`` logits and ``(B, N, 4)`` boxes into one-to-one
(prediction, ground truth) pairs per image; :class:`~sparsercnn.loss.criterion.SetCriterion`
calls it once per supervised stage and computes the losses on those pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from sparsercnn.loss.focal import focal_cost
from sparsercnn.ops.boxes import generalized_box_iou
from sparsercnn.structures import Target


def image_whwh(image_sizes: Tensor) -> Tensor:
    """``(B, 2)`` int ``(h, w)`` sizes -> ``(B, 4)`` float32 ``(w, h, w, h)`` box normalisers."""
    sizes = image_sizes.to(torch.float32)
    return torch.stack((sizes[:, 1], sizes[:, 0], sizes[:, 1], sizes[:, 0]), dim=-1)


@dataclass(frozen=True)
class PaddedTargets:
    """The ground truth of a batch padded to its largest ``M``, built once per loss call.

    Attributes:
        labels: ``(B, M)`` int64 classes; padding entries are class 0.
        boxes: ``(B, M, 4)`` float32 absolute xyxy; padding entries are the unit box
            ``(0, 0, 1, 1)``, which keeps every padded cost finite.
        counts: the number of real boxes of each image (the first ``counts[i]`` entries).
    """

    labels: Tensor
    boxes: Tensor
    counts: list[int]

    @classmethod
    def from_targets(cls, targets: Sequence[Target], device: torch.device) -> PaddedTargets:
        """Pad ``targets`` on ``device`` (a few ops for the whole batch, none per image)."""
        counts = [len(target) for target in targets]
        max_gts = max(counts, default=0)
        labels = torch.zeros((len(targets), max_gts), dtype=torch.int64, device=device)
        boxes = torch.tensor([0.0, 0.0, 1.0, 1.0], device=device).repeat(len(targets), max_gts, 1)
        if max_gts > 0:
            # Row-major order of the mask's True entries is the concatenation order; no autocast
            # (its cat refuses mixed low-precision inputs).
            real = (
                torch.arange(max_gts, device=device) < torch.tensor(counts, device=device)[:, None]
            )
            with torch.autocast(device_type=device.type, enabled=False):
                labels[real] = torch.cat([t.labels for t in targets]).to(device, torch.int64)
                boxes[real] = torch.cat([t.boxes for t in targets]).to(device, torch.float32)
        return cls(labels, boxes, counts)


@dataclass(frozen=True)
class Matches:
    """One stage's matches for a batch, flattened into ``K`` (image, prediction, ground truth)
    triples, image-major and, within an image, sorted by prediction index (scipy's order).

    Attributes:
        image_ids, pred_ids, gt_ids: ``(K,)`` int64 on the predictions' device.
        sizes: the number of matches of each image (``min(N, M_i)``).
    """

    image_ids: Tensor
    pred_ids: Tensor
    gt_ids: Tensor
    sizes: list[int]

    def per_image(self) -> list[tuple[Tensor, Tensor]]:
        """Per image, ``(pred_indices, gt_indices)`` (views of the flat ids)."""
        return list(
            zip(self.pred_ids.split(self.sizes), self.gt_ids.split(self.sizes), strict=True)
        )


class NonFiniteCostError(ValueError):
    """A matching cost matrix has NaN/inf entries: the predictions (or the data) are broken.

    The trainer catches it and skips the step like any other non-finite loss.
    """


class HungarianMatcher:
    """Minimum-cost one-to-one assignment of predictions to ground-truth boxes, per image.

    Cost between prediction ``i`` and ground truth ``j`` of the same image (spec 7.1)::

        C_ij = class_weight * focal_cost(i, c_j)
             + l1_weight * || b_i / WH - g_j / WH ||_1     (xyxy divided by (w, h, w, h))
             - giou_weight * GIoU(b_i, g_j)                 (absolute xyxy)

    The costs are computed under ``torch.no_grad`` in float32 with autocast disabled, whatever
    the input dtype, per image on the predictions' device, copied to the CPU together, and each
    image's ``(N, M)`` matrix is solved with ``scipy.optimize.linear_sum_assignment`` in float64.

    When an image has more ground-truth boxes than predictions (``M > N``), the rectangular
    assignment matches all ``N`` predictions and the ``M - N`` ground truths left out of the
    minimum-cost assignment stay unmatched (they still count in the loss normaliser ``n_gt``).
    The official code crashes there (spec 13 #4). Images without ground truth get empty index
    tensors.

    Args:
        class_weight: weight of the focal classification cost.
        l1_weight: weight of the L1 cost on normalised xyxy boxes.
        giou_weight: weight of the (negated) GIoU cost.
        alpha: focal-cost alpha.
        gamma: focal-cost gamma.
        eps: focal-cost epsilon (official 1e-8, mmdetection 1e-12).
    """

    def __init__(
        self,
        *,
        class_weight: float = 2.0,
        l1_weight: float = 5.0,
        giou_weight: float = 2.0,
        alpha: float = 0.25,
        gamma: float = 2.0,
        eps: float = 1e-8,
    ) -> None:
        weights = (class_weight, l1_weight, giou_weight)
        if min(weights) < 0 or max(weights) == 0:
            raise ValueError(
                f"matching cost weights (class, l1, giou) = {weights} must be >= 0 and not all 0"
            )
        if not 0.0 <= alpha <= 1.0 or gamma < 0:
            raise ValueError(
                f"focal cost needs 0 <= alpha <= 1 and gamma >= 0, got {alpha=}, {gamma=}"
            )
        # -log(p + eps) of a saturated p = 0 is infinite without it, refused as divergence.
        if not 0.0 < eps <= 1.0:
            raise ValueError(f"focal cost needs 0 < eps <= 1, got {eps=}")
        self.class_weight = class_weight
        self.l1_weight = l1_weight
        self.giou_weight = giou_weight
        self.alpha = alpha
        self.gamma = gamma
        self.eps = eps

    def cost_matrix(
        self, logits: Tensor, boxes: Tensor, gt_labels: Tensor, gt_boxes: Tensor, whwh: Tensor
    ) -> Tensor:
        """Matching cost between the ``N`` predictions and ``M`` ground truths of an image, or
        of each image of a batch (leading dimensions ``...``).

        Computed in the inputs' dtype; :meth:`__call__` passes float32.

        Args:
            logits: ``(..., N, C)`` class logits.
            boxes: ``(..., N, 4)`` predicted absolute xyxy boxes.
            gt_labels: ``(..., M)`` int64 ground-truth classes.
            gt_boxes: ``(..., M, 4)`` ground-truth absolute xyxy boxes.
            whwh: ``(..., 4)`` ``(w, h, w, h)`` of the input image.

        Returns:
            ``(..., N, M)`` cost ``C_ij`` (spec 7.1).
        """
        cost_cls = focal_cost(logits, gt_labels, self.alpha, self.gamma, self.eps)
        # boxes_xyxy_norm of both sides, (..., N, 4) x (..., M, 4) -> (..., N, M).
        whwh = whwh.unsqueeze(-2)
        cost_l1 = torch.cdist(boxes / whwh, gt_boxes / whwh, p=1)
        cost_giou = -generalized_box_iou(boxes, gt_boxes)
        return (
            self.class_weight * cost_cls + self.l1_weight * cost_l1 + self.giou_weight * cost_giou
        )

    @torch.no_grad()
    def __call__(
        self,
        logits: Tensor,
        boxes: Tensor,
        targets: list[Target],
        image_sizes: Tensor,
        *,
        stage: int | None = None,
    ) -> list[tuple[Tensor, Tensor]]:
        """Match each image's predictions to its ground truth.

        Args:
            logits: ``(B, N, C)`` class logits, any float dtype.
            boxes: ``(B, N, 4)`` predicted absolute xyxy boxes of each input image.
            targets: ``B`` ground truths, boxes absolute xyxy of the input image.
            image_sizes: ``(B, 2)`` int ``(h, w)`` of the unpadded input images.
            stage: index of the stage being matched, only used in error messages.

        Returns:
            Per image, ``(pred_indices, gt_indices)``: two int64 tensors of equal length
            ``min(N, M)`` on the predictions' device, sorted by prediction index (scipy's
            order); prediction ``pred_indices[k]`` is matched to ground truth ``gt_indices[k]``.

        Raises:
            ValueError: if the shapes disagree.
            NonFiniteCostError: if a cost matrix has NaN/inf entries (which usually means
                training diverged).
        """
        if logits.dim() != 3 or boxes.shape[:2] != logits.shape[:2] or boxes.shape[-1] != 4:
            raise ValueError(
                f"expected logits (B, N, C) and boxes (B, N, 4), got {tuple(logits.shape)} and "
                f"{tuple(boxes.shape)}"
            )
        padded = PaddedTargets.from_targets(targets, logits.device)
        (matches,) = self.match_stages([logits], [boxes], padded, image_sizes, [stage])
        return matches.per_image()

    @torch.no_grad()
    def match_stages(
        self,
        logits: Sequence[Tensor],
        boxes: Sequence[Tensor],
        targets: PaddedTargets,
        image_sizes: Tensor,
        stages: Sequence[int | None],
    ) -> list[Matches]:
        """Match several stages' predictions to the same ground truth at once.

        The costs of all stages and images are computed together (a few dozen ops for the whole
        call instead of that many per stage) and reach the CPU in one copy; each ``(N, M_i)``
        matrix is then solved on its own, so every stage's matches equal :meth:`__call__`'s.

        Args:
            logits: per stage, ``(B, N, C)`` class logits (any float dtype, same shapes).
            boxes: per stage, ``(B, N, 4)`` predicted absolute xyxy boxes.
            targets: the batch's ground truth, padded once for every stage.
            image_sizes: ``(B, 2)`` int ``(h, w)`` of the unpadded input images.
            stages: index of each stage, only used in error messages.

        Returns:
            One :class:`Matches` per stage, in the order given.
        """
        num_images = int(logits[0].shape[0])
        if len(targets.counts) != num_images or tuple(image_sizes.shape) != (num_images, 2):
            raise ValueError(
                f"batch has {num_images} images but {len(targets.counts)} targets and "
                f"image_sizes of shape {tuple(image_sizes.shape)}; pass one Target and one "
                "(h, w) per image"
            )
        device = logits[0].device
        with torch.autocast(device_type=device.type, enabled=False):
            costs = self._image_costs(logits, boxes, targets, image_sizes)  # (S, B, N, max M)
        return [
            self._solve(stage_costs, targets, device, stage, logits[s], boxes[s])
            for s, (stage_costs, stage) in enumerate(zip(costs, stages, strict=True))
        ]

    def _solve(
        self,
        costs: np.ndarray,
        targets: PaddedTargets,
        device: torch.device,
        stage: int | None,
        logits: Tensor,
        boxes: Tensor,
    ) -> Matches:
        """Solve each image's ``(N, M_i)`` block of one stage's ``(B, N, max M)`` costs."""
        preds, gts = [], []
        for index, num_gt in enumerate(targets.counts):
            cost = costs[index, :, :num_gt]
            if not np.isfinite(cost).all():
                gt_boxes = targets.boxes[index, :num_gt]
                raise self._nonfinite_error(index, stage, cost, logits, boxes, gt_boxes)
            pred_indices, gt_indices = linear_sum_assignment(cost)
            preds.append(pred_indices)
            gts.append(gt_indices)
        sizes = [len(pred) for pred in preds]
        image_ids = np.repeat(np.arange(len(sizes)), sizes)
        # One (3, K) host-to-device copy for the whole stage.
        ids = torch.from_numpy(np.stack((image_ids, *map(np.concatenate, (preds, gts))))).to(
            device=device, dtype=torch.int64
        )
        return Matches(ids[0], ids[1], ids[2], sizes)

    def _image_costs(
        self,
        logits: Sequence[Tensor],
        boxes: Sequence[Tensor],
        targets: PaddedTargets,
        image_sizes: Tensor,
    ) -> np.ndarray:
        """Float32 ``(S, B, N, max M)`` cost of every stage and image, as a float64 array.

        All images are costed together against their ground truth padded to the batch's
        largest ``M`` (the padding columns are never solved): ``B * N * max M`` entries per
        stage, where the official code's ``(B*N, sum M)`` matrix grows with ``B**2``. The result
        reaches the CPU in one copy, so on a GPU there is a single synchronisation per call.
        """
        num_stages, (num_images, num_preds) = len(logits), logits[0].shape[:2]
        if targets.labels.shape[1] == 0:
            return np.zeros((num_stages, num_images, num_preds, 0))
        # (S, B, ...): the stages are a leading batch dimension of the cost.
        stacked_logits = torch.stack(list(logits)).float()
        stacked_boxes = torch.stack(list(boxes)).float()
        costs = self.cost_matrix(
            stacked_logits,
            stacked_boxes,
            targets.labels,
            targets.boxes,
            image_whwh(image_sizes.to(stacked_logits.device)),
        )
        return costs.to(device="cpu", dtype=torch.float64).numpy()

    @staticmethod
    def _nonfinite_error(
        index: int,
        stage: int | None,
        cost: np.ndarray,
        logits: Tensor,
        boxes: Tensor,
        gt_boxes: Tensor,
    ) -> NonFiniteCostError:
        where = f"image {index} of the batch" + ("" if stage is None else f" at stage {stage}")
        bad = int((~np.isfinite(cost)).sum())
        logits_ok = bool(torch.isfinite(logits[index]).all())
        boxes_ok = bool(torch.isfinite(boxes[index]).all())
        gt_ok = bool(torch.isfinite(gt_boxes).all())
        return NonFiniteCostError(
            f"Hungarian matching cost for {where} has {bad} non-finite (NaN/inf) entries "
            f"(finite predicted logits: {logits_ok}, finite predicted boxes: {boxes_ok}, "
            f"finite ground-truth boxes: {gt_ok}). Non-finite predictions mean training has "
            "diverged: lower the learning rate or the gradient-clipping norm, or start from "
            "pretrained weights (spec 13 #2, #11). Otherwise check the ground-truth boxes for "
            "NaN or infinite coordinates."
        )
