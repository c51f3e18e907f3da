"""The result of inference on one image: :class:`Prediction`, detections in original pixels
with their class names, and its COCO result records.

The predictors (:mod:`sparsercnn.predictor`, :mod:`sparsercnn.export.onnx_runtime`) return one
per image; the drawings, the server's responses and ``predict``'s JSON are made from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from sparsercnn.data.categories import CategoryMap
from sparsercnn.evaluation.results import CocoResult, detections_to_coco_results
from sparsercnn.scores import passes_threshold
from sparsercnn.structures import Detections, detections_to_cpu


@dataclass
class Prediction:
    """Detections of one image.

    Attributes:
        boxes: ``(K, 4)`` absolute xyxy pixels of the original image.
        scores: ``(K,)`` sigmoid scores, descending.
        labels: ``(K,)`` contiguous labels.
        class_names: name of every detection's class.
        category_ids: dataset category id of every detection's class.
        image_size: ``(h, w)`` of the original image.
        source: the file the image came from, or ``"<input i>"``.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    class_names: list[str]
    category_ids: list[int]
    image_size: tuple[int, int]
    source: str

    def above(self, score_threshold: float) -> Prediction:
        """Only the detections whose score, as :meth:`to_coco_results` writes it, is at least
        ``score_threshold`` (:func:`~sparsercnn.scores.passes_threshold`): a threshold copied
        from a written score keeps that detection."""
        return self.subset(
            passes_threshold(self.scores, score_threshold).nonzero().flatten().tolist()
        )

    def top(self, k: int) -> Prediction:
        """The first ``k`` detections (the ``k`` best: scores descend), all if fewer.

        Raises:
            ValueError: ``k`` is negative.
        """
        if k < 0:
            raise ValueError(f"top(k): k must be >= 0, got {k}")
        return self.subset(range(min(k, len(self.scores))))

    def subset(self, indices: Sequence[int]) -> Prediction:
        """The detections at ``indices``, in that order, of the same image."""
        keep = list(indices)
        return Prediction(
            boxes=self.boxes[keep],
            scores=self.scores[keep],
            labels=self.labels[keep],
            class_names=[self.class_names[i] for i in keep],
            category_ids=[self.category_ids[i] for i in keep],
            image_size=self.image_size,
            source=self.source,
        )

    def to_coco_results(
        self, categories: CategoryMap, image_id: int | None = None
    ) -> list[CocoResult]:
        """COCO result records (``bbox`` as ``[x, y, w, h]``) with the dataset's
        ``category_id``, its ``category_name`` and the source as ``file_name``.

        Args:
            categories: the model's label map.
            image_id: stored in the records when given.
        """
        detections = Detections(boxes=self.boxes, scores=self.scores, labels=self.labels)
        records = detections_to_coco_results(
            image_id if image_id is not None else -1,
            detections,
            categories.category_ids,
            file_name=self.source,
            label_names=categories.names,
        )
        if image_id is None:
            for record in records:
                del record["image_id"]  # type: ignore[misc]
        return records


def prediction_from_detections(
    detections: Detections, categories: CategoryMap, image_size: tuple[int, int], source: str
) -> Prediction:
    """A :class:`Prediction` of detections (any device and float dtype) with their class names.

    Raises:
        ValueError: a score or box is NaN or infinite (a diverged or damaged model's), naming
            ``source``: such detections can be neither ranked, drawn nor written as JSON.
    """
    detections = detections_to_cpu(detections)
    finite = torch.isfinite(detections["scores"]) & torch.isfinite(detections["boxes"]).all(-1)
    if not bool(finite.all()):
        raise ValueError(
            f"{source}: {int((~finite).sum())} of its {len(finite)} detections have a NaN or "
            "infinite score or box; the model's outputs are not finite (diverged training or "
            "damaged weights): use a model whose outputs are finite"
        )
    labels = detections["labels"]
    return Prediction(
        boxes=detections["boxes"],
        scores=detections["scores"],
        labels=labels,
        class_names=[categories.names[i] for i in labels.tolist()],
        category_ids=[categories.category_ids[i] for i in labels.tolist()],
        image_size=image_size,
        source=source,
    )
