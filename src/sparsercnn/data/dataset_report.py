"""``sparsercnn validate``'s report: every issue the data policy finds, and statistics of the
entries it keeps (what ``--skip-invalid`` trains on).

:func:`validate_coco` runs :func:`~sparsercnn.data.policy.inspect_dataset`, decoding every
image unless told to look for the files only (or not at all), and never raises for problems in
the data: it lists them; the report's last line says what was checked.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sparsercnn.atomic_file import atomic_write_text
from sparsercnn.data.box_rules import DEFAULT_CLIP_TOLERANCE, MAX_COCO_AREA
from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.checked_coco import CheckedCoco
from sparsercnn.data.issues import Issue, format_issues
from sparsercnn.data.policy import (
    SKIP_INVALID_HINT,
    UNSKIPPABLE_CODES,
    ImageCheck,
    inspect_dataset,
)
from sparsercnn.text import agreeing_noun, counted, listing, verb

# COCO evaluation's size ranges (APs / APm / APl) in px^2, faster-coco-eval's and pycocotools'
# defaults. Both ends are closed: COCOeval ignores an object in a range when
# ``area < lo or area > hi``, so an area of exactly 32^2 or 96^2 is scored in two ranges.
SMALL_AREA, LARGE_AREA = 32**2, 96**2
COCO_AREA_RANGES = ((0.0, SMALL_AREA), (SMALL_AREA, LARGE_AREA), (LARGE_AREA, MAX_COCO_AREA))


def coco_area_ranges(areas: np.ndarray) -> np.ndarray:
    """Which of COCO's size ranges (small, medium, large) evaluation scores each object in.

    Args:
        areas: ``(N,)`` the area evaluation sorts each object by
            (:func:`~sparsercnn.structures.coco_area`).

    Returns:
        ``(N, 3)`` bool, COCOeval's rule: in a range unless ``area < lo or area > hi``, so an
        area on a boundary is in two ranges, a NaN area in all three, one outside ``[0, 1e10]``
        in none.
    """
    areas = np.asarray(areas, dtype=np.float64).reshape(-1, 1)
    bounds = np.array(COCO_AREA_RANGES, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return ~((areas < bounds[:, 0]) | (areas > bounds[:, 1]))


@dataclass
class DatasetSummary:
    """Statistics of the entries that pass every check (what ``--skip-invalid`` trains on).

    Boxes are the non-crowd annotations; the sqrt-area statistics use the (clipped) ``bbox``
    that training uses, and are ``None`` when there is no box. The size ranges count what COCO
    evaluation scores (:func:`coco_area_ranges`): every non-crowd object it scores (the boxes
    and the zero-size ones, ``num_scored_objects``), by its ``area`` field where it has a
    numeric one (``num_sized_by_area_field``), else by its box's ``w * h`` as the file gives
    it; small ``[0, 32^2]``, medium ``[32^2, 96^2]``, large ``[96^2, 1e10]`` px^2, closed, so
    an object on a boundary counts in two ranges (``num_in_several_ranges``), and one
    outside every range in none (``num_in_no_range``).
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
    num_scored_objects: int
    num_sized_by_area_field: int
    num_in_several_ranges: int
    num_in_no_range: int
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
        has_boxes = sqrt_areas.size > 0
        # COCO's size ranges use the annotation's area (a segment's, in COCO's own files).
        areas = np.array([obj.area for obj in checked.scored_objects], dtype=np.float64)
        in_range = coco_area_ranges(areas)
        per_object = in_range.sum(axis=1)
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
            num_small=int(in_range[:, 0].sum()),
            num_medium=int(in_range[:, 1].sum()),
            num_large=int(in_range[:, 2].sum()),
            num_scored_objects=len(areas),
            num_sized_by_area_field=sum(obj.area_from_field for obj in checked.scored_objects),
            num_in_several_ranges=int((per_object > 1).sum()),
            num_in_no_range=int((per_object == 0).sum()),
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
            f"annotations: {s.num_annotations_in_json} in the file; usable: "
            f"{counted(s.num_boxes, 'box', 'boxes')} and "
            f"{counted(s.num_crowd_boxes, 'crowd region')} (not trained on)",
            f"boxes per image: min {s.objects_per_image_min}, "
            f"mean {s.objects_per_image_mean:.3g}, max {s.objects_per_image_max}",
        ]
        if s.sqrt_area_min is not None:
            lines.append(
                f"box size, sqrt(w*h) px: min {s.sqrt_area_min:.1f}, median "
                f"{s.sqrt_area_median:.1f}, max {s.sqrt_area_max:.1f}"
            )
        if s.num_scored_objects:
            lines += s._size_range_lines()
        categories = counted(len(s.boxes_per_category), "category", "categories")
        lines.append(f"boxes per category ({categories}):")
        unused = [str(cat_id) for cat_id, _, count in s.boxes_per_category if count == 0]
        if unused and s.num_boxes:
            # Was "remove them ... unless they are meant so" of one category.
            one = len(unused) == 1
            lines.append(
                f"  {counted(len(unused), 'category', 'categories')} without a usable box "
                f"({agreeing_noun(len(unused), 'id')} {listing(unused)}): the model gets an "
                f"output for {'it' if one else 'each'} but never learns it; remove "
                f"{'it' if one else 'them'} from 'categories' unless "
                f"{'it is' if one else 'they are'} meant so"
            )
        lines.append(f"  {'label':>5} {'id':>6} {'boxes':>8}  name")
        for label, (cat_id, name, count) in enumerate(s.boxes_per_category):
            lines.append(f"  {label:>5} {cat_id:>6} {count:>8}  {name}")
        return lines

    def _size_range_lines(self) -> list[str]:
        """The COCO size ranges, saying which area they use and what counts twice or never."""
        s = self
        num_zero_size = s.num_scored_objects - s.num_boxes
        by_box = s.num_scored_objects - s.num_sized_by_area_field
        lines = [
            f"COCO size ranges (what APs/APm/APl score) of the "
            f"{counted(s.num_scored_objects, 'object')} evaluated: small {s.num_small}, "
            f"medium {s.num_medium}, large {s.num_large}",
            f"  sized by the 'area' field for {s.num_sized_by_area_field}, by the box's w*h "
            f"(as the file gives it, before clipping) for {by_box}"
            + (
                f"; {counted(num_zero_size, 'zero-size box', 'zero-size boxes')} included"
                if num_zero_size
                else ""
            ),
        ]
        if s.num_in_several_ranges:
            lines.append(
                f"  {counted(s.num_in_several_ranges, 'object')} counted in more than one range, "
                f"as COCO evaluation scores them: an area of exactly {SMALL_AREA} or "
                f"{LARGE_AREA} px^2 is in both ranges it bounds, a NaN area in all three"
            )
        if s.num_in_no_range:
            lines.append(
                f"  {counted(s.num_in_no_range, 'object')} in no range (area outside [0, "
                f"{MAX_COCO_AREA:g}]): COCO evaluation ignores them"
            )
        return lines


