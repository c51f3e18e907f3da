"""Stage figure: proposals and trajectories drawn where the boxes are, titled stage panels,
downscaling for large images, enlarging for tiny ones."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from sparsercnn.visualization import stage_figure
from sparsercnn.visualization.draw import class_color, draw_detections
from sparsercnn.visualization.panels import compose_panels
from sparsercnn.visualization.stage_figure import (
    PROPOSAL_COLOR,
    StagePanel,
    Trajectories,
    draw_proposals,
    draw_stage_figure,
    draw_trajectories,
)

NAMES = ["cat", "dog"]


def _black(width: int = 200, height: int = 100) -> Image.Image:
    return Image.new("RGB", (width, height), (0, 0, 0))


def test_proposals_are_translucent_outlines() -> None:
    image = _black()
    out = draw_proposals(image, torch.tensor([[10.0, 20.0, 110.0, 80.0]]), opacity=1.0)
    pixels = np.asarray(out)
    assert out.size == image.size and out.mode == "RGB"
    assert tuple(pixels[50, 10]) == PROPOSAL_COLOR  # left edge
    assert tuple(pixels[50, 60]) == (0, 0, 0)  # inside untouched
    faint = np.asarray(draw_proposals(image, [[10.0, 20.0, 110.0, 80.0]], opacity=0.5))
    assert 0 < faint[50, 10, 0] < 255
    assert np.asarray(image).max() == 0  # input not modified


def test_trajectories_join_the_centres() -> None:
    # One detection moving right: centres (30, 50) -> (70, 50) -> (110, 50).
    boxes = torch.tensor(
        [[[10.0, 30.0, 50.0, 70.0], [50.0, 30.0, 90.0, 70.0], [90.0, 30, 130, 70]]]
    )
    out = np.asarray(draw_trajectories(_black(), boxes, torch.tensor([1])))
    color = class_color(1)
    assert tuple(out[50, 50]) == color  # on the centre line between the first two steps
    assert tuple(out[50, 130]) == color  # the last box is opaque
    assert 0 < out[50, 10].max() < max(color)  # the first box is faint
    assert tuple(out[10, 100]) == (0, 0, 0)


def test_no_trajectories() -> None:
    out = draw_trajectories(_black(), torch.zeros(0, 3, 4), torch.zeros(0, dtype=torch.int64))
    assert np.asarray(out).max() == 0


def test_stage_figure_panels_and_downscaling() -> None:
    image = Image.new("RGB", (1280, 960), (90, 90, 90))
    stage = StagePanel("stage 1", [[100.0, 100.0, 600.0, 500.0]], [0], [0.9])
    tracks = Trajectories(
        boxes=torch.tensor([[[0.0, 0, 1280, 960], [100, 100, 600, 500]]]), labels=[1]
    )
    proposals = torch.tensor([[0.0, 0.0, 1280.0, 960.0]] * 3)
    out = draw_stage_figure(image, proposals, [stage, stage], NAMES, trajectories=tracks)
    assert 4 * 640 < out.width < 4 * 640 + 200 and 480 < out.height < 600
    smaller = draw_stage_figure(image, proposals, [stage], NAMES, max_panel_side=320)
    assert 2 * 320 < smaller.width < 2 * 320 + 100
    # The box (scaled by 1/4) is drawn in the stage panel: its left edge at x = 25 of the panel.
    pixels = np.asarray(smaller)
    column = pixels[:, smaller.width // 2 :]
    assert (column == class_color(0)).all(axis=-1).any()
    # The proposals (the whole image) outline the first panel: its untouched grey is smaller
    # than the 640x480 panel, while the stage panel's grey fills it (its box is inside).
    # (The rows of the panels, below their titles, whose anti-aliased text may hold that grey.)
    grey = (np.asarray(out)[-8 - 480 : -8] == 90).all(axis=-1)

    def grey_extent(columns: slice) -> tuple[int, int]:
        rows, cols = np.nonzero(grey[:, columns])
        return int(cols.max() - cols.min() + 1), int(rows.max() - rows.min() + 1)

    proposals_width, proposals_height = grey_extent(slice(0, 656))
    assert proposals_width < 640 and proposals_height < 480
    assert grey_extent(slice(656, 1304)) == (640, 480)
    # The trajectory panel, last, draws the class-1 track.
    track = (np.asarray(out)[:, 3 * 640 :] == class_color(1)).all(axis=-1)
    assert track.any() and not (np.asarray(out)[:, : 3 * 640] == class_color(1)).all(axis=-1).any()


def test_a_tiny_image_is_enlarged_with_its_boxes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 20x20 image gets 256-pixel panels (captions legible), its boxes scaled by the same
    12.8; ``max_panel_side`` below that caps the enlargement."""
    drawn: list[tuple[tuple[int, int], np.ndarray]] = []
    detections_panel = stage_figure.detections_panel

    def capture(
        title: str, image: Image.Image, boxes: np.ndarray, *args: Any, **kwargs: Any
    ) -> tuple[str, Image.Image]:
        drawn.append((image.size, boxes))
        return detections_panel(title, image, boxes, *args, **kwargs)

    monkeypatch.setattr(stage_figure, "detections_panel", capture)
    image = Image.new("RGB", (20, 10), (90, 90, 90))
    stage = StagePanel("stage 1", [[5.0, 2.0, 15.0, 8.0]], [0], [0.9])
    out = draw_stage_figure(image, [[0.0, 0.0, 20.0, 10.0]], [stage], NAMES)
    assert drawn[0][0] == (256, 128) and out.height > 128
    np.testing.assert_allclose(drawn[0][1], [[64.0, 25.6, 192.0, 102.4]])
    draw_stage_figure(image, [[0.0, 0.0, 20.0, 10.0]], [stage], NAMES, max_panel_side=100)
    assert drawn[1][0] == (100, 50)
    draw_stage_figure(image, [[0.0, 0.0, 20.0, 10.0]], [stage], NAMES, max_panel_side=None)
    assert drawn[2][0] == (20, 10)


