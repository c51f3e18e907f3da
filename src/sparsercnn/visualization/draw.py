"""Drawing detections and ground truth on PIL images (demo output, evaluation samples).

Boxes are absolute xyxy pixels of the image drawn on (the original image for
:class:`~sparsercnn.structures.Detections`). Every class gets a fixed, distinct colour so the
same class looks the same across images and between ground truth and predictions. Panels are
laid out by :mod:`~sparsercnn.visualization.panels`, drawings saved by
:mod:`~sparsercnn.visualization.drawing_file`.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from sparsercnn.data.image_io import to_rgb
from sparsercnn.scores import passes_threshold
from sparsercnn.text import counted, non_finite_boxes, non_finite_outputs, shortened
from sparsercnn.visualization.font import label_font, warn_missing_glyphs
from sparsercnn.visualization.panel_size import MAX_PANEL_SIDE
from sparsercnn.visualization.panels import compose_panels, fit_panel

ArrayLike = torch.Tensor | np.ndarray | Sequence[float] | Sequence[Sequence[float]]

_GOLDEN_RATIO_CONJUGATE = 0.618033988749895


def class_color(label: int) -> tuple[int, int, int]:
    """A bright RGB colour for ``label``; consecutive labels get well separated hues."""
    hue = (0.12 + label * _GOLDEN_RATIO_CONJUGATE) % 1.0
    # Alternate value and saturation a little so that hues that come close again still differ.
    saturation = 0.85 if label % 2 == 0 else 0.65
    value = 0.95 if (label // 2) % 2 == 0 else 0.8
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def as_array(values: ArrayLike | None, dtype: type, shape_tail: tuple[int, ...]) -> np.ndarray:
    """Tensor, array or sequence -> numpy ``(K, *shape_tail)`` of ``dtype`` (``None``: empty)."""
    if values is None:
        return np.zeros((0, *shape_tail), dtype=dtype)
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype).reshape(-1, *shape_tail)


def contrasting_color(background: Sequence[float]) -> tuple[int, int, int]:
    """Black or white, whichever stands out on the RGB colour ``background``."""
    luminance = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


def draw_detections(
    image: Image.Image,
    boxes: ArrayLike,
    labels: ArrayLike,
    scores: ArrayLike | None,
    class_names: Sequence[str],
    score_threshold: float = 0.3,
    line_width: int | None = None,
    font_size: int | None = None,
    *,
    image_name: str | None = None,
) -> Image.Image:
    """Draw boxes with ``"name score"`` captions on a copy of ``image``.

    Args:
        image: any PIL image; the result is RGB of the same size.
        boxes: ``(K, 4)`` absolute xyxy pixels of ``image``.
        labels: ``(K,)`` contiguous labels, indices into ``class_names``.
        scores: ``(K,)`` or None (ground truth: everything is drawn, captions without score).
        class_names: name of every contiguous label; unknown labels are shown as ``"class N"``.
            Names with characters the font lacks are drawn with boxes for them, and named in
            one warning per command (:func:`~sparsercnn.visualization.font.warn_missing_glyphs`).
        score_threshold: detections whose score as written is below are not drawn
            (:func:`~sparsercnn.scores.passes_threshold`).
        line_width: box outline width; default scales with the image (1 px per 320 px side).
        font_size: caption size; default scales with the image.
        image_name: names the image in errors (a file or an image id).

    Returns:
        A new RGB image; ``image`` is not modified.

    Raises:
        ValueError: the arrays' lengths differ, or a box or score is NaN or infinite (as COCO
            evaluation refuses such detections: a diverged or damaged model's).
    """
    drawing, _ = _draw_detections(
        image,
        boxes,
        labels,
        scores,
        class_names,
        score_threshold,
        line_width,
        font_size,
        image_name=image_name,
    )
    return drawing


def detections_panel(
    title: str,
    image: Image.Image,
    boxes: ArrayLike,
    labels: ArrayLike,
    scores: ArrayLike,
    class_names: Sequence[str],
    score_threshold: float,
    *,
    image_name: str | None = None,
) -> tuple[str, Image.Image]:
    """A panel of scored detections for
    :func:`~sparsercnn.visualization.panels.compose_panels`: :func:`draw_detections`' drawing,
    titled ``"{title}: N scoring >= {score_threshold}"`` with the N it drew (an empty panel is
    not mistaken for a bug).

    Args:
        boxes: ``(K, 4)`` absolute xyxy pixels of ``image``; labels, scores: ``(K,)``.

    Returns:
        ``(title, drawing)``.

    Raises:
        ValueError: as :func:`draw_detections`.
    """
    drawing, num_drawn = _draw_detections(
        image, boxes, labels, scores, class_names, score_threshold, image_name=image_name
    )
    return f"{title}: {num_drawn} scoring >= {score_threshold:g}", drawing


def _draw_detections(
    image: Image.Image,
    boxes: ArrayLike,
    labels: ArrayLike,
    scores: ArrayLike | None,
    class_names: Sequence[str],
    score_threshold: float,
    line_width: int | None = None,
    font_size: int | None = None,
    *,
    image_name: str | None = None,
) -> tuple[Image.Image, int]:
    """:func:`draw_detections`' drawing and the number of detections it drew."""
    # A copy, pixels of other modes converted as the model reads them (16-bit by their range).
    canvas = to_rgb(image).copy()
    boxes_np = as_array(boxes, np.float64, (4,))
    labels_np = as_array(labels, np.int64, ())
    scores_np = None if scores is None else as_array(scores, np.float64, ())
    if len(labels_np) != len(boxes_np) or (
        scores_np is not None and len(scores_np) != len(boxes_np)
    ):
        raise ValueError(
            f"draw_detections: {counted(len(boxes_np), 'box', 'boxes')}, "
            f"{counted(len(labels_np), 'label')} and "
            f"{'no scores' if scores_np is None else counted(len(scores_np), 'score')}; they "
            "must match"
        )
    check_finite(boxes_np, scores_np, image_name, from_model=scores_np is not None)
    longest = max(canvas.size)
    width = line_width if line_width is not None else max(1, round(longest / 320))
    font = label_font(font_size if font_size is not None else max(10, round(longest / 50)))
    order = np.arange(len(boxes_np))
    if scores_np is not None:
        keep = passes_threshold(scores_np, score_threshold)
        order = order[keep][np.argsort(scores_np[keep], kind="stable")]  # best drawn last, on top
    if len(order):
        warn_missing_glyphs(class_names)
    draw = ImageDraw.Draw(canvas)
    for i in order.tolist():
        label = int(labels_np[i])
        name = class_names[label] if 0 <= label < len(class_names) else f"class {label}"
        score = None if scores_np is None else f"{scores_np[i]:.2f}"
        # The whole tag (text and padding on both sides) within the image's width.
        caption = fitted_caption(name, score, font, canvas.width - 2 * max(1, width))
        _draw_box(draw, boxes_np[i].tolist(), caption, class_color(label), width, font, canvas.size)
    return canvas, len(order)


