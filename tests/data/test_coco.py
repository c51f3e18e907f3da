"""CocoDataset: targets (spec 1.4), seeded transforms, the data policy at construction, files
that fail to load later, reduced-scale decoding and the image cache."""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor

from sparsercnn.data import coco
from sparsercnn.data.coco import (
    CocoDataset,
    DatasetError,
    ImageChangedError,
    InvalidDataError,
    Transform,
)
from sparsercnn.data.loader import build_train_loader
from sparsercnn.data.policy import inspect_dataset
from sparsercnn.data.transforms import TrainTransform
from sparsercnn.structures import Batch
from tests.synthetic_coco import Box, WriteCoco, truncate

CATEGORIES = [{"id": 90, "name": "zebra"}, {"id": 3, "name": "car"}, {"id": 7, "name": "bus"}]


def box(
    ann_id: int, image_id: int, category_id: int, bbox: list[float], **extra: Any
) -> dict[str, Any]:
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": bbox, **extra}


@pytest.fixture
def dataset_files(write_coco: WriteCoco) -> tuple[Path, Path]:
    data = write_coco(
        image_ids=[5, 2, 9],
        file_names=["five.png", "two.png", "nine.png"],
        size=[(30, 40), (10, 20), (30, 40)],
        categories=CATEGORIES,
        boxes=[
            [Box(7, (1, 2, 10, 20)), Box(3, (0, 0, 4, 4)), Box(90, (5, 5, 2, 2), iscrowd=True)],
            [],
            [Box(90, (10, 10, 5, 5)), Box(3, (0, 0, 40, 30))],
        ],
    )
    return data.json_path, data.image_dir


def test_samples_follow_the_spec(dataset_files: tuple[Path, Path]) -> None:
    dataset = CocoDataset(*dataset_files)
    assert len(dataset) == 3
    assert dataset.image_ids == [5, 2, 9]
    assert dataset.category_map.category_ids == [3, 7, 90]
    # The crowd box of image 5 is not a target.
    assert [len(dataset[i].target) for i in range(3)] == [2, 0, 2]
    assert dataset.image_info(1) == {"id": 2, "file_name": "two.png", "height": 10, "width": 20}
    assert dataset.image_sizes == [(30, 40), (10, 20), (30, 40)]  # (h, w), as the JSON gives

    sample = dataset[0]
    assert sample.image_id == 5 and sample.file_name == "five.png"
    assert sample.original_size == (30, 40)
    assert sample.image.dtype == torch.uint8 and sample.image.shape == (3, 30, 40)
    with Image.open(dataset_files[1] / "five.png") as five:  # its own file, channels in order
        assert torch.equal(sample.image, torch.from_numpy(np.array(five)).permute(2, 0, 1))
    assert sample.target.boxes.dtype == torch.float32
    torch.testing.assert_close(sample.target.boxes, torch.tensor([[1.0, 2, 11, 22], [0, 0, 4, 4]]))
    assert sample.target.labels.tolist() == [1, 0]  # bus (id 7) -> 1, car (id 3) -> 0

    empty = dataset[1]  # images without boxes are kept
    assert empty.target.boxes.shape == (0, 4) and empty.target.labels.shape == (0,)
    assert empty.target.labels.dtype == torch.int64
    assert dataset[-1].image_id == 9
    with pytest.raises(IndexError):
        dataset[3]


class RandomCropLike:
    """A random dummy transform: shifts boxes by a random offset and drops a random box."""

    def __call__(
        self, image: Image.Image, boxes: Tensor, rng: random.Random
    ) -> tuple[Tensor, Tensor, Tensor]:
        shift = rng.uniform(0, 3)
        keep = torch.tensor([i for i in range(len(boxes)) if rng.random() < 0.7], dtype=torch.int64)
        array = np.array(image, dtype=np.uint8)
        array[0, 0, 1] = rng.randrange(256)
        return torch.from_numpy(array).permute(2, 0, 1), (boxes[keep] + shift), keep


