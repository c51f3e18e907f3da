"""A COCO results file read back for evaluation: ``predict``'s, ``eval --results``' or another
tool's detections, scored without running a model (``sparsercnn eval --detections``).

A COCO results JSON is a list of ``{"image_id", "category_id", "bbox", "score"}`` records
(:class:`~sparsercnn.evaluation.results.CocoResult`: ``bbox_xywh`` absolute pixels of the
original image, the data set's category ids). ``sparsercnn predict`` writes the same list
without ``image_id``, naming each image by ``file_name``, the path it was given: such a record
is of the image whose ``file_name`` in the annotation file ends that path.
:func:`read_results_file` checks every record's keys, types and that its numbers are finite,
and :func:`records_by_image` gives each its image; its category and size (a category of the
data set, no negative size) are checked where every record is, by
:meth:`~sparsercnn.evaluation.CocoEvaluator.extend`. The frame list ``predict`` writes beside
its results (:func:`frame_list_path`) names the images it could not read
(:func:`listed_unreadable_images`), which have no records. Boxes that look written in
another format (corners, fractions of the image, another image's pixels) are warned about,
never refused (:func:`warn_box_format`).
"""

from __future__ import annotations

import json
import logging
import math
import posixpath
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sparsercnn.box_format_evidence import BoxFormatEvidence
from sparsercnn.evaluation.results import CocoResult
from sparsercnn.json_values import (
    id_problem,
    is_int,
    is_number,
    is_quoted_box,
    unquoted_fix,
    whole_float_ids_message,
    with_integer_ids,
)
from sparsercnn.text import counted, listing, shortened

logger = logging.getLogger(__name__)

# What a results file holds, for every message about one that does not.
RECORDS = (
    'a COCO results JSON is a list of {"image_id", "category_id", "bbox": [x, y, width, '
    'height], "score"} records (or `sparsercnn predict`\'s, with "file_name" for "image_id")'
)


def read_results_file(path: str | Path) -> list[dict[str, Any]]:
    """The records of the COCO results file ``path``, their keys and types checked.

    Returns:
        The records as the file gives them: each has ``category_id`` (an integer), ``bbox``
        (4 numbers), ``score`` (a number) and an integer ``image_id`` or a ``file_name``. Ids
        written as whole floats (``3.0``, as pandas writes integer columns) are read as the
        integers, with one warning that counts them
        (:func:`~sparsercnn.json_values.with_integer_ids`); other floats are refused.

    Raises:
        ValueError: naming the file, and the first bad record by its index: the file is not
            JSON or not a list of records (``predict``'s frame list or a ground-truth file are
            named as such), or a record lacks a key, has one of another type, or is of a video
            frame (which no annotation file's image id names); or records hold a NaN or
            infinite score or bbox (JSON's ``NaN``, ``Infinity``, or a number past a float's
            range), which COCO evaluation cannot rank or match (how many counted).
    """
    try:
        with open(path, "rb") as file:
            data = json.load(file)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not JSON ({error}); {RECORDS}") from None
    if not isinstance(data, list):
        raise ValueError(f"{path} {_what_instead(data)}; {RECORDS}")
    records, whole_floats = with_integer_ids(data, ("image_id", "category_id"))
    for index, record in enumerate(records):
        problem = _record_problem(record)
        if problem is not None:
            shown = shortened(json.dumps(data[index]), 120)  # as the file gives it
            raise ValueError(f"{path}: record {index} ({shown}) {problem}; {RECORDS}")
    _check_finite(path, records, data)
    if whole_floats:
        logger.warning("%s", whole_float_ids_message(str(path), whole_floats))
    return records


def _check_finite(path: str | Path, records: Sequence[dict[str, Any]], data: list[Any]) -> None:
    """Raise when records of the file ``path`` (checked by :func:`_record_problem`; ``data``:
    as the file gives them) hold a NaN or infinite score or bbox, naming the first and counting
    them: the file's numbers, not a model's, which the message does not speak of."""
    bad = [
        index
        for index, record in enumerate(records)
        if not all(math.isfinite(v) for v in (record["score"], *record["bbox"]))
    ]
    if not bad:
        return
    first = records[bad[0]]
    which = [
        key
        for key, values in (("score", [first["score"]]), ("bbox", first["bbox"]))
        if not all(math.isfinite(v) for v in values)
    ]
    shown = shortened(json.dumps(data[bad[0]]), 120)
    raise ValueError(
        f"{path}: record {bad[0]} ({shown}) has a NaN or infinite {' and '.join(which)}: the "
        f"file holds non-finite numbers ({counted(len(bad), 'record')} with some), which COCO "
        "evaluation cannot rank or match; give a file of finite detections"
    )


def frame_list_path(results: Path) -> Path:
    """Where ``predict`` lists the frames it predicted and the images it could not read, beside
    its results JSON ``results``: ``predictions.json`` gives ``predictions.frames.json``."""
    return results.with_suffix(".frames.json")


