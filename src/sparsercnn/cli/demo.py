"""``sparsercnn demo``: the offline end-to-end run on the bundled synthetic dataset."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sparsercnn.cli.common import (
    AUTO_PRESET,
    add_device_argument,
    add_overrides_argument,
    check_output_path,
    positive_number,
    resolve_device,
    user_path,
)
from sparsercnn.cli.config_options import check_config_arguments
from sparsercnn.cli.resume_setup import check_resume_to_start
from sparsercnn.cli.training_setup import (
    RECIPE_FILE,
    check_training_data,
    held_run_folder,
    remaining_budget,
    starting_weights,
    training_config,
)
from sparsercnn.presets import PRESETS
from sparsercnn.run_files import CONFIG_FILE, CURVES_FILE, METRICS_FILE

if TYPE_CHECKING:
    import torch

    from sparsercnn.config import Config
    from sparsercnn.data.demo_dataset import DemoDatasetPaths
    from sparsercnn.engine.evaluation_report import EvaluationReport
    from sparsercnn.engine.resume import CheckedResume
    from sparsercnn.engine.train_result import TrainResult

logger = logging.getLogger(__name__)

# The demo promises its result within 10 minutes. The budget covers the recipe's timing,
# training and the final evaluation; start-up, data generation and the drawings took 5-20 s more
# on the development machines. Where fp32 fits ~1000-1200 steps, every step counts (AP 0.31 after
# 977 steps, 0.46 after 1184; BENCHMARKS.md, session 10), so the budget uses what is left.
DEFAULT_TIME_BUDGET_MINUTES = 9.5
# Fixed-size images (no padding waste in a batch) at the size the demo preset trains on.
DEMO_IMAGE_SIZE = (160, 160)
# The least score of a drawn prediction.
DRAWING_THRESHOLD = 0.3


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="generate the synthetic demo data, train, evaluate and draw predictions (offline)",
        description="The main job, offline: writes a synthetic COCO-format dataset, trains on "
        "it within a time budget (the automatic recipe unless --preset names one), evaluates "
        "it with the COCO protocol, and draws predictions. Everything goes under --output-dir.",
    )
    parser.add_argument(
        "--output-dir",
        type=user_path,
        default=Path("runs/demo"),
        help="run folder: the data, the run and the drawings (default %(default)s)",
    )
    parser.add_argument(
        "--time-budget",
        type=positive_number,
        default=DEFAULT_TIME_BUDGET_MINUTES,
        metavar="MINUTES",
        help=f"training time budget (default {DEFAULT_TIME_BUDGET_MINUTES:g})",
    )
    parser.add_argument(
        "--preset",
        default=AUTO_PRESET,
        choices=[AUTO_PRESET, *sorted(PRESETS)],
        help="'auto' (the default) chooses the recipe from the demo data and the budget, as "
        "`train` does (on a CPU: the small model at 160 px, 50 proposals, 3 stages); 'demo' is "
        "the same model with the paper's 6 stages and a fixed 3000-step schedule",
    )
    add_overrides_argument(parser)
    parser.add_argument("--resume", action="store_true", help="continue an interrupted demo run")
    # What `train` also reads; the demo trains from scratch on its own data.
    parser.set_defaults(config=None, init_from=None, backbone_weights=None, freeze=None)
    add_device_argument(parser)
    parser.set_defaults(handler=run)


def draw_predictions(report: EvaluationReport, output_dir: Path, limit: int) -> Path:
    """Draw the evaluation's detections (score >= DRAWING_THRESHOLD) of the first ``limit``
    images."""
    from sparsercnn.drawing_writer import DrawingWriter
    from sparsercnn.prediction import prediction_from_detections

    dataset = report.dataset
    pairs = zip(report.evaluation.image_ids, report.evaluation.detections, strict=True)
    with DrawingWriter(
        output_dir, [dataset.image_dir], score_threshold=DRAWING_THRESHOLD
    ) as writer:
        for image_id, detections in list(pairs)[:limit]:
            info = dataset.image_info(dataset.image_ids.index(image_id))
            source = str(dataset.image_dir / info["file_name"])
            size = (int(info["height"]), int(info["width"]))
            prediction = prediction_from_detections(detections, dataset.category_map, size, source)
            writer.write(prediction, dataset.category_map.distinct_names)
    return output_dir


def check_run_to_start(train_dir: Path, args: argparse.Namespace) -> CheckedResume | None:
    """Refuse, before the data is made and decoded, what training would refuse after it: a
    ``--resume`` with no run in ``train_dir`` to continue (else what it changes is said and the
    resume returned, :func:`~sparsercnn.cli.resume_setup.check_resume_to_start`), or a new run
    where an earlier demo left its checkpoints and outputs (which training would replace or leave
    beside its own). What of a new run's schedule it never reaches is said by
    ``train_from_coco``.

    Raises:
        FileNotFoundError: ``--resume`` and ``train_dir`` holds no run's ``config.json``.
        FileExistsError: no ``--resume`` and ``train_dir`` holds another run's files.
    """
    from sparsercnn.engine.checkpoint import check_run_folder

    if args.resume:
        if not (train_dir / CONFIG_FILE).is_file():
            raise FileNotFoundError(
                f"--resume: {train_dir} holds no demo run to continue; run the demo without "
                "--resume, or give the --output-dir of the interrupted one"
            )
        return check_resume_to_start(args, train_dir, is_main=True, budget_extends=False)
    # is_main=False: look only (run checked the folder, and took its lock).
    # An earlier automatic demo's recipe.json is another run's file whatever this one's preset.
    check_run_folder(train_dir, False, is_main=False, also=(RECIPE_FILE,))
    return None


def write_demo_outputs(
    result: TrainResult, data: DemoDatasetPaths, out: Path, device: torch.device
) -> tuple[EvaluationReport, Path, Path]:
    """Write the trained model's evaluation files, drawings, plots and stage figure under
    ``out``; return the evaluation (which :func:`run` prints with its summary) and the drawings'
    folder and figure's path."""
    from sparsercnn.diagnostics import write_evaluation_report, write_stage_figure

    # Training's report of model_best, as `train` draws report/ from: the validation pass
    # training ran (or, after a resume, one of model_best's file).
    report = result.evaluation_report
    # One process, with a validation set; training evaluates its model files.
    assert report is not None and report.model_file is not None
    report.write_files(results_path=out / "val_results.json", metrics_path=out / "metrics.json")
    drawings = draw_predictions(report, out / "predictions", limit=12)
    write_evaluation_report(report, out / "report")
    first_val_image = sorted(data.val_images.iterdir())[0]
    figure = write_stage_figure(
        report.model_file, first_val_image, out / "stages.png", device=device
    )
    return report, drawings, figure


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    out: Path = args.output_dir
    # What would be refused after the data is made is refused before.
    check_output_path(out, "--output-dir", folder=True)
    # OUT is a writable folder, or can be made: its run folder can be too, unless a file holds
    # that name (said of the OUT the user gave).
    if (out / "train").exists() and not (out / "train").is_dir():
        raise NotADirectoryError(
            f"--output-dir {out}: {out / 'train'} is a file where the demo's run folder goes; "
            "move it, or choose another --output-dir"
        )
    given = check_config_arguments(args)
    # As in `train`: another run into the folder is refused first, and this one holds it while
    # it makes the data, trains and draws (a second demo would make the data again under it).
    with held_run_folder(out / "train", make=not args.resume, is_main=True):
        return _run_held(args, given, start)


