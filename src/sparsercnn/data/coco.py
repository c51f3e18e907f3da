"""COCO-format detection data: :class:`CocoDataset` turns an instances JSON file and an image
folder into :class:`~sparsercnn.structures.Sample` s for training and evaluation.

Rules (spec 1.4): labels are contiguous and ordered by category id
(:class:`~sparsercnn.data.categories.CategoryMap`); images without boxes are kept; crowd regions
(``iscrowd=1``) are not training targets; ``bbox`` ``[x, y, w, h]`` becomes float32 absolute
xyxy; boxes whose width or height is not above 1e-5 after the transform are dropped. The file
is checked when the dataset is built, with the rules of :mod:`sparsercnn.data.validation`.
"""

from __future__ import annotations

import logging
import operator
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.image_io import ImageReadError, load_image
from sparsercnn.data.transforms import EMPTY_BOX_THRESHOLD, Transform
from sparsercnn.data.validation import (
    DEFAULT_CLIP_TOLERANCE,
    REQUIRED_KEYS,
    CheckedCoco,
    DatasetError,
    Issue,
    check_coco,
    check_image_files,
    format_issues,
    load_coco_json,
)
from sparsercnn.structures import Sample, Target

__all__ = ["CocoDataset", "DatasetError"]

logger = logging.getLogger(__name__)

# Unreadable images in a row after which the dataset stops substituting the next one and raises.
MAX_CONSECUTIVE_READ_FAILURES = 16
_MAX_LISTED_PROBLEMS = 10


