"""RoIAlign in pure PyTorch, with the semantics of ``torchvision.ops.roi_align``'s kernels.

Every output bin averages bilinear samples taken on a regular grid inside the bin (spec 4).
The samples become a table of (feature row, weight) entries that one fused gather-and-weighted-
sum (``embedding_bag``) reduces over a channels-last copy of the features. The sampling helpers
(:func:`regular_samples`, :func:`weighted_gather`) are shared with the multi-level extractor in
:mod:`sparsercnn.ops.multilevel_roi_align`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from sparsercnn.ops.boxes import divide_xy
from sparsercnn.runtime import is_exporting


def roi_align(
    input: Tensor,
    boxes: Tensor | list[Tensor],
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """RoIAlign (He et al., Mask R-CNN) with ``torchvision.ops.roi_align``'s signature and results.

    Args:
        input: ``(B, C, H, W)`` feature map (float32, float64, bfloat16 or float16).
        boxes: ``(K, 5)`` rows ``(batch_index, x1, y1, x2, y2)``, or a list of B ``(L_i, 4)``
            xyxy tensors; coordinates in input-image pixels (multiplied by ``spatial_scale``).
        output_size: ``ph`` or ``(ph, pw)`` bins per RoI.
        spatial_scale: feature-map size / image size, e.g. 1/4 for FPN P2.
        sampling_ratio: samples per bin along each axis; ``<= 0`` chooses
            ``ceil(roi_size / bins)`` per RoI (adaptive: slower, data-dependent sizes).
        aligned: shift boxes by -0.5 pixel (pixel-centre model, "ROIAlignV2"); when False,
            RoIs are widened to at least 1x1 like the legacy kernel.

    Returns:
        ``(K, C, ph, pw)``, dtype of ``input``. Differentiable w.r.t. ``input``; ``boxes``
        receive no gradient.
    """
    if input.dim() != 4:
        raise ValueError(f"roi_align: input must be (B, C, H, W), got {tuple(input.shape)}")
    pooled_h, pooled_w = _pair(output_size)
    rois = _boxes_to_rois(boxes).detach().to(coordinate_dtype(input.dtype))
    num_images, channels, height, width = input.shape
    # (B*H*W, C); the backward of this copy is a free permuted view of the table gradient.
    table = input.permute(0, 2, 3, 1).reshape(-1, channels)

    offset = 0.5 if aligned else 0.0
    corners = rois[:, 1:] * spatial_scale - offset  # (K, 4) xyxy feature-map pixels
    start = corners[:, :2]  # (K, 2) along (x, y)
    roi_size = corners[:, 2:] - start
    if not aligned:
        roi_size = roi_size.clamp(min=1.0)
    image_base = rois[:, 0].to(torch.int64).clamp(0, num_images - 1) * (height * width)

    if sampling_ratio > 0:
        bin_size = divide_xy(roi_size, pooled_w, pooled_h)
        size = small_vector((width, height), torch.int64, input.device)
        index, weight = regular_samples(
            image_base, start, bin_size, (pooled_h, pooled_w), size, sampling_ratio
        )
        out = weighted_gather(table, index, weight.to(table.dtype))
        out = out / (sampling_ratio * sampling_ratio)
    else:
        roi_w, roi_h = roi_size.unbind(1)
        bin_h, bin_w = roi_h / pooled_h, roi_w / pooled_w
        axis_h = (start[:, 1], bin_h, pooled_h, height)
        axis_w = (start[:, 0], bin_w, pooled_w, width)
        grid_h = torch.ceil(roi_h / pooled_h).to(torch.int64)
        grid_w = torch.ceil(roi_w / pooled_w).to(torch.int64)
        index, weight, offsets = _adaptive_samples(image_base, axis_h, axis_w, grid_h, grid_w)
        out = weighted_gather(table, index, weight.to(table.dtype), offsets)
        # torchvision divides by max(grid_h * grid_w, 1), zero-weight samples included.
        count = (grid_h * grid_w).clamp(min=1).to(out.dtype)
        out = out / count.repeat_interleave(pooled_h * pooled_w)[:, None]
    # (K*ph*pw, C) -> (K, C, ph, pw)
    return out.unflatten(0, (-1, pooled_h, pooled_w)).permute(0, 3, 1, 2).contiguous()


def small_vector(values: Sequence[float], dtype: torch.dtype, device: torch.device) -> Tensor:
    """``(len(values),)`` tensor of ``values`` on ``device``, filled on the device rather than
    copied from the host (``torch.tensor(values, device=...)``), so that it can be captured in
    a CUDA graph."""
    return torch.stack([torch.full((), v, dtype=dtype, device=device) for v in values])


def regular_samples(
    image_base: Tensor,
    start: Tensor,
    bin_size: Tensor,
    num_bins: tuple[int, int],
    size: Tensor,
    grid: int,
    weight_scale: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Table rows and bilinear weights of a fixed ``grid x grid`` sampling of every bin.

    The grid is separable: corners and weights are computed for both axes at once,
    ``(K, 2, bins, 2 * grid)`` (sample-major, corner-minor), and combined by one broadcast each.

    Args:
        image_base: ``(K,)`` int64 table row of pixel (0, 0) of each RoI's feature map, in a
            channels-last table whose rows run over x fastest, then y.
        start, bin_size: ``(K, 2)`` RoI start and bin size along ``(x, y)``, in feature-map
            pixels.
        num_bins: ``(ph, pw)`` bins along y and x.
        size: int64 feature-map ``(W, H)``, ``(K, 2)`` per RoI or ``(2,)`` for all.
        grid: samples per bin along each axis.
        weight_scale: multiplies every weight (``1 / grid**2`` folds the bin average in; exact
            when ``grid`` is a power of two).

    Returns:
        ``index`` (int64) and ``weight``, both ``(K * ph * pw, grid * grid * 4)``; bins are
        row-major, entries ordered (iy, y corner, ix, x corner); weights are
        ``hy * (hx * weight_scale)``.
    """
    pooled_h, pooled_w = num_bins
    # (K, 2, bins, grid) each, axis 1 = (x, y); the axis with fewer bins ignores the extra ones.
    low, high, w_low, w_high = _axis_grid(start, bin_size, max(num_bins), grid, size)
    corners = torch.stack((low, high), -1).flatten(3)  # (K, 2, bins, 2 * grid)
    weights = torch.stack((w_low, w_high), -1).flatten(3)
    width = size[..., 0, None, None]  # (K, 1, 1) or (1, 1)
    rows = corners[:, 1, :pooled_h] * width + image_base[:, None, None]  # (K, ph, 2 * grid)
    cols = corners[:, 0, :pooled_w]  # (K, pw, 2 * grid)
    wy, wx = weights[:, 1, :pooled_h], weights[:, 0, :pooled_w]
    if weight_scale != 1.0:
        wx = wx * weight_scale
    # (K, ph, 1, 2gy, 1) with (K, 1, pw, 1, 2gx) -> (K, ph, pw, 2gy, 2gx): inner runs of 2gx
    # elements, several times faster than broadcasting over separate sample and corner axes.
    index = rows[:, :, None, :, None] + cols[:, None, :, None, :]
    weight = wy[:, :, None, :, None] * wx[:, None, :, None, :]
    return index.flatten(3).flatten(0, 2), weight.flatten(3).flatten(0, 2)


