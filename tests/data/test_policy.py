"""The data policy: one verdict per image and annotation, refusal or up-front dropping."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

import sparsercnn
from sparsercnn.data.dataset_error import DatasetError
from sparsercnn.data.policy import (
    InvalidDataError,
    apply_policy,
    checked_for_training,
    inspect_dataset,
)
from tests.synthetic_coco import Box, SyntheticCoco, WriteCoco, truncate

CATEGORIES = [{"id": 1, "name": "thing"}]


def write_jpegs(
    write_coco: WriteCoco,
    num_images: int,
    objects_per_image: int = 1,
    bad: dict[int, str] | None = None,
) -> SyntheticCoco:
    """``num_images`` 64x48 JPEGs ``000.jpg``... with ``objects_per_image`` boxes each; ``bad``
    maps an index to ``"truncated"``, ``"empty"`` or ``"text"``."""
    data = write_coco(
        num_images=num_images,
        size=(48, 64),
        file_format="jpg",
        categories=CATEGORIES,
        objects_per_image=objects_per_image,
    )
    for index, kind in (bad or {}).items():
        path = data.image_paths[index]
        if kind == "truncated":
            truncate(path)
        elif kind == "empty":
            path.write_bytes(b"")
        else:
            path.write_text("not an image")
    return data


def test_truncated_file_is_an_error_of_validate_and_training(write_coco: WriteCoco) -> None:
    data = write_jpegs(write_coco, 4, bad={1: "truncated", 2: "text"})
    inspection = inspect_dataset(data.json_path, data.image_dir)
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
    assert not inspect_dataset(data.json_path, data.image_dir, image_check="exists").errors


def test_skip_invalid_drops_up_front_with_one_summary_line(
    write_coco: WriteCoco, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_jpegs(write_coco, 5, bad={0: "empty", 3: "truncated"})
    with caplog.at_level(logging.INFO, logger="sparsercnn.data.policy"):
        checked = apply_policy(inspect_dataset(data.json_path, data.image_dir), skip_invalid=True)
    assert [image["id"] for image in checked.images] == [2, 3, 5]
    assert [ann["image_id"] for ann in checked.annotations] == [2, 3, 5]
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "dropped 2 of 5 images and 2 of 5 annotations" in warnings[0]
    assert "000.jpg" in warnings[0] and "003.jpg" in warnings[0]


def test_the_skip_invalid_summary_caps_each_reason_s_files_with_a_count(
    write_coco: WriteCoco, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_jpegs(write_coco, 7, bad=dict.fromkeys(range(6), "text"))
    with caplog.at_level(logging.WARNING, logger="sparsercnn.data.policy"):
        apply_policy(inspect_dataset(data.json_path, data.image_dir), skip_invalid=True)
    (summary,) = [r.message for r in caplog.records if "--skip-invalid dropped" in r.message]
    assert summary.endswith(
        ": 6 image_file_unreadable (000.jpg, 001.jpg, 002.jpg ... (6 in all))"
    ), summary


def test_long_lists_of_bad_files_are_capped_with_a_count(write_coco: WriteCoco) -> None:
    data = write_jpegs(write_coco, 25, bad=dict.fromkeys(range(24), "text"))
    with pytest.raises(InvalidDataError) as info:
        apply_policy(inspect_dataset(data.json_path, data.image_dir), skip_invalid=False)
    first, files = str(info.value).split("\n")  # two lines: the CLI shows both in full
    assert "24 errors in the dataset" in first and "fix or remove them" in first
    assert "--skip-invalid" in first and "sparsercnn validate" in first
    assert files.startswith("bad files (24): 000.jpg, 001.jpg")
    assert "019.jpg ... (24 in all); " in files
    assert "020.jpg" not in files


def test_refusal_says_why_each_kind_of_bad_file_is_bad(write_coco: WriteCoco) -> None:
    """A missing file and a repeated image id, not just "bad files": one example of each."""
    data = write_jpegs(write_coco, 4, bad={1: "text", 2: "text"})
    data.image_paths[3].unlink()
    coco = data.read_json()
    coco["images"].append({**coco["images"][0], "file_name": "000.jpg"})  # id 1 again
    data.write_json(coco)
    with pytest.raises(InvalidDataError) as info:
        apply_policy(inspect_dataset(data.json_path, data.image_dir), skip_invalid=False)
    files = str(info.value).split("\n")[1]
    # 000.jpg decodes: its entry's id is what is wrong.
    assert files.startswith("bad files (3): 003.jpg, 001.jpg, 002.jpg; bad image entries (1): ")
    assert "; bad image entries (1): 000.jpg; " in files
    assert "[image_file_missing] image 4: file " in files and "003.jpg' does not exist" in files
    assert "[duplicate_image_id] image id 1 ('000.jpg') is repeated at images[4]" in files
    assert "[image_file_unreadable] image 2: " in files and "(and 1 more like it)" in files


def test_a_refusal_names_no_image_with_only_annotation_errors_as_a_bad_file(
    write_coco: WriteCoco,
) -> None:
    """Was: a negative box on 001.jpg gave "bad files (2): 001.jpg, 002.jpg", as if 001.jpg
    were damaged too."""
    data = write_jpegs(write_coco, 3, bad={2: "truncated"})
    coco = data.read_json()
    coco["annotations"][1]["bbox"] = [1, 1, -10, 10]
    data.write_json(coco)
    with pytest.raises(InvalidDataError) as info:
        apply_policy(inspect_dataset(data.json_path, data.image_dir), skip_invalid=False)
    files = str(info.value).split("\n")[1]
    assert files.startswith("bad files (1): 002.jpg; ")
    assert "bad image entries" not in files
    assert "[negative_size] annotation 2 (image 2, '001.jpg')" in files


def test_skip_invalid_names_the_images_left_without_a_usable_box(
    write_coco: WriteCoco, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: "1 of 3 images have no boxes (kept as negative examples)" for an image whose only
    box --skip-invalid dropped: its object counts as background, which is no true negative."""
    data = write_coco(categories=CATEGORIES, boxes=[[Box(1, (4, 4, 20, 20))], [], []])
    coco = data.read_json()
    coco["annotations"].append({**coco["annotations"][0], "id": 9, "image_id": 2, "category_id": 5})
    data.write_json(coco)
    with caplog.at_level(logging.INFO, logger="sparsercnn.data.policy"):
        apply_policy(inspect_dataset(data.json_path, data.image_dir), skip_invalid=True)
    file_2 = data.read_json()["images"][1]["file_name"]
    (unlabelled,) = [r for r in caplog.records if "no usable box" in r.message]
    assert unlabelled.levelno == logging.WARNING
    assert f"1 of the 3 images kept ({file_2}) has annotations but no usable box" in (
        unlabelled.message
    )
    assert "a negative example, its objects counted as background" in unlabelled.message
    (negatives,) = [r for r in caplog.records if "no boxes" in r.message]
    assert "1 of the 3 images has no boxes (kept as a negative example)" in negatives.message


