"""Drawing detections and ground truth on PIL images (demo output, evaluation samples).

Boxes are absolute xyxy pixels of the image drawn on (the original image for
:class:`~sparsercnn.structures.Detections`). Every class gets a fixed, distinct colour so the
same class looks the same across images and between ground truth and predictions.
"""

from __future__ import annotations

import colorsys
import io
import math
import os
from collections.abc import Sequence
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from sparsercnn.atomic_file import atomic_write
from sparsercnn.text import counted

ArrayLike = torch.Tensor | np.ndarray | Sequence[float] | Sequence[Sequence[float]]

_GOLDEN_RATIO_CONJUGATE = 0.618033988749895


# The captions' font, under matplotlib's data folder (matplotlib is a dependency).
_CAPTION_FONT = "fonts/ttf/DejaVuSans.ttf"

# The 1-pixel frame around every panel.
PANEL_FRAME_COLOR = (160, 160, 160)

# Quality of JPEG drawings: boxes and labels stay crisp at a moderate file size.
JPEG_QUALITY = 92

# Panels of smaller images are enlarged to this longest side: captions and titles stay legible.
MIN_PANEL_SIDE = 256

# The default longest side of a panel: larger images are scaled down to it, so that a figure
# of several panels stays a readable size.
MAX_PANEL_SIDE = 640


def drawing_format(path: str | os.PathLike[str], *, flag: str | None = None) -> str:
    """The Pillow format that :func:`save_drawing` writes to ``path`` (by its suffix).

    Args:
        path: the file to write.
        flag: the command-line flag that gave ``path``, named in the error (None: none).

    Raises:
        ValueError: Pillow cannot write the suffix's format, or not as an RGB image of the
            drawing's size (:func:`_drawing_format_problem`); the message names the file.
    """
    path = Path(path)
    image_format = Image.registered_extensions().get(path.suffix.lower())
    given = f"{flag} {path}" if flag else str(path)
    if image_format is None or image_format not in Image.SAVE:
        raise ValueError(
            f"{given}: {path.suffix or 'no suffix'} is not an image format Pillow can write; "
            "name the file .png or .jpg"
        )
    problem = _drawing_format_problem(image_format)
    if problem is not None:
        raise ValueError(f"{given}: {image_format} {problem}; name the file .png or .jpg")
    return image_format


@cache
def _drawing_format_problem(image_format: str) -> str | None:
    """Why a drawing cannot be written faithfully in Pillow's ``image_format``, or None.

    A small RGB image is written in memory and, where Pillow reads the format back, read
    again: some formats take 1-bit or palette images only (XBM, MSP, Palm), need a plug-in
    (HDF5, WMF) or shrink and stretch the image to icon sizes (ICO, ICNS), which would fail
    after the model has run, or change the drawing without a word.
    """
    size = (300, 2)  # wider than the largest icon, and not square
    buffer = io.BytesIO()
    try:
        Image.new("RGB", size).save(buffer, format=image_format)
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"cannot hold this drawing ({error})"
    buffer.seek(0)
    try:
        with Image.open(buffer) as written:
            written_size = written.size
    except (OSError, ValueError, SyntaxError):  # written, but Pillow cannot read it (PDF, PS)
        return None
    if written_size != size:
        return f"would resize the drawing (to {written_size[0]}x{written_size[1]} for a 300x2 one)"
    return None


def save_drawing(image: Image.Image, path: str | os.PathLike[str]) -> Path:
    """Write ``image`` atomically in the format its file name's suffix names (``.png``,
    ``.jpg``, ``.webp``, ...; alpha is dropped for formats without it).

    Raises:
        ValueError: Pillow cannot write the suffix's format; the message names the file.
    """
    path = Path(path)
    image_format = drawing_format(path)
    if image_format == "JPEG" and image.mode != "RGB":
        image = image.convert("RGB")
    options = {"quality": JPEG_QUALITY} if image_format == "JPEG" else {}
    return atomic_write(path, lambda tmp: image.save(tmp, format=image_format, **options))


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


