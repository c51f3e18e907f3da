"""The rules for an annotation's ``bbox`` (``[x, y, w, h]`` pixels of its image) and ``area``:
what is malformed, what COCO evaluation would misread, and which boxes past their image's edge
are clipped and which rejected.
"""

from __future__ import annotations

import math
from typing import Any

from sparsercnn.box_format_evidence import ROUNDING_PX
from sparsercnn.json_values import is_number, is_quoted_box

# How far a box may extend past the image border, as a fraction of the image width (for x) or
# height (for y), and still be clipped with a warning instead of being rejected; ROUNDING_PX
# more is allowed at any tolerance, 0 included.
DEFAULT_CLIP_TOLERANCE = 0.05


def bbox_problem(bbox: Any) -> tuple[str, str] | None:
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


def area_problem(area: object, bbox: list[float]) -> str | None:
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


def fit_to_image(
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
