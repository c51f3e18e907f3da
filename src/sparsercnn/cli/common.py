"""Arguments and steps shared by several subcommands.

Only light modules are imported here and at the top of every subcommand module, so that
``sparsercnn --help`` starts quickly; each handler imports the library when it runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparsercnn.config import Config
from sparsercnn.presets import PRESETS, get_preset

if TYPE_CHECKING:
    import torch


class _ModelFileAction(argparse.Action):
    """Stores ``--model PATH``; ``--checkpoint PATH`` is accepted with a note that it is renamed."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        if option_string == "--checkpoint":
            print(
                "note: --checkpoint is now --model (the old name is accepted for one release)",
                file=sys.stderr,
            )
        setattr(namespace, self.dest, values)


def add_model_argument(
    parser: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup, *, required: bool = True
) -> None:
    """``--model PATH``: a model file (``--checkpoint`` is its former name, still accepted)."""
    parser.add_argument(
        "--model",
        "--checkpoint",
        dest="model",
        type=Path,
        required=required,
        action=_ModelFileAction,
        metavar="PATH",
        help="model file (.safetensors, from `sparsercnn train` or `convert`)",
    )


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default=None,
        help="cpu, cuda or cuda:N (default: cuda when available, else cpu)",
    )


def add_model_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--json``, ``--images``, ``--batch-size``, ``--workers``, ``--device``:
    a model file run over a COCO-format dataset."""
    add_model_argument(parser)
    parser.add_argument("--json", type=Path, required=True, help="COCO instances JSON")
    parser.add_argument("--images", type=Path, required=True, help="image folder")
    add_batch_arguments(parser, default_batch_size=None)
    parser.add_argument("--workers", type=int, default=2, help="data-loading processes")
    add_device_argument(parser)


def add_batch_arguments(parser: argparse.ArgumentParser, *, default_batch_size: int | None) -> None:
    """``--batch-size`` and ``--padded-batches``: how inference batches images.

    ``default_batch_size=None`` takes the model's ``input.test_batch_size``, the batch size of
    its evaluations during training, whose detections it then reproduces bit for bit.
    """
    default = (
        "the model's input.test_batch_size, as in training-time evaluation"
        if default_batch_size is None
        else str(default_batch_size)
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=default_batch_size,
        help=f"most images per forward pass (default: {default}); only images of the same "
        "padded size share one, so other batch sizes change detections at float noise only",
    )
    parser.add_argument(
        "--padded-batches",
        action="store_true",
        help="batch images of different sizes, zero-padded to the largest, as the official code "
        "does (faster on mixed sizes, but an image's detections then depend on its batch)",
    )


def resolve_device(name: str | None) -> torch.device:
    """``--device`` as a torch device (default: CUDA when available, else the CPU)."""
    import torch

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name} asked for CUDA, but no CUDA device is available")
    return device


def add_config_arguments(parser: argparse.ArgumentParser, default_preset: str | None) -> None:
    parser.add_argument(
        "--preset",
        default=default_preset,
        required=default_preset is None,
        choices=sorted(PRESETS),
        help="named configuration to start from",
    )
    parser.add_argument(
        "--config", type=Path, help="a config.json to start from instead of a preset"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override config values, e.g. --set model.num_proposals=300 train.max_iter=5000",
    )


def resolve_config(args: argparse.Namespace) -> Config:
    cfg = Config.load(args.config) if args.config else get_preset(args.preset)
    return cfg.apply_overrides(list(args.overrides))
