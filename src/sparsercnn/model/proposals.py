"""Learnable proposals (spec 3): N boxes and N features shared by every image.

The boxes are stored as ``boxes_cxcywh_norm`` and scaled to each unpadded input image, so a
proposal covering ``(0.5, 0.5, 1, 1)`` is the whole image whatever its size.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sparsercnn.ops.boxes import box_cxcywh_to_xyxy

PROPOSAL_INITS = ("image", "center", "grid", "random")


def initial_proposal_boxes(
    num_proposals: int, init: str, generator: torch.Generator | None = None
) -> Tensor:
    """Initial ``boxes_cxcywh_norm`` of shape ``(num_proposals, 4)`` (paper Table 6).

    - ``image``: every box is the whole image ``(0.5, 0.5, 1, 1)`` (the released models).
    - ``center``: every box at the image centre with 0.1 of the image's width and height.
    - ``grid``: a regular grid of cell-sized boxes, like the initial anchors of G-CNN: ``rows =
      round(sqrt(N))`` by ``cols = ceil(N / rows)`` cells; when that is more than N cells, N of
      them are taken evenly spaced in row-major order, so the whole image stays covered.
    - ``random``: centres and sizes drawn from a Gaussian ``N(0.5, 0.25)``, clamped to
      ``[0, 1]`` for centres and ``[0.01, 1]`` for sizes.
    """
    if init == "image":
        return torch.tensor([0.5, 0.5, 1.0, 1.0]).repeat(num_proposals, 1)
    if init == "center":
        return torch.tensor([0.5, 0.5, 0.1, 0.1]).repeat(num_proposals, 1)
    if init == "grid":
        rows = max(1, round(math.sqrt(num_proposals)))
        cols = math.ceil(num_proposals / rows)
        cy, cx = torch.meshgrid(
            (torch.arange(rows, dtype=torch.float32) + 0.5) / rows,
            (torch.arange(cols, dtype=torch.float32) + 0.5) / cols,
            indexing="ij",
        )
        grid = torch.stack(
            (cx, cy, torch.full_like(cx, 1.0 / cols), torch.full_like(cy, 1.0 / rows)), dim=-1
        ).reshape(-1, 4)
        picked = torch.linspace(0, rows * cols - 1, num_proposals).round().long()
        return grid[picked].clone()
    if init == "random":
        boxes = torch.normal(0.5, 0.25, (num_proposals, 4), generator=generator)
        boxes[:, :2] = boxes[:, :2].clamp(0.0, 1.0)
        boxes[:, 2:] = boxes[:, 2:].clamp(0.01, 1.0)
        return boxes
    raise ValueError(f"unknown proposal init {init!r}; choose one of {PROPOSAL_INITS}")


class LearnedProposals(nn.Module):
    """``num_proposals`` learnable boxes (``boxes_cxcywh_norm``) and ``hidden_dim`` features.

    Parameters ``boxes.weight`` ``(N, 4)`` and ``features.weight`` ``(N, hidden_dim)``; the features
    keep ``nn.Embedding``'s ``N(0, 1)`` initialisation (spec 3).
    """

    def __init__(self, num_proposals: int, hidden_dim: int, init: str = "image") -> None:
        super().__init__()
        if num_proposals < 1:
            raise ValueError(f"num_proposals must be >= 1, got {num_proposals}")
        self.init = init
        self.boxes = nn.Embedding(num_proposals, 4)
        self.features = nn.Embedding(num_proposals, hidden_dim)
        self.reset_boxes()

    def reset_boxes(self) -> None:
        """Set the boxes to their initialisation (mmdetection #7174: never leave them random)."""
        with torch.no_grad():
            self.boxes.weight.copy_(initial_proposal_boxes(self.boxes.num_embeddings, self.init))

    def forward(self, image_sizes: Tensor) -> tuple[Tensor, Tensor]:
        """Scale the proposals to each image.

        Args:
            image_sizes: ``(B, 2)`` ``(h, w)`` of the unpadded input images.

        Returns:
            boxes ``(B, N, 4)`` absolute xyxy input-image pixels (with gradient to the embedding:
            the first stage's decoding is the only path it learns through) and features
            ``(B, N, hidden_dim)``.
        """
        h = image_sizes[:, 0].to(self.boxes.weight.dtype)
        w = image_sizes[:, 1].to(self.boxes.weight.dtype)
        scale = torch.stack((w, h, w, h), dim=-1)[:, None, :]  # (B, 1, 4)
        boxes = box_cxcywh_to_xyxy(self.boxes.weight)[None] * scale
        features = self.features.weight[None].expand(image_sizes.shape[0], -1, -1)
        return boxes, features
