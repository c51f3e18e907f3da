"""Signs that a file's boxes are in another format than COCO's [x, y, w, h] in pixels: the one
rule that annotation files and detections files are both read by."""

from __future__ import annotations

import pytest

from sparsercnn.box_format_evidence import BoxFormatEvidence


def _finding(boxes: list[list[float]], size: tuple[int, int] = (80, 60)) -> tuple[str, str] | None:
    """The finding of ``boxes``, each of its own image ``0, 1, ...`` of ``size`` (w, h)."""
    evidence = BoxFormatEvidence(tolerance=0.05)
    for image_id, bbox in enumerate(boxes):
        evidence.add(bbox, *size, image_id)
    return evidence.finding("d.json")


def test_boxes_of_coco_s_format_show_no_sign() -> None:
    """Boxes inside their image, one a model predicted past its edge, and none at all."""
    assert _finding([[10, 10, 30, 20], [60, 40, 25, 25], [0, 0, 80, 60], [3, 2, 0, 0]]) is None
    assert _finding([]) is None


def test_corners_are_told_by_boxes_past_the_edge_that_fit_as_corners() -> None:
    sign, message = _finding([[50, 30, 75, 55], [10, 10, 40, 30], [5, 5, 6, 6]]) or ("", "")
    assert sign == "corners"
    assert message.startswith(
        "d.json: 1 of 3 boxes extends past the right or bottom edge of their image (image 0) "
        "read as COCO's [x, y, w, h], but every box would lie inside its image read as corners"
    )
    # One box that cannot be corners (x2 < x1) and the file is not.
    assert (_finding([[50, 30, 75, 55], [70, 10, 15, 20]]) or ("",))[0] != "corners"


def test_boxes_mostly_outside_their_images_are_counted_and_a_few_named() -> None:
    boxes = [[1500, 1500, 500, 500]] * 7 + [[10, 10, 30, 20]] * 3
    sign, message = _finding(boxes) or ("", "")
    assert sign == "outside"
    assert message.startswith(
        "d.json: 7 of 10 boxes lie mostly outside their image (images 0, 1, 2, 3, 4 ... (7 in "
        "all)): COCO's 'bbox' is [x, y, width, height] in pixels of the image"
    )
    # Was: "rescale or convert them" only, as if the boxes were always the ones that are wrong.
    assert message.endswith(
        "If the boxes are in pixels of another size of their images (drawn on the originals of "
        "resized copies) or in another format, rescale or convert them; if the annotation "
        "file's image 'width' and 'height' are wrong (the size of thumbnails or resized copies), "
        "correct them to the size of the images the boxes were drawn on"
    )
    # A few of many (a detector's boxes past the edge) are no sign, nor two of a small file.
    assert _finding([[70, 50, 40, 40]] + [[10, 10, 30, 20]] * 9) is None
    assert _finding([[70, 50, 40, 40]] * 2 + [[10, 10, 30, 20]]) is None
    assert (_finding([[70, 50, 40, 40]] * 3 + [[10, 10, 30, 20]]) or ("",))[0] == "outside"


def test_images_are_named_not_boxes() -> None:
    """Five images with two such boxes each: the five are named, no more are implied."""
    evidence = BoxFormatEvidence(tolerance=0.05)
    for image_id in [1, 2, 3, 4, 5] * 2:
        evidence.add([1500, 1500, 500, 500], 80, 60, image_id)
    sign, message = evidence.finding("d.json") or ("", "")
    assert sign == "outside"
    assert "10 of 10 boxes lie mostly outside their image (images 1, 2, 3, 4, 5): " in message


@pytest.mark.parametrize(("size", "sign"), [((640, 480), "fractions"), ((4, 4), None)])
def test_boxes_all_within_0_1_are_fractions_on_images_of_more_than_a_few_px(
    size: tuple[int, int], sign: str | None
) -> None:
    finding = _finding([[0.125, 0.25, 0.5, 0.25], [0, 0, 1, 1]], size)
    assert (finding and finding[0]) == sign
    if finding is not None:
        assert (
            "every one of the 2 boxes lies within [0, 1] (image 0: [0.125, 0.25, 0.5, 0.25])"
            in (finding[1])
        )
        assert "multiply x and width by the image's width" in finding[1]


def test_one_box_is_told_in_the_singular() -> None:
    """Was: "1 of 1 boxes extend past", "every one of the 1 boxes lies within [0, 1]". One box
    mostly outside its image is no sign (fewer than MIN_MOSTLY_OUTSIDE): its own issue says it."""
    messages = [
        (_finding([bbox], size) or ("", ""))[1]
        for bbox, size in [
            ([50, 30, 75, 55], (80, 60)),
            ([1500, 1500, 500, 500], (80, 60)),
            ([0.125, 0.25, 0.5, 0.25], (640, 480)),
        ]
    ]
    assert messages[0].startswith("d.json: 1 of 1 box extends past the right or bottom edge")
    assert messages[1] == ""
    assert messages[2].startswith("d.json: its only box lies within [0, 1] (image 0: [0.125,")
