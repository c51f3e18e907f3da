"""The data policy: one verdict per image and annotation, refusal or up-front dropping."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from test_image_check import noise_jpeg, truncate

import sparsercnn
from sparsercnn.data.policy import InvalidDataError, apply_policy, inspect_dataset
from sparsercnn.data.validation import DatasetError

CATEGORIES = [{"id": 1, "name": "thing"}]


def write_coco(
    root: Path, num_images: int, boxes_per_image: int = 1, bad: dict[int, str] | None = None
) -> Path:
    """``num_images`` 64x48 noise JPEGs ``000.jpg``... with one box each; ``bad`` maps an
    index to ``"truncated"``, ``"empty"`` or ``"text"``."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for index in range(num_images):
        name = f"{index:03d}.jpg"
        noise_jpeg(root / name)
        kind = (bad or {}).get(index)
        if kind == "truncated":
            truncate(root / name)
        elif kind == "empty":
            (root / name).write_bytes(b"")
        elif kind == "text":
            (root / name).write_text("not an image")
        images.append({"id": index + 1, "file_name": name, "width": 64, "height": 48})
        for _ in range(boxes_per_image):
            ann_id = len(annotations) + 1
            box = {"id": ann_id, "image_id": index + 1, "category_id": 1, "bbox": [4, 4, 20, 20]}
            annotations.append(box)
    json_path = root / "instances.json"
    json_path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES})
    )
    return json_path


def test_truncated_file_is_an_error_of_validate_and_training(tmp_path: Path) -> None:
    json_path = write_coco(tmp_path, 4, bad={1: "truncated", 2: "text"})
    inspection = inspect_dataset(json_path, tmp_path)
    assert [(e.code, e.file) for e in inspection.errors] == [
        ("image_file_unreadable", "001.jpg"),
        ("image_file_unreadable", "002.jpg"),
    ]
    assert [image["id"] for image in inspection.checked.images] == [1, 4]
    with pytest.raises(InvalidDataError) as info:
        apply_policy(inspection, skip_invalid=False)
    message = str(info.value)
    assert "bad files (2): 001.jpg, 002.jpg" in message
    assert "--skip-invalid" in message and "sparsercnn validate" in message
    # Checking existence only lets the truncated file through: that is what decoding is for.
    assert not inspect_dataset(json_path, tmp_path, image_check="exists").errors


def test_skip_invalid_drops_up_front_with_one_summary_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    json_path = write_coco(tmp_path, 5, bad={0: "empty", 3: "truncated"})
    with caplog.at_level(logging.INFO, logger="sparsercnn.data.policy"):
        checked = apply_policy(inspect_dataset(json_path, tmp_path), skip_invalid=True)
    assert [image["id"] for image in checked.images] == [2, 3, 5]
    assert [ann["image_id"] for ann in checked.annotations] == [2, 3, 5]
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "dropped 2 of 5 images and 2 of 5 annotations" in warnings[0]
    assert "000.jpg" in warnings[0] and "003.jpg" in warnings[0]


def test_long_lists_of_bad_files_are_capped_with_a_count(tmp_path: Path) -> None:
    json_path = write_coco(tmp_path, 25, bad=dict.fromkeys(range(24), "text"))
    with pytest.raises(InvalidDataError) as info:
        apply_policy(inspect_dataset(json_path, tmp_path), skip_invalid=False)
    first, files = str(info.value).split("\n")  # two lines: the CLI shows both in full
    assert "24 error(s)" in first and "--skip-invalid" in first and "sparsercnn validate" in first
    assert files.startswith("bad files (24): 000.jpg, 001.jpg") and "019.jpg and 4 more" in files
    assert "020.jpg" not in files


def test_zero_annotations_is_an_error_even_with_skip_invalid(tmp_path: Path) -> None:
    json_path = write_coco(tmp_path, 3, boxes_per_image=0)
    inspection = inspect_dataset(json_path, tmp_path)
    assert [e.code for e in inspection.errors] == ["no_boxes"]
    for skip_invalid in (False, True):
        with pytest.raises(DatasetError, match=r"no usable box.*nothing to learn"):
            apply_policy(inspection, skip_invalid=skip_invalid)


def test_some_images_without_boxes_give_one_info_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    json_path = write_coco(tmp_path, 4)
    data = json.loads(json_path.read_text())
    data["annotations"] = data["annotations"][:1]
    json_path.write_text(json.dumps(data))
    with caplog.at_level(logging.INFO, logger="sparsercnn.data.policy"):
        apply_policy(inspect_dataset(json_path, tmp_path), skip_invalid=False)
    (line,) = [r for r in caplog.records if "no boxes" in r.message]
    assert line.levelno == logging.INFO and "3 of 4 images have no boxes" in line.message


def test_no_module_loads_truncated_images() -> None:
    # Pillow's global switch would make truncated files decode silently (grey bottom rows).
    setter = re.compile(r"LOAD_TRUNCATED_IMAGES\s*=")
    sources = Path(sparsercnn.__file__).parent.rglob("*.py")
    assert not [path for path in sources if setter.search(path.read_text(encoding="utf-8"))]
