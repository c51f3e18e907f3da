"""Named synthetic data sets of different character, for benchmarks of training recipes.

Each preset in :data:`DATASET_STYLES` fixes a :class:`~sparsercnn.data.demo_dataset.SceneStyle`
and the image sizes and counts; :func:`generate_styled_dataset` writes it with
:func:`~sparsercnn.data.demo_dataset.generate_demo_dataset` (deterministic, reused when complete).
``shapes`` is exactly the default demo data set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sparsercnn.data.demo_dataset import (
    DEFAULT_STYLE,
    DemoDatasetPaths,
    SceneStyle,
    generate_demo_dataset,
)


@dataclass(frozen=True)
class DatasetSpec:
    """A named synthetic data set: the arguments of :func:`generate_demo_dataset` but the seed.

    Attributes:
        style: what the scenes and files look like.
        image_size: ``(lo, hi)`` inclusive range of each image's height and width (px).
        num_train, num_val: images per split.
        description: one line for tables and logs.
    """

    style: SceneStyle
    image_size: tuple[int, int]
    num_train: int
    num_val: int
    description: str


DATASET_STYLES: dict[str, DatasetSpec] = {
    "shapes": DatasetSpec(
        DEFAULT_STYLE, (256, 384), 600, 100, "the demo data: 6 shapes, 1-30 objects of ~10-160 px"
    ),
    "small_objects": DatasetSpec(
        SceneStyle(object_size=(12, 40), objects_per_image=(3, 15)),
        (800, 1100),
        300,
        80,
        "small objects on large images: 3-15 objects of 12-40 px on 800-1100 px images",
    ),
    "large_few": DatasetSpec(
        SceneStyle(object_size=(120, 720), objects_per_image=(1, 3), colour_mode="mixed"),
        (1000, 2000),
        160,
        60,
        "few large images: 1-3 objects of 120-720 px; 20 % grayscale JPEG, 10 % RGBA PNG",
    ),
    "many_classes": DatasetSpec(
        SceneStyle(num_classes=24),
        (256, 384),
        600,
        100,
        "24 classes, shape x hue family (star/red ...), the demo's sizes and crowding",
    ),
    "crowded": DatasetSpec(
        SceneStyle(objects_per_image=(50, 120)),
        (400, 600),
        400,
        80,
        "crowds: 50-120 objects per image on 400-600 px images, sizes capped to fit (~15-100 px)",
    ),
}


def generate_styled_dataset(name: str, root: Path, seed: int = 0) -> DemoDatasetPaths:
    """Write the preset ``name`` of :data:`DATASET_STYLES` under ``root`` (see
    :func:`generate_demo_dataset`: reused when complete, regenerated when parameters changed).

    Raises:
        ValueError: ``name`` is not a preset; the message lists them (a bad value, as a command
            line reports one: a ``KeyError`` would print its message quoted, as a lookup's).
    """
    if name not in DATASET_STYLES:
        names = ", ".join(sorted(DATASET_STYLES))
        raise ValueError(f"unknown synthetic data set {name!r}; choose one of {names}")
    spec = DATASET_STYLES[name]
    return generate_demo_dataset(
        root,
        num_train=spec.num_train,
        num_val=spec.num_val,
        seed=seed,
        image_size=spec.image_size,
        style=spec.style,
    )
