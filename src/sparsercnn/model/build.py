"""The one translation point from :class:`~sparsercnn.config.ModelConfig` to modules."""

from __future__ import annotations

import torch

from sparsercnn.config import Config, ModelConfig
from sparsercnn.model.backbone import ResNet
from sparsercnn.model.detector import SparseRCNN
from sparsercnn.model.dynamic_head import DynamicHead
from sparsercnn.model.fpn import FPN
from sparsercnn.model.postprocess import PostProcessor
from sparsercnn.model.proposals import LearnedProposals
from sparsercnn.ops.boxes import scale_clamp_for
from sparsercnn.presets import get_preset


def build_model(config: Config | ModelConfig | str, num_classes: int | None = None) -> SparseRCNN:
    """Build a randomly initialised :class:`SparseRCNN`, convolution weights channels-last.

    Args:
        config: a preset name (``"r50_100pro_3x"``, ``"demo"``, ...), a :class:`Config` or a
            :class:`ModelConfig`.
        num_classes: overrides ``config.num_classes`` when given.
    """
    if isinstance(config, str):
        config = get_preset(config)
    cfg = config.model if isinstance(config, Config) else config
    if num_classes is not None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        cfg = ModelConfig(**{**cfg.__dict__, "num_classes": num_classes})
    # Presets assign widths after construction, which skips ModelConfig's own check.
    cfg.check_widths()
    if not 0 <= cfg.fpn_on_demand_levels <= 3:
        raise ValueError(
            f"model.fpn_on_demand_levels must be 0-3 (P2..P4; P5 is always dense), got "
            f"{cfg.fpn_on_demand_levels}"
        )
    backbone = ResNet(
        cfg.backbone_depth,
        norm=cfg.backbone_norm,
        freeze_at=cfg.freeze_at,
        width=cfg.backbone_width,
    )
    fpn = FPN(backbone.out_channels, cfg.fpn_dim)
    head = DynamicHead(
        strides=fpn.strides,
        num_stages=cfg.num_stages,
        pooler_resolution=cfg.pooler_resolution,
        sampling_ratio=cfg.sampling_ratio,
        reuse_features=cfg.reuse_features,
        box_positional_encoding=cfg.box_positional_encoding,
        prior_prob=cfg.prior_prob,
        num_classes=cfg.num_classes,
        hidden_dim=cfg.hidden_dim,
        num_heads=cfg.num_heads,
        ffn_dim=cfg.ffn_dim,
        dynamic_dim=cfg.dynamic_dim,
        dropout=cfg.dropout,
        num_cls_layers=cfg.num_cls_layers,
        num_reg_layers=cfg.num_reg_layers,
        scale_clamp=scale_clamp_for(cfg.box_delta_clamp),
        use_self_attention=cfg.use_self_attention,
        use_dynamic_conv=cfg.use_dynamic_conv,
    )
    model = SparseRCNN(
        backbone=backbone,
        fpn=fpn,
        proposals=LearnedProposals(cfg.num_proposals, cfg.hidden_dim, cfg.proposal_init),
        head=head,
        pixel_mean=cfg.pixel_mean,
        pixel_std=cfg.pixel_std,
        size_divisibility=cfg.size_divisibility,
        fpn_on_demand_levels=cfg.fpn_on_demand_levels,
    )
    # The detector runs its features channels-last (oneDNN's and cuDNN's fast layout); weights
    # in the same layout are not reordered at every call. (torch's stubs omit memory_format.)
    return model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def build_postprocessor(config: Config | ModelConfig) -> PostProcessor:
    """The post-processor matching the config's source behaviour (official clips, mmdet not)."""
    cfg = config.model if isinstance(config, Config) else config
    return PostProcessor(clip_boxes=cfg.clip_boxes, top_k=cfg.num_proposals)