def fitted_caption(
    name: str,
    score: str | None,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    max_width: float,
) -> str:
    """The caption ``"name score"`` (``score`` None: the name alone) at most ``max_width``
    pixels wide in ``font``: a long class name is shortened in its middle
    (:func:`~sparsercnn.text.shortened`), so that the score stays in the image, never the
    score itself."""

    def caption(text: str) -> str:
        return text if score is None else f"{text} {score}"

    whole = font.getlength(caption(name))
    if whole <= max_width:
        return caption(name)
    # From the length the width scales to, down one character at a time until it fits.
    length = max(1, min(len(name) - 1, int(len(name) * max_width / whole)))
    while length > 1 and font.getlength(caption(shortened(name, length))) > max_width:
        length -= 1
    return caption(shortened(name, length))


def check_finite(
    boxes: np.ndarray, scores: np.ndarray | None, image_name: str | None, *, from_model: bool
) -> None:
    """Refuse NaN or infinite boxes (``(K, 4)``) or scores (``(K,)``) before drawing: such a
    box cannot be drawn, and a NaN score cannot be compared with a threshold. COCO evaluation
    refuses such detections too.

    Args:
        boxes: ``(K, 4)`` boxes; scores: ``(K,)`` or None.
        image_name: names the image in the error (None: ``draw_detections``).
        from_model: the boxes are a model's outputs (the error says so), not ground truth.

    Raises:
        ValueError: naming the image, how many are not finite and what to do.
    """
    bad = ~np.isfinite(boxes).all(axis=1)
    if scores is not None:
        bad |= ~np.isfinite(scores)
    if not bad.any():
        return
    num_bad = int(bad.sum())
    if from_model:
        consequence = "which cannot be drawn"
        reason = non_finite_outputs(num_bad, len(boxes), consequence, boxes_only=scores is None)
    else:
        reason = (
            f"{non_finite_boxes(num_bad, len(boxes))}, which cannot be drawn; give finite boxes"
        )
    raise ValueError(f"{image_name or 'draw_detections'}: {reason}")


