"""COCO bbox evaluation of accumulated detections with faster-coco-eval (pycocotools semantics).

The engine feeds per-image :class:`~sparsercnn.structures.Detections` (absolute xyxy pixels of
the original image, contiguous labels) to :class:`CocoEvaluator`; :meth:`CocoEvaluator.evaluate`
turns them into COCO result records, runs ``COCOeval_faster`` (bbox, maxDets 1/10/100, no score
threshold, spec 8.4) on exactly the images that were updated, and returns an
:class:`EvaluationResult` with the 12 COCO summary metrics, per-class AP and per-class
precision-recall curves.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from faster_coco_eval import COCOeval_faster

from sparsercnn.evaluation.ground_truth import CocoGroundTruth
from sparsercnn.evaluation.results import (
    CocoResult,
    detections_to_coco_results,
)
from sparsercnn.evaluation.units import format_percent
from sparsercnn.json_values import is_int
from sparsercnn.structures import Detections
from sparsercnn.text import counted, listing, non_finite_outputs, some_of_its, verb

logger = logging.getLogger(__name__)

# Order of COCOeval ``stats`` for bbox with the default area ranges and maxDets (1, 10, 100).
METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")
RECALL_NAMES = ("AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


@dataclass
class PrecisionRecallCurve:
    """Interpolated precision of one class at COCO's 101 recall thresholds (area all, 100 dets).

    Attributes:
        name: class name.
        category_id: dataset category id.
        recall: ``(R,)`` recall thresholds ``0, 0.01, ..., 1``.
        precision_50: ``(R,)`` precision at IoU 0.5.
        precision_50_95: ``(R,)`` precision averaged over IoU 0.5:0.05:0.95.
    """

    name: str
    category_id: int
    recall: np.ndarray
    precision_50: np.ndarray
    precision_50_95: np.ndarray


def precision_recall_curves(
    precision: np.ndarray,
    iou_thresholds: np.ndarray,
    recall_thresholds: np.ndarray,
    category_ids: Sequence[int],
    names: Mapping[int, str],
) -> list[PrecisionRecallCurve]:
    """Per-class curves from COCOeval's accumulated ``eval["precision"]``.

    Args:
        precision: ``(T, R, K, A, M)`` (IoU thresholds, recall thresholds, classes, area ranges,
            maxDets), ``-1`` where a class has no ground truth. Area index 0 ("all") and the last
            maxDets are used.
        iou_thresholds: ``(T,)``, must contain 0.5.
        recall_thresholds: ``(R,)``.
        category_ids: the ``K`` dataset category ids, in the order of ``params.catIds``.
        names: category id -> class name.

    Returns:
        One curve per class that has ground truth (classes without are omitted).
    """
    iou50 = np.flatnonzero(np.isclose(iou_thresholds, 0.5))
    if iou50.size == 0:
        raise ValueError(f"IoU thresholds {iou_thresholds.tolist()} do not contain 0.5")
    curves = []
    for k, category_id in enumerate(category_ids):
        p = precision[:, :, k, 0, -1]  # (T, R)
        valid = p > -1
        if not valid.any():
            continue
        mean = np.where(valid, p, 0.0).sum(0) / np.maximum(valid.sum(0), 1)
        curves.append(
            PrecisionRecallCurve(
                name=names[category_id],
                category_id=int(category_id),
                recall=np.asarray(recall_thresholds, dtype=np.float64).copy(),
                precision_50=np.clip(p[iou50[0]], 0.0, None).astype(np.float64),
                precision_50_95=mean.astype(np.float64),
            )
        )
    return curves


@dataclass
class EvaluationResult:
    """COCO bbox metrics, all in ``[0, 1]``.

    ``AP`` is AP@[.5:.95], ``AP50``/``AP75`` at one IoU, ``APs/APm/APl`` by object area, ``AR1``,
    ``AR10``, ``AR100`` recall at 1/10/100 detections per image, ``ARs/ARm/ARl`` by area. Area
    metrics are ``None`` when the evaluated images hold no ground truth of that size (COCOeval's
    ``-1``). The overall metrics are 0.0 (and a warning is logged) if there is no ground truth
    at all. ``per_class`` maps class name -> AP@[.5:.95] for the classes with ground truth in the
    evaluated images only; classes without are not in it (COCO's AP leaves them out too) but
    named in ``classes_without_ground_truth`` (no annotation there) or
    ``classes_with_only_crowd_regions`` (only ``iscrowd`` annotations there, which COCO
    ignores: a detection of one is neither a hit nor a false positive), so no class disappears
    unsaid.
    ``precision_recall`` holds the per-class curves and is left out of :meth:`to_dict`.
    """

    AP: float
    AP50: float
    AP75: float
    APs: float | None
    APm: float | None
    APl: float | None
    AR1: float
    AR10: float
    AR100: float
    ARs: float | None
    ARm: float | None
    ARl: float | None
    per_class: dict[str, float]
    num_images: int
    num_gt_images: int
    num_detections: int
    precision_recall: list[PrecisionRecallCurve] = field(default_factory=list, repr=False)
    classes_without_ground_truth: list[str] = field(default_factory=list)
    classes_with_only_crowd_regions: list[str] = field(default_factory=list)

    @property
    def is_subset(self) -> bool:
        """Whether only some of the ground-truth images were evaluated."""
        return self.num_images < self.num_gt_images

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: the 12 metrics, ``per_class`` (and the classes left out of it for
        want of ground truth that COCO scores), image and detection counts."""
        out: dict[str, Any] = {name: getattr(self, name) for name in METRIC_NAMES + RECALL_NAMES}
        out["per_class"] = dict(self.per_class)
        out["classes_without_ground_truth"] = list(self.classes_without_ground_truth)
        out["classes_with_only_crowd_regions"] = list(self.classes_with_only_crowd_regions)
        out["num_images"] = self.num_images
        out["num_gt_images"] = self.num_gt_images
        out["num_detections"] = self.num_detections
        return out

    def format_line(self) -> str:
        """The headline on one line: the six AP figures in percent and the images scored (a
        training run's periodic evaluations; :meth:`format_table` gives the whole result)."""
        figures = " ".join(f"{name} {format_percent(getattr(self, name))}" for name in METRIC_NAMES)
        return f"COCO bbox {figures} on {self._scope()}"

    def format_table(self) -> str:
        """A readable summary (AP and AR in percent) followed by a per-class AP table."""
        lines = [
            f"COCO bbox evaluation on {self._scope()}, {counted(self.num_detections, 'detection')}"
        ]
        for ap_name, ar_name in zip(METRIC_NAMES, RECALL_NAMES, strict=True):
            ap, ar = getattr(self, ap_name), getattr(self, ar_name)
            lines.append(
                f"  {ap_name:<5} {format_percent(ap):>7}    {ar_name:<5} {format_percent(ar):>7}"
            )
        if any(getattr(self, name) is None for name in METRIC_NAMES + RECALL_NAMES):
            lines.append("  (-: no ground-truth object of that size in these images)")
        if self.per_class:
            lines.append("Per-class AP:")
            lines.extend(_columns([(n, format_percent(v)) for n, v in self.per_class.items()], 3))
        if self.classes_without_ground_truth:
            lines.append(
                "Not scored, no ground truth in these images: "
                + ", ".join(self.classes_without_ground_truth)
            )
        if self.classes_with_only_crowd_regions:
            lines.append(
                "Not scored, only crowd regions in these images (iscrowd, which COCO ignores): "
                + ", ".join(self.classes_with_only_crowd_regions)
            )
        return "\n".join(lines)

    def _scope(self) -> str:
        if self.is_subset:
            return f"{self.num_images} of {counted(self.num_gt_images, 'image')} (subset)"
        return counted(self.num_images, "image")


def _columns(cells: list[tuple[str, str]], num_columns: int) -> list[str]:
    """Lay ``(name, value)`` cells out row-major in ``num_columns`` aligned column pairs."""
    name_width = max(len(name) for name, _ in cells)
    value_width = max(len(value) for _, value in cells)
    rows = []
    for start in range(0, len(cells), num_columns):
        row = cells[start : start + num_columns]
        rows.append(
            "  " + "   ".join(f"{n:<{name_width}} {v:>{value_width}}" for n, v in row).rstrip()
        )
    return rows


class CocoEvaluator:
    """Accumulates detections per image and computes COCO bbox metrics.

    Args:
        ground_truth: a :class:`CocoGroundTruth`, prepared once and shared by any number of
            evaluators and evaluations (its label map and class names are then its own); or a
            COCO instances dict (already loaded JSON; it is copied, never modified) or the path
            of one, prepared here with the next two arguments (see :class:`CocoGroundTruth`).
        label_to_category_id: dataset category id of every contiguous label (index = label).
        class_names: name of every contiguous label; defaults to the GT category names.

    It holds each image once: an image id seen again (a padded distributed sampler) is left
    out, its first records kept. :meth:`coco_results` gives the records, :meth:`evaluate` the
    metrics.
    """

    def __init__(
        self,
        ground_truth: CocoGroundTruth | Mapping[str, Any] | str | Path,
        label_to_category_id: Sequence[int] | Mapping[int, int] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        if isinstance(ground_truth, CocoGroundTruth):
            if label_to_category_id is not None or class_names is not None:
                raise ValueError(
                    "a prepared CocoGroundTruth has its label map and class names: give neither"
                )
            self.ground_truth = ground_truth
        elif label_to_category_id is None:
            raise ValueError(
                "label_to_category_id is needed with a ground-truth dict or file (the dataset "
                "category id of every contiguous label)"
            )
        else:
            self.ground_truth = CocoGroundTruth(ground_truth, label_to_category_id, class_names)
        self._results: dict[int, list[CocoResult]] = {}  # by image id, in the order added

    def reset(self) -> None:
        """Forget all accumulated detections."""
        self._results.clear()

    def update(self, image_ids: Sequence[int], detections: Sequence[Detections]) -> None:
        """Add the detections of a batch (boxes absolute xyxy pixels of the original images)."""
        if len(image_ids) != len(detections):
            raise ValueError(f"{len(image_ids)} image ids for {len(detections)} detections")
        results = [
            detections_to_coco_results(int(i), d, self.ground_truth.lookup)
            for i, d in zip(image_ids, detections, strict=True)
        ]
        self.extend([int(i) for i in image_ids], results)

    def extend(self, image_ids: Sequence[int], results: Sequence[list[CocoResult]]) -> None:
        """Add converted records (e.g. gathered from other processes), one list per image.

        Raises:
            ValueError: image ids are not in the ground truth (the first five named, and how
                many), records of the call name categories outside its label map (every such
                id named: :func:`_check_category_ids`), or a record cannot be scored as given
                (:func:`_check_records`); nothing of the call is added.
        """
        if len(image_ids) != len(results):
            raise ValueError(f"{len(image_ids)} image ids for {len(results)} result lists")
        gt = self.ground_truth
        # Each image once, its first records winning: a padded distributed sampler repeats ids.
        new: dict[int, list[CocoResult]] = {}
        for image_id, image_records in zip(image_ids, results, strict=True):
            if int(image_id) not in self._results:
                new.setdefault(int(image_id), list(image_records))
        unknown = [str(i) for i in new if i not in gt.image_ids]
        if unknown:
            named = "image id" if len(unknown) == 1 else "image ids"
            raise ValueError(
                f"{named} {listing(unknown, 5)} {verb(len(unknown), 'is')} not in {gt.source}; "
                "evaluate with the annotation file the images came from"
            )
        _check_category_ids(new, gt)
        for image_id, image_records in new.items():
            _check_records(image_id, image_records)
        self._results.update(new)

    def coco_results(self) -> list[CocoResult]:
        """All accumulated records, each image once (first update wins), for the results JSON."""
        return [record for records in self._results.values() for record in records]

    def evaluate(self) -> EvaluationResult:
        """Run COCOeval on the updated images (``params.imgIds`` = those images, no others)."""
        if not self._results:
            raise RuntimeError("CocoEvaluator.evaluate() called before any update()")
        gt = self.ground_truth
        image_ids = sorted(self._results)
        records = self.coco_results()
        if len(image_ids) < len(gt.image_ids):
            logger.info(
                "evaluating %d of the %d images of %s (params.imgIds restricted to them)",
                len(image_ids),
                len(gt.image_ids),
                gt.source,
            )
        coco_eval = self._run(image_ids, records)
        stats = dict(zip(METRIC_NAMES + RECALL_NAMES, coco_eval.stats[:12].tolist(), strict=True))
        if stats["AP"] <= -1:
            logger.warning("no ground-truth boxes in the evaluated images of %s", gt.source)
        params = coco_eval.params
        curves = precision_recall_curves(
            coco_eval.eval["precision"], params.iouThrs, params.recThrs, gt.category_ids, gt.names
        )
        scored = {c.category_id for c in curves}
        unscored = [c for c in gt.category_ids if c not in scored]
        crowd_only = _with_crowd_regions(gt, image_ids, unscored)
        result = EvaluationResult(
            AP=_overall(stats["AP"]),
            AP50=_overall(stats["AP50"]),
            AP75=_overall(stats["AP75"]),
            APs=_by_area(stats["APs"]),
            APm=_by_area(stats["APm"]),
            APl=_by_area(stats["APl"]),
            AR1=_overall(stats["AR1"]),
            AR10=_overall(stats["AR10"]),
            AR100=_overall(stats["AR100"]),
            ARs=_by_area(stats["ARs"]),
            ARm=_by_area(stats["ARm"]),
            ARl=_by_area(stats["ARl"]),
            per_class={c.name: float(c.precision_50_95.mean()) for c in curves},
            num_images=len(image_ids),
            num_gt_images=len(gt.image_ids),
            num_detections=len(records),
            precision_recall=curves,
            classes_without_ground_truth=[gt.names[c] for c in unscored if c not in crowd_only],
            classes_with_only_crowd_regions=[gt.names[c] for c in unscored if c in crowd_only],
        )
        return result  # the caller says it (a table, or a training run's one line)

    def _run(self, image_ids: list[int], records: list[CocoResult]) -> COCOeval_faster:
        gt = self.ground_truth
        image_ids = [gt.dense_id[i] for i in image_ids]
        # New dicts: loadRes also adds keys (id, area, segmentation) to the records it is given.
        records = [
            {
                **r,
                "image_id": gt.dense_id[int(r["image_id"])],
                "category_id": gt.dense_category_id[r["category_id"]],
            }
            for r in records
        ]
        if not records:
            # pycocotools and older faster-coco-eval fail on empty results. One zero-score box
            # far outside every image matches nothing: with no true positive, precision is 0
            # at every recall threshold, exactly the metrics of no detections.
            bbox = [-1e6, -1e6, 1.0, 1.0]
            records = [
                {
                    "image_id": image_ids[0],
                    "category_id": gt.dense_category_id[gt.lookup[0]],
                    "bbox": bbox,
                    "score": 0.0,
                }
            ]
        coco_dt = gt.coco.loadRes(records)
        coco_eval = COCOeval_faster(gt.coco, coco_dt, iouType="bbox", print_function=_quiet)
        coco_eval.params.imgIds = image_ids
        # In the order of gt.category_ids (the dense ids keep it), that of the curves' classes.
        coco_eval.params.catIds = [gt.dense_category_id[c] for c in gt.category_ids]
        coco_eval.params.maxDets = [1, 10, 100]
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
        return coco_eval


def _with_crowd_regions(
    gt: CocoGroundTruth, image_ids: Sequence[int], category_ids: Sequence[int]
) -> set[int]:
    """Those of ``category_ids`` (of classes COCO scored no ground truth of) that have crowd
    regions (``iscrowd`` annotations) in the images ``image_ids``: their only ground truth
    there, which COCO ignores."""
    if not category_ids:
        return set()
    by_dense_id = {gt.dense_category_id[c]: c for c in category_ids}
    images = {gt.dense_id[i] for i in image_ids}
    return {
        by_dense_id[ann["category_id"]]
        for ann in gt.coco.dataset["annotations"]
        if ann["iscrowd"] and ann["category_id"] in by_dense_id and ann["image_id"] in images
    }


def _check_category_ids(per_image: Mapping[int, Sequence[CocoResult]], gt: CocoGroundTruth) -> None:
    """Raise when records (by image id) name category ids outside the label map of ``gt``
    (COCOeval would skip such records unsaid, though counted among the detections), naming
    every such id, the first images with one, and the ids the label map has."""
    unknown: set[object] = set()
    num_records = 0
    images = []
    for image_id, records in per_image.items():
        of_image = [r["category_id"] for r in records if r["category_id"] not in gt.names]
        if of_image:
            unknown.update(of_image)
            num_records += len(of_image)
            images.append(image_id)
    if unknown:
        # Integers in order; anything else (no JSON integer) after them, as Python writes it.
        named = sorted(unknown, key=lambda c: (not is_int(c), c if is_int(c) else 0, repr(c)))
        raise ValueError(
            f"image id{'s' if len(images) > 1 else ''} "
            f"{listing([str(i) for i in sorted(images)], 5)}: {counted(num_records, 'record')} "
            f"of category id{'s' if len(named) > 1 else ''} {', '.join(repr(c) for c in named)}, "
            f"which {verb(len(named), 'is')} not among the categories evaluated on "
            f"{gt.source} (their ids: {listing([str(c) for c in gt.category_ids])}); a record's "
            "category_id is the data set's category id (categories[].id), not a 0-based label"
        )


def _check_records(image_id: int, records: Sequence[CocoResult]) -> None:
    """Raise when a record of image ``image_id`` cannot be scored as given: a NaN or infinite
    score or box (COCOeval would stop on a NaN score without naming the image, and count a NaN
    box as a miss) or a box of negative width or height (never matched)."""
    bad = sum(
        not all(math.isfinite(v) for v in (record["score"], *record["bbox"])) for record in records
    )
    if bad:
        # The records may be another tool's (eval --detections): no model of ours to replace.
        reason = non_finite_outputs(
            bad,
            len(records),
            "which COCO evaluation cannot rank or match",
            remedy="evaluate finite detections",
        )
        raise ValueError(f"image id {image_id}: {reason}")
    negative = [r["bbox"] for r in records if r["bbox"][2] < 0 or r["bbox"][3] < 0]
    if negative:
        raise ValueError(
            f"image id {image_id}: "
            f"{some_of_its(len(negative), len(records), 'detection', 'a negative width or height')}"
            f", such as bbox {negative[0]}; a record's bbox is [x, y, width, height] in pixels"
        )


def _overall(value: float) -> float:
    """COCOeval's ``-1`` (no ground truth at all) becomes 0.0."""
    return float(value) if value > -1 else 0.0


def _by_area(value: float) -> float | None:
    """COCOeval's ``-1`` (no ground truth of this size) becomes None."""
    return float(value) if value > -1 else None


def _quiet(*args: object) -> None:
    """faster-coco-eval's progress messages go to debug logging."""
    logger.debug(" ".join(str(a) for a in args))
