"""What the automatic recipe reads from a training set: sizes and counts from its COCO entries.

:class:`DatasetProfile` holds, per image, its size and number of boxes and, per box, its size
and class, taken from the entries the data policy keeps (:meth:`DatasetProfile.from_dataset`:
every image decoded, each of its file's size where the JSON's ``width`` / ``height`` disagree
or are not given, as training sees it). :meth:`DatasetProfile.box_sides_at` answers the
question the recipe's choice of input size turns on: how large is every object once images are
resized as the model will see them.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.checked_coco import CheckedCoco
from sparsercnn.data.policy import checked_for_training
from sparsercnn.data.sampler import SampleGroups, orientation_groups, training_batches
from sparsercnn.data.transforms import TrainTransform, resized_shape
from sparsercnn.structures import padded_size

# The price of a padded batch: the mean of the first this many batches training deals...
PRICED_BATCHES = 64
# ...from at most this many images spread over the set (grouping reads the size of every sample
# of an epoch, a Python call each where random crops draw it).
PRICED_IMAGES = 2048

Grouping = Literal["sample", "image", "none"]
"""How batches are dealt: of one orientation by each sample's size after the training transform
(``train.aspect_ratio_grouping``: what training does), by each image's own size (blind to what a
random crop does to a sample), or as the stream comes."""


@dataclass(frozen=True, eq=False)
class DatasetProfile:
    """Sizes and counts of a training set.

    Attributes:
        class_names: category names in contiguous-label order.
        boxes_per_class: ``(C,)`` number of (non-crowd) boxes of every class.
        image_heights, image_widths: ``(I,)`` image sizes in pixels (after EXIF orientation:
            the decoded file's, where it differs from the JSON's or the JSON gives none).
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
    # padded_batch_pixels by its arguments.
    _priced_batches: dict[
        tuple[TrainTransform, int, Grouping, int, int, int, int | None], float
    ] = field(default_factory=dict, init=False, repr=False)

    @staticmethod
    def from_checked(checked: CheckedCoco) -> DatasetProfile:
        """The profile of the entries in ``checked`` (crowd regions are not boxes to learn), of
        the sizes their image entries give: those of the data policy
        (:meth:`from_dataset`) carry the decoded files' sizes."""
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
    def from_dataset(
        json_path: str | os.PathLike[str],
        image_dir: str | os.PathLike[str],
        *,
        skip_invalid: bool = False,
    ) -> DatasetProfile:
        """The profile of the entries of a COCO set that training keeps, checked by the data
        policy (:func:`~sparsercnn.data.policy.checked_for_training`, every image decoded): an image
        whose file's size differs from its JSON ``width`` / ``height``, or whose entry gives
        none, has the file's, which training resizes and its boxes are checked against.

        Args:
            json_path: the COCO instances JSON file.
            image_dir: the folder that ``images[].file_name`` is relative to.
            skip_invalid: leave out the entries the data policy calls errors (as training
                leaves them out) instead of refusing the set.

        Raises:
            DatasetError: the JSON is missing or not a COCO instances file, the image folder
                cannot hold its images, or the data policy refuses the set
                (:func:`~sparsercnn.data.policy.checked_for_training`: the refusals of
                ``train``'s own check of the data, word for word).
        """
        inspection = checked_for_training(json_path, image_dir, skip_invalid=skip_invalid)
        return DatasetProfile.from_checked(inspection.checked)

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
        transform: TrainTransform,
        batch_size: int,
        *,
        grouping: Grouping = "sample",
        size_divisibility: int = 32,
        seed: int = 0,
        num_batches: int = PRICED_BATCHES,
        max_images: int | None = PRICED_IMAGES,
    ) -> float:
        """Mean pixels of a padded training batch image: of the first ``num_batches`` batches of
        ``batch_size`` samples that training with ``seed`` deals
        (:func:`~sparsercnn.data.sampler.training_batches`, grouped by ``grouping``), each
        padded to its samples' largest height and width after ``transform`` (its random crops
        included) rounded up to ``size_divisibility``. Nothing is decoded: the sizes come from
        the images' sizes and the samples' seeds. A set of more than ``max_images`` images
        (``None``: no limit) is priced on that many spread over it. Each price is computed once
        per profile."""
        key = (transform, batch_size, grouping, size_divisibility, seed, num_batches, max_images)
        if key not in self._priced_batches:
            self._priced_batches[key] = self._padded_batch_pixels(*key)
        return self._priced_batches[key]

    def _padded_batch_pixels(
        self,
        transform: TrainTransform,
        batch_size: int,
        grouping: Grouping,
        size_divisibility: int,
        seed: int,
        num_batches: int,
        max_images: int | None,
    ) -> float:
        sizes = np.stack((self.image_heights, self.image_widths), axis=1)
        if max_images is not None and self.num_images > max_images:
            sizes = sizes[np.linspace(0, self.num_images - 1, max_images).round().astype(int)]
        if transform.draws_size:

            def sample_sizes(indices: np.ndarray, seeds: np.ndarray) -> np.ndarray:
                return transform.output_sizes(sizes[indices], seeds)

        else:  # every image's output size, computed once: the seeds change none
            unique, inverse = np.unique(sizes, axis=0, return_inverse=True)
            no_seeds = np.zeros(len(unique), dtype=np.int64)
            of_image = transform.output_sizes(unique, no_seeds)[inverse.reshape(-1)]

            def sample_sizes(indices: np.ndarray, seeds: np.ndarray) -> np.ndarray:
                return of_image[indices]

        def sample_groups(indices: np.ndarray, seeds: np.ndarray) -> np.ndarray:
            return orientation_groups(transform.grouping_sizes(sizes[indices], seeds))

        groups: dict[Grouping, SampleGroups | np.ndarray | None] = {
            "sample": sample_groups,
            "image": orientation_groups(sizes),
            "none": None,
        }
        batches = training_batches(len(sizes), batch_size, seed=seed, groups=groups[grouping])
        areas = []
        for batch in itertools.islice(batches, num_batches):
            indices, seeds = np.array(batch, dtype=np.int64).T
            height, width = sample_sizes(indices, seeds).max(axis=0).tolist()
            padded_height, padded_width = padded_size(height, width, size_divisibility)
            areas.append(padded_height * padded_width)
        return float(np.mean(areas))

    def box_sides_at(self, short_edge: int, max_size: int) -> np.ndarray:
        """``(M,)`` every box's ``sqrt(w * h)`` in pixels of the resized image."""
        return self.box_sides * self.resize_scales(short_edge, max_size)[self.box_images]