def _run_held(args: argparse.Namespace, given: Config | None, start: float) -> int:
    """:func:`run` once the run folder is held; ``start``: when the command started."""
    from sparsercnn.data.demo_dataset import generate_demo_dataset
    from sparsercnn.diagnostics import default_figure_stages
    from sparsercnn.engine.distributed import DistInfo
    from sparsercnn.engine.pipeline import train_from_coco
    from sparsercnn.evaluation.units import format_percent

    out: Path = args.output_dir
    checked_resume = check_run_to_start(out / "train", args)
    # As in `train`: `--set train.init_from` / `train.backbone_weights` read once, up front.
    weights = starting_weights(args, given)
    data = generate_demo_dataset(out / "data", image_size=DEMO_IMAGE_SIZE)
    print(f"demo data: {data.train_json} / {data.val_json}")
    device = resolve_device(args.device)
    dist_info = DistInfo(device=device)
    # As in `train`: the images are checked (and decoded once) before the budget starts.
    checked = check_training_data(
        (data.train_json, data.train_images), (data.val_json, data.val_images), False
    )
    budget_start = time.perf_counter()
    cfg = training_config(
        args,
        given,
        checked_resume,
        data.train_json,
        data.train_images,
        out / "train",
        dist_info,
        weights,
        checked,
    )
    result = train_from_coco(
        cfg,
        train_json=data.train_json,
        train_images=data.train_images,
        val_json=data.val_json,
        val_images=data.val_images,
        output_dir=out / "train",
        # The checkpoint --resume names, as checked before the data is made (check_run_to_start).
        resume=checked_resume or False,
        # The recipe's timing counts against the budget.
        time_budget_minutes=remaining_budget(args.time_budget, budget_start),
        dist_info=dist_info,
        starting_weights=weights,
        # The check's finding: the datasets take it, not reading the sets again.
        train_inspection=None if checked is None else checked.train,
        val_inspection=None if checked is None else checked.val,
        # The budget is a default here: --resume of a trained demo finishes it, training no more.
        budget_extends=False,
    )
    try:
        report, drawings, figure = write_demo_outputs(result, data, out, device)
    except BaseException:
        # The model is saved: what stopped is only the demo's own files, which --resume writes.
        logger.warning(
            "stopped after training; the model is in %s: run the same command with --resume to "
            "write the demo's evaluation, drawings and figures",
            out / "train",
        )
        raise
    model_path = report.model_file
    shown = ", ".join(str(s) for s in default_figure_stages(cfg.model.num_stages))
    minutes = (time.perf_counter() - start) / 60
    # Training logged its evaluations on one line each: the table is printed here, once.
    print(report.format())
    print(
        f"\nDemo finished in {minutes:.1f} min. AP = {format_percent(report.result.AP)} on "
        f"{report.result.num_images} validation images.\n"
        f"  model:        {model_path}\n"
        f"  metrics:      {out / 'metrics.json'} (COCO results: {out / 'val_results.json'})\n"
        f"  curves:       {out / 'train' / CURVES_FILE}\n"
        f"  training log: {out / 'train' / METRICS_FILE}\n"
        f"  drawings:     {drawings} (score >= {DRAWING_THRESHOLD:g})\n"
        f"  diagnostics:  {out / 'report'} (PR curves, confusion matrix, samples, labels)\n"
        f"  stage figure: {figure} (learned proposals and stages {shown})\n"
        f"Predict on your own images: sparsercnn predict --model {model_path} IMAGE..."
    )
    return 0
