"""validate_coco: every rule on hand-made bad data (with the right ids), and the summary."""

from __future__ import annotations

import dataclasses
import math
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sparsercnn.box_format_evidence import OUTSIDE_CAUSES
from sparsercnn.data.coco import CocoDataset
from sparsercnn.data.coco_file import load_coco_json
from sparsercnn.data.dataset_error import AnnotationFileError, DatasetError
from sparsercnn.data.dataset_report import ValidationReport, validate_coco
from sparsercnn.data.issues import Issue, issue_subjects, summarize_issues
from sparsercnn.data.validation import check_coco
from sparsercnn.structures import coco_area
from tests.synthetic_coco import Box, WriteCoco, truncate


def image(image_id: int, file_name: str, width: int = 40, height: int = 30) -> dict[str, Any]:
    return {"id": image_id, "file_name": file_name, "width": width, "height": height}


def box(ann_id: int, image_id: int, category_id: int, bbox: Any, **extra: Any) -> dict[str, Any]:
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": bbox, **extra}


def by_code(report: ValidationReport, code: str) -> list[Issue]:
    return [issue for issue in report.issues if issue.code == code]


@pytest.fixture
def bad_report(write_coco: WriteCoco) -> ValidationReport:
    names = ["a.png", "b.png", "dup.png", "broken.png", "sized.png"]
    data = write_coco(file_names=names, size=(30, 40), objects_per_image=0)
    (data.image_dir / "broken.png").write_bytes(b"\x89PNG not really")
    images = [
        image(1, "a.png"),
        image(2, "b.png"),
        image(1, "dup.png"),
        image(3, "missing.png"),
        image(4, "broken.png"),
        image(5, "sized.png", width=50),  # the file is 40 wide
        {"id": 6, "file_name": "c.png", "width": -40, "height": 30},  # 0 or none: the file's
    ]
    categories = [{"id": 3, "name": "car"}, {"id": 7, "name": "bus"}, {"id": 3, "name": "again"}]
    annotations = [
        box(10, 1, 3, [1, 2, 10, 10]),
        box(10, 1, 3, [1, 2, 10, 10]),
        box(11, 99, 3, [1, 2, 10, 10]),
        box(12, 1, 5, [1, 2, 10, 10]),
        box(13, 1, 3, [1, 2, 3]),
        box(14, 1, 3, [1, math.nan, 3, 4]),
        box(15, 1, 3, [1, 2, 0, 4]),  # zero height: dropped with a warning (as in COCO train2017)
        box(21, 1, 3, [1, 2, -3, 4]),
        box(16, 1, 3, [35, 5, 6, 5]),  # x2 = 41 > 40, within 5% of 40: clipped
        box(17, 1, 3, [30, 5, 20, 5]),  # x2 = 50: far outside
        box(18, 1, 7, [0, 0, 10, 10], iscrowd=1),
        box(22, 1, 7, [0, 0, 10, 10], iscrowd="0"),  # a string: not silently a crowd region
        box(19, 5, 7, [0, 0, 5, 5]),
        box(20, 6, 7, [0, 0, 5, 5]),  # belongs to the invalid image 6: dropped with it
    ]
    data.write_json({"images": images, "annotations": annotations, "categories": categories})
    return validate_coco(data.json_path, data.image_dir)


@pytest.mark.parametrize(
    ("code", "image_id", "annotation_id", "text"),
    [
        ("duplicate_image_id", 1, None, "dup.png"),
        ("duplicate_category_id", None, None, "category id 3"),
        ("duplicate_annotation_id", 1, 10, "annotation id 10"),
        ("unknown_image_id", 99, 11, "image id 99"),
        ("unknown_category_id", 1, 12, "category id 5"),
        ("negative_size", 1, 21, "annotation 21"),
        ("bad_iscrowd", 1, 22, "'iscrowd' must be 0 or 1, got '0'"),
        ("box_outside_image", 1, 17, "annotation 17"),
        ("image_file_missing", 3, None, "missing.png"),
        ("image_file_unreadable", 4, None, "broken.png"),
        ("bad_image", 6, None, "'width'"),
    ],
)
def test_each_error_is_reported_with_its_ids(
    bad_report: ValidationReport,
    code: str,
    image_id: int | None,
    annotation_id: int | None,
    text: str,
) -> None:
    found = by_code(bad_report, code)
    assert len(found) == 1, f"{code}: {found}"
    issue = found[0]
    assert issue.severity == "error"
    assert (issue.image_id, issue.annotation_id) == (image_id, annotation_id)
    assert text in issue.message
    if annotation_id is not None:
        assert str(annotation_id) in issue.message


def test_malformed_boxes_and_warnings(bad_report: ValidationReport) -> None:
    malformed = by_code(bad_report, "malformed_bbox")
    assert sorted(issue.annotation_id for issue in malformed) == [13, 14]  # type: ignore[type-var]
    assert "NaN" in next(issue.message for issue in malformed if issue.annotation_id == 14)

    (clipped,) = by_code(bad_report, "box_clipped")
    assert clipped.severity == "warning" and clipped.annotation_id == 16
    assert "trained as [35, 5, 5, 5]" in clipped.message

    (zero,) = by_code(bad_report, "empty_box")
    assert zero.severity == "warning" and zero.annotation_id == 15

    (mismatch,) = by_code(bad_report, "image_size_mismatch")
    assert mismatch.severity == "warning" and mismatch.image_id == 5 and "50x30" in mismatch.message

    (empty,) = by_code(bad_report, "image_without_boxes")
    assert empty.severity == "info" and empty.image_id == 2

    # Annotation 20 belongs to the invalid image 6: no issue of its own.
    assert not [issue for issue in bad_report.issues if issue.annotation_id == 20]
    assert not bad_report.ok
    assert "FAILED" in bad_report.format() and "--skip-invalid" in bad_report.format()
    assert "skip_invalid=True in Python" in bad_report.format()


def test_an_area_evaluation_would_misread_is_warned_about() -> None:
    """COCO evaluation sorts objects into small/medium/large by ``area``: one it cannot use as
    meant is named, with what evaluation does with it; the annotation stays (training ignores
    the area)."""
    annotations = [
        box(1, 1, 3, [1, 2, 10, 10], area=70.5),  # a segment's area: fine
        box(2, 1, 3, [1, 2, 10, 10]),  # none: the box's w*h, fine
        box(3, 1, 3, [1, 2, 10, 10], area="100"),
        box(4, 1, 3, [1, 2, 10, 10], area=None),
        box(5, 1, 3, [1, 2, 10, 10], area=-1),
        box(6, 1, 3, [1, 2, 10, 10], area=math.nan),
        box(7, 1, 3, [1, 2, 10, 10], area=math.inf),
        box(8, 1, 3, [1, 2, 10, 10], area=True),
        box(9, 1, 3, [1, 2, 40, 10], area=0),  # a placeholder: evaluation calls it small
        box(10, 1, 3, [1, 2, 0, 10], area=0),  # zero size: its area is right
    ]
    data = {
        "images": [image(1, "a.png")],
        "annotations": annotations,
        "categories": [{"id": 3, "name": "car"}],
    }
    checked = check_coco(data, "x.json")
    assert [ann["id"] for ann in checked.annotations] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    warned = {i.annotation_id: i for i in checked.issues if i.code == "bad_area"}
    assert sorted(warned) == [3, 4, 5, 6, 7, 8, 9]  # type: ignore[type-var]
    assert all(i.severity == "warning" and i.image_id == 1 for i in warned.values())
    assert "annotation 3 (image 1, 'a.png')" in warned[3].message
    assert "box's w*h (100) instead" in warned[3].message
    assert "ignores the object" in warned[5].message and "ignores the object" in warned[7].message
    assert "small, medium and large" in warned[6].message
    assert "'area' is 0 for a 40x10 box" in warned[9].message


def test_usable_part_is_summarised(bad_report: ValidationReport) -> None:
    summary = bad_report.summary
    assert summary.num_images_in_json == 7 and summary.num_annotations_in_json == 14
    assert summary.num_images == 3  # images 1, 2 and 5
    assert summary.num_boxes == 3  # annotations 10, 16 (clipped) and 19
    assert summary.num_crowd_boxes == 1


