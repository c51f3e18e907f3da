"""Entry point of the ``sparsercnn`` command: subcommand registry, logging and error reporting."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from sparsercnn import __version__
from sparsercnn.cli import (
    benchmark,
    convert,
    demo,
    diagnose,
    evaluate,
    export,
    predict,
    train,
    validate,
    visualize,
)

COMMANDS = (
    demo,
    train,
    evaluate,
    predict,
    validate,
    convert,
    export,
    benchmark,
    visualize,
    diagnose,
)
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError, ImportError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sparsercnn",
        description="Sparse R-CNN: train, evaluate and run end-to-end object detectors.",
    )
    parser.add_argument("--version", action="version", version=f"sparsercnn {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # Every command runs models on large tensors: reuse their memory instead of re-mapping it.
    from sparsercnn.runtime import retain_freed_memory

    retain_freed_memory()
    try:
        return int(args.handler(args))
    except USER_ERRORS as error:
        if args.debug:
            raise
        print(f"sparsercnn {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sparsercnn {args.command}: interrupted", file=sys.stderr)
        return 130
