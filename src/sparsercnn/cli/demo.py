"""``sparsercnn demo``: the offline end-to-end run on the bundled synthetic dataset."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sparsercnn.cli.common import add_device_argument, resolve_device
from sparsercnn.data.demo_dataset import generate_demo_dataset
from sparsercnn.data.image_io import load_image
from sparsercnn.engine.distributed import DistInfo
from sparsercnn.engine.pipeline import evaluate_model_file, train_from_coco
from sparsercnn.predictor import Predictor
from sparsercnn.presets import get_preset
from sparsercnn.visualization.draw import draw_detections

DEFAULT_TIME_BUDGET_MINUTES = 7.0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="generate the synthetic demo data, train, evaluate and draw predictions (offline)",
        description="The main job, offline: writes a synthetic COCO-format dataset, trains the "
        "'demo' preset on it within a time budget, evaluates it with the COCO protocol, and "
        "draws predictions. Everything goes under --output-dir.",
    )
    parser.add_argument("--output-dir", type=Path, default=Path("runs/demo"), help="run folder")
    parser.add_argument(
        "--time-budget",
        type=float,
        default=DEFAULT_TIME_BUDGET_MINUTES,
        metavar="MINUTES",
        help=f"training time budget (default {DEFAULT_TIME_BUDGET_MINUTES:g})",
    )
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted demo run")
    add_device_argument(parser)
    parser.set_defaults(handler=run)


def draw_predictions(model_file: Path, image_dir: Path, output_dir: Path, limit: int) -> Path:
    """Draw the detections (score >= 0.3) of the first ``limit`` images of ``image_dir``."""
    predictor = Predictor.from_file(model_file)
    images = sorted(image_dir.iterdir())[:limit]
    output_dir.mkdir(parents=True, exist_ok=True)
    for prediction in predictor(images):
        shown = prediction.above(0.3)
        drawing = draw_detections(
            load_image(prediction.source),
            shown.boxes,
            shown.labels,
            shown.scores,
            predictor.categories.names,
        )
        drawing.save(output_dir / (Path(prediction.source).stem + ".jpg"), quality=92)
    return output_dir


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    out: Path = args.output_dir
    data = generate_demo_dataset(out / "data")
    print(f"demo data: {data.train_json} / {data.val_json}")
    cfg = get_preset("demo").apply_overrides(list(args.overrides))
    device = resolve_device(args.device)
    result = train_from_coco(
        cfg,
        train_json=data.train_json,
        train_images=data.train_images,
        val_json=data.val_json,
        val_images=data.val_images,
        output_dir=out / "train",
        resume=args.resume,
        time_budget_minutes=args.time_budget,
        dist_info=DistInfo(device=device),
    )
    model_path = result.model_best_path or result.model_final_path
    assert model_path is not None  # written by the single (main) process
    report = evaluate_model_file(
        model_path,
        data.val_json,
        data.val_images,
        device=device,
        results_path=out / "val_results.json",
        metrics_path=out / "metrics.json",
    )
    print(report.format())
    drawings = draw_predictions(model_path, data.val_images, out / "predictions", limit=12)
    minutes = (time.perf_counter() - start) / 60
    print(
        f"\nDemo finished in {minutes:.1f} min. AP = {report.result.AP:.3f} on "
        f"{report.result.num_images} validation images.\n"
        f"  model:        {model_path}\n"
        f"  metrics:      {out / 'metrics.json'} (COCO results: {out / 'val_results.json'})\n"
        f"  curves:       {out / 'train' / 'curves.png'}\n"
        f"  training log: {out / 'train' / 'metrics.jsonl'}\n"
        f"  drawings:     {drawings} (score >= 0.3)\n"
        f"Predict on your own images: sparsercnn predict --checkpoint {model_path} IMAGE..."
    )
    return 0
