"""Drawing: same-size output, class colours at box edges, thresholding, side-by-side layout."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from sparsercnn.data.image_io import to_rgb
from sparsercnn.text import non_finite_outputs
from sparsercnn.visualization import (
    class_color,
    draw,
    draw_detections,
    draw_ground_truth_and_predictions,
    font,
)
from sparsercnn.visualization.draw import caption_tag
from sparsercnn.visualization.font import label_font

NAMES = ["cat", "dog", "eel"]


@pytest.fixture
def composed_panels(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Image.Image]]:
    """The ``(title, image)`` panels ``compose_panels`` is given during the test, in order."""
    panels: list[tuple[str, Image.Image]] = []
    compose_panels = draw.compose_panels

    def capture(given: list[tuple[str, Image.Image]], gap: int) -> Image.Image:
        panels.extend(given)
        return compose_panels(given, gap=gap)

    monkeypatch.setattr(draw, "compose_panels", capture)
    return panels


def _gray(width: int = 320, height: int = 240) -> Image.Image:
    return Image.new("RGB", (width, height), (128, 128, 128))


def test_draws_boxes_in_class_colours() -> None:
    image = _gray()
    boxes = torch.tensor([[50.0, 60.0, 150.0, 200.0], [200.0, 100.0, 300.0, 220.0]])
    out = draw_detections(image, boxes, torch.tensor([1, 2]), torch.tensor([0.9, 0.8]), NAMES)
    assert out.size == image.size and out.mode == "RGB"
    pixels = np.asarray(out)
    assert tuple(pixels[130, 50]) == class_color(1)  # left edge, mid height
    assert tuple(pixels[200, 100]) == class_color(1)  # bottom edge
    assert tuple(pixels[160, 300]) == class_color(2)  # right edge
    assert tuple(pixels[130, 100]) == (128, 128, 128)  # box interior untouched
    assert np.asarray(image).max() == 128  # input not modified


def caption_width(pixels: np.ndarray, row: int, color: tuple[int, int, int]) -> int:
    """Pixels of ``color`` in ``row``: the caption tag's width where the row crosses it."""
    return int((pixels[row] == color).all(axis=-1).sum())


def test_captions_are_tags_above_the_box_or_inside_at_the_top() -> None:
    boxes = [[50.0, 60.0, 150.0, 200.0], [200.0, 0.0, 300.0, 100.0]]
    out = np.asarray(draw_detections(_gray(), boxes, [1, 2], [0.9, 0.8], NAMES))
    tag_rows = np.nonzero((out[:60, 50:150] == class_color(1)).all(axis=-1).any(axis=1))[0]
    assert len(tag_rows) > 5 and tag_rows.max() == 59  # a filled tag ending on the box's top
    row = int(tag_rows.mean())
    tag = out[row, 50:150]
    text = ~(tag == class_color(1)).all(axis=-1) & ~(tag == 128).all(axis=-1)
    assert text.any()  # the caption is written on the tag
    # No room above the second box: its tag is inside the box, below the top edge.
    assert (out[10:20, 202:220] == class_color(2)).all(axis=-1).any()
    # Detections are captioned with their score, ground truth with the name only.
    without_score = np.asarray(draw_detections(_gray(), boxes[:1], [1], None, NAMES))
    assert caption_width(out, row, class_color(1)) > caption_width(
        without_score, row, class_color(1)
    )


def test_a_sixteen_bit_image_is_drawn_as_the_model_reads_it() -> None:
    """By its own range (to_rgb), not clipped at 255 to a white page by Pillow's convert."""
    twelve_bit = Image.fromarray(np.tile(np.linspace(0, 4095, 40, dtype=np.uint16), (30, 1)))
    empty = torch.zeros((0, 4))
    out = draw_detections(twelve_bit, empty, torch.zeros(0, dtype=torch.long), None, NAMES)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(to_rgb(twelve_bit)))
    both = draw_ground_truth_and_predictions(
        twelve_bit, empty, [], empty, [], [], NAMES, max_panel_side=None
    )
    # Mid greys across most of both panels (clipping left one column of them in each).
    mid_grey = ((np.asarray(both) > 50) & (np.asarray(both) < 200)).all(axis=2)
    assert mid_grey.sum() >= 2 * 30 * 20


