"""``sparsercnn benchmark``: latency and throughput of inference, part by part."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, get_args

from sparsercnn.atomic_file import atomic_write_text
from sparsercnn.cli.common import (
    add_model_argument,
    add_precision_argument,
    check_model_paths,
    check_output_path,
    device_name,
    int_at_least,
    output_file,
    resolve_device,
    warn_replacing,
)
from sparsercnn.config import CompileMode
from sparsercnn.presets import PRESETS

if TYPE_CHECKING:
    from sparsercnn.benchmarking import BenchmarkResult


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="time inference (preprocess, model, postprocess, backbone+FPN)",
        description="Warm up, then time preprocessing (normalise + pad), the model, "
        "post-processing and backbone+FPN alone on random images of a fixed size; prints "
        "p50/p95 latency and images/s with the hardware and library versions. Several "
        "--backend and --dtype values compare every combination in one process, their timed "
        "runs alternating, so that a machine whose speed drifts slows them alike. Run it on an "
        "otherwise idle machine.",
    )
    model = parser.add_mutually_exclusive_group()
    add_model_argument(model, required=False)
    model.add_argument(
        "--preset",
        default="r50_100pro_3x",
        choices=sorted(PRESETS),
        help="random weights of this preset (default r50_100pro_3x)",
    )
    parser.add_argument(
        "--device",
        type=device_name,
        default="cpu",
        help="cpu, cuda or cuda:N (default cpu); the onnx backends run there by onnxruntime's "
        "execution provider (cuda needs the onnxruntime-gpu package, not PyTorch's CUDA), which "
        "the result names",
    )
    parser.add_argument(
        "--backend",
        choices=["eager", "compile", "cuda-graphs", "onnx", "onnx-int8"],
        nargs="+",
        default=["eager"],
        help="one or more (default eager); cuda-graphs: the eager kernels replayed from CUDA "
        "graphs (CUDA only); onnx-int8: the onnx export with int8 convolutions, calibrated on "
        "the random benchmark images (timing only)",
    )
    parser.add_argument(
        "--batch-size",
        type=int_at_least(1),
        default=1,
        help="images per forward pass, all of --image-size (default %(default)s)",
    )
    parser.add_argument(
        "--image-size",
        type=int_at_least(1),
        nargs=2,
        metavar=("H", "W"),
        help="resized input size (default: the test resize of a 480x640 image)",
    )
    add_precision_argument(
        parser,
        "--dtype",
        several=True,
        int8_source="a --model file made by `export --int8`, otherwise calibrated on the "
        "random benchmark images: timing only",
    )
    parser.add_argument(
        "--compile-mode",
        choices=list(get_args(CompileMode)),
        help="torch.compile mode of --backend compile on CUDA (default: torch.compile's own; "
        "reduce-overhead: CUDA graphs)",
    )
    parser.add_argument(
        "--threads", type=int_at_least(1), help="intra-op CPU threads (default: PyTorch's)"
    )
    parser.add_argument(
        "--warmup",
        type=int_at_least(0),
        default=3,
        help="untimed runs after the first (default %(default)s)",
    )
    parser.add_argument(
        "--iters", type=int_at_least(1), default=20, help="timed runs (default %(default)s)"
    )
    parser.add_argument(
        "--output",
        type=output_file,
        help="write the result as JSON here (a list of results when several are compared; a "
        "file there is replaced, with a warning)",
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print a table row for BENCHMARKS.md"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sparsercnn.benchmarking import (
        ONNX_BACKENDS,
        BenchmarkResult,
        BenchmarkSettings,
        run_benchmarks,
    )

    check_model_paths(args)
    # --device is PyTorch's for its backends, onnxruntime's for the onnx ones (checked by
    # run_benchmarks, before any model is built).
    if any(backend not in ONNX_BACKENDS for backend in args.backend):
        resolve_device(args.device)
    if args.output:
        check_output_path(args.output, "--output", inputs={"--model": args.model})
        if args.output.suffix.lower() != ".json":
            # A model or export named by mistake would be replaced by the JSON result.
            raise ValueError(
                f"--output {args.output}: the benchmark writes its result as JSON; give it a "
                f"name ending in .json (e.g. {args.output.with_suffix('.json').name})"
            )
        warn_replacing(args.output, "--output")
    # --compile-mode is the compile backend's; without one, every setting carries it, so that it
    # is refused rather than ignored.
    compiled = {"compile"} if "compile" in args.backend else set(args.backend)
    settings = [
        BenchmarkSettings(
            checkpoint=args.model,
            preset=None if args.model else args.preset,
            device=args.device,
            backend=backend,
            batch_size=args.batch_size,
            image_size=tuple(args.image_size) if args.image_size else None,
            dtype=dtype,
            compile_mode=args.compile_mode if backend in compiled else None,
            threads=args.threads,
            warmup=args.warmup,
            iters=args.iters,
        )
        for backend in dict.fromkeys(args.backend)
        for dtype in dict.fromkeys(args.dtype)
    ]
    results = run_benchmarks(settings)
    print("\n\n".join(format_result(result) for result in results))
    if len(results) > 1:
        print("\n" + format_comparison(results))
    if args.markdown:
        print()
        print(BenchmarkResult.markdown_header())
        print("\n".join(result.markdown_row() for result in results))
    if args.output:
        data = [r.to_dict() for r in results] if len(results) > 1 else results[0].to_dict()
        atomic_write_text(args.output, json.dumps(data, indent=2) + "\n")
        print(f"result written to {args.output}")
    return 0


def format_comparison(results: list[BenchmarkResult]) -> str:
    """The whole pipeline's median per setting, and how much faster than the first it ran."""
    reference = results[0].timings["total"].p50_ms
    first = f"{results[0].settings['backend']} {results[0].settings['dtype']}"
    lines = [
        "compared in one process, timed runs alternating (whole pipeline p50 per batch, and "
        f"speed-up over {first}):"
    ]
    for result in results:
        s, p50 = result.settings, result.timings["total"].p50_ms
        lines.append(
            f"  {s['backend'] + ' ' + s['dtype']:<18}{p50:>10.2f} ms{reference / p50:>8.2f}x"
        )
    return "\n".join(lines)


