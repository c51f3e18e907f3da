"""ResNet backbone (spec 2.1): the image goes in, feature maps C2..C5 (strides 4-32) come out.

The architecture is torchvision's ("pytorch" style: stride 2 in the 3x3 conv of a bottleneck)
and every parameter and buffer name equals torchvision's ``resnet*`` state-dict keys, so an
ImageNet checkpoint loads after dropping its ``fc.*`` entries. Three normalisation variants
cover the two reference recipes and training from scratch; :class:`~sparsercnn.model.fpn.FPN`
consumes the output.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sparsercnn.model.frozen_batch_norm import FrozenBatchNorm2d
from sparsercnn.model.winograd import conv2d

NORM_TYPES = ("frozen_bn", "bn_eval", "bn")
# Channels of the stem and of layer1's convs in the standard (torchvision) ResNets.
STANDARD_WIDTH = 64
# Stem plus the four stages; ``freeze_at=k`` freezes the first ``k`` of them.
NUM_FREEZABLE_PARTS = 5
# Below this many input channels a strided projection runs as subsample + stride-1 conv
# (:func:`shortcut`). The widest channel block among oneDNN's weight-gradient kernels that take
# a strided 1x1 convolution through the "rtus" workspace (src/cpu/x64/jit_uni_1x1_conv_utils.hpp,
# oneDNN 3.12, which torch 2.13 bundles; issue 6035 still open): 16 for fp32 AVX-512
# (jit_avx512_common_1x1_convolution, OIhw16i16o) and bf16 AVX-512 (jit_avx512_core_bf16_1x1_*,
# simd_w 16), 8 for fp32 AVX2 (jit_avx2_1x1_convolution). AMX (bf16, f16) weight gradients run
# as brgconv_bwd_w / jit_avx512_core_amx_convolution_bwd_weights, which transpose the source
# instead: no rtus, so no wider block.
ONEDNN_SAFE_PROJECTION_CHANNELS = 16


def make_norm(norm: str, num_features: int) -> nn.Module:
    """Build the normalisation layer for ``norm`` (one of :data:`NORM_TYPES`).

    ``"bn"`` and ``"bn_eval"`` are both plain :class:`torch.nn.BatchNorm2d`; they differ only in
    :meth:`ResNet.train`, which keeps the ``"bn_eval"`` layers in eval mode.
    """
    if norm == "frozen_bn":
        return FrozenBatchNorm2d(num_features)
    if norm in ("bn", "bn_eval"):
        return nn.BatchNorm2d(num_features)
    raise ValueError(f"unknown norm {norm!r}; valid values are {', '.join(NORM_TYPES)}")


def _projection(in_dim: int, out_dim: int, stride: int, norm: str) -> nn.Sequential | None:
    """1x1 strided conv + norm shortcut when the residual changes shape, else ``None``.

    Indices 0 and 1 of the Sequential give torchvision's ``downsample.0`` / ``downsample.1`` keys.
    """
    if stride == 1 and in_dim == out_dim:
        return None
    return nn.Sequential(
        nn.Conv2d(in_dim, out_dim, kernel_size=1, stride=stride, bias=False),
        make_norm(norm, out_dim),
    )


def frozen_affine(norm: nn.Module) -> tuple[Tensor, Tensor] | None:
    """``(scale, shift)`` with ``norm(x) == x * scale + shift`` per channel, for a norm whose
    statistics are fixed (FrozenBN, or BatchNorm in eval mode); ``None`` for a training-mode
    BatchNorm, whose output depends on the batch."""
    if isinstance(norm, FrozenBatchNorm2d):
        running_mean, running_var, eps = norm.running_mean, norm.running_var, norm.eps
    elif isinstance(norm, nn.BatchNorm2d) and not norm.training:
        assert norm.running_mean is not None and norm.running_var is not None
        running_mean, running_var, eps = norm.running_mean, norm.running_var, norm.eps
    else:
        return None
    scale = norm.weight * torch.rsqrt(running_var + eps)
    return scale, norm.bias - running_mean * scale


def conv_norm(conv: nn.Conv2d, norm: nn.Module, x: Tensor) -> Tensor:
    """``norm(conv(x))`` for a bias-free conv; a fixed-statistics norm is folded into the
    convolution (weight ``w * scale``, bias ``shift``), which saves two passes over the
    activation. Same arithmetic up to rounding; gradients reach the conv weight and the norm's
    affine parameters as before. The folded convolution runs through
    :func:`~sparsercnn.model.winograd.conv2d` (Winograd where the caller opted in)."""
    affine = frozen_affine(norm)
    if affine is None:
        return norm(conv(x))
    scale, shift = affine
    return conv2d(x, conv.weight * scale.reshape(-1, 1, 1, 1), shift, conv)


def shortcut(downsample: nn.Sequential | None, x: Tensor) -> Tensor:
    """The residual branch: identity, or the projection ``downsample = (conv, norm)``.

    A strided projection with fewer than :data:`ONEDNN_SAFE_PROJECTION_CHANNELS` input channels
    (``backbone_width`` under 16) subsamples its input and runs at stride 1: the same products
    and sums. oneDNN's weight gradient of a channels-last 1x1 strided convolution with fewer
    input channels than its channel block (16 with AVX-512, 8 with AVX2) writes past its
    workspace (oneDNN issue 6035): with two threads, torch 2.13 aborted or segfaulted in fp32
    (batch 32) and bf16 (odd batches); hangs and wrong gradients are reported too. Its
    stride-1 kernel has no such workspace.
    """
    if downsample is None:
        return x
    conv, norm = downsample[0], downsample[1]
    assert isinstance(conv, nn.Conv2d)
    if conv.in_channels < ONEDNN_SAFE_PROJECTION_CHANNELS and conv.stride != (1, 1):
        subsampled = x[:, :, :: conv.stride[0], :: conv.stride[1]]
        return norm(F.conv2d(subsampled, conv.weight))
    return conv_norm(conv, norm, x)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (ResNet-18/34).

    Args:
        in_dim: input channels.
        mid_dim: channels of both convs; the output has ``mid_dim * expansion`` channels.
        stride: stride of the first conv (2 in block 0 of stages 2-4).
        norm: one of :data:`NORM_TYPES`.
    """

    expansion = 1

    def __init__(self, in_dim: int, mid_dim: int, stride: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_dim, mid_dim, 3, stride=stride, padding=1, bias=False)
        self.bn1 = make_norm(norm, mid_dim)
        self.conv2 = nn.Conv2d(mid_dim, mid_dim, 3, padding=1, bias=False)
        self.bn2 = make_norm(norm, mid_dim)
        self.downsample = _projection(in_dim, mid_dim, stride, norm)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_dim, H, W)`` -> ``(B, mid_dim, ceil(H / stride), ceil(W / stride))``."""
        identity = shortcut(self.downsample, x)
        out = F.relu(conv_norm(self.conv1, self.bn1, x), inplace=True)
        out = conv_norm(self.conv2, self.bn2, out)
        return F.relu(out.add_(identity), inplace=True)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (carries the stride) -> 1x1 expand, with a residual (ResNet-50/101).

    Args:
        in_dim: input channels.
        mid_dim: channels of the 1x1 reduce and the 3x3 conv; the output has
            ``mid_dim * expansion`` channels.
        stride: stride of the 3x3 conv ("pytorch" style, spec 2.1).
        norm: one of :data:`NORM_TYPES`.
    """

    expansion = 4

    def __init__(self, in_dim: int, mid_dim: int, stride: int, norm: str) -> None:
        super().__init__()
        out_dim = mid_dim * self.expansion
        self.conv1 = nn.Conv2d(in_dim, mid_dim, 1, bias=False)
        self.bn1 = make_norm(norm, mid_dim)
        self.conv2 = nn.Conv2d(mid_dim, mid_dim, 3, stride=stride, padding=1, bias=False)
        self.bn2 = make_norm(norm, mid_dim)
        self.conv3 = nn.Conv2d(mid_dim, out_dim, 1, bias=False)
        self.bn3 = make_norm(norm, out_dim)
        self.downsample = _projection(in_dim, out_dim, stride, norm)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_dim, H, W)`` -> ``(B, 4 * mid_dim, ceil(H / stride), ceil(W / stride))``."""
        identity = shortcut(self.downsample, x)
        out = F.relu(conv_norm(self.conv1, self.bn1, x), inplace=True)
        out = F.relu(conv_norm(self.conv2, self.bn2, out), inplace=True)
        out = conv_norm(self.conv3, self.bn3, out)
        # In place: the norm's output is not needed by its backward, and a fresh buffer of the
        # largest activation costs a page fault per 4 KiB whenever the heap has to grow.
        return F.relu(out.add_(identity), inplace=True)


# depth -> (block type, number of blocks in layer1..layer4)
ARCHITECTURES: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


class ResNet(nn.Module):
    """ResNet feature extractor without the classifier (no avgpool/fc).

    Args:
        depth: 18, 34, 50 or 101.
        norm: ``"frozen_bn"`` (official: statistics and affine are fixed buffers),
            ``"bn_eval"`` (mmdetection ``norm_eval=True``: statistics fixed, affine trainable)
            or ``"bn"`` (ordinary training-mode BatchNorm, for training from scratch).
        freeze_at: how many of (stem, layer1, layer2, layer3, layer4) are frozen, 0-5. Frozen
            parts have ``requires_grad=False`` and their BatchNorm layers always run in eval
            mode. The default 2 (stem + layer1) is detectron2 ``FREEZE_AT=2`` = mmdetection
            ``frozen_stages=1``.
        width: channels of the stem and of layer1's convs; each later stage doubles them. 64 is
            the standard ResNet, the only width published weights exist for; narrower
            networks (32: a quarter of the FLOPs) are for training from scratch on a CPU.

    Attributes:
        out_channels: channels of C2..C5, ``[64, 128, 256, 512]`` for depths 18/34,
            ``[256, 512, 1024, 2048]`` for 50/101 (at width 64; proportional otherwise).
    """

    def __init__(
        self, depth: int, norm: str = "frozen_bn", freeze_at: int = 2, width: int = STANDARD_WIDTH
    ) -> None:
        super().__init__()
        if depth not in ARCHITECTURES:
            raise ValueError(
                f"unsupported ResNet depth {depth}; choose one of {sorted(ARCHITECTURES)}"
            )
        if norm not in NORM_TYPES:
            raise ValueError(f"unknown norm {norm!r}; valid values are {', '.join(NORM_TYPES)}")
        if not 0 <= freeze_at <= NUM_FREEZABLE_PARTS:
            raise ValueError(
                f"freeze_at must be in 0..{NUM_FREEZABLE_PARTS} (0 = nothing frozen, 1 = stem, "
                f"2 = stem + layer1, ..., 5 = everything), got {freeze_at}"
            )
        if width < 1:
            raise ValueError(f"ResNet width must be >= 1, got {width}")
        self.depth = depth
        self.norm = norm
        self.freeze_at = freeze_at
        self.width = width

        block, num_blocks = ARCHITECTURES[depth]
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = make_norm(norm, width)
        stages = []
        in_dim = width
        for index, count in enumerate(num_blocks):
            mid_dim = width * 2**index
            # layer1 follows the stride-2 max-pool, so only layers 2-4 downsample.
            first_stride = 1 if index == 0 else 2
            blocks = []
            for i in range(count):
                blocks.append(block(in_dim, mid_dim, first_stride if i == 0 else 1, norm))
                in_dim = mid_dim * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels: list[int] = [width * 2**k * block.expansion for k in range(4)]

        self._reset_parameters()
        for part in self._frozen_parts():
            part.requires_grad_(False)
        # Put the BatchNorm layers in the mode the norm/freeze settings ask for from the start.
        self.train()

    def _reset_parameters(self) -> None:
        """torchvision's from-scratch init: He-normal (fan_out) convs, identity norms."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            # FrozenBatchNorm2d starts as the identity already (weight 1, bias 0).

    def _frozen_parts(self) -> list[nn.Module]:
        """The first ``freeze_at`` of (stem conv1, stem bn1 | layer1 | ... | layer4)."""
        parts: list[list[nn.Module]] = [
            [self.conv1, self.bn1],
            [self.layer1],
            [self.layer2],
            [self.layer3],
            [self.layer4],
        ]
        return [module for part in parts[: self.freeze_at] for module in part]

    def train(self, mode: bool = True) -> ResNet:
        """Set train/eval mode, but keep frozen statistics frozen.

        BatchNorm layers inside frozen parts, and every BatchNorm layer with ``norm="bn_eval"``,
        stay in eval mode so their running statistics are neither used for normalisation with
        batch statistics nor updated.
        """
        super().train(mode)
        if mode:
            roots = [self] if self.norm == "bn_eval" else self._frozen_parts()
            for root in roots:
                for module in root.modules():
                    if isinstance(module, nn.BatchNorm2d):
                        module.eval()
        return self

    def forward(self, x: Tensor) -> list[Tensor]:
        """Extract C2..C5.

        Args:
            x: ``(B, 3, H, W)`` normalised RGB images (spec 1.1), any memory format.

        Returns:
            ``[C2, C3, C4, C5]`` with ``out_channels[k]`` channels and spatial size
            ``ceil(H / s) x ceil(W / s)`` for strides ``s = 4, 8, 16, 32``.
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"ResNet expects a (B, 3, H, W) RGB batch, got shape {tuple(x.shape)}")
        x = F.relu(conv_norm(self.conv1, self.bn1, x), inplace=True)
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        features = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            features.append(x)
        return features