def listed_unreadable_images(results: str | Path) -> tuple[Path, list[str]] | None:
    """The images ``predict`` could not read when it wrote the results file ``results``, as
    its frame list (:func:`frame_list_path`) names them (``"unreadable_images": [{"file_name",
    "reason"}, ...]``, ``file_name`` as records name an image).

    Returns:
        The frame list and those file names (empty when it lists none), or None when there is
        no frame list of ``results`` (another tool's file, a renamed one, a run that read every
        image). A frame list that cannot be read, or names other results, is warned about and
        taken as none.
    """
    frame_list = frame_list_path(Path(results))
    if not frame_list.is_file():
        return None
    try:
        data = json.loads(frame_list.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        logger.warning(
            "%s, predict's frame list of %s, cannot be read: %s", frame_list, results, error
        )
        return None
    listed = data.get("unreadable_images", []) if isinstance(data, dict) else None
    if not isinstance(listed, list) or data.get("results") != Path(results).name:
        logger.warning(
            "%s is not the frame list predict wrote with %s (it names other results, or is no "
            "frame list); the images it may list as unreadable are not told apart",
            frame_list,
            results,
        )
        return None
    names = [entry.get("file_name") for entry in listed if isinstance(entry, dict)]
    return frame_list, [name for name in names if isinstance(name, str)]


def _what_instead(data: Any) -> str:
    """What a results file holds that is no list of records, in words."""
    if isinstance(data, dict) and "videos" in data and "results" in data:
        return (
            "is the frame list `sparsercnn predict` writes beside its results, not the results: "
            f"give the results file it names ({data['results']!r}, in the same folder)"
        )
    kind = type(data).__name__
    instead = f"holds a JSON {'object' if kind == 'dict' else kind}, not a list of records"
    if not isinstance(data, dict):
        return instead
    # Records wrapped in an object, as some tools write them ({"annotations": [...]}, with
    # "images" too where they export detections in COCO form: told before a ground-truth file,
    # which has no scores); a list with some entries amiss is still the records, whose check
    # then names those.
    for key, value in data.items():
        records = sum(_looks_like_record(v) for v in value) if isinstance(value, list) else 0
        if records:
            return (
                f"{instead}; its {key!r} holds {counted(records, 'record')}: give that list alone"
            )
    if "annotations" in data and "images" in data:
        return "is a COCO instances (ground-truth) file, not detections"
    return instead


def _looks_like_record(entry: Any) -> bool:
    """Whether ``entry`` looks like a detection record (an object with a bbox and a score),
    however its values are written."""
    return isinstance(entry, dict) and "bbox" in entry and "score" in entry


def _record_problem(record: Any) -> str | None:
    """Why ``record`` is no detection record (None: it is one)."""
    if not isinstance(record, dict):
        return "is not an object"
    if "frame_index" in record:
        return (
            f"is of frame {record['frame_index']} of the video {record.get('file_name')!r}, "
            "which no image of an annotation file is; evaluate the detections of images"
        )
    if "image_id" in record:
        if not is_int(record["image_id"]):
            return f"has a wrong id: {id_problem(record, 'image_id')}"
    elif not isinstance(record.get("file_name"), str):
        return "names no image: it has neither an image_id nor a file_name"
    if "category_id" not in record:
        return "has no category_id (the data set's category id)"
    if not is_int(record["category_id"]):
        return f"has a wrong id: {id_problem(record, 'category_id')}"
    bbox = record.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(is_number(v) for v in bbox)):
        return "has no bbox of 4 numbers [x, y, width, height]" + (
            ": write its numbers without quotes" if is_quoted_box(bbox) else ""
        )
    if not is_number(record.get("score")):
        score_fix = unquoted_fix(record.get("score"))
        return "has no number as score" + ("" if score_fix is None else f": {score_fix}")
    return None


