"""int8 backbone and FPN on x86 CPUs: oneDNN's integer convolutions, calibrated on user images.

An opt-in, approximate mode for inference (``precision="int8"``). Every convolution of the
ResNet and the FPN runs as oneDNN's int8 convolution (``torch.ops.onednn.qconv2d_pointwise``,
the kernel PyTorch's x86 quantization lowers to; VNNI or AMX tiles where the CPU has them):

- weights int8, symmetric, per output channel, with the frozen norm folded in first;
- activations uint8 per tensor, at scales fixed by a calibration (the range each activation
  took on a few images, :func:`calibrate`), stored in the model file;
- activations stay uint8 from one convolution to the next: ReLU and the residual sum are the
  convolution's fused post-ops (the shortcut's buffer is the sum's accumulator), and the FPN's
  top-down sum is the lateral convolution's post-op on the upsampled uint8 coarser level. The
  image is quantized once after the stem's max-pool; the FPN's output convolutions write
  float32 P2-P5, which the refinement head reads as usual.

The stem's convolution (3 input channels, which int8 kernels do not speed up) runs in float
before the single quantization (under the caller's autocast, if any). Measured on a 2-core AMX
CPU (machine C), R50-FPN at 800x1216, interleaved with the official code
(``benchmarks/bench_speed.py``): backbone and FPN in 0.26-0.38 s against 0.52-0.53 s in bf16
autocast, the whole model 6.9x the official code's speed. Accuracy is measured, not assumed:
``bench_speed.py --check`` reports the AP of int8 beside fp32 on trained models (within 0.12
point on four).
"""

from __future__ import annotations

import functools
import json
import math
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sparsercnn.model.backbone import BasicBlock, Bottleneck, ResNet, frozen_affine
from sparsercnn.model.fpn import FPN

_ACTIVE: ContextVar[bool] = ContextVar("int8_features", default=False)
# (scale, zero point) of a uint8 tensor q: its value is (q - zero_point) * scale.
Quantization = tuple[float, int]
UINT8_LEVELS = 255
# Input shapes whose packed weights each convolution keeps (Int8Convolution.packed).
PACKED_SHAPES = 4
INT8_WEIGHT_LEVELS = 127
UNCALIBRATED = (
    "precision int8 needs a calibrated model file: make one with `sparsercnn export --int8 "
    "--calibration DIR --output model_int8.safetensors` and run that file"
)


@functools.cache
def int8_available() -> bool:
    """Whether this PyTorch build has oneDNN's int8 convolution and runs it on this CPU."""
    if not hasattr(torch.ops.onednn, "qconv2d_pointwise"):
        return False
    try:
        conv = Int8Convolution(torch.ones(1, 1, 1, 1), torch.zeros(1), (1, 1), (0, 0))
        conv.prepare((1.0, 0), (1.0, 0))
        conv(torch.ones(1, 1, 2, 2, dtype=torch.uint8), relu=False)
    except (RuntimeError, NotImplementedError):
        return False
    return True


@contextmanager
def int8_features() -> Iterator[None]:
    """Inside the block, models with an int8 calibration compute their features in int8
    (:meth:`~sparsercnn.model.detector.SparseRCNN.forward`)."""
    token = _ACTIVE.set(True)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def int8_features_active() -> bool:
    """Whether the caller is inside :func:`int8_features`."""
    return _ACTIVE.get()


@dataclass
class ActivationRange:
    """The smallest and largest value an activation took over the calibration images (always
    containing 0, which uint8 must represent exactly for zero padding and ReLU)."""

    low: float = 0.0
    high: float = 0.0

    def observe(self, x: Tensor) -> None:
        low, high = torch.aminmax(x.detach())
        self.low = min(self.low, float(low))
        self.high = max(self.high, float(high))

    def quantization(self) -> Quantization:
        """The uint8 ``(scale, zero_point)`` that covers the range."""
        span = max(self.high - self.low, 1e-8)
        scale = span / UINT8_LEVELS
        zero_point = min(max(round(-self.low / scale), 0), UINT8_LEVELS)
        return scale, zero_point


@dataclass
class Int8Calibration:
    """Activation ranges of a model's int8 graph, by name (``stem``, ``layer1.0.conv1``,
    ``layer1.0`` for a block's output, ``layer1.0.downsample``, ``fpn.merged2``..5), and the
    number of images they were taken on. Stored in the model file as JSON."""

    ranges: dict[str, ActivationRange] = field(default_factory=dict)
    num_images: int = 0

    def range(self, name: str) -> ActivationRange:
        return self.ranges.setdefault(name, ActivationRange())

    def quantization(self, name: str) -> Quantization:
        if name not in self.ranges:
            raise ValueError(
                f"int8 calibration has no range for {name!r}: it was made for another "
                "architecture; calibrate this model again"
            )
        return self.ranges[name].quantization()

    def to_json(self) -> str:
        ranges = {name: [r.low, r.high] for name, r in sorted(self.ranges.items())}
        return json.dumps({"num_images": self.num_images, "ranges": ranges}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Int8Calibration:
        """Raises: ValueError: ``text`` is not a calibration record."""
        try:
            record = json.loads(text)
            ranges = {
                str(name): ActivationRange(float(low), float(high))
                for name, (low, high) in record["ranges"].items()
            }
            return cls(ranges, int(record["num_images"]))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"damaged int8 calibration record ({error})") from None


