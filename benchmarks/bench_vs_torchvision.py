"""Sparse R-CNN against torchvision's Faster R-CNN R50-FPN on one GPU (issue 5's comparison).

Times, in one process, on one image (800x1333 by default; random weights, eval mode, no_grad,
a device synchronisation around every timed call):

- sparsercnn's ``r50_100pro_3x`` through :func:`sparsercnn.benchmarking.run_benchmark` for each
  variant: ``eager``, ``graphs`` (the eager kernels replayed from CUDA graphs, no compiler),
  ``compile`` and ``cudagraphs`` (``torch.compile`` in ``reduce-overhead`` mode), each in fp32
  and bf16 autocast. "model" is the network, "end to end" adds normalisation, padding and
  top-k, and backbone+FPN is timed alone;
- torchvision's ``fasterrcnn_resnet50_fpn`` (``weights=None``) on the same image, already on the
  device, in fp32 and bf16 autocast: its whole call (normalisation, resize, RPN, RoI heads, NMS,
  rescaling), and its backbone+FPN alone. With random weights few boxes pass its 0.05 score
  threshold, so its post-processing is at its cheapest.

With ``train:DTYPE`` and ``torchvision-train:DTYPE`` variants it also times one training step
(forward, loss, backward, optimiser step) at ``--train-batch`` images of the same size: ours
through the trainer's own step (:func:`sparsercnn.engine.step_timing.time_train_steps`, AdamW,
20 random boxes per image), Faster R-CNN's with the same boxes and SGD; "end to end" is then
the step and images/s counts the batch.

Prints a markdown table and the issue's two GPU ratios: each sparsercnn inference variant's
end-to-end images/s over Faster R-CNN's (eager, same dtype; target >= 1.3 in fp32) and the
fastest variant's model time over its backbone+FPN (target <= 1.15), plus the training ratio.
A variant that fails is reported with its error and the others still run.

Usage: python benchmarks/bench_vs_torchvision.py [--device cuda] [--image-size 800 1333]
       [--warmup 10] [--iters 50] [--variants eager:fp32,torchvision:fp32,train:bf16,...]
       [--train-batch 4] [--json FILE] [--write]

Where the package is not installed, prefix ``PYTHONPATH=src``. Each compiled variant compiles the
model and its backbone+FPN first (a minute or more each on a GPU machine): on a short device lease
run the eager and torchvision variants first and the compiled ones in a second call.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from sparsercnn.atomic_file import atomic_write_text
from sparsercnn.benchmarking import BenchmarkSettings, PartTiming, hardware_info, run_benchmark
from sparsercnn.cli.common import check_output_path, int_at_least, user_path
from sparsercnn.engine.step_timing import synthetic_batch, time_train_steps
from sparsercnn.model.inference import synchronize
from sparsercnn.presets import get_preset
from sparsercnn.structures import Batch

# Variant name -> (benchmark backend, torch.compile mode); "cudagraphs" replays CUDA graphs.
OUR_BACKENDS: dict[str, tuple[str, str | None]] = {
    "eager": ("eager", None),
    "compile": ("compile", None),
    "cudagraphs": ("compile", "reduce-overhead"),
    "graphs": ("cuda-graphs", None),
}
DEFAULT_VARIANTS = [
    f"{backend}:{dtype}"
    for backend in ("torchvision", "eager", "graphs", "compile", "cudagraphs")
    for dtype in ("fp32", "bf16")
]
TRAIN_BOXES = 20  # random boxes per training image
TORCHVISION = "torchvision fasterrcnn_resnet50_fpn"


@dataclass
class Row:
    """One timed variant; times are p50 milliseconds per call (p95 for the model too): per
    image for inference, per step of ``batch_size`` images for training."""

    implementation: str
    backend: str
    dtype: str
    model_ms: float | None = None
    model_p95_ms: float | None = None
    end_to_end_ms: float | None = None
    backbone_fpn_ms: float | None = None
    setup_s: float | None = None
    error: str | None = None
    batch_size: int = 1

    @property
    def images_per_s(self) -> float | None:
        return self.batch_size * 1e3 / self.end_to_end_ms if self.end_to_end_ms else None

    @property
    def head_ratio(self) -> float | None:
        if self.model_ms is None or not self.backbone_fpn_ms:
            return None
        return self.model_ms / self.backbone_fpn_ms

    def markdown(self) -> str:
        def cell(value: float | None, digits: int = 2) -> str:
            return "-" if value is None else f"{value:.{digits}f}"

        if self.error is not None:
            return f"| {self.implementation} | {self.backend} | {self.dtype} | failed: " + (
                self.error.replace("|", "/")[:160] + " | | | | | |"
            )
        return (
            f"| {self.implementation} | {self.backend} | {self.dtype} | "
            f"{cell(self.model_ms)} / {cell(self.model_p95_ms)} | {cell(self.end_to_end_ms)} | "
            f"{cell(self.backbone_fpn_ms)} | {cell(self.head_ratio)} | "
            f"{cell(self.images_per_s, 1)} | {cell(self.setup_s, 1)} |"
        )


TABLE_HEADER = (
    "| implementation | backend | dtype | model ms (p50 / p95) | end to end ms | "
    "backbone+FPN ms | model / backbone+FPN | images/s | setup s |\n|" + "---|" * 9
)


def timed_row(
    implementation: str,
    backend: str,
    dtype: str,
    seconds: list[float],
    setup_s: float,
    *,
    backbone_seconds: list[float] | None = None,
    batch_size: int = 1,
) -> Row:
    """A row of calls timed whole (end to end = the call), ``batch_size`` images each."""
    timing = PartTiming.from_seconds(seconds, batch_size=1)
    backbone = PartTiming.from_seconds(backbone_seconds, 1) if backbone_seconds else None
    return Row(
        implementation=implementation,
        backend=backend,
        dtype=dtype,
        model_ms=timing.p50_ms,
        model_p95_ms=timing.p95_ms,
        end_to_end_ms=timing.p50_ms,
        backbone_fpn_ms=backbone.p50_ms if backbone else None,
        setup_s=setup_s,
        batch_size=batch_size,
    )


def time_calls(
    fn: Callable[[], object], warmup: int, iters: int, sync: Callable[[], None]
) -> list[float]:
    """Seconds of each of ``iters`` calls after ``warmup`` untimed ones, synchronised."""
    for _ in range(warmup):
        fn()
    sync()
    seconds = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        sync()
        seconds.append(time.perf_counter() - start)
    return seconds


def ours(
    preset: str, backend: str, dtype: str, args: argparse.Namespace, device: torch.device
) -> Row:
    mode_backend, compile_mode = OUR_BACKENDS[backend]
    settings = BenchmarkSettings(
        preset=preset,
        device=str(device),
        backend=mode_backend,  # type: ignore[arg-type]
        image_size=(args.image_size[0], args.image_size[1]),
        dtype=dtype,  # type: ignore[arg-type]
        compile_mode=compile_mode,  # type: ignore[arg-type]
        warmup=args.warmup,
        iters=args.iters,
    )
    result = run_benchmark(settings)
    t = result.timings
    return Row(
        implementation=f"sparsercnn {preset}",
        backend=backend,
        dtype=dtype,
        model_ms=t["model"].p50_ms,
        model_p95_ms=t["model"].p95_ms,
        end_to_end_ms=t["total"].p50_ms,
        backbone_fpn_ms=t["backbone_fpn"].p50_ms,
        setup_s=result.setup_seconds,
    )


def torchvision_faster_rcnn(dtype: str, args: argparse.Namespace, device: torch.device) -> Row:
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).eval().to(device)
    height, width = args.image_size
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(3, height, width, generator=generator).to(device)
    sync = functools.partial(synchronize, device)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if dtype == "bf16"
        else contextlib.nullcontext()
    )
    with torch.no_grad(), autocast:
        start = time.perf_counter()
        model([image])
        sync()
        setup = time.perf_counter() - start
        whole = time_calls(lambda: model([image]), args.warmup, args.iters, sync)
        padded = model.transform([image])[0].tensors
        backbone = time_calls(lambda: model.backbone(padded), args.warmup, args.iters, sync)
    return timed_row(TORCHVISION, "eager", dtype, whole, setup, backbone_seconds=backbone)


def training_batch(args: argparse.Namespace) -> Batch:
    """``--train-batch`` random images of ``--image-size`` with the same random boxes."""
    return synthetic_batch(
        args.train_batch, (args.image_size[0], args.image_size[1]), 80, TRAIN_BOXES
    )


def ours_training(preset: str, dtype: str, args: argparse.Namespace, device: torch.device) -> Row:
    cfg = get_preset(preset)
    cfg.train.amp = dtype == "bf16"
    start = time.perf_counter()
    seconds = time_train_steps(cfg, training_batch(args), device, args.warmup + args.iters)
    timed = seconds[args.warmup :]
    setup = time.perf_counter() - start - sum(timed)
    name = f"sparsercnn {preset}"
    return timed_row(name, "train", dtype, timed, setup, batch_size=args.train_batch)


def torchvision_training(dtype: str, args: argparse.Namespace, device: torch.device) -> Row:
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).train().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    batch = training_batch(args)
    images = [image.to(device).float() / 255 for image in batch.images]
    targets = [
        {"boxes": t.boxes.to(device), "labels": t.labels.to(device) + 1} for t in batch.targets
    ]
    sync = functools.partial(synchronize, device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            losses = model(images, targets)
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()

    start = time.perf_counter()
    seconds = time_calls(step, args.warmup, args.iters, sync)
    setup = time.perf_counter() - start - sum(seconds)
    return timed_row(TORCHVISION, "train", dtype, seconds, setup, batch_size=args.train_batch)


VARIANTS: dict[str, Callable[[str, argparse.Namespace, torch.device], Row]] = {
    "torchvision": torchvision_faster_rcnn,
    "torchvision-train": torchvision_training,
    "train": lambda dtype, args, device: ours_training(args.preset, dtype, args, device),
    **{
        backend: (
            lambda dtype, args, device, backend=backend: ours(
                args.preset, backend, dtype, args, device
            )
        )
        for backend in OUR_BACKENDS
    },
}


def run_variant(variant: str, args: argparse.Namespace, device: torch.device) -> Row:
    backend, _, dtype = variant.partition(":")
    if dtype not in ("fp32", "bf16") or backend not in VARIANTS:
        raise SystemExit(
            f"unknown variant {variant!r}: use BACKEND:DTYPE with BACKEND in "
            f"{', '.join(VARIANTS)} and DTYPE fp32 or bf16"
        )
    try:
        return VARIANTS[backend](dtype, args, device)
    except Exception as error:  # report and go on: one broken variant must not cost the rest
        traceback.print_exc()
        theirs = backend.startswith("torchvision")
        name = TORCHVISION if theirs else f"sparsercnn {args.preset}"
        shown = "train" if backend.endswith("train") else ("eager" if theirs else backend)
        return Row(name, shown, dtype, error=f"{type(error).__name__}: {error}")


def summary(rows: list[Row]) -> list[str]:
    """Issue 5's GPU ratios from the rows that ran."""
    lines = []
    by_key = {
        (r.backend if "sparsercnn" in r.implementation else f"tv-{r.backend}", r.dtype): r
        for r in rows
    }
    for dtype in ("fp32", "bf16"):
        tv = by_key.get(("tv-eager", dtype))
        target = " (target >= 1.3)" if dtype == "fp32" else ""
        inference = [
            r
            for r in rows
            if "sparsercnn" in r.implementation and r.backend != "train" and r.dtype == dtype
        ]
        for ours_row in inference:
            if tv and tv.images_per_s and ours_row.images_per_s:
                ratio = ours_row.images_per_s / tv.images_per_s
                lines.append(
                    f"{dtype} {ours_row.backend}, sparsercnn / Faster R-CNN eager images/s: "
                    f"{ratio:.2f}x{target}"
                )
        tv_train, ours_train = by_key.get(("tv-train", dtype)), by_key.get(("train", dtype))
        if tv_train and ours_train and tv_train.images_per_s and ours_train.images_per_s:
            ratio = ours_train.images_per_s / tv_train.images_per_s
            lines.append(f"{dtype} training, sparsercnn / Faster R-CNN images/s: {ratio:.2f}x")
    ours_rows = [r for r in rows if "sparsercnn" in r.implementation and r.head_ratio]
    if ours_rows:
        fastest = min(ours_rows, key=lambda r: r.model_ms or float("inf"))
        lines.append(
            f"fastest sparsercnn variant {fastest.backend}:{fastest.dtype}: model "
            f"{fastest.model_ms:.2f} ms = {fastest.head_ratio:.2f}x its backbone+FPN "
            "(target <= 1.15)"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--preset", default="r50_100pro_3x")
    parser.add_argument(
        "--image-size", type=int_at_least(1), nargs=2, default=[800, 1333], metavar=("H", "W")
    )
    parser.add_argument("--warmup", type=int_at_least(0), default=10)
    parser.add_argument("--iters", type=int_at_least(1), default=50)
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    parser.add_argument(
        "--train-batch",
        type=int_at_least(1),
        default=4,
        help="images per step of the train variants",
    )
    parser.add_argument("--json", type=user_path, help="write the rows and the environment here")
    parser.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    args = parser.parse_args()
    if args.json:  # before the measurements, which a path that cannot be written would lose
        try:
            check_output_path(args.json, "--json")
        except OSError as error:
            raise SystemExit(str(error)) from None
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available on this machine")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rows = []
    for variant in args.variants.split(","):
        rows.append(run_variant(variant.strip(), args, device))
        print(rows[-1].markdown(), flush=True)
    versions = {"torch": torch.__version__}
    with contextlib.suppress(Exception):
        import torchvision

        versions["torchvision"] = torchvision.__version__
    hardware = hardware_info(device)
    title = (
        f"### {hardware['gpu'] or hardware['machine']}: sparsercnn {args.preset} vs torchvision "
        f"Faster R-CNN R50-FPN ({datetime.date.today()})"
    )
    lines = [
        title,
        "",
        f"One {args.image_size[0]}x{args.image_size[1]} image, random weights, {args.warmup} "
        f"warm-up + {args.iters} timed runs, " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "",
        TABLE_HEADER,
        *(row.markdown() for row in rows),
        "",
        *summary(rows),
        "",
        f"Command: `python benchmarks/bench_vs_torchvision.py --device {args.device} --preset "
        f"{args.preset} --image-size {args.image_size[0]} {args.image_size[1]} --warmup "
        f"{args.warmup} --iters {args.iters} --train-batch {args.train_batch} --variants "
        f"{args.variants}`",
    ]
    text = "\n".join(lines)
    print("\n" + text)
    if args.json:
        record: dict[str, Any] = {
            "rows": [asdict(r) for r in rows],
            "hardware": hardware,
            "versions": versions,
        }
        atomic_write_text(args.json, json.dumps(record, indent=2) + "\n")
    if args.write:
        path = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
        with path.open("a") as handle:
            handle.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
