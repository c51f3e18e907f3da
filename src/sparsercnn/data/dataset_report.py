"""``sparsercnn validate``'s report: every issue the data policy finds, and statistics of the
entries it keeps (what ``--skip-invalid`` trains on).

:func:`validate_coco` runs :func:`~sparsercnn.data.policy.inspect_dataset`, decoding every
image, and never raises for problems in the data: it lists them.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

import numpy as np

from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.policy import SKIP_INVALID_HINT, inspect_dataset
from sparsercnn.data.validation import (
    DEFAULT_CLIP_TOLERANCE,
    CheckedCoco,
    Issue,
    format_issues,
)
from sparsercnn.structures import coco_area

# COCO evaluation's size ranges (APs / APm / APl), on the box area in px^2.
SMALL_AREA, LARGE_AREA = 32**2, 96**2


@dataclass
class DatasetSummary:
    """Statistics of the entries that pass every check (what ``--skip-invalid`` trains on).

    Boxes are the non-crowd annotations; sizes use the (clipped) ``bbox`` area, with COCO's
    ranges: small ``< 32^2``, medium ``[32^2, 96^2)``, large ``>= 96^2`` px^2. The sqrt-area
    statistics are ``None`` when there is no box.
    """

    num_images_in_json: int
    num_annotations_in_json: int
    num_images: int
    num_boxes: int
    num_crowd_boxes: int
    boxes_per_category: list[tuple[int, str, int]]  # (category id, name, boxes), label order
    objects_per_image_min: int
    objects_per_image_mean: float
    objects_per_image_max: int
    num_images_without_boxes: int
    num_small: int
    num_medium: int
    num_large: int
    sqrt_area_min: float | None
    sqrt_area_median: float | None
    sqrt_area_max: float | None

    @staticmethod
    def from_checked(checked: CheckedCoco) -> DatasetSummary:
        """Compute the statistics of the entries in ``checked``."""
        boxes = [ann for ann in checked.annotations if not ann.get("iscrowd", 0)]
        per_image = Counter(ann["image_id"] for ann in boxes)
        counts = np.array([per_image[image["id"]] for image in checked.images], dtype=np.int64)
        per_category = Counter(ann["category_id"] for ann in boxes)
        category_map = CategoryMap.from_coco(checked.categories)
        sqrt_areas = np.sqrt([ann["bbox"][2] * ann["bbox"][3] for ann in boxes])
        # COCO's size classes use the annotation's area (a segment's, in COCO's own files).
        areas = np.array([coco_area(ann) for ann in boxes], dtype=np.float64)
        has_boxes = areas.size > 0
        return DatasetSummary(
            num_images_in_json=checked.num_images_in_json,
            num_annotations_in_json=checked.num_annotations_in_json,
            num_images=len(checked.images),
            num_boxes=len(boxes),
            num_crowd_boxes=len(checked.annotations) - len(boxes),
            boxes_per_category=[
                (cat_id, name, per_category[cat_id])
                for cat_id, name in zip(category_map.category_ids, category_map.names, strict=True)
            ],
            objects_per_image_min=int(counts.min()) if counts.size else 0,
            objects_per_image_mean=float(counts.mean()) if counts.size else 0.0,
            objects_per_image_max=int(counts.max()) if counts.size else 0,
            num_images_without_boxes=int((counts == 0).sum()),
            num_small=int((areas < SMALL_AREA).sum()),
            num_medium=int(((areas >= SMALL_AREA) & (areas < LARGE_AREA)).sum()),
            num_large=int((areas >= LARGE_AREA).sum()),
            sqrt_area_min=float(sqrt_areas.min()) if has_boxes else None,
            sqrt_area_median=float(np.median(sqrt_areas)) if has_boxes else None,
            sqrt_area_max=float(sqrt_areas.max()) if has_boxes else None,
        )

    def format(self) -> list[str]:
        """Readable lines, one statistic per line."""
        s = self
        lines = [
            f"images: {s.num_images} usable of {s.num_images_in_json} in the file, "
            f"{s.num_images_without_boxes} of them without boxes",
            f"annotations: {s.num_annotations_in_json} in the file; usable: {s.num_boxes} boxes "
            f"and {s.num_crowd_boxes} crowd regions (not trained on)",
            f"boxes per image: min {s.objects_per_image_min}, "
            f"mean {s.objects_per_image_mean:.2f}, max {s.objects_per_image_max}",
        ]
        if s.sqrt_area_min is not None:
            lines.append(
                f"box size, sqrt(w*h) px: min {s.sqrt_area_min:.1f}, median "
                f"{s.sqrt_area_median:.1f}, max {s.sqrt_area_max:.1f}; by COCO area (what "
                f"APs/APm/APl use): small {s.num_small}, medium {s.num_medium}, "
                f"large {s.num_large}"
            )
        lines.append(f"boxes per category ({len(s.boxes_per_category)} categories):")
        lines.append(f"  {'label':>5} {'id':>6} {'boxes':>8}  name")
        for label, (cat_id, name, count) in enumerate(s.boxes_per_category):
            lines.append(f"  {label:>5} {cat_id:>6} {count:>8}  {name}")
        return lines


@dataclass
class ValidationReport:
    """What :func:`validate_coco` found: the issues and the statistics of the usable data."""

    json_path: str
    image_dir: str
    issues: list[Issue]
    summary: DatasetSummary

    @property
    def errors(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.severity == "warning"]

    @property
    def infos(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.severity == "info"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings and info do not stop training)."""
        return not self.errors

    def format(self, max_per_code: int = 10) -> str:
        """The report as readable multi-line text (at most ``max_per_code`` issues per code)."""
        lines = [f"dataset {self.json_path} (images in {self.image_dir})"]
        lines += [f"  {line}" for line in self.summary.format()]
        for title, found, limit in (
            ("errors", self.errors, max_per_code),
            ("warnings", self.warnings, max_per_code),
            ("info", self.infos, min(max_per_code, 3)),
        ):
            if found:
                lines.append(f"{len(found)} {title}:")
                lines += format_issues(found, limit)
        if self.ok:
            lines.append("OK: no errors.")
        else:
            lines.append(
                f"FAILED: {len(self.errors)} error(s); `sparsercnn train` and `eval` refuse this "
                f"dataset. Fix the files, or {SKIP_INVALID_HINT} to drop the offending images "
                "and annotations."
            )
        return "\n".join(lines)


