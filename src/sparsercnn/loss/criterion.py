"""The set-prediction loss of Sparse R-CNN (spec 7.2): per-stage matching, focal, L1 and GIoU.

:class:`SetCriterion` takes the model's :class:`~sparsercnn.structures.ModelOutput` and the batch's
targets, matches every supervised stage independently with a
:class:`~sparsercnn.loss.matcher.HungarianMatcher`, and returns a :class:`SetLoss` whose ``total``
the training loop back-propagates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from sparsercnn.config import Config
from sparsercnn.loss.focal import sigmoid_focal_loss
from sparsercnn.loss.matcher import HungarianMatcher, Matches, PaddedTargets, image_whwh
from sparsercnn.ops.boxes import paired_generalized_box_iou
from sparsercnn.structures import ModelOutput, StageOutput, Target


@dataclass
class SetLoss:
    """Result of :class:`SetCriterion`.

    Attributes:
        total: scalar float32, the sum of every weighted term; what to back-propagate.
        terms: weighted scalar terms keyed ``loss_cls/stage{t}``, ``loss_l1/stage{t}``,
            ``loss_giou/stage{t}`` with ``t`` the 0-based stage index in ``ModelOutput.stages``.
        indices: per supervised stage (in stage order), per image, the matcher's
            ``(pred_indices, gt_indices)``; for diagnostics.
    """

    total: Tensor
    terms: dict[str, Tensor]
    indices: list[list[tuple[Tensor, Tensor]]]


class SetCriterion(nn.Module):
    """Hungarian-matched focal + L1 + GIoU loss, summed over the supervised stages (spec 7.2).

    Per stage ``t``, with ``n_gt`` the number of ground-truth boxes in the batch (averaged over
    the ranks of a multi-process run) clamped to ``>= 1`` (official normaliser, computed once
    per call):

    - ``loss_cls/stage{t} = class_weight * sum(sigmoid focal loss over all B*N*C logits) / n_gt``,
      targets one-hot at the matched ground-truth class, zero elsewhere (no background class);
    - ``loss_l1/stage{t} = l1_weight * sum over matched pairs |b/WH - g/WH|_1 / n_gt`` on xyxy
      boxes divided by ``(w, h, w, h)`` of their image;
    - ``loss_giou/stage{t} = giou_weight * sum over matched pairs (1 - GIoU(b, g)) / n_gt`` on
      absolute xyxy boxes.

    Everything is computed in float32 with autocast disabled. The module holds no parameters.

    Args:
        num_classes: number of object classes ``C`` (logits are ``(B, N, C)``).
        matcher: matches each stage's predictions to the ground truth.
        class_weight: weight of the focal classification loss.
        l1_weight: weight of the L1 box loss.
        giou_weight: weight of the GIoU loss.
        alpha: focal-loss alpha.
        gamma: focal-loss gamma.
        deep_supervision: supervise every stage (official) or only the last.
        average_over_ranks: average the normaliser over the ranks of the default process group
            (a training process of a multi-process run); False computes this process's losses
            alone, with no collective call (the recipe's timing on rank 0, a single process).
    """

    def __init__(
        self,
        num_classes: int,
        matcher: HungarianMatcher,
        *,
        class_weight: float = 2.0,
        l1_weight: float = 5.0,
        giou_weight: float = 2.0,
        alpha: float = 0.25,
        gamma: float = 2.0,
        deep_supervision: bool = True,
        average_over_ranks: bool = False,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.matcher = matcher
        self.class_weight = class_weight
        self.l1_weight = l1_weight
        self.giou_weight = giou_weight
        self.alpha = alpha
        self.gamma = gamma
        self.deep_supervision = deep_supervision
        self.average_over_ranks = average_over_ranks

    def forward(self, output: ModelOutput, targets: list[Target]) -> SetLoss:
        """Compute the weighted losses of every supervised stage.

        Args:
            output: the model's stages (logits ``(B, N, C)``, boxes ``(B, N, 4)`` absolute xyxy
                of each input image) and ``image_sizes`` ``(B, 2)`` ``(h, w)``.
            targets: ``B`` ground truths (boxes ``(M, 4)`` absolute xyxy of the input image,
                labels ``(M,)`` in ``[0, num_classes)``); moved to the predictions' device.

        Returns:
            The total, the per-stage weighted terms and the matches.

        Raises:
            ValueError: on malformed outputs or targets (the message names the image).
        """
        if not output.stages:
            raise ValueError("ModelOutput has no stages; nothing to supervise")
        device = output.last.logits.device
        targets = [target.to(device) for target in targets]
        self._check_inputs(output, targets)
        whwh = image_whwh(output.image_sizes.to(device))
        num_gt = self._normaliser(targets, device)

        stage_ids = range(len(output.stages))
        if not self.deep_supervision:
            stage_ids = stage_ids[-1:]
        stages = [output.stages[t] for t in stage_ids]
        padded = PaddedTargets.from_targets(targets, device)
        all_matches = self.matcher.match_stages(
            [stage.logits for stage in stages],
            [stage.boxes for stage in stages],
            padded,
            output.image_sizes,
            list(stage_ids),
        )
        terms: dict[str, Tensor] = {}
        with torch.autocast(device_type=device.type, enabled=False):
            for t, stage, matches in zip(stage_ids, stages, all_matches, strict=True):
                loss_cls, loss_l1, loss_giou = self._stage_losses(stage, padded, whwh, matches)
                terms[f"loss_cls/stage{t}"] = self.class_weight * loss_cls / num_gt
                terms[f"loss_l1/stage{t}"] = self.l1_weight * loss_l1 / num_gt
                terms[f"loss_giou/stage{t}"] = self.giou_weight * loss_giou / num_gt
        total = torch.stack(list(terms.values())).sum()
        indices = [matches.per_image() for matches in all_matches]
        return SetLoss(total=total, terms=terms, indices=indices)

    def _stage_losses(
        self, stage: StageOutput, targets: PaddedTargets, whwh: Tensor, matches: Matches
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Unweighted, unnormalised sums (focal, L1, 1 - GIoU) of one stage."""
        logits = stage.logits.float()
        boxes = stage.boxes.float()
        # The K matched pairs (image, prediction, ground truth), image-major.
        image_ids, pred_ids = matches.image_ids, matches.pred_ids
        gt_labels = targets.labels[image_ids, matches.gt_ids]  # (K,) int64
        gt_boxes = targets.boxes[image_ids, matches.gt_ids]  # (K, 4) float32

        cls_targets = torch.zeros_like(logits)
        cls_targets[image_ids, pred_ids, gt_labels] = 1.0
        loss_cls = sigmoid_focal_loss(logits, cls_targets, self.alpha, self.gamma).sum()

        pred_boxes = boxes[image_ids, pred_ids]  # (K, 4)
        pair_whwh = whwh[image_ids]  # (K, 4), each pair normalised by its own image (spec 13 #4)
        loss_l1 = (pred_boxes / pair_whwh - gt_boxes / pair_whwh).abs().sum()
        loss_giou = (1 - paired_generalized_box_iou(pred_boxes, gt_boxes)).sum()
        return loss_cls, loss_l1, loss_giou

    def _normaliser(self, targets: list[Target], device: torch.device) -> Tensor:
        """Number of ground-truth boxes per rank (averaged over ranks with
        ``average_over_ranks``), clamped to >= 1."""
        num_gt = torch.tensor(
            float(sum(len(t) for t in targets)), dtype=torch.float32, device=device
        )
        if self.average_over_ranks:
            dist.all_reduce(num_gt)
            num_gt = num_gt / dist.get_world_size()
        return num_gt.clamp(min=1.0)

    def _check_inputs(self, output: ModelOutput, targets: list[Target]) -> None:
        """Raise a ValueError naming the offending stage or image on malformed inputs."""
        for t, stage in enumerate(output.stages):
            logits_shape, boxes_shape = tuple(stage.logits.shape), tuple(stage.boxes.shape)
            if (
                len(logits_shape) != 3
                or logits_shape[2] != self.num_classes
                or boxes_shape != (*logits_shape[:2], 4)
            ):
                raise ValueError(
                    f"stage {t}: expected logits (B, N, {self.num_classes}) and boxes (B, N, 4), "
                    f"got {logits_shape} and {boxes_shape}; does the model's num_classes match "
                    "the criterion's?"
                )
        num_images = int(output.last.logits.shape[0])
        if len(targets) != num_images:
            raise ValueError(
                f"got {len(targets)} targets for a batch of {num_images} images; pass exactly "
                "one Target per image (empty boxes (0, 4) for images without objects)"
            )
        if tuple(output.image_sizes.shape) != (num_images, 2):
            raise ValueError(
                f"image_sizes must be ({num_images}, 2) (h, w), got "
                f"{tuple(output.image_sizes.shape)}"
            )
        for i, target in enumerate(targets):
            self._check_target_shapes(i, target)
        # One device sync for the image sizes, label range and box values of the whole batch;
        # locate the culprit only on error. Non-finite boxes and empty images are input errors:
        # left to the matcher, they would read as diverged predictions and skip the step.
        labels = torch.cat([target.labels for target in targets])
        boxes = torch.cat([target.boxes for target in targets]).to(labels.device)
        bad_labels = ((labels < 0) | (labels >= self.num_classes)).any()
        bad_boxes = ((boxes[:, 2:] < boxes[:, :2]).any() | ~torch.isfinite(boxes).all()).to(
            labels.device
        )
        bad_sizes = (output.image_sizes < 1).any().to(labels.device)
        if bool(torch.stack([bad_labels, bad_boxes, bad_sizes]).any()):
            self._locate_bad_input(output.image_sizes, targets)

    def _locate_bad_input(self, image_sizes: Tensor, targets: list[Target]) -> None:
        """Raise naming the first image whose size is not positive, whose labels are out of
        range or whose boxes are not finite xyxy with ``x1 <= x2`` and ``y1 <= y2``."""
        for i, target in enumerate(targets):
            if bool((image_sizes[i] < 1).any()):
                raise ValueError(
                    f"image {i} in the batch has size (h, w) = {image_sizes[i].tolist()}; "
                    "image_sizes must be the unpadded input sizes, >= 1 pixel"
                )
            bad = (target.labels < 0) | (target.labels >= self.num_classes)
            if bool(bad.any()):
                raise ValueError(
                    f"target of image {i} in the batch has label {int(target.labels[bad][0])} "
                    f"outside [0, {self.num_classes}); labels must be contiguous class indices "
                    "(map dataset category ids through the label map) and model.num_classes "
                    "must cover them"
                )
            nonfinite = ~torch.isfinite(target.boxes).all(dim=1)
            if bool(nonfinite.any()):
                box = [float(v) for v in target.boxes[nonfinite][0]]
                raise ValueError(
                    f"target of image {i} in the batch has box {box} with a NaN or infinite "
                    "coordinate; ground-truth boxes must be finite absolute xyxy"
                )
            inverted = (target.boxes[:, 2:] < target.boxes[:, :2]).any(dim=1)
            if bool(inverted.any()):
                box = [round(float(v), 2) for v in target.boxes[inverted][0]]
                raise ValueError(
                    f"target of image {i} in the batch has box {box} with x2 < x1 or y2 < y1; "
                    "boxes must be absolute xyxy (convert COCO's [x, y, w, h] to [x, y, x + w, "
                    "y + h])"
                )

    @staticmethod
    def _check_target_shapes(index: int, target: Target) -> None:
        boxes, labels = target.boxes, target.labels
        if boxes.dim() != 2 or boxes.shape[1] != 4:
            raise ValueError(
                f"target of image {index} in the batch: boxes must be (M, 4) xyxy, got shape "
                f"{tuple(boxes.shape)}; use torch.zeros((0, 4)) for an image without objects"
            )
        if labels.dim() != 1 or labels.shape[0] != boxes.shape[0]:
            raise ValueError(
                f"target of image {index} in the batch: labels must be ({boxes.shape[0]},) to "
                f"match the boxes, got shape {tuple(labels.shape)}"
            )
        if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
            raise ValueError(
                f"target of image {index} in the batch: labels must be integers, got {labels.dtype}"
            )


def build_criterion(cfg: Config, *, average_over_ranks: bool = False) -> SetCriterion:
    """Build the matcher and the criterion from ``cfg.loss`` and ``cfg.model.num_classes``
    (``average_over_ranks``: see :class:`SetCriterion`)."""
    loss = cfg.loss
    matcher = HungarianMatcher(
        class_weight=loss.class_weight,
        l1_weight=loss.l1_weight,
        giou_weight=loss.giou_weight,
        alpha=loss.focal_alpha,
        gamma=loss.focal_gamma,
        eps=loss.cost_eps,
    )
    return SetCriterion(
        cfg.model.num_classes,
        matcher,
        class_weight=loss.class_weight,
        l1_weight=loss.l1_weight,
        giou_weight=loss.giou_weight,
        alpha=loss.focal_alpha,
        gamma=loss.focal_gamma,
        deep_supervision=loss.deep_supervision,
        average_over_ranks=average_over_ranks,
    )
