"""Time the dynamic head's multi-level RoIAlign on CPU and print the figures.

Case: 2 images x 100 boxes x 256 channels over P2-P5 of an 800 x 1216 input (P2 = 200 x 304),
float32, 7 x 7 bins, sampling ratio 2, aligned (spec 4). The forward rows run without autograd
(as inference does), the others with it (as training does). Run from the repository root:
``python benchmarks/bench_roi_align.py [--threads 2] [--repeats 10] [--num-boxes 100]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

from sparsercnn.benchmarking import machine_kind
from sparsercnn.cli.common import int_at_least
from sparsercnn.ops.multilevel_roi_align import assign_levels, flatten_levels, multilevel_roi_align
from sparsercnn.ops.roi_sampling import roi_align

STRIDES = (4, 8, 16, 32)
NUM_IMAGES, CHANNELS, HEIGHT, WIDTH = 2, 256, 800, 1216


def median_ms(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def proposal_like_boxes(num_images: int, num_boxes: int) -> Tensor:
    """``(B, N, 4)`` xyxy boxes: centres uniform, sides log-uniform in [16, 800], clipped."""
    generator = torch.Generator().manual_seed(0)
    image_wh = torch.tensor([WIDTH, HEIGHT], dtype=torch.float32)
    centre = torch.rand(num_images, num_boxes, 2, generator=generator) * image_wh
    log_side = torch.empty(num_images, num_boxes, 2).uniform_(2.77, 6.68, generator=generator)
    boxes = torch.cat((centre - log_side.exp() / 2, centre + log_side.exp() / 2), dim=-1)
    return torch.minimum(boxes.clamp(min=0), image_wh.repeat(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int_at_least(1), default=2)
    parser.add_argument("--repeats", type=int_at_least(1), default=10)
    parser.add_argument("--num-boxes", type=int_at_least(1), default=100)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    features = [
        torch.randn(NUM_IMAGES, CHANNELS, HEIGHT // s, WIDTH // s, requires_grad=True)
        for s in STRIDES
    ]
    boxes = proposal_like_boxes(NUM_IMAGES, args.num_boxes)
    grad_out = torch.randn(NUM_IMAGES * args.num_boxes, 49, CHANNELS)
    levels = flatten_levels([f.detach() for f in features], STRIDES)
    table = levels.table.requires_grad_()  # a leaf: time the gradient w.r.t. the table alone
    batch = torch.arange(NUM_IMAGES).repeat_interleave(args.num_boxes)[:, None].float()
    rois = torch.cat((batch, boxes.flatten(0, 1)), dim=1)  # (B*N, 5)
    level = assign_levels(boxes).flatten()

    def align_backward() -> None:
        table.grad = None
        multilevel_roi_align(levels, boxes).backward(grad_out)

    def head_pooling(num_stages: int = 6) -> None:
        # One batch of the dynamic head: flatten once, pool in 6 stages, gradients to the FPN
        # outputs as the FPN's backward receives them (permuted views, no layout copy).
        shared = flatten_levels(features, STRIDES)
        pooled = [multilevel_roi_align(shared, boxes) for _ in range(num_stages)]
        torch.autograd.grad(pooled, features, [grad_out] * num_stages)

    def per_level_roi_align() -> Tensor:
        # The straightforward alternative: every box on every level, then pick (4x the work).
        pooled = torch.stack(
            [
                roi_align(f.detach(), rois, 7, 1.0 / s, 2, aligned=True)
                for f, s in zip(features, STRIDES, strict=True)
            ]
        )
        return pooled[level, torch.arange(len(level))]

    counts = torch.bincount(level, minlength=len(STRIDES)).tolist()
    print(
        f"{machine_kind()}, torch {torch.__version__}, {torch.get_num_threads()} threads, float32"
    )
    print(
        f"{NUM_IMAGES} images x {args.num_boxes} boxes x {CHANNELS} channels, P2-P5 of "
        f"{HEIGHT}x{WIDTH}, boxes per level {counts}; median of {args.repeats} runs, ms"
    )
    rows: list[tuple[str, Callable[[], object], bool]] = [
        ("multilevel_roi_align forward", lambda: multilevel_roi_align(levels, boxes), False),
        ("multilevel_roi_align forward + backward", align_backward, True),
        (
            "flatten_levels forward (once per batch)",
            lambda: flatten_levels(features, STRIDES),
            False,
        ),
        ("flatten + 6 stages, forward + backward", head_pooling, True),
        ("per-level roi_align x 4 + select, forward", per_level_roi_align, False),
    ]
    for name, fn, backward in rows:
        # The table and features require gradients: a forward row records no graph, so that it
        # compares with the per-level alternative's (detached) forward.
        with torch.set_grad_enabled(backward):
            milliseconds = median_ms(fn, warmup=3, repeats=args.repeats)
        print(f"  {name:<44s} {milliseconds:8.2f}")


if __name__ == "__main__":
    main()
