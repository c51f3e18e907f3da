"""Feature pyramid network (spec 2.2): backbone maps C2..C5 in, P2..P5 with a common width out.

detectron2-style top-down pathway without the parameter-free P6 (the dynamic head pools only
from P2..P5). The pyramid feeds the RoI feature extraction of every head stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sparsercnn.model.on_demand_level import OnDemandLevel
from sparsercnn.model.winograd import conv2d
from sparsercnn.runtime import is_exporting


class FPN(nn.Module):
    """Lateral 1x1 convs, nearest-neighbour top-down sum, 3x3 output convs.

    Index 0 of ``lateral_convs`` / ``output_convs`` is level 2 (stride 4), as in mmdetection's
    ``lateral_convs.{0..3}`` / ``fpn_convs.{0..3}`` and detectron2's ``fpn_lateral{2..5}`` /
    ``fpn_output{2..5}`` (spec 11.3).

    Args:
        in_channels: channels of C2..C5, e.g. ``ResNet.out_channels``.
        out_dim: channels of every output level (256 in both references).

    Attributes:
        strides: stride of P2..P5 relative to the input image.
    """

    strides: tuple[int, ...] = (4, 8, 16, 32)

    def __init__(self, in_channels: Sequence[int], out_dim: int = 256) -> None:
        super().__init__()
        if len(in_channels) != len(self.strides):
            raise ValueError(
                f"FPN takes {len(self.strides)} input levels (C2..C5), "
                f"got in_channels={list(in_channels)}"
            )
        self.out_dim = out_dim
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, out_dim, 1) for c in in_channels)
        self.output_convs = nn.ModuleList(
            nn.Conv2d(out_dim, out_dim, 3, padding=1) for _ in in_channels
        )
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # detectron2 c2_xavier_fill: kaiming_uniform(a=1) = U(+-sqrt(3 / fan_in)), zero bias.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, a=1)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """Build the pyramid.

        Args:
            features: ``[C2, C3, C4, C5]``, ``Ck`` of shape ``(B, in_channels[k-2], Hk, Wk)``
                with ``Hk ~ H / 2**k`` (any size; odd sizes are handled).

        Returns:
            ``[P2, P3, P4, P5]``, ``Pk`` of shape ``(B, out_dim, Hk, Wk)``.
        """
        return self.pyramid(features)[0]

    def pyramid(
        self, features: list[Tensor], num_on_demand: int = 0
    ) -> tuple[list[Tensor], list[OnDemandLevel]]:
        """The pyramid, with the ``num_on_demand`` finest output convolutions left to compute
        where they are read (:class:`OnDemandLevel`; inference only) where the level is large
        enough for that to pay (:meth:`OnDemandLevel.pays`).

        Returns:
            ``[P2, P3, P4, P5]`` as :meth:`forward`, on-demand levels as zeros of their shape,
            and the :class:`OnDemandLevel` of each of those, finest first.
        """
        if len(features) != len(self.lateral_convs):
            raise ValueError(
                f"FPN expects {len(self.lateral_convs)} feature maps (C2..C5), got {len(features)}"
            )
        merged = self.lateral_convs[-1](features[-1])
        outputs = [self._output_conv(-1, merged)]
        on_demand: list[OnDemandLevel] = []
        for level in range(len(features) - 2, -1, -1):
            merged = add_upsampled(self.lateral_convs[level](features[level]), merged)
            if level < num_on_demand and OnDemandLevel.pays(*merged.shape[-2:]):
                # Kept as is: the finer level's sum writes into its own lateral, not into this.
                conv = cast(nn.Conv2d, self.output_convs[level])
                on_demand.insert(0, OnDemandLevel(level, merged, conv))
                outputs.insert(0, merged)  # replaced by a placeholder below
            else:
                outputs.insert(0, self._output_conv(level, merged))
        for deferred in on_demand:
            outputs[deferred.level] = deferred.placeholder(outputs[-1])
        return outputs, on_demand

    def _output_conv(self, level: int, merged: Tensor) -> Tensor:
        """The 3x3 output convolution of ``level`` (Winograd where the caller opted in)."""
        conv = cast(nn.Conv2d, self.output_convs[level])
        return conv2d(merged, conv.weight, conv.bias, conv)


def add_upsampled(lateral: Tensor, top: Tensor) -> Tensor:
    """``lateral + nearest(top)``, ``top`` upsampled to the size of ``lateral``.

    Args:
        lateral: ``(B, C, H, W)``; overwritten with the sum in eager mode when ``H, W`` are
            exactly twice the size of ``top`` (always the case for inputs padded to /32).
        top: ``(B, C, h, w)``.

    Returns:
        ``(B, C, H, W)``. With ``H, W = 2h, 2w`` this is detectron2's ``scale_factor=2`` sum; other
        sizes (unpadded odd inputs) use the nearest sample at ``size=(H, W)`` (mmdetection).
    """
    (height, width), (top_height, top_width) = lateral.shape[-2:], top.shape[-2:]
    if not is_exporting() and (height, width) == (2 * top_height, 2 * top_width):
        # Exported graphs (dynamic sizes) take the interpolation below, whose shapes need no
        # guard.
        return _AddUpsampledInPlace.apply(lateral, top)
    return lateral + F.interpolate(top, size=(height, width), mode="nearest")


class _AddUpsampledInPlace(torch.autograd.Function):
    """``lateral += nearest_2x(top)``: each top pixel added to its 2x2 block through a view,
    one pass and no upsampled copy (a 62 MB tensor for P2 at 800x1216).

    The backward is written out: ``top``'s gradient is the sum of each 2x2 block of the output
    gradient, computed as ``4 * avg_pool2d`` (exact scaling by a power of two), which is
    vectorised over channels-last tensors; autograd's own backward of the in-place view update
    (a copy of the whole gradient and a strided reduction) took 2.5x (fp32) to 4x (bf16) as
    long on P2 of a 2x512x640 training batch.
    """

    @staticmethod
    def forward(ctx: Any, lateral: Tensor, top: Tensor) -> Tensor:
        top_height, top_width = top.shape[-2:]
        blocks = lateral.unflatten(3, (top_width, 2)).unflatten(2, (top_height, 2))
        blocks.add_(top[:, :, :, None, :, None])
        ctx.mark_dirty(lateral)
        return lateral

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor]:
        return grad, F.avg_pool2d(grad, 2) * 4
