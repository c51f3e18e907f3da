"""A synthetic COCO-format detection data set, generated locally, for the CPU demo and tests.

Images show coloured shapes (:data:`DEMO_CLASSES`) on textured backgrounds with clutter that is
not a class. The class is defined by the silhouette only: colours vary within a class. Objects
range from ~10 px to ~110 px, may partially occlude each other (each keeps at least 70 % of its
pixels visible) and crowd up to 30 per image; about 5 % of the images have no object. Boxes are
the extents of the *visible* pixels, so they are tight. Everything is a deterministic function
of the seed (numpy + PIL only), written atomically, and not rewritten when already complete.
A :class:`SceneStyle` changes the character of the data (object sizes, crowding, classes defined
by shape and colour, grayscale/RGBA files); the default style gives exactly the demo data above.
Named presets for benchmarks are in :mod:`sparsercnn.data.synthetic_styles`.

Layout under ``root``: ``train/*.jpg``, ``val/*.jpg`` (``*.png`` for RGBA images),
``train.json``, ``val.json`` (COCO, category ids 1..K in :func:`class_names` order, ``bbox`` =
``[x, y, w, h]``) and the marker ``demo_dataset.json``.
"""

from __future__ import annotations

import colorsys
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw

from sparsercnn.text import counted

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

DEMO_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring", "cross")
GENERATOR_VERSION = 2
MARKER_NAME = "demo_dataset.json"

# Smallest circumscribed diameter (px) per class at which its silhouette stays unambiguous.
_MIN_SIZE = {"circle": 10, "square": 12, "triangle": 12, "star": 16, "ring": 14, "cross": 12}
_MAX_SIZE = 110
_REFERENCE_SIDE = 256
_SMALLEST = 8
_MIN_IMAGE_SIDE = 96
_MIN_VISIBLE_FRACTION = 0.7
_EMPTY_FRACTION = 0.05
# Scenes of up to _FEW_TRIES_CROWD objects (every default scene) try 20 corners per object; larger
# crowds try more, so 100+ objects get placed whenever their sizes leave room.
_FEW_TRIES_CROWD = 30
_PLACE_TRIES = (20, 100)
# Hue families of the colour classes: n bands centred at hue k / n, named after the nearest of
# these twelve hues (30 degrees apart); an object's hue stays within 30 % of a band of its centre.
_HUE_NAMES = (
    "red", "orange", "yellow", "lime", "green", "spring",
    "cyan", "azure", "blue", "violet", "magenta", "rose",
)  # fmt: skip
_HUE_SPREAD = 0.3
# "mixed" colour mode: fractions of each split saved as grayscale JPEG and as RGBA PNG.
_GRAY_FRACTION = 0.2
_RGBA_FRACTION = 0.1
_TRANSPARENT_CORNER = 4

ColourMode = Literal["rgb", "gray", "mixed"]


@dataclass(frozen=True)
class SceneStyle:
    """What the generated scenes look like; the default is the demo data set.

    Attributes:
        object_size: ``(lo, hi)`` px range of the shape diameter (log-uniform); a shape whose
            silhouette needs more than ``lo`` (star 16, ring 14, square/triangle/cross 12) starts
            there. ``None``: relative to the image's short side (~10-110 px at 256 px), capped
            for crowds: 70 px (scaled) above 8 objects, 48 above 18 and, above 30 objects,
            ``1.2 * sqrt(h * w / n)`` so that the crowd covers about a third of the image.
        objects_per_image: ``(lo, hi)`` inclusive range of objects per non-empty image.
            ``None``: 1-8 (65 %), 9-18 (25 %) or 19-30 (10 %). Objects that find no place
            (after 20 tries, 100 above 30 objects) are left out.
        num_classes: up to 6, the first k shapes of :data:`DEMO_CLASSES` in any colour; 12, 18,
            24, 30 or 36: each shape in 2-6 hue families (``"star/red"``), needs ``"rgb"``.
        colour_mode: ``"rgb"`` RGB JPEG; ``"gray"`` every image an 8-bit grayscale JPEG;
            ``"mixed"``: 20 % of each split grayscale JPEG, 10 % RGBA PNG (opaque but for a
            transparent 4x4 top-left corner), the rest RGB JPEG.
    """

    object_size: tuple[float, float] | None = None
    objects_per_image: tuple[int, int] | None = None
    num_classes: int = len(DEMO_CLASSES)
    colour_mode: ColourMode = "rgb"

    def __post_init__(self) -> None:
        if (
            self.object_size is not None
            and not _SMALLEST <= self.object_size[0] <= self.object_size[1]
        ):
            raise ValueError(
                f"object_size must be (lo, hi) with {_SMALLEST} <= lo <= hi, got {self.object_size}"
            )
        count = self.objects_per_image
        if count is not None and not 1 <= count[0] <= count[1]:
            raise ValueError(f"objects_per_image must be (lo, hi) with 1 <= lo <= hi, got {count}")
        class_names(self.num_classes)
        if self.colour_mode not in ("rgb", "gray", "mixed"):
            raise ValueError(
                f"colour_mode must be 'rgb', 'gray' or 'mixed', got {self.colour_mode!r}"
            )
        if self.num_classes > len(DEMO_CLASSES) and self.colour_mode != "rgb":
            raise ValueError(
                f"num_classes={self.num_classes} tells classes apart by colour: colour_mode must "
                f"be 'rgb', got {self.colour_mode!r}"
            )

    def marker_fields(self) -> dict[str, Any]:
        """The fields that differ from the default style, as JSON values (the marker's
        ``"style"``; absent for the default style, so default data sets keep their marker)."""
        default = SceneStyle()
        changed = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if value != getattr(default, field.name):
                changed[field.name] = list(value) if isinstance(value, tuple) else value
        return changed


