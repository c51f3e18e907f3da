"""What each of the N proposal slots does on a dataset.

:func:`collect_slot_statistics` runs the model over a dataset (test transform), matches the last
stage's predictions to the ground truth with the model's own Hungarian matcher (what training
does) and counts, per slot: matches, confident detections, matched classes, and the sizes and
positions of the matched objects. Dead slots (never matched, never confident) and datasets with
more objects per image than the model has proposals show up in :meth:`SlotStatistics.advice`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sparsercnn.atomic_file import atomic_write_text
from sparsercnn.config import DEFAULT_NUM_WORKERS
from sparsercnn.data.coco import CocoDataset
from sparsercnn.data.loader import build_test_loader
from sparsercnn.engine.model_evaluation import load_model_and_dataset
from sparsercnn.loss import HungarianMatcher, build_criterion
from sparsercnn.model import SparseRCNN
from sparsercnn.model.inference import evaluating, model_device, run_model
from sparsercnn.ops.boxes import box_xyxy_to_cxcywh
from sparsercnn.recipe.proposals import PROPOSALS_PER_OBJECT, proposals_for
from sparsercnn.scores import passes_threshold
from sparsercnn.structures import PixelMap, Target
from sparsercnn.text import counted, verb
from sparsercnn.visualization.diagnostic_plots import (
    plot_slot_centres,
    plot_slot_match_counts,
    plot_slot_size_histograms,
)

# dominant_labels of a slot never matched, and of one whose classes tie for the most matches.
NEVER_MATCHED, NO_SINGLE_CLASS = -1, -2

# Above this many objects per image per proposal the densest images are at risk (spec 13 #4:
# ground truth beyond N can never be matched, and near N every slot is needed); the advice
# then names the proposals the automatic recipe would train with (proposals_for).
CROWDED_FRACTION = 1 / PROPOSALS_PER_OBJECT


@dataclass
class SlotStatistics:
    """Per-slot statistics of the last stage over a dataset.

    Sizes are ``sqrt(area)`` in pixels of the original images; centres are divided by the image
    ``(w, h)``. Per-match arrays have one row per (slot, ground truth) match, ``K`` in all.

    Attributes:
        class_names: name of every contiguous label.
        num_images: images run.
        num_gt_boxes: ground-truth boxes (non-crowd, after the test transform).
        max_objects_per_image: the most ground-truth boxes in one image.
        score_threshold: a slot is confident in an image when its best class score, as
            written (:func:`~sparsercnn.scores.passes_threshold`), reaches it.
        matched_counts: ``(N,)`` times each slot was matched.
        confident_counts: ``(N,)`` images in which each slot was confident.
        class_counts: ``(N, C)`` matches of each slot per ground-truth class.
        proposal_boxes_cxcywh_norm: ``(N, 4)`` the learned proposals (first image's scale).
        match_slots: ``(K,)`` slot of every match.
        match_labels: ``(K,)`` ground-truth class of every match.
        match_centres_norm: ``(K, 2)`` normalised ground-truth centre of every match.
        match_sqrt_areas: ``(K,)`` ground-truth size of every match.
    """

    class_names: list[str]
    num_images: int
    num_gt_boxes: int
    max_objects_per_image: int
    score_threshold: float
    matched_counts: np.ndarray
    confident_counts: np.ndarray
    class_counts: np.ndarray
    proposal_boxes_cxcywh_norm: np.ndarray
    match_slots: np.ndarray
    match_labels: np.ndarray
    match_centres_norm: np.ndarray
    match_sqrt_areas: np.ndarray

    @property
    def num_proposals(self) -> int:
        return len(self.matched_counts)

    @property
    def num_matched(self) -> int:
        return len(self.match_slots)

    @property
    def never_matched(self) -> list[int]:
        return np.flatnonzero(self.matched_counts == 0).tolist()

    @property
    def never_confident(self) -> list[int]:
        return np.flatnonzero(self.confident_counts == 0).tolist()

    @property
    def dead_slots(self) -> list[int]:
        """Slots never matched and never confident: they do nothing on this dataset."""
        return np.flatnonzero((self.matched_counts == 0) & (self.confident_counts == 0)).tolist()

    def _per_slot_mean(self, values: np.ndarray) -> np.ndarray:
        """``(N, ...)`` mean of per-match ``values`` over each slot's matches, NaN if none."""
        sums = np.zeros((self.num_proposals, *values.shape[1:]))
        np.add.at(sums, self.match_slots, values)
        counts = self.matched_counts.reshape(-1, *([1] * (values.ndim - 1)))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    @property
    def mean_centres_norm(self) -> np.ndarray:
        """``(N, 2)`` mean normalised centre of each slot's matches (NaN if never matched)."""
        return self._per_slot_mean(self.match_centres_norm)

    @property
    def mean_sqrt_areas(self) -> np.ndarray:
        """``(N,)`` mean size of each slot's matches (NaN if never matched)."""
        return self._per_slot_mean(self.match_sqrt_areas)

    @property
    def dominant_labels(self) -> np.ndarray:
        """``(N,)`` most often matched class of each slot; :data:`NEVER_MATCHED` (-1) for a
        slot never matched, :data:`NO_SINGLE_CLASS` (-2) where classes tie for the most."""
        counts = self.class_counts
        tied = (counts == counts.max(axis=1, keepdims=True)).sum(axis=1) > 1
        labels = np.where(tied, NO_SINGLE_CLASS, counts.argmax(axis=1))
        return np.where(self.matched_counts > 0, labels, NEVER_MATCHED)

    def size_groups(self, num_groups: int = 4) -> list[tuple[str, np.ndarray]]:
        """Matched slots sorted by mean matched size and cut into ``num_groups`` equal groups.

        Returns:
            ``(name, sqrt_areas of the group's matches)`` per group, smallest first.
        """
        matched = np.flatnonzero(self.matched_counts > 0)
        order = matched[np.argsort(self.mean_sqrt_areas[matched], kind="stable")]
        groups = []
        for index, slots in enumerate(np.array_split(order, min(num_groups, len(order)))):
            values = self.match_sqrt_areas[np.isin(self.match_slots, slots)]
            groups.append((f"group {index + 1}: {counted(len(slots), 'slot')}", values))
        return groups

    def advice(self) -> list[str]:
        """Plain-language warnings about the number of proposals and unused slots."""
        lines = []
        n, most = self.num_proposals, self.max_objects_per_image
        if most > n:
            lines.append(
                f"the densest image has {most} objects but the model has only N = {n} proposals: "
                f"{most - n} of them can never be detected; train with model.num_proposals="
                f"{proposals_for(most)}"
            )
        elif most > CROWDED_FRACTION * n:
            lines.append(
                f"the densest image has {most} objects for N = {n} proposals (> "
                f"{CROWDED_FRACTION:.0%}); consider model.num_proposals={proposals_for(most)}"
            )
        dead = self.dead_slots
        if dead:
            lines.append(
                f"{len(dead)} of {n} slots {verb(len(dead), 'was')} never matched and never "
                f"confident (score >= {self.score_threshold}) on these {self.num_images} images"
            )
        return lines

    def slot_record(self, slot: int) -> dict[str, Any]:
        """JSON-able statistics of one slot (``None`` where it was never matched)."""
        counts = self.class_counts[slot]
        dominant = int(self.dominant_labels[slot])
        return {
            "slot": slot,
            "matched": int(self.matched_counts[slot]),
            "confident": int(self.confident_counts[slot]),
            "classes": {self.class_names[c]: int(counts[c]) for c in np.flatnonzero(counts)},
            # None: never matched, or no class matched more often than another.
            "dominant_class": self.class_names[dominant] if dominant >= 0 else None,
            "mean_centre_norm": _finite_list(self.mean_centres_norm[slot]),
            "mean_sqrt_area": _finite_list(self.mean_sqrt_areas[slot : slot + 1]),
            "proposal_cxcywh_norm": self.proposal_boxes_cxcywh_norm[slot].tolist(),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: totals, advice and :meth:`slot_record` of every slot."""
        return {
            "num_proposals": self.num_proposals,
            "num_images": self.num_images,
            "num_gt_boxes": self.num_gt_boxes,
            "num_matched": self.num_matched,
            "max_objects_per_image": self.max_objects_per_image,
            "score_threshold": self.score_threshold,
            "never_matched": self.never_matched,
            "never_confident": self.never_confident,
            "dead_slots": self.dead_slots,
            "advice": self.advice(),
            "slots": [self.slot_record(slot) for slot in range(self.num_proposals)],
        }

    def format(self) -> str:
        """A readable summary for the console."""
        lines = [
            f"proposal slots on {counted(self.num_images, 'image')}: N = {self.num_proposals}, "
            f"{self.num_gt_boxes} ground-truth boxes, {self.num_matched} matched, at most "
            f"{self.max_objects_per_image} per image",
            f"never matched: {counted(len(self.never_matched), 'slot')}; never confident (score >= "
            f"{self.score_threshold}): {len(self.never_confident)}; dead (both): "
            f"{len(self.dead_slots)}",
        ]
        # Never-matched slots are not among the most matched (they are counted above).
        busiest = [
            s
            for s in np.argsort(-self.matched_counts, kind="stable")[:5].tolist()
            if self.matched_counts[s] > 0
        ]
        lines.append(
            "most matched slots: "
            + (", ".join(f"{s} ({int(self.matched_counts[s])})" for s in busiest) or "none")
        )
        lines.extend(f"advice: {line}" for line in self.advice())
        return "\n".join(lines)


def _finite_list(values: np.ndarray) -> list[float] | float | None:
    """A JSON value: ``None`` for NaN, a float for one value, else a list."""
    if not np.isfinite(values).all():
        return None
    return float(values[0]) if values.size == 1 else [float(v) for v in values]


def _match_records(
    target: Target,
    slots: Tensor,
    gts: Tensor,
    input_size: Tensor,
    original_size: tuple[int, int],
    pixel_map: PixelMap | None = None,
) -> np.ndarray:
    """``(K, 5)`` rows ``(slot, label, cx_norm, cy_norm, sqrt_area)`` of one image's matches.

    Args:
        target: the image's ground truth, absolute xyxy pixels of the input image.
        slots, gts: the matcher's ``(pred_indices, gt_indices)``.
        input_size: ``(2,)`` float ``(h, w)`` of the input image.
        original_size: ``(h, w)`` of the original image (sizes are reported in its pixels).
        pixel_map: the input image's map to the original (a JPEG decoded at a reduced scale,
            :attr:`~sparsercnn.structures.Sample.pixel_map`); ``None``: the ratio of sizes.
    """
    gts = gts.cpu()
    h, w = input_size.tolist()
    if pixel_map is None:
        scale = original_size[0] * original_size[1] / (h * w)
    else:
        scale = pixel_map.scale_x * pixel_map.scale_y
    boxes = box_xyxy_to_cxcywh(target.boxes[gts].float())  # (K, 4) input pixels
    sqrt_areas = (boxes[:, 2] * boxes[:, 3] * scale).clamp(min=0).sqrt()
    centres = boxes[:, :2] / torch.tensor([w, h])
    labels = target.labels[gts].float()
    rows = [slots.cpu().float(), labels, centres[:, 0], centres[:, 1], sqrt_areas]
    return torch.stack(rows, dim=1).double().numpy()


def collect_slot_statistics(
    model: SparseRCNN,
    matcher: HungarianMatcher,
    dataset: CocoDataset,
    *,
    score_threshold: float = 0.3,
    batch_size: int = 1,
    num_workers: int = 0,
    batch_invariant: bool = True,
) -> SlotStatistics:
    """Match the last stage to the ground truth over ``dataset`` and count per slot.

    Args:
        model: the detector (eval mode during the pass, its mode restored after).
        matcher: the model's matcher (``build_criterion(config).matcher``).
        dataset: images with the test transform and their targets.
        score_threshold: a slot is confident in an image when its best class score, as
            written (:func:`~sparsercnn.scores.passes_threshold`), reaches it.
        batch_size: images per forward pass.
        num_workers: data-loading processes.
        batch_invariant: only images of the same padded size share a forward pass.

    Returns:
        The statistics; every image contributes ``min(#GT, N)`` matches. Its
        :meth:`~SlotStatistics.advice` is not logged here: it is part of
        :meth:`~SlotStatistics.format` and the JSON, which ``diagnose slots`` prints and writes.
    """
    device = model_device(model)
    num_classes = dataset.category_map.num_classes
    matched = np.zeros(model.num_proposals, dtype=np.int64)
    confident = np.zeros(model.num_proposals, dtype=np.int64)
    class_counts = np.zeros((model.num_proposals, num_classes), dtype=np.int64)
    proposals = np.zeros((model.num_proposals, 4))
    records: list[np.ndarray] = []  # per match: slot, label, cx, cy, sqrt area
    num_images = num_gt = most = 0
    with evaluating(model):
        for batch in build_test_loader(dataset, batch_size, num_workers):
            images = [image.to(device) for image in batch.images]
            output = run_model(model, images, batch_invariant=batch_invariant)
            last = output.last
            sizes = output.image_sizes.float().cpu()  # (B, 2) (h, w) of the input images
            if num_images == 0:
                whwh = sizes[0].flip(0).repeat(2)  # (w, h, w, h)
                boxes_norm = output.proposal_boxes[0].float().cpu() / whwh
                proposals = box_xyxy_to_cxcywh(boxes_norm).double().numpy()
            best = last.logits.sigmoid().amax(dim=-1).cpu()  # (B, N)
            confident += passes_threshold(best, score_threshold).sum(dim=0).numpy()
            matches = matcher(last.logits, last.boxes, batch.targets, output.image_sizes)
            for image, (slots, gts) in enumerate(matches):
                target = batch.targets[image]
                pixel_map = batch.pixel_maps[image] if batch.pixel_maps else None
                record = _match_records(
                    target, slots, gts, sizes[image], batch.original_sizes[image], pixel_map
                )
                np.add.at(matched, record[:, 0].astype(np.int64), 1)
                np.add.at(class_counts, tuple(record[:, :2].astype(np.int64).T), 1)
                records.append(record)
                num_gt += len(target)
                most = max(most, len(target))
            num_images += len(batch)
    table = np.concatenate(records) if records else np.zeros((0, 5))
    statistics = SlotStatistics(
        # Names shared by several categories get their ids: the JSON keys classes by name.
        class_names=dataset.category_map.distinct_names,
        num_images=num_images,
        num_gt_boxes=num_gt,
        max_objects_per_image=most,
        score_threshold=score_threshold,
        matched_counts=matched,
        confident_counts=confident,
        class_counts=class_counts,
        proposal_boxes_cxcywh_norm=np.asarray(proposals, dtype=np.float64),
        match_slots=table[:, 0].astype(np.int64),
        match_labels=table[:, 1].astype(np.int64),
        match_centres_norm=table[:, 2:4],
        match_sqrt_areas=table[:, 4],
    )
    return statistics


def slot_statistics_of_model_file(
    model_file: str | Path,
    json_path: str | Path,
    image_dir: str | Path,
    *,
    device: torch.device | str = "cpu",
    score_threshold: float = 0.3,
    batch_size: int | None = None,
    num_workers: int = DEFAULT_NUM_WORKERS,
    batch_invariant: bool = True,
    skip_invalid: bool = False,
) -> SlotStatistics:
    """:func:`collect_slot_statistics` of a model file on a COCO dataset, with its own matcher."""
    loaded, dataset = load_model_and_dataset(
        model_file, json_path, image_dir, device, skip_invalid=skip_invalid
    )
    return collect_slot_statistics(
        loaded.model,
        build_criterion(loaded.config).matcher,
        dataset,
        score_threshold=score_threshold,
        batch_size=batch_size or loaded.config.input.test_batch_size,
        num_workers=num_workers,
        batch_invariant=batch_invariant,
    )


def write_slot_statistics(statistics: SlotStatistics, output_dir: str | Path) -> dict[str, Path]:
    """Write ``slots.json`` and the plots ``slot_matches.png``, ``slot_centres.png`` and
    ``slot_sizes.png`` into ``output_dir``.

    Returns:
        ``{"json", "matches", "centres", "sizes"}`` -> path.
    """
    output_dir = Path(output_dir)
    text = json.dumps(statistics.to_dict(), indent=2)
    return {
        "json": atomic_write_text(output_dir / "slots.json", text),
        "matches": plot_slot_match_counts(
            statistics.matched_counts,
            statistics.confident_counts,
            output_dir / "slot_matches.png",
            score_threshold=statistics.score_threshold,
        ),
        "centres": plot_slot_centres(
            statistics.mean_centres_norm,
            statistics.dominant_labels,
            statistics.matched_counts,
            statistics.class_names,
            output_dir / "slot_centres.png",
            proposal_centres=statistics.proposal_boxes_cxcywh_norm[:, :2],
        ),
        "sizes": plot_slot_size_histograms(statistics.size_groups(), output_dir / "slot_sizes.png"),
    }
