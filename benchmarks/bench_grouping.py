"""Padded pixels of a training batch: ungrouped, grouped by each image's orientation, and grouped
by each sample's orientation after its augmentation (what training does).

For each COCO data set (``--data NAME=JSON:IMAGE_DIR``, or the synthetic styles of
:mod:`sparsercnn.data.synthetic_styles` generated under ``--root``) and each preset, the real
training sampler deals ``--batches`` batches three ways, and every sample's size after the
preset's training transform comes from its image's size (its file's, decoded once by the data
policy) and its seed: the mean pixels of a batch padded to its largest height and width (rounded
up to 32), the recipe's price of a batch
(:meth:`~sparsercnn.recipe.dataset_profile.DatasetProfile.padded_batch_pixels`, of every image),
are printed for each way, with the ratios. Grouping by the image alone misses what a random crop
does to a sample.

Usage: python benchmarks/bench_grouping.py [--styles large_few shapes] [--data NAME=JSON:DIR]
       [--presets r50_300pro_3x r50_100pro_3x] [--batch-size 16] [--batches 400] [--write]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sparsercnn.benchmarking import machine_kind
from sparsercnn.cli.common import int_at_least, user_path
from sparsercnn.data.synthetic_styles import DATASET_STYLES, generate_styled_dataset
from sparsercnn.data.transforms import TrainTransform, build_train_transform
from sparsercnn.presets import get_preset
from sparsercnn.recipe.dataset_profile import DatasetProfile

REPO = Path(__file__).resolve().parents[1]
SIZE_DIVISIBILITY = 32
SEED = 1


def measure(
    profile: DatasetProfile, transform: TrainTransform, batch_size: int, count: int
) -> tuple[float, float, float]:
    """Padded pixels ``(ungrouped, by image, by sample)`` of ``count`` batches of each kind."""
    ungrouped, by_image, by_sample = (
        profile.padded_batch_pixels(
            transform,
            batch_size,
            grouping=grouping,
            size_divisibility=SIZE_DIVISIBILITY,
            seed=SEED,
            num_batches=count,
            max_images=None,
        )
        for grouping in ("none", "image", "sample")
    )
    return ungrouped, by_image, by_sample


def _data_argument(text: str) -> tuple[str, Path, Path]:
    name, _, paths = text.partition("=")
    json_path, _, image_dir = paths.partition(":")
    if not (name and json_path and image_dir):
        raise argparse.ArgumentTypeError(f"expected NAME=JSON:IMAGE_DIR, got {text!r}")
    return name, Path(json_path), Path(image_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--styles", nargs="*", choices=sorted(DATASET_STYLES), default=["large_few", "shapes"]
    )
    parser.add_argument("--data", nargs="*", type=_data_argument, default=[])
    parser.add_argument("--root", type=user_path, default=REPO / "runs" / "bench_grouping")
    parser.add_argument("--presets", nargs="+", default=["r50_300pro_3x", "r50_100pro_3x"])
    parser.add_argument("--batch-size", type=int_at_least(1), default=16)
    parser.add_argument("--batches", type=int_at_least(1), default=400)
    parser.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    args = parser.parse_args()
    data = list(args.data)
    for style in args.styles:
        paths = generate_styled_dataset(style, args.root / style)
        data.append((style, paths.train_json, paths.train_images))
    rows = []
    for name, json_path, image_dir in data:
        # The entries training keeps, at their files' sizes (every image decoded once).
        profile = DatasetProfile.from_dataset(json_path, image_dir)
        for preset in args.presets:
            transform = build_train_transform(get_preset(preset).input)
            ungrouped, by_image, by_sample = measure(
                profile, transform, args.batch_size, args.batches
            )
            rows.append(
                f"| {name} | {preset} | {ungrouped / 1e3:.0f} | {by_image / 1e3:.0f} "
                f"({by_image / ungrouped:.3f}) | {by_sample / 1e3:.0f} "
                f"({by_sample / ungrouped:.3f}) | {by_sample / by_image:.3f} |"
            )
            print(rows[-1], flush=True)
    command = "python benchmarks/bench_grouping.py " + " ".join(sys.argv[1:])
    table = "\n".join(
        [
            f"`{command}` ({machine_kind()}; batch {args.batch_size}, {args.batches} batches "
            "each; padded kilopixels per batch image, ratio to ungrouped):",
            "",
            "| data | preset | ungrouped | by image | by sample | by sample / by image |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
    print(table)
    if args.write:
        with (REPO / "BENCHMARKS.md").open("a") as handle:
            handle.write("\n" + table + "\n")


if __name__ == "__main__":
    main()