class CocoDataset(Dataset[Sample]):
    """Map-style dataset over a COCO instances file.

    Building it parses the JSON once, checks every entry and that every image file exists
    (:mod:`~sparsercnn.data.validation`), clips boxes slightly outside their image (with a
    logged warning), and keeps only compact arrays (no per-annotation Python objects, so
    forked data-loading workers share them).

    Args:
        json_path: COCO instances JSON (``images``, ``annotations``, ``categories``).
        image_dir: folder that ``images[].file_name`` is relative to.
        transform: see :class:`Transform`; ``None`` gives the decoded image as a uint8 tensor.
        skip_invalid: drop invalid images/annotations with a logged warning instead of raising.
        check_files: check at construction that every image file exists.
        skip_unreadable: when an image cannot be read during training, log a warning and return
            the next readable sample (same seed) instead of raising. Pass ``False`` for
            evaluation, where a substitute would be scored as the wrong image.
        clip_tolerance: see :data:`~sparsercnn.data.validation.DEFAULT_CLIP_TOLERANCE`.

    Raises:
        DatasetError: the file is not a COCO instances file, or it has errors and
            ``skip_invalid`` is false (the message lists the first ones), or nothing is left.

    ``dataset[index]`` draws the transform's randomness from Python's global ``random``
    module (which PyTorch seeds in every data-loading worker); ``dataset[index, seed]`` uses
    ``random.Random(seed)``, so the same pair always gives the same sample.
    """

    def __init__(
        self,
        json_path: str | os.PathLike[str],
        image_dir: str | os.PathLike[str],
        transform: Transform | None = None,
        skip_invalid: bool = False,
        *,
        check_files: bool = True,
        skip_unreadable: bool = True,
        clip_tolerance: float = DEFAULT_CLIP_TOLERANCE,
    ) -> None:
        self.coco_json = Path(json_path)
        self.image_dir = Path(image_dir)
        self.transform = transform
        self.skip_invalid = skip_invalid
        self.skip_unreadable = skip_unreadable
        self.clip_tolerance = clip_tolerance
        checked = self._checked(check_files)
        self.category_map = CategoryMap.from_coco(checked.categories)
        self._build_index(checked)
        self._size_warned: set[int] = set()

    def _checked(self, check_files: bool) -> CheckedCoco:
        """Parse and check the file; raise on errors or drop what they concern."""
        source = str(self.coco_json)
        checked = check_coco(
            load_coco_json(self.coco_json), source, clip_tolerance=self.clip_tolerance
        )
        issues = list(checked.issues)
        if check_files:
            file_issues = check_image_files(checked.images, self.image_dir, read_headers=False)
            issues += file_issues
            missing = {issue.image_id for issue in file_issues if issue.image_id is not None}
            checked = checked.without_images(missing)
        errors = [issue for issue in issues if issue.severity == "error"]
        if errors and not self.skip_invalid:
            raise DatasetError(_problems_message(source, errors))
        if errors:
            logger.warning(
                "%s: skip_invalid drops %d of %d images and %d of %d annotations because of:\n%s",
                source,
                checked.num_images_in_json - len(checked.images),
                checked.num_images_in_json,
                checked.num_annotations_in_json - len(checked.annotations),
                checked.num_annotations_in_json,
                "\n".join(format_issues(errors, max_per_code=3)),
            )
        warnings = [issue for issue in issues if issue.severity == "warning"]
        if warnings:
            lines = "\n".join(format_issues(warnings, max_per_code=3))
            logger.warning("%s: %d warning(s):\n%s", source, len(warnings), lines)
        if not checked.images:
            raise DatasetError(f"{source}: no usable image is left (image folder {self.image_dir})")
        if not checked.categories:
            raise DatasetError(f"{source}: the file has no valid category")
        return checked

    def _build_index(self, checked: CheckedCoco) -> None:
        """Store images and non-crowd boxes as flat arrays; boxes of image i are in
        ``_boxes[_offsets[i]:_offsets[i + 1]]``."""
        images = checked.images
        self._image_ids = np.array([image["id"] for image in images], dtype=np.int64)
        self._file_names = np.array([image["file_name"] for image in images], dtype=np.str_)
        self._sizes = np.array(
            [(int(image["height"]), int(image["width"])) for image in images], dtype=np.int64
        )
        position = {image_id: i for i, image_id in enumerate(self._image_ids.tolist())}
        boxes = [ann for ann in checked.annotations if not ann.get("iscrowd", 0)]
        owners = np.array([position[ann["image_id"]] for ann in boxes], dtype=np.int64)
        xywh = np.array([ann["bbox"] for ann in boxes], dtype=np.float64).reshape(-1, 4)
        labels = [self.category_map.to_label(ann["category_id"]) for ann in boxes]
        order = np.argsort(owners, kind="stable")
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        self._boxes = xyxy[order].astype(np.float32)
        self._labels = np.array(labels, dtype=np.int64)[order]
        counts = np.bincount(owners, minlength=len(images))
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def __len__(self) -> int:
        return len(self._image_ids)

    def __getitem__(self, key: int | tuple[int, int]) -> Sample:
        """The sample at ``key``: an index, or ``(index, seed)`` for a reproducible transform.

        An unreadable image is replaced by the next readable one (with the same seed), see
        ``skip_unreadable``.
        """
        index, rng = self._parse_key(key)
        attempts = min(MAX_CONSECUTIVE_READ_FAILURES, len(self))
        for attempt in range(attempts):
            position = (index + attempt) % len(self)
            try:
                image = load_image(self.image_dir / str(self._file_names[position]))
            except ImageReadError as exc:
                if not self.skip_unreadable:
                    raise
                logger.warning(
                    "skipping image %d (index %d) of %s: %s; using the next image instead",
                    self._image_ids[position],
                    position,
                    self.coco_json,
                    exc,
                )
                continue
            return self._sample(position, image, rng)
        raise DatasetError(
            f"{attempts} images in a row, from index {index} of {self.coco_json}, could not be "
            f"read from {self.image_dir} (see the warnings above): check the image folder"
        )

    def _parse_key(self, key: int | tuple[int, int]) -> tuple[int, random.Random]:
        if isinstance(key, tuple):
            if len(key) != 2:
                raise TypeError(f"a dataset key is an index or (index, seed), got {key!r}")
            index, rng = operator.index(key[0]), random.Random(operator.index(key[1]))
        else:
            index, rng = operator.index(key), random.Random(random.getrandbits(64))
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} images")
        return index % len(self), rng

    def _sample(self, position: int, image: Image.Image, rng: random.Random) -> Sample:
        start, end = int(self._offsets[position]), int(self._offsets[position + 1])
        boxes = torch.from_numpy(self._boxes[start:end].copy())
        labels = torch.from_numpy(self._labels[start:end].copy())
        original_size = (image.height, image.width)
        self._check_size(position, original_size)
        if self.transform is None:
            # (h, w, 3) -> (3, h, w)
            tensor = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
            tensor = tensor.contiguous()
        else:
            tensor, boxes, keep = self.transform(image, boxes, rng)
            _check_transform_output(tensor, boxes, keep, len(labels))
            boxes, labels = boxes.to(torch.float32), labels[keep.long()]
        widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        nonempty = (widths > EMPTY_BOX_THRESHOLD) & (heights > EMPTY_BOX_THRESHOLD)
        return Sample(
            image=tensor,
            target=Target(boxes=boxes[nonempty], labels=labels[nonempty]),
            image_id=int(self._image_ids[position]),
            original_size=original_size,
            file_name=str(self._file_names[position]),
        )

    def _check_size(self, position: int, size: tuple[int, int]) -> None:
        """Warn once per image (and process) when the file's size disagrees with the JSON."""
        expected = (int(self._sizes[position, 0]), int(self._sizes[position, 1]))
        if size == expected or position in self._size_warned:
            return
        self._size_warned.add(position)
        logger.warning(
            "image %d (%s) is %dx%d (w x h) after EXIF orientation but %s says %dx%d: its boxes "
            "may not fit the image (run `sparsercnn validate` for details)",
            self._image_ids[position],
            self._file_names[position],
            size[1],
            size[0],
            self.coco_json,
            expected[1],
            expected[0],
        )

    @property
    def image_ids(self) -> list[int]:
        """COCO image id of every index."""
        return self._image_ids.tolist()

    def image_info(self, index: int) -> dict[str, Any]:
        """``{"id", "file_name", "height", "width"}`` of the image at ``index`` (JSON values)."""
        height, width = self._sizes[index]
        return {
            "id": int(self._image_ids[index]),
            "file_name": str(self._file_names[index]),
            "height": int(height),
            "width": int(width),
        }

    def gt_dict(self) -> dict[str, Any]:
        """The ground truth for COCO evaluation, as a COCO dict (crowd regions included).

        The JSON is parsed again (it is not kept in memory) and the construction rules are
        applied again: only this dataset's images and their valid annotations, boxes clipped.
        Missing ``iscrowd`` defaults to 0 and missing ``area`` to the box area, as the COCO
        evaluator needs both.
        """
        data = load_coco_json(self.coco_json)
        checked = check_coco(data, str(self.coco_json), clip_tolerance=self.clip_tolerance)
        kept = set(self.image_ids)
        annotations = []
        for ann in checked.annotations:
            if ann["image_id"] not in kept:
                continue
            area = ann.get("area")
            if not isinstance(area, (int, float)) or isinstance(area, bool):
                area = float(ann["bbox"][2]) * float(ann["bbox"][3])
            annotations.append({**ann, "iscrowd": int(bool(ann.get("iscrowd", 0))), "area": area})
        return {
            **{key: value for key, value in data.items() if key not in REQUIRED_KEYS},
            "images": [image for image in checked.images if image["id"] in kept],
            "annotations": annotations,
            "categories": checked.categories,
        }


