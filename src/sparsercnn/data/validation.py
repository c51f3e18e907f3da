"""The rules for the entries of a COCO instances file (no file-system access beyond the JSON).

:func:`load_coco_json` parses the file and checks its top-level structure; :func:`check_coco`
applies the rules to the entries and returns those that pass (boxes slightly outside their
image clipped) with an :class:`Issue` for every problem, each naming the image id, annotation id
and file. This is the JSON half of the data policy (:mod:`sparsercnn.data.policy`); the image
files are checked by :mod:`sparsercnn.data.image_check`.

Issue codes. Errors: ``bad_category``, ``duplicate_category_id``, ``no_categories``,
``bad_image``, ``duplicate_image_id``, ``bad_annotation``, ``duplicate_annotation_id``,
``unknown_image_id``, ``unknown_category_id``, ``rejected_category`` (an annotation of a
category whose entry has an error), ``bad_iscrowd``, ``malformed_bbox``,
``negative_size``, ``box_outside_image``. Warnings: ``box_clipped`` (a box past its image's
edge by more than :data:`ROUNDING_PX`, the rounding of exporters, and within the clip
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
(boxes past their image's right or bottom edge, by more than :data:`ROUNDING_PX`, in a file
whose every box would fit read as corners ``[x1, y1, x2, y2]``: an exporter's mistake that the
per-box issues do not name; one of the :data:`EXPLAINING_CODES`), ``bbox_fractions`` (every box
within ``[0, 1]`` on images of a few pixels or more: fractions of the image size, which train
as boxes under a pixel); both :class:`~sparsercnn.box_format_evidence.BoxFormatEvidence`'s.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sparsercnn.box_format_evidence import ROUNDING_PX, BoxFormatEvidence, BoxFormatSign
from sparsercnn.json_values import (
    COCO_ID_KEYS,
    coco_with_integer_ids,
    id_problem,
    is_int,
    is_number,
    is_quoted_box,
    quoted_int,
    quoted_number,
    whole_float_ids_message,
)
from sparsercnn.structures import coco_area
from sparsercnn.text import counted, listing, verb

# How far a box may extend past the image border, as a fraction of the image width (for x) or
# height (for y), and still be clipped with a warning instead of being rejected; ROUNDING_PX
# more is allowed at any tolerance, 0 included.
DEFAULT_CLIP_TOLERANCE = 0.05
REQUIRED_KEYS = ("images", "annotations", "categories")

Severity = Literal["error", "warning", "info"]
# Warnings about the whole file that explain its errors: a refusal to train shows them too.
EXPLAINING_CODES = frozenset({"bbox_corners"})
# The warning of each sign that the file's boxes are in another format than COCO's
# (:class:`~sparsercnn.box_format_evidence.BoxFormatEvidence`). Boxes mostly outside their image
# have none: each is told by its own issue, a box_outside_image error past the clip tolerance
# or, a box small enough to end within it, clipped (with a box_clipped warning past rounding).
BOX_FORMAT_CODES: Mapping[BoxFormatSign, str] = {
    "corners": "bbox_corners",
    "fractions": "bbox_fractions",
}
# What a duplicate_file_name warning does and how to fix it (the JSON's equal names, and the
# image check's names that the file system resolves to one file).
REPEATED_FILE_CONSEQUENCE = (
    "the file is trained and evaluated as two images; remove one entry (merging its "
    "annotations into the other)"
)


# The flags a COCO file can come from, named where the one given is not known.
ANNOTATION_FILE_FLAGS = "--json, --train-json or --val-json"


class DatasetError(ValueError):
    """A dataset is not usable as given; the message names the file/ids and says what to do."""


class AnnotationFileError(DatasetError):
    """A COCO file that cannot be read (:func:`load_coco_json`): missing, a folder, not JSON.

    The loader does not know which flag gave the file; an entry point that does names it with
    :meth:`given_as`.

    Attributes:
        path: the file.
        problem: what is wrong with it and what to do.
        flag: the flag(s) the message names as the file's.
    """

    def __init__(
        self, path: str | os.PathLike[str], problem: str, flag: str = ANNOTATION_FILE_FLAGS
    ) -> None:
        super().__init__(path, problem, flag)  # the args a pickled copy is made of
        self.path = os.fspath(path)
        self.problem = problem
        self.flag = flag

    def __str__(self) -> str:
        return f"annotation file {self.path} (the {self.flag} path) {self.problem}"

    def given_as(self, flag: str) -> AnnotationFileError:
        """The same error, naming ``flag`` as the file's flag."""
        return AnnotationFileError(self.path, self.problem, flag)


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


