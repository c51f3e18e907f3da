"""Checks of COCO instances files, shared by :func:`validate_coco` and the dataset.

:func:`check_coco` applies the rules to a parsed file and returns the entries that pass (boxes
slightly outside their image clipped) with an :class:`Issue` for every problem, each naming the
image id, annotation id and file; :func:`check_image_files` checks the image files.
:func:`validate_coco` (behind ``sparsercnn validate``) runs both and adds statistics;
:class:`~sparsercnn.data.coco.CocoDataset` runs the cheap part when it is built.

Issue codes. Errors: ``bad_category``, ``duplicate_category_id``, ``no_categories``,
``bad_image``, ``duplicate_image_id``, ``bad_annotation``, ``duplicate_annotation_id``,
``unknown_image_id``, ``unknown_category_id``, ``malformed_bbox``, ``negative_size``,
``box_outside_image``, ``image_file_missing``, ``no_image_found``, ``image_file_unreadable``.
Warnings: ``box_clipped``, ``empty_box`` (zero width or height: dropped, as the reference does,
spec 1.4; COCO train2017 has two), ``duplicate_category_name``, ``duplicate_file_name``,
``image_size_mismatch``, ``too_many_boxes``. Info: ``image_without_boxes``.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeGuard

import numpy as np

from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.image_io import ImageReadError, read_image_header

# How far a box may extend past the image border, as a fraction of the image width (for x) or
# height (for y), and still be clipped with a warning instead of being rejected.
DEFAULT_CLIP_TOLERANCE = 0.05
REQUIRED_KEYS = ("images", "annotations", "categories")
# COCO evaluation's size ranges (APs / APm / APl), on the box area in px^2.
SMALL_AREA, LARGE_AREA = 32**2, 96**2
_HEADER_THREADS = 8

Severity = Literal["error", "warning", "info"]


class DatasetError(ValueError):
    """A dataset is not usable as given; the message names the file/ids and says what to do."""


@dataclass(frozen=True)
class Issue:
    """One problem found in a dataset (codes listed in the module docstring)."""

    severity: Severity
    code: str
    message: str
    image_id: int | None = None
    annotation_id: int | None = None
    file: str | None = None

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


@dataclass
class CheckedCoco:
    """A COCO file after :func:`check_coco`: the entries that passed, and what was found.

    ``images`` / ``categories`` keep the first entry of every id, in file order;
    ``annotations`` hold the valid ones, with a clipped ``bbox`` where it was fixable (copies,
    the parsed file is not modified).
    """

    images: list[dict[str, Any]]
    annotations: list[dict[str, Any]]
    categories: list[dict[str, Any]]
    issues: list[Issue]
    num_images_in_json: int
    num_annotations_in_json: int

    def without_images(self, image_ids: Collection[int]) -> CheckedCoco:
        """The same data without the given images and their annotations."""
        drop = set(image_ids)
        return replace(
            self,
            images=[image for image in self.images if image["id"] not in drop],
            annotations=[ann for ann in self.annotations if ann["image_id"] not in drop],
        )


# Exact type tests: JSON gives plain int/float, and bool (an int subclass) must not pass.
def _is_int(value: object) -> TypeGuard[int]:
    return type(value) is int


def _is_number(value: object) -> TypeGuard[int | float]:
    return type(value) is int or type(value) is float


def load_coco_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a COCO instances file and check its top-level structure.

    Raises:
        DatasetError: the file is missing, not JSON, or lacks a list-valued ``images``,
            ``annotations`` or ``categories``; the message names the file and the key.
    """
    try:
        with open(path, "rb") as file:
            data = json.load(file)
    except FileNotFoundError:
        raise DatasetError(f"annotation file not found: {os.fspath(path)}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read {os.fspath(path)} as JSON: {exc}") from exc
    _check_structure(data, os.fspath(path))
    return data