def test_summary_of_a_clean_dataset(write_coco: WriteCoco) -> None:
    data = write_coco(
        file_names=["one.png", "two.png", "three.png"],
        size=[(150, 200), (30, 40), (30, 40)],
        categories=[
            {"id": 90, "name": "zebra"},
            {"id": 7, "name": "bus"},
            {"id": 3, "name": "car"},
        ],
        boxes=[
            [
                Box(3, (0, 0, 4, 4)),  # sqrt area 4, small
                Box(3, (10, 10, 10, 10)),  # 10, small
                Box(7, (0, 0, 40, 30)),  # 34.6, medium
                Box(7, (50, 20, 100, 100)),  # 100, large
            ],
            [],
            [Box(7, (0, 0, 5, 5), iscrowd=True)],
        ],
    )
    # The large box's object covers 4000 of its 10000 pixels (a segment's area, as in COCO's
    # own files): COCO evaluation, and so the size classes, count it as medium.
    coco = data.read_json()
    coco["annotations"][3]["area"] = 4000.0
    data.write_json(coco)
    report = validate_coco(data.json_path, data.image_dir)

    assert report.ok and not report.errors and not report.warnings
    summary = report.summary
    assert (summary.num_images, summary.num_boxes, summary.num_crowd_boxes) == (3, 4, 1)
    assert summary.boxes_per_category == [(3, "car", 2), (7, "bus", 2), (90, "zebra", 0)]
    assert summary.objects_per_image_min == 0 and summary.objects_per_image_max == 4
    assert summary.objects_per_image_mean == pytest.approx(4 / 3)
    assert summary.num_images_without_boxes == 2
    assert (summary.num_small, summary.num_medium, summary.num_large) == (2, 2, 0)
    assert summary.sqrt_area_min == pytest.approx(4.0)
    assert summary.sqrt_area_median == pytest.approx((10 + math.sqrt(1200)) / 2)
    assert summary.sqrt_area_max == pytest.approx(100.0)
    assert sorted(issue.image_id for issue in report.infos) == [2, 3]  # type: ignore[type-var]

    text = report.format()
    assert "OK" in text and "zebra" in text and "mean 1.33" in text


def test_a_sparse_data_set_s_boxes_per_image_keep_their_digits(write_coco: WriteCoco) -> None:
    # One box over hundreds of images: two decimals would print "mean 0.00".
    data = write_coco(file_names=["one.png"], size=[(30, 40)], boxes=[[Box(1, (0, 0, 4, 4))]])
    summary = validate_coco(data.json_path, data.image_dir).summary
    sparse = dataclasses.replace(summary, objects_per_image_mean=1 / 400)
    assert "mean 0.0025, max 1" in "\n".join(sparse.format())


def test_too_many_boxes_and_wrong_image_folder(write_coco: WriteCoco, tmp_path: Path) -> None:
    data = write_coco(
        file_names=["a.png", "b.png"],
        size=(30, 40),
        categories=[{"id": 1, "name": "x"}],
        boxes=[[Box(1, (0, 0, 5, 5))] * 4, []],
    )
    json_path, image_dir = data.json_path, data.image_dir
    (crowded,) = by_code(validate_coco(json_path, image_dir, num_proposals=3), "too_many_boxes")
    assert crowded.image_id == 1 and "4 boxes" in crowded.message

    # A folder without these files: one error first, then each missing file.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "other.png").write_bytes(b"")
    report = validate_coco(json_path, elsewhere)
    assert report.errors[0].code == "no_image_found"
    assert len(by_code(report, "image_file_missing")) == 2
    # A folder that does not exist: one line, before any file is looked for.
    with pytest.raises(DatasetError, match=r"image folder .*missing.* does not exist"):
        validate_coco(json_path, tmp_path / "missing")
    assert validate_coco(json_path, tmp_path / "missing", image_check="none").ok


def test_the_last_line_says_how_far_the_image_files_were_checked(write_coco: WriteCoco) -> None:
    """Looking for the files (``--no-image-check``) finds a missing one without decoding any; an
    OK names what it covers, and a check short of decoding says what it left out."""
    data = write_coco(file_names=["a.png", "b.png", "c.png"], size=(30, 40))
    truncate(data.image_dir / "b.png")
    data.image_paths[2].unlink()
    json_path, image_dir = data.json_path, data.image_dir

    looked_for = validate_coco(json_path, image_dir, image_check="exists")
    assert [issue.code for issue in looked_for.errors] == ["image_file_missing"]
    assert looked_for.errors[0].image_id == 3
    lines = looked_for.format().splitlines()
    assert lines[-2].startswith("FAILED: 1 error; ")
    assert lines[-1] == (
        "the image files were looked for, not opened or decoded (--no-image-check): `train` and "
        "`eval` decode every one; `sparsercnn validate` without --no-image-check does too, and "
        f"finds unreadable, truncated or resized images in {image_dir}"
    )
    decoded = validate_coco(json_path, image_dir)
    assert [i.code for i in decoded.errors] == ["image_file_missing", "image_file_unreadable"]
    assert decoded.format().splitlines()[-1].startswith("FAILED: 2 errors; ")

    coco = data.read_json()
    first = [ann for ann in coco["annotations"] if ann["image_id"] == 1]
    data.write_json({**coco, "images": coco["images"][:1], "annotations": first})
    assert validate_coco(json_path, image_dir).format().splitlines()[-1] == (
        "OK: no errors in the JSON's entries and every image file, decoded in full."
    )
    lines = validate_coco(json_path, image_dir, image_check="exists").format().splitlines()
    assert lines[-2] == "OK: no errors in the JSON's entries and that every image file exists."
    lines = validate_coco(json_path, image_dir, image_check="none").format().splitlines()
    assert lines[-2] == "OK: no errors in the JSON's entries alone."
    assert lines[-1].startswith("the image files were not looked for: ")
    assert "finds missing, unreadable, truncated or resized images" in lines[-1]


def test_issues_past_the_cap_are_counted_and_every_one_listed_on_request(
    write_coco: WriteCoco,
) -> None:
    """Training's refusal sends the user to ``validate`` for every bad file, which listed 10 of
    each kind and no way to see the rest: it says how many it left out and how to list them."""
    data = write_coco(num_images=13, size=(30, 40))
    for path in data.image_paths[:12]:
        path.unlink()
    report = validate_coco(data.json_path, data.image_dir, image_check="exists")
    lines = report.format().splitlines()
    assert sum(line.startswith("  [image_file_missing]") for line in lines) == 10
    assert "  ... and 2 more [image_file_missing]" in lines
    assert lines[-3] == "2 issues not listed above: `sparsercnn validate --all` lists every one"
    every = report.format(max_per_code=None).splitlines()
    assert sum(line.startswith("  [image_file_missing]") for line in every) == 12
    assert not any("not listed" in line or "more [" in line for line in every)
    with pytest.raises(DatasetError, match=f"--images {data.image_dir} --all` lists each"):
        CocoDataset(data.json_path, data.image_dir)


def test_skip_invalid_is_suggested_only_where_dropping_entries_helps(write_coco: WriteCoco) -> None:
    data = write_coco(file_names=["a.png", "b.png"], size=(30, 40))
    coco = data.read_json()
    coco["annotations"][0]["bbox"] = [1, 2, 3]
    data.write_json(coco)
    verdict = validate_coco(data.json_path, data.image_dir).format().splitlines()[-1]
    assert verdict.startswith("FAILED: 1 error; ") and "or pass --skip-invalid to" in verdict

    data.write_json({**coco, "images": [], "annotations": []})
    verdict = validate_coco(data.json_path, data.image_dir).format().splitlines()[-1]
    assert verdict == (
        "FAILED: 1 error; `sparsercnn train` and `eval` refuse this dataset, with --skip-invalid "
        "too: [no_images] is about the whole dataset, which dropping the offending entries "
        "cannot fix. Fix the files as the errors above say."
    )
    # Bad boxes everywhere: dropping them leaves nothing to learn from.
    for ann in coco["annotations"]:
        ann["bbox"] = [1, 2, -3, 4]
    data.write_json({**coco, "categories": []})
    report = validate_coco(data.json_path, data.image_dir)
    verdict = report.format().splitlines()[-1]
    assert "with --skip-invalid too: [no_categories] and [no_boxes] are about" in verdict
    assert "pass --skip-invalid" not in verdict