def class_names(num_classes: int = len(DEMO_CLASSES)) -> tuple[str, ...]:
    """Class names in label order (category id = label + 1): shapes, or ``"shape/hue"`` pairs
    (shape-major) when ``num_classes`` is a multiple of 6 above 6.

    Raises:
        ValueError: ``num_classes`` is not in 1-6 or one of 12, 18, 24, 30, 36.
    """
    shapes = len(DEMO_CLASSES)
    if 1 <= num_classes <= shapes:
        return DEMO_CLASSES[:num_classes]
    bands = num_classes // shapes
    if num_classes % shapes or not 2 <= bands <= len(_HUE_NAMES) // 2:
        raise ValueError(
            f"num_classes must be 1-6 (shapes) or 12, 18, 24, 30 or 36 (shapes x hue families), "
            f"got {num_classes}"
        )
    hues = [_HUE_NAMES[round(k * len(_HUE_NAMES) / bands) % len(_HUE_NAMES)] for k in range(bands)]
    return tuple(f"{shape}/{hue}" for shape in DEMO_CLASSES for hue in hues)


DEFAULT_STYLE = SceneStyle()


def hue_band(label: int, num_classes: int) -> tuple[float, float]:
    """``(lo, hi)`` hue range (fractions of the colour circle, ``lo`` may be negative: it wraps)
    of class ``label``'s objects; ``(0, 1)`` when classes are shapes only."""
    bands = num_classes // len(DEMO_CLASSES)
    if num_classes <= len(DEMO_CLASSES):
        return 0.0, 1.0
    centre = (label % bands) / bands
    return centre - _HUE_SPREAD / bands, centre + _HUE_SPREAD / bands


@dataclass(frozen=True)
class DemoDatasetPaths:
    """Where :func:`generate_demo_dataset` put the data (``*_json`` files are COCO format)."""

    root: Path
    train_images: Path
    train_json: Path
    val_images: Path
    val_json: Path

    @staticmethod
    def under(root: Path) -> DemoDatasetPaths:
        return DemoDatasetPaths(
            root, root / "train", root / "train.json", root / "val", root / "val.json"
        )


@dataclass
class DemoObject:
    """One drawn object: ``label`` indexes :func:`class_names`; ``box`` is the xyxy pixel extent
    (exclusive right/bottom) of its visible pixels, ``area`` their count."""

    label: int
    box: tuple[int, int, int, int]
    area: int