def test_the_only_image_without_a_box_is_told_in_the_singular(
    write_coco: WriteCoco, caplog: pytest.LogCaptureFixture
) -> None:
    """A set without a usable box, read for its images only (``diagnose reads``). Was: "1 of
    the 1 images kept (...) has annotations ... kept as negative examples, their objects", and
    "1 of 1 images has no boxes (kept as negative examples)"."""
    data = write_coco(categories=CATEGORIES, boxes=[[Box(1, (4, 4, 20, 20))]])
    coco = data.read_json()
    coco["annotations"][0]["category_id"] = 5  # no such category: dropped
    data.write_json(coco)
    with caplog.at_level(logging.INFO, logger="sparsercnn.data.policy"):
        inspection = inspect_dataset(data.json_path, data.image_dir)
        apply_policy(inspection, skip_invalid=True, require_boxes=False)
    file = coco["images"][0]["file_name"]
    (unlabelled,) = [r.message for r in caplog.records if "no usable box" in r.message]
    assert f": the only image kept ({file}) has annotations but no usable box" in unlabelled
    assert "kept as a negative example, its objects counted as background" in unlabelled
    assert unlabelled.endswith("; fix its annotations, or remove it")
    caplog.clear()
    data = write_coco(categories=CATEGORIES, boxes=[[]])
    with caplog.at_level(logging.INFO, logger="sparsercnn.data.policy"):
        inspection = inspect_dataset(data.json_path, data.image_dir)
        apply_policy(inspection, skip_invalid=False, require_boxes=False)
    (negatives,) = [r.message for r in caplog.records if "no boxes" in r.message]
    assert negatives.endswith(": the only image has no boxes (kept as a negative example)")


