"""Images a validation set shares with its training set, found by file, whatever the ids."""

from __future__ import annotations

import json

from sparsercnn.data.coco import CocoDataset
from sparsercnn.data.split_overlap import shared_images, split_overlap_warning
from tests.synthetic_coco import WriteCoco


def test_images_of_both_sets_are_found_by_their_file(write_coco: WriteCoco) -> None:
    data = write_coco(num_images=4, size=(24, 32))
    train = CocoDataset(data.json_path, data.image_dir)
    # The validation file: two of the same files, other ids, the folder reached through "..".
    coco = data.read_json()
    images = [{**entry, "id": entry["id"] + 100} for entry in coco["images"][1:3]]
    annotations = [
        {**ann, "id": ann["id"] + 100, "image_id": ann["image_id"] + 100}
        for ann in coco["annotations"]
        if ann["image_id"] in (2, 3)
    ]
    data.write_json({**coco, "images": images, "annotations": annotations})
    val = CocoDataset(data.json_path, data.image_dir / ".." / data.image_dir.name)
    assert shared_images(train, val) == data.file_names[1:3]
    warning = split_overlap_warning(train, val)
    assert warning is not None
    assert warning.startswith(f"2 of the 2 images of the validation set {data.json_path} are")
    assert f"(e.g. {data.file_names[1]!r})" in warning and "no image in common" in warning


def test_disjoint_sets_give_no_warning(write_coco: WriteCoco) -> None:
    first, other = write_coco(num_images=2), write_coco(num_images=2)
    train = CocoDataset(first.json_path, first.image_dir)
    val = CocoDataset(other.json_path, other.image_dir)  # the same file names, another folder
    assert shared_images(train, val) == [] and split_overlap_warning(train, val) is None


def test_a_shared_file_of_two_sizes_is_called_a_folder_mix_up(write_coco: WriteCoco) -> None:
    """``--val-images train/`` with ``--skip-invalid``: the validation JSON gives the training
    files other sizes, so they are not its pictures. Was: "the validation metrics overstate"."""
    data = write_coco(num_images=3, size=(24, 32))
    train = CocoDataset(data.json_path, data.image_dir)
    coco = data.read_json()
    coco["images"] = [{**image, "width": 40, "height": 30} for image in coco["images"]]
    val_json = data.json_path.with_name("val.json")
    val_json.write_text(json.dumps(coco))
    val = CocoDataset(val_json, data.image_dir, skip_invalid=True)  # wrong_image_folder else
    assert val.image_sizes == train.image_sizes  # the files' sizes, checked against
    warning = split_overlap_warning(train, val)
    assert warning == (
        f"3 of the 3 images of the validation set {val_json} are also in the training set "
        f"{data.json_path}, but the two JSON files give all 3 shared files different sizes "
        f"(e.g. {data.file_names[0]!r}: 40x30 in {val_json}, 32x24 in {data.json_path}): one "
        "file cannot be two pictures, so an image folder is likely the wrong one (--val-images "
        "given the training images?); give each JSON the folder of its own images"
    )
