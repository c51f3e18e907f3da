"""``sparsercnn convert``: turn a published checkpoint into our model file (or backbone file)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sparsercnn.cli.common import check_output_path
from sparsercnn.weights.published import PUBLISHED_CHECKPOINTS

SOURCE_LAYOUTS = ("official", "mmdet", "torchvision")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert an official/mmdetection checkpoint (or a torchvision ResNet) to safetensors",
        description="Rename the keys of a published checkpoint to ours, infer the architecture "
        "from its tensor shapes, check it strictly and write one .safetensors file with the "
        "config and label map. A torchvision ResNet becomes a backbone file for training. "
        f"SRC is a path, a URL or a published name ({', '.join(PUBLISHED_CHECKPOINTS)}).",
    )
    parser.add_argument("src", metavar="SRC", help="checkpoint path, URL or published name")
    parser.add_argument("--output", type=Path, required=True, help="the .safetensors to write")
    parser.add_argument(
        "--from",
        dest="layout",
        choices=SOURCE_LAYOUTS,
        help="the checkpoint's key layout (default: detected from the key names)",
    )
    parser.add_argument("--sha256", help="expected SHA-256 of SRC (or its first 8+ hex digits)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sparsercnn.weights.convert import save_converted
    from sparsercnn.weights.download import fetch

    check_source(args.src)
    check_output_path(args.output, "--output", inputs={"SRC": args.src})
    output = save_converted(fetch(args.src, sha256=args.sha256), args.output, args.layout)
    print(f"wrote {output}")
    return 0


def check_source(src: str) -> None:
    """Fail early, naming the choices, when SRC is neither a URL, a published name nor a file."""
    if "://" in src or src in PUBLISHED_CHECKPOINTS:
        return
    path = Path(src).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"SRC {src} is a folder; give the checkpoint file in it")
    if not path.exists() and (path.suffix or len(path.parts) > 1):
        raise FileNotFoundError(f"SRC {src} does not exist")
    if not path.exists():
        raise FileNotFoundError(
            f"SRC {src} is not a file, a URL or a published name "
            f"({', '.join(PUBLISHED_CHECKPOINTS)})"
        )