def validate_coco(
    json_path: str | os.PathLike[str],
    image_dir: str | os.PathLike[str],
    check_images: bool = True,
    clip_tolerance: float = DEFAULT_CLIP_TOLERANCE,
    num_proposals: int | None = None,
) -> ValidationReport:
    """Check a COCO instances dataset and describe it.

    Args:
        json_path: the COCO instances JSON file.
        image_dir: the folder that ``images[].file_name`` is relative to.
        check_images: also check that every image file exists and decodes in full (in
            parallel), and compare its decoded size with the JSON.
        clip_tolerance: see :data:`~sparsercnn.data.validation.DEFAULT_CLIP_TOLERANCE`.
        num_proposals: if given, warn about images with more boxes than proposals (every box
            needs its own proposal in the matching, spec 7.1).

    Returns:
        The report; its summary counts only the entries that pass every check.

    Raises:
        DatasetError: the file is missing, not JSON, or not a COCO instances file.
    """
    inspection = inspect_dataset(
        json_path,
        image_dir,
        image_check="decode" if check_images else "none",
        clip_tolerance=clip_tolerance,
        num_proposals=num_proposals,
    )
    return ValidationReport(
        inspection.source,
        inspection.image_dir,
        inspection.issues,
        DatasetSummary.from_checked(inspection.checked),
    )