@dataclass(frozen=True)
class ScoredObject:
    """An object COCO evaluation scores, with the area it sorts it into small, medium and large
    by (:func:`~sparsercnn.structures.coco_area`: the ``area`` field where it is a number, else
    the ``bbox``'s ``w * h`` as the file gives it, never a clipped box's)."""

    image_id: int
    annotation_id: int
    area: float
    area_from_field: bool


@dataclass
class CheckedCoco:
    """A COCO file after :func:`check_coco`: the entries that passed, and what was found.

    ``images`` / ``categories`` keep the first entry of every id, in file order;
    ``annotations`` hold the valid ones, with a clipped ``bbox`` where it was fixable (copies,
    the parsed file is not modified). ``scored_objects`` are the objects COCO evaluation scores
    (every non-crowd annotation that is valid, clipped or of zero size). ``ground_truth`` holds
    what COCO evaluation scores against: every annotation that is not an error (valid, clipped
    or of zero size, crowd regions included), the first of its id, as the file gives it (the
    parsed entries, unclipped; ids written as whole floats made integers), in file order.
    ``unsized_images`` are the image entries left out only for giving no size
    (:func:`image_entry_size`) while their file's size was not given (each in a ``bad_image``
    error where the files were not decoded and its file has no error): the data policy decodes
    their files and checks the file again with the sizes found.
    """

    images: list[dict[str, Any]]
    annotations: list[dict[str, Any]]
    categories: list[dict[str, Any]]
    issues: list[Issue]
    num_images_in_json: int
    num_annotations_in_json: int
    scored_objects: list[ScoredObject] = field(default_factory=list)
    ground_truth: list[dict[str, Any]] = field(default_factory=list)
    unsized_images: list[dict[str, Any]] = field(default_factory=list)

    @property
    def num_dropped_images(self) -> int:
        """Images of the file left out for errors (``--skip-invalid``)."""
        return self.num_images_in_json - len(self.images)

    @property
    def num_dropped_annotations(self) -> int:
        """Annotations of the file left out for errors (``--skip-invalid``), those of dropped
        images included. A zero-size box of a kept image (``empty_box``) is not counted: only
        training leaves it out, and evaluation scores it as the file gives it."""
        kept = {image["id"] for image in self.images}
        empty = sum(issue.code == "empty_box" and issue.image_id in kept for issue in self.issues)
        return self.num_annotations_in_json - len(self.annotations) - empty

    def without_images(self, image_ids: Collection[int]) -> CheckedCoco:
        """The same data without the given images and their annotations."""
        drop = set(image_ids)
        return replace(
            self,
            images=[image for image in self.images if image["id"] not in drop],
            annotations=[ann for ann in self.annotations if ann["image_id"] not in drop],
            scored_objects=[obj for obj in self.scored_objects if obj.image_id not in drop],
            ground_truth=[ann for ann in self.ground_truth if ann["image_id"] not in drop],
            unsized_images=[image for image in self.unsized_images if image["id"] not in drop],
        )


