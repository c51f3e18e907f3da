"""The dynamic head (spec 5): the refinement stages run in sequence over the FPN features.

Boxes are detached between stages, proposal features are not (spec 5.1 step 16). The FPN levels
are flattened once per forward and shared by every stage's RoIAlign.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from sparsercnn.model.box_encoding import box_sine_encoding
from sparsercnn.model.on_demand_level import OnDemandLevel
from sparsercnn.model.refinement_stage import RefinementStage
from sparsercnn.ops.multilevel_roi_align import (
    FlattenedLevels,
    flatten_levels,
    multilevel_roi_align,
    roi_sample_rows,
)
from sparsercnn.ops.roi_sampling import weighted_gather


class DynamicHead(nn.Module):
    """``num_stages`` unshared :class:`RefinementStage` modules and the multi-level RoIAlign.

    Args:
        strides: strides of the feature levels given to :meth:`forward` (P2-P5: 4, 8, 16, 32).
        num_stages: number of refinement stages (6).
        pooler_resolution: RoIAlign output side (7); ``sampling_ratio`` 2, aligned (spec 4).
        reuse_features: pass each stage's object features to the next (paper Table 5); when False
            every stage starts again from the learned proposal features.
        box_positional_encoding: add a sine encoding of the input boxes to the proposal features
            at the start of every stage.
        prior_prob: initial foreground probability of the class logits (bias init, spec 5.2).
        **stage_kwargs: forwarded to :class:`RefinementStage`.
    """

    def __init__(
        self,
        *,
        strides: Sequence[int],
        num_stages: int,
        pooler_resolution: int,
        sampling_ratio: int,
        reuse_features: bool,
        box_positional_encoding: bool,
        prior_prob: float,
        **stage_kwargs: object,
    ) -> None:
        super().__init__()
        if num_stages < 1:
            raise ValueError(f"num_stages must be >= 1, got {num_stages}")
        self.strides = tuple(strides)
        self.pooler_resolution = pooler_resolution
        self.sampling_ratio = sampling_ratio
        self.reuse_features = reuse_features
        self.box_positional_encoding = box_positional_encoding
        self.stages = nn.ModuleList(
            RefinementStage(pooler_resolution=pooler_resolution, **stage_kwargs)  # type: ignore[arg-type]
            for _ in range(num_stages)
        )
        self.reset_parameters(prior_prob)

    def reset_parameters(self, prior_prob: float) -> None:
        """Spec 5.2, by parameter name: Xavier-uniform for every weight matrix of every stage,
        the class-logit bias set to the focal prior, all other biases and norms left at PyTorch's
        defaults. (The official code sets every parameter whose last dimension equals the number
        of classes; we name the one parameter instead.)"""
        bias_value = -math.log((1 - prior_prob) / prior_prob)
        for stage in self.stages:
            for name, param in stage.named_parameters():
                if param.dim() > 1:
                    nn.init.xavier_uniform_(param)
                elif name == "class_logits.bias":
                    nn.init.constant_(param, bias_value)

    def forward(
        self,
        features: Sequence[Tensor],
        proposal_boxes: Tensor,
        proposal_features: Tensor,
        image_sizes: Tensor,
        num_stages: int | None = None,
        on_demand: Sequence[OnDemandLevel] = (),
    ) -> list[tuple[Tensor, Tensor]]:
        """Run the first ``num_stages`` stages (all by default).

        Args:
            features: FPN levels, each ``(B, d, H_l, W_l)``, strides as given at construction.
            proposal_boxes: ``(B, N, 4)`` xyxy input-image pixels.
            proposal_features: ``(B, N, d)``.
            image_sizes: ``(B, 2)`` ``(h, w)`` of the unpadded input images.
            on_demand: levels of ``features`` that are zeros until computed where a stage
                reads them (inference only).

        Returns:
            One ``(logits (B, N, C), boxes (B, N, 4) xyxy)`` pair per stage run.
        """
        if num_stages is not None and not 1 <= num_stages <= len(self.stages):
            raise ValueError(f"num_stages must be in [1, {len(self.stages)}], got {num_stages}")
        stages = self.stages if num_stages is None else self.stages[:num_stages]
        levels = flatten_levels(list(features), self.strides)
        boxes, q = proposal_boxes, proposal_features
        outputs: list[tuple[Tensor, Tensor]] = []
        for stage in stages:
            roi_features = self._pool(levels, boxes, on_demand)
            if self.box_positional_encoding:
                q = q + box_sine_encoding(boxes, image_sizes, q.shape[-1])
            logits, new_boxes, object_features = stage(roi_features, q, boxes)
            outputs.append((logits, new_boxes))
            # Boxes carry no gradient into the next stage; features do (spec 5.1 step 16).
            boxes = new_boxes.detach()
            q = object_features if self.reuse_features else proposal_features
        return outputs

    def _pool(
        self, levels: FlattenedLevels, boxes: Tensor, on_demand: Sequence[OnDemandLevel]
    ) -> Tensor:
        """RoIAlign of ``boxes`` ``(B, N, 4)`` -> ``(B * N, 49, d)``, after computing the
        on-demand levels where they are read."""
        if not on_demand:
            return multilevel_roi_align(
                levels, boxes, self.pooler_resolution, self.sampling_ratio, aligned=True
            )
        index, weight = roi_sample_rows(
            levels, boxes, self.pooler_resolution, self.sampling_ratio, aligned=True
        )
        read = index[weight != 0]
        for level in on_demand:
            level.fill(levels, read)
        pooled = weighted_gather(levels.table, index, weight.to(levels.table.dtype))
        num_rois = boxes.shape[0] * boxes.shape[1]
        return pooled.view(num_rois, self.pooler_resolution**2, levels.table.shape[1])