@dataclass
class ValidationReport:
    """What :func:`validate_coco` found: the issues and the statistics of the usable data.

    ``image_check`` is how far the image files were checked (:data:`ImageCheck`): the report's
    last line says so, as an "OK" does not cover what was not checked.
    """

    json_path: str
    image_dir: str
    issues: list[Issue]
    summary: DatasetSummary
    image_check: ImageCheck = "decode"

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

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON data, for scripts: what was checked (``json``, ``images``,
        ``image_check``), ``ok``, the number of issues per severity, every issue (``severity``,
        ``code``, ``message``, ``image_id``, ``annotation_id``, ``file``; ``null`` where it
        concerns none) in the order :meth:`format` lists them, and the summary's fields
        (``boxes_per_category`` as ``{"category_id", "name", "boxes"}`` objects)."""
        return {
            "json": self.json_path,
            "images": self.image_dir,
            "image_check": self.image_check,
            "ok": self.ok,
            "num_errors": len(self.errors),
            "num_warnings": len(self.warnings),
            "num_infos": len(self.infos),
            "issues": [asdict(issue) for issue in (*self.errors, *self.warnings, *self.infos)],
            "summary": {
                **asdict(self.summary),
                "boxes_per_category": [
                    {"category_id": category_id, "name": name, "boxes": boxes}
                    for category_id, name, boxes in self.summary.boxes_per_category
                ],
            },
        }

    def write_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` to ``path`` atomically (a file there is replaced whole, or
        left as it was when the write fails). Returns ``path``."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def format(self, max_per_code: int | None = 10) -> str:
        """The report as readable multi-line text: at most ``max_per_code`` errors and warnings
        per code, and 3 infos (``None``: every issue), with a line saying how many are not
        listed and how to list them."""
        lines = [f"dataset {self.json_path} (images in {self.image_dir})"]
        lines += [f"  {line}" for line in self.summary.format()]
        unlisted = 0
        for noun, found, limit in (
            ("error", self.errors, max_per_code),
            ("warning", self.warnings, max_per_code),
            ("info", self.infos, None if max_per_code is None else min(max_per_code, 3)),
        ):
            if found:
                lines.append(f"{counted(len(found), noun, noun if noun == 'info' else None)}:")
                lines += format_issues(found, limit)
                per_code = Counter(issue.code for issue in found).values()
                unlisted += sum(max(0, count - limit) for count in per_code if limit is not None)
        if unlisted:
            lines.append(
                f"{counted(unlisted, 'issue')} not listed above: `sparsercnn validate --all` "
                "lists every one"
            )
        lines.append(self._verdict())
        if self.image_check != "decode":
            lines.append(self._unchecked_line())
        return "\n".join(lines)

    def _verdict(self) -> str:
        """The last line: OK, or FAILED and what to do (``--skip-invalid`` only where dropping
        the offending entries leaves a dataset to use)."""
        checked = {
            "decode": "the JSON's entries and every image file, decoded in full",
            "exists": "the JSON's entries and that every image file exists",
            "none": "the JSON's entries alone",
        }[self.image_check]
        if self.ok:
            return f"OK: no errors in {checked}."
        errors = counted(len(self.errors), "error")
        codes = dict.fromkeys(issue.code for issue in self.errors)
        unskippable = [code for code in codes if code in UNSKIPPABLE_CODES]
        if not unskippable:
            return (
                f"FAILED: {errors}; `sparsercnn train` and `eval` refuse this dataset. Fix the "
                f"files, or {SKIP_INVALID_HINT} to drop the offending images and annotations."
            )
        named = " and ".join(f"[{code}]" for code in unskippable)
        return (
            f"FAILED: {errors}; `sparsercnn train` and `eval` refuse this dataset, with "
            f"--skip-invalid too: {named} {verb(len(unskippable), 'is')} about the "
            "whole dataset, which dropping the offending entries cannot fix. Fix the files as "
            "the errors above say."
        )

    def _unchecked_line(self) -> str:
        """What an image check short of decoding left out, and how to check it."""
        if self.image_check == "exists":
            left_out = "the image files were looked for, not opened or decoded (--no-image-check)"
            found = "unreadable, truncated or resized images"
        else:
            left_out = "the image files were not looked for"
            found = "missing, unreadable, truncated or resized images"
        return (
            f"{left_out}: `train` and `eval` decode every one; `sparsercnn validate` without "
            f"--no-image-check does too, and finds {found} in {self.image_dir}"
        )


def validate_coco(
    json_path: str | os.PathLike[str],
    image_dir: str | os.PathLike[str],
    image_check: ImageCheck = "decode",
    clip_tolerance: float = DEFAULT_CLIP_TOLERANCE,
    num_proposals: int | None = None,
) -> ValidationReport:
    """Check a COCO instances dataset and describe it.

    Args:
        json_path: the COCO instances JSON file.
        image_dir: the folder that ``images[].file_name`` is relative to.
        image_check: how far the image files are checked (:data:`ImageCheck`): ``"decode"``,
            that every one exists and decodes in full (in parallel), its decoded size compared
            with the JSON's; ``"exists"``, that every one exists (and the folder, as for
            ``"decode"``); ``"none"``, not at all.
        clip_tolerance: see :data:`~sparsercnn.data.box_rules.DEFAULT_CLIP_TOLERANCE`.
        num_proposals: if given, warn about images with more boxes than proposals (every box
            needs its own proposal in the matching, spec 7.1).

    Returns:
        The report; its summary counts only the entries that pass every check.

    Raises:
        DatasetError: the file is missing, not JSON, or not a COCO instances file; or (unless
            ``image_check`` is ``"none"``) the image folder is missing, a file, or empty.
    """
    inspection = inspect_dataset(
        json_path,
        image_dir,
        image_check=image_check,
        clip_tolerance=clip_tolerance,
        num_proposals=num_proposals,
    )
    return ValidationReport(
        inspection.source,
        os.fspath(image_dir),
        inspection.issues,
        DatasetSummary.from_checked(inspection.checked),
        image_check,
    )