def test_seeded_key_is_deterministic(dataset_files: tuple[Path, Path]) -> None:
    transform: Transform = RandomCropLike()
    dataset = CocoDataset(*dataset_files, transform=transform)
    samples = [dataset[0, seed] for seed in range(8)]
    for seed, first in enumerate(samples):
        again = dataset[0, seed]
        assert torch.equal(first.image, again.image)
        assert torch.equal(first.target.boxes, again.target.boxes)
        assert torch.equal(first.target.labels, again.target.labels)
    assert len({tuple(s.target.boxes.flatten().tolist()) for s in samples}) > 1

    random.seed(123)
    plain = dataset[0]
    random.seed(123)
    assert torch.equal(plain.target.boxes, dataset[0].target.boxes)


def test_labels_follow_kept_boxes_and_degenerate_boxes_are_dropped(
    dataset_files: tuple[Path, Path],
) -> None:
    def reverse_and_squash(
        image: Image.Image, boxes: Tensor, rng: random.Random
    ) -> tuple[Tensor, Tensor, Tensor]:
        keep = torch.arange(len(boxes) - 1, -1, -1)
        out = boxes[keep].clone()
        out[0, 2] = out[0, 0] + 1e-6  # width below the 1e-5 threshold
        return torch.zeros(3, 8, 8, dtype=torch.uint8), out, keep

    dataset = CocoDataset(*dataset_files, transform=reverse_and_squash)
    target = dataset[2].target  # image 9: [zebra box, car box] -> reversed, car squashed
    assert target.labels.tolist() == [2]
    torch.testing.assert_close(target.boxes, torch.tensor([[10.0, 10, 15, 15]]))


def test_transform_breaking_the_contract_raises(dataset_files: tuple[Path, Path]) -> None:
    def float_image(image: Image.Image, boxes: Tensor, rng: random.Random) -> Any:
        return torch.zeros(3, 4, 4), boxes, torch.arange(len(boxes))

    with pytest.raises(TypeError, match="uint8"):
        CocoDataset(*dataset_files, transform=float_image)[0]


def bad_dataset(write_coco: WriteCoco) -> tuple[Path, Path]:
    data = write_coco(
        file_names=["a.png", "b.png", "gone.png"],
        size=(30, 40),
        categories=CATEGORIES,
        objects_per_image=0,
    )
    coco = data.read_json()
    coco["annotations"] = [
        box(10, 1, 3, [1, 1, 5, 5]),
        box(11, 1, 42, [1, 1, 5, 5]),  # unknown category
        box(12, 2, 3, [1, 1, -5, 5]),  # negative width
        box(13, 2, 7, [30, 20, 11, 5]),  # x2 = 41: clipped to 40
        box(14, 3, 7, [1, 1, 5, 5]),  # image file missing
        box(15, 77, 7, [1, 1, 5, 5]),  # unknown image
    ]
    data.write_json(coco)
    (data.image_dir / "gone.png").unlink()
    return data.json_path, data.image_dir


def test_invalid_data_raises_naming_every_bad_file(write_coco: WriteCoco) -> None:
    with pytest.raises(InvalidDataError) as info:
        CocoDataset(*bad_dataset(write_coco))
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    for text in ("annotation 11", "annotation 12", "image id 77", "gone.png"):
        assert text in message
    # a.png and b.png are readable: only their annotations are wrong, and name them.
    assert "bad files (1): gone.png;" in message
    assert "sparsercnn validate" in message and "--skip-invalid" in message


