"""Sinusoidal positional encoding of boxes (the paper's optional box-position ablation).

Not used by the released models. When enabled, each stage adds the encoding of its input boxes to
the proposal features before self-attention, so attention can use where the proposals are.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sparsercnn.ops.boxes import box_xyxy_to_cxcywh


def box_sine_encoding(
    boxes: Tensor, image_sizes: Tensor, dim: int, temperature: float = 10000.0
) -> Tensor:
    """Encode xyxy boxes as ``dim`` sine/cosine features.

    Args:
        boxes: ``(B, N, 4)`` absolute xyxy input-image pixels.
        image_sizes: ``(B, 2)`` ``(h, w)`` of the unpadded input images.
        dim: output width; must be divisible by 8 (``dim / 4`` features per coordinate, half sine
            and half cosine).

    Returns:
        ``(B, N, dim)``: for each of ``(cx, cy, w, h)`` normalised to ``[0, 1]`` and scaled by
        ``2*pi``, ``sin`` and ``cos`` at ``dim / 8`` geometric frequencies.
    """
    if dim % 8 != 0:
        raise ValueError(f"box positional encoding needs hidden_dim divisible by 8, got {dim}")
    h = image_sizes[:, 0].to(boxes.dtype)
    w = image_sizes[:, 1].to(boxes.dtype)
    scale = torch.stack((w, h, w, h), dim=-1)[:, None, :]
    coords = box_xyxy_to_cxcywh(boxes) / scale * (2 * math.pi)  # (B, N, 4)
    num_freqs = dim // 8
    exponents = torch.arange(num_freqs, dtype=boxes.dtype, device=boxes.device) / num_freqs
    freqs = temperature ** (-exponents)  # (F,)
    angles = coords[..., None] * freqs  # (B, N, 4, F)
    encoding = torch.cat((angles.sin(), angles.cos()), dim=-1)  # (B, N, 4, 2F)
    return encoding.flatten(-2)
