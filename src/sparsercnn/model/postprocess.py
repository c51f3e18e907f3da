"""From the model's raw stage outputs to per-image detections (spec 8), written once.

Sigmoid scores, top-k over the flattened ``N x C`` score matrix (k = N by default), rescaling to
the original image, then either clipping and dropping empty boxes (official) or nothing
(mmdetection). No NMS and no score threshold: the set prediction needs neither.

:func:`select_top_k` does all of it with data-independent shapes, so eager inference, the ONNX
graph (:mod:`sparsercnn.export.onnx_wrapper`), evaluation, the predictor and the per-stage
diagnostics share it; :class:`PostProcessor` applies it to any stage of a
:class:`~sparsercnn.structures.ModelOutput` and drops the boxes clipping emptied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from sparsercnn.ops.boxes import clip_boxes, nonempty_boxes
from sparsercnn.structures import Detections, ModelOutput, PixelMap


@dataclass
class TopKDetections:
    """The top-k detections of every image of a batch, fixed shapes.

    Attributes:
        boxes: ``(B, k, 4)`` absolute xyxy pixels of the original images (clipped to them when
            clipping is on).
        scores: ``(B, k)`` sigmoid scores, descending.
        labels: ``(B, k)`` int64 contiguous labels.
        slots: ``(B, k)`` int64 proposal slot of each detection (``flat index // C``).
        valid: ``(B, k)`` bool, False for boxes that clipping made empty (official behaviour
            drops them); all True without clipping.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    slots: Tensor
    valid: Tensor

    def per_image(self) -> list[Detections]:
        """The valid detections of each image, score order kept; each tensor has storage of its
        own (not a view of the batch's), so keeping one image's detections keeps no others."""
        # One unbind per field rather than a select per image and field.
        fields = (self.boxes, self.scores, self.labels, self.valid)
        return [
            Detections(boxes=boxes[keep], scores=scores[keep], labels=labels[keep])
            for boxes, scores, labels, keep in zip(
                *(field.unbind() for field in fields), strict=True
            )
        ]

    def to_cpu(self) -> TopKDetections:
        """These detections on the CPU, boxes and scores as float32 (as
        :func:`~sparsercnn.structures.detections_to_cpu` moves :class:`Detections`)."""
        return TopKDetections(
            boxes=self.boxes.float().cpu(),
            scores=self.scores.float().cpu(),
            labels=self.labels.cpu(),
            slots=self.slots.cpu(),
            valid=self.valid.cpu(),
        )

    def to_full_image(
        self, pixel_map: PixelMap, full_size: tuple[int, int], clip: bool
    ) -> TopKDetections:
        """The detections of one image that the model saw through ``pixel_map`` (a reduced
        JPEG's input) in the pixels of its full image ``full_size`` ``(h, w)``
        (:meth:`~sparsercnn.structures.PixelMap.boxes_to_full_image`, as the predictor and
        evaluation map theirs): clipped with ``clip``, boxes clipping emptied marked invalid
        (where :meth:`~sparsercnn.structures.PixelMap.detections_to_full_image` drops them)."""
        boxes, valid = pixel_map.boxes_to_full_image(self.boxes, full_size, clip)
        return replace(self, boxes=boxes, valid=self.valid & valid)


def rescale_boxes(boxes: Tensor, image_sizes: Tensor, original_sizes: Tensor) -> Tensor:
    """Map xyxy boxes from input-image pixels to original-image pixels.

    Args:
        boxes: ``(B, M, 4)`` absolute xyxy pixels of each (resized, unpadded) input image.
        image_sizes: ``(B, 2)`` ``(h, w)`` of the input images.
        original_sizes: ``(B, 2)`` ``(h, w)`` of the images before resizing.

    Returns:
        ``(B, M, 4)`` absolute xyxy pixels of the original images, in ``boxes``' dtype.
    """
    scale = original_sizes.to(boxes.dtype) / image_sizes.to(boxes.dtype)  # (B, 2) as (y, x)
    return boxes * scale.flip(-1).repeat(1, 2)[:, None, :]  # (x, y, x, y)


def clip_to_images(boxes: Tensor, sizes: Tensor) -> Tensor:
    """Clip ``(B, M, 4)`` xyxy boxes to ``[0, w] x [0, h]`` of each image (``sizes (B, 2)``)."""
    return clip_boxes(boxes, sizes[:, 0, None, None], sizes[:, 1, None, None])  # (B, 1, 1) each


def select_top_k(
    logits: Tensor,
    boxes: Tensor,
    image_sizes: Tensor,
    original_sizes: Tensor,
    *,
    top_k: int | None = None,
    clip: bool = True,
) -> TopKDetections:
    """Spec 8 with fixed shapes: top-k of the sigmoid scores, rescale, clip.

    Args:
        logits: ``(B, N, C)`` class logits of one stage.
        boxes: ``(B, N, 4)`` xyxy input-image pixels of the same stage.
        image_sizes: ``(B, 2)`` int ``(h, w)`` of the input images.
        original_sizes: ``(B, 2)`` int ``(h, w)`` of the original images.
        top_k: detections per image; ``None`` means ``N``.
        clip: clip to the original image and mark boxes with zero width or height invalid
            (boxes with a NaN or infinite coordinate stay valid: they are not empty but
            broken, which the callers refuse, naming the image).

    Returns:
        :class:`TopKDetections` with ``k = min(top_k or N, N * C)``.
    """
    num_proposals, num_classes = logits.shape[1], logits.shape[2]
    k = min(top_k or num_proposals, num_proposals * num_classes)
    scores, indices = logits.sigmoid().flatten(1).topk(k, dim=1)  # (B, k), descending
    labels = indices % num_classes
    slots = indices // num_classes
    picked = boxes.gather(1, slots[..., None].expand(-1, -1, 4))  # (B, k, 4)
    picked = rescale_boxes(picked, image_sizes, original_sizes)
    if not clip:
        return TopKDetections(
            picked, scores, labels, slots, torch.ones_like(scores, dtype=torch.bool)
        )
    picked = clip_to_images(picked, original_sizes)
    # A NaN box is not empty, it is broken: it stays, for the callers' finiteness checks to name
    # (dropped, a diverged model would just seem to detect nothing).
    broken = ~torch.isfinite(picked).all(dim=-1)
    return TopKDetections(picked, scores, labels, slots, nonempty_boxes(picked) | broken)


class PostProcessor:
    """Turn a :class:`ModelOutput` into torchvision-style :class:`Detections`.

    Args:
        clip_boxes: official behaviour (clip to the original image and drop boxes with zero
            width or height); False keeps every box as mmdetection does.
        top_k: detections per image; ``None`` means the number of proposals N.
    """

    def __init__(self, *, clip_boxes: bool = True, top_k: int | None = None) -> None:
        self.clip_boxes = clip_boxes
        self.top_k = top_k

    def select(
        self,
        output: ModelOutput,
        original_sizes: Sequence[tuple[int, int]] | Tensor,
        stage: int = -1,
    ) -> TopKDetections:
        """The fixed-shape top-k detections of one stage (default the last).

        Args:
            output: the model's output.
            original_sizes: ``(h, w)`` of each image before resizing (``(B, 2)`` or a list).
            stage: which stage's predictions to use (index into ``output.stages``).
        """
        last = output.stages[stage]
        if len(original_sizes) != last.logits.shape[0]:
            raise ValueError(
                f"got {len(original_sizes)} original sizes for a batch of {last.logits.shape[0]}"
            )
        sizes = torch.as_tensor(original_sizes, device=last.boxes.device)
        # float32 scores and boxes whatever the model ran in: bf16 scores would tie in the
        # ranking that AP depends on.
        return select_top_k(
            last.logits.float(),
            last.boxes.float(),
            output.image_sizes,
            sizes,
            top_k=self.top_k,
            clip=self.clip_boxes,
        )

    def __call__(
        self,
        output: ModelOutput,
        original_sizes: Sequence[tuple[int, int]] | Tensor,
        stage: int = -1,
    ) -> list[Detections]:
        """Args:
            output: the model's output.
            original_sizes: ``(h, w)`` of each image before resizing (``(B, 2)`` or a list).
            stage: which stage's predictions to use (default the last).

        Returns:
            One :class:`Detections` per image, sorted by descending score, boxes in absolute
            xyxy pixels of the original image.
        """
        return self.select(output, original_sizes, stage).per_image()
