"""Multi-level RoIAlign equals per-level roi_align on the assigned level, values and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from sparsercnn.ops.multilevel_roi_align import (
    assign_levels,
    flatten_levels,
    multilevel_roi_align,
)
from sparsercnn.ops.roi_sampling import roi_align

STRIDES = (4, 8, 16, 32)
PADDED_H, PADDED_W = 160, 224  # padded batch; the images are 160 x 224 and 120 x 150


def _square(side: float) -> list[float]:
    return [10.0, 20.0, 10.0 + side, 20.0 + side]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_assign_levels_at_canonical_sizes(dtype: torch.dtype) -> None:
    sides = [111.9, 112.0, 223.9, 224.0, 447.9, 448.0, 1e-3, 0.0, 5000.0]
    boxes = torch.tensor([_square(s) for s in sides], dtype=dtype)
    expected = torch.tensor([0, 1, 1, 2, 2, 3, 0, 0, 3])
    assert torch.equal(assign_levels(boxes), expected)
    # Any leading shape; a degenerate box (x2 < x1) goes to the finest level.
    stacked = torch.stack((boxes, boxes[:, [2, 1, 0, 3]]))
    levels = assign_levels(stacked)
    assert levels.shape == (2, len(sides)) and levels.dtype == torch.int64
    assert torch.equal(levels[0], expected) and torch.equal(levels[1][:-1], torch.zeros(8).long())


def _features(dtype: torch.dtype, channels: int = 6) -> list[Tensor]:
    torch.manual_seed(0)
    return [
        torch.randn(2, channels, PADDED_H // s, PADDED_W // s, dtype=dtype, requires_grad=True)
        for s in STRIDES
    ]


def _boxes(dtype: torch.dtype) -> Tensor:
    """``(2, 12, 4)`` boxes hitting all four levels; image 1 is smaller than the padded batch."""
    generator = torch.Generator().manual_seed(1)
    sides = torch.tensor([8.0, 30, 60, 111, 113, 150, 223, 230, 300, 447, 460, 700])
    boxes = []
    for height, width in ((160, 224), (120, 150)):
        centre = torch.rand(12, 2, generator=generator) * torch.tensor([width, height])
        aspect = torch.exp(torch.randn(12, generator=generator) * 0.3)
        half = torch.stack((sides * aspect, sides / aspect), -1) / 2
        boxes.append(torch.cat((centre - half, centre + half), -1))
    return torch.stack(boxes).to(dtype)


def _reference(features: list[Tensor], boxes: Tensor, aligned: bool) -> Tensor:
    """roi_align on every level for every box, then each box's assigned level, head layout."""
    num_images, num_boxes = boxes.shape[:2]
    batch = torch.arange(num_images).repeat_interleave(num_boxes)[:, None].to(boxes.dtype)
    rois = torch.cat((batch, boxes.flatten(0, 1)), dim=1)
    pooled = torch.stack(
        [roi_align(f, rois, 7, 1.0 / s, 2, aligned) for f, s in zip(features, STRIDES, strict=True)]
    )  # (L, K, C, 7, 7)
    level = assign_levels(boxes).flatten()
    return pooled[level, torch.arange(len(level))].flatten(2).transpose(1, 2)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_equals_per_level_roi_align(dtype: torch.dtype, aligned: bool) -> None:
    features, boxes = _features(dtype), _boxes(dtype)
    assert torch.bincount(assign_levels(boxes).flatten(), minlength=4).min() > 0
    levels = flatten_levels(features, STRIDES)
    out = multilevel_roi_align(levels, boxes, aligned=aligned)
    expected = _reference(features, boxes, aligned)
    assert out.shape == (24, 49, 6) and out.dtype == dtype
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(out, expected, atol=tolerance, rtol=0)

    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, features, grad_out)
    expected_grads = torch.autograd.grad(expected, features, grad_out)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad, atol=tolerance, rtol=0)


