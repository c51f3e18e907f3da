"""COCO-format detection data: :class:`CocoDataset` turns an instances JSON file and an image
folder into :class:`~sparsercnn.structures.Sample` s for training and evaluation.

Rules (spec 1.4): labels are contiguous and ordered by category id
(:class:`~sparsercnn.data.categories.CategoryMap`); images without boxes are kept; crowd regions
(``iscrowd=1``) are not training targets; ``bbox`` ``[x, y, w, h]`` becomes float32 absolute
xyxy; boxes whose width or height is not above 1e-5 after the transform are dropped. The data
is checked when the dataset is built, with the data policy (:mod:`sparsercnn.data.policy`) that
``sparsercnn validate`` applies, or taken as its caller's check of the same files found it.
"""

from __future__ import annotations

import logging
import operator
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from sparsercnn.data.box_rules import DEFAULT_CLIP_TOLERANCE
from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.checked_coco import CheckedCoco
from sparsercnn.data.dataset_error import DatasetError
from sparsercnn.data.image_cache import ImageCache
from sparsercnn.data.image_io import DecodedImage, ImageReadError, decode_image
from sparsercnn.data.policy import (
    ImageCheck,
    Inspection,
    InvalidDataError,
    apply_policy,
    inspect_dataset,
    read_failure_message,
)
from sparsercnn.data.transforms import EMPTY_BOX_THRESHOLD, TrainTransform, Transform
from sparsercnn.structures import Sample, Target, coco_area
from sparsercnn.text import counted

__all__ = ["CocoDataset", "DatasetError", "ImageChangedError", "InvalidDataError"]

logger = logging.getLogger(__name__)

# Unreadable images in a row after which the dataset stops replacing them and raises.
MAX_CONSECUTIVE_READ_FAILURES = 16


class ImageChangedError(DatasetError):
    """An image that passed the check when the dataset was built failed to load later."""