def records_by_image(
    records: Sequence[Mapping[str, Any]],
    images: Mapping[int, str],
    *,
    left_out: Mapping[int, str] | None = None,
    source: str,
    ground_truth: str,
) -> tuple[dict[int, list[CocoResult]], int]:
    """The records of :func:`read_results_file` by the image they are of.

    A record's image is its ``image_id``, or else the image whose ``file_name`` ends the
    record's ``file_name`` path (``predict`` writes the path as it was given:
    ``val/images/a.jpg`` is of ``a.jpg`` or ``images/a.jpg``; the longest such wins).

    Args:
        records: checked records.
        images: ``file_name`` of every evaluated image, by image id.
        left_out: ``file_name`` of every image of the annotation file that is not evaluated
            (``--skip-invalid`` left it out), by image id: their records are left out too.
        source: the results file, for messages.
        ground_truth: the annotation file, for messages.

    Returns:
        The records of each evaluated image that has any, as :class:`CocoResult` s (the four
        keys COCO reads) in file order, and the number of records left out with their image.

    Raises:
        ValueError: records name images the annotation file does not have (a few named, and
            how many): the results of another data set, or of other images; or a record's
            ``file_name`` is of several images (their ``file_name`` is the same), which only
            its ``image_id`` would tell apart.
    """
    left_out = left_out or {}
    by_name = _images_by_path({**left_out, **images})
    grouped: dict[int, list[CocoResult]] = {}
    unknown_ids: dict[int, int] = {}
    unknown_files: dict[str, int] = {}
    num_left_out = 0
    for record in records:
        image_id = record.get("image_id")
        if image_id is None:
            matched = _images_of_file(record["file_name"], by_name)
            if not matched:
                unknown_files[record["file_name"]] = unknown_files.get(record["file_name"], 0) + 1
                continue
            if len(matched) > 1:
                shared = listing([str(i) for i in sorted(matched)], 5)
                raise ValueError(
                    f"{source}: records name their image by file_name {record['file_name']!r}, "
                    f"which is of images {shared} of {ground_truth} (they share a file_name); "
                    "give these records the image_id of their image instead"
                )
            (image_id,) = matched
        if image_id in images:
            grouped.setdefault(image_id, []).append(
                {
                    "image_id": image_id,
                    "category_id": record["category_id"],
                    "bbox": [float(v) for v in record["bbox"]],
                    "score": float(record["score"]),
                }
            )
        elif image_id in left_out:
            num_left_out += 1
        else:
            unknown_ids[image_id] = unknown_ids.get(image_id, 0) + 1
    if unknown_ids:
        raise ValueError(
            f"{source}: {counted(sum(unknown_ids.values()), 'record')} of "
            f"{counted(len(unknown_ids), 'image id')} that {ground_truth} does not have: "
            f"{listing([str(i) for i in sorted(unknown_ids)], 5)}; these are detections of "
            "other images (another data set's?): give the annotation file they were made on"
        )
    if unknown_files:
        raise ValueError(
            f"{source}: {counted(sum(unknown_files.values()), 'record')} of "
            f"{counted(len(unknown_files), 'file')} that no image of {ground_truth} is: "
            f"{listing(sorted(unknown_files), 3)} (a record without image_id is of the image "
            "whose file_name ends its file_name); give the annotation file of these images"
        )
    return grouped, num_left_out


def warn_box_format(
    results: Mapping[int, Sequence[CocoResult]],
    sizes: Mapping[int, tuple[int, int]],
    *,
    tolerance: float,
    source: str,
) -> None:
    """Warn once where the boxes of ``results`` look written in another format than COCO's
    ``[x, y, width, height]`` in pixels of their image
    (:class:`~sparsercnn.box_format_evidence.BoxFormatEvidence`: as corners, as fractions of
    the image, or mostly outside their images), which scores them near 0 with nothing else to
    say why. A model may predict boxes outside its image: they are scored as given.

    Args:
        results: the checked records of each image (finite, no negative size), by image id.
        sizes: ``(width, height)`` in pixels of every image of ``results``, by image id.
        tolerance: how far past its image a box read as corners may end and still fit it, a
            fraction of the image's side (the data's clip tolerance).
        source: the results file, for the message.
    """
    evidence = BoxFormatEvidence(tolerance)
    for image_id, image_results in results.items():
        width, height = sizes[image_id]
        for result in image_results:
            evidence.add(result["bbox"], width, height, image_id)
    finding = evidence.finding(source)
    if finding is not None:
        logger.warning(
            "%s; scored as given, which scores boxes in another format near 0",
            finding[1],
        )


def images_of_files(names: Sequence[str], images: Mapping[int, str]) -> dict[int, str]:
    """The images of ``images`` (``file_name`` by image id) that the paths ``names`` are of, as
    a record's ``file_name`` is matched (:func:`records_by_image`): ``names`` of no image are
    left out.

    Returns:
        Each matched image's path from ``names``, by image id.
    """
    by_name = _images_by_path(images)
    matched = {}
    for name in names:
        for image_id in _images_of_file(name, by_name):
            matched[image_id] = name
    return matched


def _path_parts(name: str) -> tuple[str, ...]:
    """``name``'s path components, ``.`` and ``..`` folded (``./a/b.jpg`` -> ``a``, ``b.jpg``)."""
    return tuple(part for part in posixpath.normpath(name).split("/") if part not in ("", "."))


def _images_by_path(images: Mapping[int, str]) -> dict[tuple[str, ...], list[int]]:
    """The ids of ``images`` (``file_name`` by image id) by the path components of their
    ``file_name`` (:func:`_path_parts`): several where images share one."""
    by_path: dict[tuple[str, ...], list[int]] = {}
    for image_id, name in images.items():
        if name:
            by_path.setdefault(_path_parts(name), []).append(image_id)
    return by_path


def _images_of_file(name: str, by_path: Mapping[tuple[str, ...], list[int]]) -> list[int]:
    """The images whose ``file_name`` is the longest ending of the path ``name`` (several where
    they share it); empty: none."""
    parts = _path_parts(name)
    for start in range(len(parts)):
        image_ids = by_path.get(parts[start:])
        if image_ids:
            return image_ids
    return []
