"""Time Sparse R-CNN on this machine: inference at 800x1216 and a training step at batch 2.

Prints, and appends to BENCHMARKS.md with --write, the median seconds of:

- inference, one 800x1216 image (R50-FPN, 6 stages x 100 proposals, eval mode, no_grad):
  backbone+FPN, the flattening of P2-P5, RoIAlign (its calls in all stages of one head pass),
  the head with its RoIAlign, total;
- one training step, batch 2 at 512x640 (forward, set loss, backward, AdamW step).

Usage: python benchmarks/bench_model.py [--preset r50_100pro_3x] [--threads 2] [--repeats 5]
       [--dtype fp32|bf16] [--write]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from sparsercnn import build_model, get_preset
from sparsercnn.benchmarking import machine_kind
from sparsercnn.cli.common import int_at_least
from sparsercnn.loss import build_criterion
from sparsercnn.runtime import retain_freed_memory
from sparsercnn.structures import Target

# The module, not the function of the same name that sparsercnn.ops exports.
mra = importlib.import_module("sparsercnn.ops.multilevel_roi_align")


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@contextlib.contextmanager
def timed_roi_align(totals: list[float]) -> Iterator[None]:
    """Accumulate the time spent in multilevel_roi_align (called by the head) into totals[0]."""
    original = mra.multilevel_roi_align
    import sparsercnn.model.dynamic_head as head_module

    def wrapper(*args: object, **kwargs: object) -> torch.Tensor:
        start = time.perf_counter()
        out = original(*args, **kwargs)  # type: ignore[arg-type]
        totals[0] += time.perf_counter() - start
        return out

    head_module.multilevel_roi_align = wrapper  # type: ignore[assignment]
    try:
        yield
    finally:
        head_module.multilevel_roi_align = original


def autocast(dtype: str) -> contextlib.AbstractContextManager[object]:
    if dtype == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def bench_inference(preset: str, repeats: int, dtype: str) -> dict[str, float]:
    model = build_model(preset).eval()
    image = [torch.rand(3, 800, 1216) * 255]
    with torch.no_grad(), autocast(dtype):
        batch = model.preprocess(image)
        backbone = median_time(lambda: model.extract_features(batch), repeats)
        features = model.extract_features(batch)
        boxes, feats = model.proposals(batch.image_sizes)
        flatten = median_time(lambda: mra.flatten_levels(features, model.head.strides), repeats)
        # The RoIAlign time of each head pass (all its stages), the warm-up pass's left out.
        roi_seconds: list[float] = []

        def head_pass() -> None:
            totals = [0.0]
            with timed_roi_align(totals):
                model.head(features, boxes, feats, batch.image_sizes)
            roi_seconds.append(totals[0])

        head = median_time(head_pass, repeats)
        total = median_time(lambda: model(image), repeats)
    stages = model.num_stages
    return {
        "backbone+FPN": backbone,
        "flatten levels": flatten,
        f"RoIAlign ({stages} stages)": statistics.median(roi_seconds[1:]),
        f"head ({stages} stages, incl. RoIAlign)": head,
        "total (incl. normalise+pad)": total,
    }


def bench_train_step(preset: str, repeats: int, dtype: str) -> float:
    cfg = get_preset(preset)
    model = build_model(cfg).train()
    criterion = build_criterion(cfg)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    images = [torch.rand(3, 512, 640) * 255 for _ in range(2)]
    generator = torch.Generator().manual_seed(0)
    targets = []
    for _ in images:
        xy = torch.rand(8, 2, generator=generator) * torch.tensor([500.0, 400.0])
        wh = 20 + torch.rand(8, 2, generator=generator) * 100
        boxes = torch.cat([xy, xy + wh], dim=1)
        targets.append(Target(boxes, torch.randint(0, 80, (8,), generator=generator)))

    def step() -> None:
        with autocast(dtype):
            output = model(images)
        loss = criterion(output, targets).total
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return median_time(step, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="r50_100pro_3x")
    parser.add_argument("--threads", type=int_at_least(1), default=2)
    parser.add_argument("--repeats", type=int_at_least(1), default=5)
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--write", action="store_true", help="append the rows to BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    retain_freed_memory()  # as the CLI does
    inference = bench_inference(args.preset, args.repeats, args.dtype)
    train = bench_train_step(args.preset, args.repeats, args.dtype)
    setting = (
        f"{args.preset}, {args.dtype}, {args.threads} threads, torch {torch.__version__}, "
        f"{machine_kind()}"
    )
    lines = [f"### Model timing ({setting})", "", "| what | median s |", "|---|---|"]
    lines += [f"| inference 800x1216: {name} | {sec:.3f} |" for name, sec in inference.items()]
    lines.append(f"| training step, batch 2 at 512x640 | {train:.3f} |")
    lines.append("")
    lines.append(
        f"Command: `python benchmarks/bench_model.py --preset {args.preset} "
        f"--threads {args.threads} --repeats {args.repeats} --dtype {args.dtype}`"
    )
    text = "\n".join(lines)
    print(text)
    if args.write:
        path = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
        with path.open("a") as handle:
            handle.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