def test_every_count_of_the_report_agrees_with_its_noun(write_coco: WriteCoco) -> None:
    """One of each: "1 category", "1 box", "1 error", never "1 categories"."""
    data = write_coco(
        file_names=["a.png", "b.png"],
        size=(30, 40),
        categories=[{"id": 1, "name": "x"}],
        boxes=[
            [Box(1, (0, 0, 5, 5)), Box(1, (0, 0, 0, 5)), Box(1, (0, 0, 8, 8), iscrowd=True)],
            [],
        ],
    )
    coco = data.read_json()
    coco["annotations"].append(box(9, 1, 1, [38, 0, 4, 4]))  # clipped: 1 warning
    coco["annotations"].append(box(10, 1, 1, [1, 2, 3]))  # 1 error
    data.write_json(coco)
    text = validate_coco(data.json_path, data.image_dir).format()
    for phrase in (
        "usable: 2 boxes and 1 crowd region (not trained on)",
        "of the 3 objects evaluated",
        "1 zero-size box included",
        "boxes per category (1 category):",
        "\n1 error:\n",
        "\n2 warnings:\n",
        "\n1 info:\n",
        "FAILED: 1 error; ",
    ):
        assert phrase in text
    plural_after_one = r"(?<![\w.'\[])1 (errors|warnings|categories|boxes|objects|regions|images)"
    assert not re.search(plural_after_one, text), text
    data.write_json({**coco, "annotations": coco["annotations"][:1]})
    text = validate_coco(data.json_path, data.image_dir).format()
    assert "usable: 1 box and 0 crowd regions" in text and "of the 1 object evaluated" in text


def test_an_image_whose_boxes_are_all_unusable_is_not_called_a_negative(
    write_coco: WriteCoco,
) -> None:
    """It would be learnt as background with --skip-invalid: the report says so, and why."""
    data = write_coco(
        file_names=["a.png", "b.png", "c.png", "d.png"],
        size=(30, 40),
        categories=[{"id": 1, "name": "x"}, {"id": 2, "name": "unused"}],
        boxes=[[Box(1, (0, 0, 5, 5))], [], [Box(1, (0, 0, 5, 5))] * 2, [Box(1, (0, 0, 0, 5))]],
    )
    coco = data.read_json()
    coco["annotations"][1]["bbox"] = [1, 2, -3, 4]
    coco["annotations"][2]["id"] = "3"
    data.write_json(coco)
    report = validate_coco(data.json_path, data.image_dir)
    assert [issue.image_id for issue in by_code(report, "image_without_boxes")] == [2]
    assert [issue.image_id for issue in by_code(report, "image_without_usable_boxes")] == [3, 4]
    messages = {issue.image_id: issue.message for issue in report.infos}
    assert messages[2] == "image 2 ('b.png') has no boxes (kept as a negative example)"
    assert messages[3].startswith("image 3 ('c.png') has no usable box: 2 annotations with errors;")
    assert "with --skip-invalid it is trained as a negative example" in messages[3]
    assert messages[4].startswith("image 4 ('d.png') has no usable box, only 1 zero-size box (")
    assert "categories without a usable box" not in report.format()
    assert (
        "1 category without a usable box (id 2): the model gets an output for it but never "
        "learns it; remove it from 'categories' unless it is meant so"
    ) in report.format()


def test_many_categories_without_a_box_are_listed_capped_with_a_count(
    write_coco: WriteCoco,
) -> None:
    categories = [{"id": i, "name": f"c{i}"} for i in range(1, 14)]
    data = write_coco(num_images=1, size=(30, 40), categories=categories, objects_per_image=1)
    text = validate_coco(data.json_path, data.image_dir).format()
    assert (
        "12 categories without a usable box (ids 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 ... (12 in all)): "
        "the model gets an output for each but never learns it; remove them from 'categories' "
        "unless they are meant so"
    ) in text, text


def test_exif_rotation_mismatch_is_an_error_saying_what_to_do(write_coco: WriteCoco) -> None:
    data = write_coco(file_names=["phone.jpg"], size=(30, 40), objects_per_image=0)
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed turned: 30 wide, 40 high
    Image.new("RGB", (40, 30)).save(data.image_paths[0], exif=exif)
    json_path, image_dir = data.json_path, data.image_dir
    (mismatch,) = by_code(validate_coco(json_path, image_dir), "image_exif_turned")
    assert mismatch.severity == "error" and "EXIF orientation 6" in mismatch.message


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("[]", "JSON list"),
        ('[{"image_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]', "detection results"),
        ('{"images": [], "annotations": []}', "'categories' missing"),
        ('{"images": {}, "annotations": [], "categories": []}', "'images' must be a JSON list"),
        ('{"images": [', "as JSON"),
        # The other exports of the annotation tools: what to export instead.
        (
            '[{"id": 1, "data": {"image": "/data/upload/1/a.jpg"}, "annotations": []}]',
            r"holds Label Studio tasks \(its 'JSON' export\).*: export the project as 'COCO'$",
        ),
        (
            '\ufeff<?xml version="1.0"?>\n<annotations><version>1.1</version></annotations>',
            r"is XML, not JSON \(a 'CVAT for images' or Pascal VOC export\?\): export the "
            "annotations as COCO$",
        ),
    ],
)
def test_files_that_are_not_coco_instances(tmp_path: Path, content: str, match: str) -> None:
    json_path = tmp_path / "weird.json"
    json_path.write_text(content)
    with pytest.raises(DatasetError, match=match) as info:
        validate_coco(json_path, tmp_path)
    assert "weird.json" in str(info.value)


def test_a_file_in_another_encoding_than_utf8_says_so(tmp_path: Path) -> None:
    json_path = tmp_path / "latin1.json"
    json_path.write_bytes('{"images": [{"file_name": "café.jpg"}]}'.encode("latin-1"))
    with pytest.raises(AnnotationFileError, match=r"is not UTF-8 text \(byte 0xe9 at offset 30\)"):
        load_coco_json(json_path)


def test_a_folder_given_as_the_annotation_file_names_the_json_files_in_it(tmp_path: Path) -> None:
    """A Roboflow split's folder, which holds its _annotations.coco.json beside the images."""
    (tmp_path / "a.jpg").write_bytes(b"")
    with pytest.raises(AnnotationFileError) as info:
        load_coco_json(tmp_path)
    assert str(info.value.given_as("--json")) == (
        f"annotation file {tmp_path} (the --json path) is a folder; give the COCO instances "
        "JSON file"
    )
    (tmp_path / "_annotations.coco.json").write_text("{}")
    with pytest.raises(AnnotationFileError, match=r"give the COCO JSON file in it \('_annotations"):
        load_coco_json(tmp_path)


def test_an_unreadable_annotation_file_names_every_flag_until_told_which(tmp_path: Path) -> None:
    with pytest.raises(AnnotationFileError) as info:
        load_coco_json(tmp_path / "absent.json")
    error = info.value
    assert str(error) == (
        f"annotation file {tmp_path / 'absent.json'} (the --json, --train-json or --val-json "
        "path) was not found: check the path"
    )
    assert "(the --val-json path) was not found" in str(error.given_as("--val-json"))
    assert str(pickle.loads(pickle.dumps(error))) == str(error)  # crosses processes whole


def test_a_blank_category_name_is_kept_with_a_warning() -> None:
    categories = [{"id": 3, "name": "car"}, {"id": 7, "name": " "}]
    data = {"images": [image(1, "a.png")], "annotations": [], "categories": categories}
    checked = check_coco(data, "x.json")
    assert [c["id"] for c in checked.categories] == [3, 7]
    (issue,) = checked.issues
    assert (issue.severity, issue.code) == ("warning", "blank_category_name")
    assert issue.message.startswith("category 7 (categories[1]) has a blank name ' '")


