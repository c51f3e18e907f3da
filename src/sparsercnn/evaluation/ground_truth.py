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
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from faster_coco_eval import COCO

from sparsercnn.evaluation.results import label_to_category_lookup
from sparsercnn.json_values import (
    COCO_ID_KEYS,
    coco_with_integer_ids,
    id_problem,
    is_int,
    whole_float_ids_message,
)
from sparsercnn.structures import coco_area, distinct_names
from sparsercnn.text import counted, verb

logger = logging.getLogger(__name__)

# The ids evaluation reads: annotation ids are renumbered, never read, so any value will do.
_READ_ID_KEYS: Mapping[str, tuple[str, ...]] = {
    **COCO_ID_KEYS,
    "annotations": ("image_id", "category_id"),
}


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
        category_ids: the ids of ``lookup``, sorted: the categories evaluated (COCOeval's
            ``params.catIds``, in this order) and those a detection record may name.
        names: distinct class name by category id (keyed by exactly the ids of ``lookup``:
            a record's category id is tested against it).
        image_ids: the ground truth's image ids (as the file gives them).
        dense_id: faster-coco-eval's id of every image id (``0 .. n-1``).
        dense_category_id: faster-coco-eval's id of every category id (``1 .. K``, in the
            order of the category ids).
        coco: the ``COCO`` index, with images, categories and annotations renumbered.

    Raises:
        ValueError: the dict lacks a COCO list, an entry is no object, an id is no integer
            (whole floats are read as integers, with one warning), an image or category id
            repeats (``1`` and ``1.0`` included), or the label map or names do not fit it.
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
        gt_category_ids = _distinct_ids(data["categories"], "categories", "category", self.source)
        missing = [c for c in self.lookup if c not in gt_category_ids]
        if missing:
            raise ValueError(
                f"category ids {missing} of the label map are not in {self.source} "
                f"(which has {sorted(gt_category_ids)}); the label map does not match this data "
                "set"
            )
        self.category_ids = sorted(set(self.lookup))
        if len(self.category_ids) != len(self.lookup):
            raise ValueError(f"label -> category id mapping has duplicates: {self.lookup}")
        if class_names is None:
            gt_names = {c["id"]: str(c["name"]) for c in data["categories"]}
            class_names = [gt_names[c] for c in self.lookup]
        if len(class_names) != len(self.lookup):
            raise ValueError(
                f"{len(class_names)} class names for {len(self.lookup)} labels; give one per label"
            )
        names = distinct_names(self.lookup, [str(n) for n in class_names])
        self.names = dict(zip(self.lookup, names, strict=True))
        ignored = sorted(gt_category_ids - set(self.lookup))
        if ignored:
            logger.warning(
                "%s: categories %s are not in the label map and are not evaluated",
                self.source,
                ignored,
            )
        self.image_ids = _distinct_ids(data["images"], "images", "image", self.source)
        # faster-coco-eval holds ids as float64: ids from 2**53 on would collide (two
        # categories merged, or its evaluation failing). It sees the images as 0..n-1, the
        # categories as 1..K and the annotations as 1..m instead; results keep the file's ids.
        # The dense category ids keep the order of the ids: category_ids stays sorted in them.
        self.dense_id = {image_id: i for i, image_id in enumerate(sorted(self.image_ids))}
        self.dense_category_id = {c: i for i, c in enumerate(sorted(gt_category_ids), start=1)}
        for image in data["images"]:
            image["id"] = self.dense_id[image["id"]]
        for category in data["categories"]:
            category["id"] = self.dense_category_id[category["id"]]
        for number, ann in enumerate(data["annotations"], start=1):
            # -1: of no image or category of the file, so never scored.
            ann["image_id"] = self.dense_id.get(ann["image_id"], -1)
            ann["category_id"] = self.dense_category_id.get(ann["category_id"], -1)
            ann["id"] = number
        self.coco = COCO(data)


def _distinct_ids(
    entries: Sequence[Mapping[str, Any]], list_key: str, noun: str, source: str
) -> frozenset[int]:
    """The ids of ``entries``, a COCO dict's ``list_key`` list (each entry a ``noun`` to the
    message), refused where one repeats: COCOeval would merge the images of an id into one
    and score another image's objects against its detections; of two categories of an id, one
    would take the other's name and objects."""
    counts = Counter(entry["id"] for entry in entries)
    repeated = [(entry_id, count) for entry_id, count in counts.items() if count > 1]
    if repeated:
        entry_id, count = repeated[0]
        raise ValueError(
            f"{source}: {noun} id {entry_id} appears {count} times in {list_key!r} "
            f"({counted(len(repeated), 'id')} {verb(len(repeated), 'repeats')}); give "
            f"each {noun} its own id (`sparsercnn validate` lists them)"
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
    data, whole_floats = coco_with_integer_ids(data, _READ_ID_KEYS)
    _check_ids(data, _READ_ID_KEYS, source)
    if whole_floats:
        logger.warning("%s", whole_float_ids_message(source, whole_floats))
    for ann in data["annotations"]:
        # pycocotools needs both for the area ranges and crowd handling; COCO files have them.
        # A null iscrowd (0 for COCO's tools and the data rules) would crash faster-coco-eval.
        ann["iscrowd"] = int(bool(ann.get("iscrowd")))
        ann["area"] = coco_area(ann)
    return data, source


def _check_ids(
    data: Mapping[str, Any], id_keys: Mapping[str, tuple[str, ...]], source: str
) -> None:
    """Refuse the entries of ``data`` (the lists of ``id_keys``, after
    :func:`~sparsercnn.json_values.coco_with_integer_ids`) that are no object or whose id
    under ``id_keys`` is no ``int``, which ``int()`` would read as another id (``2.5`` as 2,
    ``"2"`` as 2) or not at all.

    Raises:
        ValueError: naming the entry, the key and the value.
    """
    for list_key, keys in id_keys.items():
        for position, entry in enumerate(data[list_key]):
            if not isinstance(entry, dict):
                raise ValueError(f"{source}: {list_key}[{position}] is not an object")
            for key in keys:
                if not is_int(entry.get(key)):
                    raise ValueError(
                        f"{source}: {list_key}[{position}]: {id_problem(entry, key)} "
                        "(`sparsercnn validate` checks an annotation file)"
                    )
