"""COCO ground truth prepared for evaluation: :class:`CocoGroundTruth`.

Preparing it (copying a caller's dict, checking the label map, renumbering ids for
faster-coco-eval and building its ``COCO`` index) is the costly part of setting up an
evaluation; one :class:`CocoGroundTruth` of a data set serves every
:class:`~sparsercnn.evaluation.CocoEvaluator` of it: each periodic evaluation of a training run,
each stage of ``diagnose stages``.
"""

from __future__ import annotations

import copy
import json
import logging
import numbers
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from faster_coco_eval import COCO

from sparsercnn.evaluation.results import label_to_category_lookup
from sparsercnn.json_values import whole_float, whole_float_ids_message
from sparsercnn.structures import coco_area, distinct_names

logger = logging.getLogger(__name__)


class CocoGroundTruth:
    """A data set's COCO ground truth and label map, indexed for COCOeval once.

    COCOeval only adds each annotation's ``ignore`` flag (its ``iscrowd``) to this index, the
    same on every run, so any number of evaluations share it and score as with a fresh one.

    Args:
        ground_truth: a COCO instances dict (already loaded JSON; it is copied, never modified,
            unless ``owned``) or the path of one.
        label_to_category_id: dataset category id of every contiguous label (index = label).
            Only these categories are evaluated; GT categories outside it are left out (warned).
        class_names: name of every contiguous label; defaults to the GT category names. A name
            that several categories share gets its id added (``circle (3)``) in the per-class
            results.
        owned: ``ground_truth`` is a dict made for this object alone (as
            :meth:`~sparsercnn.data.coco.CocoDataset.gt_dict` makes one): it is used as it is,
            not copied, and its image and annotation entries are modified (renumbered here;
            COCOeval adds an ``ignore`` flag to each annotation at every evaluation).
        source: how messages name the ground truth: the annotation file a dict was made from
            (a dataset's); default: the file given, or ``"the ground-truth dict"``.

    Attributes:
        source: the ground truth as messages name it (``source``).
        lookup: dataset category id of every contiguous label.
        category_ids: the ids of ``lookup``, the categories a detection record may name.
        names: distinct class name by category id.
        image_ids: the ground truth's image ids (as the file gives them).
        dense_id: faster-coco-eval's id of every image id (``0 .. n-1``).
        coco: the ``COCO`` index, with images and annotations renumbered.

    Raises:
        ValueError: the dict lacks a COCO list, repeats an image id, or the label map or names
            do not fit it.
    """

    def __init__(
        self,
        ground_truth: Mapping[str, Any] | str | Path,
        label_to_category_id: Sequence[int] | Mapping[int, int],
        class_names: Sequence[str] | None = None,
        *,
        owned: bool = False,
        source: str | None = None,
    ) -> None:
        data, self.source = _load_ground_truth(ground_truth, owned)
        if source is not None:
            self.source = source
        self.lookup = label_to_category_lookup(label_to_category_id)
        gt_names = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        missing = [c for c in self.lookup if c not in gt_names]
        if missing:
            raise ValueError(
                f"category ids {missing} of the label map are not in {self.source} "
                f"(which has {sorted(gt_names)}); the label map does not match this data set"
            )
        self.category_ids = frozenset(self.lookup)
        if len(self.category_ids) != len(self.lookup):
            raise ValueError(f"label -> category id mapping has duplicates: {self.lookup}")
        if class_names is None:
            class_names = [gt_names[c] for c in self.lookup]
        if len(class_names) != len(self.lookup):
            raise ValueError(
                f"{len(class_names)} class names for {len(self.lookup)} labels; give one per label"
            )
        names = distinct_names(self.lookup, [str(n) for n in class_names])
        self.names = dict(zip(self.lookup, names, strict=True))
        ignored = sorted(set(gt_names) - self.category_ids)
        if ignored:
            logger.warning(
                "%s: categories %s are not in the label map and are not evaluated",
                self.source,
                ignored,
            )
        self.image_ids = _distinct_image_ids(data["images"], self.source)
        # faster-coco-eval holds ids as float64: ids from 2**53 on would collide. It sees the
        # images as 0..n-1 and the annotations as 1..m instead; results keep the file's ids.
        self.dense_id = {image_id: i for i, image_id in enumerate(sorted(self.image_ids))}
        for image in data["images"]:
            image["id"] = self.dense_id[int(image["id"])]
        for number, ann in enumerate(data["annotations"], start=1):
            ann["image_id"] = self.dense_id.get(int(ann["image_id"]), -1)
            ann["id"] = number
        self.coco = COCO(data)


