"""The size an image entry of a COCO file gives (``width`` / ``height``, or none: its decoded
file's size is then used), the rule for its fields, and the wording of a size that is not its
file's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sparsercnn.json_values import is_number, quoted_number


def unknown_size_keys(entry: Mapping[str, Any]) -> list[str]:
    """Which of an image entry's ``width`` and ``height`` say "unknown": missing, null or 0,
    as Label Studio and some converters write them."""
    return [
        key
        for key in ("width", "height")
        if entry.get(key) is None or (is_number(entry[key]) and entry[key] == 0)
    ]


def image_entry_size(entry: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(width, height)`` in pixels of an image entry that
    :func:`~sparsercnn.data.validation.check_coco`'s entry rules pass, or ``None`` where it
    gives no size (a ``width`` or ``height`` missing, null or 0): its decoded file's size is
    then used."""
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
    """``(width, height)`` in pixels as an image entry that
    :func:`~sparsercnn.data.validation.check_coco`'s entry rules pass gives them, each ``None``
    where it is missing, null or 0: what its decoded file's size is checked against, half a
    size included."""
    unknown = unknown_size_keys(entry)
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


def image_entry_problem(entry: dict[str, Any]) -> str | None:
    """Why an image entry's ``file_name``, ``width`` or ``height`` is wrong, or ``None``; a
    size it does not give (:func:`image_entry_size`) is not wrong here."""
    file_name = entry.get("file_name")
    if not isinstance(file_name, str) or not file_name:
        return f"'file_name' must be a non-empty string, got {file_name!r}"
    unknown = unknown_size_keys(entry)
    for key in [key for key in ("width", "height") if key not in unknown]:
        value = entry[key]
        if not _is_side(value):
            hint = " (write it without quotes)" if _is_side(quoted_number(value)) else ""
            return f"{key!r} must be a positive integer, got {value!r:.40}{hint}"
    return None


def _is_side(value: object) -> bool:
    """Whether ``value`` is an image entry's width or height: a positive whole number."""
    return is_number(value) and math.isfinite(value) and value > 0 and value == int(value)


def sized_by_file_note(given: tuple[int | None, int | None], size: tuple[int, int]) -> str:
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
