"""The training images of a run, as its checkpoints record them (:func:`data_identity`), and
what changed between those of a checkpoint and those of the run resuming it
(:func:`log_data_change`): the images added, removed or resized, by id.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sparsercnn.text import counted

logger = logging.getLogger(__name__)

# How many ids a warning names of each kind of change.
_EXAMPLES = 3


def data_identity(dataset: object) -> dict[str, Any] | None:
    """What fixes a run's data order (with its seed and batch), for a dataset with
    ``image_ids`` and ``image_sizes`` (``CocoDataset``); ``None`` for others.

    Returns:
        ``num_images``; ``digest``, of the ids and sizes in index order (what checkpoints
        written before the arrays were kept hold, with ``num_images``); ``image_ids``, ``(N,)``
        int64, and ``image_sizes``, ``(N, 2)`` int32 ``(h, w)``, in index order: 16 bytes an
        image (1.6 MB for 100k), which say which images changed.
    """
    ids, sizes = getattr(dataset, "image_ids", None), getattr(dataset, "image_sizes", None)
    if ids is None or sizes is None:
        return None
    ids, sizes = list(ids), [tuple(size) for size in sizes]
    digest = hashlib.sha256(json.dumps([ids, sizes]).encode()).hexdigest()
    return {
        "num_images": len(ids),
        "digest": digest[:16],
        "image_ids": torch.tensor(ids, dtype=torch.int64),
        "image_sizes": torch.tensor(sizes, dtype=torch.int32).reshape(-1, 2),
    }


@dataclass(frozen=True)
class DataChange:
    """How the images of a resumed run differ from those of its checkpoint.

    Attributes:
        added: ids of the images the checkpoint's run did not have, ascending.
        removed: ids of the checkpoint's images the resumed run lacks, ascending.
        resized: ``(id, (h, w) before, (h, w) now)`` of the images of both with another size,
            by ascending id.
    """

    added: list[int]
    removed: list[int]
    resized: list[tuple[int, tuple[int, int], tuple[int, int]]]

    def describe(self) -> str:
        """The changes in a few words, with a few ids of each: "2 added: ids 7, 8; 1 resized:
        id 3 96x128 -> 48x64"; the same images in another order when nothing else changed."""
        parts = []
        if self.added:
            parts.append(f"{len(self.added)} added{_examples(self.added)}")
        if self.removed:
            parts.append(f"{len(self.removed)} removed{_examples(self.removed)}")
        if self.resized:
            sizes = [f"{id_} {h}x{w} -> {h2}x{w2}" for id_, (h, w), (h2, w2) in self.resized]
            parts.append(f"{len(self.resized)} resized{_examples(sizes)}")
        return "; ".join(parts) or "the same images in another order"


def _examples(items: list[Any]) -> str:
    """ ": ids a, b" when ``items`` are few, else ", e.g. ids a, b, c"."""
    shown = ", ".join(str(item) for item in items[:_EXAMPLES])
    noun = "id" if len(items) == 1 else "ids"
    return f": {noun} {shown}" if len(items) <= _EXAMPLES else f", e.g. {noun} {shown}"


def data_change(saved: Mapping[str, Any], current: Mapping[str, Any]) -> DataChange | None:
    """The images added, removed and resized from ``saved`` to ``current``
    (:func:`data_identity` of each); ``None`` when ``saved`` has no ids (a checkpoint written
    before they were kept)."""
    if "image_ids" not in saved or "image_ids" not in current:
        return None
    old_ids, new_ids = saved["image_ids"].numpy(), current["image_ids"].numpy()
    common, old_at, new_at = np.intersect1d(old_ids, new_ids, return_indices=True)
    old_sizes = saved["image_sizes"].numpy()[old_at]
    new_sizes = current["image_sizes"].numpy()[new_at]
    other = np.flatnonzero((old_sizes != new_sizes).any(axis=1))
    return DataChange(
        added=np.setdiff1d(new_ids, old_ids).tolist(),
        removed=np.setdiff1d(old_ids, new_ids).tolist(),
        resized=[
            (int(common[i]), _size(old_sizes[i]), _size(new_sizes[i])) for i in other.tolist()
        ],
    )


def _size(size: np.ndarray) -> tuple[int, int]:
    return int(size[0]), int(size[1])


def log_data_change(saved: Mapping[str, Any] | None, current: Mapping[str, Any] | None) -> None:
    """Warn when a resumed run trains on other images than the run it continues
    (:func:`data_identity` of each; ``None``: not known), naming the images added, removed and
    resized (a checkpoint without their ids: only that they differ). Not refused: a run that
    stopped on a bad image continues once it is fixed or removed."""
    if saved is None or current is None:
        return
    before, now = int(saved["num_images"]), int(current["num_images"])
    if (before, saved["digest"]) == (now, current["digest"]):
        return
    change = data_change(saved, current)
    if change is not None:
        others = f"{now} ({change.describe()})"
    else:
        others = f"{now} others (other image ids or sizes)" if before == now else str(now)
    logger.warning(
        "resuming a run trained on %s with %s: it does not continue as the interrupted run "
        "would have (other batches from here on); its --train-json and --train-images do",
        counted(before, "image"),
        others,
    )
