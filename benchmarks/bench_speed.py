"""Side by side with the official Sparse R-CNN: every speed target as a ratio measured in one run.

Development machines differ (AVX-512 with native bf16, or AVX2 only) and drift 10-20% between
runs, so speed is judged as the ratio to the official code timed on the same machine in the same
run. Each round times, every measurement in a fresh process, for inference and then for the
training step:

1. the official code (``../shared/peers/time_official.py`` in the peers' venv): inference
   (R50-FPN, 100 proposals, one random 800x1216 image, random weights) and its backbone+FPN
   alone, or the training step (batch 2 at 512x640, three boxes per image, AdamW, clipping).
   Twice: with glibc keeping freed memory as our processes do
   (:func:`~sparsercnn.runtime.retain_freed_memory`, given to its process by
   ``GLIBC_TUNABLES``), the comparison the targets are judged by, and as it ships (glibc's
   default, which maps and page-faults every large tensor afresh: 25-30% of the official
   inference on machine A), reported beside it;
2. then each of our variants on the same input (``sparsercnn.benchmarking``: normalise + pad,
   model, post-processing; or :func:`sparsercnn.engine.step_timing.time_train_steps`, the
   trainer's own step), each followed by the official code again;
3. at the end of the round, the dense floor (:func:`measure_floor`): our FLOPs and this CPU's
   peak rate, of which the table keeps the highest of the rounds.

So every measurement of ours lies between two of the official's, and its ratio is the mean of
those two official medians over ours: a machine whose speed drifts from minute to minute moves
both sides alike. The table gives the mean and range over the rounds, the target and whether it
is met (judged on the medians), and the same ratio of the fastest runs (the fastest official run
of the two): the host's slow stretches only ever slow a run down, so that column moves less on
a machine whose speed swings. Below the table, the measurements whose own runs were more than
:data:`~sparsercnn.benchmarking.STEADY_SPREAD` apart: the host's speed changed within them,
which bracketing cannot remove. ``--write`` appends the table to BENCHMARKS.md with the command
and the machine kind. Needs the peers' environment (``bash ../shared/peers/setup.sh``, ~4 min);
run it on an otherwise idle machine.

Usage: python benchmarks/bench_speed.py [--rounds 2] [--iters 5] [--threads 2]
       [--variants infer:eager:fp32,infer:eager:bf16,train:eager:fp32,...] [--write]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sparsercnn.cli.common import int_at_least, user_path

REPO = Path(__file__).resolve().parents[1]
PEERS_SCRIPTS = REPO.parent / "shared" / "peers"
PRESET = "r50_100pro_3x"
INFER_SIZE = (800, 1216)
TRAIN_SIZE = (512, 640)
TRAIN_BATCH = 2
# The official training step's ground truth (time_official.py): the same three boxes per image.
OFFICIAL_TRAIN_BOXES = [[10.0, 20, 100, 110], [60, 30, 150, 120], [5, 5, 40, 30]]
DEFAULT_VARIANTS = (
    "infer:eager:fp32",
    "infer:eager:winograd",
    "infer:onnx:fp32",
    "infer:eager:bf16",
    "infer:onnx-int8:int8",
    "infer:eager:int8",
    "train:eager:fp32",
    "train:eager:bf16",
)
# The precisions each kind of measurement runs in, by backend (onnx-int8: the int8 graph).
VARIANT_PRECISIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "infer": {
        "eager": ("fp32", "bf16", "winograd", "int8"),
        "compile": ("fp32", "bf16"),
        "onnx": ("fp32",),
        "onnx-int8": ("int8",),
    },
    "train": {"eager": ("fp32", "bf16")},
}
# Issue 14's targets: ratio to the official code, by (kind, precision).
TARGETS = {
    ("infer", "fp32"): 2.2,
    ("infer", "winograd"): 2.2,  # an opt-in approximate fp32 mode, judged by the fp32 target
    ("infer", "bf16"): 4.0,
    ("infer", "int8"): 6.0,
    ("train", "fp32"): 1.6,
    ("train", "bf16"): 2.8,
}
# The peak rate's probes: a square matrix product, and R50-FPN's largest convolution at
# INFER_SIZE (P2's 3x3 output convolution: channels, height, width).
PEAK_MATMUL = 4096
PEAK_CONV = (256, 200, 304)
# The official code's process allocator (see the module docstring): the same as ours, or glibc's
# default as the official code ships. Targets are judged against the first.
OFFICIAL_ALLOCATORS = ("same", "shipped")
OFFICIAL_KEYS = {
    "infer": f"official_r50_100pro_{INFER_SIZE[0]}x{INFER_SIZE[1]}",
    "backbone": f"official_backbone_fpn_{INFER_SIZE[0]}x{INFER_SIZE[1]}",
    "train": f"official_train_step_b{TRAIN_BATCH}_{TRAIN_SIZE[0]}x{TRAIN_SIZE[1]}",
}


@dataclass(frozen=True)
class Variant:
    """One of our measurements: ``kind`` infer or train, a benchmark backend, a precision."""

    kind: str
    backend: str
    precision: str

    @staticmethod
    def parse(text: str) -> Variant:
        parts = text.split(":")
        if len(parts) != 3 or parts[0] not in ("infer", "train"):
            raise SystemExit(
                f"--variants: {text!r} is not KIND:BACKEND:PRECISION (e.g. infer:eager:fp32, "
                "train:eager:bf16)"
            )
        variant = Variant(*parts)
        if variant.kind == "train" and variant.backend != "eager":
            raise SystemExit(f"--variants: {text!r}: training runs on the eager backend only")
        # Refused here rather than in a worker after the round's official run, and never run
        # as another precision than the table names (training trains in bf16 or fp32 only).
        precisions = VARIANT_PRECISIONS[variant.kind].get(variant.backend)
        if precisions is None:
            backends = ", ".join(VARIANT_PRECISIONS[variant.kind])
            raise SystemExit(f"--variants: {text!r}: the backend is one of {backends}")
        if variant.precision not in precisions:
            raise SystemExit(
                f"--variants: {text!r}: {variant.kind}:{variant.backend} runs in "
                f"{' or '.join(precisions)}"
            )
        return variant

    def __str__(self) -> str:
        return f"{self.kind}:{self.backend}:{self.precision}"


@dataclass
class Rounds:
    """Median and fastest seconds per round of one measurement (None where it failed, with the
    error), and its spread: the slowest of its runs over the fastest (None where unknown)."""

    seconds: list[float | None] = field(default_factory=list)
    fastest: list[float | None] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    spread: list[float | None] = field(default_factory=list)

    def add(
        self,
        seconds: float | None,
        fastest: float | None,
        error: str | None,
        spread: float | None = None,
    ) -> None:
        self.seconds.append(seconds)
        self.fastest.append(fastest)
        self.spread.append(spread)
        if error is not None:
            self.errors.append(error)


def measure_ours(variant: Variant, iters: int, threads: int) -> dict[str, float]:
    """Run in the worker process: median, fastest and slowest seconds of one variant (and the
    median of its backbone+FPN)."""
    import torch

    from sparsercnn.runtime import retain_freed_memory

    torch.set_num_threads(threads)
    retain_freed_memory()  # as the CLI and the Predictor do
    if variant.kind == "train":
        from sparsercnn.engine.step_timing import time_train_steps

        cfg, batch = _training_step_inputs(amp=variant.precision == "bf16")
        steps = time_train_steps(cfg, batch, torch.device("cpu"), iters + 1)[1:]
        return {
            "median_s": statistics.median(steps),
            "fastest_s": min(steps),
            "slowest_s": max(steps),
        }
    from sparsercnn.benchmarking import BenchmarkSettings, run_benchmark

    settings = BenchmarkSettings(
        preset=PRESET,
        backend=variant.backend,  # type: ignore[arg-type]
        image_size=INFER_SIZE,
        # onnx-int8's int8 is the backend's business (it takes fp32 inputs).
        dtype="fp32" if variant.backend == "onnx-int8" else variant.precision,  # type: ignore[arg-type]
        threads=threads,
        # One untimed run, the setup's (run_benchmark's first), as time_official.py gives the
        # official code and as the training step gets: neither side is warmed up more.
        warmup=0,
        iters=iters,
    )
    result = run_benchmark(settings)
    return {
        "median_s": result.timings["total"].p50_ms / 1e3,
        "fastest_s": result.timings["total"].min_ms / 1e3,
        "slowest_s": result.timings["total"].max_ms / 1e3,
        "backbone_fpn_s": result.timings["backbone_fpn"].p50_ms / 1e3,
    }


def _training_step_inputs(amp: bool) -> tuple[Any, Any]:
    """The timed training step's config and batch: the official script's boxes and size."""
    import torch

    from sparsercnn.engine.step_timing import synthetic_batch
    from sparsercnn.presets import get_preset

    cfg = get_preset(PRESET)
    cfg.train.batch_size = TRAIN_BATCH
    cfg.train.amp = amp
    batch = synthetic_batch(
        TRAIN_BATCH,
        TRAIN_SIZE,
        cfg.model.num_classes,
        num_boxes=0,
        boxes=torch.tensor(OFFICIAL_TRAIN_BOXES),
    )
    return cfg, batch


def measure_floor(threads: int) -> dict[str, float]:
    """Run in the worker process: the dense floor's two factors. The GFLOP of our inference and
    training step (torch's FLOP counter: convolutions and matrix products, forward and backward;
    gathers and element-wise work are not counted) and this CPU's peak GFLOP/s per precision,
    the faster of the :data:`PEAK_MATMUL` matrix product and the :data:`PEAK_CONV` convolution,
    bf16 only where it is native."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from sparsercnn.engine.step_timing import time_train_steps
    from sparsercnn.model import build_model
    from sparsercnn.model.int8_features import int8_available
    from sparsercnn.presets import get_preset
    from sparsercnn.runtime import fast_bf16_supported, retain_freed_memory

    torch.set_num_threads(threads)
    retain_freed_memory()
    cpu = torch.device("cpu")
    model = build_model(get_preset(PRESET)).eval()
    image = torch.randint(0, 256, (3, *INFER_SIZE), dtype=torch.uint8).float()
    # With autograd on: the counter's module hooks expect outputs that need gradients to have a
    # graph. Only the forward pass runs, so only its FLOPs are counted.
    with FlopCounterMode(display=False) as inference:
        model([image])
    cfg, batch = _training_step_inputs(amp=False)
    with FlopCounterMode(display=False) as training:
        time_train_steps(cfg, batch, cpu, 1)
    convolutions = sum(
        flops
        for op, flops in inference.get_flop_counts()["Global"].items()
        if "convolution" in str(op)
    )
    floor = {
        "infer_gflop": inference.get_total_flops() / 1e9,
        "infer_conv_gflop": convolutions / 1e9,
        "train_gflop": training.get_total_flops() / 1e9,
        "peak_fp32": _peak_gflops(torch.float32),
    }
    if fast_bf16_supported(cpu):
        floor["peak_bf16"] = _peak_gflops(torch.bfloat16)
    if importlib.util.find_spec("onnxruntime") is not None:
        floor["peak_int8"] = _peak_int8_gops(threads)
    if int8_available():
        floor["peak_int8_onednn"] = _peak_onednn_int8_gops()
    return floor


