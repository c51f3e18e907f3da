"""Where Winograd 3x3 convolutions pay on this CPU: direct time over Winograd time per size.

``--precision winograd`` takes the Winograd path (:mod:`sparsercnn.model.winograd`) only for
convolutions with at least ``MIN_CHANNELS`` channels in and out and ``MIN_PIXELS`` input
pixels. This prints, for square 3x3 convolutions (``C -> C`` channels, batch 1, channels-last
input as the model keeps it), the direct convolution's time over the Winograd path's (layout
changes included), and marks with ``*`` the cells the rule sends to Winograd, so the rule can be
checked (or re-derived) on another machine. Run from the repository root:
``python benchmarks/bench_winograd.py [--threads 2] [--repeats 5]``.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from sparsercnn.benchmarking import fastest_seconds, machine_kind
from sparsercnn.cli.common import int_at_least
from sparsercnn.model import winograd

CHANNELS = (32, 64, 128, 256, 512)
SIZES = ((12, 20), (24, 40), (48, 80), (96, 128), (100, 152), (200, 304))
# Skip sizes above R50-FPN's largest 3x3 convolution at 800x1216 (256 channels at 200x304).
MAX_VALUES = 256 * 200 * 304


def speedup(channels: int, size: tuple[int, int], repeats: int) -> float:
    """Direct time over Winograd time for one ``channels -> channels`` 3x3 convolution."""
    conv = nn.Conv2d(channels, channels, 3, padding=1)
    x = torch.randn(1, channels, *size).contiguous(memory_format=torch.channels_last)
    rule = (winograd.MIN_CHANNELS, winograd.MIN_PIXELS)
    with torch.no_grad():
        direct = fastest_seconds(
            lambda: winograd.conv2d(x, conv.weight, conv.bias, conv), repeats, warmup=2
        )
        winograd.MIN_CHANNELS, winograd.MIN_PIXELS = 1, 1  # time the path at every size
        try:
            with winograd.winograd_convolutions():
                fast = fastest_seconds(
                    lambda: winograd.conv2d(x, conv.weight, conv.bias, conv), repeats, warmup=2
                )
        finally:
            winograd.MIN_CHANNELS, winograd.MIN_PIXELS = rule
    return direct / fast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int_at_least(1), default=2)
    parser.add_argument("--repeats", type=int_at_least(1), default=5)
    parser.add_argument("--channels", type=int_at_least(1), nargs="+", default=list(CHANNELS))
    parser.add_argument(
        "--max-pixels", type=int_at_least(1), default=None, help="skip larger sizes"
    )
    args = parser.parse_args()
    if not winograd.winograd_available():
        raise SystemExit("this PyTorch build or CPU has no NNPACK: no Winograd path to time")
    torch.set_num_threads(args.threads)
    sizes = [s for s in SIZES if args.max_pixels is None or s[0] * s[1] <= args.max_pixels]
    print(
        f"{machine_kind()}: direct / Winograd time, 3x3 C -> C, batch 1, {args.threads} threads "
        f"(* = taken by the rule: >= {winograd.MIN_CHANNELS} channels, "
        f">= {winograd.MIN_PIXELS} pixels)"
    )
    print("| C \\ H x W | " + " | ".join(f"{h}x{w}" for h, w in sizes) + " |")
    print("|---" * (len(sizes) + 1) + "|")
    for channels in args.channels:
        cells = []
        for height, width in sizes:
            if channels * height * width > MAX_VALUES:
                cells.append("-")
                continue
            ratio = speedup(channels, (height, width), args.repeats)
            taken = channels >= winograd.MIN_CHANNELS and height * width >= winograd.MIN_PIXELS
            cells.append(f"{ratio:.2f}{'*' if taken else ''}")
        print(f"| {channels} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
