"""The one translation point from :class:`~sparsercnn.config.ModelConfig` to modules."""

from __future__ import annotations

from dataclasses import replace

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

    Raises:
        TypeError: ``config`` is none of these.
        ValueError: an unknown preset, or a model setting out of range (naming its key).
    """
    cfg = _model_config(config)
    if not 0 <= cfg.fpn_on_demand_levels <= 3:
        raise ValueError(
            f"model.fpn_on_demand_levels must be 0-3 (P2..P4; P5 is always dense), got "
            f"{cfg.fpn_on_demand_levels}"
        )
    if num_classes is not None:
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
        cfg = replace(cfg, num_classes=num_classes)
    else:
        # Presets and users (``cfg.model.num_classes = 3``) assign values after construction,
        # which skips ModelConfig's own checks (widths and counts): a copy runs them.
        cfg = replace(cfg)
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


def build_postprocessor(config: Config | ModelConfig | str) -> PostProcessor:
    """The post-processor matching the config's source behaviour (official clips, mmdet not);
    ``config`` as in :func:`build_model`."""
    cfg = _model_config(config)
    return PostProcessor(clip_boxes=cfg.clip_boxes, top_k=cfg.num_proposals)


def _model_config(config: Config | ModelConfig | str) -> ModelConfig:
    """The model section of a preset name, :class:`Config` or :class:`ModelConfig`."""
    if isinstance(config, str):
        config = get_preset(config)
    if isinstance(config, Config):
        return config.model
    if isinstance(config, ModelConfig):
        return config
    raise TypeError(
        f"config must be a preset name (one of sparsercnn.PRESETS), a Config or a ModelConfig, "
        f"got {type(config).__name__}"
    )
