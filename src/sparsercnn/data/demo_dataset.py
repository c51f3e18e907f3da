"""A synthetic COCO-format detection data set, generated locally, for the CPU demo and tests.

Images show coloured shapes (:data:`DEMO_CLASSES`) on textured backgrounds with clutter that is
not a class. The class is defined by the silhouette only: colours vary within a class. Objects
range from ~10 px to ~110 px, may partially occlude each other (each keeps at least 70 % of its
pixels visible) and crowd up to 30 per image; about 5 % of the images have no object. Boxes are
the extents of the *visible* pixels, so they are tight. Everything is a deterministic function
of the seed (numpy + PIL only), written atomically, and not rewritten when already complete.

Layout under ``root``: ``train/*.jpg``, ``val/*.jpg``, ``train.json``, ``val.json`` (COCO,
category ids 1..6 in :data:`DEMO_CLASSES` order, ``bbox`` = ``[x, y, w, h]``) and the marker
``demo_dataset.json``.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

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
    """One drawn object: ``label`` indexes :data:`DEMO_CLASSES`; ``box`` is the xyxy pixel extent
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


def _saturated_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """An object colour: any hue, saturation 0.65-1, value 0.75-1."""
    hue, saturation, value = rng.uniform(0, 1), rng.uniform(0.65, 1), rng.uniform(0.75, 1)
    red, green, blue = colorsys.hsv_to_rgb(hue, saturation, value)
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
) -> tuple[int, int] | None:
    """Find a top-left corner for ``mask`` that leaves every earlier object at least
    :data:`_MIN_VISIBLE_FRACTION` visible; ``None`` after 20 failed tries."""
    height, width = id_map.shape
    for _ in range(20):
        top = int(rng.integers(0, height - mask.shape[0] + 1))
        left = int(rng.integers(0, width - mask.shape[1] + 1))
        covered = id_map[top : top + mask.shape[0], left : left + mask.shape[1]][mask]
        counts = np.bincount(covered, minlength=len(visible) + 1)[1:]
        if all(
            v - n >= _MIN_VISIBLE_FRACTION * a
            for v, n, a in zip(visible, counts, areas, strict=True)
        ):
            return top, left
    return None


def render_scene(
    rng: np.random.Generator, height: int, width: int, num_objects: int
) -> tuple[np.ndarray, np.ndarray, list[DemoObject]]:
    """Draw up to ``num_objects`` shapes (fewer when they do not fit) on a textured background.

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
    # Sizes are set for a 256-pixel short side and scale with the image; small objects stay
    # at least _SMALLEST pixels.
    scale = min(height, width) / _REFERENCE_SIDE
    max_size = (_MAX_SIZE if num_objects <= 8 else (70 if num_objects <= 18 else 48)) * scale
    for _ in range(num_objects):
        label = int(rng.integers(0, len(DEMO_CLASSES)))
        kind = DEMO_CLASSES[label]
        min_size = max(_SMALLEST, _MIN_SIZE[kind] * scale)
        size = math.exp(rng.uniform(math.log(min_size), math.log(max(max_size, min_size + 1))))
        mask = shape_mask(kind, size, float(rng.uniform(0, 2 * math.pi)))
        corner = _place(rng, id_map, visible, areas, mask)
        colour = _saturated_colour(rng)
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


def _num_objects(rng: np.random.Generator) -> int:
    """Objects per non-empty image: mostly a few, sometimes a crowd of up to 30."""
    crowd = rng.uniform()
    if crowd < 0.65:
        return int(rng.integers(1, 9))
    if crowd < 0.9:
        return int(rng.integers(9, 19))
    return int(rng.integers(19, 31))


def _write_split(
    folder: Path, split: int, num_images: int, seed: int, image_size: tuple[int, int]
) -> dict[str, Any]:
    """Render and save one split's images; return its COCO dict."""
    folder.mkdir(parents=True)
    num_empty = max(1, round(_EMPTY_FRACTION * num_images)) if num_images >= 2 else 0
    empty = set(
        np.random.default_rng([seed, split, 2**31]).permutation(num_images)[:num_empty].tolist()
    )
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for index in range(num_images):
        rng = np.random.default_rng([seed, split, index])
        height, width = (int(v) for v in rng.integers(image_size[0], image_size[1] + 1, 2))
        num_objects = 0 if index in empty else _num_objects(rng)
        image, _, objects = render_scene(rng, height, width, num_objects)
        file_name = f"{index:06d}.jpg"
        Image.fromarray(image).save(folder / file_name, quality=92, subsampling=0)
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
        {"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(DEMO_CLASSES)
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
) -> DemoDatasetPaths:
    """Write the synthetic data set under ``root`` unless a complete copy is already there.

    Args:
        root: output folder; created (with its parents) if missing. An existing folder is
            replaced only if it is empty or holds a demo data set made with other parameters.
        num_train, num_val: images per split.
        seed: the data set is a deterministic function of ``seed`` and the other arguments.
        image_size: ``(lo, hi)`` inclusive range from which each image's height and width are drawn.

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
    paths = DemoDatasetPaths.under(root)
    if _read_marker(root) == params:
        logger.info("demo data set already complete at %s", root)
        return paths
    if root.exists():
        if any(root.iterdir()) and _read_marker(root) is None:
            raise FileExistsError(
                f"{root} exists and is not a demo data set (no {MARKER_NAME}); "
                "choose an empty or new folder"
            )
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        for split, (name, count) in enumerate((("train", num_train), ("val", num_val))):
            coco = _write_split(tmp / name, split, count, seed, image_size)
            (tmp / f"{name}.json").write_text(json.dumps(coco))
        (tmp / MARKER_NAME).write_text(json.dumps(params, indent=2))
        try:
            os.rename(tmp, root)
        except OSError:
            # Another process finished first; keep its copy if it is the same data set.
            if _read_marker(root) != params:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info(
        "wrote demo data set (%d train, %d val images) to %s in %.1f s",
        num_train,
        num_val,
        root,
        time.perf_counter() - start,
    )
    return paths
