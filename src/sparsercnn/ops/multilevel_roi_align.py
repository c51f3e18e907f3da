"""Multi-level RoIAlign over the FPN levels P2-P5, as the dynamic head consumes it (spec 4, 5.1).

The levels are flattened once per forward into one channels-last table
(:func:`flatten_levels`); each refinement stage then pools its boxes with
:func:`multilevel_roi_align`, where every RoI samples its own level (:func:`assign_levels`) in
one fixed-shape gather. The result equals :func:`sparsercnn.ops.roi_sampling.roi_align`
(aligned, sampling ratio 2) on the assigned level, already in the head's ``(B*N, 49, C)`` layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from sparsercnn.ops.boxes import box_area
from sparsercnn.ops.roi_sampling import (
    coordinate_dtype,
    regular_samples,
    small_vector,
    weighted_gather,
)


def assign_levels(
    boxes: Tensor,
    num_levels: int = 4,
    canonical_size: float = 224.0,
    canonical_level: int = 4,
    min_level: int = 2,
) -> Tensor:
    """FPN level of each box (spec 4, the official ``ROIPooler`` rule).

    ``k = floor(canonical_level + log2(sqrt(area) / canonical_size + 1e-8))``, clamped to
    ``[min_level, min_level + num_levels - 1]``. With the defaults, sqrt(area) < 112 -> P2,
    [112, 224) -> P3, [224, 448) -> P4, >= 448 -> P5.

    Args:
        boxes: ``(..., 4)`` xyxy input-image pixels. Degenerate boxes (negative area) go to the
            finest level.

    Returns:
        ``(...)`` int64 level index ``k - min_level`` in ``[0, num_levels)``.
    """
    area = box_area(boxes.to(coordinate_dtype(boxes.dtype))).clamp(min=0)
    level = torch.floor(canonical_level + torch.log2(area.sqrt() / canonical_size + 1e-8))
    max_level = min_level + num_levels - 1
    level = level.clamp(min_level, max_level).to(torch.int64)
    # The integer clamp only matters for NaN boxes, whose float -> int conversion is arbitrary.
    return level.clamp(min_level, max_level) - min_level


@dataclass(frozen=True)
class FlattenedLevels:
    """All FPN levels of a batch as one channels-last table, built once per forward.

    Row ``image_starts[b, l] + y * W_l + x``, with ``image_starts[b, l] = level_starts[l] + b *
    H_l * W_l``, holds pixel ``(y, x)`` of image ``b`` on level ``l``. The small per-level
    tensors live on the table's device and serve every stage of the forward.

    Attributes:
        table: ``(sum_l B * H_l * W_l, C)`` features, dtype of the inputs.
        level_starts: ``(L,)`` int64 first row of each level.
        image_starts: ``(B, L)`` int64 first row of each image on each level.
        sizes: ``(L, 2)`` int64 ``(W_l, H_l)``.
        scales: ``(L,)`` ``1 / stride_l`` (float32, or float64 for float64 features).
        num_images: B.
    """

    table: Tensor
    level_starts: Tensor
    image_starts: Tensor
    sizes: Tensor
    scales: Tensor
    num_images: int

    @property
    def num_levels(self) -> int:
        return len(self.sizes)


def flatten_levels(features: Sequence[Tensor], strides: Sequence[int]) -> FlattenedLevels:
    """Prepare FPN levels for :func:`multilevel_roi_align`; call once, reuse for every stage.

    Args:
        features: L levels, each ``(B, C, H_l, W_l)``, same B, C, dtype; any memory format,
            channels-last ones are copied once (others twice).
        strides: input-image pixels per feature pixel of each level (P2-P5: 4, 8, 16, 32).

    Returns:
        The :class:`FlattenedLevels`; gradients flow from its table back to ``features``.
    """
    if len(features) == 0 or len(features) != len(strides):
        raise ValueError(
            f"flatten_levels: need one stride per feature level, got {len(features)} levels "
            f"and strides {tuple(strides)}"
        )
    num_images, channels = features[0].shape[:2]
    for i, f in enumerate(features):
        if f.dim() != 4 or f.shape[:2] != (num_images, channels) or f.dtype != features[0].dtype:
            raise ValueError(
                f"flatten_levels: level {i} is {tuple(f.shape)} {f.dtype}, expected "
                f"({num_images}, {channels}, H, W) {features[0].dtype} like level 0"
            )
    # A view for channels-last levels (the model's layout), so the concatenation is the one copy;
    # the exporters turn it into one Concat node.
    table = torch.cat([f.permute(0, 2, 3, 1).reshape(-1, channels) for f in features])
    device = table.device
    sizes = [(f.shape[2], f.shape[3]) for f in features]
    starts = [0]
    for h, w in sizes[:-1]:
        starts.append(starts[-1] + num_images * h * w)
    level_starts = small_vector(starts, torch.int64, device)
    level_sizes = small_vector([v for h, w in sizes for v in (w, h)], torch.int64, device)
    level_sizes = level_sizes.view(-1, 2)
    # (B, 1) * (L,) + (L,) -> (B, L); made here once rather than per stage from image ids.
    level_pixels = level_sizes[:, 0] * level_sizes[:, 1]
    image_starts = torch.arange(num_images, device=device)[:, None] * level_pixels
    return FlattenedLevels(
        table=table,
        level_starts=level_starts,
        image_starts=image_starts + level_starts,
        sizes=level_sizes,
        scales=small_vector([1.0 / s for s in strides], coordinate_dtype(table.dtype), device),
        num_images=num_images,
    )


def multilevel_roi_align(
    levels: FlattenedLevels,
    boxes: Tensor,
    output_size: int = 7,
    sampling_ratio: int = 2,
    aligned: bool = True,
) -> Tensor:
    """RoIAlign of every box on its own FPN level, in one gather with data-independent shapes.

    Equals ``roi_align(level_l, rois, output_size, 1 / stride_l, sampling_ratio, aligned)`` on
    the level ``l = assign_levels(box)`` of each box, flattened to ``(K, ph * pw, C)``.

    Args:
        levels: from :func:`flatten_levels` (``assign_levels`` uses P2-P5 numbering, so the
            first level must be P2).
        boxes: ``(B, N, 4)`` xyxy input-image pixels; receive no gradient.
        output_size: bins per side (7).
        sampling_ratio: samples per bin per axis, must be > 0 (fixed shapes); 2 in spec 4.
        aligned: half-pixel offset ("ROIAlignV2"), True in spec 4.

    Returns:
        ``(B * N, output_size ** 2, C)`` channels last, spatial index ``s = output_size * row +
        col``, RoI index ``b * N + n``; dtype of the features.
    """
    index, weight = roi_sample_rows(levels, boxes, output_size, sampling_ratio, aligned)
    out = weighted_gather(levels.table, index, weight.to(levels.table.dtype))  # (K * ph * pw, C)
    num_rois = boxes.shape[0] * boxes.shape[1]
    return out.view(num_rois, output_size * output_size, levels.table.shape[1])


def roi_sample_rows(
    levels: FlattenedLevels,
    boxes: Tensor,
    output_size: int = 7,
    sampling_ratio: int = 2,
    aligned: bool = True,
) -> tuple[Tensor, Tensor]:
    """The table rows :func:`multilevel_roi_align` reads for ``boxes``, with their weights.

    Only the levels' shapes are used, not the table's values: a one-channel table of the same
    level shapes gives the same rows (what :mod:`sparsercnn.diagnostics.feature_reads` counts).

    Args: as :func:`multilevel_roi_align`.

    Returns:
        ``index`` (int64) and ``weight`` (the levels' coordinate dtype), both ``(B * N * ph *
        pw, 4 * sampling_ratio ** 2)``: row of every bilinear corner of every sample, and its
        weight with the bin average folded in (0 for samples outside the feature map).
    """
    if boxes.dim() != 3 or boxes.shape[0] != levels.num_images or boxes.shape[2] != 4:
        raise ValueError(
            f"multilevel_roi_align: boxes must be ({levels.num_images}, N, 4) xyxy, "
            f"got {tuple(boxes.shape)}"
        )
    if sampling_ratio <= 0:
        raise ValueError(
            f"multilevel_roi_align: sampling_ratio must be > 0 for fixed shapes, got "
            f"{sampling_ratio}; use roi_align for the adaptive grid"
        )
    boxes = boxes.detach().to(levels.scales.dtype)
    level = assign_levels(boxes, num_levels=levels.num_levels)  # (B, N)
    image_base = levels.image_starts.gather(1, level).flatten()  # (K,) row of pixel (0, 0)
    level = level.flatten()  # (K,)
    scale = levels.scales[level]
    size = levels.sizes[level]  # (K, 2) (W, H) of each RoI's level

    offset = 0.5 if aligned else 0.0
    corners = boxes.flatten(0, 1) * scale[:, None] - offset  # (K, 4) xyxy level pixels
    start = corners[:, :2]  # (K, 2) along (x, y)
    roi_size = corners[:, 2:] - start
    if not aligned:
        roi_size = roi_size.clamp(min=1.0)
    # Folding the bin average into the weights is exact for power-of-two sample counts (4).
    return regular_samples(
        image_base,
        start,
        roi_size / output_size,
        (output_size, output_size),
        size,
        sampling_ratio,
        weight_scale=1.0 / (sampling_ratio * sampling_ratio),
    )