def test_a_refusal_without_an_image_folder_names_none_as_theirs(write_coco: WriteCoco) -> None:
    """Was: eval --detections without --images said "(images in .)", the JSON's folder, and
    told to validate with --images . , which holds no image where the images are elsewhere."""
    data = write_jpegs(write_coco, 2)
    coco = data.read_json()
    coco["annotations"][0]["bbox"] = [1, 1, -10, 10]
    data.write_json(coco)
    inspection = inspect_dataset(data.json_path, None, image_check="none")
    with pytest.raises(InvalidDataError) as info:
        apply_policy(inspection, skip_invalid=False)
    first = str(info.value).split("\n")[0]
    assert "1 error in the dataset (its image files not checked); fix or remove it " in first
    assert f"--json {data.json_path} --images <its image folder> --all` lists each" in first
    with pytest.raises(ValueError, match=r"image_check='exists' needs the image folder"):
        inspect_dataset(data.json_path, None, image_check="exists")


def test_a_refusal_of_unchecked_files_names_the_folder_given(write_coco: WriteCoco) -> None:
    """Was: a folder given with image_check="none" (CocoDataset in Python) was taken for none:
    validate was to be run with --images <its image folder>, the folder given unsaid."""
    data = write_jpegs(write_coco, 2)
    coco = data.read_json()
    coco["annotations"][0]["bbox"] = [1, 1, -10, 10]
    data.write_json(coco)
    inspection = inspect_dataset(data.json_path, data.image_dir, image_check="none")
    with pytest.raises(InvalidDataError) as info:
        apply_policy(inspection, skip_invalid=False)
    first = str(info.value).split("\n")[0]
    assert "1 error in the dataset (its image files not checked); fix or remove it " in first
    assert f"--json {data.json_path} --images {data.image_dir} --all` lists each" in first


def test_checked_for_training_refuses_as_training_does_or_keeps_what_it_trains(
    write_coco: WriteCoco,
) -> None:
    data = write_jpegs(write_coco, 4, bad={1: "truncated"})
    with pytest.raises(InvalidDataError) as info:
        checked_for_training(data.json_path, data.image_dir, skip_invalid=False)
    with pytest.raises(InvalidDataError) as training:
        apply_policy(inspect_dataset(data.json_path, data.image_dir), skip_invalid=False)
    assert str(info.value) == str(training.value)
    inspection = checked_for_training(data.json_path, data.image_dir, skip_invalid=True)
    assert [image["id"] for image in inspection.checked.images] == [1, 3, 4]
    assert inspection.errors  # what a dataset built from it drops, and says it drops


def test_the_too_many_boxes_warnings_follow_the_number_of_proposals(
    write_coco: WriteCoco,
) -> None:
    """A set checked before its model is known (``train --preset auto``) gets the warnings of
    the model its dataset is built for, without reading the files again."""
    data = write_jpegs(write_coco, 2, objects_per_image=3)
    inspection = inspect_dataset(data.json_path, data.image_dir, num_proposals=2)
    crowded = [issue for issue in inspection.issues if issue.code == "too_many_boxes"]
    assert [issue.image_id for issue in crowded] == [1, 2]
    assert "more than the 2 proposals" in crowded[0].message
    for num_proposals in (3, None):
        fewer = inspection.for_num_proposals(num_proposals)
        assert fewer.issues == [i for i in inspection.issues if i.code != "too_many_boxes"]
    assert inspection.for_num_proposals(None).for_num_proposals(2).issues == inspection.issues


