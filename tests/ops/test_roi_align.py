"""roi_align against a slow per-sample transcription of torchvision's CPU kernel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sparsercnn.ops.roi_sampling import roi_align


def _bilinear(feature: np.ndarray, y: np.floating, x: np.floating, dtype: type) -> np.ndarray:
    """One sample of ``feature`` ``(C, H, W)``, torchvision's border rules, all ops in ``dtype``."""
    _, height, width = feature.shape
    if not (-1.0 <= y <= height and -1.0 <= x <= width):
        return np.zeros(feature.shape[0], dtype)
    if y <= 0:
        y = dtype(0)
    if x <= 0:
        x = dtype(0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_high = y_low = height - 1
        y = dtype(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_high = x_low = width - 1
        x = dtype(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - dtype(y_low), x - dtype(x_low)
    hy, hx = dtype(1) - ly, dtype(1) - lx
    return (
        hy * hx * feature[:, y_low, x_low]
        + hy * lx * feature[:, y_low, x_high]
        + ly * hx * feature[:, y_high, x_low]
        + ly * lx * feature[:, y_high, x_high]
    )


def reference_roi_align(
    feature: np.ndarray,
    rois: np.ndarray,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> np.ndarray:
    """Scalar loops over RoIs, bins and samples (channels vectorised), arithmetic in the dtype of
    ``feature`` with the kernel's operation order."""
    dtype = feature.dtype.type
    pooled_h, pooled_w = output_size
    out = np.zeros((len(rois), feature.shape[1], pooled_h, pooled_w), dtype)
    scale = dtype(spatial_scale)
    offset = dtype(0.5 if aligned else 0.0)
    for n, roi in enumerate(rois.astype(dtype)):
        start_w, start_h = roi[1] * scale - offset, roi[2] * scale - offset
        roi_w = (roi[3] * scale - offset) - start_w
        roi_h = (roi[4] * scale - offset) - start_h
        if not aligned:
            roi_w, roi_h = max(roi_w, dtype(1)), max(roi_h, dtype(1))
        bin_h, bin_w = roi_h / dtype(pooled_h), roi_w / dtype(pooled_w)
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / dtype(pooled_h))
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / dtype(pooled_w))
        count = dtype(max(grid_h * grid_w, 1))
        image = feature[int(roi[0])]
        for ph in range(pooled_h):
            for pw in range(pooled_w):
                acc = np.zeros(feature.shape[1], dtype)
                for iy in range(grid_h):
                    y = start_h + dtype(ph) * bin_h + dtype(iy + 0.5) * bin_h / dtype(grid_h)
                    for ix in range(grid_w):
                        x = start_w + dtype(pw) * bin_w + dtype(ix + 0.5) * bin_w / dtype(grid_w)
                        acc = acc + _bilinear(image, y, x, dtype)
                out[n, :, ph, pw] = acc / count
    return out


HEIGHT, WIDTH, SCALE = 10, 13, 0.5  # feature map; the image is 20 x 26 pixels


def _boxes(num_images: int, seed: int) -> np.ndarray:
    """``(K, 5)`` rois ``(batch, x1, y1, x2, y2)`` in image pixels covering the edge cases."""
    rng = np.random.default_rng(seed)
    img_w, img_h = WIDTH / SCALE, HEIGHT / SCALE
    x1 = rng.uniform(-5, img_w, 24)
    y1 = rng.uniform(-5, img_h, 24)
    random = np.stack((x1, y1, x1 + rng.uniform(0.5, 20, 24), y1 + rng.uniform(0.5, 16, 24)), 1)
    special = [
        [-30, -30, -10, -12],  # fully outside, top-left
        [img_w + 4, img_h + 3, img_w + 20, img_h + 25],  # fully outside, bottom-right
        [-20, 2, -5, 14],  # outside on the left only
        [-8, -6, img_w + 7, img_h + 9],  # crosses every border
        [-4, 3, 6, 8],  # left border
        [20, -4, 24, 5],  # top border
        [img_w - 3, 5, img_w + 6, 9],  # right border
        [4, img_h - 2, 12, img_h + 5],  # bottom border
        [7.3, 5.1, 7.35, 5.12],  # tiny
        [-200, -150, 300, 260],  # huge
        [9, 6, 4, 2],  # degenerate: x2 < x1, y2 < y1
        [5, 5, 5, 5],  # zero size
        [3, 4, 3, 12],  # zero width
        [0, 0, img_w, img_h],  # the whole image
    ]
    # Samples exactly at -1 and at H (W) with 7 bins and sampling ratio 2: a 7-pixel RoI
    # starting at -1.25 or ending at H + 0.25 on the feature map; for aligned=False and True.
    for shift in (0.0, 0.5):
        low = (np.array([-1.25, -1.25, 5.75, 5.75]) + shift) / SCALE
        high = (
            np.array([WIDTH - 6.75, HEIGHT - 6.75, WIDTH + 0.25, HEIGHT + 0.25]) + shift
        ) / SCALE
        special += [low.tolist(), high.tolist()]
    boxes = np.concatenate((random, np.asarray(special, np.float64)))
    batch = rng.integers(0, num_images, len(boxes)).astype(np.float64)
    return np.concatenate((batch[:, None], boxes), 1)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [2, -1])
@pytest.mark.parametrize("output_size", [(7, 7), (3, 4)])
def test_matches_reference(
    dtype: torch.dtype, aligned: bool, sampling_ratio: int, output_size: tuple[int, int]
) -> None:
    torch.manual_seed(0)
    feature = torch.randn(3, 5, HEIGHT, WIDTH, dtype=dtype)
    rois = torch.from_numpy(_boxes(3, seed=1)).to(dtype)
    expected = reference_roi_align(
        feature.numpy(), rois.numpy(), output_size, SCALE, sampling_ratio, aligned
    )
    out = roi_align(feature, rois, output_size, SCALE, sampling_ratio, aligned)
    assert out.shape == (len(rois), 5, *output_size) and out.dtype == dtype
    tolerance = 1e-10 if dtype == torch.float64 else 2e-6
    torch.testing.assert_close(out, torch.from_numpy(expected), atol=tolerance, rtol=0)
    # Fully outside boxes give exact zeros, as in the kernel.
    assert (out[24:27] == 0).all()


@pytest.mark.parametrize("sampling_ratio", [2, -1])
def test_non_dyadic_scale_and_nan_boxes(sampling_ratio: int) -> None:
    torch.manual_seed(0)
    feature = torch.randn(2, 3, HEIGHT, WIDTH, dtype=torch.float64)
    rois = torch.from_numpy(_boxes(2, seed=5))
    expected = reference_roi_align(
        feature.numpy(), rois.numpy(), (7, 7), 1 / 3, sampling_ratio, True
    )
    out = roi_align(feature, rois, 7, 1 / 3, sampling_ratio, aligned=True)
    torch.testing.assert_close(out, torch.from_numpy(expected), atol=1e-10, rtol=0)
    # NaN coordinates sample nothing (current torchvision kernels), instead of poisoning the bin.
    nan = float("nan")
    nan_rois = torch.tensor([[0, nan, 1, 5, 6], [1, 1, 2, nan, 5]], dtype=torch.float64)
    assert torch.equal(
        roi_align(feature, nan_rois, 3, 1.0, sampling_ratio), torch.zeros(2, 3, 3, 3)
    )


def test_list_of_boxes_equals_tensor_form() -> None:
    torch.manual_seed(0)
    feature = torch.randn(2, 4, HEIGHT, WIDTH, dtype=torch.float64)
    per_image = [torch.rand(5, 4, dtype=torch.float64) * 20, torch.rand(3, 4, dtype=torch.float64)]
    per_image = [torch.cat((b[:, :2], b[:, :2] + b[:, 2:]), 1) for b in per_image]
    rois = torch.cat(
        [torch.cat((torch.full((len(b), 1), float(i)), b), 1) for i, b in enumerate(per_image)]
    )
    for sampling_ratio in (2, -1):
        from_list = roi_align(feature, per_image, 7, SCALE, sampling_ratio, aligned=True)
        from_rois = roi_align(feature, rois, 7, SCALE, sampling_ratio, aligned=True)
        torch.testing.assert_close(from_list, from_rois, atol=0, rtol=0)
        expected = reference_roi_align(
            feature.numpy(), rois.numpy(), (7, 7), SCALE, sampling_ratio, True
        )
        torch.testing.assert_close(from_list, torch.from_numpy(expected), atol=1e-10, rtol=0)


@pytest.mark.parametrize("sampling_ratio", [2, -1])
def test_gradcheck(sampling_ratio: int) -> None:
    torch.manual_seed(0)
    feature = torch.randn(2, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor(
        # The x2 < x1 box samples nothing: empty bags between non-empty ones.
        [[0, 1.0, 2.0, 9.5, 8.0], [0, 5.0, 5.0, 2.0, 9.0], [1, -3.0, -2.0, 4.0, 15.0]],
        dtype=torch.float64,
        requires_grad=True,
    )

    def fn(x: torch.Tensor) -> torch.Tensor:
        return roi_align(x, rois, (3, 2), 0.5, sampling_ratio, aligned=True)

    assert torch.autograd.gradcheck(fn, (feature,))
    fn(feature).sum().backward()
    assert rois.grad is None  # boxes get no gradient, as in torchvision


def test_empty_boxes_and_bfloat16() -> None:
    torch.manual_seed(0)
    feature = torch.randn(2, 4, HEIGHT, WIDTH)
    for sampling_ratio in (2, -1):
        empty = roi_align(feature, torch.zeros(0, 5), 7, SCALE, sampling_ratio)
        assert empty.shape == (0, 4, 7, 7)
    rois = torch.from_numpy(_boxes(2, seed=3)).float()
    for sampling_ratio in (2, -1):
        full = roi_align(feature, rois, 7, SCALE, sampling_ratio, aligned=True)
        half = roi_align(feature.bfloat16(), rois, 7, SCALE, sampling_ratio, aligned=True)
        assert half.dtype == torch.bfloat16
        torch.testing.assert_close(half.float(), full, atol=3e-2, rtol=2e-2)


def test_invalid_shapes_raise() -> None:
    with pytest.raises(ValueError, match=r"\(K, 5\)"):
        roi_align(torch.zeros(1, 1, 4, 4), torch.zeros(3, 4), 2)
    with pytest.raises(ValueError, match=r"boxes\[0\]"):
        roi_align(torch.zeros(1, 1, 4, 4), [torch.zeros(3, 5)], 2)
