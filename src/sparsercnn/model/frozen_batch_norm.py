"""Batch normalisation with fixed statistics and affine parameters (detectron2 "FrozenBN").

The official Sparse R-CNN backbone normalises every ResNet layer with frozen ImageNet statistics
(spec 2.1). All four tensors are buffers, so no optimiser ever sees them and they never change;
the layer is a per-channel affine map ``y = x * scale + shift``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class FrozenBatchNorm2d(nn.Module):
    """``y = (x - running_mean) / sqrt(running_var + eps) * weight + bias``, nothing trainable.

    The buffer names equal :class:`torch.nn.BatchNorm2d`'s, so a BatchNorm checkpoint loads
    directly; its ``num_batches_tracked`` entry is ignored and this layer never produces one.

    Args:
        num_features: number of channels ``C``.
        eps: added to the variance, 1e-5 as in torchvision/detectron2 (spec 2.1).
    """

    weight: Tensor
    bias: Tensor
    running_mean: Tensor
    running_var: Tensor

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        # Identity initialisation: weight 1, bias 0, mean 0, var 1 (the BatchNorm defaults).
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` of shape ``(B, C, H, W)`` (any memory format); same shape out."""
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        # (C,) -> (1, C, 1, 1): broadcasting keeps channels-last inputs channels-last.
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Tensor],
        prefix: str,
        local_metadata: dict[str, object],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # torchvision/mmdetection BatchNorm checkpoints carry a step counter that has no
        # meaning here; drop it so strict loading of those checkpoints succeeds.
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"