def test_zero_annotations_is_an_error_even_with_skip_invalid(write_coco: WriteCoco) -> None:
    data = write_jpegs(write_coco, 3, objects_per_image=0)
    inspection = inspect_dataset(data.json_path, data.image_dir)
    assert [e.code for e in inspection.errors] == ["no_boxes"]
    for skip_invalid in (False, True):
        with pytest.raises(DatasetError, match=r"no usable box.*nothing to learn"):
            apply_policy(inspection, skip_invalid=skip_invalid)


def test_an_image_without_a_usable_box_in_a_set_without_one_is_not_sent_to_skip_invalid(
    write_coco: WriteCoco,
) -> None:
    """Was: its info said that with --skip-invalid the image trains as a negative example,
    while the no_boxes error, which --skip-invalid cannot drop, refuses the set."""
    data = write_coco(categories=CATEGORIES, boxes=[[Box(1, (4, 4, 20, 20))]])
    coco = data.read_json()
    coco["annotations"][0]["bbox"] = [4, 4, -3, 20]
    data.write_json(coco)
    inspection = inspect_dataset(data.json_path, data.image_dir)
    assert [e.code for e in inspection.errors] == ["negative_size", "no_boxes"]
    (info,) = [i for i in inspection.issues if i.code == "image_without_usable_boxes"]
    assert info.message.endswith("has no usable box: 1 annotation with errors: fix its annotations")


def test_no_usable_image_is_an_error_of_validate_and_training(write_coco: WriteCoco) -> None:
    data = write_jpegs(write_coco, 2, bad={0: "text", 1: "empty"})
    coco = data.read_json()
    data.write_json({**coco, "images": [], "annotations": []})
    inspection = inspect_dataset(data.json_path, data.image_dir)
    assert [e.code for e in inspection.errors] == ["no_images"]  # what validate reports
    with pytest.raises(DatasetError, match=r"no usable image \(0 images in the file\)"):
        apply_policy(inspection, skip_invalid=False)
    # Every image dropped by --skip-invalid: the same error, after the files' own.
    data.write_json(coco)
    inspection = inspect_dataset(data.json_path, data.image_dir)
    assert [e.code for e in inspection.errors][-1] == "no_images"
    with pytest.raises(DatasetError, match=r"no usable image \(2 images in the file\)"):
        apply_policy(inspection, skip_invalid=True)


