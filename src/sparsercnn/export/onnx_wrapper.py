"""The export-only module: padded RGB images in, top-k detections in original pixels out.

:class:`SparseRCNNOnnxModel` wraps a trained :class:`~sparsercnn.model.SparseRCNN` for
``torch.onnx.export``. It runs in one fixed-shape graph the same functions eager inference
runs (spec 1.1 and 8): :meth:`SparseRCNN.normalise_and_pad`, the forward pass (backbone, FPN,
every refinement stage with multi-level RoIAlign) and
:func:`~sparsercnn.model.postprocess.select_top_k` (sigmoid, top-k over ``N x C``, rescaling to
the original images, clipping). Only the resize (a PIL operation) stays outside the graph.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sparsercnn.model import SparseRCNN
from sparsercnn.model.postprocess import TopKDetections, select_top_k

INPUT_NAMES = ("images", "image_sizes", "original_sizes")
OUTPUT_NAMES = ("boxes", "scores", "labels", "num_detections")


class SparseRCNNOnnxModel(nn.Module):
    """Sparse R-CNN inference as one exportable graph with data-independent shapes.

    Boxes that official post-processing drops (zero width or height after clipping to the
    original image, spec 8 step 3) cannot be dropped from fixed-shape outputs. They are sorted
    after every real detection, and the ``num_detections`` output counts the real ones, so the
    first ``num_detections[i]`` entries of image ``i`` are what
    :class:`~sparsercnn.model.PostProcessor` with ``clip_boxes=True`` returns. (The removed
    entries' scores are also set to 0, but a score of 0 does not mark them: a real detection's
    sigmoid score is 0 in float32 below a logit of about -104.) With ``clip_boxes=False``
    (mmdetection behaviour) nothing is clipped or removed and ``num_detections`` is ``k``.

    Call ``.eval()`` before exporting or running it (the wrapper shares, not copies, the
    detector's parameters, and does not change its mode on construction).

    Args:
        model: the trained detector.
        clip_boxes: clip to the original image and remove empty boxes (official).
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
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
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
            contiguous labels, with ``k = N`` (the number of proposals), and
            ``num_detections (B,)`` int64: image ``i``'s detections are its first
            ``num_detections[i]`` entries; the rest (boxes that clipping emptied, score 0) are
            padding.
        """
        batch = self.model.normalise_and_pad(images, image_sizes)
        output = self.model(batch, num_stages=self.num_stages)
        top = select_top_k(
            output.last.logits,
            output.last.boxes,
            image_sizes,
            original_sizes,
            clip=self.clip_boxes,
        )
        if not self.clip_boxes:  # every entry valid: nothing to reorder
            num_detections = top.valid.sum(dim=1, dtype=torch.int64)
            return top.boxes, top.scores, top.labels, num_detections
        return drop_invalid_last(top)


def drop_invalid_last(top: TopKDetections) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Fixed-shape stand-in for dropping the boxes clipping emptied: sorted last, counted out.

    Each group keeps its order: rank + k for the invalid entries gives distinct keys, so the
    order is deterministic (a sort of tied zeros would not be). Invalid entries also get score 0
    (padding), which is not what marks them: ``num_detections`` is.

    Returns:
        ``(boxes (B, k, 4), scores (B, k), labels (B, k), num_detections (B,) int64)``.
    """
    k = top.scores.shape[1]
    scores = torch.where(top.valid, top.scores, torch.zeros_like(top.scores))
    rank = torch.arange(k, device=scores.device, dtype=scores.dtype)
    key = torch.where(top.valid, rank, rank + k)
    order = key.topk(k, dim=1, largest=False).indices
    boxes = top.boxes.gather(1, order[..., None].expand(-1, -1, 4))
    num_detections = top.valid.sum(dim=1, dtype=torch.int64)
    return boxes, scores.gather(1, order), top.labels.gather(1, order), num_detections
