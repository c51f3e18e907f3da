"""COCO result records: per-image :class:`~sparsercnn.structures.Detections` to COCO JSON.

Sits between inference and evaluation: detections (absolute xyxy pixels of the original image,
contiguous labels) become ``{"image_id", "category_id", "bbox", "score"}`` records with the
dataset's category ids and ``bbox_xywh`` boxes, the format of the COCO results JSON that
:class:`~sparsercnn.evaluation.coco_evaluator.CocoEvaluator` and the COCO servers consume.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypedDict

import torch

from sparsercnn.atomic_file import atomic_write_text
from sparsercnn.ops.boxes import box_xywh_to_xyxy, box_xyxy_to_xywh
from sparsercnn.scores import written_score
from sparsercnn.structures import Detections


class _CocoResultRequired(TypedDict):
    image_id: int
    category_id: int
    bbox: list[float]
    score: float


class CocoResult(_CocoResultRequired, total=False):
    """One COCO detection result record.

    ``bbox`` is ``bbox_xywh``: ``[x, y, w, h]`` absolute pixels of the original image.
    ``category_id`` is the dataset's category id (not the contiguous label). ``category_name``
    (the class name) and ``file_name`` are optional and ignored by COCO tools; they help people
    and programs that read the JSON without the dataset.
    """

    category_name: str
    file_name: str


def label_to_category_lookup(label_to_category_id: Sequence[int] | Mapping[int, int]) -> list[int]:
    """Turn a label -> category-id mapping into a list indexed by contiguous label.

    Args:
        label_to_category_id: a sequence (index = contiguous label) or a mapping whose keys must be
            exactly ``0 .. num_classes - 1``.
    """
    if isinstance(label_to_category_id, Mapping):
        labels = sorted(label_to_category_id)
        if labels != list(range(len(labels))):
            raise ValueError(
                f"label -> category id mapping has keys {labels[:10]}...; expected the contiguous "
                f"labels 0..{len(labels) - 1}"
            )
        return [int(label_to_category_id[label]) for label in labels]
    return [int(category_id) for category_id in label_to_category_id]


def detections_to_coco_results(
    image_id: int,
    detections: Detections,
    label_to_category_id: Sequence[int] | Mapping[int, int],
    file_name: str | None = None,
    label_names: Sequence[str] | None = None,
    bbox_decimals: int = 2,
) -> list[CocoResult]:
    """Convert the detections of one image to COCO result records (no score threshold).

    Args:
        image_id: the dataset's image id (COCO ``images[].id``).
        detections: ``boxes`` ``(K, 4)`` absolute xyxy pixels of the original image, ``scores``
            ``(K,)``, ``labels`` ``(K,)`` contiguous labels.
        label_to_category_id: dataset category id of every contiguous label (list or mapping).
        file_name: stored in every record when given.
        label_names: class name of every contiguous label; each record gets its
            ``category_name`` when given.
        bbox_decimals: decimals kept in ``bbox`` (2 = 1/100 pixel, negligible for IoU).

    Returns:
        ``K`` records, in the order of the detections, ``bbox`` in ``bbox_xywh`` format,
        ``score`` as written (:func:`~sparsercnn.scores.written_score`).
    """
    lookup = label_to_category_lookup(label_to_category_id)
    boxes = detections["boxes"].detach().to("cpu", torch.float64)
    scores = detections["scores"].detach().to("cpu", torch.float64)
    labels = detections["labels"].detach().to("cpu", torch.int64)
    num = int(scores.shape[0]) if scores.dim() == 1 else -1
    if boxes.shape != (num, 4) or labels.shape != (num,):
        raise ValueError(
            f"image {image_id}: detections must be boxes (K, 4), scores (K,), labels (K,); got "
            f"{tuple(boxes.shape)}, {tuple(scores.shape)}, {tuple(labels.shape)}"
        )
    if num > 0 and (int(labels.min()) < 0 or int(labels.max()) >= len(lookup)):
        raise ValueError(
            f"image {image_id}: labels span [{int(labels.min())}, {int(labels.max())}] but the "
            f"label -> category id mapping has {len(lookup)} entries; check num_classes"
        )
    bboxes = box_xyxy_to_xywh(boxes).round(decimals=bbox_decimals).tolist()
    results: list[CocoResult] = []
    for bbox, score, label in zip(bboxes, scores.tolist(), labels.tolist(), strict=True):
        record: CocoResult = {
            "image_id": int(image_id),
            "category_id": lookup[label],
            "bbox": bbox,
            "score": written_score(score),
        }
        if label_names is not None:
            record["category_name"] = label_names[label]
        if file_name is not None:
            record["file_name"] = file_name
        results.append(record)
    return results


def coco_results_to_detections(
    records: Sequence[CocoResult], category_to_label: Mapping[int, int]
) -> Detections:
    """The inverse of :func:`detections_to_coco_results`: one image's records as
    :class:`~sparsercnn.structures.Detections`.

    Args:
        records: ``K`` records of one image, ``bbox`` ``[x, y, w, h]`` absolute pixels.
        category_to_label: contiguous label of every dataset category id of the records.

    Returns:
        ``boxes`` ``(K, 4)`` float32 absolute xyxy pixels, ``scores`` ``(K,)`` float32,
        ``labels`` ``(K,)`` int64, in the order of the records.
    """
    xywh = torch.tensor([r["bbox"] for r in records], dtype=torch.float64).reshape(-1, 4)
    return Detections(
        boxes=box_xywh_to_xyxy(xywh).float(),
        scores=torch.tensor([float(r["score"]) for r in records], dtype=torch.float32),
        labels=torch.tensor(
            [category_to_label[r["category_id"]] for r in records], dtype=torch.int64
        ),
    )


def write_results_json(results: Sequence[Mapping[str, object]], path: str | Path) -> Path:
    """Write ``results`` as a COCO results JSON list, compact, atomically (temp file +
    ``os.replace``): ``sparsercnn eval``'s and ``sparsercnn predict``'s one writer.

    A reader never sees a half-written file, even if the process dies while writing.

    Args:
        results: :class:`CocoResult` records, possibly with more keys (``predict``'s leave out
            ``image_id`` and add ``frame_index`` and ``timestamp`` for video frames).
        path: the JSON file to write (replaced if it exists).
    """
    return atomic_write_text(path, json.dumps(list(results), separators=(",", ":")))
