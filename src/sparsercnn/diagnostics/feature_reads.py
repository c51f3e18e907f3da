"""Which part of each FPN level the refinement stages actually read.

The head samples the FPN only through RoIAlign: each box reads ``7 x 7`` bins of ``2 x 2``
bilinear samples on its own level (small boxes on P2). :func:`collect_feature_reads` runs a
model over a dataset and counts, per level, the feature pixels that some stage sampled with a
non-zero weight, and the ``T x T`` tiles that hold one: what a detector computing the FPN
outputs only where they are read (tile by tile, cached across stages) would have to compute.
P2's 3x3 output convolution alone is about a quarter of R50-FPN's arithmetic, so its read
fraction bounds what such a sparse FPN can save.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sparsercnn.atomic_file import atomic_write_text
from sparsercnn.config import DEFAULT_NUM_WORKERS
from sparsercnn.data.loader import build_test_loader
from sparsercnn.engine.model_evaluation import load_model_and_dataset
from sparsercnn.model import SparseRCNN
from sparsercnn.model.inference import evaluating, model_device
from sparsercnn.ops.multilevel_roi_align import flatten_levels, roi_sample_rows
from sparsercnn.text import counted

TILE_SIZES = (8, 16, 32)


@dataclass
class LevelReads:
    """Read counts of one FPN level, summed over images.

    Attributes:
        name: ``P2`` ... ``P5``.
        stride: input-image pixels per feature pixel.
        pixels: feature pixels computed (each image padded to a multiple of 32).
        read_pixels: pixels sampled by at least one stage.
        stage_read_pixels: pixels sampled by each stage.
        tiles, read_tiles: ``T x T`` tiles (by tile side ``T``; partial tiles at the borders
            count as tiles) and those holding at least one read pixel.
    """

    name: str
    stride: int
    pixels: int = 0
    read_pixels: int = 0
    stage_read_pixels: list[int] = field(default_factory=list)
    tiles: dict[int, int] = field(default_factory=dict)
    read_tiles: dict[int, int] = field(default_factory=dict)

    @property
    def read_fraction(self) -> float:
        return self.read_pixels / max(self.pixels, 1)

    def tile_fraction(self, tile: int) -> float:
        return self.read_tiles.get(tile, 0) / max(self.tiles.get(tile, 0), 1)


@dataclass
class FeatureReads:
    """Per-level reads of a model over ``num_images`` images (test resize, one image per
    forward pass, as inference runs them)."""

    levels: list[LevelReads]
    num_images: int = 0

    def format_table(self) -> str:
        tiles = "".join(f"{f'{t}x{t} tiles':>12}" for t in TILE_SIZES)
        lines = [
            f"feature pixels read by RoIAlign over {counted(self.num_images, 'image')} "
            "(any stage; per stage in brackets)",
            f"{'level':<7}{'pixels read':>12}{tiles}   per stage",
        ]
        for level in self.levels:
            stages = " ".join(f"{s / max(level.pixels, 1):.1%}" for s in level.stage_read_pixels)
            fractions = "".join(f"{level.tile_fraction(t):>12.1%}" for t in TILE_SIZES)
            lines.append(f"{level.name:<7}{level.read_fraction:>12.1%}{fractions}   [{stages}]")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        levels = []
        for level in self.levels:
            record = asdict(level)
            record["read_fraction"] = level.read_fraction
            record["tile_fractions"] = {t: level.tile_fraction(t) for t in level.tiles}
            levels.append(record)
        return {"num_images": self.num_images, "levels": levels}


def empty_feature_reads(strides: Sequence[int], num_stages: int) -> FeatureReads:
    """Zero counts for levels ``P2, P3, ...`` of the given strides."""
    return FeatureReads(
        levels=[
            LevelReads(
                name=f"P{index + 2}",
                stride=stride,
                stage_read_pixels=[0] * num_stages,
                tiles=dict.fromkeys(TILE_SIZES, 0),
                read_tiles=dict.fromkeys(TILE_SIZES, 0),
            )
            for index, stride in enumerate(strides)
        ]
    )


def count_image_reads(model: SparseRCNN, image: Tensor, into: FeatureReads) -> None:
    """Run ``model`` on one resized RGB 0-255 ``(3, h, w)`` image and add its reads to ``into``.

    Call inside :func:`~sparsercnn.model.inference.evaluating`.
    """
    batch = model.preprocess([image])
    output = model(batch)
    height, width = batch.tensor.shape[-2:]
    strides = model.head.strides
    # One-channel levels of the real shapes: the rows RoIAlign reads depend on nothing else.
    shapes = [(height // s, width // s) for s in strides]
    levels = flatten_levels([batch.tensor.new_zeros(1, 1, h, w) for h, w in shapes], strides)
    stage_boxes = [output.proposal_boxes] + [stage.boxes for stage in output.stages[:-1]]
    read_any = torch.zeros(levels.table.shape[0], dtype=torch.bool, device=batch.tensor.device)
    starts = [*levels.level_starts.tolist(), levels.table.shape[0]]
    for stage, boxes in enumerate(stage_boxes):
        index, weight = roi_sample_rows(
            levels, boxes, model.head.pooler_resolution, model.head.sampling_ratio, aligned=True
        )
        read = torch.zeros_like(read_any)
        read[index[weight != 0]] = True
        read_any |= read
        for level, (begin, end) in zip(into.levels, itertools.pairwise(starts), strict=True):
            level.stage_read_pixels[stage] += int(read[begin:end].sum())
    for level, (h, w), begin in zip(into.levels, shapes, starts[:-1], strict=True):
        grid = read_any[begin : begin + h * w].view(h, w)
        level.pixels += h * w
        level.read_pixels += int(grid.sum())
        for tile in TILE_SIZES:
            padded = torch.nn.functional.pad(grid, (0, (-w) % tile, 0, (-h) % tile))
            blocks = padded.view(padded.shape[0] // tile, tile, padded.shape[1] // tile, tile)
            level.tiles[tile] += blocks.shape[0] * blocks.shape[2]
            level.read_tiles[tile] += int(blocks.any(dim=3).any(dim=1).sum())
    into.num_images += 1


def collect_feature_reads(
    model_file: str | Path,
    json_path: str | Path,
    image_dir: str | Path,
    *,
    device: torch.device | str = "cpu",
    max_images: int | None = None,
    num_workers: int = DEFAULT_NUM_WORKERS,
    skip_invalid: bool = False,
) -> FeatureReads:
    """The model's FPN reads over a COCO-format dataset (its test resize), image by image."""
    # The reads need no ground truth: a file of unlabelled images, or of other classes, will do.
    loaded, dataset = load_model_and_dataset(
        model_file,
        json_path,
        image_dir,
        device,
        skip_invalid=skip_invalid,
        require_boxes=False,
        labelled=False,
    )
    model = loaded.model
    reads = empty_feature_reads(model.head.strides, model.num_stages)
    loader = build_test_loader(dataset, batch_size=1, num_workers=num_workers)
    with evaluating(model):
        for batch in loader:
            for image in batch.images:
                if max_images is not None and reads.num_images >= max_images:
                    return reads
                count_image_reads(model, image.to(model_device(model)), reads)
    return reads


def write_feature_reads(reads: FeatureReads, output_dir: Path) -> Path:
    """``feature_reads.json`` in ``output_dir`` (created); returns its path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "feature_reads.json"
    atomic_write_text(path, json.dumps(reads.to_dict(), indent=2) + "\n")
    return path