def _peak_gflops(dtype: Any) -> float:
    import torch
    from torch.nn import functional as F

    from sparsercnn.benchmarking import fastest_seconds

    n, (channels, height, width) = PEAK_MATMUL, PEAK_CONV
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    x = torch.randn(1, channels, height, width, dtype=dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(channels, channels, 3, 3, dtype=dtype)
    with torch.no_grad():
        matmul = 2 * n**3 / fastest_seconds(lambda: a @ b, repeats=3)
        conv_flops = 2 * 9 * channels**2 * height * width
        conv = conv_flops / fastest_seconds(lambda: F.conv2d(x, w, padding=1), repeats=3)
    return max(matmul, conv) / 1e9


def _peak_int8_gops(threads: int) -> float:
    """GOP/s of the :data:`PEAK_CONV` convolution as the int8 backend runs it: exported,
    quantized by the export's own static quantization (int8 weights, uint8 activations) and
    run by onnxruntime, the input's quantization and the output's dequantization included."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from sparsercnn.benchmarking import fastest_seconds
    from sparsercnn.export.onnx_export import DEFAULT_OPSET, onnx_program
    from sparsercnn.export.quantization import quantize_graph

    channels, height, width = PEAK_CONV
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
    x = torch.randn(1, channels, height, width)
    generator = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench-speed-int8-") as folder:
        fp32_file, int8_file = Path(folder) / "conv.onnx", Path(folder) / "conv_int8.onnx"
        onnx_program(conv, (x,), ["x"], ["y"], DEFAULT_OPSET).save(str(fp32_file))
        quantize_graph(
            fp32_file,
            int8_file,
            range(2),
            lambda _: {"x": generator.standard_normal(x.shape, dtype=np.float32)},
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(str(int8_file), options, providers=["CPUExecutionProvider"])
        feed = {"x": x.numpy()}
        seconds = fastest_seconds(lambda: session.run(None, feed), repeats=5)
    return 2 * 9 * channels**2 * height * width / seconds / 1e9


def _peak_onednn_int8_gops() -> float:
    """GOP/s of the :data:`PEAK_CONV` convolution as ``--precision int8`` runs it: oneDNN's
    int8 convolution on uint8 activations, with a uint8 output as between the backbone's
    convolutions."""
    import torch

    from sparsercnn.benchmarking import fastest_seconds
    from sparsercnn.model.int8_features import Int8Convolution

    channels, height, width = PEAK_CONV
    conv = Int8Convolution(
        torch.randn(channels, channels, 3, 3), torch.zeros(channels), (1, 1), (1, 1)
    )
    conv.prepare((1 / 64, 0), (1 / 16, 0))
    x = torch.randint(0, 256, (1, channels, height, width), dtype=torch.uint8)
    x = x.contiguous(memory_format=torch.channels_last)
    seconds = fastest_seconds(lambda: conv(x, relu=True), repeats=5)
    return 2 * 9 * channels**2 * height * width / seconds / 1e9


def run_json(command: list[str], env: dict[str, str] | None = None) -> dict[str, object]:
    """Run a measuring process; its last stdout line is JSON."""
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"exit {done.returncode}: {tail}")
    return json.loads(lines[-1])


def official(
    what: str, iters: int, threads: int, peers: Path, allocator: str = "same"
) -> dict[str, dict[str, float]]:
    """The official code's measurements ``what``: by time_official.py key, ``median_s``,
    ``min_s`` and ``max_s`` (the fastest and slowest runs). ``allocator``: one of
    :data:`OFFICIAL_ALLOCATORS`."""
    from sparsercnn.runtime import RETAINED_MEMORY_TUNABLES

    env = {**os.environ, "SPARSERCNN_OFFICIAL": str(peers / "SparseR-CNN")}
    env.pop("GLIBC_TUNABLES", None)
    if allocator == "same":
        env["GLIBC_TUNABLES"] = RETAINED_MEMORY_TUNABLES
    command = [str(peers / "venv" / "bin" / "python"), str(PEERS_SCRIPTS / "time_official.py")]
    command += ["--what", what, "--iters", str(iters), "--threads", str(threads)]
    return run_json(command, env)  # type: ignore[return-value]


def ours(variant: Variant | str, iters: int, threads: int) -> dict[str, float]:
    """Our measurement of ``variant`` (or ``"floor"``: :func:`measure_floor`) in a fresh
    process."""
    command = [sys.executable, __file__, "--worker", str(variant)]
    command += ["--iters", str(iters), "--threads", str(threads)]
    return run_json(command)  # type: ignore[return-value]


def attempt(measure: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], str | None]:
    """``measure()``, or an empty result and the error, printed, where it failed."""
    try:
        return measure(), None
    except (RuntimeError, OSError, json.JSONDecodeError) as error:
        print(f"  failed: {error}", flush=True)
        return {}, str(error)


def run_rounds(
    variants: list[Variant], rounds: int, iters: int, threads: int, peers: Path
) -> tuple[dict[str, Rounds], dict[str, Rounds], dict[str, float]]:
    """Official and ours interleaved: per round and kind, the official code is timed (with each
    of :data:`OFFICIAL_ALLOCATORS`) before the first of our variants and after each of them;
    each round ends with the dense floor (:func:`measure_floor`). Returns (official, ours,
    floor): the first two by variant and ``VARIANT:backbone``, an official entry being the
    bracket around that measurement of ours (:func:`bracket`), with the same allocator as ours
    and, under ``VARIANT:shipped``, as the official code ships; the floor as :func:`best_floor`
    makes it of the rounds' floors."""
    theirs = {str(v): Rounds() for v in variants}
    theirs.update({f"{v}:backbone": Rounds() for v in variants if v.kind == "infer"})
    mine = {key: Rounds() for key in theirs}
    theirs.update({f"{v}:shipped": Rounds() for v in variants})
    floors = []
    for round_index in range(rounds):
        for kind in ("infer", "train"):
            todo = [v for v in variants if v.kind == kind]
            if not todo:
                continue
            what = "official,backbone" if kind == "infer" else "train"
            timed_official = partial(timed, round_index + 1, what, iters, threads, peers)
            before = timed_official()
            for variant in todo:
                print(f"round {round_index + 1}: ours {variant}", flush=True)
                result, error = attempt(partial(ours, variant, iters, threads))
                after = timed_official()
                spread = _spread(result.get("fastest_s"), result.get("slowest_s"))
                mine[str(variant)].add(
                    result.get("median_s"), result.get("fastest_s"), error, spread
                )
                key = OFFICIAL_KEYS[kind]
                theirs[str(variant)].add(*bracket(key, before["same"], after["same"]))
                theirs[f"{variant}:shipped"].add(*bracket(key, before["shipped"], after["shipped"]))
                if kind == "infer":
                    mine[f"{variant}:backbone"].add(result.get("backbone_fpn_s"), None, error)
                    backbone = bracket(OFFICIAL_KEYS["backbone"], before["same"], after["same"])
                    theirs[f"{variant}:backbone"].add(*backbone)
                before = after
        print(f"round {round_index + 1}: the dense floor (our FLOPs, the CPU's peak)", flush=True)
        floors.append(attempt(partial(ours, "floor", iters, threads))[0])
    return theirs, mine, best_floor(floors)


def best_floor(floors: list[dict[str, float]]) -> dict[str, float]:
    """One dense floor from the rounds' measurements (``{}`` where one failed): their FLOP
    counts, the same in each, and per precision the highest peak rate, since a slow stretch of
    the host only ever lowers a probe. ``{}`` when none was measured."""
    measured = [floor for floor in floors if floor]
    best = dict(measured[0]) if measured else {}
    for floor in measured[1:]:
        for key, value in floor.items():
            if key.startswith("peak_"):
                best[key] = max(best.get(key, value), value)
    return best


def timed(
    round_number: int, what: str, iters: int, threads: int, peers: Path
) -> dict[str, tuple[dict[str, Any], str | None]]:
    """The official code's measurements ``what`` (:func:`official`), one run with each of
    :data:`OFFICIAL_ALLOCATORS`, announced: by allocator, the result and its error where it
    failed (:func:`attempt`)."""
    runs = {}
    for allocator in OFFICIAL_ALLOCATORS:
        print(f"round {round_number}: official {what} (allocator: {allocator})", flush=True)
        runs[allocator] = attempt(partial(official, what, iters, threads, peers, allocator))
    return runs


def bracket(
    key: str, *runs: tuple[dict[str, Any], str | None]
) -> tuple[float | None, float | None, str | None, float | None]:
    """One official measurement from the runs around one of ours (each a time_official.py
    result by key, and its error): the mean of their medians, the fastest of their runs and
    the larger of their spreads, from those that measured ``key``; with none, ``None`` and the
    first error."""
    timings = [result[key] for result, _ in runs if key in result]
    if not timings:
        errors = [error for _, error in runs if error is not None]
        return None, None, errors[0] if errors else f"{key} not measured", None
    median = statistics.fmean(timing["median_s"] for timing in timings)
    spreads = [_spread(timing.get("min_s"), timing.get("max_s")) for timing in timings]
    known = [spread for spread in spreads if spread is not None]
    return median, min(timing["min_s"] for timing in timings), None, max(known, default=None)


def _spread(fastest: float | None, slowest: float | None) -> float | None:
    """The slowest run over the fastest, None where either is unknown."""
    return None if fastest is None or slowest is None else slowest / fastest


def swing_note(variants: list[Variant], theirs: dict[str, Rounds], mine: dict[str, Rounds]) -> str:
    """The measurements whose own runs were more than :data:`STEADY_SPREAD` apart: the host's
    speed changed within them, which bracketing does not remove."""
    from sparsercnn.benchmarking import STEADY_SPREAD

    swung = []
    for variant in variants:
        for side, rounds in (("ours", mine[str(variant)]), ("official", theirs[str(variant)])):
            swung += [
                f"{variant} round {index} {side} {spread:.2f}x"
                for index, spread in enumerate(rounds.spread, start=1)
                if spread is not None and spread > STEADY_SPREAD
            ]
    if not swung:
        return f"Every measurement's runs were within {STEADY_SPREAD}x of each other."
    return (
        f"Runs more than {STEADY_SPREAD}x apart within one measurement (the slowest over the "
        f"fastest; official: the larger of the two around ours): {'; '.join(swung)}."
    )


def ratios(official_rounds: Rounds, our_rounds: Rounds, fastest: bool = False) -> list[float]:
    """Official over ours, round by round, where both were measured: of the medians, or of the
    fastest runs."""
    if fastest:
        pairs = zip(official_rounds.fastest, our_rounds.fastest, strict=False)
    else:
        pairs = zip(official_rounds.seconds, our_rounds.seconds, strict=False)
    return [o / s for o, s in pairs if o is not None and s is not None]


def ratio_cell(values: list[float]) -> str:
    """``mean (min-max)`` of round ratios, the mean in bold."""
    return f"**{statistics.fmean(values):.2f}x** ({min(values):.2f}-{max(values):.2f})"


def seconds_cell(rounds: Rounds) -> str:
    return " / ".join("failed" if s is None else f"{s:.3f}" for s in rounds.seconds)


def table(
    variants: list[Variant],
    theirs: dict[str, Rounds],
    mine: dict[str, Rounds],
    floor: dict[str, float] | None = None,
) -> str:
    """The markdown table: median seconds per round, their ratio (mean and range), target,
    met, the ratio of the fastest runs and the ratio at the dense floor (:func:`floor_cell`),
    all against the official code with our allocator; then the ratio to the official code as
    it ships, and its seconds."""
    lines = [
        "| measurement | official s (per round) | ours s (per round) | ratio (mean, range) "
        "| target | met | fastest runs' ratio | at peak rate (floor s) "
        "| ratio to the official as shipped (its s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for variant in variants:
        official_rounds = theirs[str(variant)]
        values = ratios(official_rounds, mine[str(variant)])
        target = TARGETS.get((variant.kind, variant.precision))
        if values:
            ratio = ratio_cell(values)
            met = "-" if target is None else ("yes" if statistics.fmean(values) >= target else "no")
        else:
            ratio, met = "not measured", "-"
        fastest = ratios(official_rounds, mine[str(variant)], fastest=True)
        shipped = theirs[f"{variant}:shipped"]
        shipped_values = ratios(shipped, mine[str(variant)])
        shipped_cell = (
            f"{ratio_cell(shipped_values)} ({seconds_cell(shipped)})" if shipped_values else "-"
        )
        what = "inference" if variant.kind == "infer" else "training step"
        lines.append(
            f"| {what} {variant.backend} {variant.precision} | {seconds_cell(official_rounds)} "
            f"| {seconds_cell(mine[str(variant)])} | {ratio} "
            f"| {'-' if target is None else f'>= {target}x'} | {met} "
            f"| {ratio_cell(fastest) if fastest else '-'} "
            f"| {floor_cell(variant, official_rounds, floor or {})} | {shipped_cell} |"
        )
        if variant.kind == "infer":
            backbone = ratios(theirs[f"{variant}:backbone"], mine[f"{variant}:backbone"])
            mean_text = f"{statistics.fmean(backbone):.2f}x" if backbone else "not measured"
            lines.append(
                f"| ... its backbone+FPN | {seconds_cell(theirs[f'{variant}:backbone'])} "
                f"| {seconds_cell(mine[f'{variant}:backbone'])} | {mean_text} | - | - | - | - | - |"
            )
    return "\n".join(lines)


def floor_cell(variant: Variant, official_rounds: Rounds, floor: dict[str, float]) -> str:
    """The best ratio a dense computation could reach: the official seconds over our FLOPs at
    the CPU's measured peak rate. int8 quantizes the convolutions only, so its floor prices
    them at the int8 peak of its backend and the rest (the head's products) at the peak of the
    precision they run in (eager: bf16 where native). ``-`` for Winograd, whose arithmetic
    differs, and where the floor was not measured."""
    official_s = [s for s in official_rounds.seconds if s is not None]
    eager_int8 = variant.precision == "int8" and variant.backend == "eager"
    peak = floor.get("peak_int8_onednn" if eager_int8 else f"peak_{variant.precision}")
    if peak is None or not official_s:
        return "-"
    if variant.precision == "int8":
        convolutions = floor["infer_conv_gflop"]
        rest_peak = floor.get("peak_bf16", floor["peak_fp32"]) if eager_int8 else floor["peak_fp32"]
        floor_s = convolutions / peak + (floor["infer_gflop"] - convolutions) / rest_peak
    else:
        floor_s = floor[f"{variant.kind}_gflop"] / peak
    return f"{statistics.fmean(official_s) / floor_s:.2f}x ({floor_s:.2f})"


def floor_note(floor: dict[str, float]) -> str:
    """What the last column rests on, in figures."""
    if not floor:
        return "The dense floor was not measured (its worker failed)."
    peaks = ", ".join(
        f"{key.removeprefix('peak_')} {value:.0f}"
        for key, value in floor.items()
        if key.startswith("peak_")
    )
    int8 = ""
    if "peak_int8" in floor:
        int8 = (
            "; int8: that convolution quantized and run by onnxruntime (onnx-int8) or by "
            "oneDNN with uint8 output (int8_onednn, eager int8), which prices the int8 rows' "
            f"{floor['infer_conv_gflop']:.1f} GFLOP of convolutions, their other products at "
            "the fp32 peak (eager int8: bf16 where native)"
        )
    return (
        f"At peak rate: the official seconds over our dense floor, our FLOPs (inference "
        f"{floor['infer_gflop']:.1f} GFLOP, training step {floor['train_gflop']:.1f} GFLOP: "
        f"convolutions and matrix products, torch's FLOP counter) at this CPU's peak rate "
        f"measured in the same run, the highest of its rounds (GFLOP/s: {peaks}; the faster "
        f"of a {PEAK_MATMUL}x{PEAK_MATMUL} matrix product and R50-FPN's largest "
        f"convolution{int8}): the most any implementation computing the same dense "
        "arithmetic could reach here."
    )


def evaluate_ap(command: list[str], metrics: Path) -> float:
    """COCO AP of one ``sparsercnn eval`` run (its ``--output`` metrics JSON)."""
    run_cli([*command, "--output", str(metrics)])
    return float(json.loads(metrics.read_text())["AP"])


def run_cli(command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sparsercnn", *command], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"sparsercnn {command[0]} failed ({done.returncode}): {tail}")


def points(ap: float, reference: float) -> str:
    """The AP difference in points with its sign, ``+0.00`` (not ``-0.00``) when it rounds away."""
    return f"{round(100 * (ap - reference), 2) + 0.0:+.2f}"


def accuracy_rows(model: Path, json_path: Path, images: Path, calibration: Path) -> list[str]:
    """AP of a trained model in fp32, bf16, Winograd and both int8 paths (exported with
    ``--int8``, calibrated on ``calibration``: an ONNX file run by onnxruntime, and a model file
    run with ``--precision int8``) on one dataset: table rows with the difference to fp32 and
    the target (int8 within 1.0 AP point)."""
    data = ["--json", str(json_path), "--images", str(images), "--workers", "0"]
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        fp32 = evaluate_ap(["eval", "--model", str(model), *data], scratch / "fp32.json")
        rows = [f"| {model} | fp32 | {fp32:.2%} | - | - |"]
        for precision in ("bf16", "winograd"):
            ap = evaluate_ap(
                ["eval", "--model", str(model), *data, "--precision", precision],
                scratch / f"{precision}.json",
            )
            rows.append(f"| {model} | {precision} | {ap:.2%} | {points(ap, fp32)} | - |")
        for name, suffix, run in (
            ("int8 (ONNX Runtime)", ".onnx", ["--onnx"]),
            ("int8 (PyTorch, oneDNN)", ".safetensors", ["--precision", "int8", "--model"]),
        ):
            int8_file = scratch / f"model_int8{suffix}"
            export = ["export", "--model", str(model), "--output", str(int8_file), "--int8"]
            run_cli([*export, "--calibration", str(calibration)])
            int8 = evaluate_ap(
                ["eval", *run, str(int8_file), *data], scratch / f"int8{suffix}.json"
            )
            met = "yes" if abs(int8 - fp32) <= 0.01 else "no"
            rows.append(
                f"| {model} | {name} | {int8:.2%} | {points(int8, fp32)} | within 1.0: {met} |"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int_at_least(1), default=2)
    parser.add_argument(
        "--iters", type=int_at_least(1), default=5, help="timed runs per measurement"
    )
    parser.add_argument("--threads", type=int_at_least(1), default=2)
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    # A string default: argparse passes it through ``type``, which expands ``~`` in $PEERS.
    parser.add_argument("--peers", type=user_path, default=os.environ.get("PEERS", "/tmp/peers"))
    parser.add_argument(
        "--check",
        nargs=4,
        action="append",
        default=[],
        metavar=("MODEL", "JSON", "IMAGES", "CALIBRATION"),
        help="also evaluate this trained model file in fp32, bf16, winograd and int8 (calibrated "
        "on the CALIBRATION folder) on the JSON/IMAGES dataset; repeatable",
    )
    parser.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "floor":
        print(json.dumps(measure_floor(args.threads)))
        return
    if args.worker:
        print(json.dumps(measure_ours(Variant.parse(args.worker), args.iters, args.threads)))
        return
    if not (args.peers / "venv" / "bin" / "python").is_file():
        raise SystemExit(
            f"no peers environment in {args.peers}: run bash {PEERS_SCRIPTS}/setup.sh first "
            "(or pass --peers DIR)"
        )
    from sparsercnn.benchmarking import machine_kind

    variants = [Variant.parse(text) for text in args.variants.split(",")]
    start = time.perf_counter()
    theirs, mine, floor = run_rounds(variants, args.rounds, args.iters, args.threads, args.peers)
    minutes = (time.perf_counter() - start) / 60
    command = (
        f"python benchmarks/bench_speed.py --rounds {args.rounds} --iters {args.iters} "
        f"--threads {args.threads} --variants {args.variants}"
    )
    text = "\n".join(
        [
            f"### Side by side with the official code, {machine_kind()}, "
            f"{time.strftime('%Y-%m-%d')}",
            "",
            f"Command: `{command}` ({minutes:.0f} min). R50-FPN, 100 proposals, random weights, "
            f"{args.threads} threads; inference one {INFER_SIZE[0]}x{INFER_SIZE[1]} image "
            f"(ours: normalise + pad + model + post-processing), training step batch "
            f"{TRAIN_BATCH} at {TRAIN_SIZE[0]}x{TRAIN_SIZE[1]}; medians (and the fastest) of "
            f"{args.iters} runs, each measurement in a fresh process; the official code timed "
            "just before and just after each of ours, each ratio against the mean of the two. "
            "The official code runs with glibc keeping freed memory, as our processes do "
            "(`GLIBC_TUNABLES`), except in the last column: there as it ships, glibc's "
            "default allocator, which page-faults every large tensor afresh.",
            "",
            table(variants, theirs, mine, floor),
            "",
            swing_note(variants, theirs, mine),
            "",
            floor_note(floor),
        ]
    )
    if args.check:
        rows = [row for check in args.check for row in accuracy_rows(*map(Path, check))]
        text += "\n\n" + "\n".join(
            [
                "Accuracy of the fast modes on trained models (COCO AP on their validation sets):",
                "",
                "| model | mode | AP | vs fp32 (points) | target |",
                "|---|---|---|---|---|",
                *rows,
            ]
        )
    print("\n" + text)
    if args.write:
        with (REPO / "BENCHMARKS.md").open("a") as handle:
            handle.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
