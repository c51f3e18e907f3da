"""What oneDNN's int8 convolutions give on this CPU, and what feeding them costs.

Issue 14's int8 target (6x the official code) is out of reach of the ONNX Runtime int8 graph on
every machine measured so far. On CPUs with AMX tiles, oneDNN's int8 convolution (the kernel
PyTorch's x86 quantization lowers to) runs far above onnxruntime's, but it takes uint8
activations and its output dtype decides how much memory it writes. This times R50-FPN's
convolution shapes at 800x1216 (batch 1, channels-last, as the model keeps them) in fp32, bf16
and int8 (weights int8 per output channel, activations uint8 per tensor) with fp32, bf16 and
uint8 outputs, and the pass that quantizes an fp32 activation to uint8, so that an int8 path
can be designed from this machine's figures (and its gain checked on another). Run from the
repository root: ``python benchmarks/bench_int8_convolution.py [--threads 2] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from sparsercnn.benchmarking import fastest_seconds, machine_kind
from sparsercnn.cli.common import int_at_least


@dataclass(frozen=True)
class Shape:
    """One convolution: ``name``, channels in/out, kernel, stride and input ``(h, w)``."""

    name: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    size: tuple[int, int]

    @property
    def output_size(self) -> tuple[int, int]:
        height, width = self.size
        return (height + self.stride - 1) // self.stride, (width + self.stride - 1) // self.stride

    @property
    def flops(self) -> float:
        """Multiply-adds times two."""
        height, width = self.output_size
        return 2.0 * self.in_channels * self.out_channels * self.kernel**2 * height * width


# R50-FPN at 800x1216: the stem, layer1's and layer3's convolutions, and the FPN's largest.
SHAPES = (
    Shape("stem 7x7/2", 3, 64, 7, 2, (800, 1216)),
    Shape("layer1 1x1 reduce", 256, 64, 1, 1, (200, 304)),
    Shape("layer1 3x3", 64, 64, 3, 1, (200, 304)),
    Shape("layer1 1x1 expand", 64, 256, 1, 1, (200, 304)),
    Shape("layer3 3x3", 256, 256, 3, 1, (50, 76)),
    Shape("FPN P2 output 3x3", 256, 256, 3, 1, (200, 304)),
)
INPUT_SCALE = 1 / 64  # activations in [0, 4): a post-ReLU range


def int8_convolution(shape: Shape, output_dtype: torch.dtype | None) -> Callable[[Tensor], Tensor]:
    """oneDNN's int8 convolution of ``shape`` with random int8 weights: uint8 ``(1, C, h, w)``
    channels-last in, ``output_dtype`` out (None: uint8 at the input's scale)."""
    weight = torch.randn(shape.out_channels, shape.in_channels, shape.kernel, shape.kernel)
    weight_scale = weight.abs().amax(dim=(1, 2, 3)) / 127
    quantized = torch.round(weight / weight_scale.reshape(-1, 1, 1, 1)).to(torch.int8)
    stride, padding = [shape.stride] * 2, [shape.kernel // 2] * 2
    packed = torch.ops.onednn.qconv_prepack(
        quantized, weight_scale, INPUT_SCALE, 0, stride, padding, [1, 1], 1, None
    )
    zero_points = torch.zeros(shape.out_channels, dtype=torch.long)
    bias = torch.zeros(shape.out_channels)
    output_scale = 1.0 if output_dtype is not None else INPUT_SCALE

    def run(x: Tensor) -> Tensor:
        return torch.ops.onednn.qconv2d_pointwise(
            x, INPUT_SCALE, 0, packed, weight_scale, zero_points, bias, stride, padding,
            [1, 1], 1, output_scale, 0, output_dtype, "none", [], "",
        )  # fmt: skip

    return run


def quantize(x: Tensor) -> Tensor:
    """fp32 -> uint8 at :data:`INPUT_SCALE` with PyTorch's public ops (two passes: the
    quantized tensor, then its integer copy, which oneDNN's kernel takes)."""
    return torch.quantize_per_tensor(x, INPUT_SCALE, 0, torch.quint8).int_repr()


def time_shape(shape: Shape, repeats: int) -> dict[str, float]:
    """Seconds of each way to compute ``shape``, and of quantizing its input."""
    x = torch.rand(1, shape.in_channels, *shape.size) * 4
    x = x.contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(
        shape.in_channels, shape.out_channels, shape.kernel, shape.stride, shape.kernel // 2
    ).to(memory_format=torch.channels_last)
    x_bf16 = x.bfloat16()
    conv_bf16 = copy.deepcopy(conv).to(torch.bfloat16)
    x_uint8 = quantize(x)
    ways: dict[str, Callable[[], object]] = {
        "fp32": functools.partial(conv, x),
        "bf16": lambda: conv_bf16(x_bf16),
        "quantize fp32 -> uint8": lambda: quantize(x),
    }
    for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("uint8", None)):
        ways[f"int8, {label} out"] = functools.partial(int8_convolution(shape, dtype), x_uint8)
    with torch.no_grad():
        return {name: fastest_seconds(way, repeats, warmup=2) for name, way in ways.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int_at_least(1), default=2)
    parser.add_argument("--repeats", type=int_at_least(1), default=5)
    parser.add_argument(
        "--scale",
        type=int_at_least(1),
        default=1,
        help="divide every input size by this (quick checks)",
    )
    args = parser.parse_args()
    if not hasattr(torch.ops.onednn, "qconv2d_pointwise"):
        raise SystemExit("this PyTorch build has no oneDNN int8 convolution to time")
    torch.set_num_threads(args.threads)
    # quantize_per_tensor's deprecation notice, once per process, would land in the table.
    warnings.filterwarnings("ignore", message=".*quantize_per_tensor", category=Warning)
    print(f"{machine_kind()}, {args.threads} threads, torch {torch.__version__}")
    print("ms (GFLOP/s); int8: uint8 activations per tensor, int8 weights per output channel")
    columns = None
    for base in SHAPES:
        size = (max(base.size[0] // args.scale, 8), max(base.size[1] // args.scale, 8))
        shape = dataclasses.replace(base, size=size)
        seconds = time_shape(shape, args.repeats)
        if columns is None:
            columns = list(seconds)
            print("| convolution | GFLOP | " + " | ".join(columns) + " |")
            print("|---" * (len(columns) + 2) + "|")
        cells = [
            f"{s * 1e3:.3g}" + ("" if name.startswith("quantize") else f" ({rate:.0f})")
            for name, s in seconds.items()
            for rate in [shape.flops / s / 1e9]
        ]
        print(
            f"| {shape.name} {size[0]}x{size[1]} | {shape.flops / 1e9:.1f} | "
            + " | ".join(cells)
            + " |"
        )


if __name__ == "__main__":
    main()
