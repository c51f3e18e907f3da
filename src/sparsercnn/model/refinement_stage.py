"""One refinement stage of the dynamic head (spec 5.1): attention, interaction, FFN, predictions.

Stage t takes the boxes and proposal features of stage t-1 and the RoI features of those boxes,
and returns class logits, refined boxes and the object features passed on to stage t+1.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from sparsercnn.model.instance_interaction import DynamicConv, StaticInteraction
from sparsercnn.ops.boxes import decode_box_deltas

# Up to this many proposals per image, bf16 training on CPUs runs the self-attention through
# PyTorch's plain ("math") kernel: its backward took 1.6-2.3x less time than the fused flash
# kernel's for 50-100 proposals with 4-8 heads of width 16-32 (the CPU presets and R50 at 100
# proposals), while flash won at 300 proposals, and in fp32 or at inference.
MATH_ATTENTION_MAX_PROPOSALS = 128


def _attention_kernels(q: Tensor) -> AbstractContextManager[object]:
    """Where self-attention over ``q`` ``(B, N, d)`` should run PyTorch's math kernel, a context
    that allows only it; elsewhere a no-op (PyTorch picks, as by default)."""
    if (
        q.device.type == "cpu"
        and q.shape[1] <= MATH_ATTENTION_MAX_PROPOSALS
        and torch.is_grad_enabled()
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
    ):
        return sdpa_kernel(SDPBackend.MATH)
    return nullcontext()


def _tower(hidden_dim: int, num_layers: int) -> nn.Sequential:
    """``num_layers`` x [Linear (no bias), LayerNorm, ReLU] (spec 5.1 steps 11-12)."""
    layers: list[nn.Module] = []
    for _ in range(num_layers):
        layers += [nn.Linear(hidden_dim, hidden_dim, bias=False), nn.LayerNorm(hidden_dim)]
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class RefinementStage(nn.Module):
    """One of the (6) unshared dynamic-head stages.

    Args:
        num_classes: number of sigmoid class logits (no background).
        hidden_dim: proposal feature width d.
        num_heads: self-attention heads.
        ffn_dim: FFN hidden width.
        dynamic_dim: dynamic-conv bottleneck width.
        pooler_resolution: RoI side S.
        dropout: dropout of the attention/interaction/FFN residual branches (0 in the release).
        num_cls_layers, num_reg_layers: depth of the class and box towers.
        scale_clamp: ``(min, max)`` clamp of the decoded ``dw, dh`` (official or mmdetection).
        use_self_attention: False gives the paper's "w/o self-attention" ablation.
        use_dynamic_conv: False replaces the dynamic interaction with :class:`StaticInteraction`.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        hidden_dim: int,
        num_heads: int,
        ffn_dim: int,
        dynamic_dim: int,
        pooler_resolution: int,
        dropout: float,
        num_cls_layers: int,
        num_reg_layers: int,
        scale_clamp: tuple[float, float],
        use_self_attention: bool = True,
        use_dynamic_conv: bool = True,
    ) -> None:
        super().__init__()
        self.scale_clamp = scale_clamp
        self.self_attn: nn.MultiheadAttention | None = None
        self.attn_norm: nn.LayerNorm | None = None
        if use_self_attention:
            self.self_attn = nn.MultiheadAttention(
                hidden_dim, num_heads, dropout=dropout, batch_first=True
            )
            self.attn_norm = nn.LayerNorm(hidden_dim)
        interaction = DynamicConv if use_dynamic_conv else StaticInteraction
        self.instance_interaction = interaction(hidden_dim, dynamic_dim, pooler_resolution)
        self.interaction_norm = nn.LayerNorm(hidden_dim)
        self.ffn_linear1 = nn.Linear(hidden_dim, ffn_dim)
        self.ffn_linear2 = nn.Linear(ffn_dim, hidden_dim)
        self.ffn_norm = nn.LayerNorm(hidden_dim)
        # Training-mode dropout with p = 0 still copies its input and draws a mask.
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.cls_tower = _tower(hidden_dim, num_cls_layers)
        self.reg_tower = _tower(hidden_dim, num_reg_layers)
        self.class_logits = nn.Linear(hidden_dim, num_classes)
        self.box_deltas = nn.Linear(hidden_dim, 4)

    def forward(
        self, roi_features: Tensor, proposal_features: Tensor, boxes: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Run the stage.

        Args:
            roi_features: ``(B*N, S*S, d)`` RoIAlign output of ``boxes``, channel last.
            proposal_features: ``(B, N, d)``.
            boxes: ``(B, N, 4)`` absolute xyxy input-image pixels (detached by the caller).

        Returns:
            ``logits (B, N, C)``, refined ``boxes (B, N, 4)`` xyxy and object features
            ``(B, N, d)`` for the next stage.
        """
        batch, num_proposals, hidden_dim = proposal_features.shape
        q = proposal_features
        if self.self_attn is not None and self.attn_norm is not None:
            # Attention among the N proposals of each image; q = k = v, no mask (spec 5.1 step 2).
            with _attention_kernels(q):
                attended = self.self_attn(q, q, q, need_weights=False)[0]
            q = self.attn_norm(q + self.dropout(attended))
        q = q.reshape(batch * num_proposals, hidden_dim)
        interacted = self.instance_interaction(q, roi_features)
        q = self.interaction_norm(q + self.dropout(interacted))
        ffn = self.ffn_linear2(self.dropout(F.relu(self.ffn_linear1(q))))
        q = self.ffn_norm(q + self.dropout(ffn))
        logits = self.class_logits(self.cls_tower(q))
        deltas = self.box_deltas(self.reg_tower(q))
        new_boxes = decode_box_deltas(
            deltas.reshape(batch, num_proposals, 4), boxes, scale_clamp=self.scale_clamp
        )
        return (
            logits.reshape(batch, num_proposals, -1),
            new_boxes,
            q.reshape(batch, num_proposals, hidden_dim),
        )