@pytest.mark.parametrize(("grey", "expected"), [(30, (255, 255, 255)), (230, (0, 0, 0))])
def test_proposals_stand_out_on_dark_and_light_images(
    monkeypatch: pytest.MonkeyPatch, grey: int, expected: tuple[int, int, int]
) -> None:
    """White outlines on a dark image, black ones on a light image (white would vanish)."""
    colours: list[tuple[int, int, int]] = []

    def capture(image: Image.Image, boxes: Any, color: tuple[int, int, int]) -> Image.Image:
        colours.append(color)
        return draw_proposals(image, boxes, color)

    monkeypatch.setattr(stage_figure, "draw_proposals", capture)
    image = Image.new("RGB", (64, 48), (grey, grey, grey))
    draw_stage_figure(image, [[0.0, 0.0, 64.0, 48.0]], [], NAMES)
    assert colours == [expected]


def test_trajectories_are_captioned_with_their_class(monkeypatch: pytest.MonkeyPatch) -> None:
    """The trajectory panel names the class of every track (the legend of its colours) on the
    track's last box."""
    drawn: list[tuple[np.ndarray, list[int], Any]] = []

    def capture(
        image: Image.Image, boxes: Any, labels: Any, scores: Any, *rest: Any
    ) -> Image.Image:
        drawn.append((np.asarray(boxes), list(labels), scores))
        return draw_detections(image, boxes, labels, scores, *rest)

    monkeypatch.setattr(stage_figure, "draw_detections", capture)
    tracks = Trajectories(
        boxes=[[[0.0, 0, 40, 40], [10, 10, 30, 30]], [[40.0, 0, 80, 40], [50, 5, 70, 25]]],
        labels=[1, 0],
    )
    draw_stage_figure(_black(), [[0.0, 0.0, 200.0, 100.0]], [], NAMES, trajectories=tracks)
    ((boxes, labels, scores),) = drawn
    assert labels == [1, 0] and scores is None
    # The 200-pixel image is enlarged to the 256-pixel panel, its boxes with it.
    np.testing.assert_allclose(boxes, np.array([[10, 10, 30, 30], [50, 5, 70, 25]]) * 1.28)


def test_a_figure_without_detections() -> None:
    """No detection above the threshold: empty stage and trajectory panels, no error."""
    empty = Trajectories(boxes=torch.zeros(0, 3, 4), labels=torch.zeros(0, dtype=torch.int64))
    stage = StagePanel("stage 1", torch.zeros(0, 4), torch.zeros(0), torch.zeros(0))
    out = draw_stage_figure(
        _black(), [[0.0, 0.0, 200.0, 100.0]], [stage], NAMES, trajectories=empty
    )
    assert out.width > 3 * 256


def test_non_finite_boxes_are_refused_naming_the_image() -> None:
    """A damaged model's NaN proposal, stage box or trajectory: an error naming the image
    (a NaN box crashed with "cannot convert float NaN to integer")."""
    nan_box = [[float("nan"), 0.0, 10.0, 10.0]]
    box = [[0.0, 0.0, 10.0, 10.0]]
    figures = [
        (nan_box, [], None, "its only box has"),
        (box, [StagePanel("stage 1", nan_box, [0], [0.9])], None, "its only detection has"),
        (box, [], Trajectories(boxes=[[box[0], nan_box[0]]], labels=[0]), "1 of its 2 boxes has"),
    ]
    for proposals, stages, tracks, problem in figures:
        with pytest.raises(ValueError, match=rf"^a.jpg: {problem} a NaN.*model"):
            draw_stage_figure(
                _black(), proposals, stages, NAMES, trajectories=tracks, image_name="a.jpg"
            )


def test_stage_titles_count_what_is_drawn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each stage's title says how many of its detections reach the threshold (an empty panel
    is not mistaken for a bug), by their scores as written: 0.49999998 is written 0.5; its
    drawing shows those, at the threshold given (not draw_detections' default 0.3)."""
    titles: list[str] = []
    drawings: list[Image.Image] = []

    def capture(panels: list[tuple[str, Image.Image]]) -> Image.Image:
        titles.extend(title for title, _ in panels)
        drawings.extend(drawing for _, drawing in panels)
        return compose_panels(panels)

    monkeypatch.setattr(stage_figure, "compose_panels", capture)
    white = Image.new("RGB", (256, 128), (255, 255, 255))
    boxes = [[10.0, 10.0, 50.0, 50.0]] * 3
    stages = [
        StagePanel("stage 1", boxes, [0, 1, 0], [0.9, 0.49999998, 0.2]),
        StagePanel("stage 2", [], [], []),
    ]
    tracks = Trajectories(boxes=[[[10.0, 10.0, 50.0, 50.0]] * 3], labels=[0])
    draw_stage_figure(
        white,
        [[0.0, 0.0, 256.0, 128.0]],
        stages,
        NAMES,
        trajectories=tracks,
        score_threshold=0.5,
    )
    assert titles == [
        "1 learned proposal",
        "stage 1: 2 scoring >= 0.5",
        "stage 2: 0 scoring >= 0.5",
        "trajectories of 1 slot scoring >= 0.5",
    ]
    kept = draw_detections(white, boxes[:2], [0, 1], [0.9, 0.5], NAMES, score_threshold=0.0)
    assert np.array_equal(np.asarray(drawings[1]), np.asarray(kept))