def test_skip_invalid_drops_exactly_the_bad_items(
    write_coco: WriteCoco, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="sparsercnn.data"):
        dataset = CocoDataset(*bad_dataset(write_coco), skip_invalid=True)
    assert dataset.image_ids == [1, 2]
    assert [len(dataset[i].target) for i in range(2)] == [1, 1]
    torch.testing.assert_close(dataset[1].target.boxes, torch.tensor([[30.0, 20, 40, 25]]))
    assert dataset[1].target.labels.tolist() == [1]
    (summary,) = [r.message for r in caplog.records if "--skip-invalid dropped" in r.message]
    assert "dropped 1 of 3 images and 4 of 6 annotations" in summary
    assert "1 image_file_missing (gone.png)" in summary and "annotation 11" in summary
    assert "box_clipped" in caplog.text and "annotation 13" in caplog.text

    # Evaluation scores the file's boxes: training clips box 13, the ground truth keeps it.
    gt = dataset.gt_dict()
    assert [im["id"] for im in gt["images"]] == [1, 2]
    assert [ann["id"] for ann in gt["annotations"]] == [10, 13]
    assert gt["annotations"][1]["bbox"] == [30, 20, 11, 5]
    assert gt["annotations"][1]["area"] == 55.0 and gt["annotations"][1]["iscrowd"] == 0
    assert [c["id"] for c in gt["categories"]] == [90, 3, 7]


def test_truncated_image_is_an_error_when_the_dataset_is_built(
    dataset_files: tuple[Path, Path],
) -> None:
    json_path, image_dir = dataset_files
    truncate(image_dir / "two.png")
    with pytest.raises(InvalidDataError, match=r"two\.png"):
        CocoDataset(json_path, image_dir)
    # Existence alone does not see it: the file then fails on first load, named.
    dataset = CocoDataset(json_path, image_dir, image_check="exists")
    with pytest.raises(ImageChangedError, match=r"two\.png.*--skip-invalid"):
        dataset[1]


def test_sizes_that_disagree_with_the_json_are_warned_once_not_per_image(
    write_coco: WriteCoco, caplog: pytest.LogCaptureFixture
) -> None:
    """Without decoding, the check cannot know the files' sizes: loading them says so once, not
    once per image."""
    data = write_coco(num_images=3, size=(48, 64))
    for path in data.image_paths:  # the files were resized after annotation
        Image.new("RGB", (96, 72)).save(path)
    dataset = CocoDataset(data.json_path, data.image_dir, image_check="exists")
    with caplog.at_level(logging.DEBUG, logger="sparsercnn.data.coco"):
        for index in range(len(dataset)):
            dataset[index]
    lines = [r for r in caplog.records if "after EXIF orientation but" in r.getMessage()]
    assert [r.levelno for r in lines] == [logging.WARNING, logging.DEBUG, logging.DEBUG]


def test_no_usable_box_is_an_error(write_coco: WriteCoco) -> None:
    data = write_coco(num_images=2, objects_per_image=0)
    with pytest.raises(DatasetError, match="no usable box") as info:
        CocoDataset(data.json_path, data.image_dir, skip_invalid=True)
    assert not isinstance(info.value, InvalidDataError)  # --skip-invalid cannot help


def test_images_without_boxes_give_one_info_line(
    dataset_files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="sparsercnn.data"):
        CocoDataset(*dataset_files)
    lines = [r for r in caplog.records if "no boxes" in r.message]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert "1 of the 3 images has no boxes" in lines[0].message


def test_gt_dict_keeps_zero_size_boxes_training_drops(write_coco: WriteCoco) -> None:
    """A zero-size box is no training target, but it is ground truth any COCO tool scores."""
    data = write_coco(num_images=1, size=(30, 40), categories=CATEGORIES, objects_per_image=0)
    coco = data.read_json()
    coco["annotations"] = [box(1, 1, 3, [1, 1, 5, 5]), box(2, 1, 3, [10, 10, 0, 5])]
    data.write_json(coco)
    dataset = CocoDataset(data.json_path, data.image_dir)
    assert len(dataset[0].target) == 1
    assert [ann["bbox"] for ann in dataset.gt_dict()["annotations"]] == [
        [1, 1, 5, 5],
        [10, 10, 0, 5],
    ]