def test_some_images_without_boxes_give_one_info_line(
    write_coco: WriteCoco, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_coco(categories=CATEGORIES, boxes=[[Box(1, (4, 4, 20, 20))], [], [], []])
    with caplog.at_level(logging.INFO, logger="sparsercnn.data.policy"):
        apply_policy(inspect_dataset(data.json_path, data.image_dir), skip_invalid=False)
    (line,) = [r for r in caplog.records if "no boxes" in r.message]
    assert line.levelno == logging.INFO and "3 of the 4 images have no boxes" in line.message


def test_images_without_a_usable_box_have_their_own_code(
    write_coco: WriteCoco, caplog: pytest.LogCaptureFixture
) -> None:
    """An image whose every annotation has an error or zero size is told from a true negative
    once, by its issue's code, and the log follows the issues: one warning for those, one info
    line for the negatives."""
    data = write_coco(categories=CATEGORIES, boxes=[[Box(1, (4, 4, 20, 20))], [], [], []])
    coco = data.read_json()
    coco["annotations"] += [
        {**coco["annotations"][0], "id": 8, "image_id": 2, "category_id": 5},
        {**coco["annotations"][0], "id": 9, "image_id": 3, "bbox": [4, 4, 0, 10]},
    ]
    data.write_json(coco)
    inspection = inspect_dataset(data.json_path, data.image_dir)
    codes = {i.image_id: i.code for i in inspection.issues if i.code.startswith("image_without")}
    assert codes == {
        2: "image_without_usable_boxes",
        3: "image_without_usable_boxes",
        4: "image_without_boxes",
    }
    with caplog.at_level(logging.INFO, logger="sparsercnn.data.policy"):
        apply_policy(inspection, skip_invalid=True)
    (unlabelled,) = [r for r in caplog.records if "no usable box" in r.message]
    assert "2 of the 4 images kept" in unlabelled.message
    (negatives,) = [r for r in caplog.records if "no boxes" in r.message]
    assert "1 of the 4 images has no boxes" in negatives.message


def test_a_set_checked_again_is_neither_decoded_nor_logged_again(
    write_coco: WriteCoco, caplog: pytest.LogCaptureFixture
) -> None:
    """``train`` inspects its training set for the data check, the recipe and the dataset:
    one "decoded" line per set, from the first inspection, which alone decodes."""
    data = write_jpegs(write_coco, 3)
    with caplog.at_level(logging.INFO, logger="sparsercnn.data"):
        for _ in range(3):
            inspect_dataset(data.json_path, data.image_dir)
    lines = [r.getMessage() for r in caplog.records if "decoded" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"{data.json_path}: decoded 3 images in ")


def test_no_module_loads_truncated_images() -> None:
    # Pillow's global switch would make truncated files decode silently (grey bottom rows).
    setter = re.compile(r"LOAD_TRUNCATED_IMAGES\s*=")
    sources = Path(sparsercnn.__file__).parent.rglob("*.py")
    assert not [path for path in sources if setter.search(path.read_text(encoding="utf-8"))]


def test_a_missing_image_folder_fails_before_any_file_is_checked(
    write_coco: WriteCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even with --skip-invalid (which would drop every image): one line naming the folder."""
    data = write_jpegs(write_coco, 3)

    def no_file_check(*args: object, **kwargs: object) -> None:
        raise AssertionError("the files were checked one by one")

    monkeypatch.setattr("sparsercnn.data.policy.check_image_files", no_file_check)
    missing = tmp_path / "missing"
    with pytest.raises(DatasetError, match=r"image folder .*missing.* does not exist"):
        inspect_dataset(data.json_path, missing)
    inspect_dataset(data.json_path, missing, image_check="none")  # the folder is not read


def test_image_files_the_json_does_not_name_are_counted_once(
    write_coco: WriteCoco, caplog: pytest.LogCaptureFixture
) -> None:
    """A folder of images left out of the JSON: one info, logged by training, not an error; an
    entry rejected for an error names its file all the same."""
    data = write_jpegs(write_coco, 2)
    coco = data.read_json()
    coco["images"][1]["width"] = -1  # bad_image: its file is named, not unlisted
    data.write_json(coco)
    (data.image_dir / "forgotten").mkdir()
    for name in ("x.jpg", "y.jpg"):
        (data.image_dir / "forgotten" / name).write_bytes(data.image_paths[0].read_bytes())
    (data.image_dir / "readme.txt").write_text("not an image")
    inspection = inspect_dataset(data.json_path, data.image_dir)
    (unlisted,) = [issue for issue in inspection.issues if issue.code == "unlisted_image_files"]
    assert unlisted.severity == "info"
    assert "2 image files under" in unlisted.message
    assert "(e.g. 'forgotten/x.jpg', 'forgotten/y.jpg')" in unlisted.message
    with caplog.at_level(logging.INFO, logger="sparsercnn.data.policy"):
        apply_policy(inspection, skip_invalid=True)
    assert unlisted.message in [record.getMessage() for record in caplog.records]
    # Only the files were looked for, not opened: the same finding.
    exists = inspect_dataset(data.json_path, data.image_dir, image_check="exists")
    assert unlisted in exists.issues


def test_entries_without_a_size_are_decoded_once_and_trained_at_their_file_s(
    write_coco: WriteCoco, caplog: pytest.LogCaptureFixture
) -> None:
    """Their files are decoded with the others, once (the check of their boxes waits for the
    sizes); training takes them with one warning."""
    data = write_jpegs(write_coco, 3)
    coco = data.read_json()
    del coco["images"][0]["width"], coco["images"][0]["height"]
    coco["images"][1].update(width=0, height=None)
    data.write_json(coco)
    with caplog.at_level(logging.INFO, logger="sparsercnn.data"):
        inspection = checked_for_training(data.json_path, data.image_dir, skip_invalid=False)
    lines = [r.getMessage() for r in caplog.records if "decoded" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"{data.json_path}: decoded 3 images in ")
    assert [(i.code, i.severity) for i in inspection.issues] == [("image_size_missing", "warning")]
    sizes = [(image["width"], image["height"]) for image in inspection.checked.images]
    assert sizes == [(64, 48)] * 3
    with pytest.raises(InvalidDataError, match="drop --no-image-check"):
        apply_policy(
            inspect_dataset(data.json_path, data.image_dir, image_check="exists"),
            skip_invalid=False,
        )


def test_an_unsized_entry_whose_file_is_missing_is_one_error_when_files_are_not_decoded(
    write_coco: WriteCoco,
) -> None:
    """``validate --no-image-check`` gave two errors for one image, the second telling to
    decode a file that is not there; the missing file is the image's error, as when decoding."""
    data = write_jpegs(write_coco, 2)
    coco = data.read_json()
    del coco["images"][0]["width"], coco["images"][0]["height"]
    data.write_json(coco)
    content = data.image_paths[0].read_bytes()
    data.image_paths[0].unlink()
    for image_check in ("exists", "decode"):
        inspection = inspect_dataset(data.json_path, data.image_dir, image_check=image_check)
        ((code, image_id),) = [(i.code, i.image_id) for i in inspection.errors]
        assert (code, image_id) == ("image_file_missing", coco["images"][0]["id"])
    # With the file there, the entry's missing size is the error the unopened files give.
    data.image_paths[0].write_bytes(content)
    inspection = inspect_dataset(data.json_path, data.image_dir, image_check="exists")
    assert [i.code for i in inspection.errors] == ["bad_image"]
    assert "drop --no-image-check" in inspection.errors[0].message


def test_warnings_of_one_kind_take_one_line_with_their_count_and_ids(
    write_coco: WriteCoco, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: three in full per kind, then "... and N more": nothing said which. Now one line per
    kind: the count, the first in full, and the ids of the others (a few, then how many)."""
    data = write_jpegs(write_coco, 8, objects_per_image=3)
    coco = data.read_json()
    for ann in coco["annotations"][::3]:
        ann["bbox"] = [60, 10, 6, 10]  # 2 px past the right edge of 64: clipped
    coco["annotations"][1]["bbox"] = [10, 10, 0, 10]
    data.write_json(coco)
    with caplog.at_level(logging.WARNING, logger="sparsercnn.data.policy"):
        apply_policy(inspect_dataset(data.json_path, data.image_dir), skip_invalid=False)
    (record,) = caplog.records
    header, clipped, empty = record.getMessage().split("\n")
    ids = [ann["id"] for ann in coco["annotations"][::3]]
    assert header.endswith(": 9 warnings:")
    assert clipped.startswith(f"  [box_clipped] 8 issues, the first: annotation {ids[0]} (image")
    others = ", ".join(map(str, ids[1:6]))
    assert clipped.endswith(f"; the others: annotations {others} ... (7 in all)")
    assert empty.startswith(f"  [empty_box] annotation {coco['annotations'][1]['id']} (image")


def _val_json_over_train_images(data: SyntheticCoco, tmp_path: Path) -> Path:
    """A validation file naming the training set's file names (``000.jpg``...: exporters number
    every split alike) at another size, as a validation set's own pictures would be."""
    coco = data.read_json()
    coco["images"] = [{**image, "width": 80, "height": 60} for image in coco["images"]]
    path = tmp_path / "val.json"
    path.write_text(json.dumps(coco))
    return path


def test_the_images_of_another_split_are_refused_as_a_wrong_folder(
    write_coco: WriteCoco, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``--val-images train/``: every file is there but none of the JSON's size. Was: size
    warnings and a validation AP on the wrong pictures; now a refusal leading with the folder,
    ``--skip-invalid`` named last, which goes on with one warning (nothing to drop)."""
    data = write_jpegs(write_coco, 4)
    val_json = _val_json_over_train_images(data, tmp_path)
    inspection = inspect_dataset(val_json, data.image_dir)
    with pytest.raises(InvalidDataError) as info:
        apply_policy(inspection, skip_invalid=False)
    assert str(info.value) == (
        f"{val_json}: image folder {str(data.image_dir)!r} may be the wrong one for {val_json}: "
        "4 of the 4 image files differ in size from its 'width' and 'height' (e.g. '000.jpg': "
        "JSON 80x60, file 64x48): give the folder of its images (--images, --train-images or "
        "--val-images); if this is it, correct the JSON's 'width' and 'height', or rescale the "
        "boxes if the files were resized after they were drawn; to use the files as they are, "
        "pass --skip-invalid to `sparsercnn train`, `eval` or `diagnose` (skip_invalid=True in "
        "Python)"
    )
    with caplog.at_level(logging.WARNING, logger="sparsercnn.data.policy"):
        checked = apply_policy(inspection, skip_invalid=True)
    assert len(checked.images) == 4
    warnings = [r.getMessage() for r in caplog.records]
    assert "may be the wrong one" in warnings[0] and "going on with --skip-invalid" in warnings[0]
    assert not any("dropped" in warning for warning in warnings)


def test_a_folder_lacking_most_files_leads_the_refusal_before_skip_invalid(
    write_coco: WriteCoco,
) -> None:
    """Was: "4 errors ...; fix or remove them ..., or pass --skip-invalid", the folder unnamed."""
    data = write_jpegs(write_coco, 5)
    for path in data.image_paths[1:]:
        path.unlink()
    with pytest.raises(InvalidDataError) as info:
        apply_policy(inspect_dataset(data.json_path, data.image_dir), skip_invalid=False)
    first, files = str(info.value).split("\n")
    assert first.startswith(
        f"{data.json_path}: image folder {str(data.image_dir)!r} may be the wrong one for "
        f"{data.json_path}: 4 of its 5 image files do not exist in it (e.g. '001.jpg'): give "
        "the folder that its 'file_name' entries are relative to"
    )
    assert first.index("If the folder is right, the dataset has 4 other errors: fix or remove") < (
        first.index("--skip-invalid")
    )
    assert files.startswith("bad files (4): 001.jpg, 002.jpg, 003.jpg, 004.jpg; ")
    assert "wrong_image_folder" not in files  # said once, first


def test_too_many_boxes_names_the_setting_that_gives_every_image_enough(
    write_coco: WriteCoco,
) -> None:
    """Was: "use more proposals", without the setting or a number."""
    boxes = [[Box(1, (1, 1, 8, 8))] * count for count in (3, 5, 1)]
    data = write_coco(size=(48, 64), categories=CATEGORIES, boxes=boxes)
    inspection = inspect_dataset(data.json_path, data.image_dir, num_proposals=2)
    crowded = [issue for issue in inspection.issues if issue.code == "too_many_boxes"]
    assert [issue.image_id for issue in crowded] == [1, 2]
    assert crowded[0].message.endswith(
        "has 3 boxes, more than the 2 proposals: each box needs its own, so 1 of them cannot be "
        "learned or detected; give the model at least 5 proposals, the most boxes of an image "
        "here (`--set model.num_proposals=5`, cfg.model.num_proposals in Python)"
    )
