"""``sparsercnn predict``: detections for image files and folders, as COCO JSON and drawings."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from sparsercnn.atomic_file import atomic_write
from sparsercnn.cli.common import add_device_argument, add_model_argument, resolve_device

if TYPE_CHECKING:
    from sparsercnn.evaluation.results import CocoResult
    from sparsercnn.export.onnx_runtime import OnnxPredictor
    from sparsercnn.predictor import Predictor


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="detect objects in images or folders",
        description="Write COCO result records (file_name, category_id, bbox [x,y,w,h] in "
        "original pixels, score) for every image, and optionally the images with boxes drawn.",
    )
    model = parser.add_mutually_exclusive_group(required=True)
    add_model_argument(model, required=False)
    model.add_argument("--onnx", type=Path, help="ONNX file from `sparsercnn export`")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="images or folders")
    parser.add_argument("--output", type=Path, default=Path("predictions.json"), help="COCO JSON")
    parser.add_argument("--save-images", type=Path, metavar="DIR", help="draw detections here")
    parser.add_argument(
        "--score-threshold", type=float, default=0.3, help="minimum score for drawing only"
    )
    parser.add_argument("--stages", type=int, help="use only the first k stages")
    parser.add_argument("--batch-size", type=int, default=4)
    add_device_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sparsercnn.export.onnx_runtime import OnnxPredictor
    from sparsercnn.predictor import Predictor, save_drawing

    predictor: Predictor | OnnxPredictor
    if args.onnx is not None:
        if args.stages is not None or args.device not in (None, "cpu"):
            raise ValueError("--stages and --device apply to --model, not to --onnx (CPU)")
        predictor = OnnxPredictor(args.onnx, batch_size=args.batch_size)
    else:
        predictor = Predictor.from_file(
            args.model,
            device=resolve_device(args.device),
            batch_size=args.batch_size,
            num_stages=args.stages,
        )
    records: list[CocoResult] = []
    num_images = 0
    for prediction in predictor.iter_predictions(list(args.paths)):
        num_images += 1
        records.extend(prediction.to_coco_results(predictor.categories.category_ids))
        if args.save_images:
            save_drawing(
                prediction, predictor.categories.names, args.save_images, args.score_threshold
            )
    text = json.dumps(records)
    atomic_write(args.output, lambda tmp: tmp.write_text(text))
    print(f"{len(records)} detections on {num_images} images written to {args.output}")
    if args.save_images:
        print(f"drawn detections (score >= {args.score_threshold}) in {args.save_images}")
    return 0