def test_zero_size_boxes_are_not_counted_as_dropped(write_coco: WriteCoco) -> None:
    """Evaluation scores a zero-size box: it is not among what ``skip_invalid`` left out (the
    counts ``eval`` prints and writes as ``dropped_invalid``)."""
    data = write_coco(num_images=2, size=(30, 40), categories=CATEGORIES, objects_per_image=0)
    coco = data.read_json()
    coco["annotations"] = [box(1, 1, 3, [1, 1, 5, 5]), box(2, 1, 3, [10, 10, 0, 5])]
    data.write_json(coco)
    dataset = CocoDataset(data.json_path, data.image_dir)
    assert (dataset.num_dropped_images, dataset.num_dropped_annotations) == (0, 0)
    coco["annotations"] += [box(3, 2, 3, [1, 1, -5, 5]), box(4, 2, 3, [2, 2, 0, 0])]
    data.write_json(coco)
    dataset = CocoDataset(data.json_path, data.image_dir, skip_invalid=True)
    assert (dataset.num_dropped_images, dataset.num_dropped_annotations) == (0, 1)
    assert [ann["id"] for ann in dataset.gt_dict()["annotations"]] == [1, 2, 4]


def test_a_json_of_the_wrong_size_trains_and_evaluates_the_file_size(
    write_coco: WriteCoco,
) -> None:
    """The JSON says 40x30, the file is 80x60: the box past the JSON's size but inside the
    file is trained and evaluated alike, and the dataset knows the file's size up front."""
    data = write_coco(num_images=1, size=(30, 40), boxes=[[Box(1, (50, 35, 10, 10))]])
    Image.new("RGB", (80, 60)).save(data.image_paths[0])
    dataset = CocoDataset(data.json_path, data.image_dir)
    assert dataset.image_sizes == [(60, 80)]
    assert dataset[0].target.boxes.tolist() == [[50.0, 35.0, 60.0, 45.0]]
    gt = dataset.gt_dict()
    assert [ann["id"] for ann in gt["annotations"]] == [1]
    assert (gt["images"][0]["width"], gt["images"][0]["height"]) == (80, 60)


def test_gt_dict_leaves_out_what_skip_invalid_drops(write_coco: WriteCoco) -> None:
    """Entries that are not objects (raised AttributeError), and the repeat of an annotation id
    whose first entry is on a dropped image (was scored, though training left it out)."""
    data = write_coco(num_images=2, size=(30, 40), categories=CATEGORIES, objects_per_image=0)
    coco = data.read_json()
    coco["annotations"] = [5, None, box(1, 1, 3, [1, 1, 5, 5]), box(1, 2, 3, [2, 2, 5, 5])]
    coco["annotations"] += [box(2, 2, 3, [3, 3, 5, 5])]
    data.write_json(coco)
    data.image_paths[0].unlink()
    dataset = CocoDataset(data.json_path, data.image_dir, skip_invalid=True)
    assert dataset.num_dropped_annotations == 4
    assert len(dataset[0].target) == 1
    assert [ann["id"] for ann in dataset.gt_dict()["annotations"]] == [2]


