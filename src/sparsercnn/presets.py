"""Named configurations: the released recipes (spec 9-10) and small ones for CPU work.

Each preset is a plain function returning a fresh :class:`~sparsercnn.config.Config`.
"""

from __future__ import annotations

from collections.abc import Callable

from sparsercnn.config import Config, InputConfig, ModelConfig, TrainConfig


def r50_100pro_3x() -> Config:
    """R50-FPN, 100 proposals, multi-scale 480-800, 3x schedule: 42.8 AP (spec 10.1)."""
    return Config(model=ModelConfig(backbone_depth=50, num_proposals=100))


def r50_300pro_3x() -> Config:
    """R50-FPN, 300 proposals, multi-scale + random crop, 3x schedule: 45.0 AP."""
    return Config(
        model=ModelConfig(backbone_depth=50, num_proposals=300), input=InputConfig(crop=True)
    )


def r101_100pro_3x() -> Config:
    """R101-FPN, 100 proposals, multi-scale 480-800, 3x schedule: 44.1 AP."""
    return Config(model=ModelConfig(backbone_depth=101, num_proposals=100))


def r101_300pro_3x() -> Config:
    """R101-FPN, 300 proposals, multi-scale + random crop, 3x schedule: 46.4 AP."""
    return Config(
        model=ModelConfig(backbone_depth=101, num_proposals=300), input=InputConfig(crop=True)
    )


def small() -> Config:
    """CPU-scale Sparse R-CNN trained from scratch in minutes: a half-width ResNet-18, a narrow
    head, 160 px (the demo's model).

    The architecture is the paper's (learned proposals, 6 dynamic stages, the 2/5/2 set loss with
    deep supervision); what changes is scale: ResNet-18 at half width (32-256 channels, a quarter
    of the FLOPs) with training-mode BatchNorm (no ImageNet weights offline), widths 64 (FPN and
    head), 50 proposals on the paper's ``grid`` initialisation (Table 6; a spatial prior that
    converges faster than whole-image boxes when training is short), bf16 autocast where the
    hardware runs bf16 natively (fp32 elsewhere), and a learning rate for training from scratch.
    Usable on any dataset; ``--preset auto`` (the default) sets the sizes from the data.
    """
    return Config(
        model=ModelConfig(
            backbone_depth=18,
            backbone_width=32,
            backbone_norm="bn",
            freeze_at=0,
            fpn_dim=64,
            num_proposals=50,
            proposal_init="grid",
            hidden_dim=64,
            num_heads=4,
            ffn_dim=256,
            dynamic_dim=16,
        ),
        input=InputConfig(
            train_min_sizes=(160,),
            train_max_size=160,
            test_min_size=160,
            test_max_size=160,
            test_batch_size=8,
        ),
        train=TrainConfig(
            batch_size=8,
            lr=7e-4,
            scale_lr=False,
            max_iter=3000,
            steps=(2400, 2800),
            warmup_iters=50,
            amp=True,
            # 160 px images decode in 1.6 ms: loading in the main process costs less than
            # worker processes competing with the compute threads for a small CPU's cores.
            num_workers=0,
            checkpoint_period=500,
            eval_period=0,
            log_period=10,
        ),
    )


def medium() -> Config:
    """The next size up for CPUs: the standard-width ResNet-18 (four times the small model's
    backbone FLOPs) and a head twice as wide (128), 100 proposals; otherwise as :func:`small`."""
    cfg = small()
    cfg.model.backbone_width = ModelConfig.backbone_width
    cfg.model.fpn_dim = 128
    cfg.model.hidden_dim = 128
    cfg.model.num_heads = 8
    cfg.model.ffn_dim = 512
    cfg.model.dynamic_dim = 32
    cfg.model.num_proposals = 100
    return cfg


def demo() -> Config:
    """The offline demo: the :func:`small` model at 160 px on the demo's 160 px images."""
    return small()


def tiny() -> Config:
    """The smallest sensible model, for tests and smoke runs (seconds on a CPU): a ResNet-18 at
    an eighth of the standard width (8-64 channels), a 32-wide 2-stage head, 16 proposals.

    Its backbone is not the published ResNet-18's (64-512 channels): to load torchvision or
    ImageNet ResNet-18 weights into it, set ``model.backbone_width=64``.
    """
    cfg = small()
    # 0.4 M parameters, a 1.5 MB model file (the standard width: 11.4 M, 46 MB; the tests save
    # many of them).
    cfg.model.backbone_width = 8
    cfg.model.num_proposals = 16
    cfg.model.num_stages = 2
    cfg.model.hidden_dim = 32
    cfg.model.fpn_dim = 32
    cfg.model.num_heads = 2
    cfg.model.ffn_dim = 64
    cfg.model.dynamic_dim = 8
    cfg.input = InputConfig(
        train_min_sizes=(96, 128), train_max_size=160, test_min_size=128, test_max_size=160
    )
    cfg.model.proposal_init = "image"
    cfg.train.batch_size = 2
    cfg.train.num_workers = 0
    cfg.train.amp = False  # exact fp32 arithmetic for tests
    return cfg


PRESETS: dict[str, Callable[[], Config]] = {
    "r50_100pro_3x": r50_100pro_3x,
    "r50_300pro_3x": r50_300pro_3x,
    "r101_100pro_3x": r101_100pro_3x,
    "r101_300pro_3x": r101_300pro_3x,
    "small": small,
    "medium": medium,
    "demo": demo,
    "tiny": tiny,
}


def get_preset(name: str) -> Config:
    """Return a fresh config for preset ``name``; unknown names list the valid ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]()