def load_coco_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a COCO instances file and check its top-level structure.

    Raises:
        AnnotationFileError: the file is missing, a folder (the JSON files in it named, as the
            ``_annotations.coco.json`` of a Roboflow split), unreadable or not JSON.
        DatasetError: it lacks a list-valued ``images``, ``annotations`` or ``categories``; the
            message names the file and the key.
    """
    if os.path.isdir(path):
        raise AnnotationFileError(path, _folder_problem(path))
    try:
        with open(path, "rb") as file:
            data = json.load(file)
    except FileNotFoundError:
        raise AnnotationFileError(path, "was not found: check the path") from None
    except UnicodeDecodeError as exc:
        problem = (
            f"is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}), as "
            "JSON must be: save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
        )
        raise AnnotationFileError(path, problem) from exc
    except (json.JSONDecodeError, OSError) as exc:
        if isinstance(exc, json.JSONDecodeError) and exc.doc.lstrip().startswith("<"):
            problem = (
                "is XML, not JSON (a 'CVAT for images' or Pascal VOC export?): export the "
                "annotations as COCO"
            )
        else:
            problem = f"cannot be read as JSON ({exc}): give a COCO instances JSON file"
        raise AnnotationFileError(path, problem) from exc
    _check_structure(data, os.fspath(path))
    return data


def _folder_problem(folder: str | os.PathLike[str]) -> str:
    """What to give instead of a folder given as a COCO file: the JSON files in it, if any."""
    try:
        with os.scandir(folder) as entries:
            names = sorted(repr(entry.name) for entry in entries if entry.name.endswith(".json"))
    except OSError:  # not listable: nothing to name
        names = []
    if not names:
        return "is a folder; give the COCO instances JSON file"
    return f"is a folder; give the COCO JSON file in it ({listing(names, limit=3)})"


def _check_structure(data: Any, source: str) -> None:
    expected = "a COCO instances file (an object with 'images', 'annotations' and 'categories')"
    if isinstance(data, list):
        first = data[0] if data and isinstance(data[0], dict) else {}
        what, fix = "a JSON list", ""
        if "score" in first:
            what = "detection results (a list with scores)"
        elif "data" in first and ("annotations" in first or "predictions" in first):
            what = "Label Studio tasks (its 'JSON' export)"
            fix = ": export the project as 'COCO'"
        raise DatasetError(f"{source} holds {what}, but {expected} is needed{fix}")
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
    data: dict[str, Any],
    source: str,
    *,
    clip_tolerance: float = DEFAULT_CLIP_TOLERANCE,
    image_sizes: Mapping[int, tuple[int, int]] | None = None,
    bad_files: Collection[int] = (),
) -> CheckedCoco:
    """Check the entries of a parsed COCO file (no file-system access).

    Args:
        data: the parsed file (as :func:`load_coco_json` returns it).
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
    _check_structure(data, source)
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
    checker.issues += _placeholder_categories(categories, data["annotations"])
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
        if sign in BOX_FORMAT_CODES:
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
        # Image and category entries with errors, by their id as given (:func:`_id_key`):
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
        key = _id_key(given_id)
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
                message = f"{position} (name {name!r:.40}): {_id_problem(entry, 'id')}"
                self.reject(self.rejected_categories, cat_id, position, message, "bad_category")
            elif cat_id in seen:
                what = f"category id {cat_id}"
                message = _repeat_message(what, "categories", pos, *seen[cat_id], entry)
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
            if not is_int(image_id) or image_id not in _INT64:
                position = f"images[{pos}]"
                message = f"{position} ({file!r}): {_id_problem(entry, 'id')}"
                if isinstance(_id_key(image_id), str):  # a name, as VOC-to-COCO converters write
                    message += (
                        "; number the images (1, 2, ...) and write each one's number as its "
                        "annotations' 'image_id'"
                    )
                self.reject(
                    self.rejected_images, image_id, position, message, "bad_image", file=file
                )
                continue
            entry_problem = _image_entry_problem(entry)  # a file_name that is no string included
            if image_id in seen:
                what = f"image id {image_id} ({file!r})"
                message = _repeat_message(what, "images", pos, *seen[image_id], entry)
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
            for key in _unknown_size_keys(entry)
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
                _id_problem(ann, key)
                for key in COCO_ID_KEYS["annotations"]
                if not is_int(ann.get(key))
            ]
            if problems:
                where = f"annotation {ann_id}" if is_int(ann_id) else f"annotations[{pos}]"
                # An image named by "4" is image 4: its report counts this annotation.
                key = _id_key(image_id)
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
                message = _repeat_message(what, "annotations", pos, *seen[ann_id], ann)
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
            problem = _bbox_problem(ann["bbox"])
        if problem is not None:
            self.add("error", problem[0], f"{where}: {problem[1]}", image_id, ann_id, file)
            return None
        if "area" in ann and (area_problem := _area_problem(ann["area"], ann["bbox"])):
            self.add("warning", "bad_area", f"{where}: {area_problem}", image_id, ann_id, file)
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
        bbox, reason = _fit_to_image(ann["bbox"], width, height, self.clip_tolerance)
        if reason is not None and image_id in self.json_sizes:
            reason += _sized_by_file_note(self.json_sizes[image_id], (width, height))
        if bbox is None:
            self.add("error", "box_outside_image", f"{where}: {reason}", image_id, ann_id, file)
            return None
        self.scored_objects += scored
        self.ground_truth.append(ann)
        if reason is not None:
            self.add("warning", "box_clipped", f"{where}: {reason}", image_id, ann_id, file)
        return ann if bbox is ann["bbox"] else {**ann, "bbox": bbox}


