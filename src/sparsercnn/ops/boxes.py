"""Box geometry as pure functions: format conversions, areas, IoU/GIoU and delta decoding.

All boxes are ``(..., 4)`` tensors; see :mod:`sparsercnn.structures` for the format glossary.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# Official clamp (detectron2 ``_DEFAULT_SCALE_CLAMP``): dw, dh <= log(100000 / 16) (spec 6).
OFFICIAL_SCALE_CLAMP = math.log(100000.0 / 16)
# mmdetection ``wh_ratio_clip=16/1000``: |dw|, |dh| <= |log(16 / 1000)| (spec 6).
MMDET_SCALE_CLAMP = abs(math.log(16.0 / 1000))
BOX_DELTA_WEIGHTS = (2.0, 2.0, 1.0, 1.0)
# Floor (px^2) of the union and enclosing areas IoU and GIoU divide by: mmdetection's
# ``bbox_overlaps`` eps (spec 7.1), as a floor (``max``, not ``+``), so every pair of boxes with a
# union of at least 1e-6 px^2 gives the official (no-eps) values bit for bit, and zero-area boxes
# (a point, a line) give finite values instead of 0/0: IoU 0, GIoU 0 for two identical ones.
AREA_EPS = 1e-6


def box_cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``(cx, cy, w, h)`` -> ``(x1, y1, x2, y2)``, any leading shape."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)


def box_xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """``(x1, y1, x2, y2)`` -> ``(cx, cy, w, h)``, any leading shape."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)