def test_a_tools_placeholder_category_is_named_as_such() -> None:
    """Roboflow's project category (id 0, the others' supercategory) and labelme2coco's
    _background_: no annotation uses them, and trained they are classes that never occur."""
    categories = [
        {"id": 0, "name": "shapes", "supercategory": "none"},
        {"id": 1, "name": "box", "supercategory": "shapes"},
        {"id": 2, "name": "_background_", "supercategory": None},
        {"id": 3, "name": "parent"},  # a parent that is annotated itself: a class
        {"id": 4, "name": "child", "supercategory": "parent"},
    ]
    anns = [box(10, 1, 1, [1, 2, 10, 10]), box(11, 1, 3, [1, 2, 10, 10])]
    data = {"images": [image(1, "a.png")], "annotations": anns, "categories": categories}
    checked = check_coco(data, "x.json")
    assert [c["id"] for c in checked.categories] == [0, 1, 2, 3, 4]  # kept: a warning only
    assert [(i.severity, i.code) for i in checked.issues] == [
        ("warning", "placeholder_category")
    ] * 2
    roboflow, labelme = (issue.message for issue in checked.issues)
    assert roboflow == (
        "category 0 'shapes' has no annotation and is the 'supercategory' of categories 1 (as the "
        "project category of a Roboflow export is); it is trained as a class that never occurs "
        "(an extra output): remove it from 'categories'"
    )
    assert labelme.startswith(
        "category 2 '_background_' has no annotation and is named as a background class (as "
        "labelme2coco writes one): Sparse R-CNN needs none"
    )


def test_ids_and_sizes_as_tools_misspell_them_say_how_to_write_them() -> None:
    """A VOC-to-COCO converter's file names as image ids, a quoted size, a category with only a
    'supercategory'."""
    images = [{**image(1, "a.png"), "id": "2008_000008"}, {**image(2, "b.png"), "width": "40"}]
    categories = [{"id": 3, "supercategory": "car"}, {"id": 4, "name": "bus"}]
    data = {"images": images, "annotations": [], "categories": categories}
    category, named_image, quoted = (issue.message for issue in check_coco(data, "x.json").issues)
    assert category == (
        "category 3 (categories[0]): 'name' is missing, only a 'supercategory' 'car': give the "
        "class a name"
    )
    assert named_image == (
        "images[0] ('a.png'): 'id' is \"2008_000008\", not an integer: COCO ids are integers; "
        "number the images (1, 2, ...) and write each one's number as its annotations' 'image_id'"
    )
    assert quoted == (
        "image 2 (images[1]): 'width' must be a positive integer, got '40' (write it without "
        "quotes)"
    )


def test_boxes_written_as_corners_are_named_as_such_once() -> None:
    """An exporter that wrote [x1, y1, x2, y2]: the per-box errors alone do not say why."""
    corners = [[20, 10, 38, 28], [12, 3, 30, 20], [5, 5, 6, 6]]  # every one inside 40x30
    data = {
        "images": [image(1, "a.png"), image(2, "b.png")],
        "annotations": [box(i, 1 + i % 2, 1, bbox) for i, bbox in enumerate(corners)],
        "categories": [{"id": 1, "name": "thing"}],
    }
    checked = check_coco(data, "corners.json")
    first, *rest = checked.issues
    assert (first.severity, first.code) == ("warning", "bbox_corners")
    assert first.message.startswith("corners.json: 2 of 3 boxes extend past the right or bottom")
    assert "write each 'bbox' as [x1, y1, x2 - x1, y2 - y1]" in first.message
    assert sorted(issue.code for issue in rest) == ["box_clipped", "box_outside_image"]
    # Genuine [x, y, w, h] boxes, one a little past the edge: no such hint.
    data["annotations"].append(box(9, 1, 1, [30, 25, 5, 5]))  # x > w: not corners
    assert "bbox_corners" not in [issue.code for issue in check_coco(data, "x.json").issues]


def test_boxes_written_as_fractions_of_the_image_are_named_as_such_once() -> None:
    """Was: a file of normalised boxes (YOLO's, some converters') passed without a warning and
    trained on boxes under a pixel."""
    fractions = [[0.25, 0.5, 0.25, 0.2], [0.1, 0.1, 0.5, 0.5]]
    data = {
        "images": [image(1, "a.png", 640, 480), image(2, "b.png", 640, 480)],
        "annotations": [box(i, 1 + i, 1, bbox) for i, bbox in enumerate(fractions)],
        "categories": [{"id": 1, "name": "thing"}],
    }
    (issue,) = check_coco(data, "f.json").issues
    assert (issue.severity, issue.code) == ("warning", "bbox_fractions")
    assert issue.message.startswith(
        "f.json: every one of the 2 boxes lies within [0, 1] (image 1: [0.25, 0.5, 0.25, 0.2]), "
        "on images of 480 px or more a side: fractions of the image size?"
    )
    data["annotations"].append(box(7, 1, 1, [10, 20, 30, 40]))
    assert check_coco(data, "f.json").issues == []


def test_boxes_in_pixels_of_a_larger_image_are_named_as_such_once() -> None:
    """Was: the sign was computed, then dropped: a file of boxes drawn on images twice the size
    the JSON gives got one box_outside_image error per box and no word of why."""
    double = [[40, 30, 30, 20], [50, 36, 20, 20], [44, 32, 30, 24], [2, 2, 10, 8]]  # on 80x60
    data = {
        "images": [image(1, "a.png"), image(2, "b.png")],
        "annotations": [box(i, 1 + i % 2, 1, bbox) for i, bbox in enumerate(double)],
        "categories": [{"id": 1, "name": "thing"}],
    }
    first, *rest = check_coco(data, "big.json").issues
    assert (first.severity, first.code) == ("warning", "bbox_outside")
    assert first.message == (
        "big.json: 3 of 4 boxes lie mostly outside their image (images 1, 2): COCO's 'bbox' is "
        "[x, y, width, height] in pixels of the image at the size the annotation file gives "
        f"it. {OUTSIDE_CAUSES}"
    )
    assert [issue.code for issue in rest] == ["box_outside_image"] * 3


def test_refusal_to_train_on_boxes_outside_their_images_says_why(write_coco: WriteCoco) -> None:
    far = [Box(1, (35, 30, 60, 55)), Box(1, (30, 25, 40, 40))]
    data = write_coco(size=(30, 40), boxes=[far, [Box(1, (2, 3, 9, 9)), *far[:1]]])
    with pytest.raises(DatasetError, match=r"\[bbox_outside\] .*: 3 of 4 boxes lie mostly"):
        CocoDataset(data.json_path, data.image_dir)


def test_a_box_past_the_edge_by_an_exporter_s_rounding_is_clipped_without_a_warning() -> None:
    """Label Studio and FiftyOne store boxes as fractions of the image: a box drawn to the edge
    comes back 1e-13 px past it, and one rounded to two decimals 0.01 px. Such a box is inside
    for every check (no warning for a file of good boxes), and trained clipped."""
    width, height = 40, 30
    x, w = 8 / 100 * width, 92 / 100 * width  # x + w == 40.00000000000001
    y, h = 7 / 100 * height, 93 / 100 * height  # y + h == 30.000000000000004
    assert x + w > width and y + h > height
    data = {
        "images": [image(1, "a.png", width, height)],
        "annotations": [
            box(1, 1, 1, [x, y, w, h]),
            box(2, 1, 1, [-0.01, 20.335, 10.0, 9.675]),  # rounded to two decimals
            box(3, 1, 1, [35.0, 20.0, 5.1, 5.0]),  # 0.1 px past: a box drawn past the edge
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    checked = check_coco(data, "ls.json")
    assert [(issue.code, issue.annotation_id) for issue in checked.issues] == [("box_clipped", 3)]
    trained = {ann["id"]: ann["bbox"] for ann in checked.annotations}
    assert trained[1] == pytest.approx([x, y, width - x, height - y])
    assert trained[1][0] + trained[1][2] <= width and trained[1][1] + trained[1][3] <= height
    assert trained[2] == pytest.approx([0.0, 20.335, 9.99, 9.665])
    # Evaluation scores every box as the file gives it.
    assert [ann["bbox"] for ann in checked.ground_truth] == [
        ann["bbox"] for ann in data["annotations"]
    ]
    # Was: with no clip tolerance, a box 1e-13 px past the edge was box_outside_image.
    strict = check_coco(data, "ls.json", clip_tolerance=0)
    assert [(issue.code, issue.annotation_id) for issue in strict.issues] == [
        ("box_outside_image", 3)
    ]
    assert [ann["bbox"] for ann in strict.annotations] == [trained[1], trained[2]]


def test_annotations_marked_ignore_are_named_once_as_trained_and_evaluated() -> None:
    """COCO's tools read 'iscrowd' only: boxes a converter marked "ignore": 1 (detectron2
    refuses them) are trained and evaluated as objects, which one warning says; Label Studio's
    "ignore": 0 beside every box, and a crowd region's, say nothing."""
    annotations = [box(i, 1, 1, [1, 1, 5, 5], ignore=1) for i in range(1, 8)]
    annotations += [box(8, 1, 1, [1, 1, 5, 5], ignore=0), box(9, 1, 1, [1, 1, 5, 5], ignore="0")]
    annotations.append(box(10, 1, 1, [1, 1, 5, 5], ignore=1, iscrowd=1))
    data = {
        "images": [image(1, "a.png")],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "thing"}],
    }
    checked = check_coco(data, "x.json")
    assert [(issue.severity, issue.code) for issue in checked.issues] == [
        ("warning", "ignore_flag")
    ]
    assert checked.issues[0].message == (
        '7 annotations in x.json (ids 1, 2, 3, 4, 5 ... (7 in all)) have "ignore": 1, which '
        "COCO's tools do not read: they are trained and evaluated as objects; to make them "
        "regions that neither counts, set their 'iscrowd' to 1"
    )
    assert len(checked.annotations) == 10


