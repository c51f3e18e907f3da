"""``sparsercnn eval``: COCO metrics of a model file, an ONNX export or a detections file (a
COCO results JSON) on a COCO-format dataset."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

from sparsercnn.cli.common import (
    add_cuda_graphs_argument,
    add_model_dataset_arguments,
    add_precision_argument,
    check_model_paths,
    check_output_path,
    int_at_least,
    is_below,
    naming_input_flags,
    output_file,
    refuse_flags,
    refuse_model_flags_with_onnx,
    refuse_overwriting,
    refuse_special_file,
    resolve_device,
    user_path,
    warn_replacing,
)
from sparsercnn.config import DEFAULT_NUM_WORKERS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a model file (or an ONNX export, or a detections file) with the COCO "
        "protocol",
        description="COCO bbox evaluation (no score threshold; all N detections of an image "
        "scored, maxDets 100 per image and class as in pycocotools): AP, AP50, AP75, "
        "APs, APm, APl and per-class AP, plus model-only and end-to-end images/s. With --onnx, "
        "an exported file (fp32 or int8) runs in onnxruntime instead of the model, on --device "
        "(cuda needs the onnxruntime-gpu package; the report names the execution provider). "
        "With --detections, the records of a COCO results JSON (`predict`'s, or another "
        "tool's) are scored instead, with no model run and no images/s figures.",
    )
    add_model_dataset_arguments(parser, onnx=True, detections=True)
    add_precision_argument(parser)
    add_cuda_graphs_argument(parser)
    parser.add_argument(
        "--output",
        type=output_file,
        help="write the metrics as JSON here (AP and AR as 0-1 fractions; a file there is "
        "replaced, with a warning)",
    )
    parser.add_argument(
        "--results",
        type=output_file,
        help="write the COCO results JSON here (a file there is replaced, with a warning)",
    )
    parser.add_argument(
        "--report-dir",
        type=user_path,
        help="also write PR curves, a confusion matrix, sample images and a label summary here "
        "(from the same evaluation pass: --stages and --batch-size apply; the files of an "
        "earlier report there are replaced, with a warning)",
    )
    parser.add_argument("--stages", type=int_at_least(1), help="use only the first k stages")
    parser.set_defaults(handler=run)


# The files an evaluation report writes into its folder (its samples/ drawings aside).
REPORT_FILES = (
    "precision_recall.png",
    "confusion_matrix.png",
    "confusion_matrix.json",
    "dataset_labels.png",
)


def check_report_dir(
    report_dir: Path, flag: str, inputs: Mapping[str, Path | str | None], *, images: Path
) -> None:
    """Fail before the model runs when an evaluation report cannot be written into
    ``report_dir`` (given as ``flag``): the folder cannot be written, one of its
    :data:`REPORT_FILES` is a device, named pipe or socket or would replace one of ``inputs``
    (by flag), its drawings would land among the images (:func:`refuse_report_over_images`),
    its ``samples`` is a file, or holds a file named as a drawing that no report drew
    (:func:`~sparsercnn.diagnostics.evaluation_plots.check_sample_targets`)."""
    from sparsercnn.diagnostics.evaluation_plots import check_sample_targets

    check_output_path(report_dir, flag, folder=True)
    for name in REPORT_FILES:
        refuse_special_file(report_dir / name, flag, folder=report_dir)
        refuse_overwriting(report_dir / name, flag, inputs)
    refuse_report_over_images(report_dir, images, flag)
    samples = report_dir / "samples"
    if samples.exists() and not samples.is_dir():
        raise NotADirectoryError(
            f"{flag} {report_dir}: the report draws its samples into {samples}, which is a "
            "file; move it or choose another folder"
        )
    check_sample_targets(samples, flag=flag)


def refuse_report_over_images(report_dir: Path, images: Path, flag: str = "--report-dir") -> None:
    """Raise when the report folder ``report_dir`` (given as ``flag``) would write among the
    images: the report writes its plots into ``report_dir`` and its drawings into
    ``report_dir/samples``, where it deletes the ``<number>.png`` files an earlier report left
    (which a data set's ``000001.png`` looks like).
    """
    samples = report_dir / "samples"
    same = is_below(images, report_dir) and not is_below(images, report_dir, strictly=True)
    if same or is_below(images, samples):
        raise ValueError(
            f"{flag} {report_dir} would write among the images of --images {images} (its "
            f"drawings {samples}/<image id>.png replace those of an earlier report, whose other "
            "numbered .png files are deleted); give a report folder outside the images"
        )


def refuse_outputs_in_report(report_dir: Path, outputs: Mapping[str, Path | None]) -> None:
    """Raise when a file of ``outputs`` (by flag) is one that the report written afterwards
    into ``report_dir`` would replace (one of its :data:`REPORT_FILES`, or a file in its
    ``samples`` folder) or the report's folder itself, or one above it."""
    report_files = {os.path.abspath(report_dir / name) for name in REPORT_FILES}
    for flag, path in outputs.items():
        if path is None:
            continue
        replaced = os.path.abspath(path) in report_files or is_below(path, report_dir / "samples")
        if replaced or is_below(report_dir, path):
            raise ValueError(
                f"{flag} {path} is a file that --report-dir {report_dir} writes after it, which "
                f"would replace it; give {flag} a file outside the report's files"
            )


# The flags of a model's run over the data set, which --detections runs none of (--workers
# defaults to None here, so that one given shows).
MODEL_RUN_FLAGS = (
    "--stages",
    "--cuda-graphs",
    "--precision",
    "--batch-size",
    "--workers",
    "--padded-batches",
    "--device",
)


def refuse_model_flags_with_detections(args: argparse.Namespace) -> None:
    """With ``--detections`` no model runs: refuse the flags that configure one (naming those
    given), ``--results`` (the detections are in that file already), and ``--report-dir``
    without ``--images`` (its samples draw the images)."""
    refuse_flags(
        args,
        MODEL_RUN_FLAGS,
        f"these configure a model's run, and --detections runs none (it scores the detections "
        f"of {args.detections})",
    )
    if args.results is not None:
        raise ValueError(
            f"--results {args.results} writes a model's detections, and with --detections they "
            f"are in {args.detections} already; drop --results"
        )
    if args.report_dir is not None and args.images is None:
        raise ValueError(
            f"--report-dir {args.report_dir} draws sample images with their detections: give "
            "the image folder of --json as --images too"
        )


def run(args: argparse.Namespace) -> int:
    from sparsercnn.diagnostics import write_evaluation_report
    from sparsercnn.engine.detections_evaluation import evaluate_detections_file
    from sparsercnn.engine.model_evaluation import evaluate_model_file, evaluate_onnx_file

    check_model_paths(args)
    if args.detections is not None:
        refuse_model_flags_with_detections(args)
    elif args.images is None:
        raise ValueError(
            f"--images is needed with {'--onnx' if args.onnx else '--model'}: the image folder "
            "of --json, to run the model on"
        )
    if args.onnx is not None:
        refuse_model_flags_with_onnx(args)
    inputs = {
        "--model": args.model,
        "--onnx": args.onnx,
        "--detections": args.detections,
        "--json": args.json,
        "--images": args.images,
    }
    if args.output is not None:
        check_output_path(args.output, "--output", inputs=inputs)
    if args.results is not None:
        check_output_path(args.results, "--results", inputs=inputs)
        if args.output is not None and os.path.abspath(args.results) == os.path.abspath(
            args.output
        ):
            raise ValueError(f"--output and --results both name {args.output}; give each its own")
    if args.report_dir is not None:
        check_report_dir(args.report_dir, "--report-dir", inputs, images=args.images)
        refuse_outputs_in_report(
            args.report_dir, {"--output": args.output, "--results": args.results}
        )

    def warn_replacing_outputs() -> None:
        # Once every flag, the model (--precision, --stages) and the data are accepted, as
        # predict warns: a refused command replaces nothing.
        warn_replacing(args.output, "--output")
        warn_replacing(args.results, "--results")
        warn_replacing(args.report_dir, "--report-dir", files=REPORT_FILES)

    num_workers = DEFAULT_NUM_WORKERS if args.workers is None else args.workers
    with naming_input_flags({"--images": args.images}, annotation_files={"--json": args.json}):
        if args.detections is not None:
            report = evaluate_detections_file(
                args.detections,
                args.json,
                args.images,
                skip_invalid=args.skip_invalid,
                metrics_path=args.output,
                on_accepted=warn_replacing_outputs,
            )
        elif args.onnx is not None:
            report = evaluate_onnx_file(
                args.onnx,
                args.json,
                args.images,
                device=args.device,
                batch_size=args.batch_size,
                num_workers=num_workers,
                batch_invariant=not args.padded_batches,
                precision=args.precision,
                skip_invalid=args.skip_invalid,
                results_path=args.results,
                metrics_path=args.output,
                on_accepted=warn_replacing_outputs,
            )
        else:
            report = evaluate_model_file(
                args.model,
                args.json,
                args.images,
                device=resolve_device(args.device),
                num_stages=args.stages,
                batch_size=args.batch_size,
                num_workers=num_workers,
                batch_invariant=not args.padded_batches,
                precision=args.precision or "fp32",
                cuda_graphs=args.cuda_graphs,
                skip_invalid=args.skip_invalid,
                results_path=args.results,
                metrics_path=args.output,
                on_accepted=warn_replacing_outputs,
            )
    print(report.format())
    if args.output:
        print(f"metrics written to {args.output} (AP and AR as 0-1 fractions)")
    if args.results:
        print(f"COCO results written to {args.results}")
    if args.report_dir:
        write_evaluation_report(report, args.report_dir)
        print(f"evaluation plots in {args.report_dir} (from the same detections)")
    return 0
