"""Signs that a file's COCO boxes were written in another format than the ``[x, y, width,
height]`` in pixels of their image that COCO reads: corners ``[x1, y1, x2, y2]``, fractions of
the image size, or pixels of another image. No one box tells: the file's boxes together do.

One rule for both kinds of file: an annotation file's boxes (``validate``, ``train``, ``eval``:
:mod:`~sparsercnn.data.validation`'s ``bbox_corners``, ``bbox_outside`` and ``bbox_fractions``
warnings) and a detections file's (``eval --detections``:
:mod:`~sparsercnn.evaluation.results_file`). A model may predict boxes outside its image, so a
sign is only ever a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from typing import Literal

from sparsercnn.text import agreeing_noun, counted, listing, verb

# How far, in pixels, a box may end past its image's edge and still count as inside it: clipped
# without a warning. Exporters that store coordinates as fractions of the image (Label Studio,
# FiftyOne) write a box drawn to the edge 1e-13 px past it, and those that round x and w to two
# decimals each up to 0.01 px (plus the float error of adding them).
ROUNDING_PX = 0.02
# The share of a file's boxes that lie mostly outside their image (less than half of a box's
# area inside it) from which the file's boxes look like pixels of other images: a detector
# clips its boxes to the image, and an annotation tool draws inside it.
MOSTLY_OUTSIDE_SHARE = 0.25
# The fewest boxes mostly outside their image that are a sign: one or two (a small file's box
# drawn past the edge, a clipped box at a corner) are told by their own issues.
MIN_MOSTLY_OUTSIDE = 3
# What boxes mostly outside their image may mean, and what to do for each.
OUTSIDE_CAUSES = (
    "If the boxes are in pixels of another size of their images (drawn on the originals of "
    "resized copies) or in another format, rescale or convert them; if the annotation file's "
    "image 'width' and 'height' are wrong (the size of thumbnails or resized copies), correct "
    "them to the size of the images the boxes were drawn on"
)
# The smallest image side, in pixels, on which boxes all within [0, 1] are taken for fractions
# of the image: on a smaller image a box of one pixel at its corner is plausible.
MIN_SIDE_FOR_FRACTIONS = 8
# How many images a sign's message names.
NAMED_IMAGES = 5

BoxFormatSign = Literal["corners", "outside", "fractions"]


@dataclass
class _Boxes:
    """How many boxes show a sign, and the images (ids, in the order first seen) of them."""

    count: int = 0
    image_ids: dict[int, None] = field(default_factory=dict)

    def add(self, image_id: int) -> None:
        self.count += 1
        self.image_ids[image_id] = None

    def named(self) -> str:
        """The images, for a message: ``images 3, 7``; more than :data:`NAMED_IMAGES`: the
        first of them and how many in all (``images 3, 7, 8, 9, 12 ... (40 in all)``)."""
        total = len(self.image_ids)
        ids = [str(image_id) for image_id in islice(self.image_ids, NAMED_IMAGES)]
        return f"{agreeing_noun(total, 'image')} {listing(ids, NAMED_IMAGES, total=total)}"


@dataclass
class BoxFormatEvidence:
    """What a file's boxes, read as COCO's ``[x, y, w, h]`` in pixels, say of their format.

    Fed with every box (:meth:`add`): finite, no negative width or height (an annotation file's
    zero-size boxes left out). :meth:`finding` then names the likeliest other format, if any:

    - ``"corners"``: some boxes extend past their image's right or bottom edge (by more than
      :data:`ROUNDING_PX`), yet every box, read as corners ``[x1, y1, x2, y2]``, lies inside
      its image (within ``tolerance``) with ``x2 >= x1, y2 >= y1``;
    - ``"outside"``: at least :data:`MOSTLY_OUTSIDE_SHARE` of the boxes, and
      :data:`MIN_MOSTLY_OUTSIDE` or more, lie mostly outside their image (pixels of a resized or
      another image, another format, or image entries of a wrong size: :data:`OUTSIDE_CAUSES`);
    - ``"fractions"``: every box lies within ``[0, 1]^4``, some of positive size, on images of
      :data:`MIN_SIDE_FOR_FRACTIONS` px or more a side (fractions of the image size, as YOLO's
      and some tools' normalised boxes are).

    Attributes:
        tolerance: how far past its image a box read as corners may end and still fit it, as a
            fraction of the image width (for x) or height (for y): the data's clip tolerance.
    """

    tolerance: float
    num_boxes: int = 0
    past_edge: _Boxes = field(default_factory=_Boxes)
    mostly_outside: _Boxes = field(default_factory=_Boxes)
    all_fit_as_corners: bool = True
    all_within_unit: bool = True
    any_positive_size: bool = False
    min_image_side: int | None = None
    first_box: tuple[int, list[float]] | None = None

    def add(self, bbox: list[float], width: int, height: int, image_id: int) -> None:
        """Take the box ``bbox`` (``[x, y, w, h]`` as COCO's) of the ``width`` x ``height``
        image ``image_id``."""
        x, y, a, b = bbox  # [x, y, w, h] as COCO's, [x1, y1, x2, y2] as corners
        self.num_boxes += 1
        self.first_box = self.first_box or (image_id, list(bbox))
        if x + a > width + ROUNDING_PX or y + b > height + ROUNDING_PX:
            self.past_edge.add(image_id)
        # Each flag, once settled, is not computed again (add runs once per box of the file).
        if self.all_fit_as_corners:
            tol_x, tol_y = self.tolerance * width, self.tolerance * height
            self.all_fit_as_corners = (
                -tol_x <= x <= a <= width + tol_x and -tol_y <= y <= b <= height + tol_y
            )
        if _mostly_outside(bbox, width, height):
            self.mostly_outside.add(image_id)
        if self.all_within_unit:
            self.all_within_unit = 0 <= x <= 1 and 0 <= y <= 1 and 0 <= a <= 1 and 0 <= b <= 1
        if not self.any_positive_size:
            self.any_positive_size = a > 0 and b > 0
        side = min(width, height)
        self.min_image_side = min(side, self.min_image_side or side)

    def finding(self, source: str) -> tuple[BoxFormatSign, str] | None:
        """The likeliest other format of the boxes of ``source`` and a message naming the
        signs (counted, a few images named), the format COCO reads and the fix; ``None`` where
        the boxes look like COCO's."""
        boxes = counted(self.num_boxes, "box", "boxes")
        if self.past_edge.count and self.all_fit_as_corners:
            return "corners", (
                f"{source}: {self.past_edge.count} of {boxes} "
                f"{verb(self.past_edge.count, 'extends')} past the right or bottom edge of their "
                f"image ({self.past_edge.named()}) read as COCO's [x, y, w, h], but every box "
                "would lie inside its image read as corners [x1, y1, x2, y2]: if they were "
                "written as corners, write each 'bbox' as [x1, y1, x2 - x1, y2 - y1]"
            )
        outside = self.mostly_outside.count
        if outside >= max(MIN_MOSTLY_OUTSIDE, MOSTLY_OUTSIDE_SHARE * self.num_boxes):
            return "outside", (
                f"{source}: {self.mostly_outside.count} of {boxes} "
                f"{verb(self.mostly_outside.count, 'lies')} mostly outside their image "
                f"({self.mostly_outside.named()}): COCO's 'bbox' is [x, y, width, height] in "
                f"pixels of the image at the size the annotation file gives it. {OUTSIDE_CAUSES}"
            )
        if (
            self.all_within_unit
            and self.any_positive_size
            and (self.min_image_side or 0) >= MIN_SIDE_FOR_FRACTIONS
            and self.first_box is not None
        ):
            image_id, bbox = self.first_box
            shown = ", ".join(f"{value:.3g}" for value in bbox)
            every = "its only box" if self.num_boxes == 1 else f"every one of the {boxes}"
            return "fractions", (
                f"{source}: {every} lies within [0, 1] (image {image_id}: [{shown}]), on images "
                f"of {self.min_image_side} px or more a side: fractions of the image size? "
                "COCO's 'bbox' is [x, y, width, height] in pixels: multiply x and width by the "
                "image's width, y and height by its height"
            )
        return None


def _mostly_outside(bbox: list[float], width: int, height: int) -> bool:
    """Whether less than half of the area of ``bbox`` (``[x, y, w, h]``) lies inside the
    ``width`` x ``height`` image; a box of no area: whether its corner lies outside."""
    x, y, w, h = bbox
    if w * h == 0:
        return not (0 <= x <= width and 0 <= y <= height)
    inside_w = max(0.0, min(x + w, width) - max(x, 0.0))
    inside_h = max(0.0, min(y + h, height) - max(y, 0.0))
    return inside_w * inside_h < 0.5 * w * h