# Names annotation tools give a background class (labelme2coco: "_background_"), casefolded.
_BACKGROUND_NAMES = frozenset({"_background_", "__background__", "background"})


def _placeholder_categories(
    categories: list[dict[str, Any]], annotations: list[Any]
) -> list[Issue]:
    """A ``placeholder_category`` warning for every valid category that no annotation entry
    refers to and that an annotation tool added beside the classes: one the others name as
    their ``supercategory`` (Roboflow's project category, id 0), or one named as a background
    class (labelme2coco's ``_background_``). Trained, it is a class that never occurs."""
    used = {_id_key(ann.get("category_id")) for ann in annotations if isinstance(ann, dict)}
    issues = []
    for category in categories:
        cat_id, name = category["id"], category["name"]
        if cat_id in used:
            continue
        children = [
            other["id"]
            for other in categories
            if other is not category and other.get("supercategory") == name
        ]
        if children:
            ids = listing([str(child) for child in children], limit=5)
            what = (
                f"is the 'supercategory' of categories {ids} (as the project category of a "
                "Roboflow export is)"
            )
        elif name.casefold() in _BACKGROUND_NAMES:
            what = (
                "is named as a background class (as labelme2coco writes one): Sparse R-CNN needs "
                "none, every proposal left unmatched learns background"
            )
        else:
            continue
        message = (
            f"category {cat_id} {name!r} has no annotation and {what}; it is trained as a class "
            "that never occurs (an extra output): remove it from 'categories'"
        )
        issues.append(Issue("warning", "placeholder_category", message))
    return issues


def _of_image(image: dict[str, Any] | None) -> str:
    """`` (image ID, 'FILE')``: the image of an annotation's issue, for its message; nothing
    where the annotation names no valid image."""
    return "" if image is None else f" (image {image['id']}, {image['file_name']!r})"


def _repeat_message(
    what: str, key: str, pos: int, first_pos: int, first: dict[str, Any], entry: dict[str, Any]
) -> str:
    """The error of an id that ``data[key][pos]`` repeats from ``data[key][first_pos]``."""
    fix = "remove the repeat" if entry == first else "give each entry its own id"
    return (
        f"{what} is repeated at {key}[{pos}], first at {key}[{first_pos}]"
        f"{' (identical)' if entry == first else ''}: {fix} (--skip-invalid keeps the first)"
    )


# The image ids the dataset can hold: it keeps them as 64-bit integers.
_INT64 = range(-(2**63), 2**63)


@dataclass
class _Rejected:
    """An image or category entry with an error: where its issue is in the checker's list
    (``None``: an image whose error is its file's, from the image check), its position in the
    file (``"categories[3]"``), and how many annotations refer to it."""

    issue_index: int | None
    entry: str
    num_annotations: int = 0


def _id_key(value: object) -> Hashable | None:
    """What an id as given (whole floats already integers: :func:`check_coco`) is matched by:
    ``4`` and ``"4"`` are both 4, another string is itself, and anything else (missing, null,
    true, a fraction, a list) matches nothing."""
    if is_int(value):
        return value
    if isinstance(value, str):
        quoted = quoted_int(value)
        return value if quoted is None else quoted
    return None


