"""A COCO results file read back: its records' keys checked, each given its image by id or by
``predict``'s file name, and every fault named in one line with the file."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from sparsercnn.evaluation.results import CocoResult
from sparsercnn.evaluation.results_file import (
    images_of_files,
    listed_unreadable_images,
    read_results_file,
    records_by_image,
    warn_box_format,
)

RECORD = {"image_id": 1, "category_id": 3, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.5}


def _file(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "d.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"results": "p.json", "videos": []}, r"is the frame list `sparsercnn predict` writes"),
        ({"images": [], "annotations": []}, r"is a COCO instances \(ground-truth\) file"),
        (
            {"images": [{"id": 1}], "annotations": [{"id": 1, "bbox": [0, 0, 1, 1]}]},
            r"is a COCO instances \(ground-truth\) file",
        ),
        (  # was: detections exported in COCO form were told a ground-truth file
            {"images": [{"id": 1}], "annotations": [RECORD]},
            r"its 'annotations' holds 1 record: give that list alone",
        ),
        ({"detections": []}, r"holds a JSON object, not a list of records;"),
        (
            {"info": {}, "annotations": [RECORD, RECORD]},
            r"holds a JSON object, not a list of records; its 'annotations' holds 2 records: give",
        ),
        (  # one entry amiss, even the first, leaves the hint; only records are counted
            {"info": {}, "annotations": [3, RECORD, {**RECORD, "bbox": None}]},
            r"its 'annotations' holds 2 records: give that list alone",
        ),
        ([RECORD, 3], r"record 1 \(3\) is not an object"),
        ([{**RECORD, "bbox": [1, 2, 3]}], r"record 0 .* has no bbox of 4 numbers"),
        ([{**RECORD, "score": "high"}], r"record 0 .* has no number as score;"),
        ([{**RECORD, "score": "0.9"}], r"has no number as score: write it as 0.9, without quotes"),
        (
            [{**RECORD, "bbox": ["1", 2, 3, 4]}],
            r"of 4 numbers .*: write its numbers without quotes",
        ),
        ([{**RECORD, "category_id": "3"}], r"""wrong id: 'category_id' is "3", not an integer:"""),
        ([{**RECORD, "image_id": "1"}], r"""'image_id' is "1", not an integer: write it as 1,"""),
        ([{**RECORD, "image_id": "a1"}], r"""'image_id' is "a1", not an integer: COCO ids are"""),
        ([{"image_id": 1, "bbox": [0, 0, 1, 1], "score": 1}], r"has no category_id \(the data"),
        ([{"category_id": 3, "bbox": [0, 0, 1, 1], "score": 1}], r"neither an image_id nor"),
        ([{**RECORD, "frame_index": 4, "file_name": "v.mp4"}], r"frame 4 of the video 'v.mp4'"),
    ],
)
def test_a_file_of_something_else_is_named_as_such(tmp_path: Path, data: Any, message: str) -> None:
    with pytest.raises(ValueError, match=r"d.json.*" + message + ".*a COCO results JSON is a list"):
        read_results_file(_file(tmp_path, data))


@pytest.mark.parametrize("bbox", [["1", "2", "3"], ["10", "x", 3, 4]])
def test_a_bbox_that_unquoting_would_not_fix_gets_no_such_hint(
    tmp_path: Path, bbox: list[Any]
) -> None:
    with pytest.raises(ValueError, match=r"has no bbox of 4 numbers") as raised:
        read_results_file(_file(tmp_path, [{**RECORD, "bbox": bbox}]))
    assert "without quotes" not in str(raised.value)


def test_text_that_is_no_json(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text("image 1: cat 0.9")
    with pytest.raises(ValueError, match=r"d.json is not JSON \(Expecting value"):
        read_results_file(path)


def test_non_finite_numbers_are_refused_naming_the_first_record(tmp_path: Path) -> None:
    """JSON's NaN and Infinity, and a number past a float's range, read as non-finite floats."""
    path = tmp_path / "d.json"
    path.write_text(
        '[{"image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4], "score": 0.5}, '
        '{"image_id": 1, "category_id": 3, "bbox": [1, 2, Infinity, 1e400], "score": NaN}, '
        '{"image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4], "score": 1e999}]'
    )
    with pytest.raises(ValueError) as refused:
        read_results_file(path)
    assert str(refused.value) == (
        f"{path}: record 1 "
        '({"image_id": 1, "category_id": 3, "bbox": [1, 2, Infinity, Infinity], "score": NaN}) '
        "has a NaN or infinite score and bbox: the file holds non-finite numbers (2 records with "
        "some), which COCO evaluation cannot rank or match; give a file of finite detections"
    )


def test_file_names_match_the_longest_ending_of_the_path() -> None:
    images = {1: "a.jpg", 2: "sub/a.jpg", 3: "./b.jpg"}
    records = [
        {**RECORD, "file_name": name}
        for name in ("/data/sub/a.jpg", "/data/other/a.jpg", "b.jpg", "x/../b.jpg")
    ]
    for record in records:
        del record["image_id"]
    grouped, left_out = records_by_image(records, images, source="d.json", ground_truth="gt")
    assert {i: len(r) for i, r in grouped.items()} == {2: 1, 1: 1, 3: 2}
    assert grouped[2] == [{**RECORD, "image_id": 2}] and left_out == 0


def test_a_file_name_that_several_images_share_is_refused_where_a_record_uses_it() -> None:
    """Records named by a file_name two images of the ground truth share all went to the
    last of them: which one each is of, only an image_id says."""
    images = {3: "a.jpg", 5: "b.jpg", 7: "./a.jpg"}
    by_id = [{**RECORD, "image_id": 3}, {**RECORD, "image_id": 7}]
    named = [{k: v for k, v in RECORD.items() if k != "image_id"} | {"file_name": "b.jpg"}]
    grouped, _ = records_by_image([*by_id, *named], images, source="d.json", ground_truth="gt")
    assert sorted(grouped) == [3, 5, 7]  # the shared name is used by no record
    shared = [named[0] | {"file_name": "val/a.jpg"}]
    with pytest.raises(ValueError) as refused:
        records_by_image([*named, *shared], images, source="d.json", ground_truth="gt")
    assert str(refused.value) == (
        "d.json: records name their image by file_name 'val/a.jpg', which is of images 3, 7 of "
        "gt (they share a file_name); give these records the image_id of their image instead"
    )
    with pytest.raises(ValueError, match="which is of images 3, 7 of gt"):
        records_by_image(shared, {3: "a.jpg"}, left_out={7: "a.jpg"}, source="d", ground_truth="gt")
    # predict's frame list naming the file as unreadable: each image of that file was unread.
    assert images_of_files(["val/a.jpg"], images) == {3: "val/a.jpg", 7: "val/a.jpg"}


def test_records_of_other_images_are_counted_and_a_few_named() -> None:
    records = [{**RECORD, "image_id": i} for i in (1, 50, 51, 52, 53, 54, 55, 55)]
    with pytest.raises(
        ValueError,
        match=r"d.json: 7 records of 6 image ids that gt does not "
        r"have: 50, 51, 52, 53, 54 ... \(6 in all\)",
    ):
        records_by_image(records, {1: "a.jpg"}, source="d.json", ground_truth="gt")
    grouped, left_out = records_by_image(
        records[:2], {1: "a.jpg"}, left_out={50: "b.jpg"}, source="d.json", ground_truth="gt"
    )
    assert list(grouped) == [1] and left_out == 1
    named = [{k: v for k, v in RECORD.items() if k != "image_id"} | {"file_name": "c.jpg"}]
    with pytest.raises(ValueError, match=r"1 record of 1 file that no image of gt is: c.jpg"):
        records_by_image(named, {1: "a.jpg"}, source="d.json", ground_truth="gt")


def test_ids_written_as_whole_floats_are_read_as_integers_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: refused ("has an image_id that is no integer") for pandas' 3.0. Now read as the
    integers, counted in one warning; a fraction is still refused, shown as the file gives it."""
    records = [{**RECORD, "image_id": 1.0, "category_id": 3.0}, {**RECORD, "image_id": 2.0}]
    path = _file(tmp_path, records)
    read = read_results_file(path)
    assert read == [RECORD, {**RECORD, "image_id": 2}]
    assert all(type(r["image_id"]) is int and type(r["category_id"]) is int for r in read)
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith(f"{path}: 3 ids written as whole floats (3.0, as pandas writes")
    assert "(image_id 2, category_id 1)" in warning
    caplog.clear()
    path = _file(tmp_path, [*records, {**RECORD, "image_id": 2.5, "category_id": 3.0}])
    with pytest.raises(ValueError, match=r'record 2 \(\{"image_id": 2.5, "category_id": 3.0,'):
        read_results_file(path)
    assert not caplog.records  # no warning about a file refused