def _check_structure(data: Any, source: str) -> None:
    expected = "a COCO instances file (an object with 'images', 'annotations' and 'categories')"
    if isinstance(data, list):
        looks_like_results = bool(data) and isinstance(data[0], dict) and "score" in data[0]
        what = "detection results (a list with scores)" if looks_like_results else "a JSON list"
        raise DatasetError(f"{source} holds {what}, but {expected} is needed")
    if not isinstance(data, dict):
        raise DatasetError(f"{source} holds a JSON {type(data).__name__}; {expected} is needed")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise DatasetError(
            f"{source} is not {expected}: key(s) {', '.join(map(repr, missing))} missing "
            f"(found {sorted(data)[:10]})"
        )
    for key in REQUIRED_KEYS:
        if not isinstance(data[key], list):
            raise DatasetError(
                f"{source}: {key!r} must be a JSON list, got {type(data[key]).__name__}"
            )


def check_coco(
    data: dict[str, Any], source: str, *, clip_tolerance: float = DEFAULT_CLIP_TOLERANCE
) -> CheckedCoco:
    """Check the entries of a parsed COCO file (no file-system access).

    Args:
        data: the parsed file (as :func:`load_coco_json` returns it).
        source: the file name, for messages.
        clip_tolerance: see :data:`DEFAULT_CLIP_TOLERANCE`.

    Returns:
        The valid entries and every issue found. Annotations of an image or category whose
        entry is invalid are dropped with it, without an issue of their own.
    """
    _check_structure(data, source)
    checker = _Checker(clip_tolerance)
    categories = checker.categories(data["categories"])
    if not categories:
        checker.add("error", "no_categories", f"{source}: no valid category")
    images = checker.images(data["images"])
    annotations = checker.annotations(
        data["annotations"],
        images={image["id"]: image for image in images},
        category_ids={category["id"] for category in categories},
    )
    return CheckedCoco(
        images,
        annotations,
        categories,
        checker.issues,
        len(data["images"]),
        len(data["annotations"]),
    )