@lru_cache(maxsize=16)
def label_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans at ``size``, from matplotlib's data (accented Latin, Greek and Cyrillic
    class names: Pillow's own default font draws boxes for them); Pillow's default font when it
    cannot be read (a fixed bitmap font on Pillow < 10.1)."""
    import matplotlib

    try:
        return ImageFont.truetype(Path(matplotlib.get_data_path(), _CAPTION_FONT), size)
    except OSError:  # no FreeType, or a matplotlib without its fonts
        pass
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font only
        return ImageFont.load_default()


def fit_panel(
    image: Image.Image, max_side: int | None, image_size: tuple[int, int] | None = None
) -> tuple[Image.Image, np.ndarray]:
    """``image`` resized for a panel, and the factors that take boxes onto it.

    The panel's longer side is at most ``max_side`` and at least :data:`MIN_PANEL_SIDE` (or
    ``max_side`` if less): large images are scaled down, small ones enlarged so that captions,
    titles and line widths (which scale with the panel) stay legible. ``max_side=None``: the
    image as it is.

    Args:
        image: the image to show.
        max_side: the panel's longest side in pixels, or None.
        image_size: ``(h, w)`` of the image the boxes are in, when ``image`` shows it at
            another scale (a JPEG decoded reduced); default ``image``'s size.

    Returns:
        The panel image, and ``(4,)`` factors ``(sx, sy, sx, sy)``: absolute xyxy boxes of the
        image times them are the panel's pixels. Each axis has its own factor, the ratio of the
        panel's side to the image's (rounding the panel to whole pixels may change the aspect
        ratio a little), so a box on the image's far edge stays on the panel's far edge.
    """
    panel = image
    if max_side is not None:
        longest = max(image.size)
        target = min(max(longest, MIN_PANEL_SIDE), max_side)
        if target != longest:
            scale = target / longest
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            panel = image.resize(size, Image.Resampling.BILINEAR)
    height, width = image_size if image_size is not None else (image.height, image.width)
    sx, sy = panel.width / width, panel.height / height
    return panel, np.array([sx, sy, sx, sy])


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
        score_threshold: detections scoring below are not drawn.
        line_width: box outline width; default scales with the image (1 px per 320 px side).
        font_size: caption size; default scales with the image.
        image_name: names the image in errors (a file or an image id).

    Returns:
        A new RGB image; ``image`` is not modified.

    Raises:
        ValueError: the arrays' lengths differ, or a box or score is NaN or infinite (as COCO
            evaluation refuses such detections: a diverged or damaged model's).
    """
    canvas = image.convert("RGB")  # always a copy
    boxes_np = as_array(boxes, np.float64, (4,))
    labels_np = as_array(labels, np.int64, ())
    scores_np = None if scores is None else as_array(scores, np.float64, ())
    if len(labels_np) != len(boxes_np) or (
        scores_np is not None and len(scores_np) != len(boxes_np)
    ):
        raise ValueError(
            f"draw_detections: {len(boxes_np)} boxes, {len(labels_np)} labels and "
            f"{'no' if scores_np is None else len(scores_np)} scores; they must match"
        )
    check_finite(boxes_np, scores_np, image_name, from_model=scores_np is not None)
    longest = max(canvas.size)
    width = line_width if line_width is not None else max(1, round(longest / 320))
    font = label_font(font_size if font_size is not None else max(10, round(longest / 50)))
    order = np.arange(len(boxes_np))
    if scores_np is not None:
        keep = scores_np >= score_threshold
        order = order[keep][np.argsort(scores_np[keep], kind="stable")]  # best drawn last, on top
    draw = ImageDraw.Draw(canvas)
    for i in order.tolist():
        label = int(labels_np[i])
        name = class_names[label] if 0 <= label < len(class_names) else f"class {label}"
        caption = name if scores_np is None else f"{name} {scores_np[i]:.2f}"
        _draw_box(draw, boxes_np[i].tolist(), caption, class_color(label), width, font, canvas.size)
    return canvas


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
    problem = (
        "boxes have a NaN or infinite coordinate"
        if scores is None
        else "detections have a NaN or infinite score or box"
    )
    remedy = (
        "the model's outputs are not finite (diverged training or damaged weights): draw those "
        "of a model whose outputs are finite"
        if from_model
        else "give finite boxes"
    )
    raise ValueError(
        f"{image_name or 'draw_detections'}: {int(bad.sum())} of its {len(boxes)} {problem}, "
        f"which cannot be drawn; {remedy}"
    )


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


