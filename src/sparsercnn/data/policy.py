"""The data policy: which images and annotations of a COCO dataset are used, decided once.

``sparsercnn validate`` (through :func:`~sparsercnn.data.dataset_report.validate_coco`),
training, evaluation and :class:`~sparsercnn.data.coco.CocoDataset` all call
:func:`inspect_dataset`, so what ``validate`` calls an error is what ``train`` and ``eval``
refuse. Each finding is an :class:`~sparsercnn.data.issues.Issue`:

- error: an entry that cannot be used as given (the JSON rules of
  :mod:`~sparsercnn.data.validation`; a missing, undecodable or truncated image file, or one
  whose EXIF orientation turns it away from the JSON's size; an image folder that is likely the
  wrong one, most files missing from it or of other sizes than the JSON's,
  :mod:`~sparsercnn.data.image_check`), or ``no_images`` / ``no_boxes``: no usable image or
  box in the whole file, nothing to learn or to evaluate against;
- warning: used after a fix (a clipped box, a zero-size box dropped, an image entry without a
  size given its decoded file's) or as it is (a size that disagrees with the JSON, a file of
  several frames read as its first, ``too_many_boxes``, repeated names);
- info: ``image_without_boxes``, kept as a negative example; ``image_without_usable_boxes``,
  an image whose every annotation has an error or zero size, kept as a negative example all
  the same (its objects count as background); ``unlisted_image_files``, image files in the image
  folder that the JSON does not name (one issue for all).

:func:`apply_policy` then raises :class:`InvalidDataError`, naming every bad file and image
entry (capped), or, with ``--skip-invalid`` (``skip_invalid=True`` in Python), drops the images
and annotations concerned up front and logs one summary line, and a warning naming the images
left without a usable box. ``no_boxes`` and an empty remainder are never skipped. After this
check a file that fails to load (changed on disk) stops the run (:func:`read_failure_message`),
unless the training set was built with ``--skip-invalid``: then the sample is replaced and the
replacement counted (``skipped_images`` in ``metrics.jsonl``).
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from typing import Any, Literal

from sparsercnn.data.box_rules import DEFAULT_CLIP_TOLERANCE
from sparsercnn.data.checked_coco import CheckedCoco
from sparsercnn.data.coco_file import load_coco_json
from sparsercnn.data.dataset_error import DatasetError
from sparsercnn.data.image_check import (
    FILE_ERROR_CODES,
    check_image_files,
    check_image_folder,
    find_unlisted_images,
)
from sparsercnn.data.issues import Issue, issue_subjects, issues_by_code, summarize_issues
from sparsercnn.data.validation import EXPLAINING_CODES, check_coco
from sparsercnn.text import counted, listing, some_of, verb

logger = logging.getLogger(__name__)

ImageCheck = Literal["none", "exists", "decode"]
"""How far image files are checked up front: not at all, that they exist, or fully decoded."""

SKIP_INVALID_HINT = (
    "pass --skip-invalid to `sparsercnn train`, `eval` or `diagnose` (skip_invalid=True in Python)"
)
# Issues about the dataset as a whole: --skip-invalid cannot drop them away.
_DATASET_CODES = frozenset({"no_images", "no_boxes"})
# Every error that --skip-invalid cannot fix: those above, a file without a valid category, and
# an image folder that holds none of the files (what would be left is no image).
UNSKIPPABLE_CODES = _DATASET_CODES | {"no_categories", "no_image_found"}
# Errors that call the image folder into question: a refusal leads with them, and says first to
# give the right folder (--skip-invalid would drop, or train on, the files of a wrong one).
_FOLDER_CODES = frozenset({"no_image_found", "wrong_image_folder"})
_MAX_LISTED_ISSUES = 10
_MAX_LISTED_FILES = 20


class InvalidDataError(DatasetError):
    """A dataset has errors and ``--skip-invalid`` was not given; the message names every bad
    file and image entry (capped with a count) and says how to go on."""


@dataclass
class Inspection:
    """What :func:`inspect_dataset` found.

    Attributes:
        source: the JSON file, for messages.
        image_dir: the image folder; None where none was given (``eval --detections``
            without ``--images``: the image files are not checked).
        checked: the entries that pass every check (what ``--skip-invalid`` keeps).
        issues: every finding: the JSON rules', the image files', what is left to learn from,
            then the ``too_many_boxes`` warnings (:meth:`for_num_proposals`), each in file order.
        image_check: how far the image files were checked.
        clip_tolerance: the tolerance the boxes were clipped with.
        json_sizes: the JSON's ``(width, height)`` of every image whose decoded file has
            another size, by image id (``checked`` gives the file's): a few ints an image.
    """

    source: str
    image_dir: str | None
    checked: CheckedCoco
    issues: list[Issue]
    image_check: ImageCheck
    clip_tolerance: float
    json_sizes: dict[int, tuple[int, int]]

    @property
    def errors(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.severity == "error"]

    def drop_entries(self) -> None:
        """Let go of the entries the check kept (``checked``'s image and annotation dicts:
        gigabytes for a set of COCO's size) once a dataset holds its own index of them, so
        that they do not stay in memory for a whole run; the issues stay."""
        self.checked = replace(
            self.checked,
            images=[],
            annotations=[],
            scored_objects=[],
            ground_truth=[],
            unsized_images=[],
        )

    def for_num_proposals(self, num_proposals: int | None) -> Inspection:
        """The same inspection with the ``too_many_boxes`` warnings of a model of
        ``num_proposals`` proposals (every box needs its own proposal in the matching, spec
        7.1), in place of any it had; ``None``: without them. No file is read again."""
        issues = [issue for issue in self.issues if issue.code != "too_many_boxes"]
        if num_proposals is not None:
            issues += _too_many_boxes(self.checked, num_proposals)
        return replace(self, issues=issues)


def inspect_dataset(
    json_path: str | os.PathLike[str],
    image_dir: str | os.PathLike[str] | None,
    *,
    image_check: ImageCheck = "decode",
    clip_tolerance: float = DEFAULT_CLIP_TOLERANCE,
    num_proposals: int | None = None,
) -> Inspection:
    """Check a COCO dataset's JSON entries, its image files and what is left to learn from.

    Args:
        json_path: the COCO instances JSON file.
        image_dir: the folder that ``images[].file_name`` is relative to; None where none is
            known (with ``image_check="none"`` only): a refusal then names none.
        image_check: see :data:`ImageCheck`; ``"decode"`` reads every pixel, in parallel.
        clip_tolerance: see :data:`~sparsercnn.data.box_rules.DEFAULT_CLIP_TOLERANCE`.
        num_proposals: if given, warn about images with more boxes than proposals (every box
            needs its own proposal in the matching, spec 7.1).

    Raises:
        DatasetError: the file is missing, not JSON, or not a COCO instances file; or (unless
            ``image_check`` is ``"none"``) the image folder is missing, a file, or empty
            (:func:`~sparsercnn.data.image_check.check_image_folder`).
        ValueError: no ``image_dir`` for an ``image_check`` other than ``"none"``.
    """
    if image_dir is None and image_check != "none":
        raise ValueError(f"image_check={image_check!r} needs the image folder (image_dir)")
    source = os.fspath(json_path)
    data = load_coco_json(json_path)
    checked = check_coco(data, source, clip_tolerance=clip_tolerance)
    file_issues: list[Issue] = []
    json_sizes: dict[int, tuple[int, int]] = {}
    if image_dir is not None and image_check != "none":
        # The files of the entries that give no size are looked for, and decoded, too: the
        # file's size is theirs.
        listed = [*checked.images, *checked.unsized_images]
        check_image_folder(image_dir, listed, source=source)
        decode = image_check == "decode"
        found = check_image_files(listed, image_dir, decode=decode, source=source)
        file_issues = found.issues
        bad = {i.image_id for i in file_issues if i.severity == "error" and i.image_id is not None}
        unsized = {image["id"] for image in checked.unsized_images}
        json_sizes = _resized(checked.images, found.sizes)
        if (decode and (unsized or json_sizes)) or unsized & bad:
            # The boxes of an image whose file has another size, or whose entry gives none, are
            # checked against the file's; a file's error is its image's one.
            sizes = found.sizes if decode else None
            checked = check_coco(
                data, source, clip_tolerance=clip_tolerance, image_sizes=sizes, bad_files=bad
            )
        entries = [entry for entry in data["images"] if isinstance(entry, dict)]
        names = [entry.get("file_name") for entry in entries]
        if (unlisted := find_unlisted_images(image_dir, names, source=source)) is not None:
            file_issues.append(unlisted)
        checked = checked.without_images(bad)
    issues = [*checked.issues, *file_issues, *_content_issues(checked, source)]
    folder = None if image_dir is None else os.fspath(image_dir)
    inspection = Inspection(
        source, folder, checked, issues, image_check, clip_tolerance, json_sizes
    )
    return inspection.for_num_proposals(num_proposals)


def _resized(
    images: list[dict[str, Any]], sizes: dict[int, tuple[int, int]]
) -> dict[int, tuple[int, int]]:
    """The entry's ``(width, height)`` of every image whose file's in ``sizes`` differs, by
    image id."""
    given = {image["id"]: (image["width"], image["height"]) for image in images}
    return {image_id: size for image_id, size in given.items() if sizes.get(image_id, size) != size}


def _boxes_per_image(checked: CheckedCoco) -> Counter[int]:
    """The number of boxes to learn (not crowd regions) of every image id that has any."""
    return Counter(ann["image_id"] for ann in checked.annotations if not ann.get("iscrowd", 0))


def _content_issues(checked: CheckedCoco, source: str) -> list[Issue]:
    """``no_images``, ``no_boxes`` (errors), ``image_without_boxes`` and
    ``image_without_usable_boxes`` (info)."""
    per_image = _boxes_per_image(checked)
    issues: list[Issue] = []
    if not checked.images:
        message = (
            f"{source}: no usable image ({counted(checked.num_images_in_json, 'image')} in the "
            "file): nothing to learn or evaluate on; check its 'images' and the image folder"
        )
        issues.append(Issue("error", "no_images", message))
    elif not per_image:
        message = (
            f"{source}: no usable box ({counted(checked.num_annotations_in_json, 'annotation')} "
            "in the file, none usable and not crowd): nothing to learn or evaluate against; check "
            "that 'annotations' is filled and refers to the ids in 'images'"
        )
        issues.append(Issue("error", "no_boxes", message))
    unused = _unused_annotations(checked.issues)
    for image in checked.images:
        image_id, file = image["id"], image["file_name"]
        if per_image[image_id] == 0:
            code = "image_without_usable_boxes" if unused[image_id] else "image_without_boxes"
            why = _why_no_boxes(unused[image_id], kept_as_negative=bool(per_image))
            message = f"image {image_id} ({file!r}) {why}"
            issues.append(Issue("info", code, message, image_id, None, file))
    return issues


def _too_many_boxes(checked: CheckedCoco, num_proposals: int) -> list[Issue]:
    """A ``too_many_boxes`` warning for every image with more boxes than ``num_proposals``,
    each naming the setting that gives every image of the set enough: the most boxes of one."""
    per_image = _boxes_per_image(checked)
    most = max(per_image.values(), default=0)
    issues = []
    for image in checked.images:
        image_id, file, count = image["id"], image["file_name"], per_image[image["id"]]
        if count > num_proposals:
            message = (
                f"image {image_id} ({file!r}) has {count} boxes, more than the {num_proposals} "
                f"proposals: each box needs its own, so {count - num_proposals} of them cannot "
                f"be learned or detected; give the model at least {most} proposals, the most "
                f"boxes of an image here (`--set model.num_proposals={most}`, "
                "cfg.model.num_proposals in Python)"
            )
            issues.append(Issue("warning", "too_many_boxes", message, image_id, None, file))
    return issues


def _unused_annotations(issues: list[Issue]) -> dict[int | None, Counter[str]]:
    """Per image id, its annotations that give no box: ``"error"`` (dropped for an error) and
    ``"empty"`` (zero width or height) counts."""
    unused: dict[int | None, Counter[str]] = defaultdict(Counter)
    for issue in issues:
        # An annotation's issue names its id, but for an id that is no integer (bad_annotation).
        of_annotation = issue.annotation_id is not None or issue.code == "bad_annotation"
        if issue.severity == "error" and of_annotation:
            unused[issue.image_id]["error"] += 1
        elif issue.code == "empty_box":
            unused[issue.image_id]["empty"] += 1
    return unused


def _why_no_boxes(unused: Counter[str], *, kept_as_negative: bool) -> str:
    """The rest of the message of an image without boxes: a true negative example
    (``image_without_boxes``), or an image whose annotations give no usable box, which is
    trained as a negative all the same (``image_without_usable_boxes``). Where no image of the
    set has a usable box (not ``kept_as_negative``: the ``no_boxes`` error, which
    ``--skip-invalid`` cannot drop), nothing is trained, and the message says only what to fix.
    """
    empty = counted(unused["empty"], "zero-size box", "zero-size boxes")
    if unused["error"]:
        errors = counted(unused["error"], "annotation")
        also = f" and {empty}" if unused["empty"] else ""
        if not kept_as_negative:
            return f"has no usable box: {errors} with errors{also}: fix its annotations"
        return (
            f"has no usable box: {errors} with errors{also}; with --skip-invalid "
            "it is trained as a negative example, its objects as background: fix its "
            "annotations, or remove the image"
        )
    if unused["empty"]:
        if not kept_as_negative:
            return f"has no usable box, only {empty} (no training target): fix the boxes"
        return (
            f"has no usable box, only {empty} (no training target): it is trained as a negative "
            "example, its objects as background; fix the boxes, or remove the image"
        )
    return "has no boxes" + (" (kept as a negative example)" if kept_as_negative else "")


def apply_policy(
    inspection: Inspection, *, skip_invalid: bool, require_boxes: bool = True
) -> CheckedCoco:
    """The entries to use, or an error; logs what was dropped, the warnings and the empty images.

    Args:
        inspection: from :func:`inspect_dataset`.
        skip_invalid: drop the images and annotations with errors (one summary line) instead
            of raising.
        require_boxes: a set without a usable box is an error (``no_boxes``); False for a
            use that reads the images only (``diagnose reads``).

    Raises:
        InvalidDataError: there are errors and ``skip_invalid`` is false.
        DatasetError: no usable image, category or box (with ``require_boxes``) is left.
    """
    refuse_invalid(inspection, skip_invalid=skip_invalid, require_boxes=require_boxes)
    source, checked = inspection.source, inspection.checked
    errors = [issue for issue in inspection.errors if issue.code not in _DATASET_CODES]
    for issue in errors:
        if issue.code in _FOLDER_CODES:  # of no entry: nothing to drop
            logger.warning("%s: %s (going on with --skip-invalid)", source, issue.message)
    errors = [issue for issue in errors if issue.code not in _FOLDER_CODES]
    if errors:
        logger.warning("%s", _dropped_summary(source, checked, errors))
    warnings = [issue for issue in inspection.issues if issue.severity == "warning"]
    if warnings:
        lines = "\n".join(summarize_issues(warnings))
        logger.warning("%s: %s:\n%s", source, counted(len(warnings), "warning"), lines)
    _log_images_without_boxes(inspection)
    for issue in inspection.issues:
        if issue.code == "unlisted_image_files":
            logger.info("%s", issue.message)
    return checked


def _log_images_without_boxes(inspection: Inspection) -> None:
    """Log the images kept without a box to learn: one warning naming those whose every
    annotation has an error (dropped by ``--skip-invalid``) or zero size, whose objects count
    as background (``image_without_usable_boxes``), and one info line counting the others
    (``image_without_boxes``: negative examples)."""
    source, num_images = inspection.source, len(inspection.checked.images)
    by_code = issues_by_code(inspection.issues)
    unlabelled = by_code.get("image_without_usable_boxes", [])
    if unlabelled:
        their, them = ("its", "it") if len(unlabelled) == 1 else ("their", "them")
        logger.warning(
            "%s: %s kept (%s) %s annotations but no usable box, each with an error or of zero "
            "size: kept as %s, %s objects counted as background (in training and evaluation); "
            "fix %s annotations, or remove %s",
            source,
            some_of(len(unlabelled), num_images, "image"),
            issue_subjects(unlabelled, limit=5),
            verb(len(unlabelled), "has"),
            _negative_examples(len(unlabelled)),
            their,
            their,
            them,
        )
    if negatives := len(by_code.get("image_without_boxes", [])):
        logger.info(
            "%s: %s %s no boxes (kept as %s)",
            source,
            some_of(negatives, num_images, "image"),
            verb(negatives, "has"),
            _negative_examples(negatives),
        )


def _negative_examples(count: int) -> str:
    """What ``count`` images without a box to learn are kept as."""
    return "a negative example" if count == 1 else "negative examples"


def refuse_invalid(
    inspection: Inspection, *, skip_invalid: bool, require_boxes: bool = True
) -> None:
    """Raise what :func:`apply_policy` raises, logging nothing: for a check before the work
    that builds the dataset (the automatic recipe reads the set before training loads it).

    Raises:
        InvalidDataError: there are errors and ``skip_invalid`` is false.
        DatasetError: no usable image, category or box is left.
    """
    source, checked = inspection.source, inspection.checked
    errors = [issue for issue in inspection.errors if issue.code not in _DATASET_CODES]
    if errors and not skip_invalid:
        raise InvalidDataError(_refusal_message(inspection, errors))
    if not checked.categories:
        raise DatasetError(f"{source}: the file has no valid category")
    for issue in inspection.errors:
        if issue.code in _DATASET_CODES and (require_boxes or issue.code != "no_boxes"):
            raise DatasetError(issue.message)


def checked_for_training(
    json_path: str | os.PathLike[str],
    image_dir: str | os.PathLike[str],
    *,
    skip_invalid: bool,
) -> Inspection:
    """The inspection of a COCO set that training accepts, every image decoded
    (:func:`inspect_dataset`; its ``checked`` entries are those training keeps), or training's
    refusal (:func:`refuse_invalid`), logging nothing: the one check of a set before the work
    that builds its dataset (``train`` before its budget starts, the automatic recipe's
    profile). Its dataset takes it as it is (``CocoDataset(..., inspection=...)``), without
    reading the files again; what it drops and warns about is logged then
    (:func:`apply_policy`).

    Raises:
        DatasetError: the JSON is missing or not a COCO instances file, the image folder cannot
            hold its images, or no usable image, category or box is left.
        InvalidDataError: the set has errors and ``skip_invalid`` is false.
    """
    inspection = inspect_dataset(json_path, image_dir, image_check="decode")
    refuse_invalid(inspection, skip_invalid=skip_invalid)
    return inspection


def _refusal_message(inspection: Inspection, errors: list[Issue]) -> str:
    """Why the dataset of ``inspection`` is refused for its ``errors``, in two lines: what is
    wrong and what to do (:func:`_refusal_first_line`), then the explaining warnings
    (:data:`~sparsercnn.data.validation.EXPLAINING_CODES`), every bad file (missing,
    unreadable or turned by its EXIF orientation; capped), every image entry with an error of
    its own (capped), the first issue of each of those kinds (why they are bad), and the first
    annotation issues, which name their images. ``validate`` lists them all, with the
    inspection's image folder (where none was given, the user is told to name theirs)."""
    folder = next((issue for issue in errors if issue.code in _FOLDER_CODES), None)
    errors = [issue for issue in errors if issue is not folder]
    parts = [str(issue) for issue in inspection.issues if issue.code in EXPLAINING_CODES]
    # An image's own error (its file missing or unreadable, its entry's id repeated): every
    # image named once, the files apart from the entries; an image with annotation errors only
    # is not bad, its annotations' issues name it.
    of_images = [i for i in errors if i.file is not None and i.annotation_id is None]
    of_files = [i.file for i in of_images if i.file and i.code in FILE_ERROR_CODES]
    of_entries = [i.file for i in of_images if i.file and i.code not in FILE_ERROR_CODES]
    for what, names in (("bad files", of_files), ("bad image entries", of_entries)):
        if distinct := list(dict.fromkeys(names)):
            parts.append(f"{what} ({len(distinct)}): {listing(distinct, limit=_MAX_LISTED_FILES)}")
    for found in issues_by_code(of_images).values():
        more = f" (and {len(found) - 1} more like it)" if len(found) > 1 else ""
        parts.append(f"{found[0]}{more}")
    # Issues no file names (an annotation's box or ids, the JSON itself): the first few, in full.
    unnamed = [issue for issue in errors if issue.file is None or issue.annotation_id is not None]
    shown = unnamed[:_MAX_LISTED_ISSUES]
    parts += [str(issue) for issue in shown]
    if len(unnamed) > len(shown):
        parts.append(f"... and {len(unnamed) - len(shown)} more")
    first = _refusal_first_line(inspection, errors, folder)
    return f"{first}\n{'; '.join(parts)}" if parts else first


def _refusal_first_line(inspection: Inspection, errors: list[Issue], folder: Issue | None) -> str:
    """What is wrong with the dataset of ``inspection`` and what to do: fix or remove the
    ``errors``, or drop them with ``--skip-invalid``; led by the ``folder`` issue where the
    image folder is likely the wrong one (``no_image_found``, ``wrong_image_folder``), whose
    remedy, another folder, comes first: ``--skip-invalid`` would drop, or use, the files of
    the wrong folder, and is named last, where it can do anything at all."""
    source, image_dir = inspection.source, inspection.image_dir
    checked = inspection.image_check != "none"
    where = f"images in {image_dir}" if checked else "its image files not checked"
    images = image_dir if image_dir is not None else "<its image folder>"
    them = "it" if len(errors) == 1 else "them"
    fix = (
        f"fix or remove {them} (`sparsercnn validate --json {source} --images {images} --all` "
        f"lists each)"
    )
    if folder is None:
        return (
            f"{source}: {counted(len(errors), 'error')} in the dataset ({where}); {fix}, or "
            f"{SKIP_INVALID_HINT} to drop {them} up front"
        )
    if folder.code in UNSKIPPABLE_CODES:
        return f"{source}: {folder.message}"
    if not errors:  # the files are there, of other sizes: --skip-invalid uses them as they are
        return f"{source}: {folder.message}; to use the files as they are, {SKIP_INVALID_HINT}"
    return (
        f"{source}: {folder.message}. If the folder is right, the dataset has "
        f"{counted(len(errors), 'other error')}: {fix}, or {SKIP_INVALID_HINT} to drop {them} "
        "up front"
    )


def _dropped_summary(source: str, checked: CheckedCoco, errors: list[Issue]) -> str:
    """One line: how many images and annotations ``--skip-invalid`` dropped, and why (each
    code's count and what its issues are of, :func:`~sparsercnn.data.issues.issue_subjects`).
    """
    reasons = []
    for code, found in issues_by_code(errors).items():
        subjects = issue_subjects(found, limit=3)
        reasons.append(f"{len(found)} {code}" + (f" ({subjects})" if subjects else ""))
    return (
        f"{source}: --skip-invalid dropped {checked.num_dropped_images} of "
        f"{checked.num_images_in_json} images and {checked.num_dropped_annotations} of "
        f"{checked.num_annotations_in_json} annotations: {'; '.join(reasons)}"
    )


def read_failure_message(file: str, image_id: int, source: str, error: Exception) -> str:
    """Why training or evaluation stops when an image that passed the check fails to load."""
    return (
        f"image {image_id} ({file!r}) of {source} could not be loaded: {error}. It passed the "
        "check when the dataset was built, so it changed on disk since; restore or fix it, or "
        "pass --skip-invalid to `sparsercnn train` (skip_invalid=True in Python) to replace such "
        "images in training and count them in metrics.jsonl"
    )
