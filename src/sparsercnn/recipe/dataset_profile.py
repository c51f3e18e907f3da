"""What the automatic recipe reads from a training set: sizes and counts from its COCO entries.

:class:`DatasetProfile` holds, per image, its size and number of boxes and, per box, its size
and class, taken from the entries the data policy keeps (no pixel is decoded here: the policy
decodes every image once, when training starts). :meth:`DatasetProfile.box_sides_at` answers the
question the recipe's choice of input size turns on: how large is every object once images are
resized as the model will see them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.transforms import resized_shape
from sparsercnn.data.validation import CheckedCoco, check_coco, load_coco_json


@dataclass(frozen=True, eq=False)
class DatasetProfile:
    """Sizes and counts of a training set.

    Attributes:
        class_names: category names in contiguous-label order.
        boxes_per_class: ``(C,)`` number of (non-crowd) boxes of every class.
        image_heights, image_widths: ``(I,)`` image sizes in pixels (after EXIF, as the JSON
            says and the policy checks).
        objects_per_image: ``(I,)`` boxes of every image.
        box_sides: ``(M,)`` ``sqrt(w * h)`` of every box, in pixels of its original image.
        box_images: ``(M,)`` index into the image arrays of every box's image.
        box_labels: ``(M,)`` contiguous label of every box.
        file_names: every image's ``file_name``, relative to the image folder.
    """

    class_names: tuple[str, ...]
    boxes_per_class: np.ndarray
    image_heights: np.ndarray
    image_widths: np.ndarray
    objects_per_image: np.ndarray
    box_sides: np.ndarray
    box_images: np.ndarray
    box_labels: np.ndarray
    file_names: tuple[str, ...]

    @staticmethod
    def from_checked(checked: CheckedCoco) -> DatasetProfile:
        """The profile of the entries in ``checked`` (crowd regions are not boxes to learn)."""
        categories = CategoryMap.from_coco(checked.categories)
        image_index = {image["id"]: i for i, image in enumerate(checked.images)}
        boxes = [a for a in checked.annotations if not a.get("iscrowd", 0)]
        box_images = np.array([image_index[a["image_id"]] for a in boxes], dtype=np.int64)
        box_labels = np.array(
            [categories.to_label(a["category_id"]) for a in boxes], dtype=np.int64
        )
        sides = np.array([np.sqrt(a["bbox"][2] * a["bbox"][3]) for a in boxes], dtype=np.float64)
        return DatasetProfile(
            class_names=tuple(categories.names),
            boxes_per_class=np.bincount(box_labels, minlength=categories.num_classes),
            image_heights=np.array([im["height"] for im in checked.images], dtype=np.int64),
            image_widths=np.array([im["width"] for im in checked.images], dtype=np.int64),
            objects_per_image=np.bincount(box_images, minlength=len(checked.images)),
            box_sides=sides,
            box_images=box_images,
            box_labels=box_labels,
            file_names=tuple(im["file_name"] for im in checked.images),
        )

    @staticmethod
    def from_json(path: str | os.PathLike[str]) -> DatasetProfile:
        """The profile of a COCO file's valid entries (its JSON only; image files unread).

        Raises:
            DatasetError: the file is missing, not JSON, or not a COCO instances file.
        """
        return DatasetProfile.from_checked(check_coco(load_coco_json(path), os.fspath(path)))

    @property
    def num_images(self) -> int:
        return int(self.image_heights.size)

    @property
    def num_boxes(self) -> int:
        return int(self.box_sides.size)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def max_objects(self) -> int:
        """Most boxes in one image (0 for a set without boxes)."""
        return int(self.objects_per_image.max()) if self.num_images else 0

    @property
    def median_short_side(self) -> float:
        return float(np.median(np.minimum(self.image_heights, self.image_widths)))

    @property
    def long_to_short(self) -> float:
        """The 90th percentile of the images' long / short side ratio."""
        short = np.minimum(self.image_heights, self.image_widths)
        long = np.maximum(self.image_heights, self.image_widths)
        return float(np.quantile(long / short, 0.9))

    def resize_scales(self, short_edge: int, max_size: int) -> np.ndarray:
        """``(I,)`` factor by which the test resize (:func:`resized_shape`) scales every image."""
        sizes = zip(self.image_heights.tolist(), self.image_widths.tolist(), strict=True)
        return np.array(
            [resized_shape(h, w, short_edge, max_size)[0] / h for h, w in sizes], dtype=np.float64
        )

    def padded_batch_pixels(
        self,
        short_edge: int,
        max_size: int,
        batch_size: int,
        *,
        grouped: bool = True,
        size_divisibility: int = 32,
        num_batches: int = 64,
    ) -> float:
        """Mean pixels of a padded training batch image: batches of ``batch_size`` random images
        are padded to their largest height and largest width (rounded up to
        ``size_divisibility``). With ``grouped`` (``train.aspect_ratio_grouping``) a batch holds
        images of one orientation (wider than tall, or not), the first drawn from all images and
        the others from its group, as the grouped stream deals them; without, a mix of portrait
        and landscape images is padded to the long side both ways."""
        heights = np.round(self.image_heights * self.resize_scales(short_edge, max_size))
        widths = np.round(self.image_widths * self.resize_scales(short_edge, max_size))
        rng = np.random.default_rng(0)
        wider = self.image_widths > self.image_heights
        groups = [np.arange(self.num_images)]
        if grouped:
            groups = [np.flatnonzero(wider), np.flatnonzero(~wider)]
        picks = []
        for first in rng.choice(self.num_images, size=num_batches):
            group = groups[0] if len(groups) == 1 else groups[int(not wider[first])]
            others = group[group != first]
            count = min(batch_size - 1, len(others))
            picks.append([first, *rng.choice(others, size=count, replace=False)])
        padded_h = [np.ceil(heights[p].max() / size_divisibility) for p in picks]
        padded_w = [np.ceil(widths[p].max() / size_divisibility) for p in picks]
        area = np.array(padded_h) * np.array(padded_w) * size_divisibility**2
        return float(area.mean())

    def box_sides_at(self, short_edge: int, max_size: int) -> np.ndarray:
        """``(M,)`` every box's ``sqrt(w * h)`` in pixels of the resized image."""
        return self.box_sides * self.resize_scales(short_edge, max_size)[self.box_images]
