"""Images that a training set and its validation set share: validation metrics on images the
model trained on overstate how well it does on new ones, so training warns about them
(:func:`split_overlap_warning`); where the two JSON files give a shared file different sizes,
they cannot both describe it, and the warning says an image folder is likely the wrong one.

Two entries are the same image when they name the same file (the image folders' links and
``..`` resolved), whatever their ids or folders; copies of a file under another name, or links
to it, are not found.
"""

from __future__ import annotations

import os

from sparsercnn.data.coco import CocoDataset
from sparsercnn.text import counted, some_of, verb


def _image_files(dataset: CocoDataset) -> list[tuple[str, str, tuple[int, int]]]:
    """``(resolved path, file_name, (width, height))`` of every image of ``dataset``, in its
    order, the size as its JSON gives it (:attr:`~CocoDataset.json_sizes` where the file's
    differs)."""
    # One realpath per folder, not per file: a COCO set has 100k+ images.
    root = os.path.realpath(dataset.image_dir)
    files = []
    for index in range(len(dataset)):
        info = dataset.image_info(index)
        size = dataset.json_sizes.get(info["id"], (info["width"], info["height"]))
        files.append(
            (os.path.normpath(os.path.join(root, info["file_name"])), info["file_name"], size)
        )
    return files


def _shared_files(
    train: CocoDataset, val: CocoDataset
) -> list[tuple[str, tuple[int, int], tuple[int, int]]]:
    """``(file_name, size in val's JSON, size in train's JSON)`` of every image of ``val`` that
    is also an image of ``train``, in ``val``'s order; sizes ``(width, height)``."""
    train_sizes = {path: size for path, _, size in _image_files(train)}
    return [
        (name, size, train_sizes[path])
        for path, name, size in _image_files(val)
        if path in train_sizes
    ]


def shared_images(train: CocoDataset, val: CocoDataset) -> list[str]:
    """The ``file_name`` of every image of ``val`` that is also an image of ``train``, in
    ``val``'s order."""
    return [name for name, _, _ in _shared_files(train, val)]


def split_overlap_warning(train: CocoDataset, val: CocoDataset) -> str | None:
    """The warning to log when ``val`` shares images with ``train``, else ``None``."""
    shared = _shared_files(train, val)
    if not shared:
        return None
    overlap = (
        f"{len(shared)} of the {counted(len(val), 'image')} of the validation set "
        f"{val.coco_json} {verb(len(shared), 'is')} also in the training set {train.coco_json}"
    )
    resized = [(name, ours, theirs) for name, ours, theirs in shared if ours != theirs]
    if resized:
        name, (width, height), (train_width, train_height) = resized[0]
        which = some_of(len(resized), len(shared), "shared file")
        return (
            f"{overlap}, but the two JSON files give {which} "
            f"different sizes (e.g. {name!r}: {width}x{height} in {val.coco_json}, "
            f"{train_width}x{train_height} in {train.coco_json}): one file cannot be two "
            "pictures, so an image folder is likely the wrong one (--val-images given the "
            "training images?); give each JSON the folder of its own images"
        )
    return (
        f"{overlap} (e.g. {shared[0][0]!r}): the validation metrics overstate how well the "
        "model does on new images; give the two sets no image in common"
    )
