"""From the model's raw stage outputs to per-image detections (spec 8).

Sigmoid scores, top-k over the flattened ``N x C`` score matrix (k = N by default), rescaling to
the original image, then either clipping and dropping empty boxes (official) or nothing
(mmdetection). No NMS and no score threshold: the set prediction needs neither.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from sparsercnn.ops.boxes import clip_boxes
from sparsercnn.structures import Detections, ModelOutput


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
        logits = output.stages[stage].logits
        boxes = output.stages[stage].boxes
        batch, num_proposals, num_classes = logits.shape
        if len(original_sizes) != batch:
            raise ValueError(f"got {len(original_sizes)} original sizes for a batch of {batch}")
        k = min(self.top_k or num_proposals, num_proposals * num_classes)
        scores, indices = logits.sigmoid().flatten(1).topk(k, dim=1)  # (B, k)
        labels = indices % num_classes
        proposal_index = indices // num_classes
        picked = boxes.gather(1, proposal_index[..., None].expand(-1, -1, 4))  # (B, k, 4)
        sizes = torch.as_tensor(original_sizes, dtype=picked.dtype, device=picked.device)
        input_sizes = output.image_sizes.to(picked.dtype)
        scale_y = sizes[:, 0] / input_sizes[:, 0]
        scale_x = sizes[:, 1] / input_sizes[:, 1]
        picked = picked * torch.stack((scale_x, scale_y, scale_x, scale_y), dim=-1)[:, None, :]
        results: list[Detections] = []
        for i in range(batch):
            image_boxes, image_scores, image_labels = picked[i], scores[i], labels[i]
            if self.clip_boxes:
                image_boxes = clip_boxes(image_boxes, sizes[i, 0], sizes[i, 1])
                keep = (image_boxes[:, 2] > image_boxes[:, 0]) & (
                    image_boxes[:, 3] > image_boxes[:, 1]
                )
                image_boxes, image_scores, image_labels = (
                    image_boxes[keep],
                    image_scores[keep],
                    image_labels[keep],
                )
            results.append(Detections(boxes=image_boxes, scores=image_scores, labels=image_labels))
        return results