class _Checker:
    """The rules for the three lists of a COCO file; collects issues as it goes."""

    def __init__(self, clip_tolerance: float) -> None:
        self.clip_tolerance = clip_tolerance
        self.issues: list[Issue] = []
        # Ids whose entry is invalid: their annotations are dropped without an issue each.
        self.bad_image_ids: set[int] = set()
        self.bad_category_ids: set[int] = set()

    def add(
        self,
        severity: Severity,
        code: str,
        message: str,
        image_id: int | None = None,
        annotation_id: int | None = None,
        file: str | None = None,
    ) -> None:
        self.issues.append(Issue(severity, code, message, image_id, annotation_id, file))

    def categories(self, entries: list[Any]) -> list[dict[str, Any]]:
        valid: list[dict[str, Any]] = []
        seen: set[int] = set()
        names: dict[str, int] = {}
        for pos, entry in enumerate(entries):
            cat_id = entry.get("id") if isinstance(entry, dict) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            if cat_id is None or not _is_int(cat_id):
                message = f"categories[{pos}] has no integer 'id': {entry!r:.100}"
                self.add("error", "bad_category", message)
            elif cat_id in seen:
                message = f"category id {cat_id} is repeated at categories[{pos}]; kept the first"
                self.add("error", "duplicate_category_id", message)
            elif not isinstance(name, str):
                self.bad_category_ids.add(cat_id)
                message = f"category {cat_id} (categories[{pos}]) has no string 'name'"
                self.add("error", "bad_category", message)
            else:
                if name in names:
                    message = f"categories {names[name]} and {cat_id} are both named {name!r}"
                    self.add("warning", "duplicate_category_name", message)
                names.setdefault(name, cat_id)
                valid.append(entry)
            if cat_id is not None and _is_int(cat_id):
                seen.add(cat_id)
        return valid

    def images(self, entries: list[Any]) -> list[dict[str, Any]]:
        valid: list[dict[str, Any]] = []
        seen: set[int] = set()
        files: dict[str, int] = {}
        for pos, entry in enumerate(entries):
            image_id = entry.get("id") if isinstance(entry, dict) else None
            if image_id is None or not _is_int(image_id):
                self.add("error", "bad_image", f"images[{pos}] has no integer 'id': {entry!r:.100}")
                continue
            file = entry.get("file_name")
            file = file if isinstance(file, str) else None
            problem = _image_entry_problem(entry)
            if image_id in seen:
                message = (
                    f"image id {image_id} is repeated at images[{pos}] ({file!r}); kept the first"
                )
                self.add("error", "duplicate_image_id", message, image_id, None, file)
            elif problem is not None or file is None:
                self.bad_image_ids.add(image_id)
                message = f"image {image_id} (images[{pos}]): {problem}"
                self.add("error", "bad_image", message, image_id, None, file)
            else:
                if file in files:
                    message = f"images {files[file]} and {image_id} both use file {file!r}"
                    self.add("warning", "duplicate_file_name", message, image_id, None, file)
                files.setdefault(file, image_id)
                valid.append(entry)
            seen.add(image_id)
        return valid

    def annotations(
        self, entries: list[Any], images: dict[int, dict[str, Any]], category_ids: set[int]
    ) -> list[dict[str, Any]]:
        valid: list[dict[str, Any]] = []
        seen: set[int] = set()
        for pos, ann in enumerate(entries):
            ids = [ann.get(key) if isinstance(ann, dict) else None for key in _ANNOTATION_IDS]
            ann_id, image_id, cat_id = (value if _is_int(value) else None for value in ids)
            if ann_id is None or image_id is None or cat_id is None:
                needs = [
                    key
                    for key, value in zip(_ANNOTATION_IDS, ids, strict=True)
                    if not _is_int(value)
                ]
                message = f"annotations[{pos}] needs integer {', '.join(needs)}: {ann!r:.100}"
                self.add("error", "bad_annotation", message, image_id, ann_id)
            elif ann_id in seen:
                message = (
                    f"annotation id {ann_id} is repeated at annotations[{pos}]; kept the first"
                )
                self.add("error", "duplicate_annotation_id", message, image_id, ann_id)
            elif image_id in self.bad_image_ids or cat_id in self.bad_category_ids:
                pass  # its image or category was already reported; one error is enough
            elif image_id not in images:
                message = f"annotation {ann_id} refers to image id {image_id}, not in 'images'"
                self.add("error", "unknown_image_id", message, image_id, ann_id)
            else:
                checked = self.annotation(ann, images[image_id], category_ids)
                if checked is not None:
                    valid.append(checked)
            if ann_id is not None:
                seen.add(ann_id)
        return valid

    def annotation(
        self, ann: dict[str, Any], image: dict[str, Any], category_ids: set[int]
    ) -> dict[str, Any] | None:
        """Check the category and box of an annotation of a valid image.

        Returns the annotation, a copy with its box clipped, or ``None`` when it is dropped.
        """
        ann_id, image_id, file = ann["id"], image["id"], image["file_name"]
        where = f"annotation {ann_id} (image {image_id}, {file!r})"
        if ann["category_id"] not in category_ids:
            problem: tuple[str, str] | None = (
                "unknown_category_id",
                f"category id {ann['category_id']} is not in 'categories'",
            )
        else:
            problem = _bbox_problem(ann.get("bbox"))
        if problem is not None:
            self.add("error", problem[0], f"{where}: {problem[1]}", image_id, ann_id, file)
            return None
        if ann["bbox"][2] == 0 or ann["bbox"][3] == 0:
            message = f"{where}: bbox {ann['bbox']} has zero width or height; dropped"
            self.add("warning", "empty_box", message, image_id, ann_id, file)
            return None
        width, height = int(image["width"]), int(image["height"])
        bbox, reason = _fit_to_image(ann["bbox"], width, height, self.clip_tolerance)
        if bbox is None:
            self.add("error", "box_outside_image", f"{where}: {reason}", image_id, ann_id, file)
            return None
        if reason is not None:
            self.add("warning", "box_clipped", f"{where}: {reason}", image_id, ann_id, file)
            return {**ann, "bbox": bbox}
        return ann


_ANNOTATION_IDS = ("id", "image_id", "category_id")


def _image_entry_problem(entry: dict[str, Any]) -> str | None:
    file_name = entry.get("file_name")
    if not isinstance(file_name, str) or not file_name:
        return f"'file_name' must be a non-empty string, got {file_name!r}"
    for key in ("width", "height"):
        value = entry.get(key)
        if not _is_number(value) or not math.isfinite(value) or value <= 0 or value != int(value):
            return f"{key!r} must be a positive integer, got {value!r}"
    return None


