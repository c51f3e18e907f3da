"""Images that a training set and its validation set share: validation metrics on images the
model trained on overstate how well it does on new ones, so training warns about them
(:func:`split_overlap_warning`).

Two entries are the same image when they name the same file (the image folders' links and
``..`` resolved), whatever their ids or folders; copies of a file under another name, or links
to it, are not found.
"""

from __future__ import annotations

import os

from sparsercnn.data.coco import CocoDataset
from sparsercnn.text import counted, verb


def _image_files(dataset: CocoDataset) -> list[tuple[str, str]]:
    """``(resolved path, file_name)`` of every image of ``dataset``, in its order."""
    root = os.path.realpath(dataset.image_dir)
    names = [dataset.image_info(index)["file_name"] for index in range(len(dataset))]
    # One realpath per folder, not per file: a COCO set has 100k+ images.
    return [(os.path.normpath(os.path.join(root, name)), name) for name in names]


def shared_images(train: CocoDataset, val: CocoDataset) -> list[str]:
    """The ``file_name`` of every image of ``val`` that is also an image of ``train``, in
    ``val``'s order."""
    train_files = {path for path, _ in _image_files(train)}
    return [name for path, name in _image_files(val) if path in train_files]


def split_overlap_warning(train: CocoDataset, val: CocoDataset) -> str | None:
    """The warning to log when ``val`` shares images with ``train``, else ``None``."""
    shared = shared_images(train, val)
    if not shared:
        return None
    return (
        f"{len(shared)} of the {counted(len(val), 'image')} of the validation set "
        f"{val.coco_json} {verb(len(shared), 'is')} also in the training set "
        f"{train.coco_json} (e.g. {shared[0]!r}): the validation metrics overstate how well the "
        "model does on new images; give the two sets no image in common"
    )
