"""Tests for the FPN: sizes, checkpoint names, the top-down pathway and initialisation."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.nn import functional as F

from sparsercnn.model.backbone import ResNet
from sparsercnn.model.fpn import FPN, add_upsampled

R50_CHANNELS = [256, 512, 1024, 2048]
SMALL_CHANNELS = [8, 16, 24, 32]


def random_features(
    channels: list[int], sizes: list[tuple[int, int]], seed: int = 0
) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(2, c, h, w, generator=generator)
        for c, (h, w) in zip(channels, sizes, strict=True)
    ]


def test_parameter_count_r50() -> None:
    assert sum(p.numel() for p in FPN(R50_CHANNELS, 256).parameters()) == 3_344_384


def test_parameter_names_and_shapes_match_spec() -> None:
    shapes = {name: tuple(p.shape) for name, p in FPN(R50_CHANNELS).named_parameters()}
    expected = {}
    for level, channels in enumerate(R50_CHANNELS):
        expected[f"lateral_convs.{level}.weight"] = (256, channels, 1, 1)
        expected[f"lateral_convs.{level}.bias"] = (256,)
        expected[f"output_convs.{level}.weight"] = (256, 256, 3, 3)
        expected[f"output_convs.{level}.bias"] = (256,)
    assert shapes == expected
    assert FPN.strides == (4, 8, 16, 32)


def test_odd_sizes() -> None:
    # C2..C5 of a 65 x 97 image: ceil(65 / s) x ceil(97 / s).
    sizes = [(17, 25), (9, 13), (5, 7), (3, 4)]
    outputs = FPN(SMALL_CHANNELS, out_dim=16)(random_features(SMALL_CHANNELS, sizes))
    assert [tuple(p.shape) for p in outputs] == [(2, 16, h, w) for h, w in sizes]


def test_matches_detectron2_formulation_on_padded_input() -> None:
    sizes = [(16, 24), (8, 12), (4, 6), (2, 3)]
    fpn = FPN(SMALL_CHANNELS, out_dim=16)
    features = random_features(SMALL_CHANNELS, sizes)
    with torch.no_grad():
        outputs = fpn(features)
        merged = fpn.lateral_convs[3](features[3])
        expected = [fpn.output_convs[3](merged)]
        for level in (2, 1, 0):
            upsampled = F.interpolate(merged, scale_factor=2.0, mode="nearest")
            merged = fpn.lateral_convs[level](features[level]) + upsampled
            expected.insert(0, fpn.output_convs[level](merged))
    for actual, reference in zip(outputs, expected, strict=True):
        torch.testing.assert_close(actual, reference)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("size", [(8, 12), (7, 11), (8, 11)])
def test_add_upsampled_equals_interpolate_sum(
    size: tuple[int, int], memory_format: torch.memory_format
) -> None:
    generator = torch.Generator().manual_seed(0)
    lateral = torch.randn(2, 5, *size, generator=generator)
    lateral = lateral.contiguous(memory_format=memory_format).requires_grad_()
    top = torch.randn(2, 5, 4, 6, generator=generator, requires_grad=True)
    upstream = torch.randn(2, 5, *size, generator=generator)
    expected = lateral + F.interpolate(top, size=size, mode="nearest")
    expected_grads = torch.autograd.grad(expected, [lateral, top], upstream)
    # The in-place fast path writes into its input: give it a non-leaf copy, as the FPN does.
    actual = add_upsampled(lateral * 1, top)
    grads = torch.autograd.grad(actual, [lateral, top], upstream)
    assert torch.equal(actual, expected)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-6)


def test_top_down_pathway() -> None:
    sizes = [(16, 24), (8, 12), (4, 6), (2, 3)]
    features = [f.requires_grad_() for f in random_features(SMALL_CHANNELS, sizes)]
    outputs = FPN(SMALL_CHANNELS, out_dim=16)(features)
    for level, output in enumerate(outputs):
        grads = torch.autograd.grad(output.sum(), features, retain_graph=True, allow_unused=True)
        c5_grad = grads[-1]
        assert c5_grad is not None and c5_grad.abs().sum() > 0, f"P{level + 2} ignores C5"
        # Information flows only top-down: P_k never sees the finer maps C_j, j < k.
        assert all(grad is None for grad in grads[:level]), f"P{level + 2} sees a finer level"


def test_init_is_c2_xavier_fill() -> None:
    fpn = FPN(R50_CHANNELS)
    for name, param in fpn.named_parameters():
        if name.endswith("bias"):
            assert torch.equal(param, torch.zeros_like(param)), name
        else:
            fan_in = param.shape[1] * param.shape[2] * param.shape[3]
            bound = math.sqrt(3.0 / fan_in)
            assert param.abs().max() <= bound, name
            assert param.abs().max() > 0.95 * bound, name


def test_channels_last_matches_contiguous() -> None:
    sizes = [(17, 25), (9, 13), (5, 7), (3, 4)]
    fpn = FPN(SMALL_CHANNELS, out_dim=16)
    fpn_cl = copy.deepcopy(fpn).to(memory_format=torch.channels_last)
    features = random_features(SMALL_CHANNELS, sizes)
    with torch.no_grad():
        expected = fpn(features)
        actual = fpn_cl([f.contiguous(memory_format=torch.channels_last) for f in features])
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-4)


def test_on_resnet_output_has_fpn_strides() -> None:
    backbone = ResNet(18).eval()
    fpn = FPN(backbone.out_channels, out_dim=32)
    with torch.no_grad():
        pyramid = fpn(backbone(torch.randn(1, 3, 64, 96)))
    for level, stride in zip(pyramid, fpn.strides, strict=True):
        assert level.shape == (1, 32, 64 // stride, 96 // stride)


def test_invalid_inputs_raise() -> None:
    with pytest.raises(ValueError, match="in_channels"):
        FPN([256, 512, 1024])
    fpn = FPN(SMALL_CHANNELS, out_dim=16)
    with pytest.raises(ValueError, match="4 feature maps"):
        fpn(random_features(SMALL_CHANNELS[:3], [(8, 8), (4, 4), (2, 2)]))