def compose_panels(
    panels: Sequence[tuple[str, Image.Image]], gap: int = 8, font_size: int | None = None
) -> Image.Image:
    """Lay titled panels out in one row on white, each title centred above its panel, each
    panel framed in grey.

    Args:
        panels: ``(title, image)`` pairs, left to right; images may differ in size.
        gap: white pixels between panels and around the row.
        font_size: title size; default scales with the tallest panel.

    Returns:
        One RGB image.
    """
    if not panels:
        raise ValueError("compose_panels needs at least one panel")
    height = max(image.height for _, image in panels)
    font = label_font(font_size if font_size is not None else max(12, round(height / 25)))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes = [measure.textbbox((0, 0), title, font=font) for title, _ in panels]  # (l, t, r, b)
    # Each column is as wide as its image or its title, whichever is wider.
    widths = [math.ceil(box[2] - box[0]) for box in boxes]
    columns = [max(image.width, w) for (_, image), w in zip(panels, widths, strict=True)]
    top = gap + math.ceil(max(box[3] for box in boxes)) + gap
    canvas = Image.new("RGB", (gap + sum(c + gap for c in columns), top + height + gap), "white")
    draw = ImageDraw.Draw(canvas)
    x = gap
    for (title, image), (left, _, right, _), column in zip(panels, boxes, columns, strict=True):
        draw.text((x + (column - (right - left)) / 2 - left, gap), title, (0, 0, 0), font)
        left_edge = x + (column - image.width) // 2
        canvas.paste(image.convert("RGB"), (left_edge, top))
        # A grey frame in the gap: a light image's panel stays apart from the white page.
        if gap > 0:
            frame = (left_edge - 1, top - 1, left_edge + image.width, top + image.height)
            draw.rectangle(frame, outline=PANEL_FRAME_COLOR)
        x += column + gap
    return canvas


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
    :func:`compose_panels`.

    Boxes are absolute xyxy pixels of ``image``; see :func:`draw_detections` for the rest.
    Each panel is ``image`` sized by :func:`fit_panel`, as the stage figure's, its boxes
    scaled with it.

    Args:
        max_panel_side: longest side of each panel (see :func:`fit_panel`); None: the image's
            own size.
        image_name: names the image in errors (a file or an image id).

    Returns:
        An RGB image: the two panels under their titles, ``gap`` white pixels between and
        around them.

    Raises:
        ValueError: as :func:`draw_detections`.
    """
    panel, scale = fit_panel(image.convert("RGB"), max_panel_side)
    gt = as_array(gt_boxes, np.float64, (4,)) * scale
    left = draw_detections(panel, gt, gt_labels, None, class_names, image_name=image_name)
    right = draw_detections(
        panel,
        as_array(pred_boxes, np.float64, (4,)) * scale,
        pred_labels,
        pred_scores,
        class_names,
        score_threshold=score_threshold,
        image_name=image_name,
    )
    num_boxes = len(as_array(gt_labels, np.int64, ()))
    shown = int((as_array(pred_scores, np.float64, ()) >= score_threshold).sum())
    titles = (
        f"ground truth: {counted(num_boxes, 'box', 'boxes')}",
        f"detections: {shown} scoring >= {score_threshold:g}",
    )
    return compose_panels(list(zip(titles, (left, right), strict=True)), gap=gap)
