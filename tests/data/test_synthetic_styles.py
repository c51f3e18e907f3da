"""Tests for the styles of the synthetic data set (sizes, crowds, colour classes, file modes)
and the named presets."""

from __future__ import annotations

import colorsys
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sparsercnn.data.coco import CocoDataset
from sparsercnn.data.demo_dataset import (
    DEMO_CLASSES,
    MARKER_NAME,
    SceneStyle,
    class_names,
    generate_demo_dataset,
    hue_band,
    render_scene,
)
from sparsercnn.data.image_io import load_image
from sparsercnn.data.synthetic_styles import (
    DATASET_STYLES,
    DatasetSpec,
    generate_styled_dataset,
)


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _max_sides(objects: list[Any]) -> list[int]:
    return [max(o.box[2] - o.box[0], o.box[3] - o.box[1]) for o in objects]


def test_object_size_is_absolute() -> None:
    # On a 600 px image the default rule draws ~23-260 px; the style asks for 12-24 px.
    style = SceneStyle(object_size=(12, 24))
    sides = []
    for seed in range(4):
        _, _, objects = render_scene(np.random.default_rng(seed), 600, 640, 12, style)
        sides += _max_sides(objects)
    assert len(sides) >= 40
    # A shape's box is at most its diameter (+2 px of rasterisation), at least ~0.7 of it (a
    # square's side) unless occluded.
    assert max(sides) <= 26
    assert np.mean(np.array(sides) >= 0.65 * 12) >= 0.95
    _, _, default = render_scene(np.random.default_rng(0), 600, 640, 12)
    assert max(_max_sides(default)) > 26


def test_crowds_of_small_objects_are_all_placed(tmp_path: Path) -> None:
    _, _, objects = render_scene(
        np.random.default_rng(0), 512, 512, 100, SceneStyle(object_size=(12, 24))
    )
    assert len(objects) == 100
    # Dense enough that 20 tries per object (the default scenes') would drop two of them.
    _, _, dense = render_scene(
        np.random.default_rng(0), 256, 256, 200, SceneStyle(object_size=(12, 24))
    )
    assert len(dense) == 200
    # Default sizes are capped for crowds, so 120 objects fit on 400 px too.
    _, _, crowd = render_scene(
        np.random.default_rng(0), 400, 400, 120, SceneStyle(objects_per_image=(120, 120))
    )
    assert len(crowd) == 120
    style = SceneStyle(object_size=(12, 24), objects_per_image=(60, 70))
    data = generate_demo_dataset(
        tmp_path / "crowd", num_train=4, num_val=0, image_size=(512, 512), style=style
    )
    per_image = Counter(a["image_id"] for a in _load(data.train_json)["annotations"])
    assert len(per_image) == 3  # one of the 4 images is empty (5 %, at least one)
    assert all(60 <= n <= 70 for n in per_image.values()), per_image


def test_colour_classes_are_shape_times_hue_family(tmp_path: Path) -> None:
    names = class_names(24)
    assert len(names) == len(set(names)) == 24
    assert names[:4] == ("circle/red", "circle/lime", "circle/cyan", "circle/violet")
    assert "star/red" in names and class_names(3) == DEMO_CLASSES[:3]
    style = SceneStyle(num_classes=24, objects_per_image=(10, 14))
    data = generate_demo_dataset(
        tmp_path / "classes", num_train=30, num_val=0, image_size=(128, 160), style=style
    )
    coco = _load(data.train_json)
    assert [c["name"] for c in coco["categories"]] == list(names)
    assert {a["category_id"] for a in coco["annotations"]} == set(range(1, 25))
    image, id_map, objects = render_scene(np.random.default_rng(5), 300, 300, 30, style)
    for k, obj in enumerate(objects):
        red, green, blue = image[id_map == k + 1][0] / 255.0
        hue = colorsys.rgb_to_hsv(red, green, blue)[0]
        lo, hi = hue_band(obj.label, 24)
        # Within the band, allowing for the 8-bit rounding of the colour.
        assert any(lo - 0.01 <= h <= hi + 0.01 for h in (hue - 1, hue, hue + 1)), (obj, hue)


def test_fewer_classes_use_the_first_shapes(tmp_path: Path) -> None:
    style = SceneStyle(num_classes=3, objects_per_image=(4, 6))
    data = generate_demo_dataset(
        tmp_path / "three", num_train=8, num_val=0, image_size=(128, 128), style=style
    )
    coco = _load(data.train_json)
    assert [c["name"] for c in coco["categories"]] == list(DEMO_CLASSES[:3])
    assert {a["category_id"] for a in coco["annotations"]} == {1, 2, 3}