def _id_problem(entry: dict[str, Any], key: str) -> str:
    """Why ``entry[key]`` is no COCO id (an integer, or a whole float that
    :func:`check_coco` reads as one; an image id within :data:`_INT64`), with what to write
    instead (:func:`~sparsercnn.json_values.id_problem`)."""
    value = entry.get(key)
    if is_int(value):
        return f"{key!r} {value} does not fit in 64 bits: number the entries from 0 or 1"
    return id_problem(entry, key)


def _is_crowd_flag(value: object) -> bool:
    """``iscrowd`` is 0 or 1 (true/false too); missing or null means 0, as in COCO's tools."""
    return value is None or (type(value) in (int, float, bool) and value in (0, 1))


def _unknown_size_keys(entry: Mapping[str, Any]) -> list[str]:
    """Which of an image entry's ``width`` and ``height`` say "unknown": missing, null or 0,
    as Label Studio and some converters write them."""
    return [
        key
        for key in ("width", "height")
        if entry.get(key) is None or (is_number(entry[key]) and entry[key] == 0)
    ]


def image_entry_size(entry: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(width, height)`` in pixels of an image entry that :func:`check_coco`'s entry rules
    pass, or ``None`` where it gives no size (a ``width`` or ``height`` missing, null or 0):
    its decoded file's size is then used."""
    width, height = given_image_size(entry)
    return None if width is None or height is None else (width, height)


# What a file whose size is not its entry's may mean when its boxes fit the entry's size, for
# both messages that tell it (image_size_mismatch, and a box's clip or rejection on the file).
FILE_RESIZED_REMEDY = (
    "if the boxes were drawn on an image of the JSON's size, the file was resized since; "
    "rescale the boxes, or restore the file"
)


def given_size_agrees(given: tuple[int | None, int | None], size: tuple[int, int]) -> bool:
    """Whether an entry's ``(width, height)`` (:func:`given_image_size`, a half ``None`` where
    it gives none) is ``size`` where given."""
    return all(half is None or half == actual for half, actual in zip(given, size, strict=True))


def given_image_size(entry: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """``(width, height)`` in pixels as an image entry that :func:`check_coco`'s entry rules
    pass gives them, each ``None`` where it is missing, null or 0: what its decoded file's size
    is checked against, half a size included."""
    unknown = _unknown_size_keys(entry)
    width, height = (None if key in unknown else int(entry[key]) for key in ("width", "height"))
    return width, height


def format_given_size(given: tuple[int | None, int | None]) -> str:
    """An image entry's size as :func:`given_image_size` gives it, for messages: ``40x30``,
    ``width 40 and no height``, ``none``."""
    width, height = given
    if width is not None and height is not None:
        return f"{width}x{height}"
    if width is None and height is None:
        return "none"
    return f"width {width} and no height" if height is None else f"height {height} and no width"


def _image_entry_problem(entry: dict[str, Any]) -> str | None:
    """Why an image entry's ``file_name``, ``width`` or ``height`` is wrong, or ``None``; a
    size it does not give (:func:`image_entry_size`) is not wrong here."""
    file_name = entry.get("file_name")
    if not isinstance(file_name, str) or not file_name:
        return f"'file_name' must be a non-empty string, got {file_name!r}"
    unknown = _unknown_size_keys(entry)
    for key in [key for key in ("width", "height") if key not in unknown]:
        value = entry[key]
        if not _is_side(value):
            hint = " (write it without quotes)" if _is_side(quoted_number(value)) else ""
            return f"{key!r} must be a positive integer, got {value!r:.40}{hint}"
    return None


def _is_side(value: object) -> bool:
    """Whether ``value`` is an image entry's width or height: a positive whole number."""
    return is_number(value) and math.isfinite(value) and value > 0 and value == int(value)


def _sized_by_file_message(ids: list[int], source: str) -> str:
    """The ``image_size_missing`` warning of the images ``ids``, whose entries give no size,
    sized by their files."""
    ids_text = listing([str(image_id) for image_id in ids], limit=5)
    theirs = "its file's size is" if len(ids) == 1 else "their files' sizes are"
    return (
        f"{counted(len(ids), 'image')} {verb(len(ids), 'has')} no width/height in "
        f"{source} (id{'' if len(ids) == 1 else 's'} {ids_text}): {theirs} used (after EXIF "
        "orientation)"
    )


def _ignore_flag_message(ids: list[int], source: str) -> str:
    """The ``ignore_flag`` warning of the annotations ``ids``: non-crowd, with
    ``"ignore": 1``."""
    ids_text = listing([str(ann_id) for ann_id in ids], limit=5)
    return (
        f"{counted(len(ids), 'annotation')} in {source} (id{'' if len(ids) == 1 else 's'} "
        f'{ids_text}) {verb(len(ids), "has")} "ignore": 1, which COCO\'s tools '
        "do not read: they are trained and evaluated as objects; to make them regions that "
        "neither counts, set their 'iscrowd' to 1"
    )


def _sized_by_file_note(given: tuple[int | None, int | None], size: tuple[int, int]) -> str:
    """What a box's clip or rejection adds for an image sized by its file (``size``, ``(width,
    height)``) where its entry gives another size or half of one (``given``,
    :func:`given_image_size`): both sizes, and where they disagree what that may mean. It says
    it all itself: a refusal to train or evaluate shows the error without the
    ``image_size_mismatch`` / ``image_size_missing`` warnings, which only ``validate`` lists
    beside it."""
    note = f" (its file's size, after EXIF orientation; the JSON gives {format_given_size(given)}"
    if not given_size_agrees(given, size):
        note += f": {FILE_RESIZED_REMEDY}"
    return note + ")"


def _bbox_problem(bbox: Any) -> tuple[str, str] | None:
    """``(code, reason)`` unless ``bbox`` is 4 finite numbers with positive width and height."""
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(is_number, bbox))):
        hint = " (write the numbers without quotes)" if is_quoted_box(bbox) else ""
        return "malformed_bbox", f"'bbox' must be 4 numbers [x, y, w, h], got {bbox!r:.80}{hint}"
    if not all(map(math.isfinite, bbox)):
        return "malformed_bbox", f"bbox {bbox} has a NaN or infinite value"
    if bbox[2] < 0 or bbox[3] < 0:
        return "negative_size", f"bbox {bbox} has a negative width or height (COCO is [x, y, w, h])"
    return None