def format_result(result: BenchmarkResult) -> str:
    """Settings, hardware, versions and one line per timed part."""
    s = result.settings
    mode = f", mode {s['compile_mode']}" if s.get("compile_mode") else ""
    faults = ""
    if result.page_faults_per_run is not None:
        faults = f", {result.page_faults_per_run:.1f} page faults per timed run"
    hardware = dict(result.hardware)
    # The machine kind first, bare: "machine C (Intel Xeon, 2 CPUs, ...)".
    shown = [hardware.pop("machine", None), *(f"{k} {v}" for k, v in hardware.items() if v)]
    lines = [
        f"model {result.model}: backend {s['backend']}, device {result.runs_on}, dtype "
        f"{s['dtype']}{mode}, batch {s['batch_size']}, input {s['image_size'][0]}x"
        f"{s['image_size'][1]}, threads {s['threads']}, {s['warmup']} warm-up + "
        f"{s['iters']} timed runs (setup: build and first run {result.setup_seconds:.1f} s"
        f"{faults})",
        "hardware: " + ", ".join(item for item in shown if item),
        "versions: " + ", ".join(f"{k} {v}" for k, v in result.versions.items()),
        *(f"note: {note}" for note in result.notes),
        f"{'part':<14}{'p50 ms':>10}{'p95 ms':>10}{'images/s':>10}",
    ]
    for name, timing in result.timings.items():
        lines.append(
            f"{name:<14}{timing.p50_ms:>10.2f}{timing.p95_ms:>10.2f}{timing.images_per_s:>10.2f}"
        )
    lines.extend(timing_legend(s["backend"], s["batch_size"]))
    return "\n".join(lines)


def timing_legend(backend: str, batch_size: int) -> list[str]:
    """What the table's figures measure, for ``backend`` (the parts differ for onnx)."""
    if backend in ("onnx", "onnx-int8"):
        parts = (
            "preprocess: padding into one float32 batch (the graph normalises); model: the "
            "onnxruntime session (post-processing included); postprocess: keeping each image's "
            "num_detections entries"
        )
    else:
        parts = (
            "preprocess: normalise and pad; model: the forward pass; postprocess: top-k, "
            "rescale to the original size, clip"
        )
    return [
        f"ms per batch of {batch_size} (p50: median, p95: 95th percentile of the timed runs); "
        "images/s: batch / p50",
        f"{parts}; total: these three in one run; backbone_fpn: backbone and FPN alone (a part "
        "of model), timed after each run",
    ]