def shape_mask(kind: str, size: float, angle: float) -> np.ndarray:
    """Binary ``(h, w)`` mask of one shape, cropped to its pixels.

    Args:
        kind: a name in :data:`DEMO_CLASSES`.
        size: diameter (px) of the circle the shape is inscribed in.
        angle: rotation in radians (ignored by the circle and the ring).
    """
    canvas = math.ceil(size) + 4
    mask = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(mask)
    c, r = canvas / 2, size / 2

    def polygon(radii: list[float], angles: list[float]) -> list[tuple[float, float]]:
        return [
            (c + q * math.cos(a + angle), c + q * math.sin(a + angle))
            for q, a in zip(radii, angles, strict=True)
        ]

    if kind in ("circle", "ring"):
        draw.ellipse((c - r, c - r, c + r, c + r), fill=255)
        if kind == "ring":
            inner = 0.55 * r
            draw.ellipse((c - inner, c - inner, c + inner, c + inner), fill=0)
    elif kind == "square":
        draw.polygon(polygon([r] * 4, [math.pi / 4 + k * math.pi / 2 for k in range(4)]), fill=255)
    elif kind == "triangle":
        angles = [-math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)]
        draw.polygon(polygon([r] * 3, angles), fill=255)
    elif kind == "star":
        angles = [-math.pi / 2 + k * math.pi / 5 for k in range(10)]
        draw.polygon(polygon([r, 0.45 * r] * 5, angles), fill=255)
    elif kind == "cross":
        arm, length = 0.34 * r, 0.95 * r
        corners = [(length, arm), (arm, arm), (arm, length)]
        points = [(x, y) for k in range(4) for x, y in _rotate90(corners, k)]
        draw.polygon(
            polygon([math.hypot(x, y) for x, y in points], [math.atan2(y, x) for x, y in points]),
            fill=255,
        )
    else:
        raise ValueError(f"unknown demo shape {kind!r}; expected one of {DEMO_CLASSES}")
    array = np.asarray(mask) > 0
    rows, cols = np.flatnonzero(array.any(1)), np.flatnonzero(array.any(0))
    return array[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _rotate90(points: list[tuple[float, float]], times: int) -> list[tuple[float, float]]:
    for _ in range(times):
        points = [(-y, x) for x, y in points]
    return points


def _muted_colour(rng: np.random.Generator) -> np.ndarray:
    """A low-saturation background colour, ``(3,)`` float."""
    return rng.uniform(50, 190) + rng.uniform(-20, 20, 3)


def _saturated_colour(
    rng: np.random.Generator, hues: tuple[float, float] = (0.0, 1.0)
) -> tuple[int, int, int]:
    """An object colour: hue in ``hues`` (wrapping), saturation 0.65-1, value 0.75-1."""
    hue, saturation, value = rng.uniform(*hues), rng.uniform(0.65, 1), rng.uniform(0.75, 1)
    red, green, blue = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(red * 255), round(green * 255), round(blue * 255)


def render_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Textured ``(h, w, 3)`` uint8 background: noise, gradients, stripes or blotches, plus clutter
    (lines, dots and scribbles that are not a class)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.broadcast_to(_muted_colour(rng), (height, width, 3)).astype(np.float32)
    for kind in rng.choice(["gradient", "stripes", "blotches", "plain"], size=2, replace=False):
        theta = rng.uniform(0, math.pi)
        t = xs * math.cos(theta) + ys * math.sin(theta)
        if kind == "gradient":
            ramp = (t - t.min()) / max(float(np.ptp(t)), 1.0)
            image += ramp[..., None] * (_muted_colour(rng) - image.mean((0, 1)))
        elif kind == "stripes":
            wave = np.sign(np.sin(t * 2 * math.pi / rng.uniform(6, 40)))
            image += wave[..., None] * rng.uniform(8, 25, 3)
        elif kind == "blotches":
            grid = (max(height // 40, 2), max(width // 40, 2))
            # Mostly brightness, a little colour: the background stays muted next to objects.
            coarse = 128 + rng.uniform(-35, 35, (*grid, 1)) + rng.uniform(-12, 12, (*grid, 3))
            smooth = Image.fromarray(coarse.astype(np.uint8)).resize(
                (width, height), Image.Resampling.BICUBIC
            )
            image += np.asarray(smooth, dtype=np.float32) - 128
    image += rng.standard_normal(image.shape, dtype=np.float32) * rng.uniform(3, 12)
    canvas = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(0, 16))):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        x, y = float(rng.uniform(0, width)), float(rng.uniform(0, height))
        kind = rng.choice(["line", "dot", "scribble"])
        if kind == "dot":
            radius = float(rng.uniform(1, 2.5))
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
        else:
            steps = 1 if kind == "line" else int(rng.integers(3, 7))
            walk = np.cumsum(rng.normal(0, 25 if kind == "line" else 8, (steps, 2)), axis=0)
            points = [(x, y)] + [(x + dx, y + dy) for dx, dy in walk]
            draw.line(points, fill=colour, width=int(rng.integers(1, 3)))
    return np.array(canvas)


def _place(
    rng: np.random.Generator,
    id_map: np.ndarray,
    visible: list[int],
    areas: list[int],
    mask: np.ndarray,
    tries: int = 20,
) -> tuple[int, int] | None:
    """Find a top-left corner for ``mask`` that leaves every earlier object at least
    :data:`_MIN_VISIBLE_FRACTION` visible; ``None`` after ``tries`` failed tries."""
    height, width = id_map.shape
    visible_now, needed = np.asarray(visible), _MIN_VISIBLE_FRACTION * np.asarray(areas)
    for _ in range(tries):
        top = int(rng.integers(0, height - mask.shape[0] + 1))
        left = int(rng.integers(0, width - mask.shape[1] + 1))
        covered = id_map[top : top + mask.shape[0], left : left + mask.shape[1]][mask]
        counts = np.bincount(covered, minlength=len(visible) + 1)[1:]
        if np.all(visible_now - counts >= needed):
            return top, left
    return None


def _size_range(
    kind: str, num_objects: int, height: int, width: int, style: SceneStyle
) -> tuple[float, float]:
    """``(lo, hi)`` diameter range (px) of a ``kind`` shape in a scene of ``num_objects``."""
    if style.object_size is not None:
        lo, hi = style.object_size
        return min(max(lo, _MIN_SIZE[kind]), hi), hi
    # Sizes are set for a 256-pixel short side and scale with the image; small objects stay
    # at least _SMALLEST pixels. Crowds get smaller objects so that they fit.
    scale = min(height, width) / _REFERENCE_SIDE
    max_size = (_MAX_SIZE if num_objects <= 8 else (70 if num_objects <= 18 else 48)) * scale
    if num_objects > _FEW_TRIES_CROWD:
        max_size = min(max_size, 1.2 * math.sqrt(height * width / num_objects))
    min_size = max(_SMALLEST, _MIN_SIZE[kind] * scale)
    return min_size, max(max_size, min_size + 1)


def render_scene(
    rng: np.random.Generator,
    height: int,
    width: int,
    num_objects: int,
    style: SceneStyle = DEFAULT_STYLE,
) -> tuple[np.ndarray, np.ndarray, list[DemoObject]]:
    """Draw up to ``num_objects`` shapes (fewer when they do not fit) on a textured background.

    Args:
        style: sizes and classes of the objects (``object_size``, ``num_classes``).

    Returns:
        ``image``: ``(h, w, 3)`` uint8 RGB; ``id_map``: ``(h, w)`` int32, ``k + 1`` where object
        ``k`` is visible and 0 elsewhere; the objects, with boxes from ``id_map``.
    """
    image = render_background(rng, height, width)
    id_map = np.zeros((height, width), dtype=np.int32)
    labels: list[int] = []
    windows: list[tuple[slice, slice]] = []
    visible: list[int] = []
    areas: list[int] = []
    tries = _PLACE_TRIES[num_objects > _FEW_TRIES_CROWD]
    bands = max(style.num_classes // len(DEMO_CLASSES), 1)
    for _ in range(num_objects):
        label = int(rng.integers(0, style.num_classes))
        kind = DEMO_CLASSES[label // bands]
        lo, hi = _size_range(kind, num_objects, height, width, style)
        size = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        mask = shape_mask(kind, size, float(rng.uniform(0, 2 * math.pi)))
        corner = _place(rng, id_map, visible, areas, mask, tries)
        colour = _saturated_colour(rng, hue_band(label, style.num_classes))
        if corner is None:
            continue
        top, left = corner
        window = (slice(top, top + mask.shape[0]), slice(left, left + mask.shape[1]))
        covered = id_map[window][mask]
        for j, n in enumerate(np.bincount(covered, minlength=len(visible) + 1)[1:]):
            visible[j] -= int(n)
        id_map[window][mask] = len(labels) + 1
        image[window][mask] = colour
        labels.append(label)
        windows.append(window)
        visible.append(int(mask.sum()))
        areas.append(int(mask.sum()))
    objects = []
    for k, (label, (ys, xs)) in enumerate(zip(labels, windows, strict=True)):
        # An object's visible pixels lie inside the window it was drawn in.
        rows, cols = np.nonzero(id_map[ys, xs] == k + 1)
        x1, y1 = xs.start + int(cols.min()), ys.start + int(rows.min())
        x2, y2 = xs.start + int(cols.max()) + 1, ys.start + int(rows.max()) + 1
        objects.append(DemoObject(label=label, box=(x1, y1, x2, y2), area=int(rows.size)))
    return image, id_map, objects


def _num_objects(rng: np.random.Generator, style: SceneStyle = DEFAULT_STYLE) -> int:
    """Objects per non-empty image: the style's range, else mostly a few, sometimes up to 30."""
    if style.objects_per_image is not None:
        return int(rng.integers(style.objects_per_image[0], style.objects_per_image[1] + 1))
    crowd = rng.uniform()
    if crowd < 0.65:
        return int(rng.integers(1, 9))
    if crowd < 0.9:
        return int(rng.integers(9, 19))
    return int(rng.integers(19, 31))


def _file_modes(
    colour_mode: ColourMode, num_images: int, seed: int, split: int
) -> list[Literal["RGB", "L", "RGBA"]]:
    """The PIL mode each image of a split is saved in (a deterministic choice for "mixed")."""
    if colour_mode != "mixed":
        return ["L" if colour_mode == "gray" else "RGB"] * num_images
    order = np.random.default_rng([seed, split, 2**31 + 1]).permutation(num_images).tolist()
    num_gray, num_rgba = round(_GRAY_FRACTION * num_images), round(_RGBA_FRACTION * num_images)
    modes: list[Literal["RGB", "L", "RGBA"]] = ["RGB"] * num_images
    for rank, index in enumerate(order[: num_gray + num_rgba]):
        modes[index] = "L" if rank < num_gray else "RGBA"
    return modes


def _save_image(image: np.ndarray, folder: Path, index: int, mode: str) -> str:
    """Save ``(h, w, 3)`` uint8 RGB ``image`` in ``mode``; return its file name."""
    if mode == "RGBA":
        alpha = np.full(image.shape[:2], 255, dtype=np.uint8)
        alpha[:_TRANSPARENT_CORNER, :_TRANSPARENT_CORNER] = 0
        file_name = f"{index:06d}.png"
        Image.fromarray(np.dstack([image, alpha])).save(folder / file_name, compress_level=1)
        return file_name
    file_name = f"{index:06d}.jpg"
    Image.fromarray(image).convert(mode).save(folder / file_name, quality=92, subsampling=0)
    return file_name


def _write_split(
    folder: Path,
    split: int,
    num_images: int,
    seed: int,
    image_size: tuple[int, int],
    style: SceneStyle,
) -> dict[str, Any]:
    """Render and save one split's images; return its COCO dict."""
    folder.mkdir(parents=True)
    num_empty = max(1, round(_EMPTY_FRACTION * num_images)) if num_images >= 2 else 0
    empty = set(
        np.random.default_rng([seed, split, 2**31]).permutation(num_images)[:num_empty].tolist()
    )
    modes = _file_modes(style.colour_mode, num_images, seed, split)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for index in range(num_images):
        rng = np.random.default_rng([seed, split, index])
        height, width = (int(v) for v in rng.integers(image_size[0], image_size[1] + 1, 2))
        num_objects = 0 if index in empty else _num_objects(rng, style)
        image, _, objects = render_scene(rng, height, width, num_objects, style)
        file_name = _save_image(image, folder, index, modes[index])
        images.append({"id": index + 1, "file_name": file_name, "height": height, "width": width})
        for obj in objects:
            x1, y1, x2, y2 = obj.box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": obj.label + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": float(obj.area),
                    "iscrowd": 0,
                }
            )
    categories = [
        {"id": i + 1, "name": name, "supercategory": "shape"}
        for i, name in enumerate(class_names(style.num_classes))
    ]
    info = {"description": "sparsercnn synthetic shapes", "version": str(GENERATOR_VERSION)}
    return {
        "info": info,
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def _read_marker(root: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((root / MARKER_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def generate_demo_dataset(
    root: Path,
    num_train: int = 600,
    num_val: int = 100,
    seed: int = 0,
    image_size: tuple[int, int] = (256, 384),
    style: SceneStyle = DEFAULT_STYLE,
) -> DemoDatasetPaths:
    """Write the synthetic data set under ``root`` unless a complete copy is already there.

    Args:
        root: output folder; created (with its parents) if missing. An existing folder is
            replaced only if it is empty or holds a demo data set made with other parameters.
            It is written in a temporary folder beside it and renamed; the temporary folders of
            generations killed beside it (SIGKILL) are removed, and the removal is logged.
        num_train, num_val: images per split.
        seed: the data set is a deterministic function of ``seed`` and the other arguments.
        image_size: ``(lo, hi)`` inclusive range from which each image's height and width are drawn.
        style: the character of the scenes and files (:class:`SceneStyle`); the fields that
            differ from the default are part of the marker, so changing them regenerates.

    Returns:
        The paths of the image folders and COCO JSON files.
    """
    root = Path(root)
    if num_train < 0 or num_val < 0:
        raise ValueError(f"num_train and num_val must be >= 0, got {num_train}, {num_val}")
    if not _MIN_IMAGE_SIDE <= image_size[0] <= image_size[1]:
        raise ValueError(
            f"image_size must be (lo, hi) with {_MIN_IMAGE_SIDE} <= lo <= hi, got {image_size}"
        )
    params = {
        "generator_version": GENERATOR_VERSION,
        "num_train": num_train,
        "num_val": num_val,
        "seed": seed,
        "image_size": list(image_size),
    }
    if style.marker_fields():
        params["style"] = style.marker_fields()
    paths = DemoDatasetPaths.under(root)
    _remove_stale_generations(root)
    if _read_marker(root) == params:
        logger.info("demo data set already complete at %s", root)
        return paths
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(
            f"{root} is a file, where the demo data set goes; move it away or choose another folder"
        )
    if root.exists():
        if any(root.iterdir()) and _read_marker(root) is None:
            raise FileExistsError(
                f"{root} exists and is not a demo data set (no {MARKER_NAME}); "
                "choose an empty or new folder"
            )
        if _read_marker(root) is not None:
            logger.info("replacing the demo data set at %s, made with other parameters", root)
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with _generation_folder(root) as tmp:
        for split, (name, count) in enumerate((("train", num_train), ("val", num_val))):
            coco = _write_split(tmp / name, split, count, seed, image_size, style)
            (tmp / f"{name}.json").write_text(json.dumps(coco))
        (tmp / MARKER_NAME).write_text(json.dumps(params, indent=2))
        try:
            os.rename(tmp, root)
        except OSError:
            # Another process finished first; keep its copy if it is the same data set.
            if _read_marker(root) != params:
                raise
    logger.info(
        "wrote demo data set (%d train, %d val images) to %s in %.1f s",
        num_train,
        num_val,
        root,
        time.perf_counter() - start,
    )
    return paths


def _temporary_prefix(root: Path) -> str:
    """The name of every locked temporary folder :func:`generate_demo_dataset` writes ``root``
    in, up to the creating process's id and a random part: ``.NAME.tmp-PID-``."""
    return f".{root.name}.tmp-"


@contextmanager
def _generation_folder(root: Path) -> Iterator[Path]:
    """A new temporary folder beside ``root``, locked (``flock``) while the block runs and
    removed after it (unless renamed): a process killed meanwhile (SIGKILL cannot be caught)
    leaves it behind, and the lock, which dies with the process, tells the next call that no
    one writes in it any more (:func:`_remove_stale_generations`).

    The folder is made under another name and takes the name the clean-up looks for only once
    locked, so that a clean-up never sees it unlocked; where it cannot be locked (no ``fcntl``,
    a file system without ``flock``), it keeps the name no clean-up touches.
    """
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.new-", dir=root.parent))
    lock = _lock_folder(tmp)
    try:
        if lock is not None:
            locked = tmp.with_name(f"{_temporary_prefix(root)}{os.getpid()}-{tmp.name[-8:]}")
            os.rename(tmp, locked)
            tmp = locked
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if lock is not None:
            os.close(lock)


def _lock_folder(folder: Path) -> int | None:
    """An open descriptor of ``folder`` holding an exclusive ``flock`` on it, or ``None`` where
    ``fcntl`` is missing (Windows) or the lock is held elsewhere."""
    if fcntl is None:
        return None
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _remove_stale_generations(root: Path) -> None:
    """Remove the temporary folders of ``root``'s interrupted generations: those named
    ``.NAME.tmp-PID-*`` whose lock no process holds. Nothing else is touched; without
    ``fcntl`` (Windows), nothing is."""
    prefix = _temporary_prefix(root)
    if fcntl is None or not root.parent.is_dir():
        return
    removed = []
    for path in sorted(root.parent.iterdir()):
        pid, _, rest = path.name.removeprefix(prefix).partition("-")
        ours = path.name.startswith(prefix) and pid.isdigit() and rest
        if not ours or path.is_symlink() or not path.is_dir():
            continue
        lock = _lock_folder(path)
        if lock is None:
            continue  # a live process is writing it
        try:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(lock)
        if not path.exists():
            removed.append(path.name)
    if removed:
        logger.info(
            "removed %s left in %s by an interrupted data generation: %s",
            counted(len(removed), "temporary folder"),
            root.parent,
            ", ".join(removed),
        )