# COCOeval's area range "all": an object whose area lies outside it is ignored in every range.
MAX_COCO_AREA = 1e5**2


def _area_problem(area: object, bbox: list[float]) -> str | None:
    """Why COCO evaluation would misread an annotation's ``area`` (what it sorts objects into
    small, medium and large by, :func:`~sparsercnn.structures.coco_area`), or ``None``."""
    fix = "fix its 'area', or remove it to use the box's w*h"
    if not is_number(area):
        return (
            f"'area' {area!r:.40} is not a number: evaluation sorts the object by its box's "
            f"w*h ({bbox[2] * bbox[3]:g}) instead; give a number, or remove the 'area'"
        )
    if math.isnan(area):
        return f"'area' is NaN: COCO evaluation counts the object as small, medium and large; {fix}"
    if not 0 <= area <= MAX_COCO_AREA:
        return (
            f"'area' {area:g} is outside [0, {MAX_COCO_AREA:g}]: COCO evaluation ignores the "
            f"object (a detection of it is neither a hit nor a false positive); {fix}"
        )
    if area == 0 and bbox[2] * bbox[3] > 0:
        return (
            f"'area' is 0 for a {bbox[2]:g}x{bbox[3]:g} box (an exporter's placeholder?): COCO "
            f"evaluation counts the object as small whatever its size; {fix}"
        )
    return None