def quantize(x: Tensor, quantization: Quantization) -> Tensor:
    """float -> uint8 at ``quantization`` (round to nearest, saturate), same memory format."""
    scale, zero_point = quantization
    q = torch.empty_like(x, dtype=torch.float32)
    torch.mul(x, 1.0 / scale, out=q)
    return q.add_(zero_point).round_().clamp_(0, UINT8_LEVELS).to(torch.uint8)


class Int8Convolution:
    """One convolution with int8 weights (per output channel) on uint8 activations.

    Args:
        weight: ``(C_out, C_in, kh, kw)`` float, any norm already folded in.
        bias: ``(C_out,)`` float.
        stride, padding: the convolution's geometry.
    """

    def __init__(
        self, weight: Tensor, bias: Tensor, stride: tuple[int, int], padding: tuple[int, int]
    ) -> None:
        # The float weight serves calibration; prepare() drops it (R50: 100 MB).
        self.weight: Tensor | None = weight.detach().float()
        self.bias = bias.detach().float()
        self.stride = list(stride)
        self.padding = list(padding)
        self.weight_scale = (
            self.weight.abs().amax(dim=(1, 2, 3)).clamp(min=1e-12) / INT8_WEIGHT_LEVELS
        )
        self.weight_zero_point = torch.zeros(weight.shape[0], dtype=torch.long)
        self.input: Quantization = (1.0, 0)
        self.output: Quantization = (1.0, 0)
        self.quantized: Tensor | None = None  # int8 weight, set by prepare()
        # Packed weights by input shape, the most recently used last (see packed()).
        self._packed: OrderedDict[tuple[int, ...], Tensor] = OrderedDict()

    @classmethod
    def from_layers(cls, conv: nn.Conv2d, norm: nn.Module | None = None) -> Int8Convolution:
        """``norm(conv(x))`` as one convolution; ``norm`` must have fixed statistics."""
        weight = conv.weight
        bias = conv.bias if conv.bias is not None else weight.new_zeros(weight.shape[0])
        if norm is not None:
            affine = frozen_affine(norm)
            if affine is None:
                raise ValueError("int8 features need fixed norm statistics: call model.eval()")
            scale, shift = affine
            weight, bias = weight * scale.reshape(-1, 1, 1, 1), bias * scale + shift
        padding = conv.padding
        assert not isinstance(padding, str)
        return cls(weight, bias, conv.stride, padding)  # type: ignore[arg-type]

    def reference(self, x: Tensor) -> Tensor:
        """The float convolution this one approximates (calibration runs it).

        Raises:
            RuntimeError: after :meth:`prepare`, which drops the float weight.
        """
        if self.weight is None:
            raise RuntimeError("a prepared int8 convolution has no float weight left")
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def prepare(self, input: Quantization, output: Quantization) -> None:
        """Quantize the weights for inputs at ``input`` (packed for each input shape at its
        first use, :meth:`packed`); outputs come at ``output``. The float weight is dropped
        (once only: a convolution is prepared once)."""
        if self.weight is None:
            raise RuntimeError("this int8 convolution was prepared already")
        self.input, self.output = input, output
        weight = torch.round(self.weight / self.weight_scale.reshape(-1, 1, 1, 1))
        self.quantized = weight.clamp(-INT8_WEIGHT_LEVELS, INT8_WEIGHT_LEVELS).to(torch.int8)
        self.weight = None

    def packed(self, x: Tensor) -> Tensor:
        """The weight in oneDNN's layout for inputs of ``x``'s shape, packed on first use.

        oneDNN picks the weight layout of its fastest kernel from the input's shape; a weight
        packed without the shape is reordered into that layout at every call, which on AVX-512
        VNNI (machine A) cost R50's 1x1 convolutions more than their arithmetic. The last
        :data:`PACKED_SHAPES` shapes are kept (evaluation sorts images by size, so a run meets
        each shape in one stretch).
        """
        if self.quantized is None:
            raise RuntimeError("this int8 convolution is not prepared: call prepare() first")
        shape = tuple(x.shape)
        packed = self._packed.get(shape)
        if packed is None:
            packed = torch.ops.onednn.qconv_prepack(
                self.quantized, self.weight_scale, *self.input, self.stride, self.padding,
                [1, 1], 1, list(shape),
            )  # fmt: skip
            self._packed[shape] = packed
            if len(self._packed) > PACKED_SHAPES:
                self._packed.popitem(last=False)
        else:
            self._packed.move_to_end(shape)
        return packed

    def __call__(self, x: Tensor, relu: bool, dtype: torch.dtype | None = None) -> Tensor:
        """``(B, C_in, H, W)`` uint8 -> ``(B, C_out, H', W')``: uint8 at :attr:`output`, or
        float of ``dtype`` (no quantization) when given."""
        scale, zero_point = self.output if dtype is None else (1.0, 0)
        return torch.ops.onednn.qconv2d_pointwise(
            x, *self.input, self.packed(x), self.weight_scale, self.weight_zero_point, self.bias,
            self.stride, self.padding, [1, 1], 1, scale, zero_point, dtype,
            "relu" if relu else "none", [], "",
        )  # fmt: skip

    def add_into(self, x: Tensor, accumulator: Tensor, at: Quantization, relu: bool) -> Tensor:
        """``conv(x) + accumulator`` (then ReLU if asked), uint8 at :attr:`output`;
        ``accumulator`` (uint8 at ``at``, the output's shape) is overwritten."""
        return torch.ops.onednn.qconv2d_pointwise.binary(
            x, *self.input, self.packed(x), self.weight_scale, self.weight_zero_point, accumulator,
            self.bias, self.stride, self.padding, [1, 1], 1, *self.output, None, *at, "sum",
            1.0, "relu" if relu else "none", [], "",
        )  # fmt: skip


