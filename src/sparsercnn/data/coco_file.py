"""Reading a COCO instances file: :func:`load_coco_json` parses it and checks its top-level
structure (three lists), with an error that says what was given instead where it is not one.
"""

from __future__ import annotations

import json
import os
from typing import Any

from sparsercnn.data.dataset_error import AnnotationFileError, DatasetError
from sparsercnn.text import listing

REQUIRED_KEYS = ("images", "annotations", "categories")


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
    check_structure(data, os.fspath(path))
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


def check_structure(data: Any, source: str) -> None:
    """Raise a :class:`DatasetError` naming ``source`` and what it holds unless ``data`` is an
    object with list-valued ``images``, ``annotations`` and ``categories``."""
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