def test_gt_dict_reads_no_file(write_coco: WriteCoco) -> None:
    """Every ``gt_dict()`` parsed and checked the JSON again (at every evaluation of a training
    run); the dataset keeps what evaluation scores from its one parse: the boxes as the file
    gives them (the clipped one unclipped), its areas and crowd flags, in file order."""
    data = write_coco(num_images=1, size=(30, 40), categories=CATEGORIES, objects_per_image=0)
    coco = data.read_json()
    coco["annotations"] = [
        box(7, 1, 3, [35, 1, 6, 5]),  # a little outside the 40 px wide image: clipped
        {**box(2, 1, 3, [1, 1, 5, 5]), "area": 20.5, "iscrowd": 1},
        {**box(4, 1, 3, [10, 10, 0, 5]), "segmentation": [[10, 10, 10, 15]]},
    ]
    data.write_json(coco)
    dataset = CocoDataset(data.json_path, data.image_dir)
    data.json_path.unlink()
    gt = pickle.loads(pickle.dumps(dataset)).gt_dict()  # as a data-loading worker has it
    assert gt["images"] == [
        {"id": 1, "file_name": data.image_paths[0].name, "height": 30, "width": 40}
    ]
    assert gt["categories"] == coco["categories"]
    assert [(a["id"], a["bbox"], a["area"], a["iscrowd"]) for a in gt["annotations"]] == [
        (7, [35, 1, 6, 5], 30.0, 0),
        (2, [1, 1, 5, 5], 20.5, 1),
        (4, [10, 10, 0, 5], 0.0, 0),
    ]
    assert {a["category_id"] for a in gt["annotations"]} == {3}


def test_a_training_set_keeps_no_ground_truth_and_says_so(
    dataset_files: tuple[Path, Path],
) -> None:
    """Every dataset kept the evaluation arrays, a training set's too (55 MB for COCO
    train2017, in every process), though it is never evaluated."""
    json_path, image_dir = dataset_files
    training = CocoDataset(json_path, image_dir, keep_ground_truth=False)
    assert not [name for name in vars(training) if name.startswith("_gt_")]
    assert training[0].target.boxes.shape == (2, 4)  # the training targets are kept
    with pytest.raises(RuntimeError, match=f"{re.escape(str(json_path))}.*keep_ground_truth=True"):
        training.gt_dict()
    assert CocoDataset(json_path, image_dir).gt_dict()["annotations"]


def test_gt_dict_keeps_crowd_regions(dataset_files: tuple[Path, Path]) -> None:
    gt = CocoDataset(*dataset_files).gt_dict()
    assert len(gt["images"]) == 3 and len(gt["annotations"]) == 5
    crowd = next(ann for ann in gt["annotations"] if ann["id"] == 3)
    assert crowd["iscrowd"] == 1


def test_file_unreadable_after_construction_stops_with_the_file_named(
    dataset_files: tuple[Path, Path],
) -> None:
    json_path, image_dir = dataset_files
    dataset = CocoDataset(json_path, image_dir)
    (image_dir / "two.png").write_text("changed since")
    with pytest.raises(ImageChangedError, match=r"image 2 \('two\.png'\).*changed on disk"):
        dataset[1]
    assert isinstance(ImageChangedError("x"), ValueError)  # the CLI's one-line errors