def test_refusal_to_train_on_corner_boxes_says_so(write_coco: WriteCoco) -> None:
    data = write_coco(size=(30, 40), boxes=[[Box(1, (20, 10, 38, 28))], [Box(1, (2, 3, 30, 20))]])
    with pytest.raises(DatasetError, match=r"\[bbox_corners\] .* read as corners"):
        CocoDataset(data.json_path, data.image_dir)


def test_missing_json_and_bad_entries(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        validate_coco(tmp_path / "absent.json", tmp_path)
    data = {
        "images": [{"file_name": "a.png"}, image(1, "")],
        "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}, "oops"],
        "categories": [{"id": 1}, {"name": "no id"}],
    }
    checked = check_coco(data, "inline.json")
    codes = sorted(issue.code for issue in checked.issues)
    assert codes.count("bad_category") == 2 and codes.count("bad_image") == 2
    assert codes.count("bad_annotation") == 2 and "no_categories" in codes
    (none,) = [issue.message for issue in checked.issues if issue.code == "no_categories"]
    assert none == (
        "inline.json: no valid category: list the classes in 'categories' as "
        '{"id": integer, "name": string}'
    )
    assert not checked.images and not checked.annotations and not checked.categories


def test_truncated_image_and_zero_boxes_are_errors(write_coco: WriteCoco) -> None:
    data = write_coco(file_names=["a.jpg", "b.jpg"], size=(30, 40), objects_per_image=0)
    truncate(data.image_dir / "b.jpg")
    json_path, image_dir = data.json_path, data.image_dir
    report = validate_coco(json_path, image_dir)
    (truncated,) = by_code(report, "image_file_unreadable")
    assert truncated.image_id == 2 and "b.jpg" in truncated.message
    assert "truncated" in truncated.message
    (empty,) = by_code(report, "no_boxes")
    assert empty.severity == "error" and "nothing to learn" in empty.message
    assert report.summary.num_images == 1


def test_size_ranges_count_what_coco_evaluation_scores(write_coco: WriteCoco) -> None:
    """COCOeval's ranges are closed (an object is ignored in a range when ``area < lo or area >
    hi``), on the ``area`` field, else the box as the file gives it (not as clipped)."""
    data = write_coco(file_names=["a.png"], size=(200, 300), objects_per_image=0)
    annotations = [
        box(1, 1, 1, [0, 0, 32, 32], area=1024),  # small and medium
        box(2, 1, 1, [0, 0, 96, 96], area=9216.0),  # medium and large
        box(3, 1, 1, [0, 0, 10, 10], area=5000),  # the area field wins: medium
        box(4, 1, 1, [290, 0, 20, 60]),  # no area: 20 * 60 = 1200 as given (clipped: 600)
        box(5, 1, 1, [0, 0, 0, 10]),  # zero size: not trained on, scored as small
        box(6, 1, 1, [0, 0, 5, 5], area=math.nan),  # in every range
        box(7, 1, 1, [0, 0, 5, 5], area=2e10),  # in none
        box(8, 1, 1, [0, 0, 5, 5], area=1024, iscrowd=1),  # a crowd region: never counted
    ]
    categories = [{"id": 1, "name": "x"}]
    data.write_json(
        {
            "images": [image(1, "a.png", 300, 200)],
            "annotations": annotations,
            "categories": categories,
        }
    )
    summary = validate_coco(data.json_path, data.image_dir).summary

    assert summary.num_boxes == 6 and summary.num_scored_objects == 7
    assert (summary.num_small, summary.num_medium, summary.num_large) == (3, 5, 2)
    assert summary.num_sized_by_area_field == 5
    assert summary.num_in_several_ranges == 3 and summary.num_in_no_range == 1
    text = "\n".join(summary.format())
    assert "of the 7 objects evaluated: small 3, medium 5, large 2" in text
    assert "'area' field for 5, by the box's w*h" in text and "for 2; 1 zero-size" in text
    assert "3 objects counted in more than one range" in text
    assert "1 object in no range" in text


def test_size_ranges_agree_with_the_evaluator(write_coco: WriteCoco) -> None:
    """Each object in a category of its own, detected exactly: faster-coco-eval scores the
    category in a size range (precision not -1) exactly when the object counts in it."""
    from faster_coco_eval import COCO, COCOeval_faster

    data = write_coco(file_names=["a.png"], size=(200, 300), objects_per_image=0)
    sides = [10, 31, 32, 33, 95, 96, 97, 150]
    annotations = [box(i, 1, i, [0, 0, side, side]) for i, side in enumerate(sides, 1)]
    annotations.append(box(9, 1, 9, [290, 0, 20, 60]))  # clipped for training only: 1200
    annotations.append(box(10, 1, 10, [0, 0, 50, 50], area=math.nan))
    coco = {
        "images": [image(1, "a.png", 300, 200)],
        "annotations": annotations,
        "categories": [{"id": i, "name": str(i)} for i in range(1, 11)],
    }
    data.write_json(coco)
    summary = validate_coco(data.json_path, data.image_dir).summary

    for ann in annotations:  # what CocoEvaluator gives faster-coco-eval
        ann.update(iscrowd=0, area=coco_area(ann))
    gt = COCO(coco)
    results = [{**ann, "score": 1.0} for ann in annotations]
    evaluation = COCOeval_faster(gt, gt.loadRes(results), "bbox", print_function=lambda *_: None)
    evaluation.evaluate()
    evaluation.accumulate()
    # precision: (IoU thresholds, recall thresholds, categories, area ranges, max dets)
    scored = (evaluation.eval["precision"][0, 0, :, 1:, -1] > -1).sum(axis=0)
    counts = [summary.num_small, summary.num_medium, summary.num_large]
    assert counts == scored.tolist() == [4, 6, 4]


def test_an_entry_rejected_for_its_id_takes_its_annotations_along() -> None:
    """An image or category whose id is written as a string (or a fraction) is one error saying
    how to write it; its annotations are not reported as of an unknown image or category."""
    data = {
        "images": [image(1, "a.png"), {**image(0, "b.png"), "id": "4"}, image(5, "c.png")],
        "categories": [{"id": 3, "name": "car"}, {"id": "2", "name": "bus"}],
        "annotations": [
            box(10, 1, 3, [1, 2, 10, 10]),
            box(11, 4, 3, [1, 2, 10, 10]),  # of the rejected image: counted in its error
            box(12, 4, 3, [1, 2, 10, 10]),
            box(13, "4", 3, [1, 2, 10, 10]),  # a string itself: an error of its own
            box(14, 5, 2, [1, 2, 10, 10]),  # of the rejected category
            box(15, 1, "3", [1, 2, 10, 10]),
        ],
    }
    checked = check_coco(data, "x.json")
    codes = [issue.code for issue in checked.issues]
    assert "unknown_image_id" not in codes and "unknown_category_id" not in codes
    by = {issue.code: issue for issue in checked.issues if issue.code != "bad_annotation"}
    assert by["bad_image"].message == (
        "images[1] ('b.png'): 'id' is \"4\", not an integer: write it as 4, without quotes; "
        "its 2 annotations are left out with it"
    )
    assert by["bad_image"].file == "b.png" and by["bad_image"].image_id is None
    assert by["bad_category"].message == (
        "categories[1] (name 'bus'): 'id' is \"2\", not an integer: write it as 2, without "
        "quotes; its 1 annotation is left out with it"
    )
    rejected = by["rejected_category"]
    assert (rejected.severity, rejected.image_id, rejected.annotation_id) == ("error", 5, 14)
    assert "its category 2 is left out for the error at categories[1]" in rejected.message
    strings = {i.annotation_id: i for i in checked.issues if i.code == "bad_annotation"}
    assert strings[13].message == (
        "annotation 13: 'image_id' is \"4\", not an integer: write it as 4, without quotes"
    )
    assert strings[15].image_id == 1 and "'category_id' is \"3\"" in strings[15].message
    assert [ann["id"] for ann in checked.annotations] == [10]

    data["images"][1]["id"] = 4.5
    (bad,) = [i for i in check_coco(data, "x.json").issues if i.code == "bad_image"]
    assert bad.message.endswith("'id' is 4.5, not an integer: COCO ids are integers")


def test_an_id_and_its_whole_float_in_one_file_are_a_duplicate_not_merged() -> None:
    """A regression guard, not a fix's test: 1 and 1.0 are one id, reported as repeated (with
    the float_id warning), never two entries of one id kept, nor one silently dropped."""
    data = {
        "images": [image(1, "a.png"), {**image(2, "b.png"), "id": 1.0}],
        "categories": [{"id": 3, "name": "car"}, {"id": 3.0, "name": "bus"}],
        "annotations": [box(10, 1, 3, [1, 2, 10, 10]), box(10.0, 1, 3, [5, 2, 10, 10])],
    }
    checked = check_coco(data, "x.json")
    codes = [issue.code for issue in checked.issues]
    assert codes == [
        "float_id",
        "duplicate_category_id",
        "duplicate_image_id",
        "duplicate_annotation_id",
    ]
    assert "image id 1 ('b.png') is repeated at images[1], first at images[0]" in str(
        checked.issues[2]
    )
    assert [image["file_name"] for image in checked.images] == ["a.png"]


def test_numpy_integer_ids_of_a_dict_built_in_memory_are_the_integers() -> None:
    """Was: refused as no integer ('id' is "np.int64(1)"), as the evaluation's ground truth
    reads them; now one rule for both (json_values.with_integer_ids), and no float_id warning:
    they are integers."""
    data = {
        "images": [{**image(0, "a.png"), "id": np.int64(1)}],
        "categories": [{"id": np.int32(3), "name": "car"}],
        "annotations": [box(np.int64(10), np.int64(1), np.int64(3), [1, 2, 10, 10])],
    }
    checked = check_coco(data, "x.json")
    assert checked.issues == []
    ann = checked.annotations[0]
    assert all(type(ann[key]) is int for key in ("id", "image_id", "category_id"))
    assert type(checked.images[0]["id"]) is int and type(checked.categories[0]["id"]) is int


def test_ids_written_as_whole_floats_are_read_as_integers_with_one_warning() -> None:
    """Was: refused, every annotation an error (pandas writes integer columns as 3.0). Now
    read as the integers, counted in one warning; a fraction, or a float too large to hold its
    digits, is still refused; the parsed file is not modified."""
    data = {
        "images": [{**image(0, "a.png"), "id": 1.0}, image(2, "b.png")],
        "categories": [{"id": 3.0, "name": "car"}],
        "annotations": [
            {**box(10.0, 1.0, 3.0, [1, 2, 10, 10]), "area": 100},
            box(11, 2, 3, [1, 2, 10, 10]),
            box(12, 2.5, 3, [1, 2, 10, 10]),
            box(13, 2, 2.0**60, [1, 2, 10, 10]),
        ],
    }
    checked = check_coco(data, "x.json")
    assert [issue.code for issue in checked.issues] == ["float_id", *["bad_annotation"] * 2]
    note, fraction, large = checked.issues
    assert note.severity == "warning" and note.message == (
        "x.json: 5 ids written as whole floats (3.0, as pandas writes integer columns) are read "
        "as the integers (images[].id 1, categories[].id 1, annotations[].id 1, "
        "annotations[].image_id 1, annotations[].category_id 1); write ids as integers (e.g. "
        "df.astype({'image_id': int}))"
    )
    assert "'image_id' is 2.5, not an integer: COCO ids are integers" in fraction.message
    assert "a float this large may have lost digits" in large.message
    assert [type(image["id"]) for image in checked.images] == [int, int]
    assert checked.categories == [{"id": 3, "name": "car"}]
    first = checked.annotations[0]
    assert (first["id"], first["image_id"], first["category_id"]) == (10, 1, 3)
    assert all(type(first[key]) is int for key in ("id", "image_id", "category_id"))
    assert [ann["id"] for ann in checked.ground_truth] == [10, 11]
    assert type(checked.ground_truth[0]["id"]) is int
    assert data["images"][0]["id"] == 1.0 and type(data["images"][0]["id"]) is float


def test_an_annotation_whose_category_is_rejected_is_not_a_negative_example(
    write_coco: WriteCoco,
) -> None:
    """Its image is not called a negative example: its box has an error (the category's)."""
    data = write_coco(file_names=["a.png"], size=(30, 40), objects_per_image=0)
    data.write_json(
        {
            "images": [image(1, "a.png")],
            "categories": [{"id": 1, "name": "x"}, {"id": 2}],
            "annotations": [box(10, 1, 1, [1, 2, 10, 10]), box(11, 1, 2, [1, 2, 10, 10])],
        }
    )
    report = validate_coco(data.json_path, data.image_dir)
    (category,) = by_code(report, "bad_category")
    assert category.message == (
        "category 2 (categories[1]): 'name' is missing: give the class a name; its 1 annotation "
        "is left out with it"
    )
    assert [issue.annotation_id for issue in by_code(report, "rejected_category")] == [11]


def test_an_image_id_beyond_64_bits_is_refused_not_a_crash(write_coco: WriteCoco) -> None:
    data = write_coco(file_names=["a.png", "b.png"], size=(30, 40))
    coco = data.read_json()
    huge = 2**64 - 5
    coco["images"][0]["id"] = huge
    for ann in coco["annotations"]:
        ann["image_id"] = huge if ann["image_id"] == data.image_ids[0] else ann["image_id"]
    data.write_json(coco)
    (bad,) = by_code(validate_coco(data.json_path, data.image_dir), "bad_image")
    assert f"'id' {huge} does not fit in 64 bits" in bad.message
    assert "its 2 annotations are left out with it" in bad.message
    dataset = CocoDataset(data.json_path, data.image_dir, skip_invalid=True)
    assert dataset.image_ids == [data.image_ids[1]]


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({"width": -1}, "'width' must be a positive integer, got -1"),
        ({"width": None}, "'width' is null: its file's size is used only where the image files"),
        ({"height": "30"}, "'height' must be a positive integer, got '30'"),
        ({"bbox": ["1", "2", "3", "4"]}, "(write the numbers without quotes)"),
        ({"bbox": None}, "'bbox' must be 4 numbers [x, y, w, h], got None"),
    ],
)
def test_a_missing_or_quoted_value_is_named_as_such(change: dict[str, Any], text: str) -> None:
    entry, ann = image(1, "a.png"), box(10, 1, 3, [1, 2, 10, 10])
    for key, value in change.items():
        (ann if key == "bbox" else entry)[key] = value
    data = {"images": [entry], "annotations": [ann], "categories": [{"id": 3, "name": "car"}]}
    assert text in check_coco(data, "x.json").issues[0].message
    for key in change:
        del (ann if key == "bbox" else entry)[key]
    missing = check_coco(data, "x.json").issues[0].message
    assert f"'{next(iter(change))}' is missing" in missing