class _ResidualBlock:
    """A ResNet block: convolutions with ReLU, the last one summed with the shortcut, ReLU."""

    def __init__(self, block: BasicBlock | Bottleneck, name: str) -> None:
        pairs = [(block.conv1, block.bn1), (block.conv2, block.bn2)]
        if isinstance(block, Bottleneck):
            pairs.append((block.conv3, block.bn3))
        self.name = name
        self.convs = [Int8Convolution.from_layers(conv, norm) for conv, norm in pairs]
        self.downsample = (
            None
            if block.downsample is None
            else Int8Convolution.from_layers(block.downsample[0], block.downsample[1])  # type: ignore[arg-type]
        )

    def names(self) -> list[str]:
        """Calibration names of the outputs of the convolutions but the last, then the block's."""
        return [f"{self.name}.conv{i + 1}" for i in range(len(self.convs) - 1)] + [self.name]

    def reference(self, x: Tensor, calibration: Int8Calibration) -> Tensor:
        identity = x if self.downsample is None else self.downsample.reference(x)
        if self.downsample is not None:
            calibration.range(f"{self.name}.downsample").observe(identity)
        *inner, last = self.convs
        for conv, name in zip(inner, self.names(), strict=False):
            x = F.relu(conv.reference(x))
            calibration.range(name).observe(x)
        x = F.relu(last.reference(x) + identity)
        calibration.range(self.name).observe(x)
        return x

    def prepare(self, input: Quantization, calibration: Int8Calibration) -> Quantization:
        """Pack every convolution for inputs at ``input``; returns the output's quantization."""
        outputs = [calibration.quantization(name) for name in self.names()]
        for conv, source, output in zip(self.convs, [input, *outputs], outputs, strict=False):
            conv.prepare(source, output)
        if self.downsample is not None:
            self.downsample.prepare(input, calibration.quantization(f"{self.name}.downsample"))
        return outputs[-1]

    def __call__(self, x: Tensor) -> Tensor:
        """uint8 in (overwritten where the shortcut is the identity), uint8 out."""
        *inner, last = self.convs
        if self.downsample is None:
            shortcut, at = x, self.convs[0].input
        else:
            shortcut, at = self.downsample(x, relu=False), self.downsample.output
        for conv in inner:
            x = conv(x, relu=True)
        return last.add_into(x, shortcut, at, relu=True)


