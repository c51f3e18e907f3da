"""``sparsercnn export``: a model file to a self-describing, NMS-free ONNX file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sparsercnn.cli.common import add_model_argument, check_output_path

# The oldest opset the exported graph runs on (the export's default is newer: DEFAULT_OPSET).
MIN_OPSET = 17


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a model file to ONNX (onnxruntime, TensorRT, ...)",
        description="Export to ONNX with dynamic height/width (and batch): inputs are resized "
        "RGB 0-255 images with their sizes and original sizes, outputs the top-N boxes (xyxy, "
        "original pixels), scores and labels; normalisation, padding and post-processing are "
        "inside the graph. Label map and test resize are stored in the file's metadata.",
    )
    add_model_argument(parser)
    parser.add_argument("--output", type=Path, required=True, help="destination .onnx file")
    parser.add_argument("--opset", type=int, help="ONNX opset (default: the newest tested; >= 17)")
    parser.add_argument(
        "--batch",
        choices=["dynamic", "static"],
        default="dynamic",
        help="dynamic batch axis, or a fixed batch of 1",
    )
    parser.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        help="skip the onnxruntime-vs-PyTorch comparison on sample images",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sparsercnn.export.onnx_export import DEFAULT_OPSET, OnnxCheckError, export_onnx

    opset = DEFAULT_OPSET if args.opset is None else args.opset
    if opset < MIN_OPSET:
        raise ValueError(f"--opset {opset}: the graph needs opset {MIN_OPSET} or newer")
    check_output_path(args.output, "--output")
    try:
        report = export_onnx(
            args.model,
            args.output,
            opset=opset,
            dynamic_batch=args.batch == "dynamic",
            check=args.check,
        )
    except OnnxCheckError as error:
        print(f"sparsercnn export: check failed: {error}", file=sys.stderr)
        print("export with --no-check to write the file anyway", file=sys.stderr)
        return 1
    print(report.summary())
    return 0