def _draw_box(
    draw: ImageDraw.ImageDraw,
    box: list[float],
    caption: str,
    color: tuple[int, int, int],
    width: int,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    image_size: tuple[int, int],
) -> None:
    x1, y1, x2, y2 = box
    draw.rectangle((x1, y1, max(x1, x2), max(y1, y2)), outline=color, width=width)
    left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
    pad = max(1, width)
    tag = caption_tag(box, (right - left, bottom - top), pad, image_size)
    draw.rectangle(tag, fill=color)
    draw.text(
        (tag[0] + pad - left, tag[1] + pad - top), caption, fill=contrasting_color(color), font=font
    )


def caption_tag(
    box: Sequence[float], text_size: tuple[float, float], pad: int, image_size: tuple[int, int]
) -> tuple[float, float, float, float]:
    """Where the caption tag of ``box`` goes: xyxy pixels of a ``text_size`` ``(w, h)`` text
    with ``pad`` around it, above the box's top-left corner, or inside its top edge when there
    is no room above; moved left (or right) as far as needed to stay inside the image
    (``image_size`` ``(w, h)``), so that a box at the edge keeps a whole caption."""
    x1, y1 = box[0], box[1]
    tag_w, tag_h = text_size[0] + 2 * pad, text_size[1] + 2 * pad
    y = y1 - tag_h if y1 - tag_h >= 0 else max(y1, 0.0)
    x = max(min(x1, image_size[0] - tag_w), 0.0)
    return x, y, x + tag_w, y + tag_h


def draw_ground_truth_and_predictions(
    image: Image.Image,
    gt_boxes: ArrayLike,
    gt_labels: ArrayLike,
    pred_boxes: ArrayLike,
    pred_labels: ArrayLike,
    pred_scores: ArrayLike,
    class_names: Sequence[str],
    score_threshold: float = 0.3,
    gap: int = 8,
    *,
    max_panel_side: int | None = MAX_PANEL_SIDE,
    image_name: str | None = None,
) -> Image.Image:
    """Ground truth (left) and predictions (right) of one image, side by side, titled with
    what each shows (``"ground truth: 3 boxes"``, ``"detections: 2 scoring >= 0.3"``) by
    :func:`~sparsercnn.visualization.panels.compose_panels`.

    Boxes are absolute xyxy pixels of ``image``; see :func:`draw_detections` for the rest.
    Each panel is ``image`` sized by :func:`~sparsercnn.visualization.panels.fit_panel`, as the
    stage figure's, its boxes scaled with it.

    Args:
        max_panel_side: longest side of each panel (see
            :func:`~sparsercnn.visualization.panels.fit_panel`); None: the image's own size.
        image_name: names the image in errors (a file or an image id).

    Returns:
        An RGB image: the two panels under their titles, ``gap`` white pixels between and
        around them.

    Raises:
        ValueError: as :func:`draw_detections`.
    """
    panel, scale = fit_panel(to_rgb(image), max_panel_side)
    gt = as_array(gt_boxes, np.float64, (4,)) * scale
    left = draw_detections(panel, gt, gt_labels, None, class_names, image_name=image_name)
    right = detections_panel(
        "detections",
        panel,
        as_array(pred_boxes, np.float64, (4,)) * scale,
        pred_labels,
        pred_scores,
        class_names,
        score_threshold,
        image_name=image_name,
    )
    num_boxes = len(as_array(gt_labels, np.int64, ()))
    return compose_panels(
        [(f"ground truth: {counted(num_boxes, 'box', 'boxes')}", left), right], gap=gap
    )
