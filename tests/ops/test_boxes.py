"""Box geometry against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from sparsercnn.ops.boxes import (
    MMDET_SCALE_CLAMP,
    OFFICIAL_SCALE_CLAMP,
    box_area,
    box_cxcywh_to_xyxy,
    box_iou,
    box_xywh_to_xyxy,
    box_xyxy_to_cxcywh,
    box_xyxy_to_xywh,
    clip_boxes,
    decode_box_deltas,
    generalized_box_iou,
    nonempty_boxes,
    paired_generalized_box_iou,
    scale_clamp_for,
)


def test_format_round_trips() -> None:
    boxes = torch.tensor([[1.0, 2.0, 5.0, 10.0], [0.0, 0.0, 3.0, 3.0]])
    torch.testing.assert_close(box_cxcywh_to_xyxy(box_xyxy_to_cxcywh(boxes)), boxes)
    torch.testing.assert_close(box_xywh_to_xyxy(box_xyxy_to_xywh(boxes)), boxes)
    assert box_xyxy_to_cxcywh(boxes)[0].tolist() == [3.0, 6.0, 4.0, 8.0]
    assert box_area(boxes).tolist() == [32.0, 9.0]


def test_iou_and_giou_hand_computed() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [4.0, 0.0, 6.0, 2.0], [0.0, 0.0, 2.0, 2.0]])
    iou, union = box_iou(a, b)
    torch.testing.assert_close(iou, torch.tensor([[1 / 7, 0.0, 1.0]]))
    assert union[0, 0].item() == 7.0
    giou = generalized_box_iou(a, b)
    # (a, b0): hull 3x3 = 9 -> 1/7 - (9-7)/9; (a, b1): hull 6x2 = 12 -> 0 - (12-8)/12.
    torch.testing.assert_close(giou, torch.tensor([[1 / 7 - 2 / 9, -1 / 3, 1.0]]))
    paired = paired_generalized_box_iou(a.expand(3, 4), b)
    torch.testing.assert_close(paired, giou[0])


def test_zero_area_boxes_give_finite_values_and_gradients() -> None:
    """Two identical points (or lines) divided 0 by 0: NaN in the loss and the matching cost.
    With the union and hull floored (mmdetection's eps), they have IoU 0 and GIoU 0."""
    point, line = [5.0, 5.0, 5.0, 5.0], [2.0, 3.0, 8.0, 3.0]
    box, far_point = [0.0, 0.0, 10.0, 10.0], [20.0, 30.0, 20.0, 30.0]
    a = torch.tensor([point, line, point, point], requires_grad=True)
    b = torch.tensor([point, line, box, far_point], requires_grad=True)
    paired = paired_generalized_box_iou(a, b)
    # A point inside a box: no overlap, the hull is the box (GIoU 0); two points apart: -1.
    assert paired.tolist() == [0.0, 0.0, 0.0, -1.0]
    pairwise = generalized_box_iou(a, b)
    assert torch.equal(pairwise.diagonal(), paired) and pairwise.isfinite().all()
    assert box_iou(a, b)[0].diagonal().tolist() == [0.0, 0.0, 0.0, 0.0]
    (paired.sum() + pairwise.sum()).backward()
    assert a.grad is not None and b.grad is not None
    assert a.grad.isfinite().all() and b.grad.isfinite().all()


def test_the_area_floor_leaves_real_boxes_bit_identical() -> None:
    """The floor is a max, not an added eps: the official no-eps GIoU, bit for bit."""
    generator = torch.Generator().manual_seed(1)
    corners = torch.rand(40, 2, generator=generator, dtype=torch.float64) * 100
    sides = 0.01 + torch.rand(40, 2, generator=generator, dtype=torch.float64) * 50
    boxes = torch.cat((corners, corners + sides), -1).float()
    first, second = boxes[:20], boxes[20:]
    top_left = torch.max(first[:, None, :2], second[None, :, :2])
    wh = (torch.min(first[:, None, 2:], second[None, :, 2:]) - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(first)[:, None] + box_area(second)[None] - inter
    hull_wh = torch.max(first[:, None, 2:], second[None, :, 2:]) - torch.min(
        first[:, None, :2], second[None, :, :2]
    )
    hull = hull_wh[..., 0] * hull_wh[..., 1]
    assert torch.equal(generalized_box_iou(first, second), inter / union - (hull - union) / hull)
    assert torch.equal(
        paired_generalized_box_iou(first, second[:20]),
        generalized_box_iou(first, second).diagonal(),
    )


def test_pairwise_iou_and_giou_broadcast_over_batch_dimensions() -> None:
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(3, 9, 2, generator=generator) * 50
    boxes = torch.cat((corners, corners + 1 + torch.rand(3, 9, 2, generator=generator) * 30), -1)
    first, second = boxes[:, :5], boxes[:, 5:]
    batched_iou, batched_union = box_iou(first, second)
    batched_giou = generalized_box_iou(first, second)
    assert batched_giou.shape == (3, 5, 4)
    for b in range(3):
        iou, union = box_iou(first[b], second[b])
        assert torch.equal(batched_iou[b], iou) and torch.equal(batched_union[b], union)
        assert torch.equal(batched_giou[b], generalized_box_iou(first[b], second[b]))


def test_zero_deltas_are_identity_and_weights_apply() -> None:
    boxes = torch.tensor([[10.0, 20.0, 50.0, 100.0]])
    torch.testing.assert_close(decode_box_deltas(torch.zeros(1, 4), boxes), boxes)
    # dx = 2 with weight 2 moves the centre by one width; dw = log 2 doubles the width.
    out = decode_box_deltas(torch.tensor([[2.0, 0.0, math.log(2.0), 0.0]]), boxes)
    torch.testing.assert_close(out, torch.tensor([[30.0, 20.0, 110.0, 100.0]]))


def test_scale_clamps() -> None:
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    huge = torch.tensor([[0.0, 0.0, 100.0, -100.0]])
    official = decode_box_deltas(huge, boxes, scale_clamp=scale_clamp_for("official"))
    width = official[0, 2] - official[0, 0]
    assert width.item() == pytest.approx(math.exp(OFFICIAL_SCALE_CLAMP), rel=1e-4)
    assert (official[0, 3] - official[0, 1]).item() == pytest.approx(math.exp(-100.0), abs=1e-30)
    mmdet = decode_box_deltas(huge, boxes, scale_clamp=scale_clamp_for("mmdet"))
    assert (mmdet[0, 2] - mmdet[0, 0]).item() == pytest.approx(1000 / 16, rel=1e-4)
    assert (mmdet[0, 3] - mmdet[0, 1]).item() == pytest.approx(
        math.exp(-MMDET_SCALE_CLAMP), rel=1e-4
    )
    with pytest.raises(ValueError, match="official"):
        scale_clamp_for("bogus")


def test_clip_boxes() -> None:
    boxes = torch.tensor([[-5.0, -1.0, 20.0, 30.0]])
    assert clip_boxes(boxes, 25, 10).tolist() == [[0.0, 0.0, 10.0, 25.0]]


def test_nonempty_boxes_needs_positive_width_and_height() -> None:
    boxes = torch.tensor(
        [
            [0.0, 0.0, 2.0, 3.0],  # kept
            [2.0, 0.0, 2.0, 3.0],  # zero width
            [0.0, 3.0, 2.0, 3.0],  # zero height
            [3.0, 0.0, 2.0, 3.0],  # negative width
            [0.0, 0.0, math.nan, 3.0],  # NaN compares False
        ]
    )
    assert nonempty_boxes(boxes).tolist() == [True, False, False, False, False]
    assert nonempty_boxes(boxes.reshape(5, 1, 4)).shape == (5, 1)
