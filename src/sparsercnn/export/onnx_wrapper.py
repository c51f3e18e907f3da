"""The export-only module: padded RGB images in, top-k detections in original pixels out.

:class:`SparseRCNNOnnxModel` wraps a trained :class:`~sparsercnn.model.SparseRCNN` for
``torch.onnx.export``. It does in one fixed-shape graph what :meth:`SparseRCNN.preprocess`,
:meth:`SparseRCNN.forward` and :class:`~sparsercnn.model.PostProcessor` do in eager mode
(spec 1.1 and 8): normalisation and padding to /32, backbone, FPN, every refinement stage with
multi-level RoIAlign, sigmoid, top-k over ``N x C`` and rescaling to the original images. Only
the resize (a PIL operation) stays outside the graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsercnn.model import SparseRCNN
from sparsercnn.structures import ImageBatch

INPUT_NAMES = ("images", "image_sizes", "original_sizes")
OUTPUT_NAMES = ("boxes", "scores", "labels")


class SparseRCNNOnnxModel(nn.Module):
    """Sparse R-CNN inference as one exportable graph with data-independent shapes.

    Boxes that official post-processing drops (zero width or height after clipping to the
    original image, spec 8 step 3) cannot be dropped from fixed-shape outputs. They are kept with
    their score set to 0 and sorted after every real detection, so keeping only ``scores > 0``
    reproduces :class:`~sparsercnn.model.PostProcessor` with ``clip_boxes=True``. With
    ``clip_boxes=False`` (mmdetection behaviour) nothing is clipped and no score is changed.

    Call ``.eval()`` before exporting or running it (the wrapper shares, not copies, the
    detector's parameters, and does not change its mode on construction).

    Args:
        model: the trained detector.
        clip_boxes: clip to the original image and zero the scores of empty boxes (official).
        num_stages: use only the first k stages (default all).
    """

    def __init__(
        self, model: SparseRCNN, *, clip_boxes: bool = True, num_stages: int | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.clip_boxes = clip_boxes
        self.num_stages = num_stages

    def forward(
        self, images: Tensor, image_sizes: Tensor, original_sizes: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Detect objects in a batch of resized images.

        Args:
            images: ``(B, 3, H, W)`` float32 RGB 0-255, image ``i`` in the top-left
                ``image_sizes[i]`` corner; the rest is ignored (it becomes the zero padding of
                spec 1.1 whatever it holds). ``H`` and ``W`` need not be multiples of 32: the
                graph pads.
            image_sizes: ``(B, 2)`` int64 ``(h, w)`` of each resized, unpadded image.
            original_sizes: ``(B, 2)`` int64 ``(h, w)`` of each image before resizing.

        Returns:
            ``boxes (B, k, 4)`` float32 absolute xyxy pixels of the original images,
            ``scores (B, k)`` float32 sigmoid scores sorted descending, ``labels (B, k)`` int64
            contiguous labels, with ``k = N`` (the number of proposals). With ``clip_boxes``,
            removed boxes have score 0 and come last.
        """
        batch = ImageBatch(self.normalise_and_pad(images, image_sizes), image_sizes)
        output = self.model(batch, num_stages=self.num_stages)
        return self.detections(output.last.logits, output.last.boxes, image_sizes, original_sizes)

    def normalise_and_pad(self, images: Tensor, image_sizes: Tensor) -> Tensor:
        """``(B, 3, H, W)`` 0-255 -> normalised ``(B, 3, Hp, Wp)``, zero outside each image.

        ``Hp, Wp`` are ``H, W`` rounded up to the model's size divisibility. Masking (rather than
        trusting the caller's padding) makes the padding exactly zero after normalisation.
        """
        divisor = self.model.size_divisibility
        height, width = images.shape[-2:]
        # (-x) % d pads x up to a multiple of d; F.pad's order is (left, right, top, bottom).
        images = F.pad(images, (0, (-width) % divisor, 0, (-height) % divisor))
        mean, std = self.model.pixel_mean, self.model.pixel_std
        assert isinstance(mean, Tensor) and isinstance(std, Tensor)  # buffers
        normalised = (images - mean) / std
        rows = torch.arange(images.shape[-2], device=images.device)
        cols = torch.arange(images.shape[-1], device=images.device)
        inside_h = rows[None, :] < image_sizes[:, 0:1]  # (B, Hp)
        inside_w = cols[None, :] < image_sizes[:, 1:2]  # (B, Wp)
        inside = inside_h[:, None, :, None] & inside_w[:, None, None, :]  # (B, 1, Hp, Wp)
        return torch.where(inside, normalised, torch.zeros_like(normalised))

    def detections(
        self, logits: Tensor, boxes: Tensor, image_sizes: Tensor, original_sizes: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Spec 8 with fixed shapes: top-N of the sigmoid scores, rescale, clip.

        Args:
            logits: ``(B, N, C)`` last-stage class logits.
            boxes: ``(B, N, 4)`` xyxy input-image pixels.
            image_sizes, original_sizes: ``(B, 2)`` ``(h, w)`` of input and original images.

        Returns:
            ``(boxes (B, N, 4), scores (B, N), labels (B, N))`` as :meth:`forward`.
        """
        num_proposals, num_classes = logits.shape[1], logits.shape[2]
        k = min(num_proposals, num_proposals * num_classes)
        scores, indices = logits.sigmoid().flatten(1).topk(k, dim=1)  # (B, k), descending
        labels = indices % num_classes
        picked = boxes.gather(1, (indices // num_classes)[..., None].expand(-1, -1, 4))
        original = original_sizes.to(picked.dtype)
        scale = original / image_sizes.to(picked.dtype)  # (B, 2) as (y, x)
        picked = picked * scale[:, None, :].flip(-1).repeat(1, 1, 2)  # (x, y, x, y)
        if not self.clip_boxes:
            return picked, scores, labels
        # Clamps with per-image bounds: (B, 1, 4) lower 0 and upper (w, h, w, h).
        upper = original.flip(-1).repeat(1, 2)[:, None, :]
        picked = torch.minimum(picked.clamp(min=0), upper)
        nonempty = (picked[..., 2] > picked[..., 0]) & (picked[..., 3] > picked[..., 1])
        scores = torch.where(nonempty, scores, torch.zeros_like(scores))
        # Move the removed entries last, each group keeping its order: rank + k for removed ones
        # gives distinct keys, so the order is deterministic (a sort of tied zeros would not be).
        rank = torch.arange(k, device=scores.device, dtype=scores.dtype)
        key = torch.where(nonempty, rank, rank + k)
        order = key.topk(k, dim=1, largest=False).indices
        picked = picked.gather(1, order[..., None].expand(-1, -1, 4))
        return picked, scores.gather(1, order), labels.gather(1, order)
