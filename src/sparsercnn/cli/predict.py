"""``sparsercnn predict``: detections for image files and folders, as COCO JSON and drawings."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from sparsercnn.atomic_file import atomic_write
from sparsercnn.cli.common import (
    add_batch_arguments,
    add_device_argument,
    add_model_argument,
    check_output_path,
    fraction,
    int_at_least,
    resolve_device,
)

if TYPE_CHECKING:
    from sparsercnn.evaluation.results import CocoResult
    from sparsercnn.export.onnx_runtime import OnnxPredictor
    from sparsercnn.predictor import Predictor


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="detect objects in images or folders",
        description="Write COCO result records (file_name, category_id, category_name, bbox "
        "[x,y,w,h] in original pixels, score) for every image, and optionally the images with "
        "boxes drawn (same relative paths and formats as the inputs, below their common folder).",
    )
    model = parser.add_mutually_exclusive_group(required=True)
    add_model_argument(model, required=False)
    model.add_argument("--onnx", type=Path, help="ONNX file from `sparsercnn export`")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="images or folders")
    parser.add_argument("--output", type=Path, default=Path("predictions.json"), help="COCO JSON")
    parser.add_argument("--save-images", type=Path, metavar="DIR", help="draw detections here")
    parser.add_argument(
        "--score-threshold", type=fraction, default=0.3, help="minimum score for drawing only"
    )
    parser.add_argument("--stages", type=int_at_least(1), help="use only the first k stages")
    add_batch_arguments(parser, default_batch_size=4)
    add_device_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sparsercnn.export.onnx_runtime import OnnxPredictor
    from sparsercnn.predictor import DrawingWriter, Predictor

    check_output_path(args.output, "--output")
    if args.save_images is not None:
        check_output_path(args.save_images, "--save-images", folder=True)
    predictor: Predictor | OnnxPredictor
    if args.onnx is not None:
        if args.stages is not None or args.device not in (None, "cpu"):
            raise ValueError("--stages and --device apply to --model, not to --onnx (CPU)")
        predictor = OnnxPredictor(
            args.onnx, batch_size=args.batch_size, batch_invariant=not args.padded_batches
        )
    else:
        predictor = Predictor.from_file(
            args.model,
            device=resolve_device(args.device),
            batch_size=args.batch_size,
            num_stages=args.stages,
            batch_invariant=not args.padded_batches,
        )
    drawings = None
    if args.save_images:
        drawings = DrawingWriter(args.save_images, args.paths, args.score_threshold)
    records: list[CocoResult] = []
    num_images = 0
    for prediction in predictor.iter_predictions(list(args.paths)):
        num_images += 1
        records.extend(prediction.to_coco_results(predictor.categories))
        if drawings is not None:
            drawings.write(prediction, predictor.categories.names)
    text = json.dumps(records)
    atomic_write(args.output, lambda tmp: tmp.write_text(text))
    print(f"{len(records)} detections on {num_images} images written to {args.output}")
    if drawings is not None:
        print(
            f"drawn detections (score >= {args.score_threshold}) in {args.save_images}"
            + (
                f" ({len(drawings.overwritten)} earlier drawings replaced)"
                if drawings.overwritten
                else ""
            )
        )
    return 0
