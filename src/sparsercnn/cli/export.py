"""``sparsercnn export``: a model file to a self-describing, NMS-free ONNX file, or (``--int8``
with a ``.safetensors`` output) to a model file calibrated for ``--precision int8``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sparsercnn.cli.common import (
    add_model_argument,
    check_model_paths,
    check_output_path,
    int_at_least,
    output_file,
    user_path,
    warn_replacing,
)

if TYPE_CHECKING:
    from sparsercnn.export.onnx_export import ExportReport
    from sparsercnn.export.quantization import QuantizationReport


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a model file to ONNX (onnxruntime, TensorRT, ...)",
        description="Export to ONNX with dynamic height/width (and batch): inputs are resized "
        "RGB 0-255 images with their sizes and original sizes, outputs the top-N boxes (xyxy, "
        "original pixels), scores and labels, and num_detections: each image's first "
        "num_detections entries are its detections (the rest are boxes clipping emptied); "
        "normalisation, padding and post-processing are inside the graph. Label map, test "
        "resize and the weights' CRC-32 (which serve --onnx checks against --model) are stored "
        "in the file's metadata. The file is written only once onnxruntime has reproduced "
        "PyTorch on two sample images: the same detections (each with a counterpart of the "
        "same label, a score within 1e-4 and box coordinates within 1e-3 of the image's longer "
        "side; scores straddling the top-k cut within 1e-4 of each other excepted), equal up to "
        "float rounding, not to the bit. With "
        "--int8 and a .safetensors --output: a model file calibrated for int8 PyTorch "
        "inference (predict/eval/serve --precision int8) instead.",
    )
    add_model_argument(parser)
    parser.add_argument(
        "--output",
        type=output_file,
        required=True,
        help="destination .onnx file (or, with --int8, a .safetensors model file)",
    )
    parser.add_argument(
        "--opset",
        type=int,
        help="ONNX opset (default 18, the exporter's own; newer ones are converted, up to the "
        "newest the installed onnxscript converts to; ONNX output only)",
    )
    parser.add_argument(
        "--batch",
        choices=["dynamic", "static"],
        help="dynamic batch axis (default), or a fixed batch of 1 (ONNX output only)",
    )
    parser.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        help="skip the onnxruntime-vs-PyTorch comparison on sample images (for an int8 "
        ".safetensors output: the int8-vs-fp32 comparison, which needs this CPU to run int8)",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="write an int8 file calibrated on --calibration images, faster on CPUs and "
        "approximate: a .onnx --output gets onnxruntime static quantization of the "
        "convolutions; a .safetensors one the model with its int8 calibration, which runs its "
        "backbone and FPN on oneDNN's int8 convolutions with --precision int8",
    )
    parser.add_argument(
        "--calibration",
        type=user_path,
        metavar="DIR",
        help="with --int8: folder of images like those the model will see (e.g. its training "
        "images); they are test-resized as for prediction",
    )
    parser.add_argument(
        "--calibration-images",
        type=int_at_least(1),
        metavar="N",
        help="with --int8: calibrate on N images spread over DIR (default 64)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sparsercnn.export.onnx_export import (
        DEFAULT_OPSET,
        OnnxCheckError,
        check_opset,
        export_onnx,
    )

    check_model_paths(args)
    opset = DEFAULT_OPSET if args.opset is None else args.opset
    check_opset(opset)
    check_output_path(
        args.output, "--output", inputs={"--model": args.model, "--calibration": args.calibration}
    )
    suffix = args.output.suffix.lower()
    if suffix not in (".onnx", ".safetensors"):
        raise ValueError(
            f"--output {args.output}: export writes an ONNX file (.onnx) or, with --int8, a "
            "model file (.safetensors); name the output with one of these suffixes"
        )
    model_file_output = suffix == ".safetensors"
    given = (("--opset", args.opset), ("--batch", args.batch))
    graph_flags = [flag for flag, value in given if value is not None]
    if model_file_output and args.int8 and graph_flags:
        shape, them = ("shape", "them") if len(graph_flags) > 1 else ("shapes", "it")
        raise ValueError(
            f"{' and '.join(graph_flags)} {shape} an ONNX graph; --output {args.output} is an "
            f"int8 model file (.safetensors), which has none: drop {them}, or name a .onnx output"
        )
    calibration = int8_calibration(args)
    if model_file_output and calibration is None:
        raise ValueError(
            f"--output {args.output}: export writes ONNX files (.onnx); a .safetensors output "
            "is the int8 model file of --int8 --calibration DIR"
        )
    warn_replacing(args.output, "--output")
    dynamic_batch = args.batch != "static"
    report: ExportReport | QuantizationReport
    try:
        if calibration is not None and model_file_output:
            from sparsercnn.export.int8_model_file import export_int8_model_file

            report = export_int8_model_file(
                args.model, args.output, calibration, compare=args.check
            )
        elif calibration is not None:
            from sparsercnn.export.quantization import export_int8_onnx

            report = export_int8_onnx(
                args.model,
                args.output,
                calibration,
                opset=opset,
                dynamic_batch=dynamic_batch,
                check=args.check,
            )
        else:
            report = export_onnx(
                args.model,
                args.output,
                opset=opset,
                dynamic_batch=dynamic_batch,
                check=args.check,
            )
    except OnnxCheckError as error:
        print(f"sparsercnn export: check failed: {error.finding}", file=sys.stderr)
        print("export with --no-check to write the file anyway", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def int8_calibration(args: argparse.Namespace) -> list[Path] | None:
    """The calibration images of ``--int8``, None without it; checked before any export.

    Raises:
        ValueError: ``--int8`` without ``--calibration``, or a calibration flag without ``--int8``.
        FileNotFoundError, NotADirectoryError: ``--calibration`` is no folder of images.
    """
    if not args.int8:
        if args.calibration is not None or args.calibration_images is not None:
            raise ValueError(
                "--calibration and --calibration-images apply to int8 export only; add --int8"
            )
        return None
    if args.calibration is None:
        raise ValueError(
            "--int8 needs --calibration DIR: a folder of images like those the model will see "
            "(e.g. its training images)"
        )
    from sparsercnn.data.image_io import ImageReadError, load_image
    from sparsercnn.export.quantization import DEFAULT_CALIBRATION_IMAGES, calibration_images

    try:
        images = calibration_images(
            args.calibration, args.calibration_images or DEFAULT_CALIBRATION_IMAGES
        )
    except (FileNotFoundError, NotADirectoryError) as error:
        raise type(error)(
            f"--calibration: {error}; give a folder of images like those the model will see"
        ) from None
    # Decoded in full (milliseconds each, against the minutes of the export and calibration):
    # a file that is no image, or one truncated after its header, fails now, not after them.
    for image in images:
        try:
            load_image(image).close()
        except ImageReadError as error:
            raise ValueError(
                f"--calibration: {error}; remove it from the calibration images or choose others"
            ) from None
    return images