def test_the_unreadable_images_of_predict_s_frame_list(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    results = _file(tmp_path, [])
    frame_list = tmp_path / "d.frames.json"
    assert listed_unreadable_images(results) is None  # no frame list: predict read every image
    # An entry without its name (a hand-edited list) is left out (was: KeyError).
    listed = [{"file_name": "x/a.jpg", "reason": "truncated"}, {"reason": "no name"}]
    frame_list.write_text(
        json.dumps({"results": "d.json", "videos": [], "unreadable_images": listed})
    )
    assert listed_unreadable_images(results) == (frame_list, ["x/a.jpg"])
    frame_list.write_text(json.dumps({"results": "other.json", "unreadable_images": listed}))
    assert listed_unreadable_images(results) is None
    assert "is not the frame list predict wrote with" in caplog.text


def test_images_of_files_match_as_records_do() -> None:
    images = {1: "a.jpg", 2: "sub/a.jpg", 3: "b.jpg"}
    assert images_of_files(["/data/sub/a.jpg", "c.jpg", "./b.jpg"], images) == {
        2: "/data/sub/a.jpg",
        3: "./b.jpg",
    }


@pytest.mark.parametrize(
    ("bbox", "message"),
    [
        (
            [1500, 1500, 500, 500],
            r"d.json: 3 of 3 boxes lie mostly outside their image \(images 1, 2",
        ),
        ([0.1, 0.2, 0.3, 0.25], r"d.json: every one of the 3 boxes lies within \[0, 1\]"),
        ([50, 30, 75, 55], r"d.json: 3 of 3 boxes extend past .* read as corners"),
    ],
)
def test_boxes_in_another_format_are_scored_with_one_warning(
    bbox: list[float], message: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: boxes far outside their 80x60 image, fractions of it or corners scored AP near 0
    with nothing to say why."""
    results: dict[int, list[CocoResult]] = {
        image_id: [{**RECORD, "image_id": image_id, "bbox": bbox}] for image_id in (1, 2, 3)
    }
    sizes = dict.fromkeys(results, (80, 60))
    with caplog.at_level(logging.WARNING):
        warn_box_format(results, sizes, tolerance=0.05, source="d.json")
    (warning,) = caplog.records
    assert re.search(message, warning.message)
    assert warning.message.endswith(
        "; scored as given, which scores boxes in another format near 0"
    )
    caplog.clear()
    good = {image_id: [{**RECORD, "image_id": image_id}] for image_id in results}
    warn_box_format(good, sizes, tolerance=0.05, source="d.json")
    assert not caplog.records