def _problems_message(source: str, errors: list[Issue]) -> str:
    lines = [f"{source}: {len(errors)} problem(s) in the dataset:"]
    lines += [f"  {issue}" for issue in errors[:_MAX_LISTED_PROBLEMS]]
    if len(errors) > _MAX_LISTED_PROBLEMS:
        lines.append(f"  ... and {len(errors) - _MAX_LISTED_PROBLEMS} more")
    lines.append(
        "Run `sparsercnn validate` on this dataset for a full report, or pass "
        "skip_invalid=True to drop the offending images and annotations with a warning."
    )
    return "\n".join(lines)


def _check_transform_output(image: Tensor, boxes: Tensor, keep: Tensor, num_boxes: int) -> None:
    """Raise a clear error when a transform breaks the :class:`Transform` contract."""
    if not (
        isinstance(image, Tensor)
        and image.dtype == torch.uint8
        and image.dim() == 3
        and image.shape[0] == 3
    ):
        what = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise TypeError(f"a transform must return a (3, h, w) uint8 image tensor, got {what}")
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"a transform must return (M, 4) boxes, got {tuple(boxes.shape)}")
    if (
        keep.dim() != 1
        or len(keep) != len(boxes)
        or keep.is_floating_point()
        or keep.dtype == torch.bool
    ):
        raise ValueError(
            f"a transform must return (M,) integer keep indices, one per box; got "
            f"{tuple(keep.shape)} {keep.dtype} for {len(boxes)} boxes"
        )
    if len(keep) and (int(keep.min()) < 0 or int(keep.max()) >= num_boxes):
        raise ValueError(f"keep indices must lie in [0, {num_boxes}), got {keep.tolist()}")