@pytest.mark.parametrize(
    ("bbox", "hint"),
    [(["1", "2", 10, 10], True), (["1", "2", "3"], False), (["10", "x", 3, 4], False)],
)
def test_a_quoted_bbox_is_told_to_be_unquoted_only_where_that_gives_4_numbers(
    bbox: list[Any], hint: bool
) -> None:
    data = {
        "images": [image(1, "a.png")],
        "annotations": [box(10, 1, 3, bbox)],
        "categories": [{"id": 3, "name": "car"}],
    }
    (issue,) = check_coco(data, "x.json").issues
    assert "'bbox' must be 4 numbers [x, y, w, h]" in issue.message
    assert ("(write the numbers without quotes)" in issue.message) == hint


@pytest.mark.parametrize(
    ("width", "hint"), [("40", True), ("40.0", True), ("-3", False), ("0.5", False)]
)
def test_a_quoted_size_is_told_to_be_unquoted_only_where_that_would_pass(
    width: str, hint: bool
) -> None:
    entry = image(1, "a.png") | {"width": width}
    data = {"images": [entry], "annotations": [], "categories": [{"id": 3, "name": "car"}]}
    (issue,) = check_coco(data, "x.json").issues
    assert f"'width' must be a positive integer, got {width!r}" in issue.message
    assert ("(write it without quotes)" in issue.message) == hint


