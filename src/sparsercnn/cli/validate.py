"""``sparsercnn validate``: check a COCO dataset before training, with the rules ``train`` and
``eval`` apply (:mod:`sparsercnn.data.policy`)."""

from __future__ import annotations

import argparse

from sparsercnn.cli.common import (
    check_output_path,
    naming_input_flags,
    output_file,
    user_path,
    warn_replacing,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a COCO-format dataset (files, ids, boxes) and print a summary",
        description="Report missing, undecodable or truncated images, bad boxes, unknown or "
        "duplicate ids, and summarise the dataset; every image is decoded (with --no-image-check, "
        "only looked for). What this reports as an error, `train` and `eval` refuse; the last "
        "line says what was checked. Exit code 2 when errors were found (bad input, as "
        "for every command), also with --output.",
    )
    parser.add_argument("--json", type=user_path, required=True, help="COCO instances JSON")
    parser.add_argument("--images", type=user_path, required=True, help="image folder")
    parser.add_argument(
        "--no-image-check",
        action="store_true",
        help="check the JSON and that every image file exists, without opening or decoding "
        "the files (fast): unreadable, truncated or resized images go unreported, and `train` "
        "and `eval` still refuse them",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="list every issue (by default the first 10 errors and warnings of each kind and 3 "
        "infos, then a count of the rest)",
    )
    parser.add_argument(
        "--output",
        type=output_file,
        help="also write the report as JSON here: every issue (severity, code, message, "
        "image_id, annotation_id, file), its counts and the summary; written whether or not "
        "errors are found (a file there is replaced, with a warning)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sparsercnn.data.dataset_report import validate_coco
    from sparsercnn.data.policy import ImageCheck

    image_check: ImageCheck = "exists" if args.no_image_check else "decode"
    if args.output is not None:
        inputs = {"--json": args.json, "--images": args.images}
        check_output_path(args.output, "--output", inputs=inputs)
        warn_replacing(args.output, "--output")
    with naming_input_flags({"--images": args.images}, annotation_files={"--json": args.json}):
        report = validate_coco(args.json, args.images, image_check=image_check)
    print(report.format(max_per_code=None) if args.all else report.format())
    if args.output is not None:
        report.write_json(args.output)
    return 2 if report.errors else 0