def test_score_threshold_hides_low_scores() -> None:
    image = _gray()
    boxes = np.array([[50.0, 60.0, 150.0, 200.0]])
    low = draw_detections(image, boxes, [0], [0.1], NAMES, score_threshold=0.3)
    assert np.array_equal(np.asarray(low), np.asarray(image))
    high = draw_detections(image, boxes, [0], [0.1], NAMES, score_threshold=0.05)
    assert not np.array_equal(np.asarray(high), np.asarray(image))


def test_a_threshold_copied_from_a_written_score_draws_that_detection(
    composed_panels: list[tuple[str, Image.Image]],
) -> None:
    """float32 0.29999998 is written 0.3 in predict's JSON; --score-threshold 0.3 did not draw
    it (nor count it in the panel's title), comparing the unrounded score."""
    image, boxes = _gray(), np.array([[50.0, 60.0, 150.0, 200.0]])
    score = torch.tensor([0.29999998])
    drawn = draw_detections(image, boxes, [0], score, NAMES, score_threshold=0.3)
    assert not np.array_equal(np.asarray(drawn), np.asarray(image))
    draw_ground_truth_and_predictions(image, boxes, [0], boxes, [0], score, NAMES)
    assert composed_panels[1][0] == "detections: 1 scoring >= 0.3"


def test_the_predictions_panel_draws_what_its_title_counts_at_the_threshold_given(
    composed_panels: list[tuple[str, Image.Image]],
) -> None:
    """The panel's drawing and its title both follow ``score_threshold`` (the drawing took a
    mask from its caller beside a threshold that defaulted to 0.3 unsaid)."""
    boxes = [[50.0, 60.0, 150.0, 200.0], [10.0, 10.0, 40.0, 40.0]]
    scores = [0.9, 0.1]
    draw_ground_truth_and_predictions(
        _gray(), boxes, [0, 1], boxes, [0, 1], scores, NAMES, 0.05, max_panel_side=None
    )
    title, drawing = composed_panels[1]
    assert title == "detections: 2 scoring >= 0.05"
    both = draw_detections(_gray(), boxes, [0, 1], scores, NAMES, score_threshold=0.0)
    assert np.array_equal(np.asarray(drawing), np.asarray(both))