def test_skip_unreadable_replaces_and_records_the_file(
    dataset_files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    json_path, image_dir = dataset_files
    dataset = CocoDataset(json_path, image_dir, skip_unreadable=True)
    assert dataset[1, 0].replaced_files == ()
    (image_dir / "two.png").unlink()
    with caplog.at_level(logging.WARNING, logger="sparsercnn.data.coco"):
        sample = dataset[1, 0]
    assert sample.image_id == 9  # the next image, deterministically
    assert sample.replaced_files == ("two.png",)
    assert "two.png" in caplog.text and "replacing image 2" in caplog.text
    batch = Batch.collate([sample, dataset[0, 0]])
    assert batch.replaced_files == ["two.png"]

    for name in ("five.png", "nine.png"):
        (image_dir / name).unlink()
    with pytest.raises(ImageChangedError, match="could not be loaded"):
        dataset[0]


def test_dataset_pickles_for_worker_processes(dataset_files: tuple[Path, Path]) -> None:
    dataset = CocoDataset(*dataset_files)
    restored = pickle.loads(pickle.dumps(dataset))
    assert restored.image_ids == dataset.image_ids
    assert torch.equal(restored[0].target.boxes, dataset[0].target.boxes)


def test_zero_size_box_is_dropped_without_failing(
    write_coco: WriteCoco, caplog: pytest.LogCaptureFixture
) -> None:
    # COCO train2017 has two annotations of height 0; the reference drops them (spec 1.4).
    boxes = [[Box(3, (29.6, 8.3, 1.03, 0.0)), Box(3, (1, 1, 5, 5))]]  # annotations 1 and 2
    data = write_coco(size=(30, 40), boxes=boxes)
    with caplog.at_level(logging.WARNING, logger="sparsercnn.data.coco"):
        dataset = CocoDataset(data.json_path, data.image_dir)
    assert len(dataset[0].target) == 1
    assert "empty_box" in caplog.text and re.search(r"annotation 1\b", caplog.text)
    assert not re.search(r"annotation 2\b", caplog.text)


def test_images_with_more_boxes_than_proposals_are_warned_about(
    write_coco: WriteCoco, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_coco(num_images=2, objects_per_image=3)
    with caplog.at_level(logging.WARNING, logger="sparsercnn.data.policy"):
        CocoDataset(data.json_path, data.image_dir, num_proposals=2)
    assert "has 3 boxes, more than the 2 proposals" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sparsercnn.data.policy"):
        CocoDataset(data.json_path, data.image_dir, num_proposals=3)
    assert "proposals" not in caplog.text


def _policy_log(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name.endswith(".policy")]


def test_a_dataset_given_its_files_inspection_reads_them_no_more_and_keeps_the_same(
    write_coco: WriteCoco, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``train`` checks its sets before its budget starts; the datasets then parsed and checked
    every JSON again. Given that check's finding, a dataset applies the same policy to it: the
    same entries, refusals and log lines (``too_many_boxes`` for its own N), no file read."""
    json_path, image_dir = bad_dataset(write_coco)
    options: dict[str, Any] = {"skip_invalid": True, "num_proposals": 0}
    with caplog.at_level(logging.INFO, logger="sparsercnn.data.policy"):
        built = CocoDataset(json_path, image_dir, **options)
    logged = _policy_log(caplog)
    assert any("more than the 0 proposals" in message for _, message in logged)
    inspection = inspect_dataset(json_path, image_dir, num_proposals=5)
    monkeypatch.setattr(coco, "inspect_dataset", None)  # not called again
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sparsercnn.data.policy"):
        given = CocoDataset(json_path, image_dir, inspection=inspection, **options)
    assert _policy_log(caplog) == logged
    assert (given.image_ids, given.image_sizes) == (built.image_ids, built.image_sizes)
    for index in range(len(built)):
        torch.testing.assert_close(given[index, 0].target.boxes, built[index, 0].target.boxes)
        assert given[index, 0].target.labels.tolist() == built[index, 0].target.labels.tolist()
    assert given.gt_dict() == built.gt_dict()
    with pytest.raises(InvalidDataError, match="annotation 11"):
        CocoDataset(json_path, image_dir, inspection=inspection)


@pytest.mark.parametrize("other", ["json", "images", "image_check", "clip_tolerance"])
def test_an_inspection_of_other_files_or_settings_is_refused(
    dataset_files: tuple[Path, Path], write_coco: WriteCoco, other: str
) -> None:
    json_path, image_dir = dataset_files
    inspection = inspect_dataset(json_path, image_dir)
    given: dict[str, Any] = {"json_path": json_path, "image_dir": image_dir}
    if other == "json":
        given["json_path"] = write_coco(num_images=1).json_path
    elif other == "images":
        given["image_dir"] = json_path.parent / "elsewhere"
    elif other == "image_check":
        given["image_check"] = "exists"
    else:
        given["clip_tolerance"] = 0.1
    with pytest.raises(ValueError, match="give the inspection of these files") as info:
        CocoDataset(**given, inspection=inspection)
    assert str(json_path) in str(info.value)


@pytest.fixture
def photo_files(write_coco: WriteCoco) -> tuple[Path, Path]:
    """Two 400x600 JPEGs, a box on each."""
    data = write_coco(
        size=[(400, 600), (400, 600)],
        categories=CATEGORIES[:1],
        boxes=[[Box(90, (40, 80, 200, 120))], [Box(90, (300, 20, 100, 300))]],
        file_format="jpg",
        seed=3,
    )
    return data.json_path, data.image_dir


def test_decode_size_reduces_large_jpegs_with_their_boxes(photo_files: tuple[Path, Path]) -> None:
    dataset = CocoDataset(*photo_files, decode_size=lambda h, w: (h // 4, w // 4))

    sample = dataset[0]

    assert sample.image.shape == (3, 100, 150)
    assert sample.original_size == (400, 600)
    torch.testing.assert_close(sample.target.boxes, torch.tensor([[10.0, 20.0, 60.0, 50.0]]))


def test_training_on_reduced_decodes_sees_the_same_scene(photo_files: tuple[Path, Path]) -> None:
    """The train transform's own source size: the same boxes and, up to resampling, pixels as
    from the full decode, one pixel of output size at most apart."""
    transform = TrainTransform(min_sizes=(96,), max_size=160, flip_prob=0.5)
    full = CocoDataset(*photo_files, transform=transform)
    reduced = CocoDataset(*photo_files, transform=transform, decode_size=transform.source_size)

    for index, seed in [(0, 1), (0, 2), (1, 3), (1, 4)]:
        a, b = full[index, seed], reduced[index, seed]
        assert abs(a.image.shape[1] - b.image.shape[1]) <= 1
        assert abs(a.image.shape[2] - b.image.shape[2]) <= 1
        torch.testing.assert_close(a.target.boxes, b.target.boxes, atol=1.0, rtol=0)
        height = min(a.image.shape[1], b.image.shape[1])
        width = min(a.image.shape[2], b.image.shape[2])
        difference = a.image[:, :height, :width].float() - b.image[:, :height, :width].float()
        assert difference.abs().mean() < 8


def test_grouping_sizes_are_the_samples_orientations(photo_files: tuple[Path, Path]) -> None:
    """With random crops each sample's own output size (its orientation may differ from its
    image's); without, the images' sizes, whose orientation the samples keep."""
    indices, seeds = np.array([0, 1, 0, 1, 0, 1, 0, 1]), np.arange(8) + 10
    cropping = TrainTransform(
        min_sizes=(96,), max_size=160, crop_pre_sizes=(200,), crop_size=(60, 180), crop_prob=1.0
    )
    dataset = CocoDataset(*photo_files, transform=cropping)
    sizes = dataset.grouping_sizes(indices, seeds)
    actual = [tuple(dataset[i, s].image.shape[1:]) for i, s in zip(indices, seeds, strict=True)]
    assert [tuple(size) for size in sizes.tolist()] == actual
    assert len({h < w for h, w in actual}) == 2  # crops of landscape photos, both orientations

    resizing = CocoDataset(*photo_files, transform=TrainTransform(min_sizes=(96,), max_size=160))
    assert resizing.grouping_sizes(indices, seeds).tolist() == [[400, 600]] * 8


def test_grouped_batches_hold_one_orientation_after_random_crops(
    photo_files: tuple[Path, Path],
) -> None:
    cropping = TrainTransform(
        min_sizes=(96,), max_size=160, crop_pre_sizes=(200,), crop_size=(60, 180), crop_prob=1.0
    )
    dataset = CocoDataset(*photo_files, transform=cropping)
    loader = build_train_loader(dataset, 3, 0, seed=4, aspect_ratio_grouping=True)
    orientations = [
        {image.shape[2] > image.shape[1] for image in batch.images}
        for batch in itertools.islice(loader, 8)
    ]
    assert all(len(orientation) == 1 for orientation in orientations)
    assert {orientation.pop() for orientation in orientations} == {True, False}


def test_image_cache_decodes_each_image_once_within_its_budget(
    photo_files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    json_path, image_dir = photo_files
    transform = TrainTransform(min_sizes=(96,), max_size=160)
    one_image = 100 * 150 * 4  # each JPEG decodes at 1/4; Pillow's RGB takes 4 bytes a pixel
    dataset = CocoDataset(
        json_path,
        image_dir,
        transform=transform,
        decode_size=transform.source_size,
        cache_bytes=one_image,
    )
    first = dataset[0, 5]
    with caplog.at_level(logging.INFO, logger="sparsercnn.data"):
        dataset[1, 5]
        dataset[1, 6]
    assert len(dataset.image_cache) == 1 and dataset.image_cache.used_bytes == one_image
    full = [r.message for r in caplog.records if "cache is full" in r.message]
    assert full == [
        "the image cache is full at 1 images (0 MB, train.image_cache_mb): the others are "
        "decoded each time they are used"
    ]
    again = dataset[0, 5]  # from memory, the same sample
    assert torch.equal(again.image, first.image)
    torch.testing.assert_close(again.target.boxes, first.target.boxes)
    for path in image_dir.iterdir():
        path.write_text("changed since")
    # A changed file is decoded again, held in memory or not: it fails the same way.
    with pytest.raises(ImageChangedError, match=r"000\.jpg"):
        dataset[0, 5]
    with pytest.raises(ImageChangedError, match=r"001\.jpg"):
        dataset[1, 5]


def test_image_cache_never_serves_a_changed_file_or_another_resolution(
    photo_files: tuple[Path, Path],
) -> None:
    """The cache is keyed by the file's version and the decoded resolution, not the index
    alone: a file replaced on disk, or a new ``decode_size``, is not served stale."""
    json_path, image_dir = photo_files
    dataset = CocoDataset(
        json_path, image_dir, decode_size=lambda h, w: (h // 4, w // 4), cache_bytes=2**24
    )
    before = dataset[0].image
    assert before.shape == (3, 100, 150) and len(dataset.image_cache) == 1
    dataset.decode_size = lambda h, w: (h // 2, w // 2)
    assert dataset[0].image.shape == (3, 200, 300)

    path = image_dir / "000.jpg"
    stat = path.stat()
    Image.new("RGB", (600, 400), (250, 250, 250)).save(path, quality=95)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a later mtime for sure
    after = dataset[0].image
    assert after.shape == (3, 200, 300) and after.float().mean() > 240
    assert len(dataset.image_cache) == 1  # the new version replaced the old one
    assert dataset.image_cache.used_bytes == 200 * 300 * 4


def test_an_image_entry_without_a_size_is_trained_and_evaluated_at_its_file_s(
    write_coco: WriteCoco,
) -> None:
    """The file's size (80x60) stands in for the JSON's missing one everywhere the dataset
    gives a size: the sizes, evaluation's image entries, the sampler's grouping; without
    decoding the dataset is refused."""
    data = write_coco(num_images=1, size=(60, 80), boxes=[[Box(1, (50, 35, 10, 10))]])
    coco = data.read_json()
    coco["images"][0].update(width=None, height=0)
    data.write_json(coco)
    dataset = CocoDataset(data.json_path, data.image_dir)
    assert dataset.image_sizes == [(60, 80)]
    assert dataset[0].target.boxes.tolist() == [[50.0, 35.0, 60.0, 45.0]]
    assert dataset.gt_dict()["images"] == [
        {"id": 1, "file_name": data.file_names[0], "height": 60, "width": 80}
    ]
    assert dataset.grouping_sizes(np.array([0]), np.array([0])).tolist() == [[60, 80]]
    with pytest.raises(InvalidDataError, match=r"'width' is null, 'height' is 0: .* drop --no"):
        CocoDataset(data.json_path, data.image_dir, image_check="exists")