def _fit_to_image(
    bbox: list[float], width: int, height: int, tolerance: float
) -> tuple[list[float] | None, str | None]:
    """Keep a box inside the image, clip one at most ``tolerance`` outside, reject the rest.

    Returns:
        The box to use (``bbox`` itself, a clipped copy, or ``None`` when rejected) and, for a
        rejected box or one clipped by more than :data:`ROUNDING_PX`, the reason.
    """
    x1, y1, w, h = bbox
    x2, y2 = x1 + w, y1 + h
    if x1 >= 0 and y1 >= 0 and x2 <= width and y2 <= height:
        return bbox, None
    size = f"the {width}x{height} (w x h) image"
    xyxy = f"[{x1:g}, {y1:g}, {x2:g}, {y2:g}]"
    past_x, past_y = max(-x1, x2 - width), max(-y1, y2 - height)
    # An exporter's rounding is allowed on top of the tolerance, even a tolerance of 0.
    if past_x > tolerance * width + ROUNDING_PX or past_y > tolerance * height + ROUNDING_PX:
        return None, f"bbox {bbox} (xyxy {xyxy}) exceeds {size} by more than {tolerance:.0%}"
    cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    if cx2 <= cx1 or cy2 <= cy1:
        return None, f"bbox {bbox} (xyxy {xyxy}) lies outside {size}"
    clipped = [float(cx1), float(cy1), float(cx2 - cx1), float(cy2 - cy1)]
    if max(past_x, past_y) <= ROUNDING_PX:
        return clipped, None
    shown = ", ".join(f"{value:g}" for value in clipped)
    return clipped, (
        f"bbox {bbox} is slightly outside {size}; trained as [{shown}] (evaluation scores it "
        "as given)"
    )


def issues_by_code(issues: Iterable[Issue]) -> dict[str, list[Issue]]:
    """``issues`` grouped by code: the codes in the order they first come, each code's issues in
    theirs."""
    by_code: dict[str, list[Issue]] = {}
    for issue in issues:
        by_code.setdefault(issue.code, []).append(issue)
    return by_code


def issue_subjects(issues: Iterable[Issue], limit: int) -> str:
    """What ``issues`` are of, each named once, for a one-line summary: their annotations
    ("annotations 4, 9 ... (12 in all)"), the files of the others ("000.jpg, 003.jpg"), the
    images of the rest ("image 7"); the first ``limit`` of each kind, "" where none names one."""
    annotations: list[str] = []
    files: list[str] = []
    images: list[str] = []
    for issue in issues:
        if issue.annotation_id is not None:
            annotations.append(str(issue.annotation_id))
        elif issue.file is not None:
            files.append(issue.file)
        elif issue.image_id is not None:
            images.append(str(issue.image_id))
    parts = []
    for noun, names in (("annotation", annotations), ("", files), ("image", images)):
        distinct = list(dict.fromkeys(names))
        if distinct:
            named = f"{noun}{'s' if len(distinct) > 1 else ''} " if noun else ""
            parts.append(named + listing(distinct, limit))
    return ", ".join(parts)


def format_issues(issues: Iterable[Issue], max_per_code: int | None = 10) -> list[str]:
    """One line per issue, at most ``max_per_code`` per code (``None``: every one), then a
    count of the rest."""
    lines: list[str] = []
    for code, found in issues_by_code(issues).items():
        lines.extend(f"  {issue}" for issue in found[:max_per_code])
        if max_per_code is not None and len(found) > max_per_code:
            lines.append(f"  ... and {len(found) - max_per_code} more [{code}]")
    return lines


def summarize_issues(issues: Iterable[Issue]) -> list[str]:
    """One line per code, for a log: its one issue, or how many there are, the first in full
    and what the others are of (:func:`issue_subjects`: a few, then how many), so that ten
    thousand clipped boxes take one line; :func:`format_issues` lists them one per line."""
    lines = []
    for code, (first, *others) in issues_by_code(issues).items():
        if not others:
            lines.append(f"  {first}")
            continue
        line = f"  [{code}] {len(others) + 1} issues, the first: {first.message}"
        subjects = issue_subjects(others, limit=5)
        lines.append(f"{line}; the others: {subjects}" if subjects else line)
    return lines