class CocoDataset(Dataset[Sample]):
    """Map-style dataset over a COCO instances file.

    Building it applies the data policy (:mod:`~sparsercnn.data.policy`): it parses the JSON
    once, checks every entry and, by default, decodes every image file; boxes slightly outside
    their image are clipped (with a logged warning). It keeps only compact arrays (no
    per-annotation Python objects, so forked data-loading workers share them): the training
    targets, and (``keep_ground_truth``) the ground truth evaluation scores against
    (:meth:`gt_dict`), so that the file is parsed once however often the dataset is evaluated.

    Args:
        json_path: COCO instances JSON (``images``, ``annotations``, ``categories``).
        image_dir: folder that ``images[].file_name`` is relative to.
        transform: see :class:`Transform`; ``None`` gives the decoded image as a uint8 tensor.
        skip_invalid: drop the images/annotations with errors up front, with one logged summary
            line, instead of raising (``--skip-invalid`` on the command line).
        image_check: how far the image files are checked at construction (see
            :data:`~sparsercnn.data.policy.ImageCheck`); ``"exists"`` is fast but lets a
            truncated file through to the first time it is loaded.
        skip_unreadable: when an image fails to load after construction (it changed on disk),
            return the next readable sample (same seed) and list the file in
            ``Sample.replaced_files``, instead of raising :class:`ImageChangedError`. For
            training with ``--skip-invalid`` only: in evaluation a substitute would be scored
            as the wrong image.
        clip_tolerance: see :data:`~sparsercnn.data.box_rules.DEFAULT_CLIP_TOLERANCE`.
        num_proposals: the model's N, to warn about images with more boxes than proposals.
        decode_size: ``(h, w) -> (h, w)``, the resolution the transform needs of an image of
            its checked size (e.g. :meth:`~sparsercnn.data.transforms.TrainTransform.source_size`):
            large JPEGs are then decoded at a reduced scale (see
            :func:`~sparsercnn.data.image_io.decode_image`) and their boxes scaled with them.
            ``None``: every image in full.
        cache_bytes: keep up to this many bytes of decoded images in memory
            (:class:`~sparsercnn.data.image_cache.ImageCache`, per process), so each is decoded
            once (again only when its file changes); for training, where every image is read
            many times.
        require_boxes: a file without a usable box is refused (False: for uses that read only
            the images, as ``diagnose reads``).
        keep_ground_truth: keep the ground truth for evaluation (:meth:`gt_dict`); False for a
            set that is only trained on, which then holds no copy of it (about 65 bytes an
            annotation: 55 MB for COCO train2017, in every process).
        inspection: what :func:`~sparsercnn.data.policy.inspect_dataset` found in
            ``json_path`` and ``image_dir`` with this ``image_check`` and ``clip_tolerance``,
            where the caller checked the files already (``train`` checks its sets before its
            budget starts, :func:`~sparsercnn.data.policy.checked_for_training`): the policy is
            applied to it as it is, without parsing or checking the files again. ``None``: they
            are checked here.

    Attributes:
        num_dropped_images, num_dropped_annotations: what ``skip_invalid`` left out of the
            file (annotations of dropped images included); 0 without it.
        json_sizes: the JSON's ``(width, height)`` of the images whose decoded file has
            another size (:attr:`image_sizes` gives the file's), by image id.

    Raises:
        InvalidDataError: the data has errors and ``skip_invalid`` is false (the message names
            every bad file, capped).
        DatasetError: the file is not a COCO instances file, or no usable image or box is left.
        ValueError: ``inspection`` is of other files, or made with another ``image_check`` or
            ``clip_tolerance``.

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
        image_check: ImageCheck = "decode",
        skip_unreadable: bool = False,
        clip_tolerance: float = DEFAULT_CLIP_TOLERANCE,
        num_proposals: int | None = None,
        decode_size: Callable[[int, int], tuple[int, int]] | None = None,
        cache_bytes: int = 0,
        require_boxes: bool = True,
        keep_ground_truth: bool = True,
        inspection: Inspection | None = None,
    ) -> None:
        self.coco_json = Path(json_path)
        self.image_dir = Path(image_dir)
        self.transform = transform
        self.decode_size = decode_size
        self.image_cache = ImageCache(cache_bytes)
        self.skip_unreadable = skip_unreadable
        self.clip_tolerance = clip_tolerance
        if inspection is None:
            inspection = inspect_dataset(
                json_path, image_dir, image_check=image_check, clip_tolerance=clip_tolerance
            )
        else:
            _check_inspection(
                inspection, self.coco_json, self.image_dir, image_check, clip_tolerance
            )
        checked = apply_policy(
            inspection.for_num_proposals(num_proposals),
            skip_invalid=skip_invalid,
            require_boxes=require_boxes,
        )
        self.num_dropped_images = checked.num_dropped_images
        self.num_dropped_annotations = checked.num_dropped_annotations
        self.json_sizes = dict(inspection.json_sizes)
        self.category_map = CategoryMap.from_coco(checked.categories)
        # The category entries as the file gives them, in its order (a few; for gt_dict).
        self._categories = [dict(category) for category in checked.categories]
        self.keep_ground_truth = keep_ground_truth
        self._build_index(checked)
        self._size_warned = False

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
        if self.keep_ground_truth:
            self._build_ground_truth(checked.ground_truth, position)

    def _build_ground_truth(
        self, annotations: list[dict[str, Any]], position: dict[int, int]
    ) -> None:
        """Store what evaluation scores against (``CheckedCoco.ground_truth`` of the kept
        images, crowd regions included), in file order, as the file gives it: ``_gt_xywh``
        ``(G, 4)`` float64 ``[x, y, w, h]`` unclipped, ``_gt_area`` (:func:`coco_area`),
        ``_gt_crowd``, ``_gt_labels`` and ``_gt_owners`` (index of the image)."""
        kept = [ann for ann in annotations if ann["image_id"] in position]
        ids = [ann["id"] for ann in kept]
        # An id past int64 (valid JSON, if odd) is kept as it is, in an object array.
        self._gt_ids = np.array(ids) if ids else np.zeros(0, dtype=np.int64)
        self._gt_owners = np.array([position[ann["image_id"]] for ann in kept], dtype=np.int64)
        self._gt_xywh = np.array([ann["bbox"] for ann in kept], dtype=np.float64).reshape(-1, 4)
        self._gt_area = np.array([coco_area(ann) for ann in kept], dtype=np.float64)
        self._gt_crowd = np.array([bool(ann.get("iscrowd", 0)) for ann in kept], dtype=bool)
        self._gt_labels = np.array(
            [self.category_map.to_label(ann["category_id"]) for ann in kept], dtype=np.int64
        )

    def __len__(self) -> int:
        return len(self._image_ids)

    def __getitem__(self, key: int | tuple[int, int]) -> Sample:
        """The sample at ``key``: an index, or ``(index, seed)`` for a reproducible transform.

        Raises:
            ImageChangedError: the image fails to load (see ``skip_unreadable``), or, with
                ``skip_unreadable``, so do the next ones, many in a row.
        """
        index, rng = self._parse_key(key)
        replaced: list[str] = []
        for attempt in range(min(MAX_CONSECUTIVE_READ_FAILURES, len(self))):
            position = (index + attempt) % len(self)
            file = str(self._file_names[position])
            try:
                decoded = self._decode(position)
            except ImageReadError as exc:
                image_id = int(self._image_ids[position])
                message = read_failure_message(file, image_id, str(self.coco_json), exc)
                if not self.skip_unreadable:
                    raise ImageChangedError(message) from exc
                logger.warning("--skip-invalid: replacing image %d (%r): %s", image_id, file, exc)
                replaced.append(file)
                continue
            return self._sample(position, decoded, rng, tuple(replaced))
        raise ImageChangedError(
            f"{counted(len(replaced), 'image')} in a row, from index {index} of "
            f"{self.coco_json}, could not be loaded from {self.image_dir} (first "
            f"{replaced[0]!r}): check the image folder"
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

    def _decode(self, position: int) -> DecodedImage:
        """The image at ``position``, from the cache or decoded (and then cached if it fits).

        The cache holds it with the file's size and modification time and the resolution it
        was decoded for: a file changed on disk is decoded again (and fails as it would
        uncached), not served from memory as it was."""
        path = self.image_dir / str(self._file_names[position])
        at_least = None
        if self.decode_size is not None:
            height, width = self._sizes[position]
            at_least = self.decode_size(int(height), int(width))
        version: tuple[object, ...] | None = None
        if self.image_cache.max_bytes:
            try:
                stat = os.stat(path)
                version = (stat.st_size, stat.st_mtime_ns, at_least)
            except OSError:  # decoding names the problem
                pass
        decoded = self.image_cache.get(position, version) if version is not None else None
        if decoded is None:
            decoded = decode_image(path, at_least)
            if version is not None:
                self.image_cache.put(position, decoded, version)
        return decoded

    def _sample(
        self, position: int, decoded: DecodedImage, rng: random.Random, replaced: tuple[str, ...]
    ) -> Sample:
        start, end = int(self._offsets[position]), int(self._offsets[position + 1])
        boxes = torch.from_numpy(self._boxes[start:end].copy())
        labels = torch.from_numpy(self._labels[start:end].copy())
        image, original_size = decoded.image, decoded.full_size
        self._check_size(position, original_size)
        if decoded.pixel_map is not None:  # a JPEG decoded at a reduced scale
            boxes = decoded.pixel_map.boxes_to_decoded(boxes)
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
            replaced_files=replaced,
            # The decoded image's map composed with the transform's resize of it.
            pixel_map=decoded.input_map((int(tensor.shape[1]), int(tensor.shape[2]))),
        )

    def _check_size(self, position: int, size: tuple[int, int]) -> None:
        """Warn when the file's size disagrees with the checked one (:attr:`image_sizes`): for
        the first such image of this dataset and process, at DEBUG for the others."""
        expected = (int(self._sizes[position, 0]), int(self._sizes[position, 1]))
        if size == expected:
            return
        level = logging.DEBUG if self._size_warned else logging.WARNING
        self._size_warned = True
        logger.log(
            level,
            "image %d (%s) is %dx%d (w x h) after EXIF orientation but %s was checked with "
            "%dx%d: its boxes may not fit the image (run `sparsercnn validate` to list every such "
            "image)",
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

    @property
    def image_sizes(self) -> list[tuple[int, int]]:
        """``(h, w)`` of every index as checked: the file's (after EXIF orientation) where the
        data check decoded it, else the JSON's; known without decoding any image."""
        return [(int(h), int(w)) for h, w in self._sizes.tolist()]

    def grouping_sizes(self, indices: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """``(n, 2)`` int64 ``(h, w)`` by which the samples ``dataset[index, seed]`` are grouped
        into batches of one orientation, known without decoding: each sample's output size
        where the transform's random crop can change its orientation
        (:meth:`~sparsercnn.data.transforms.TrainTransform.grouping_sizes` with the sample's
        seed; from the checked size, which can round one pixel apart from an image decoded at a
        reduced scale), else the images' own sizes, whose orientation resizing and flipping
        keep."""
        sizes = self._sizes[np.asarray(indices, dtype=np.int64)].astype(np.int64).reshape(-1, 2)
        if not isinstance(self.transform, TrainTransform):
            return sizes
        return self.transform.grouping_sizes(sizes, seeds)

    def image_info(self, index: int) -> dict[str, Any]:
        """``{"id", "file_name", "height", "width"}`` of the image at ``index`` (the JSON's
        values, the size as checked: :attr:`image_sizes`)."""
        height, width = self._sizes[index]
        return {
            "id": int(self._image_ids[index]),
            "file_name": str(self._file_names[index]),
            "height": int(height),
            "width": int(width),
        }

    def gt_dict(self) -> dict[str, Any]:
        """The ground truth for COCO evaluation, as a COCO dict (crowd regions included).

        Made anew from the arrays the dataset keeps at every call (no file is read; the caller
        may modify it, as evaluation does): its images (``id``, ``file_name`` and the size as
        checked, :attr:`image_sizes`) and their annotations as the file gives them, in file
        order: a box a little outside its image, or of zero size,
        is evaluated as it is (training clips the one and drops the other), so the metrics are
        those any COCO tool computes on the file. Only annotations the data rules call errors
        (left out with ``skip_invalid``) are left out. Each annotation has ``id``,
        ``image_id``, ``category_id``, ``bbox``, ``iscrowd`` (missing: 0) and ``area``
        (missing: the box area), what COCO bbox evaluation reads; the categories are the
        file's entries. Other keys of the file (segmentations, ``info``, ``licenses``) are not
        kept.

        Raises:
            RuntimeError: the dataset was built with ``keep_ground_truth=False``.
        """
        if not self.keep_ground_truth:
            raise RuntimeError(
                f"the dataset of {self.coco_json} was built with keep_ground_truth=False (a "
                "training set) and holds no ground truth to evaluate against; build it with "
                "keep_ground_truth=True to evaluate it"
            )
        category_ids = self.category_map.category_ids
        annotations = [
            {
                "id": ann_id,
                "image_id": image_id,
                "category_id": category_ids[label],
                "bbox": bbox,
                "area": area,
                "iscrowd": int(crowd),
            }
            for ann_id, image_id, label, bbox, area, crowd in zip(
                self._gt_ids.tolist(),
                self._image_ids[self._gt_owners].tolist(),
                self._gt_labels.tolist(),
                self._gt_xywh.tolist(),
                self._gt_area.tolist(),
                self._gt_crowd.tolist(),
                strict=True,
            )
        ]
        return {
            "images": [self.image_info(index) for index in range(len(self))],
            "annotations": annotations,
            "categories": [dict(category) for category in self._categories],
        }


def _check_inspection(
    inspection: Inspection,
    json_path: Path,
    image_dir: Path,
    image_check: ImageCheck,
    clip_tolerance: float,
) -> None:
    """Raise unless ``inspection`` is the one the dataset would make of its files (one of no
    image folder, which read no image file, fits any)."""
    folder = image_dir if inspection.image_dir is None else Path(inspection.image_dir)
    given = (Path(inspection.source), folder)
    made = (inspection.image_check, inspection.clip_tolerance)
    if given != (json_path, image_dir) or made != (image_check, clip_tolerance):
        raise ValueError(
            f"the inspection given to the dataset of {json_path} (images in {image_dir}, "
            f"image_check={image_check!r}, clip_tolerance={clip_tolerance}) is of "
            f"{inspection.source} (images in {inspection.image_dir}, "
            f"image_check={inspection.image_check!r}, clip_tolerance={inspection.clip_tolerance}):"
            " give the inspection of these files with these settings, or none"
        )


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
