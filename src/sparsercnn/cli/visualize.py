"""``sparsercnn visualize``: the refinement figure of an image (proposals, stages, trajectories)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sparsercnn.cli.common import (
    add_device_argument,
    add_model_argument,
    check_output_path,
    fraction,
    int_at_least,
    output_file,
    resolve_device,
    user_path,
    warn_replacing,
)
from sparsercnn.visualization.panel_size import MAX_PANEL_SIDE, MIN_PANEL_SIDE


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "visualize",
        help="draw the learned proposals and chosen stages' boxes on an image",
        description="One PNG, panels side by side: all N learned proposal boxes, the detections "
        "of the chosen stages above the score threshold, and the trajectory of each final "
        "detection's box through the stages (centres joined, coloured by class).",
    )
    add_model_argument(parser)
    parser.add_argument("image", type=user_path, metavar="IMAGE", help="the image to draw on")
    parser.add_argument(
        "--stages",
        type=int_at_least(1),
        nargs="+",
        help="1-based stages to show, each once (default 1 3 6 for six stages, else first, "
        "middle, last)",
    )
    parser.add_argument(
        "--score-threshold",
        type=fraction,
        default=0.3,
        help="least score of a drawn stage detection and trajectory (default %(default)s)",
    )
    parser.add_argument(
        "--output",
        type=output_file,
        default=Path("stages.png"),
        help="image to write, in the format its suffix names (.png, .jpg, ...; default "
        "%(default)s; a file there is replaced, with a warning)",
    )
    parser.add_argument(
        "--no-trajectories", action="store_true", help="leave out the trajectory panel"
    )
    parser.add_argument(
        "--max-panel-side",
        type=int_at_least(32),
        default=MAX_PANEL_SIDE,
        help="longest side of each panel in pixels: larger images are scaled down to it, those "
        f"under {MIN_PANEL_SIDE} pixels enlarged to {MIN_PANEL_SIDE} or to it "
        "(default %(default)s)",
    )
    add_device_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sparsercnn.diagnostics.stage_boxes import write_stage_figure
    from sparsercnn.visualization.drawing_file import drawing_format

    check_image_argument(args.image)
    check_output_path(args.output, "--output", inputs={"IMAGE": args.image, "--model": args.model})
    drawing_format(args.output, flag="--output")  # an unknown suffix fails before the model runs
    path = write_stage_figure(
        args.model,
        args.image,
        args.output,
        stages=args.stages,
        score_threshold=args.score_threshold,
        trajectories=not args.no_trajectories,
        device=resolve_device(args.device),
        max_panel_side=args.max_panel_side,
        # Once the model file and --stages are accepted: a refused command replaces nothing.
        on_accepted=lambda: warn_replacing(args.output, "--output"),
    )
    print(f"stage figure written to {path}")
    return 0


def check_image_argument(image: Path) -> None:
    """Refuse an IMAGE that is missing, a folder or no readable image, before the model loads.

    Raises:
        FileNotFoundError, IsADirectoryError, ValueError: naming IMAGE and what to do.
    """
    from sparsercnn.data.image_io import ImageReadError, load_image

    if image.is_dir():
        raise IsADirectoryError(
            f"IMAGE {image} is a folder; give one image (`sparsercnn predict FOLDER "
            "--save-images DIR` draws a folder's detections)"
        )
    if not image.exists():
        raise FileNotFoundError(f"IMAGE {image} was not found: check the path")
    try:
        load_image(image).close()  # in full: a truncated file fails here, not after the model
    except ImageReadError as error:
        raise ValueError(f"IMAGE {image}: {error}; give a readable image file") from None