def _adaptive_samples(
    image_base: Tensor,
    axis_h: tuple[Tensor, Tensor, int, int],
    axis_w: tuple[Tensor, Tensor, int, int],
    grid_h: Tensor,
    grid_w: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """Ragged sampling with a per-RoI ``grid_h x grid_w`` grid (``sampling_ratio <= 0``).

    Bins of different RoIs hold different numbers of samples, so entries are laid out flat
    without padding: RoI-major, then bin, sample (iy, ix) and corner (y, x).

    Args:
        image_base: ``(K,)`` int64 first table row of each RoI's image.
        axis_h, axis_w: ``(roi_start (K,), bin_size (K,), num_bins, length)`` per axis.
        grid_h, grid_w: ``(K,)`` int64 samples per bin; ``<= 0`` means no samples.

    Returns:
        ``index`` ``(E,)`` int64 table rows, ``weight`` ``(E,)`` (``hy * hx``) and ``offsets``
        ``(K * ph * pw,)`` int64 start of each bin's entries.
    """
    start_h, bin_h, pooled_h, height = axis_h
    start_w, bin_w, pooled_w, width = axis_w
    num_bins = pooled_h * pooled_w
    device, dtype = grid_h.device, start_h.dtype
    # Negative grids (aligned, x2 < x1) sample nothing, like torchvision's empty loops.
    per_bin = grid_h.clamp(min=0) * grid_w.clamp(min=0)  # (K,)
    roi_of_bag = torch.arange(len(per_bin), device=device).repeat_interleave(num_bins)
    bag_sizes = per_bin[roi_of_bag]  # (M,) with M = K * ph * pw
    total = int(bag_sizes.sum())  # data-dependent size: the adaptive path's one device sync
    bag = torch.arange(len(bag_sizes), device=device).repeat_interleave(
        bag_sizes, output_size=total
    )
    bag_start = torch.cumsum(bag_sizes, 0) - bag_sizes
    # Per sample (T,): its RoI k, bin (p, q) and position s = iy * grid_w + ix inside the bin.
    sample = torch.arange(total, device=device) - bag_start[bag]
    k = roi_of_bag[bag]
    bin_in_roi = bag - k * num_bins
    gh, gw = grid_h[k], grid_w[k]
    pos_y = sample_positions(
        start_h[k],
        bin_h[k],
        (bin_in_roi // pooled_w).to(dtype),
        (sample // gw).to(dtype),
        gh.to(dtype),
    )
    pos_x = sample_positions(
        start_w[k],
        bin_w[k],
        (bin_in_roi % pooled_w).to(dtype),
        (sample % gw).to(dtype),
        gw.to(dtype),
    )
    y_low, y_high, hy, ly = bilinear_corners(pos_y, height)
    x_low, x_high, hx, lx = bilinear_corners(pos_x, width)
    # (T, 2, 1) y corners x (T, 1, 2) x corners -> (4T,)
    rows = (torch.stack((y_low, y_high), -1) * width + image_base[k, None])[:, :, None]
    index = rows + torch.stack((x_low, x_high), -1)[:, None, :]
    weight = torch.stack((hy, ly), -1)[:, :, None] * torch.stack((hx, lx), -1)[:, None, :]
    return index.flatten(), weight.flatten(), 4 * bag_start


class _WeightedGather(torch.autograd.Function):
    """``out[m] = sum_s weight[m, s] * table[index[m, s]]`` and its transpose as backward."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        table: Tensor,
        index: Tensor,
        weight: Tensor,
        offsets: Tensor | None,
    ) -> Tensor:
        if offsets is None:
            ctx.save_for_backward(index, weight)
        else:
            ctx.save_for_backward(index, weight, offsets)
        ctx.table_rows = table.shape[0]  # type: ignore[attr-defined]
        if offsets is None and (is_exporting() or torch.onnx.is_in_onnx_export()):
            # Plain gather + matmul for torch.export / ONNX; materialises (M, S, C).
            rows = table.index_select(0, index.flatten()).unflatten(0, index.shape)
            return torch.matmul(weight.unsqueeze(1), rows).squeeze(1)
        return F.embedding_bag(index, table, offsets, per_sample_weights=weight, mode="sum")

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad_out: Tensor
    ) -> tuple[Tensor, None, None, None]:
        index, weight, *ragged = ctx.saved_tensors  # type: ignore[attr-defined]
        num_rows: int = ctx.table_rows  # type: ignore[attr-defined]
        # The transpose of the forward: sort the entries by table row, then every table row is a
        # bag over the output gradients. One pass writes the whole (P, C) gradient (untouched
        # rows are empty bags -> 0); no atomics, no (E, C) temporary, data-independent shapes.
        flat_index = index.flatten()
        # A stable sort of integer keys is a radix sort on CPUs, and 32-bit keys halve its
        # passes: 2.7x faster than argsort for a 300k-entry stage of the demo.
        keys = flat_index.to(torch.int32) if num_rows < 2**31 else flat_index
        order = torch.sort(keys, stable=True).indices
        if ragged:
            # Bag of each entry: the last bag starting at or before it (empty bags share starts).
            bag = torch.searchsorted(ragged[0], order, right=True) - 1
        else:
            bag = order // index.shape[1]
        counts = torch.bincount(flat_index, minlength=num_rows)
        row_starts = counts.cumsum(0) - counts
        grad_table = F.embedding_bag(
            bag, grad_out, row_starts, per_sample_weights=weight.flatten()[order], mode="sum"
        )
        return grad_table, None, None, None


def weighted_gather(
    table: Tensor, index: Tensor, weight: Tensor, offsets: Tensor | None = None
) -> Tensor:
    """Weighted sum of table rows per bag; differentiable w.r.t. ``table`` only.

    Args:
        table: ``(P, C)`` feature rows (channels last).
        index: ``(M, S)`` int64 row indices, one bag of ``S`` entries per output row; or ``(E,)``
            entries of ragged bags delimited by ``offsets``.
        weight: same shape as ``index``, dtype of ``table``.
        offsets: ``(M,)`` int64 start of each ragged bag in ``index``, or None for 2-D bags.

    Returns:
        ``(M, C)``: ``out[m] = sum_s weight[m, s] * table[index[m, s]]``; empty bags give 0.
        The backward writes one ``(P, C)`` gradient, however many bags there are.
    """
    out: Tensor = _WeightedGather.apply(table, index, weight.detach(), offsets)
    return out


def coordinate_dtype(dtype: torch.dtype) -> torch.dtype:
    """Dtype in which sample coordinates and weights are computed for features of ``dtype``.

    float64 stays float64 (exact parity with torchvision's double kernel); everything else uses
    float32 so that bfloat16/float16 features still get accurate sampling positions.
    """
    return torch.float64 if dtype == torch.float64 else torch.float32


def sample_positions(
    roi_start: Tensor, bin_size: Tensor, bin_index: Tensor, sample_index: Tensor, grid: Tensor | int
) -> Tensor:
    """Sample coordinates along one axis, in torchvision's float operation order.

    ``start + bin * bin_size + (i + 0.5) * bin_size / grid``; all arguments broadcast together.
    ``bin_index`` and ``sample_index`` are integer-valued tensors of the coordinate dtype.
    """
    return roi_start + bin_index * bin_size + (sample_index + 0.5) * bin_size / grid


def bilinear_corners(pos: Tensor, length: Tensor | int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Bilinear interpolation corners along one axis with torchvision's border rules.

    A sample outside ``[-1, length]`` (or NaN) contributes nothing (both weights 0). Otherwise
    ``pos`` is clamped to ``[0, length - 1]``; ``low = int(pos)``, ``high = min(low + 1,
    length - 1)``, so a sample in the last pixel (or beyond it, up to ``length``) reads that
    pixel with weight 1. This equals torchvision's ``if (y_low >= height - 1)`` branch.

    Args:
        pos: sample coordinates on the feature map, any shape.
        length: axis length (H or W), an int or an int64 tensor broadcastable to ``pos``.

    Returns:
        ``(low, high, w_low, w_high)``: int64 indices in ``[0, length - 1]`` and weights
        (``pos.dtype``), all of ``pos``'s broadcast shape.
    """
    valid = (pos >= -1.0) & (pos <= length)
    last = length - 1
    # Float clamp reproduces the edge rule exactly; the int clamp only guards against NaN boxes.
    pos = pos.clamp(min=0.0).clamp(max=last.to(pos.dtype) if isinstance(last, Tensor) else last)
    low = pos.to(torch.int64).clamp(min=0).clamp(max=last)
    high = (low + 1).clamp(max=last)
    w_high = pos - low.to(pos.dtype)
    w_low = 1.0 - w_high
    # where, not a multiply: NaN positions (NaN boxes) must give weight 0 like the kernel.
    zero = pos.new_zeros(())
    return low, high, torch.where(valid, w_low, zero), torch.where(valid, w_high, zero)


def _axis_grid(
    start: Tensor, bin_size: Tensor, num_bins: int, grid: int, length: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Corners of a fixed ``grid`` of samples in each of ``num_bins`` bins along both axes.

    ``start``, ``bin_size``: ``(K, 2)``; ``length``: int64 ``(K, 2)`` or ``(2,)``. Returns
    ``(low, high, w_low, w_high)``, each ``(K, 2, num_bins, grid)``.
    """
    bins = torch.arange(num_bins, device=start.device, dtype=start.dtype)[:, None]
    samples = torch.arange(grid, device=start.device, dtype=start.dtype)
    pos = sample_positions(start[..., None, None], bin_size[..., None, None], bins, samples, grid)
    return bilinear_corners(pos, length[..., None, None])


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _boxes_to_rois(boxes: Tensor | list[Tensor]) -> Tensor:
    """Per-image ``list[(L_i, 4)]`` xyxy -> ``(K, 5)`` rows ``(batch_index, x1, y1, x2, y2)``."""
    if isinstance(boxes, Tensor):
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(f"roi_align: boxes tensor must be (K, 5), got {tuple(boxes.shape)}")
        return boxes
    for i, b in enumerate(boxes):
        if b.dim() != 2 or b.shape[1] != 4:
            raise ValueError(f"roi_align: boxes[{i}] must be (L, 4) xyxy, got {tuple(b.shape)}")
    rois = torch.cat(list(boxes))
    batch = torch.cat([torch.full_like(b[:, :1], i) for i, b in enumerate(boxes)])
    return torch.cat((batch, rois), dim=1)