def _distinct_image_ids(images: Sequence[Mapping[str, Any]], source: str) -> frozenset[int]:
    """The ids of ``images``, refused where one repeats: COCOeval would merge the images of
    an id into one and score another image's objects against its detections."""
    counts = Counter(int(image["id"]) for image in images)
    repeated = [(image_id, count) for image_id, count in counts.items() if count > 1]
    if repeated:
        image_id, count = repeated[0]
        raise ValueError(
            f"{source}: image id {image_id} appears {count} times in 'images' "
            f"({len(repeated)} ids repeat); give each image its own id (`sparsercnn validate` "
            "lists them)"
        )
    return frozenset(counts)


def _load_ground_truth(
    ground_truth: Mapping[str, Any] | str | Path, owned: bool
) -> tuple[dict[str, Any], str]:
    """The GT dict to modify (the file's, ``ground_truth`` where ``owned``, else a deep copy:
    faster-coco-eval indexes and marks the entries themselves) and a description."""
    if isinstance(ground_truth, (str, Path)):
        with open(ground_truth, encoding="utf-8") as f:
            data = json.load(f)
        source = str(ground_truth)
    else:
        data = dict(ground_truth) if owned else copy.deepcopy(dict(ground_truth))
        source = "the ground-truth dict"
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{source}: COCO ground truth needs a list under {key!r}")
    _integer_ids(data, source)
    for ann in data["annotations"]:
        # pycocotools needs both for the area ranges and crowd handling; COCO files have them.
        # A null iscrowd (0 for COCO's tools and the data rules) would crash faster-coco-eval.
        ann["iscrowd"] = int(bool(ann.get("iscrowd")))
        ann["area"] = coco_area(ann)
    return data, source


# The ids of each list of a COCO dict that evaluation reads (annotation ids are renumbered).
_ID_KEYS = {"images": ("id",), "categories": ("id",), "annotations": ("image_id", "category_id")}


def _integer_ids(data: dict[str, Any], source: str) -> None:
    """Make the ids of ``data`` (:data:`_ID_KEYS`) Python ints, in place: integers (numpy's
    included) as they are, whole floats (``3.0``) with one warning that counts them
    (:func:`~sparsercnn.json_values.whole_float`).

    Raises:
        ValueError: an entry is no object, or an id is anything else, which ``int()`` would
            read as another id (``2.5`` as 2, ``"2"`` as 2) or not at all; the message names
            the entry.
    """
    counts: Counter[str] = Counter()
    for list_key, keys in _ID_KEYS.items():
        for position, entry in enumerate(data[list_key]):
            if not isinstance(entry, dict):
                raise ValueError(f"{source}: {list_key}[{position}] is not an object")
            for key in keys:
                value = entry.get(key)
                if type(value) is int:
                    continue
                if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                    entry[key] = int(value)
                elif (whole := whole_float(value)) is not None:
                    entry[key] = whole
                    counts[f"{list_key}[].{key}"] += 1
                else:
                    raise ValueError(
                        f"{source}: {list_key}[{position}] has {key!r} {value!r:.40}, not an "
                        "integer id; write COCO ids as integers (`sparsercnn validate` checks "
                        "an annotation file)"
                    )
    if counts:
        logger.warning("%s", whole_float_ids_message(source, counts))