def _bbox_problem(bbox: Any) -> tuple[str, str] | None:
    """``(code, reason)`` unless ``bbox`` is 4 finite numbers with positive width and height."""
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_number, bbox))):
        return "malformed_bbox", f"'bbox' must be 4 numbers [x, y, w, h], got {bbox!r:.80}"
    if not all(map(math.isfinite, bbox)):
        return "malformed_bbox", f"bbox {bbox} has a NaN or infinite value"
    if bbox[2] < 0 or bbox[3] < 0:
        return "negative_size", f"bbox {bbox} has a negative width or height (COCO is [x, y, w, h])"
    return None


def _fit_to_image(
    bbox: list[float], width: int, height: int, tolerance: float
) -> tuple[list[float] | None, str | None]:
    """Keep a box inside the image, clip one at most ``tolerance`` outside, reject the rest.

    Returns:
        The box to use (``bbox`` itself, a clipped copy, or ``None`` when rejected) and, for a
        clipped or rejected box, the reason.
    """
    x1, y1, w, h = bbox
    x2, y2 = x1 + w, y1 + h
    if x1 >= 0 and y1 >= 0 and x2 <= width and y2 <= height:
        return bbox, None
    size = f"the {width}x{height} (w x h) image"
    xyxy = f"[{x1:g}, {y1:g}, {x2:g}, {y2:g}]"
    tol_x, tol_y = tolerance * width, tolerance * height
    if x1 < -tol_x or y1 < -tol_y or x2 > width + tol_x or y2 > height + tol_y:
        return None, f"bbox {bbox} (xyxy {xyxy}) exceeds {size} by more than {tolerance:.0%}"
    cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    if cx2 <= cx1 or cy2 <= cy1:
        return None, f"bbox {bbox} (xyxy {xyxy}) lies outside {size}"
    clipped = [float(cx1), float(cy1), float(cx2 - cx1), float(cy2 - cy1)]
    return clipped, f"bbox {bbox} is slightly outside {size}; clipped to {clipped}"


def check_image_files(
    images: Iterable[dict[str, Any]], image_dir: str | os.PathLike[str], *, read_headers: bool
) -> list[Issue]:
    """Check that every image file exists and, with ``read_headers``, that its header reads.

    Existence is checked by listing each folder once (cheap even for 100k files). Headers are
    read with :func:`~sparsercnn.data.image_io.read_image_header` (pixels are not decoded, so a
    file truncated after its header passes); a size that differs from the JSON's ``width`` /
    ``height`` after EXIF orientation gives an ``image_size_mismatch`` warning.
    """
    root = Path(image_dir)
    listings: dict[Path, set[str]] = {}
    issues: list[Issue] = []
    present: list[tuple[dict[str, Any], Path]] = []
    images = list(images)
    for image in images:
        path = root / image["file_name"]
        if path.parent not in listings:
            listings[path.parent] = _list_dir(path.parent)
        # is_file() as a fallback: case-insensitive file systems and odd names.
        if path.name in listings[path.parent] or path.is_file():
            present.append((image, path))
        else:
            message = f"image {image['id']}: file {os.fspath(path)!r} does not exist"
            file = image["file_name"]
            issues.append(Issue("error", "image_file_missing", message, image["id"], None, file))
    if len(images) > 1 and not present:
        message = (
            f"none of the {len(images)} image files exist under {os.fspath(root)!r} (e.g. "
            f"{images[0]['file_name']!r}): is the image folder right?"
        )
        issues.insert(0, Issue("error", "no_image_found", message))
    if read_headers and present:
        with ThreadPoolExecutor(_HEADER_THREADS) as pool:
            found = pool.map(lambda item: _header_issue(*item), present)
            issues.extend(issue for issue in found if issue is not None)
    return issues


