"""What a training run optimises, built from its config before it resumes or trains: the model
(seeded, its starting weights loaded unless resuming), the post-processor its evaluations use,
AdamW over its trainable parameters (spec 9), the autocast dtype and the gradient scaler.
Built by :class:`~sparsercnn.engine.trainer.Trainer`, which then restores them on resume."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparsercnn.config import Config
from sparsercnn.data.categories import CategoryMap
from sparsercnn.engine.model_init import StartingWeights, prepare_model
from sparsercnn.engine.rng_state import seed_everything
from sparsercnn.engine.train_step import autocast_dtype, build_adamw, grad_scaler_for
from sparsercnn.model import PostProcessor, SparseRCNN, build_model, build_postprocessor


@dataclass
class TrainingParts:
    """Attributes:
    model: the detector, on the run's device.
    postprocessor: turns its outputs into detections for the evaluations.
    optimizer: AdamW over every trainable parameter in one group.
    amp_dtype: the autocast dtype (``None``: fp32).
    scaler: the gradient scaler of fp16 training (``None`` otherwise).
    """

    model: SparseRCNN
    postprocessor: PostProcessor
    optimizer: torch.optim.Optimizer
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None


def build_training_parts(
    cfg: Config,
    categories: CategoryMap,
    device: torch.device,
    rank: int,
    *,
    load_weights: bool,
    weights: StartingWeights | None = None,
) -> TrainingParts:
    """Build what the run of ``cfg`` on ``device`` optimises, seeded with ``train.seed``.

    Args:
        cfg: the run's resolved configuration.
        categories: its label map (for starting weights of another class set).
        device: where this process trains.
        rank: this process's rank: it draws its own random numbers from here on (each rank
            sees other data, and gets its own dropout masks).
        load_weights: load ``train.init_from`` and ``train.backbone_weights``
            (:func:`~sparsercnn.engine.model_init.prepare_model`); ``False`` for a resumed run,
            whose checkpoint holds its weights.
        weights: those files already read; released once loaded (or not needed), as their
            callers would hold them through training.
    """
    # Denormal floats (tiny Adam second moments, tiny gradients) make CPU arithmetic tens of
    # times slower; flushing them to zero changes nothing measurable in training.
    torch.set_flush_denormal(True)
    seed_everything(cfg.train.seed)
    model = build_model(cfg)
    prepare_model(model, cfg, load_weights=load_weights, categories=categories, weights=weights)
    if weights is not None:
        weights.release()
    model.to(device)
    optimizer = build_adamw(
        [p for p in model.parameters() if p.requires_grad],
        lr=cfg.train.lr,
        weight_decay=cfg.train.weight_decay,
    )
    amp_dtype = autocast_dtype(device, cfg.train.amp)
    parts = TrainingParts(
        model, build_postprocessor(cfg), optimizer, amp_dtype, grad_scaler_for(amp_dtype, device)
    )
    seed_everything(cfg.train.seed + rank)
    return parts
