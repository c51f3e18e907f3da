"""On-demand FPN levels on a trained model and real images: time, tiles computed, same outputs.

Loads a model file and runs it on the images of a COCO-format dataset (the model's test resize,
one image per forward pass), alternating the dense pyramid and the on-demand levels (P2 and P3
computed on the 16x16 tiles the stages read) image by image, each input size first run both ways
untimed. Prints the median model time of each, their ratio, the fraction of P2/P3 tiles computed
and the largest output difference, and appends the table to BENCHMARKS.md with ``--write``.
Random weights would not do: they leave the proposals where they start and read little of P2.

Usage: python benchmarks/bench_on_demand.py --model M --json J --images DIR [--max-images 20]
       [--threads 2] [--precision fp32|bf16] [--write]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from sparsercnn.benchmarking import machine_kind
from sparsercnn.cli.common import int_at_least, user_path
from sparsercnn.data.loader import build_test_loader
from sparsercnn.diagnostics.feature_reads import count_image_reads, empty_feature_reads
from sparsercnn.engine.model_evaluation import evaluation_dataset
from sparsercnn.model import SparseRCNN
from sparsercnn.model.inference import evaluating
from sparsercnn.model.on_demand_level import DEFAULT_TILE
from sparsercnn.model_file import load_model_file
from sparsercnn.runtime import retain_freed_memory

REPO = Path(__file__).resolve().parents[1]
ON_DEMAND_LEVELS = 2


def timed(model: SparseRCNN, image: torch.Tensor, levels: int) -> tuple[float, list[torch.Tensor]]:
    """Seconds of one forward pass with ``levels`` on-demand levels, and its last-stage outputs."""
    model.fpn_on_demand_levels = levels
    start = time.perf_counter()
    output = model([image])
    seconds = time.perf_counter() - start
    return seconds, [output.stages[-1].logits.float(), output.stages[-1].boxes.float()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=user_path, required=True)
    parser.add_argument("--json", type=user_path, required=True)
    parser.add_argument("--images", type=user_path, required=True)
    parser.add_argument("--max-images", type=int_at_least(1), default=20)
    parser.add_argument(
        "--test-size",
        type=int_at_least(1),
        nargs=2,
        metavar=("SHORT", "LONG_MAX"),
        help="test resize instead of the model's (e.g. a model trained small, run large)",
    )
    parser.add_argument("--threads", type=int_at_least(1), default=2)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    retain_freed_memory()
    loaded = load_model_file(args.model)
    if args.test_size is not None:
        loaded.config.input.test_min_size, loaded.config.input.test_max_size = args.test_size
    dataset = evaluation_dataset(args.json, args.images, loaded.config)
    model = loaded.model
    reads = empty_feature_reads(model.head.strides, model.num_stages)
    dense_s, on_demand_s, max_logit, max_box = [], [], 0.0, 0.0
    sizes = set()
    loader = build_test_loader(dataset, batch_size=1, num_workers=0)
    with evaluating(model, args.precision):
        for index, batch in enumerate(loader):
            if index >= args.max_images:
                break
            image = batch.images[0]
            if tuple(image.shape[1:]) not in sizes:
                # Warm-up at every new input size, both ways: its first pass pays for
                # allocations and kernel selection, which would fall on the dense pass (its
                # full-size P2/P3), not on the on-demand tiles, whose shapes repeat.
                timed(model, image, 0)
                timed(model, image, ON_DEMAND_LEVELS)
                sizes.add(tuple(image.shape[1:]))
            seconds, dense = timed(model, image, 0)
            dense_s.append(seconds)
            seconds, lazy = timed(model, image, ON_DEMAND_LEVELS)
            on_demand_s.append(seconds)
            max_logit = max(max_logit, float((dense[0] - lazy[0]).abs().max()))
            max_box = max(max_box, float((dense[1] - lazy[1]).abs().max()))
            # The 16x16 tiles read are the tiles the on-demand levels compute.
            count_image_reads(model, image, reads)
    dense_median, lazy_median = statistics.median(dense_s), statistics.median(on_demand_s)
    tiles = ", ".join(
        f"{level.name} {level.tile_fraction(DEFAULT_TILE):.0%}"
        for level in reads.levels[:ON_DEMAND_LEVELS]
    )
    shapes = ", ".join(f"{h}x{w}" for h, w in sorted(sizes)[:4]) + (
        " ..." if len(sizes) > 4 else ""
    )
    text = "\n".join(
        [
            f"### On-demand FPN levels, {args.model.name}, {machine_kind()}, "
            f"{time.strftime('%Y-%m-%d')}",
            "",
            f"Command: `python benchmarks/bench_on_demand.py --model {args.model} --json "
            f"{args.json} --images {args.images} --max-images {args.max_images} --threads "
            f"{args.threads} --precision {args.precision}"
            + (f" --test-size {args.test_size[0]} {args.test_size[1]}" if args.test_size else "")
            + f"`; {len(dense_s)} images ({shapes}), "
            "dense and on-demand alternating per image.",
            "",
            "| pyramid | model s per image (median) | 16x16 tiles computed |",
            "|---|---|---|",
            f"| dense | {dense_median:.3f} | all |",
            f"| on-demand P2, P3 | {lazy_median:.3f} ({dense_median / lazy_median:.2f}x) "
            f"| {tiles} |",
            "",
            f"Largest difference of the last stage: logits {max_logit:.2e}, boxes {max_box:.2e} "
            "px.",
        ]
    )
    print(text)
    if args.write:
        with (REPO / "BENCHMARKS.md").open("a") as handle:
            handle.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
