"""The result of inference on one image: :class:`Prediction`, detections in original pixels
with their class names, its COCO result records and its dictionary (:class:`PredictionDict`).

The predictors (:mod:`sparsercnn.predictor`, :mod:`sparsercnn.export.onnx_runtime`) return one
per image; the drawings, ``predict``'s JSON (:meth:`Prediction.to_coco_results`) and the
server's responses (:meth:`Prediction.to_dict`, which they validate) are made from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

import torch
from torch import Tensor

from sparsercnn.data.categories import CategoryMap
from sparsercnn.evaluation.results import CocoResult, detections_to_coco_results
from sparsercnn.scores import check_score_threshold, passes_threshold
from sparsercnn.structures import Detections, detections_to_cpu
from sparsercnn.text import non_finite_outputs


class BoxDict(TypedDict):
    """One box of :class:`DetectionDict`."""

    xyxy: list[float]
    xywh: list[float]


class DetectionDict(TypedDict):
    """One detection of :class:`PredictionDict`."""

    bbox: BoxDict
    score: float
    category_id: int
    category_name: str


class PredictionDict(TypedDict):
    """:meth:`Prediction.to_dict`: the detections of one image, as the server answers them
    (:class:`~sparsercnn.serving.schemas.ImageDetections` validates it, and describes its fields
    at ``/docs``); that method says what each field holds."""

    name: str
    width: int
    height: int
    detections: list[DetectionDict]


class NonFiniteDetectionsError(ValueError):
    """Detections with a NaN or infinite score or box (a diverged or damaged model's): they can
    be neither ranked, drawn nor written as JSON.

    Attributes:
        source: the image's name (a file, or ``<input i>``).
        reason: the message without ``source``, for a caller that names the image otherwise
            (the server: ``images[i]``).
    """

    def __init__(self, source: str, num_bad: int, num_detections: int) -> None:
        self.source = source
        self.reason = non_finite_outputs(num_bad, num_detections, "which cannot be ranked or used")
        super().__init__(f"{source}: {self.reason}")


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
        from a written score keeps that detection.

        Raises:
            ValueError: ``score_threshold`` is not a number in [0, 1]
                (:func:`~sparsercnn.scores.check_score_threshold`).
        """
        threshold = check_score_threshold(score_threshold)
        return self.subset(passes_threshold(self.scores, threshold).nonzero().flatten().tolist())

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

    def to_coco_results(self, *, image_id: int | None = None) -> list[CocoResult]:
        """COCO result records (``bbox`` as ``[x, y, w, h]``, rounded to 1/100 pixel) with the
        dataset's ``category_id`` and ``category_name`` of each detection (its own
        :attr:`category_ids` and :attr:`class_names`) and the source as ``file_name``.

        Args:
            image_id: stored in the records when given.
        """
        # Each detection its own "label": its category id and name come from the prediction.
        detections = Detections(
            boxes=self.boxes, scores=self.scores, labels=torch.arange(len(self.scores))
        )
        records = detections_to_coco_results(
            image_id if image_id is not None else -1,
            detections,
            self.category_ids,
            file_name=self.source,
            label_names=self.class_names,
        )
        if image_id is None:
            for record in records:
                del record["image_id"]  # type: ignore[misc]
        return records

    def to_dict(self) -> PredictionDict:
        """The prediction as the server's ``POST /v1/detect`` gives each image (which validates
        this dictionary): ``name`` (:attr:`source`), ``width``, ``height``, and the detections
        by descending score, each with its box in absolute pixels of the original image as
        ``xyxy`` ``[x1, y1, x2, y2]`` and as the COCO ``xywh`` ``[x, y, width, height]`` of
        :meth:`to_coco_results` (rounded to 1/100 pixel; ``x2 = x + width``), its ``score`` as
        written (:func:`~sparsercnn.scores.written_score`), ``category_id`` (the dataset's) and
        ``category_name``. Plain JSON values.
        """
        height, width = self.image_size
        detections: list[DetectionDict] = [
            {
                "bbox": {"xyxy": _xyxy(record["bbox"]), "xywh": record["bbox"]},
                "score": record["score"],
                "category_id": record["category_id"],
                "category_name": record["category_name"],
            }
            for record in self.to_coco_results()
        ]
        return {"name": self.source, "width": width, "height": height, "detections": detections}


def prediction_from_detections(
    detections: Detections, categories: CategoryMap, image_size: tuple[int, int], source: str
) -> Prediction:
    """A :class:`Prediction` of detections (any device and float dtype) with their class names.

    Raises:
        NonFiniteDetectionsError: a score or box is NaN or infinite, naming ``source``.
    """
    detections = detections_to_cpu(detections)
    finite = torch.isfinite(detections["scores"]) & torch.isfinite(detections["boxes"]).all(-1)
    if not bool(finite.all()):
        raise NonFiniteDetectionsError(source, int((~finite).sum()), len(finite))
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


def _xyxy(xywh: list[float]) -> list[float]:
    """The corners of a rounded COCO box: ``x + w`` is ``x2`` (rounding each apart would leave
    them 0.01 apart)."""
    x, y, w, h = xywh
    return [x, y, round(x + w, 2), round(y + h, 2)]