@pytest.mark.parametrize(
    ("given", "said"),
    [({}, "'bbox' is missing, the"), ({"bbox": []}, "'bbox' is [], the"), ({"bbox": None}, "null")],
)
def test_a_segment_without_a_bbox_says_to_add_its_bounding_box(
    given: dict[str, Any], said: str
) -> None:
    ann = {"id": 10, "image_id": 1, "category_id": 3, "segmentation": [[1, 2, 11, 2, 11, 12]]}
    categories = [{"id": 3, "name": "car"}]
    data = {"images": [image(1, "a.png")], "annotations": [ann | given], "categories": categories}
    (issue,) = check_coco(data, "x.json").issues
    assert (issue.code, issue.annotation_id) == ("malformed_bbox", 10)
    assert said in issue.message
    assert "has only a 'segmentation': add the segment's bounding box as 'bbox'" in issue.message
    # An empty segmentation (Label Studio writes one beside every box) has no box to give.
    data["annotations"] = [ann | given | {"segmentation": []}]
    (issue,) = check_coco(data, "x.json").issues
    assert "segment" not in issue.message


def test_a_repeated_id_says_whether_the_entry_is_a_copy() -> None:
    """A file merged twice repeats whole entries (remove them); two entries sharing an id need
    ids of their own."""
    data = {
        "images": [image(1, "a.png"), image(1, "a.png")],
        "annotations": [box(10, 1, 3, [1, 2, 10, 10]), box(10, 1, 3, [5, 2, 10, 10])],
        "categories": [{"id": 3, "name": "car"}],
    }
    messages = {issue.code: issue.message for issue in check_coco(data, "x.json").issues}
    assert messages["duplicate_image_id"] == (
        "image id 1 ('a.png') is repeated at images[1], first at images[0] (identical): remove "
        "the repeat (--skip-invalid keeps the first)"
    )
    assert messages["duplicate_annotation_id"] == (
        "annotation id 10 (image 1, 'a.png') is repeated at annotations[1], first at "
        "annotations[0]: give each entry its own id (--skip-invalid keeps the first)"
    )


