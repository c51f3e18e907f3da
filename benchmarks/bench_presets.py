"""The presets side by side on this machine: parameters, training and inference images/s.

For each preset, at the input its config gives a 480x640 (COCO-like) image (the largest
training size for training, the test size for inference): training images/s from real optimiser
steps (:func:`~sparsercnn.engine.step_timing.time_train_steps`: forward, set loss, backward,
clipping, AdamW, at the preset's batch unless ``--train-batch``), inference images/s from
``sparsercnn benchmark``'s timing (:func:`~sparsercnn.benchmarking.run_benchmark`: normalise,
pad, model, post-processing; eager, at the preset's test batch), in fp32 and, where the CPU
runs it natively, bf16 autocast. Random weights: speed does not depend on them. The AP of each
preset under one budget on common data comes from ``bench_recipes.py``.

Usage: python benchmarks/bench_presets.py [--presets small medium] [--dtypes fp32 bf16]
       [--train-batch N] [--steps 3] [--iters 5] [--write]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from sparsercnn.benchmarking import BenchmarkSettings, machine_kind, run_benchmark
from sparsercnn.cli.common import int_at_least
from sparsercnn.config import Precision
from sparsercnn.data.transforms import resized_shape
from sparsercnn.engine.step_timing import synthetic_batch, time_train_steps
from sparsercnn.model import build_model
from sparsercnn.presets import get_preset
from sparsercnn.runtime import fast_bf16_supported

REPO = Path(__file__).resolve().parents[1]
# The image every preset is sized for: its config's resize of a 480x640 (h, w) image.
REFERENCE_IMAGE = (480, 640)
# Boxes per synthetic training image (the demo data's median is about this).
BOXES_PER_IMAGE = 8


@dataclass
class PresetSpeed:
    preset: str
    model: str
    params_m: float
    dtype: str
    train_size: tuple[int, int]
    train_batch: int
    train_images_per_s: float
    test_size: tuple[int, int]
    test_batch: int
    infer_images_per_s: float

    def row(self) -> str:
        train = f"{self.train_size[0]}x{self.train_size[1]}, batch {self.train_batch}"
        test = f"{self.test_size[0]}x{self.test_size[1]}, batch {self.test_batch}"
        return (
            f"| {self.preset} | {self.model} | {self.params_m:.1f} | {self.dtype} | {train} | "
            f"{self.train_images_per_s:.2f} | {test} | {self.infer_images_per_s:.2f} |"
        )


def measure(
    preset: str, dtype: Precision, train_batch: int | None, steps: int, iters: int
) -> PresetSpeed:
    """Train and inference images/s of ``preset`` in ``dtype`` (``fp32`` or ``bf16``)."""
    cfg = get_preset(preset)
    cfg.train.amp = dtype == "bf16"
    cfg.train.batch_size = train_batch or cfg.train.batch_size
    train_size = resized_shape(
        *REFERENCE_IMAGE, max(cfg.input.train_min_sizes), cfg.input.train_max_size
    )
    test_size = resized_shape(*REFERENCE_IMAGE, cfg.input.test_min_size, cfg.input.test_max_size)
    device = torch.device("cpu")
    batch = synthetic_batch(
        cfg.train.batch_size, train_size, cfg.model.num_classes, BOXES_PER_IMAGE
    )
    # The first step pays for allocations and kernel selection; the median of the rest.
    step_seconds = statistics.median(time_train_steps(cfg, batch, device, steps + 1)[1:])
    inference = run_benchmark(
        BenchmarkSettings(
            preset=preset,
            batch_size=cfg.input.test_batch_size,
            image_size=test_size,
            dtype=dtype,
            warmup=2,
            iters=iters,
        )
    )
    model = build_model(cfg)
    width = cfg.model.backbone_width
    return PresetSpeed(
        preset=preset,
        model=f"R{cfg.model.backbone_depth}/{width}, head {cfg.model.hidden_dim}, "
        f"{cfg.model.num_proposals} proposals",
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
        dtype=dtype,
        train_size=train_size,
        train_batch=cfg.train.batch_size,
        train_images_per_s=cfg.train.batch_size / step_seconds,
        test_size=test_size,
        test_batch=cfg.input.test_batch_size,
        infer_images_per_s=inference.timings["total"].images_per_s,
    )


def table(rows: list[PresetSpeed], command: str) -> str:
    lines = [
        f"### Presets: speed on this machine ({machine_kind()}, {torch.get_num_threads()} threads)",
        "",
        f"`{command}`; random weights, images sized as each preset resizes a 480x640 image.",
        "",
        "| preset | model | parameters (M) | precision | training input | training images/s "
        "| inference input | inference images/s |",
        "|---" * 8 + "|",
        *[row.row() for row in rows],
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["small", "medium"])
    parser.add_argument("--dtypes", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument(
        "--train-batch",
        type=int_at_least(1),
        help="images per training step (default: the preset's)",
    )
    parser.add_argument("--steps", type=int_at_least(1), default=3, help="timed training steps")
    parser.add_argument("--iters", type=int_at_least(1), default=5, help="timed inference runs")
    parser.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    args = parser.parse_args()
    command = "python benchmarks/bench_presets.py " + " ".join(sys.argv[1:])
    native_bf16 = fast_bf16_supported(torch.device("cpu"))
    rows = []
    for preset in args.presets:
        for dtype in args.dtypes:
            if dtype == "bf16" and not native_bf16:
                print(f"{preset} bf16: skipped, this CPU has no native bf16", flush=True)
                continue
            rows.append(measure(preset, dtype, args.train_batch, args.steps, args.iters))
            print(rows[-1].row(), flush=True)
    text = table(rows, command)
    print(text)
    if args.write:
        with open(REPO / "BENCHMARKS.md", "a") as handle:
            handle.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