def _list_dir(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except OSError:
        return set()


def _header_issue(image: dict[str, Any], path: Path) -> Issue | None:
    image_id, file = image["id"], image["file_name"]
    try:
        header = read_image_header(path)
    except ImageReadError as exc:
        return Issue(
            "error", "image_file_unreadable", f"image {image_id}: {exc}", image_id, None, file
        )
    json_size = (int(image["height"]), int(image["width"]))
    if (header.height, header.width) == json_size:
        return None
    message = (
        f"image {image_id} ({file!r}): the JSON gives {json_size[1]}x{json_size[0]} (w x h) but "
        f"the file is {header.width}x{header.height} after EXIF orientation"
    )
    if (header.width, header.height) == json_size:
        message += (
            f" (EXIF orientation {header.orientation} turns it by 90 degrees; the JSON has the "
            "stored size, so the annotation tool may have ignored the tag: check a few boxes "
            "on the images, and remove the tag from the files if the boxes fit the unrotated image)"
        )
    return Issue("warning", "image_size_mismatch", message, image_id, None, file)


@dataclass
class DatasetSummary:
    """Statistics of the entries that pass every check (what ``skip_invalid=True`` trains on).

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
        areas = np.array([ann["bbox"][2] * ann["bbox"][3] for ann in boxes], dtype=np.float64)
        sqrt_areas = np.sqrt(areas)
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
                f"box size, sqrt(area) px: min {s.sqrt_area_min:.1f}, median "
                f"{s.sqrt_area_median:.1f}, max {s.sqrt_area_max:.1f}; COCO small {s.num_small}, "
                f"medium {s.num_medium}, large {s.num_large}"
            )
        lines.append(f"boxes per category ({len(s.boxes_per_category)} categories):")
        lines.append(f"  {'label':>5} {'id':>6} {'boxes':>8}  name")
        for label, (cat_id, name, count) in enumerate(s.boxes_per_category):
            lines.append(f"  {label:>5} {cat_id:>6} {count:>8}  {name}")
        return lines


def format_issues(issues: Iterable[Issue], max_per_code: int = 10) -> list[str]:
    """One line per issue, at most ``max_per_code`` per code, then a count of the rest."""
    by_code: dict[str, list[Issue]] = {}
    for issue in issues:
        by_code.setdefault(issue.code, []).append(issue)
    lines: list[str] = []
    for code, found in by_code.items():
        lines.extend(f"  {issue}" for issue in found[:max_per_code])
        if len(found) > max_per_code:
            lines.append(f"  ... and {len(found) - max_per_code} more [{code}]")
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
        """True when there is no error (warnings do not stop training)."""
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
                f"FAILED: {len(self.errors)} error(s). Fix the file, or train with "
                "skip_invalid=True to drop the offending images and annotations."
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
        check_images: also check that every image file exists and that its header reads, and
            compare its size with the JSON (no pixel decoding).
        clip_tolerance: see :data:`DEFAULT_CLIP_TOLERANCE`.
        num_proposals: if given, warn about images with more boxes than proposals (every box
            needs its own proposal in the matching, spec 7.1).

    Returns:
        The report; its summary counts only the entries that pass every check.

    Raises:
        DatasetError: the file is missing, not JSON, or not a COCO instances file.
    """
    checked = check_coco(
        load_coco_json(json_path), os.fspath(json_path), clip_tolerance=clip_tolerance
    )
    issues = list(checked.issues)
    if check_images:
        file_issues = check_image_files(checked.images, image_dir, read_headers=True)
        issues += file_issues
        unusable = {
            i.image_id for i in file_issues if i.severity == "error" and i.image_id is not None
        }
        checked = checked.without_images(unusable)
    per_image = Counter(ann["image_id"] for ann in checked.annotations if not ann.get("iscrowd", 0))
    for image in checked.images:
        image_id, file, count = image["id"], image["file_name"], per_image[image["id"]]
        if count == 0:
            message = f"image {image_id} ({file!r}) has no boxes (kept as a negative example)"
            issues.append(Issue("info", "image_without_boxes", message, image_id, None, file))
        elif num_proposals is not None and count > num_proposals:
            message = (
                f"image {image_id} ({file!r}) has {count} boxes, more than the {num_proposals} "
                "proposals (each box needs its own): use more proposals"
            )
            issues.append(Issue("warning", "too_many_boxes", message, image_id, None, file))
    return ValidationReport(
        os.fspath(json_path), os.fspath(image_dir), issues, DatasetSummary.from_checked(checked)
    )
