"""Arguments and steps shared by several subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sparsercnn.config import Config
from sparsercnn.presets import PRESETS, get_preset


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default=None,
        help="cpu, cuda or cuda:N (default: cuda when available, else cpu)",
    )


def resolve_device(name: str | None) -> torch.device:
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
