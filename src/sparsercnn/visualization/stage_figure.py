"""The iterative-refinement figure of Sparse R-CNN (paper Fig. 5) drawn on one image.

Panels side by side, each titled: the N learned proposal boxes, the detections of chosen stages
above a score threshold, and the trajectory of every final detection's box through the stages.
Pure PIL drawing on arrays of boxes; :mod:`sparsercnn.diagnostics.stage_boxes` runs the model
and fills :class:`StagePanel` and :class:`Trajectories`. Boxes are absolute xyxy pixels of the
image drawn on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from sparsercnn.data.image_io import to_rgb
from sparsercnn.text import counted
from sparsercnn.visualization.draw import (
    ArrayLike,
    as_array,
    check_finite,
    class_color,
    contrasting_color,
    detections_panel,
    draw_detections,
)
from sparsercnn.visualization.panel_size import MAX_PANEL_SIDE
from sparsercnn.visualization.panels import compose_panels, fit_panel

# The proposals' colour on dark images; on light ones they are black (contrasting_color).
PROPOSAL_COLOR = (255, 255, 255)


@dataclass
class StagePanel:
    """Detections of one stage, for :func:`draw_stage_figure`.

    Attributes:
        title: caption above the panel (e.g. ``"stage 3"``).
        boxes: ``(K, 4)`` absolute xyxy pixels of the image.
        labels: ``(K,)`` contiguous labels.
        scores: ``(K,)`` scores; only those at or above the figure's threshold are drawn.
    """

    title: str
    boxes: ArrayLike
    labels: ArrayLike
    scores: ArrayLike


@dataclass
class Trajectories:
    """The box of each final detection at every refinement step, for :func:`draw_trajectories`.

    Attributes:
        boxes: ``(K, S, 4)`` absolute xyxy pixels of the image: detection ``k``'s box at step
            ``s`` (the learned proposal first, the last stage last).
        labels: ``(K,)`` contiguous label of each detection (its colour).
    """

    boxes: ArrayLike
    labels: ArrayLike


def _line_width(image: Image.Image, line_width: int | None) -> int:
    return line_width if line_width is not None else max(1, round(max(image.size) / 320))


def draw_proposals(
    image: Image.Image,
    boxes: ArrayLike,
    color: tuple[int, int, int] = PROPOSAL_COLOR,
    opacity: float = 0.7,
    line_width: int | None = None,
) -> Image.Image:
    """Draw every proposal box as a thin translucent outline on a copy of ``image``.

    Args:
        image: any PIL image; the result is RGB of the same size.
        boxes: ``(N, 4)`` absolute xyxy pixels of ``image``, all drawn (no score).
        color: outline colour.
        opacity: outline opacity in ``[0, 1]`` (hundreds of overlapping boxes stay readable).
        line_width: outline width; default scales with the image (1 px per 320 px side).

    Returns:
        A new RGB image.
    """
    canvas = to_rgb(image).convert("RGBA")
    overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    fill = (*color, round(255 * min(max(opacity, 0.0), 1.0)))
    width = _line_width(canvas, line_width)
    for x1, y1, x2, y2 in as_array(boxes, np.float64, (4,)).tolist():
        draw.rectangle((x1, y1, max(x1, x2), max(y1, y2)), outline=fill, width=width)
    return Image.alpha_composite(canvas, overlay).convert("RGB")


def draw_trajectories(
    image: Image.Image,
    boxes: ArrayLike,
    labels: ArrayLike,
    line_width: int | None = None,
) -> Image.Image:
    """Draw each detection's boxes at every step, joined by the path of their centres.

    Earlier steps are fainter; the last box is opaque and a dot marks every centre.

    Args:
        image: any PIL image; the result is RGB of the same size.
        boxes: ``(K, S, 4)`` absolute xyxy pixels of ``image``, step 0 (the proposal) first.
        labels: ``(K,)`` contiguous labels, which set the colours (:func:`class_color`).
        line_width: outline width; default scales with the image.

    Returns:
        A new RGB image.
    """
    labels_np = as_array(labels, np.int64, ())
    canvas = to_rgb(image).convert("RGBA")
    if len(labels_np) == 0:
        return canvas.convert("RGB")
    steps = as_array(boxes, np.float64, (4,)).reshape(len(labels_np), -1, 4)  # (K, S, 4)
    overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    width = _line_width(canvas, line_width)
    num_steps = steps.shape[1]
    for track, label in zip(steps, labels_np.tolist(), strict=True):
        color = class_color(label)
        for s, (x1, y1, x2, y2) in enumerate(track.tolist()):
            alpha = round(255 * (0.25 + 0.75 * s / max(num_steps - 1, 1)))
            draw.rectangle((x1, y1, max(x1, x2), max(y1, y2)), outline=(*color, alpha), width=width)
        centres = [((x1 + x2) / 2, (y1 + y2) / 2) for x1, y1, x2, y2 in track.tolist()]
        if len(centres) > 1:
            draw.line(centres, fill=(*color, 255), width=width + 1, joint="curve")
        radius = width + 1
        for cx, cy in centres:
            draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=(*color, 255))
    return Image.alpha_composite(canvas, overlay).convert("RGB")


def draw_stage_figure(
    image: Image.Image,
    proposal_boxes: ArrayLike,
    stages: Sequence[StagePanel],
    class_names: Sequence[str],
    *,
    trajectories: Trajectories | None = None,
    score_threshold: float = 0.3,
    max_panel_side: int | None = MAX_PANEL_SIDE,
    image_size: tuple[int, int] | None = None,
    image_name: str | None = None,
) -> Image.Image:
    """The refinement figure: proposals | one panel per stage | trajectories, in one row.

    Args:
        image: the image; all boxes are absolute xyxy pixels of it, or of an image of
            ``image_size`` that it shows at another scale (a JPEG decoded at a reduced scale).
        proposal_boxes: ``(N, 4)`` the learned proposals, all drawn.
        stages: the stages to show, left to right.
        class_names: name of every contiguous label (captions).
        trajectories: when given, a last panel draws them (see :func:`draw_trajectories`),
            each last box captioned with its class name.
        score_threshold: stage detections whose score as written is below are not drawn
            (:func:`~sparsercnn.scores.passes_threshold`).
        max_panel_side: panels are downscaled so their longer side is at most this, and
            smaller images enlarged (:func:`~sparsercnn.visualization.panels.fit_panel`);
            ``None``: the image's own size. Boxes are scaled with them.
        image_size: ``(h, w)`` of the image the boxes are in (default: ``image``'s size).
        image_name: names the image in errors (its file).

    Returns:
        One RGB image.

    Raises:
        ValueError: a box or score is NaN or infinite (a diverged or damaged model's), naming
            ``image_name`` (:func:`~sparsercnn.visualization.draw.check_finite`).
    """
    base, scale = fit_panel(to_rgb(image), max_panel_side, image_size)
    proposals = as_array(proposal_boxes, np.float64, (4,)) * scale
    check_finite(proposals, None, image_name, from_model=True)
    # White outlines vanish on a light image, black ones on a dark image.
    average = np.asarray(base, dtype=np.float64).reshape(-1, 3).mean(axis=0)
    outline = contrasting_color(average.tolist())
    panels = [
        (counted(len(proposals), "learned proposal"), draw_proposals(base, proposals, outline))
    ]
    for stage in stages:
        boxes = as_array(stage.boxes, np.float64, (4,)) * scale
        panels.append(
            detections_panel(
                stage.title,
                base,
                boxes,
                stage.labels,
                stage.scores,
                class_names,
                score_threshold,
                image_name=image_name,
            )
        )
    if trajectories is not None:
        tracks = as_array(trajectories.boxes, np.float64, (4,)) * scale  # (K * S, 4)
        check_finite(tracks, None, image_name, from_model=True)
        labels = as_array(trajectories.labels, np.int64, ())
        # One track per slot: a slot scoring for two classes is one track, two detections.
        title = f"trajectories of {counted(len(labels), 'slot')} scoring >= {score_threshold:g}"
        drawing = draw_trajectories(base, tracks, labels)
        # The class of each track (its colour's legend), captioned on its last box.
        last = tracks.reshape(len(labels), -1, 4)[:, -1] if len(labels) else tracks
        panels.append((title, draw_detections(drawing, last, labels, None, class_names)))
    return compose_panels(panels)
