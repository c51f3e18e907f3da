"""What batch-invariant inference costs: size-grouped batches against the official padded ones.

A folder of images of mixed sizes (the test resize of a few common photo shapes) is run through
:func:`~sparsercnn.model.inference.run_model` in batches of at most ``--batch-size`` images,
once size-grouped (images sorted by padded size, each batch of one size: what ``eval`` and
``predict`` do by default) and once padded (``--batch-size`` consecutive images padded to the
largest, as the official code does). Each setting runs once untimed (its batch shapes' first
pass pays for allocations and kernel selection), then the two alternate ``--repeats`` times; the
script prints the median seconds per image of each, and how far each setting's last-stage
logits are from running every image alone (the batch dependence the default removes).

Usage: python benchmarks/bench_batching.py [--preset r50_100pro_3x] [--images 16]
       [--batch-size 4] [--repeats 3] [--threads 2] [--write]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

import torch

from sparsercnn import build_model, get_preset
from sparsercnn.benchmarking import machine_kind
from sparsercnn.cli.common import int_at_least
from sparsercnn.data.transforms import resized_shape
from sparsercnn.model.inference import evaluating, group_by_padded_size, run_model
from sparsercnn.runtime import retain_freed_memory

# (h, w) of common photo shapes: landscape and portrait 4:3 and 3:2, square, panorama.
ORIGINAL_SHAPES = [(480, 640), (640, 480), (427, 640), (640, 427), (500, 500), (360, 640)]


def make_images(preset: str, count: int, seed: int = 0) -> list[torch.Tensor]:
    """``count`` random RGB 0-255 images at the preset's test resize of mixed photo shapes."""
    cfg = get_preset(preset)
    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    images = []
    for _ in range(count):
        height, width = rng.choice(ORIGINAL_SHAPES)
        size = resized_shape(height, width, cfg.input.test_min_size, cfg.input.test_max_size)
        images.append(torch.randint(0, 256, (3, *size), generator=generator).float())
    return images


def run_all(
    model: torch.nn.Module, images: list[torch.Tensor], batch_size: int, invariant: bool
) -> tuple[float, torch.Tensor]:
    """Seconds for all images, and the ``(num_images, N, C)`` last-stage logits in input order."""
    groups = [list(range(len(images)))]
    if invariant:
        sizes = [(int(image.shape[1]), int(image.shape[2])) for image in images]
        groups = group_by_padded_size(sizes, model.size_divisibility)  # type: ignore[arg-type]
    batches = [g[i : i + batch_size] for g in groups for i in range(0, len(g), batch_size)]
    logits: dict[int, torch.Tensor] = {}
    start = time.perf_counter()
    for batch in batches:
        output = run_model(model, [images[i] for i in batch], batch_invariant=invariant)  # type: ignore[arg-type]
        logits.update(zip(batch, output.last.logits, strict=True))
    seconds = time.perf_counter() - start
    return seconds, torch.stack([logits[i] for i in range(len(images))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="r50_100pro_3x")
    parser.add_argument("--images", type=int_at_least(1), default=16)
    parser.add_argument("--batch-size", type=int_at_least(1), default=4)
    parser.add_argument("--repeats", type=int_at_least(1), default=3)
    parser.add_argument("--threads", type=int_at_least(1), default=2)
    parser.add_argument("--write", action="store_true", help="append the rows to BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    retain_freed_memory()
    torch.manual_seed(0)
    model = build_model(args.preset)
    images = make_images(args.preset, args.images)
    seconds: dict[bool, list[float]] = {True: [], False: []}
    logits: dict[bool, torch.Tensor] = {}
    with evaluating(model):
        alone = torch.cat([run_model(model, [image]).last.logits for image in images])
        for invariant in (True, False):  # warm-up: every batch shape of both settings
            run_all(model, images, args.batch_size, invariant)
        for _ in range(args.repeats):
            for invariant in (True, False):
                elapsed, logits[invariant] = run_all(model, images, args.batch_size, invariant)
                seconds[invariant].append(elapsed / len(images))
    rows = []
    for invariant, name in ((True, "size-grouped (default)"), (False, "padded (official)")):
        deviation = float((logits[invariant] - alone).abs().max())
        rows.append(
            f"| {args.preset} | {args.images} mixed | {args.batch_size} | {name} | "
            f"{statistics.median(seconds[invariant]):.3f} | {deviation:.2e} |"
        )
    header = (
        f"Batching cost on {machine_kind()}, {args.threads} threads, "
        f"median of {args.repeats} alternating runs "
        f"(`python benchmarks/bench_batching.py --preset {args.preset} --images {args.images} "
        f"--batch-size {args.batch_size} --repeats {args.repeats}`):\n\n"
        "| preset | images | batch | batching | s/image | max logit change vs alone |\n"
        "|---|---|---|---|---|---|"
    )
    text = header + "\n" + "\n".join(rows)
    print(text)
    if args.write:
        path = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
