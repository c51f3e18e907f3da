"""``sparsercnn convert``: turn a published checkpoint into our model file (or backbone file)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sparsercnn.cli.common import (
    check_output_path,
    checkpoint_source,
    output_file,
    refuse_overwriting,
    warn_replacing,
)
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
    parser.add_argument(
        "src", type=checkpoint_source, metavar="SRC", help="checkpoint path, URL or published name"
    )
    parser.add_argument(
        "--output",
        type=output_file,
        required=True,
        help="the .safetensors to write (a file there is replaced, with a warning, once the "
        "conversion succeeds)",
    )
    parser.add_argument(
        "--from",
        dest="layout",
        choices=SOURCE_LAYOUTS,
        help="the checkpoint's key layout (default: detected from the key names)",
    )
    parser.add_argument("--sha256", help="expected SHA-256 of SRC (or its first 8+ hex digits)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sparsercnn.engine.model_init import naming_option
    from sparsercnn.weights.convert import save_converted
    from sparsercnn.weights.download import fetch, local_checkpoint

    # A missing or unusable SRC fails before --output is looked at.
    with naming_option("SRC"):
        local_checkpoint(args.src)
    check_output_path(args.output, "--output", inputs={"SRC": args.src})
    check_output_suffix(args.output)
    source = fetch(args.src, sha256=args.sha256)
    # SRC as a file:// URL or a published name is only known as a file now.
    refuse_overwriting(args.output, "--output", {"SRC": source.path})
    warn_replacing(args.output, "--output")
    output = save_converted(source, args.output, args.layout)
    print(f"wrote {output}")
    return 0


def check_output_suffix(output: Path) -> None:
    """Refuse an ``--output`` whose name says another format: what is written is always a
    safetensors file, which a ``.pth`` or ``.onnx`` name would misrepresent."""
    if output.suffix.lower() != ".safetensors":
        raise ValueError(
            f"--output {output}: convert writes a safetensors file; give it a name ending in "
            f".safetensors (e.g. {output.with_suffix('.safetensors').name})"
        )