def test_levels_shared_by_stages_accumulate_gradients() -> None:
    features, boxes = _features(torch.float64), _boxes(torch.float64)
    levels = flatten_levels(features, STRIDES)
    first = multilevel_roi_align(levels, boxes)
    second = multilevel_roi_align(levels, boxes * 0.9 + 3)
    (first.square().sum() + second.sum()).backward()
    expected = _reference(features, boxes, True).square().sum()
    expected = expected + _reference(features, boxes * 0.9 + 3, True).sum()
    expected_grads = torch.autograd.grad(expected, features)
    for feature, expected_grad in zip(features, expected_grads, strict=True):
        assert feature.grad is not None
        torch.testing.assert_close(feature.grad, expected_grad, atol=1e-12, rtol=0)


def test_gradcheck() -> None:
    torch.manual_seed(0)
    p2 = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    p3 = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    # A small box on P2 and a 120 x 115 box on P3, both crossing the image border.
    boxes = torch.tensor([[[2.0, -3.0, 13.0, 9.5], [-40.0, -30.0, 80.0, 85.0]]])
    assert assign_levels(boxes).tolist() == [[0, 1]]
    inputs = (p2, p3)

    def fn(p2: Tensor, p3: Tensor) -> Tensor:
        levels = flatten_levels([p2, p3], (4, 8))
        return multilevel_roi_align(levels, boxes.double(), output_size=3)

    assert torch.autograd.gradcheck(fn, inputs)
    boxes.requires_grad_()
    fn(p2, p3).sum().backward()
    assert boxes.grad is None  # boxes get no gradient, as in torchvision


def test_bfloat16_and_channels_last() -> None:
    features, boxes = _features(torch.float32), _boxes(torch.float32)
    expected = multilevel_roi_align(flatten_levels(features, STRIDES), boxes)
    channels_last = [f.detach().contiguous(memory_format=torch.channels_last) for f in features]
    out = multilevel_roi_align(flatten_levels(channels_last, STRIDES), boxes)
    torch.testing.assert_close(out, expected, atol=0, rtol=0)
    half = [f.detach().bfloat16() for f in features]
    out = multilevel_roi_align(flatten_levels(half, STRIDES), boxes)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, atol=3e-2, rtol=2e-2)


def test_export_matches_eager() -> None:
    class Pooler(torch.nn.Module):
        def forward(self, p2: Tensor, p3: Tensor, p4: Tensor, p5: Tensor, boxes: Tensor) -> Tensor:
            return multilevel_roi_align(flatten_levels([p2, p3, p4, p5], STRIDES), boxes)

    features = [f.detach() for f in _features(torch.float32)]
    boxes = _boxes(torch.float32)
    exported = torch.export.export(Pooler(), (*features, boxes))
    # Fresh boxes of the same shape: the exported graph has no data-dependent shapes.
    boxes = boxes.flip(0)
    torch.testing.assert_close(
        exported.module()(*features, boxes), Pooler()(*features, boxes), atol=1e-5, rtol=0
    )


def test_image_starts_are_the_first_row_of_each_image_on_each_level() -> None:
    features = [f.detach() for f in _features(torch.float32)]
    levels = flatten_levels(features, STRIDES)
    assert levels.image_starts.shape == (2, 4) and levels.image_starts.dtype == torch.int64
    for level, feature in enumerate(features):
        height, width = feature.shape[2:]
        for image in range(2):
            start = int(levels.image_starts[image, level])
            assert start == int(levels.level_starts[level]) + image * height * width
            assert torch.equal(levels.table[start], feature[image, :, 0, 0])
            last = start + height * width - 1
            assert torch.equal(levels.table[last], feature[image, :, -1, -1])


def test_no_boxes() -> None:
    levels = flatten_levels([f.detach() for f in _features(torch.float32)], STRIDES)
    assert multilevel_roi_align(levels, torch.zeros(2, 0, 4)).shape == (0, 49, 6)


def test_invalid_inputs_raise() -> None:
    features = [f.detach() for f in _features(torch.float32)]
    levels = flatten_levels(features, STRIDES)
    with pytest.raises(ValueError, match=r"\(2, N, 4\)"):
        multilevel_roi_align(levels, torch.zeros(3, 5, 4))
    with pytest.raises(ValueError, match="sampling_ratio"):
        multilevel_roi_align(levels, torch.zeros(2, 5, 4), sampling_ratio=0)
    with pytest.raises(ValueError, match="one stride per feature level"):
        flatten_levels(features, STRIDES[:3])
    with pytest.raises(ValueError, match="level 1"):
        flatten_levels([features[0], features[1][:1]], STRIDES[:2])