def test_a_panel_counts_what_it_drew_applying_its_threshold_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Was: the predictions panel's drawing and its title each applied the threshold
    (draw_detections to draw, its caller again to count for the title): two applications of
    one rule. detections_panel counts what draw_detections drew."""
    thresholds: list[float] = []
    passes_threshold = draw.passes_threshold

    def counted(scores: Any, threshold: float) -> Any:
        thresholds.append(threshold)
        return passes_threshold(scores, threshold)

    monkeypatch.setattr(draw, "passes_threshold", counted)
    boxes = [[50.0, 60.0, 150.0, 200.0], [10.0, 10.0, 40.0, 40.0]]
    draw_ground_truth_and_predictions(_gray(), boxes, [0, 1], boxes, [0, 1], [0.9, 0.1], NAMES)
    assert thresholds == [0.3]
    title, drawing = draw.detections_panel(
        "stage 2", _gray(), boxes, [0, 1], [0.9, 0.1], NAMES, 0.05
    )
    assert title == "stage 2: 2 scoring >= 0.05"
    both = draw_detections(_gray(), boxes, [0, 1], [0.9, 0.1], NAMES, score_threshold=0.05)
    assert np.array_equal(np.asarray(drawing), np.asarray(both))


def test_ground_truth_without_scores_and_unknown_labels() -> None:
    image = Image.new("L", (100, 80), 0)  # grayscale input becomes RGB
    out = draw_detections(image, [[10.0, 30.0, 60.0, 70.0]], [7], None, NAMES)
    assert out.size == (100, 80) and out.mode == "RGB"
    assert tuple(np.asarray(out)[50, 10]) == class_color(7)


def test_line_width_scales_with_image_size() -> None:
    box = [[100.0, 100.0, 500.0, 500.0]]
    small = np.asarray(draw_detections(_gray(640, 640), box, [0], [1.0], NAMES))
    large = np.asarray(draw_detections(_gray(1600, 1600), box, [0], [1.0], NAMES))
    color = np.array(class_color(0))

    def edge_width(pixels: np.ndarray) -> int:
        return int((pixels[300, 90:120] == color).all(axis=1).sum())

    assert edge_width(large) > edge_width(small) >= 1


def test_mismatched_inputs_raise() -> None:
    """Was "draw_detections: 1 boxes, 2 labels and 1 scores"."""
    with pytest.raises(ValueError, match=r"^draw_detections: 1 box, 2 labels and 1 score; they"):
        draw_detections(_gray(), [[0.0, 0.0, 10.0, 10.0]], [0, 1], [0.5], NAMES)


def test_side_by_side_layout(composed_panels: list[tuple[str, Image.Image]]) -> None:
    """The panels of a 200x100 image are 256x128: a small image is enlarged to the stage
    figure's least panel side (they were the image's own size, which left a small image's
    captions and titles larger than its panels), its boxes scaled by the same 1.28."""
    image = _gray(200, 100)
    out = draw_ground_truth_and_predictions(
        image,
        gt_boxes=[[20.0, 30.0, 80.0, 90.0]],
        gt_labels=[0],
        pred_boxes=[[22.0, 30.0, 84.0, 90.0], [0.0, 0.0, 5.0, 5.0]],
        pred_labels=[1, 2],
        pred_scores=[0.95, 0.1],
        class_names=NAMES,
        gap=10,
    )
    # Each panel says what it shows: an empty right panel reads as "nothing scored enough".
    assert [title for title, _ in composed_panels] == [
        "ground truth: 1 box",
        "detections: 1 scoring >= 0.3",
    ]
    top = out.height - 10 - 128  # the panels' first row, below the titles
    assert out.width == 10 + 256 + 10 + 256 + 10 and top > 10
    pixels = np.asarray(out)
    assert tuple(pixels[top + 77, 10 + 25]) == class_color(0)  # GT on the left (x 20 * 1.28)
    assert tuple(pixels[top + 77, 276 + 28]) == class_color(1)  # prediction on the right
    assert tuple(pixels[top + 64, 271]) == (255, 255, 255)  # the gap
    assert tuple(pixels[top + 2, 276 + 2]) == (128, 128, 128)  # the low score is not drawn
    unscaled = draw_ground_truth_and_predictions(
        image, [], [], [], [], [], NAMES, gap=10, max_panel_side=None
    )
    assert unscaled.width == 10 + 200 + 10 + 200 + 10  # None: the image's own size


@pytest.mark.parametrize(
    ("image_size", "panel_size"),
    [((8, 5), (256, 160)), ((2400, 1600), (640, 427)), ((90, 700), (82, 640))],
)
def test_sample_panels_are_sized_as_the_stage_figure_s(
    monkeypatch: pytest.MonkeyPatch, image_size: tuple[int, int], panel_size: tuple[int, int]
) -> None:
    """A tiny image is enlarged to 256 px (an 8x5 image gave a 334x44 drawing, its boxes and
    titles unreadable), a large one scaled down to 640 px (a 2400x1600 image gave a 4824x1697
    drawing); the boxes are scaled per axis with the panel, so that a box on the image's far
    edge is on the panel's far edge although its side was rounded to a whole pixel."""
    drawn: list[tuple[tuple[int, int], np.ndarray]] = []
    draw_detections, detections_panel = draw.draw_detections, draw.detections_panel

    def capture(image: Image.Image, boxes: np.ndarray, *args: Any, **kwargs: Any) -> Image.Image:
        drawn.append((image.size, np.asarray(boxes)))
        return draw_detections(image, boxes, *args, **kwargs)

    def capture_panel(
        title: str, image: Image.Image, boxes: np.ndarray, *args: Any, **kwargs: Any
    ) -> tuple[str, Image.Image]:
        drawn.append((image.size, np.asarray(boxes)))
        return detections_panel(title, image, boxes, *args, **kwargs)

    monkeypatch.setattr(draw, "draw_detections", capture)
    monkeypatch.setattr(draw, "detections_panel", capture_panel)
    width, height = image_size
    whole = [[0.0, 0.0, float(width), float(height)]]
    out = draw_ground_truth_and_predictions(
        _gray(width, height), whole, [0], whole, [1], [0.9], NAMES
    )
    assert [size for size, _ in drawn] == [panel_size, panel_size]
    for _, boxes in drawn:
        np.testing.assert_allclose(boxes, [[0.0, 0.0, *panel_size]])
    assert out.width == 8 + 2 * (panel_size[0] + 8) or panel_size[0] < 200  # narrow: titles
    assert panel_size[1] < out.height < panel_size[1] + 60


