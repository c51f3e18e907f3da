"""A dataset's ground truth in original-image pixels, per image and summarised.

Read from the COCO dict of :meth:`~sparsercnn.data.coco.CocoDataset.gt_dict` (the images and
annotations evaluation scores against): per-image boxes and labels for the confusion matrix
and the sample drawings, and a :class:`LabelSummary` (class counts, box sizes, objects per
image) for the dataset plot. Crowd regions are left out, as in training.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sparsercnn.data.categories import CategoryMap
from sparsercnn.visualization.diagnostic_plots import plot_dataset_summary


@dataclass
class ImageGroundTruth:
    """Non-crowd ground truth of one image.

    Attributes:
        boxes: ``(M, 4)`` float32 absolute xyxy pixels of the original image.
        labels: ``(M,)`` int64 contiguous labels.
    """

    boxes: Tensor
    labels: Tensor


def ground_truth_by_image(
    gt: Mapping[str, Any], categories: CategoryMap
) -> dict[int, ImageGroundTruth]:
    """Every image's non-crowd boxes (from COCO ``bbox_xywh``) keyed by image id.

    Images without boxes get empty tensors; annotations of categories outside ``categories``
    are left out.
    """
    grouped: dict[int, list[tuple[list[float], int]]] = {int(i["id"]): [] for i in gt["images"]}
    known = set(categories.category_ids)
    for ann in gt["annotations"]:
        if ann.get("iscrowd", 0) or ann["category_id"] not in known:
            continue
        grouped.setdefault(int(ann["image_id"]), []).append(
            (ann["bbox"], categories.to_label(ann["category_id"]))
        )
    result = {}
    for image_id, entries in grouped.items():
        xywh = torch.tensor([bbox for bbox, _ in entries], dtype=torch.float32).reshape(-1, 4)
        boxes = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)
        labels = torch.tensor([label for _, label in entries], dtype=torch.int64)
        result[image_id] = ImageGroundTruth(boxes=boxes, labels=labels)
    return result


@dataclass
class LabelSummary:
    """What a dataset's labels look like.

    Attributes:
        class_names: name of every contiguous label.
        class_counts: ``(C,)`` boxes per class.
        sqrt_areas: ``(M,)`` square root of every box's area, original pixels.
        objects_per_image: ``(I,)`` boxes in each image.
    """

    class_names: list[str]
    class_counts: np.ndarray
    sqrt_areas: np.ndarray
    objects_per_image: np.ndarray

    @staticmethod
    def from_ground_truth(
        by_image: Mapping[int, ImageGroundTruth], categories: CategoryMap
    ) -> LabelSummary:
        """Summarise :func:`ground_truth_by_image`'s output."""
        images = list(by_image.values())
        labels = (
            torch.cat([g.labels for g in images]) if images else torch.zeros(0, dtype=torch.int64)
        )
        boxes = torch.cat([g.boxes for g in images]) if images else torch.zeros(0, 4)
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        return LabelSummary(
            class_names=categories.distinct_names,
            class_counts=np.bincount(labels.numpy(), minlength=categories.num_classes),
            sqrt_areas=areas.clamp(min=0).sqrt().double().numpy(),
            objects_per_image=np.array([len(g.labels) for g in images], dtype=np.int64),
        )

    def plot(self, output_png: str | Path, num_proposals: int | None = None) -> Path:
        """Class counts, box sizes and objects per image (with N marked) as one PNG."""
        return plot_dataset_summary(
            self.class_names,
            self.class_counts,
            self.sqrt_areas,
            self.objects_per_image,
            output_png,
            num_proposals=num_proposals,
        )
