"""A COCO file after the data policy's JSON rules (:func:`~sparsercnn.data.validation.check_coco`):
the entries that passed, the objects COCO evaluation scores, and the issues found.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

from sparsercnn.data.issues import Issue


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
    """A COCO file after :func:`~sparsercnn.data.validation.check_coco`: the entries that
    passed, and what was found.

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