@pytest.mark.parametrize(
    ("colour_mode", "expected"),
    [("gray", {"L": 10}), ("mixed", {"RGB": 7, "L": 2, "RGBA": 1}), ("rgb", {"RGB": 10})],
)
def test_colour_modes_give_file_modes_that_load(
    tmp_path: Path, colour_mode: Any, expected: dict[str, int]
) -> None:
    style = SceneStyle(colour_mode=colour_mode, objects_per_image=(1, 3))
    data = generate_demo_dataset(
        tmp_path / colour_mode, num_train=10, num_val=0, image_size=(96, 112), style=style
    )
    coco = _load(data.train_json)
    modes: Counter[str] = Counter()
    for entry in coco["images"]:
        path = data.train_images / entry["file_name"]
        with Image.open(path) as stored:
            modes[stored.mode] += 1
            assert stored.format == ("PNG" if stored.mode == "RGBA" else "JPEG")
            assert path.suffix == (".png" if stored.mode == "RGBA" else ".jpg")
            if stored.mode == "RGBA":
                alpha = np.asarray(stored)[..., 3]
                assert (alpha[:4, :4] == 0).all() and (alpha == 255).sum() == alpha.size - 16
        loaded = load_image(path)
        assert loaded.mode == "RGB" and loaded.size == (entry["width"], entry["height"])
    assert dict(modes) == expected
    dataset = CocoDataset(data.train_json, data.train_images)
    assert len(dataset) == 10
    assert [tuple(dataset[i].image.shape[-2:]) for i in range(len(dataset))] == [
        (e["height"], e["width"]) for e in coco["images"]
    ]


def test_marker_has_only_changed_style_fields_and_a_new_style_regenerates(tmp_path: Path) -> None:
    root = tmp_path / "data"
    generate_demo_dataset(root, num_train=2, num_val=0, style=SceneStyle())
    assert "style" not in _load(root / MARKER_NAME)
    style = SceneStyle(colour_mode="gray", object_size=(12, 30))
    data = generate_demo_dataset(root, num_train=2, num_val=0, style=style)
    assert _load(root / MARKER_NAME)["style"] == {"object_size": [12, 30], "colour_mode": "gray"}
    with Image.open(data.train_images / "000000.jpg") as image:
        assert image.mode == "L"
    stamp = (data.train_json.stat().st_ino, data.train_json.stat().st_mtime_ns)
    generate_demo_dataset(root, num_train=2, num_val=0, style=style)
    assert (data.train_json.stat().st_ino, data.train_json.stat().st_mtime_ns) == stamp


def test_styled_generation_is_deterministic(tmp_path: Path) -> None:
    style = SceneStyle(num_classes=12, object_size=(10, 30), objects_per_image=(5, 9))
    runs = [
        generate_demo_dataset(
            tmp_path / name, num_train=3, num_val=1, image_size=(128, 144), style=style
        )
        for name in ("a", "b")
    ]
    assert _load(runs[0].train_json) == _load(runs[1].train_json)
    for name in ("000000.jpg", "000002.jpg"):
        assert (runs[0].train_images / name).read_bytes() == (
            runs[1].train_images / name
        ).read_bytes()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"num_classes": 7}, "num_classes must be"),
        ({"num_classes": 24, "colour_mode": "gray"}, "colour_mode must be 'rgb'"),
        ({"object_size": (4, 10)}, "object_size"),
        ({"objects_per_image": (5, 2)}, "objects_per_image"),
        ({"colour_mode": "sepia"}, "colour_mode must be"),
    ],
)
def test_invalid_style_raises(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SceneStyle(**fields)


def test_presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert {"shapes", "small_objects", "large_few", "many_classes", "crowded"} <= set(
        DATASET_STYLES
    )
    shapes = DATASET_STYLES["shapes"]
    assert (shapes.style, shapes.image_size, shapes.num_train, shapes.num_val) == (
        SceneStyle(),
        (256, 384),
        600,
        100,
    )
    tiny = DatasetSpec(SceneStyle(num_classes=12), (96, 96), 2, 1, "tiny")
    monkeypatch.setitem(DATASET_STYLES, "tiny", tiny)
    data = generate_styled_dataset("tiny", tmp_path / "tiny")
    marker = _load(data.root / MARKER_NAME)
    assert marker["style"] == {"num_classes": 12} and marker["image_size"] == [96, 96]
    assert len(_load(data.val_json)["images"]) == 1
    # Was a KeyError, which a command line prints quoted, or as a crash.
    with pytest.raises(
        ValueError, match=r"^unknown synthetic data set 'nope'; choose one of crowded, large_few, "
    ):
        generate_styled_dataset("nope", tmp_path / "nope")
