"""Winograd convolutions: taken only where opted in and eligible, close to the direct ones."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from sparsercnn.model import build_model, inference, winograd
from sparsercnn.model.inference import evaluating
from sparsercnn.model.winograd import conv2d, winograd_available, winograd_convolutions
from sparsercnn.presets import get_preset

pytestmark = pytest.mark.skipif(not winograd_available(), reason="no NNPACK in this build")


def _direct(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    return F.conv2d(
        x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups
    )


def test_eligible_convolutions_are_close_to_direct_and_keep_the_layout() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(256, 256, 3, padding=1)
    x = torch.randn(2, 256, 48, 80).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        direct = _direct(x, conv)
        with winograd_convolutions():
            fast = conv2d(x, conv.weight, conv.bias, conv)
    assert fast.is_contiguous(memory_format=torch.channels_last)
    assert not torch.equal(fast, direct)  # the Winograd path was taken
    torch.testing.assert_close(fast, direct, rtol=0, atol=1e-4 * direct.abs().max().item())


@pytest.mark.parametrize(
    ("layer", "size"),
    [
        (nn.Conv2d(256, 256, 3, stride=2, padding=1), (48, 80)),
        (nn.Conv2d(256, 256, 1), (48, 80)),
        (nn.Conv2d(256, 256, 3, padding=1, groups=2), (48, 80)),
        (nn.Conv2d(256, 256, 3, padding=2, dilation=2), (48, 80)),
        (nn.Conv2d(256, 128, 3, padding=1), (48, 80)),  # too few channels to pay
        (nn.Conv2d(256, 256, 3, padding=1), (40, 80)),  # too few pixels to pay
    ],
)
def test_ineligible_convolutions_stay_direct(layer: nn.Conv2d, size: tuple[int, int]) -> None:
    x = torch.randn(1, layer.in_channels, *size)
    with torch.no_grad(), winograd_convolutions():
        assert torch.equal(conv2d(x, layer.weight, layer.bias, layer), _direct(x, layer))


def test_autograd_and_the_default_mode_stay_direct() -> None:
    conv = nn.Conv2d(256, 256, 3, padding=1)
    x = torch.randn(1, 256, 48, 80)
    with winograd_convolutions():  # gradients need the direct convolution's backward
        out = conv2d(x, conv.weight, conv.bias, conv)
        assert out.requires_grad and torch.equal(out, _direct(x, conv))
    with torch.no_grad():  # outside the block
        assert torch.equal(conv2d(x, conv.weight, conv.bias, conv), _direct(x, conv))


def test_the_detector_in_winograd_precision_is_close_to_fp32(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The tiny model's convolutions are all too small to pay: take the path for every size.
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)
    monkeypatch.setattr(winograd, "MIN_PIXELS", 1)
    torch.manual_seed(0)
    model = build_model(get_preset("tiny"))
    images = [torch.randint(0, 256, (3, 64, 96)).float()]
    with evaluating(model):
        exact = model(images)
    with evaluating(model, "winograd"):
        fast = model(images)
    for a, b in zip(exact.stages, fast.stages, strict=True):
        assert not torch.equal(a.logits, b.logits)
        torch.testing.assert_close(b.logits, a.logits, rtol=0, atol=1e-3)
        # Raw stage boxes reach ~1000 px: Winograd's ~1e-5 relative error, 1.3e-2 seen on A.
        torch.testing.assert_close(b.boxes, a.boxes, rtol=1e-4, atol=1e-2)


def test_winograd_is_refused_off_the_cpu_and_without_nnpack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValueError, match=r"run on CPUs \(NNPACK\), not on cuda.*use fp32 or bf16"):
        inference.check_precision("winograd", torch.device("cuda"))
    monkeypatch.setattr(inference, "winograd_available", lambda: False)
    with pytest.raises(ValueError, match="has no NNPACK; use fp32"):
        inference.check_precision("winograd", torch.device("cpu"))