def test_boxes_stay_on_their_objects_in_a_scaled_panel() -> None:
    """A dark square on a 2400x1600 image, drawn 640x427: its box's outline is on the square's
    edges in the panel (within the resampling's blur)."""
    image = _gray(2400, 1600)
    image.paste((0, 0, 0), (600, 400, 1800, 1200))
    box = [[600.0, 400.0, 1800.0, 1200.0]]
    boxed = draw_ground_truth_and_predictions(image, box, [0], [], [], [], NAMES, gap=0)
    plain = draw_ground_truth_and_predictions(image, [], [], [], [], [], NAMES, gap=0)
    outline = (np.asarray(boxed)[-427:, :640] == class_color(0)).all(axis=-1)
    rows, cols = np.nonzero(outline)  # the caption's tag is above the box: no bottom row
    dark_rows, dark_cols = np.nonzero((np.asarray(plain)[-427:, :640] < 64).all(axis=-1))
    assert (cols.min(), cols.max(), rows.max()) == (160, 480, 320)  # x 600 / 3.75, ...
    assert abs(int(dark_cols.min()) - 160) <= 1 and abs(int(dark_cols.max()) - 479) <= 1
    assert abs(int(dark_rows.max()) - 319) <= 1


@pytest.mark.parametrize(
    ("boxes", "scores"),
    [
        ([[float("nan"), 0.0, 10.0, 10.0]], [0.9]),
        ([[0.0, 0.0, float("inf"), 10.0]], [0.1]),
        ([[0.0, 0.0, 10.0, 10.0]], [float("nan")]),
    ],
)
def test_non_finite_detections_are_refused_naming_the_image(
    boxes: list[list[float]], scores: list[float]
) -> None:
    """As COCO evaluation refuses them: a NaN box crashed ("cannot convert float NaN to
    integer"), a NaN score was left out without a word."""
    reason = non_finite_outputs(1, 1, "which cannot be drawn")
    with pytest.raises(ValueError, match=rf"^{re.escape(f'image id 7: {reason}')}$"):
        draw_detections(_gray(), boxes, [0], scores, NAMES, image_name="image id 7")
    if not np.isfinite(boxes).all():  # ground truth: boxes only
        # Ground truth is no model's output: no "a model gives such outputs".
        given = "x.png: its only box has a NaN or infinite coordinate, which cannot be drawn; give"
        with pytest.raises(ValueError, match=rf"^{re.escape(given)} finite boxes$"):
            draw_ground_truth_and_predictions(
                _gray(), boxes, [0], [], [], [], NAMES, image_name="x.png"
            )