class Int8Features:
    """A model's backbone and FPN as one int8 graph: normalised images in, P2-P5 float32 out.

    Built from the float modules (their weights are copied, folded and quantized, so later
    changes to the model do not reach it) and an :class:`Int8Calibration` (:func:`calibrate`).

    Args:
        backbone: the model's ResNet, its norms with fixed statistics (eval mode).
        fpn: the model's FPN.
        calibration: activation ranges; None builds an uncalibrated graph that only
            :meth:`observe` can run (a calibrated one keeps no float weights but the stem's).
    """

    def __init__(self, backbone: ResNet, fpn: FPN, calibration: Int8Calibration | None) -> None:
        # Float throughout (never prepared): its input has 3 channels.
        self.stem = Int8Convolution.from_layers(backbone.conv1, backbone.bn1)
        self.blocks = [
            [_ResidualBlock(block, f"layer{i + 1}.{j}") for j, block in enumerate(layer)]  # type: ignore[arg-type]
            for i, layer in enumerate(
                (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4)
            )
        ]
        self.laterals = [Int8Convolution.from_layers(conv) for conv in fpn.lateral_convs]  # type: ignore[arg-type]
        self.outputs = [Int8Convolution.from_layers(conv) for conv in fpn.output_convs]  # type: ignore[arg-type]
        # The quantization of the stem's output, the graph's input; None: uncalibrated.
        self.input: Quantization | None = None
        if calibration is not None:
            self._prepare(calibration)

    def _stem(self, x: Tensor) -> Tensor:
        x = F.relu(self.stem.reference(x), inplace=True)
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)

    def observe(self, x: Tensor, calibration: Int8Calibration) -> list[Tensor]:
        """The float features of ``x`` (``(B, 3, H, W)`` normalised, H and W multiples of 32),
        recording every activation's range into ``calibration``; equal to the float model's
        ``fpn(backbone(x))`` up to rounding."""
        x = self._stem(x)
        calibration.range("stem").observe(x)
        features = []
        for stage in self.blocks:
            for block in stage:
                x = block.reference(x, calibration)
            features.append(x)
        merged = self.laterals[-1].reference(features[-1])
        calibration.range("fpn.merged5").observe(merged)
        pyramid = [self.outputs[-1].reference(merged)]
        for level in range(len(features) - 2, -1, -1):
            merged = self.laterals[level].reference(features[level]) + _upsample(
                merged, features[level]
            )
            calibration.range(f"fpn.merged{level + 2}").observe(merged)
            pyramid.insert(0, self.outputs[level].reference(merged))
        return pyramid

    def _prepare(self, calibration: Int8Calibration) -> None:
        quantization, stage_outputs = calibration.quantization("stem"), []
        self.input = quantization
        for stage in self.blocks:
            for block in stage:
                quantization = block.prepare(quantization, calibration)
            stage_outputs.append(quantization)
        for level, source in enumerate(stage_outputs):
            merged = calibration.quantization(f"fpn.merged{level + 2}")
            self.laterals[level].prepare(source, merged)
            self.outputs[level].prepare(merged, (1.0, 0))

    def __call__(self, x: Tensor) -> list[Tensor]:
        """P2-P5 (float32, channels-last) of ``x``: ``(B, 3, H, W)`` normalised float images,
        H and W multiples of 32 (the model pads to them)."""
        if self.input is None:
            raise RuntimeError("this int8 graph has no calibration; build it with one")
        x = quantize(
            self._stem(x.float()).contiguous(memory_format=torch.channels_last), self.input
        )
        features = []
        for stage in self.blocks:
            for block in stage:
                x = block(x)
            features.append(x)
        merged = self.laterals[-1](features[-1], relu=False)
        pyramid = [self.outputs[-1](merged, relu=False, dtype=torch.float32)]
        for level in range(len(features) - 2, -1, -1):
            upsampled = _upsample(merged, features[level])
            coarser = self.laterals[level + 1].output
            merged = self.laterals[level].add_into(features[level], upsampled, coarser, relu=False)
            pyramid.insert(0, self.outputs[level](merged, relu=False, dtype=torch.float32))
        return pyramid


def _upsample(top: Tensor, lateral: Tensor) -> Tensor:
    """``top`` upsampled (nearest) to ``lateral``'s size, as the float FPN's top-down sum."""
    return F.interpolate(top, size=lateral.shape[-2:], mode="nearest")


def calibrate(
    backbone: ResNet,
    fpn: FPN,
    batches: Iterable[Tensor],
    calibration: Int8Calibration | None = None,
) -> Int8Calibration:
    """Activation ranges of the int8 graph over ``batches`` of normalised, padded images
    ``(B, 3, H, W)`` (as :meth:`SparseRCNN.preprocess` makes them), merged into ``calibration``
    when given.

    Raises:
        ValueError: ``batches`` is empty.
    """
    calibration = calibration or Int8Calibration()
    graph = Int8Features(backbone, fpn, None)
    with torch.no_grad():
        for images in batches:
            graph.observe(images.float(), calibration)
            calibration.num_images += images.shape[0]
    if calibration.num_images == 0:
        raise ValueError("int8 calibration needs at least one image")
    if not all(math.isfinite(r.low) and math.isfinite(r.high) for r in calibration.ranges.values()):
        raise ValueError(
            "int8 calibration saw non-finite activations: the model's weights are broken"
        )
    return calibration
