"""The rules for the entries of a COCO instances file (no file-system access beyond the JSON).

:func:`check_coco` applies the rules to the entries of a parsed file (read by
:func:`~sparsercnn.data.coco_file.load_coco_json`) and returns those that pass (boxes slightly
outside their image clipped) with an :class:`~sparsercnn.data.issues.Issue` for every problem,
each naming the image id, annotation id and file. This is the JSON half of the data policy
(:mod:`sparsercnn.data.policy`); the image files are checked by
:mod:`sparsercnn.data.image_check`. The rules of one kind of field have their own modules
(:mod:`~sparsercnn.data.entry_ids`, :mod:`~sparsercnn.data.image_entry`,
:mod:`~sparsercnn.data.box_rules`, :mod:`~sparsercnn.data.placeholder_categories`); this one
applies them in file order. Each name is imported from the module that defines it (the file's
reading and structure: :mod:`~sparsercnn.data.coco_file`; what passes:
:mod:`~sparsercnn.data.checked_coco`; the issues: :mod:`~sparsercnn.data.issues`).

Issue codes. Errors: ``bad_category``, ``duplicate_category_id``, ``no_categories``,
``bad_image``, ``duplicate_image_id``, ``bad_annotation``, ``duplicate_annotation_id``,
``unknown_image_id``, ``unknown_category_id``, ``rejected_category`` (an annotation of a
category whose entry has an error), ``bad_iscrowd``, ``malformed_bbox``,
``negative_size``, ``box_outside_image``. Warnings: ``box_clipped`` (a box past its image's
edge by more than
:data:`~sparsercnn.box_format_evidence.ROUNDING_PX`, the rounding of exporters, and within the clip
tolerance: trained clipped to the image), ``empty_box`` (zero width
or height: no training target, as in the reference, spec 1.4; COCO train2017 has two; both are
evaluated as the file gives them), ``bad_area`` (an ``area`` that COCO evaluation cannot sort
into small/medium/large as meant; training does not use it),
``image_size_missing`` (image entries that give no ``width`` / ``height``, or only one, as Label
Studio and some converters write them: their decoded files' sizes are used, one warning for all;
without decoded files such an entry is a ``bad_image`` error, unless its file has an error of
its own), ``duplicate_category_name``,
``blank_category_name``, ``placeholder_category`` (a category no
annotation uses that an annotation tool adds beside the classes: Roboflow's project category,
the ``supercategory`` of the others; labelme2coco's ``_background_``), ``duplicate_file_name``,
``ignore_flag`` (non-crowd annotations with ``"ignore": 1``, as some converters mark regions
to ignore: COCO evaluation reads ``iscrowd`` only; one warning for all), ``float_id`` (ids
written as whole floats, ``3.0``, as pandas writes integer columns: read as the integers, one
warning for all; :func:`~sparsercnn.json_values.whole_float`), ``bbox_corners``
(boxes past their image's right or bottom edge, by more than
:data:`~sparsercnn.box_format_evidence.ROUNDING_PX`, in a file
whose every box would fit read as corners ``[x1, y1, x2, y2]``: an exporter's mistake that the
per-box issues do not name; one of the :data:`EXPLAINING_CODES`), ``bbox_outside`` (a quarter
of the boxes or more, and at least
:data:`~sparsercnn.box_format_evidence.MIN_MOSTLY_OUTSIDE` of them, lie mostly outside their
image: pixels of a resized image, another format, or image entries of a wrong size; one of the
:data:`EXPLAINING_CODES` too), ``bbox_fractions`` (every box within
``[0, 1]`` on images of a few pixels or more: fractions of the image size, which train as boxes
under a pixel); all three :class:`~sparsercnn.box_format_evidence.BoxFormatEvidence`'s.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Hashable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sparsercnn.box_format_evidence import BoxFormatEvidence, BoxFormatSign
from sparsercnn.data.box_rules import (
    DEFAULT_CLIP_TOLERANCE,
    area_problem,
    bbox_problem,
    fit_to_image,
)
from sparsercnn.data.checked_coco import CheckedCoco, ScoredObject
from sparsercnn.data.coco_file import check_structure
from sparsercnn.data.entry_ids import INT64_IDS, entry_id_problem, id_key, repeat_message
from sparsercnn.data.image_entry import (
    given_image_size,
    image_entry_problem,
    image_entry_size,
    sized_by_file_note,
    unknown_size_keys,
)
from sparsercnn.data.issues import (
    Issue,
    Severity,
)
from sparsercnn.data.placeholder_categories import placeholder_categories
from sparsercnn.json_values import (
    COCO_ID_KEYS,
    coco_with_integer_ids,
    is_int,
    is_number,
    whole_float_ids_message,
)
from sparsercnn.structures import coco_area
from sparsercnn.text import agreeing_noun, counted, listing, verb

__all__ = ["BOX_FORMAT_CODES", "EXPLAINING_CODES", "REPEATED_FILE_CONSEQUENCE", "check_coco"]

# Warnings about the whole file that explain its errors: a refusal to train shows them too.
EXPLAINING_CODES = frozenset({"bbox_corners", "bbox_outside"})
# The warning of each sign that the file's boxes are in another format than COCO's
# (:class:`~sparsercnn.box_format_evidence.BoxFormatEvidence`), put before the per-box issues
# it explains (each box outside its image is a box_outside_image error, or clipped).
BOX_FORMAT_CODES: Mapping[BoxFormatSign, str] = {
    "corners": "bbox_corners",
    "outside": "bbox_outside",
    "fractions": "bbox_fractions",
}
# What a duplicate_file_name warning does and how to fix it (the JSON's equal names, and the
# image check's names that the file system resolves to one file).
REPEATED_FILE_CONSEQUENCE = (
    "the file is trained and evaluated as two images; remove one entry (merging its "
    "annotations into the other)"
)


def check_coco(
    data: dict[str, Any],
    source: str,
    *,
    clip_tolerance: float = DEFAULT_CLIP_TOLERANCE,
    image_sizes: Mapping[int, tuple[int, int]] | None = None,
    bad_files: Collection[int] = (),
) -> CheckedCoco:
    """Check the entries of a parsed COCO file (no file-system access).

    Args:
        data: the parsed file (as :func:`~sparsercnn.data.coco_file.load_coco_json` returns it).
        source: the file name, for messages.
        clip_tolerance: see :data:`DEFAULT_CLIP_TOLERANCE`.
        image_sizes: ``(width, height)`` of image files by image id, after EXIF orientation
            (:attr:`~sparsercnn.data.image_check.FileCheck.sizes`): the truth for the boxes of
            an image whose entry gives another size (its ``image_size_mismatch`` warning names
            both) or none (:func:`image_entry_size`; one ``image_size_missing`` warning names
            them all). Its boxes are checked against, and clipped to, the file's size, and its
            returned entry carries it. Images not in it keep the JSON's size; one whose entry
            gives none is left out: a ``bad_image`` error where this is ``None`` (the files
            were not decoded), without an issue of its own where it is a mapping (its file did
            not decode) or its id is in ``bad_files``.
        bad_files: ids of the images whose file the image check refused (missing, or not
            decoding; :mod:`~sparsercnn.data.image_check`): that error is the image's one,
            which says what to fix first, and its annotations go with it unnamed, as with any
            such file; an entry among them that gives no size gets no error of its own.

    Returns:
        The valid entries and every issue found. The annotations of an image whose entry is
        invalid are dropped with it, counted in its error; those of a category whose entry is
        invalid each get a ``rejected_category`` error naming its image. An entry is matched
        by its id as given (an image ``"id": "4"`` is rejected, and its annotations with
        ``"image_id": 4`` go with it, not reported as of an unknown image). Ids written as
        whole floats (``4.0``) are read as the integers, in copies of their entries (``data`` is
        not modified), with one ``float_id`` warning that counts them; numpy integers (a dict
        built in memory) too, uncounted
        (:func:`~sparsercnn.json_values.coco_with_integer_ids`).
    """
    check_structure(data, source)
    data, whole_floats = coco_with_integer_ids(data, COCO_ID_KEYS)
    checker = _Checker(clip_tolerance, image_sizes, bad_files)
    if whole_floats:
        checker.add("warning", "float_id", whole_float_ids_message(source, whole_floats))
    categories = checker.categories(data["categories"])
    if not categories:
        message = (
            f"{source}: no valid category: list the classes in 'categories' as "
            '{"id": integer, "name": string}'
        )
        checker.add("error", "no_categories", message)
    checker.issues += placeholder_categories(categories, data["annotations"])
    images = checker.images(data["images"])
    if checker.sized_by_file:
        checker.add(
            "warning", "image_size_missing", _sized_by_file_message(checker.sized_by_file, source)
        )
    annotations = checker.annotations(
        data["annotations"],
        images={image["id"]: image for image in images},
        category_ids={category["id"] for category in categories},
    )
    if checker.ignore_flagged:
        message = _ignore_flag_message(checker.ignore_flagged, source)
        checker.add("warning", "ignore_flag", message)
    if (finding := checker.box_format.finding(source)) is not None:
        sign, message = finding
        # First: it explains the box issues that follow (each box outside its image has an
        # issue of its own, which says where: an error, or a clip within the tolerance).
        checker.issues.insert(0, Issue("warning", BOX_FORMAT_CODES[sign], message))
    return CheckedCoco(
        images,
        annotations,
        categories,
        checker.issues,
        len(data["images"]),
        len(data["annotations"]),
        checker.scored_objects,
        checker.ground_truth,
        checker.unsized_images,
    )


class _Checker:
    """The rules for the three lists of a COCO file; collects issues as it goes."""

    def __init__(
        self,
        clip_tolerance: float,
        image_sizes: Mapping[int, tuple[int, int]] | None,
        bad_files: Collection[int],
    ) -> None:
        self.clip_tolerance = clip_tolerance
        self.files_decoded = image_sizes is not None
        self.image_sizes = image_sizes or {}
        self.bad_files = bad_files
        # (width, height) as the JSON gives it (given_image_size), of the images sized by their
        # file where that differs.
        self.json_sizes: dict[int, tuple[int | None, int | None]] = {}
        # The ids of the images whose entry gives no size, sized by their file.
        self.sized_by_file: list[int] = []
        # The entries rejected only for giving no size, their file's size unknown.
        self.unsized_images: list[dict[str, Any]] = []
        # The ids of the valid non-crowd annotations with "ignore": 1 (ignore_flag).
        self.ignore_flagged: list[int] = []
        self.issues: list[Issue] = []
        # Image and category entries with errors, by their id as given (:func:`id_key`):
        # annotations that refer to them are counted in (images) or named after (categories)
        # the entry's own error, not reported as referring to an unknown id.
        self.rejected_images: dict[Hashable, _Rejected] = {}
        self.rejected_categories: dict[Hashable, _Rejected] = {}
        self.scored_objects: list[ScoredObject] = []
        self.ground_truth: list[dict[str, Any]] = []
        self.box_format = BoxFormatEvidence(clip_tolerance)

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

    def reject(
        self,
        rejected: dict[Hashable, _Rejected],
        given_id: object,
        position: str,
        message: str,
        code: str,
        **ids: Any,
    ) -> None:
        """Add the error of the image or category entry at ``position`` (``"images[3]"``), and
        record it under its id as given, for the annotations that refer to it."""
        self.add("error", code, message, **ids)
        key = id_key(given_id)
        if key is not None:
            rejected.setdefault(key, _Rejected(len(self.issues) - 1, position))

    def count_left_out(self) -> None:
        """Say in the error of each rejected image or category how many annotations it takes."""
        for rejected in (*self.rejected_images.values(), *self.rejected_categories.values()):
            if rejected.num_annotations and rejected.issue_index is not None:
                issue = self.issues[rejected.issue_index]
                num = rejected.num_annotations
                count = f"{counted(num, 'annotation')} {verb(num, 'is')}"
                message = f"{issue.message}; its {count} left out with it"
                self.issues[rejected.issue_index] = replace(issue, message=message)

    def categories(self, entries: list[Any]) -> list[dict[str, Any]]:
        valid: list[dict[str, Any]] = []
        seen: dict[int, tuple[int, dict[str, Any]]] = {}
        names: dict[str, int] = {}
        for pos, entry in enumerate(entries):
            if not isinstance(entry, dict):
                self.add(
                    "error", "bad_category", f"categories[{pos}] is not an object: {entry!r:.100}"
                )
                continue
            cat_id, name = entry.get("id"), entry.get("name")
            if not is_int(cat_id):
                position = f"categories[{pos}]"
                message = f"{position} (name {name!r:.40}): {entry_id_problem(entry, 'id')}"
                self.reject(self.rejected_categories, cat_id, position, message, "bad_category")
            elif cat_id in seen:
                what = f"category id {cat_id}"
                message = repeat_message(what, "categories", pos, *seen[cat_id], entry)
                self.add("error", "duplicate_category_id", message)
            elif not isinstance(name, str):
                position = f"categories[{pos}]"
                # Some tools write the class as the 'supercategory' only.
                only = (
                    f", only a 'supercategory' {entry['supercategory']!r:.40}"
                    if "supercategory" in entry
                    else ""
                )
                problem = (
                    f"'name' must be a string, got {name!r:.40}"
                    if "name" in entry
                    else f"'name' is missing{only}: give the class a name"
                )
                message = f"category {cat_id} ({position}): {problem}"
                self.reject(self.rejected_categories, cat_id, position, message, "bad_category")
            else:
                if name in names:
                    message = f"categories {names[name]} and {cat_id} are both named {name!r}"
                    self.add("warning", "duplicate_category_name", message)
                if not name.strip():
                    message = (
                        f"category {cat_id} (categories[{pos}]) has a blank name {name!r}: "
                        "drawings and per-class results show it without one; give it a name"
                    )
                    self.add("warning", "blank_category_name", message)
                names.setdefault(name, cat_id)
                valid.append(entry)
            if is_int(cat_id):
                seen.setdefault(cat_id, (pos, entry))
        return valid

    def images(self, entries: list[Any]) -> list[dict[str, Any]]:
        valid: list[dict[str, Any]] = []
        seen: dict[int, tuple[int, dict[str, Any]]] = {}
        files: dict[str, int] = {}
        for pos, entry in enumerate(entries):
            if not isinstance(entry, dict):
                self.add("error", "bad_image", f"images[{pos}] is not an object: {entry!r:.100}")
                continue
            image_id = entry.get("id")
            file = entry.get("file_name")
            file = file if isinstance(file, str) else None
            if not is_int(image_id) or image_id not in INT64_IDS:
                position = f"images[{pos}]"
                message = f"{position} ({file!r}): {entry_id_problem(entry, 'id')}"
                if isinstance(id_key(image_id), str):  # a name, as VOC-to-COCO converters write
                    message += (
                        "; number the images (1, 2, ...) and write each one's number as its "
                        "annotations' 'image_id'"
                    )
                self.reject(
                    self.rejected_images, image_id, position, message, "bad_image", file=file
                )
                continue
            entry_problem = image_entry_problem(entry)  # a file_name that is no string included
            if image_id in seen:
                what = f"image id {image_id} ({file!r})"
                message = repeat_message(what, "images", pos, *seen[image_id], entry)
                self.add("error", "duplicate_image_id", message, image_id, None, file)
            elif entry_problem is not None or file is None:
                position = f"images[{pos}]"
                message = f"image {image_id} ({position}): {entry_problem}"
                ids = {"image_id": image_id, "file": file}
                self.reject(self.rejected_images, image_id, position, message, "bad_image", **ids)
            elif (size := self.size(entry)) is None:
                position = f"images[{pos}]"
                self.unsized_images.append(entry)
                if self.files_decoded or image_id in self.bad_files:
                    # Its file is missing or did not decode: that file's error (the image
                    # check's) is the image's one, and says what to fix.
                    self.rejected_images.setdefault(image_id, _Rejected(None, position))
                else:
                    message = f"image {image_id} ({position}): {self.no_size_problem(entry)}"
                    ids = {"image_id": image_id, "file": file}
                    self.reject(
                        self.rejected_images, image_id, position, message, "bad_image", **ids
                    )
            else:
                if file in files:
                    message = (
                        f"images {files[file]} and {image_id} both use file {file!r}: "
                        f"{REPEATED_FILE_CONSEQUENCE}"
                    )
                    self.add("warning", "duplicate_file_name", message, image_id, None, file)
                files.setdefault(file, image_id)
                same = size == image_entry_size(entry)
                valid.append(entry if same else {**entry, "width": size[0], "height": size[1]})
            seen.setdefault(image_id, (pos, entry))
        return valid

    def size(self, entry: dict[str, Any]) -> tuple[int, int] | None:
        """``(width, height)`` to check an otherwise valid image entry's boxes against: its
        file's where known, else the JSON's; ``None`` where neither is known."""
        json_size = image_entry_size(entry)
        file_size = self.image_sizes.get(entry["id"], json_size)
        if file_size != json_size:
            self.json_sizes[entry["id"]] = given_image_size(entry)
        if json_size is None and file_size is not None:
            self.sized_by_file.append(entry["id"])
        return file_size

    def no_size_problem(self, entry: dict[str, Any]) -> str:
        """Why an image entry that gives no size (:func:`image_entry_size`) is rejected while
        the image files are not decoded."""
        said = {
            key: "missing" if key not in entry else json.dumps(entry[key])
            for key in unknown_size_keys(entry)
        }
        if len(said) == 2 and len(set(said.values())) == 1:
            given = f"'width' and 'height' are {said['width']}"
        else:
            given = ", ".join(f"{key!r} is {value}" for key, value in said.items())
        return (
            f"{given}: its file's size is used only where the image files are decoded: drop "
            "--no-image-check (image_check='decode' in Python), or write its 'width' and "
            "'height' in pixels, as the file has them"
        )

    def annotations(
        self, entries: list[Any], images: dict[int, dict[str, Any]], category_ids: set[int]
    ) -> list[dict[str, Any]]:
        valid: list[dict[str, Any]] = []
        seen: dict[int, tuple[int, dict[str, Any]]] = {}
        for pos, ann in enumerate(entries):
            if not isinstance(ann, dict):
                message = f"annotations[{pos}] is not an object: {ann!r:.100}"
                self.add("error", "bad_annotation", message)
                continue
            ann_id, image_id = ann.get("id"), ann.get("image_id")
            problems = [
                entry_id_problem(ann, key)
                for key in COCO_ID_KEYS["annotations"]
                if not is_int(ann.get(key))
            ]
            if problems:
                where = f"annotation {ann_id}" if is_int(ann_id) else f"annotations[{pos}]"
                # An image named by "4" is image 4: its report counts this annotation.
                key = id_key(image_id)
                image = images.get(key) if isinstance(key, int) else None
                message = f"{where}{_of_image(image)}: {'; '.join(problems)}"
                of_ann = ann_id if is_int(ann_id) else None
                # An issue with a file but no annotation id is its image's own (policy.py).
                file = image["file_name"] if image is not None and of_ann is not None else None
                of_image = image["id"] if image is not None else None
                self.add("error", "bad_annotation", message, of_image, of_ann, file)
            elif ann_id in seen:
                image = images.get(ann["image_id"])  # an int, as the ids have no problems
                what = f"annotation id {ann_id}{_of_image(image)}"
                message = repeat_message(what, "annotations", pos, *seen[ann_id], ann)
                file = image["file_name"] if image is not None else None
                self.add("error", "duplicate_annotation_id", message, image_id, ann_id, file)
            elif image_id not in images and image_id in self.rejected_images:
                self.rejected_images[image_id].num_annotations += 1  # named in the image's error
            elif image_id not in images:
                message = f"annotation {ann_id} refers to image id {image_id}, not in 'images'"
                self.add("error", "unknown_image_id", message, image_id, ann_id)
            else:
                checked = self.annotation(ann, images[image_id], category_ids)
                if checked is not None:
                    valid.append(checked)
            if is_int(ann_id):
                seen.setdefault(ann_id, (pos, ann))
        self.count_left_out()
        return valid

    def annotation(
        self, ann: dict[str, Any], image: dict[str, Any], category_ids: set[int]
    ) -> dict[str, Any] | None:
        """Check the category and box of an annotation of a valid image.

        Returns the annotation, a copy with its box clipped, or ``None`` when it is dropped.
        """
        ann_id, image_id, file = ann["id"], image["id"], image["file_name"]
        where = f"annotation {ann_id}{_of_image(image)}"
        cat_id = ann["category_id"]
        problem: tuple[str, str] | None
        if cat_id not in category_ids and cat_id in self.rejected_categories:
            rejected = self.rejected_categories[cat_id]
            rejected.num_annotations += 1
            problem = (
                "rejected_category",
                f"its category {cat_id} is left out for the error at {rejected.entry}: fix that",
            )
        elif cat_id not in category_ids:
            problem = ("unknown_category_id", f"category id {cat_id} is not in 'categories'")
        elif not _is_crowd_flag(crowd := ann.get("iscrowd")):
            problem = ("bad_iscrowd", f"'iscrowd' must be 0 or 1, got {crowd!r:.40}")
        elif ann.get("bbox") in (None, []) and ann.get("segmentation"):
            given = "missing" if "bbox" not in ann else json.dumps(ann["bbox"])
            problem = (
                "malformed_bbox",
                f"'bbox' is {given}, the annotation has only a 'segmentation': add the segment's "
                "bounding box as 'bbox' [x, y, w, h] pixels (pycocotools' mask.toBbox gives it)",
            )
        elif "bbox" not in ann:
            problem = ("malformed_bbox", "'bbox' is missing: give the box as [x, y, w, h] pixels")
        else:
            problem = bbox_problem(ann["bbox"])
        if problem is not None:
            self.add("error", problem[0], f"{where}: {problem[1]}", image_id, ann_id, file)
            return None
        if "area" in ann and (area_issue := area_problem(ann["area"], ann["bbox"])):
            self.add("warning", "bad_area", f"{where}: {area_issue}", image_id, ann_id, file)
        if ann.get("ignore") == 1 and not ann.get("iscrowd"):
            self.ignore_flagged.append(ann_id)
        # Evaluation scores a zero-size or clipped box as the file gives it (crowds: ignored).
        area_from_field = is_number(ann.get("area"))
        scored = [ScoredObject(image_id, ann_id, coco_area(ann), area_from_field)]
        scored = [] if ann.get("iscrowd") else scored
        if ann["bbox"][2] == 0 or ann["bbox"][3] == 0:
            message = (
                f"{where}: bbox {ann['bbox']} has zero width or height; no training target "
                "(evaluation scores it as given)"
            )
            self.add("warning", "empty_box", message, image_id, ann_id, file)
            self.scored_objects += scored
            self.ground_truth.append(ann)
            return None
        width, height = int(image["width"]), int(image["height"])
        self.box_format.add(ann["bbox"], width, height, image_id)
        bbox, reason = fit_to_image(ann["bbox"], width, height, self.clip_tolerance)
        if reason is not None and image_id in self.json_sizes:
            reason += sized_by_file_note(self.json_sizes[image_id], (width, height))
        if bbox is None:
            self.add("error", "box_outside_image", f"{where}: {reason}", image_id, ann_id, file)
            return None
        self.scored_objects += scored
        self.ground_truth.append(ann)
        if reason is not None:
            self.add("warning", "box_clipped", f"{where}: {reason}", image_id, ann_id, file)
        return ann if bbox is ann["bbox"] else {**ann, "bbox": bbox}


def _of_image(image: dict[str, Any] | None) -> str:
    """`` (image ID, 'FILE')``: the image of an annotation's issue, for its message; nothing
    where the annotation names no valid image."""
    return "" if image is None else f" (image {image['id']}, {image['file_name']!r})"


@dataclass
class _Rejected:
    """An image or category entry with an error: where its issue is in the checker's list
    (``None``: an image whose error is its file's, from the image check), its position in the
    file (``"categories[3]"``), and how many annotations refer to it."""

    issue_index: int | None
    entry: str
    num_annotations: int = 0


def _is_crowd_flag(value: object) -> bool:
    """``iscrowd`` is 0 or 1 (true/false too); missing or null means 0, as in COCO's tools."""
    return value is None or (type(value) in (int, float, bool) and value in (0, 1))


def _sized_by_file_message(ids: list[int], source: str) -> str:
    """The ``image_size_missing`` warning of the images ``ids``, whose entries give no size,
    sized by their files."""
    ids_text = listing([str(image_id) for image_id in ids], limit=5)
    theirs = "its file's size is" if len(ids) == 1 else "their files' sizes are"
    return (
        f"{counted(len(ids), 'image')} {verb(len(ids), 'has')} no width/height in "
        f"{source} ({agreeing_noun(len(ids), 'id')} {ids_text}): {theirs} used (after EXIF "
        "orientation)"
    )


def _ignore_flag_message(ids: list[int], source: str) -> str:
    """The ``ignore_flag`` warning of the annotations ``ids``: non-crowd, with
    ``"ignore": 1``."""
    ids_text = listing([str(ann_id) for ann_id in ids], limit=5)
    return (
        f"{counted(len(ids), 'annotation')} in {source} ({agreeing_noun(len(ids), 'id')} "
        f'{ids_text}) {verb(len(ids), "has")} "ignore": 1, which COCO\'s tools '
        "do not read: they are trained and evaluated as objects; to make them regions that "
        "neither counts, set their 'iscrowd' to 1"
    )
