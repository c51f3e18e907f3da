"""Tests for the synthetic shapes data set generator."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import math
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sparsercnn.data import demo_dataset
from sparsercnn.data.demo_dataset import (
    DEMO_CLASSES,
    MARKER_NAME,
    DemoDatasetPaths,
    _num_objects,
    generate_demo_dataset,
    render_scene,
    shape_mask,
)

SMALL: dict[str, Any] = {"num_train": 24, "num_val": 8, "seed": 3, "image_size": (128, 176)}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoDatasetPaths:
    return generate_demo_dataset(tmp_path_factory.mktemp("demo") / "shapes", **SMALL)


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("split", ["train", "val"])
def test_coco_structure_and_boxes_inside_images(demo: DemoDatasetPaths, split: str) -> None:
    coco = _load(demo.train_json if split == "train" else demo.val_json)
    folder = demo.train_images if split == "train" else demo.val_images
    assert len(coco["images"]) == SMALL[f"num_{split}"]
    assert [c["name"] for c in coco["categories"]] == list(DEMO_CLASSES)
    assert [c["id"] for c in coco["categories"]] == list(range(1, len(DEMO_CLASSES) + 1))
    images = {image["id"]: image for image in coco["images"]}
    assert len(images) == len(coco["images"])
    for image in coco["images"]:
        with Image.open(folder / image["file_name"]) as decoded:
            assert decoded.size == (image["width"], image["height"])
            assert decoded.mode == "RGB"
        assert 128 <= image["width"] <= 176 and 128 <= image["height"] <= 176
    assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"])
    for ann in coco["annotations"]:
        image = images[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        assert ann["iscrowd"] == 0 and 1 <= ann["category_id"] <= len(DEMO_CLASSES)
        assert x >= 0 and y >= 0 and w > 0 and h > 0
        assert x + w <= image["width"] and y + h <= image["height"]
        assert 0 < ann["area"] <= w * h
    annotated = {ann["image_id"] for ann in coco["annotations"]}
    assert 1 <= len(images) - len(annotated) <= max(1, math.ceil(0.1 * len(images)))


def test_every_class_appears_with_small_objects_and_crowds(demo: DemoDatasetPaths) -> None:
    annotations = _load(demo.train_json)["annotations"]
    counts = Counter(ann["category_id"] for ann in annotations)
    assert set(counts) == set(range(1, len(DEMO_CLASSES) + 1))
    assert min(max(a["bbox"][2], a["bbox"][3]) for a in annotations) <= 16
    per_image = Counter(ann["image_id"] for ann in annotations)
    assert max(per_image.values()) >= 9


def test_generation_is_deterministic(demo: DemoDatasetPaths, tmp_path: Path) -> None:
    again = generate_demo_dataset(tmp_path / "again", **SMALL)
    assert _load(again.train_json) == _load(demo.train_json)
    assert _load(again.val_json) == _load(demo.val_json)
    for name in ("000000.jpg", "000005.jpg"):
        assert _digest(again.train_images / name) == _digest(demo.train_images / name)
    other = generate_demo_dataset(tmp_path / "other", **{**SMALL, "seed": 4, "num_val": 2})
    assert _digest(other.train_images / "000000.jpg") != _digest(demo.train_images / "000000.jpg")


def test_second_call_reuses_and_new_parameters_regenerate(tmp_path: Path) -> None:
    root = tmp_path / "shapes"
    params = {**SMALL, "num_train": 3, "num_val": 2}
    first = generate_demo_dataset(root, **params)
    image = first.train_images / "000000.jpg"
    stamp = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in (first.train_json, image)]
    assert generate_demo_dataset(root, **params) == first
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in (first.train_json, image)] == stamp
    generate_demo_dataset(root, **{**params, "num_val": 4})
    assert len(_load(first.val_json)["images"]) == 4
    assert json.loads((root / MARKER_NAME).read_text())["num_val"] == 4
    assert not [p for p in tmp_path.iterdir() if p.name != "shapes"]  # no temporary folder left


@pytest.mark.parametrize(
    "stop", [KeyboardInterrupt(), OSError(errno.ENOSPC, "No space left on device")]
)
def test_a_stopped_generation_leaves_nothing_and_the_next_one_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: BaseException
) -> None:
    """Ctrl-C or a full disk during the images: no folder (a half-written one would look like
    data), no temporary folder, and the next call writes the whole data set."""
    save = demo_dataset._save_image
    saved: list[int] = []

    def failing(image: np.ndarray, folder: Path, index: int, mode: str) -> str:
        saved.append(index)
        if len(saved) == 3:
            raise stop
        return save(image, folder, index, mode)

    monkeypatch.setattr(demo_dataset, "_save_image", failing)
    params = {**SMALL, "num_train": 4, "num_val": 1}
    with pytest.raises(type(stop)):
        generate_demo_dataset(tmp_path / "shapes", **params)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(demo_dataset, "_save_image", save)
    data = generate_demo_dataset(tmp_path / "shapes", **params)
    assert len(_load(data.train_json)["images"]) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["shapes"]


def test_a_killed_generations_folder_is_removed_by_the_next_and_nothing_else(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGKILL during the images leaves the temporary folder (nothing can remove it then): the
    next call removes it, says so in one line, and leaves a live generation's folder and the
    user's look-alikes alone."""
    root = tmp_path / "shapes"
    killed = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from sparsercnn.data import demo_dataset

        def die(*args):
            os.kill(os.getpid(), signal.SIGKILL)

        demo_dataset._save_image = die
        demo_dataset.generate_demo_dataset(Path({str(root)!r}), num_train=2, num_val=1)
        """
    )
    assert subprocess.run([sys.executable, "-c", killed], check=False).returncode == -9
    (stale,) = tmp_path.glob(".shapes.tmp-*")
    assert (stale / "train").is_dir()
    mine = [tmp_path / ".shapes.tmp-notes", tmp_path / ".shapes.tmp-12345678", tmp_path / "x"]
    for path in mine:
        path.mkdir()
    with demo_dataset._generation_folder(root) as live, caplog.at_level(logging.INFO):
        generate_demo_dataset(root, num_train=2, num_val=1)
        assert live.is_dir()  # locked by this process: in use
    assert not stale.exists() and all(path.is_dir() for path in mine)
    (line,) = [r.getMessage() for r in caplog.records if "interrupted" in r.getMessage()]
    assert line.startswith("removed 1 temporary folder ") and stale.name in line
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["shapes", *(p.name for p in mine)])


def test_refuses_to_replace_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a demo data set"):
        generate_demo_dataset(tmp_path, num_train=1, num_val=1)
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    # A file there was "[Errno 20] Not a directory" (`demo --output-dir OUT` with a file OUT/data).
    with pytest.raises(NotADirectoryError, match=r"mine.txt is a file, where the demo data set"):
        generate_demo_dataset(tmp_path / "mine.txt", num_train=1, num_val=1)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_boxes_are_the_tight_extent_of_visible_pixels() -> None:
    image, id_map, objects = render_scene(np.random.default_rng(1), 200, 240, num_objects=30)
    assert len(objects) >= 15
    for k, obj in enumerate(objects):
        x1, y1, x2, y2 = obj.box
        inside = id_map[y1:y2, x1:x2] == k + 1
        # The object touches all four sides of its box and has no pixel outside it.
        assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
        assert int(inside.sum()) == int((id_map == k + 1).sum()) == obj.area
        # Objects are flat-coloured: their visible pixels all have one colour.
        assert len(np.unique(image[id_map == k + 1], axis=0)) == 1


def test_shapes_have_distinct_silhouettes() -> None:
    masks = {kind: shape_mask(kind, 40.0, 0.0) for kind in DEMO_CLASSES}
    for a in DEMO_CLASSES:
        for b in DEMO_CLASSES:
            if a < b:
                same_shape = masks[a].shape == masks[b].shape
                assert not (same_shape and np.array_equal(masks[a], masks[b])), (a, b)
    fill = {kind: float(mask.mean()) for kind, mask in masks.items()}
    assert fill["ring"] < fill["circle"] and fill["star"] < fill["triangle"] < fill["square"]
    with pytest.raises(ValueError, match="unknown demo shape"):
        shape_mask("hexagon", 20.0, 0.0)


def test_default_output_is_pinned(tmp_path: Path) -> None:
    """Digests of the default output, taken before :class:`SceneStyle` existed: the demo data and
    the figures measured on it stay valid only while these hold."""
    data = generate_demo_dataset(tmp_path / "pinned", num_train=6, num_val=2)
    assert _digest(data.train_json).startswith("3c37482f4bfd187699a4b9e8ab759266")
    assert _digest(data.val_json).startswith("c75df1e6d8455c918ee99f80e0faea8b")
    assert json.loads((data.root / MARKER_NAME).read_text()) == {
        "generator_version": 2,
        "num_train": 6,
        "num_val": 2,
        "seed": 0,
        "image_size": [256, 384],
    }
    # The pixels, before JPEG encoding (whose bytes depend on the libjpeg build), of train image 1.
    rng = np.random.default_rng([0, 0, 1])
    height, width = (int(v) for v in rng.integers(256, 385, 2))
    image, _, objects = render_scene(rng, height, width, _num_objects(rng))
    assert (height, width, len(objects)) == (370, 313, 7)
    assert hashlib.sha256(image.tobytes()).hexdigest().startswith("05970d510f0530b39d5acd971501392")
    encoded = io.BytesIO()
    Image.fromarray(image).save(encoded, format="JPEG", quality=92, subsampling=0)
    assert (data.train_images / "000001.jpg").read_bytes() == encoded.getvalue()