def box_xyxy_to_xywh(boxes: Tensor) -> Tensor:
    """``(x1, y1, x2, y2)`` -> COCO ``(x, y, w, h)``."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack((x1, y1, x2 - x1, y2 - y1), dim=-1)


def box_xywh_to_xyxy(boxes: Tensor) -> Tensor:
    """COCO ``(x, y, w, h)`` -> ``(x1, y1, x2, y2)``."""
    x, y, w, h = boxes.unbind(-1)
    return torch.stack((x, y, x + w, y + h), dim=-1)


def box_area(boxes: Tensor) -> Tensor:
    """Area of xyxy boxes, ``(..., 4)`` -> ``(...)``; degenerate boxes may give <= 0."""
    sizes = boxes[..., 2:] - boxes[..., :2]  # (..., 2) widths, heights
    return sizes[..., 0] * sizes[..., 1]


def nonempty_boxes(boxes: Tensor) -> Tensor:
    """``(..., 4)`` xyxy -> ``(...)`` bool: True where the box has positive width and height
    (``x2 > x1`` and ``y2 > y1``), the boxes post-processing keeps after clipping (spec 8)."""
    return (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])


def box_iou(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    """Pairwise IoU of xyxy boxes ``(..., N, 4)`` x ``(..., M, 4)`` -> ``(iou, union)``, each
    ``(..., N, M)``; leading (batch) dimensions broadcast. ``union`` is floored at
    :data:`AREA_EPS` (zero-area boxes: IoU 0, not 0/0)."""
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    top_left = torch.max(boxes1[..., :, None, :2], boxes2[..., None, :, :2])
    bottom_right = torch.min(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = (area1[..., :, None] + area2[..., None, :] - inter).clamp(min=AREA_EPS)
    return inter / union, union


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise GIoU (Rezatofighi et al. 2019) of xyxy boxes ``(..., N, 4)`` x ``(..., M, 4)``
    -> ``(..., N, M)``; leading (batch) dimensions broadcast.

    Values lie in ``[-1, 1]``. Boxes must be well formed (x2 >= x1, y2 >= y1); zero-area boxes
    give finite values (:data:`AREA_EPS`: 0 for two identical ones).
    """
    iou, union = box_iou(boxes1, boxes2)
    top_left = torch.min(boxes1[..., :, None, :2], boxes2[..., None, :, :2])
    bottom_right = torch.max(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    hull = (wh[..., 0] * wh[..., 1]).clamp(min=AREA_EPS)
    return iou - (hull - union) / hull


def paired_generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """GIoU of corresponding rows, ``(K, 4)`` and ``(K, 4)`` -> ``(K,)`` (the loss's diagonal);
    the same floors as :func:`generalized_box_iou`."""
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    # Coordinate-wise min and max of the pair: the intersection is (max x1, max y1, min x2,
    # min y2), the enclosing box (min x1, min y1, max x2, max y2); one op each for both.
    lower, upper = torch.min(boxes1, boxes2), torch.max(boxes1, boxes2)
    wh_inter = (lower[:, 2:] - upper[:, :2]).clamp(min=0)
    inter = wh_inter[:, 0] * wh_inter[:, 1]
    union = (area1 + area2 - inter).clamp(min=AREA_EPS)
    iou = inter / union
    wh_hull = upper[:, 2:] - lower[:, :2]
    hull = (wh_hull[:, 0] * wh_hull[:, 1]).clamp(min=AREA_EPS)
    return iou - (hull - union) / hull


def decode_box_deltas(
    deltas: Tensor,
    boxes: Tensor,
    weights: tuple[float, float, float, float] = BOX_DELTA_WEIGHTS,
    scale_clamp: tuple[float, float] = (-math.inf, OFFICIAL_SCALE_CLAMP),
) -> Tensor:
    """Apply ``(dx, dy, dw, dh)`` deltas to xyxy boxes (spec 6), ``(..., 4)`` each -> ``(..., 4)``.

    ``cx' = cx + dx/wx * w``, ``w' = w * exp(clamp(dw/ww))``; widths are ``x2 - x1`` (no +1).
    ``scale_clamp`` is ``(min, max)`` for the scaled ``dw, dh``: official ``(-inf, 8.74)``,
    mmdetection ``(-4.135, 4.135)``.
    """
    # (x, y) pairs side by side: the same arithmetic per coordinate as four separate columns,
    # in a third of the ops (and of their backward nodes).
    wx, wy, ww, wh = weights
    sizes = boxes[..., 2:] - boxes[..., :2]  # (..., 2) widths, heights
    centers = boxes[..., :2] + 0.5 * sizes
    pred_centers = divide_xy(deltas[..., :2], wx, wy) * sizes + centers
    size_deltas = divide_xy(deltas[..., 2:], ww, wh).clamp(min=scale_clamp[0], max=scale_clamp[1])
    pred_sizes = torch.exp(size_deltas) * sizes
    half = 0.5 * pred_sizes
    return torch.cat((pred_centers - half, pred_centers + half), dim=-1)


def divide_xy(values: Tensor, x: float, y: float) -> Tensor:
    """``(..., 2)`` ``(x, y)`` pairs divided by ``x`` and ``y``: one op where the two are equal
    (every published weighting), bitwise the per-column division either way, and no tensor
    made from host values (a host-to-device copy would break CUDA graph capture)."""
    if x == y:
        return values / x
    return torch.stack((values[..., 0] / x, values[..., 1] / y), dim=-1)


def scale_clamp_for(mode: str) -> tuple[float, float]:
    """The ``(min, max)`` clamp of the scaled ``dw, dh`` for ``mode`` "official" or "mmdet"."""
    if mode == "official":
        return (-math.inf, OFFICIAL_SCALE_CLAMP)
    if mode == "mmdet":
        return (-MMDET_SCALE_CLAMP, MMDET_SCALE_CLAMP)
    raise ValueError(f"unknown box delta clamp {mode!r}; use 'official' or 'mmdet'")


def clip_boxes(boxes: Tensor, height: int | Tensor, width: int | Tensor) -> Tensor:
    """Clip xyxy boxes to ``[0, width] x [0, height]``."""
    x = boxes[..., 0::2].clamp(min=0)
    y = boxes[..., 1::2].clamp(min=0)
    x = torch.minimum(x, torch.as_tensor(width, dtype=boxes.dtype, device=boxes.device))
    y = torch.minimum(y, torch.as_tensor(height, dtype=boxes.dtype, device=boxes.device))
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)