def test_an_annotation_with_a_bad_id_names_its_image_and_file() -> None:
    """A bad or repeated annotation id was named by its position alone: where it is in the
    user's tool is its image. An issue without an annotation id keeps no file (a file without
    one is the image's own issue, which ``--skip-invalid`` drops)."""
    data = {
        "images": [image(1, "a.png")],
        "annotations": [
            {"image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4]},
            box(5, 1, "x", [1, 2, 3, 4]),
            box(5, 1, 3, [1, 2, 3, 4]),
            box(6, 9, None, [1, 2, 3, 4]),
        ],
        "categories": [{"id": 3, "name": "car"}],
    }
    issues = check_coco(data, "x.json").issues
    assert [(i.code, i.image_id, i.annotation_id, i.file) for i in issues] == [
        ("bad_annotation", 1, None, None),
        ("bad_annotation", 1, 5, "a.png"),
        ("duplicate_annotation_id", 1, 5, "a.png"),
        ("bad_annotation", None, 6, None),
    ]
    assert issues[0].message == "annotations[0] (image 1, 'a.png'): 'id' is missing"
    assert issues[1].message.startswith("annotation 5 (image 1, 'a.png'): 'category_id' is ")
    assert issues[2].message.startswith("annotation id 5 (image 1, 'a.png') is repeated at ")
    assert issues[3].message.startswith("annotation 6: 'category_id' is null")


def test_two_images_of_one_file_are_named_with_what_it_does() -> None:
    """One file under two image ids is trained (and evaluated) twice: a warning naming both ids
    and the file, which says so and what to do."""
    data = {
        "images": [image(1, "a.png"), image(2, "a.png")],
        "annotations": [box(10, 1, 3, [1, 2, 10, 10])],
        "categories": [{"id": 3, "name": "car"}],
    }
    (issue,) = check_coco(data, "x.json").issues
    assert (issue.severity, issue.code, issue.image_id, issue.file) == (
        "warning",
        "duplicate_file_name",
        2,
        "a.png",
    )
    assert issue.message == (
        "images 1 and 2 both use file 'a.png': the file is trained and evaluated as two images; "
        "remove one entry (merging its annotations into the other)"
    )


def test_boxes_are_checked_against_the_file_size_where_given() -> None:
    """The file's size is the truth for the boxes; the entry returned carries it."""
    data = {
        "images": [image(1, "a.png", 40, 30), image(2, "b.png", 40, 30), image(3, "c.png")],
        "annotations": [
            box(1, 1, 1, [50, 35, 10, 10]),  # past the JSON's 40x30, inside the file's 80x60
            box(2, 2, 1, [25, 5, 10, 10]),  # inside the JSON's 40x30, past the file's 20x15
            box(3, 2, 1, [5, 5, 15.5, 5]),  # a little past the file's 20: clipped to it
            box(4, 3, 1, [25, 5, 10, 10]),  # no file size known: the JSON's
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    assert [i.code for i in check_coco(data, "x.json").issues] == ["box_outside_image"]
    checked = check_coco(data, "x.json", image_sizes={1: (80, 60), 2: (20, 15), 3: (40, 30)})
    assert [(i.code, i.annotation_id) for i in checked.issues] == [
        ("box_outside_image", 2),
        ("box_clipped", 3),
    ]
    outside = checked.issues[0].message
    assert "exceeds the 20x15 (w x h) image by more than 5%" in outside
    # Self-contained: a refusal to train or evaluate shows it without the warnings.
    assert outside.endswith(
        "(its file's size, after EXIF orientation; the JSON gives 40x30: if the boxes were drawn "
        "on an image of the JSON's size, the file was resized since; rescale the boxes, or "
        "restore the file)"
    )
    assert [ann["id"] for ann in checked.annotations] == [1, 3, 4]
    assert checked.annotations[1]["bbox"] == [5.0, 5.0, 15.0, 5.0]
    assert [(im["width"], im["height"]) for im in checked.images] == [(80, 60), (20, 15), (40, 30)]
    assert data["images"][0]["width"] == 40  # the parsed file is not modified


def test_validate_checks_boxes_against_the_decoded_size(write_coco: WriteCoco) -> None:
    """A JSON of the wrong size: one warning per image with both sizes; a box inside the file
    is used, one outside it is an error, whatever the JSON's size says."""
    data = write_coco(size=(30, 40), boxes=[[Box(1, (50, 35, 10, 10))], [Box(1, (25, 5, 10, 10))]])
    Image.new("RGB", (80, 60)).save(data.image_paths[0])
    Image.new("RGB", (20, 15)).save(data.image_paths[1])
    report = validate_coco(data.json_path, data.image_dir)
    found = [(i.code, i.image_id, i.annotation_id) for i in report.issues if i.severity != "info"]
    assert found == [
        ("box_outside_image", 2, 2),
        ("image_size_mismatch", 1, None),
        ("image_size_mismatch", 2, None),
    ]
    assert report.summary.num_boxes == 1  # the box of image 1, inside its 80x60 file
    mismatch = report.warnings[0].message
    assert "the JSON gives 40x30 (w x h) but the file is 80x60" in mismatch
    # Without decoding, the JSON's size is all there is.
    exists = validate_coco(data.json_path, data.image_dir, image_check="exists")
    assert [(i.code, i.annotation_id) for i in exists.errors] == [("box_outside_image", 1)]


# What Label Studio and some converters write for an image's size: nothing, 0 or null.
NO_SIZES = {
    "missing": {},
    "zero": {"width": 0, "height": 0},
    "null": {"width": None, "height": None},
    "half": {"width": 40, "height": None},
}


@pytest.mark.parametrize("no_size", NO_SIZES.values(), ids=NO_SIZES.keys())
def test_an_image_entry_without_a_size_takes_its_file_s(no_size: dict[str, Any]) -> None:
    """One warning for all such entries; their boxes are checked against, and clipped to, the
    file's size, which the entries returned carry; a box outside it is still an error."""
    data = {
        "images": [{"id": i, "file_name": f"{i}.png", **no_size} for i in (1, 2)]
        + [image(3, "3.png")],
        "annotations": [
            box(1, 1, 1, [50, 35, 10, 10]),  # inside the file's 80x60
            box(2, 2, 1, [25, 5, 10, 10]),  # past the file's 20x15
            box(3, 2, 1, [5, 5, 15.5, 5]),  # a little past the file's 20: clipped to it
            box(4, 3, 1, [1, 1, 5, 5]),
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    checked = check_coco(data, "x.json", image_sizes={1: (80, 60), 2: (20, 15), 3: (40, 30)})
    found = [(i.code, i.severity, i.annotation_id) for i in checked.issues]
    assert found == [
        ("image_size_missing", "warning", None),
        ("box_outside_image", "error", 2),
        ("box_clipped", "warning", 3),
    ]
    assert checked.issues[0].message == (
        "2 images have no width/height in x.json (ids 1, 2): their files' sizes are used (after "
        "EXIF orientation)"
    )
    # Half a size given is checked against the file's (image_check's image_size_mismatch).
    resized = ": if the boxes were drawn on an image of the JSON's size, the file was resized"
    given = (
        f"width 40 and no height{resized} since; rescale the boxes, or restore the file"
        if no_size == NO_SIZES["half"]
        else "none"
    )
    assert checked.issues[1].message.endswith(
        "exceeds the 20x15 (w x h) image by more than 5% (its file's size, after EXIF "
        f"orientation; the JSON gives {given})"
    )
    assert [(im["width"], im["height"]) for im in checked.images] == [(80, 60), (20, 15), (40, 30)]
    assert [ann["id"] for ann in checked.annotations] == [1, 3, 4]
    assert checked.annotations[1]["bbox"] == [5.0, 5.0, 15.0, 5.0]
    assert checked.unsized_images == []
    assert data["images"][0] == {"id": 1, "file_name": "1.png", **no_size}  # not modified


def test_an_image_entry_without_a_size_is_an_error_while_its_file_s_is_unknown() -> None:
    """Not decoded (``--no-image-check``): the error says to decode or to write the size; a
    file that did not decode: the file's error (the image check's) is the image's only one, and
    its annotations go with it (not reported as of an unknown image); a size given wrong is an
    error whatever the file."""
    entries = [
        {"id": 1, "file_name": "a.png"},
        {"id": 2, "file_name": "b.png", "width": 0, "height": None},
        {"id": 3, "file_name": "c.png", "width": -40, "height": 30},
    ]
    annotations = [box(10, 1, 1, [1, 1, 5, 5]), box(11, 2, 1, [1, 1, 5, 5])]
    data = {"images": entries, "annotations": annotations, "categories": [{"id": 1, "name": "x"}]}
    checked = check_coco(data, "x.json")
    assert [(i.code, i.image_id) for i in checked.issues] == [("bad_image", i) for i in (1, 2, 3)]
    missing, zero, wrong = (issue.message for issue in checked.issues)
    assert missing == (
        "image 1 (images[0]): 'width' and 'height' are missing: its file's size is used only "
        "where the image files are decoded: drop --no-image-check (image_check='decode' in "
        "Python), or write its 'width' and 'height' in pixels, as the file has them; its 1 "
        "annotation is left out with it"
    )
    assert zero.startswith("image 2 (images[1]): 'width' is 0, 'height' is null: its file's")
    assert "'width' must be a positive integer, got -40" in wrong
    assert [entry["id"] for entry in checked.unsized_images] == [1, 2]
    undecoded = check_coco(data, "x.json", image_sizes={1: (40, 30)})
    assert [(i.code, i.image_id) for i in undecoded.issues] == [
        ("bad_image", 3),
        ("image_size_missing", None),
    ]
    assert [entry["id"] for entry in undecoded.unsized_images] == [2]
    assert [ann["id"] for ann in undecoded.annotations] == [10]
    # Not decoded, a file the image check refused (missing) is likewise the image's only error.
    missing_file = check_coco(data, "x.json", bad_files={1})
    assert [(i.code, i.image_id) for i in missing_file.issues] == [
        ("bad_image", 2),
        ("bad_image", 3),
    ]
    assert [entry["id"] for entry in missing_file.unsized_images] == [1, 2]


def test_validate_sizes_entries_without_a_size_by_their_decoded_files(
    write_coco: WriteCoco,
) -> None:
    """Missing, 0 and null sizes pass with one warning, an EXIF-turned file by its upright
    size; without decoding (``--no-image-check``) they are refused, saying what to do."""
    boxes = [[Box(1, (1, 1, 5, 5))], [Box(1, (25, 5, 10, 10))], [Box(1, (1, 30, 10, 8))], []]
    data = write_coco(size=(30, 40), boxes=boxes, file_format="jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40x30, read upright as 30x40: the box at y 30..38 fits that
    Image.new("RGB", (40, 30)).save(data.image_paths[2], exif=exif)
    coco = data.read_json()
    for entry, no_size in zip(coco["images"], NO_SIZES.values(), strict=True):
        entry.pop("width"), entry.pop("height")
        entry.update(no_size)
    data.write_json(coco)
    report = validate_coco(data.json_path, data.image_dir)
    assert [(i.code, i.severity) for i in report.issues if i.severity != "info"] == [
        ("image_size_missing", "warning")
    ]
    assert "4 images have no width/height" in report.warnings[0].message
    assert report.ok and report.summary.num_boxes == 3
    dataset = CocoDataset(data.json_path, data.image_dir)
    assert dataset.image_sizes == [(30, 40), (30, 40), (40, 30), (30, 40)]
    not_decoded = validate_coco(data.json_path, data.image_dir, image_check="exists")
    assert [(i.code, i.image_id) for i in not_decoded.errors] == [
        *[("bad_image", image_id) for image_id in data.image_ids],
        ("no_images", None),
    ]
    assert "drop --no-image-check" in not_decoded.errors[0].message


def test_what_issues_are_of_is_named_alike_in_every_summary() -> None:
    """Was: the log's summary named the others of a kind by image id, and only where all were
    of one kind; the --skip-invalid summary "annotation 11, annotation 12" or files. One
    listing: annotations, then files, then images, each once."""
    issues = [
        Issue("error", "x", "m", image_id=1, annotation_id=11),
        Issue("error", "x", "m", image_id=1, annotation_id=12),
        Issue("error", "x", "m", image_id=2, file="b.jpg"),
        Issue("error", "x", "m", image_id=2, file="b.jpg"),
        Issue("error", "x", "m", image_id=3),
        Issue("error", "x", "m"),
    ]
    assert issue_subjects(issues, limit=5) == "annotations 11, 12, b.jpg, image 3"
    assert issue_subjects(issues[:1], limit=5) == "annotation 11"
    assert issue_subjects(issues[-1:], limit=5) == ""
    sized = [
        Issue("warning", "image_size_mismatch", f"image {i} is resized", i, None, f"{i}.jpg")
        for i in range(1, 9)
    ]
    (line,) = summarize_issues(sized)
    assert line == (
        "  [image_size_mismatch] 8 issues, the first: image 1 is resized; the others: 2.jpg, "
        "3.jpg, 4.jpg, 5.jpg, 6.jpg ... (7 in all)"
    )