def test_class_colours_are_distinct() -> None:
    colors = [class_color(label) for label in range(80)]
    assert len(set(colors)) == 80
    assert class_color(5) == class_color(5)


def test_caption_tag_stays_inside_the_image() -> None:
    """A caption wider than the room right of its box is moved left, not cut at the edge."""
    assert caption_tag([10.0, 50.0, 60.0, 90.0], (30.0, 10.0), 2, (320, 240)) == (
        10.0,
        36.0,
        44.0,
        50.0,
    )
    x1, y1, x2, _ = caption_tag([300.0, 5.0, 319.0, 40.0], (100.0, 10.0), 2, (320, 240))
    assert (x1, x2) == (216.0, 320.0) and y1 == 5.0  # no room above: inside the top edge
    # Wider than the image: starts at its left edge; a box above the image: tag at the top.
    assert caption_tag([50.0, -20.0, 90.0, 30.0], (400.0, 10.0), 2, (320, 240))[:2] == (0.0, 0.0)


def test_captions_at_the_right_edge_are_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    tags: list[tuple[float, float, float, float]] = []

    def capture(*args: object) -> tuple[float, float, float, float]:
        tags.append(caption_tag(*args))  # type: ignore[arg-type]
        return tags[-1]

    monkeypatch.setattr(draw, "caption_tag", capture)
    names = ["a very long class name indeed"]
    draw_detections(_gray(), [[290.0, 100.0, 319.0, 140.0]], [0], [0.9], names)
    (x1, y1, x2, y2), width = tags[0], label_font(10).getlength(f"{names[0]} 0.90")
    assert x1 >= 0 and x2 <= 320 and x2 - x1 >= width and 0 <= y1 < y2 <= 100


def test_a_name_wider_than_the_image_is_shortened_not_its_score(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 120-character class name ran off the image with the score after it; it is shortened
    in its middle so that the whole caption, score included, fits the image."""
    captions: list[str] = []
    text_bbox = draw.ImageDraw.ImageDraw.textbbox

    def capture(self: Any, xy: Any, text: str, *args: Any, **kwargs: Any) -> Any:
        captions.append(text)
        return text_bbox(self, xy, text, *args, **kwargs)

    monkeypatch.setattr(draw.ImageDraw.ImageDraw, "textbbox", capture)
    names = ["a" * 120 + "z", "cat"]
    drawing = draw_detections(_gray(), [[20.0, 100.0, 60.0, 140.0]] * 2, [0, 1], [0.9, 0.8], names)
    long_caption, short_caption = captions[1], captions[0]  # drawn in ascending score
    assert short_caption == "cat 0.80"
    assert (
        long_caption.startswith("aaa")
        and "\u2026" in long_caption
        and long_caption.endswith("aaz 0.90")
    )
    pad = max(1, round(320 / 320))
    assert label_font(10).getlength(long_caption) <= drawing.width - 2 * pad
    # Without a score (ground truth) the name alone fits.
    captions.clear()
    draw_detections(_gray(), [[20.0, 100.0, 60.0, 140.0]], [0], None, names)
    assert captions[0].endswith("aaz") and label_font(10).getlength(captions[0]) <= 318


def test_names_the_font_cannot_draw_are_warned_about_once(
    caplog: pytest.LogCaptureFixture, fresh_warnings: None
) -> None:
    for _ in range(3):
        draw_detections(_gray(), [[10, 10, 90, 90]], [0], [0.9], ["猫 (test_draw)", "dog"])
    records = [r for r in caplog.records if r.name == font.__name__]
    assert len(records) == 1 and "'猫 (test_draw)' (猫)" in records[0].getMessage()


def test_names_are_not_checked_against_the_font_when_nothing_is_drawn(
    caplog: pytest.LogCaptureFixture, fresh_warnings: None
) -> None:
    draw_detections(_gray(), [[10, 10, 90, 90]], [0], [0.1], ["猫 (test_draw)"])
    assert not [r for r in caplog.records if r.name == font.__name__]
