"""The automatic recipe's printed explanation: the rows of its table, in order, the config keys
each row stands for, and each row's value as a config gives it.

A row's value is read off a config (:data:`TRAINED_VALUE`) so that where a ``--set`` replaces a
choice, the table shows what the run trains with (:meth:`~sparsercnn.recipe.draft.RecipeDraft.row`).
"""

from __future__ import annotations

from collections.abc import Callable

from sparsercnn.config import Config, ModelConfig
from sparsercnn.engine.lr_schedule import Schedule
from sparsercnn.recipe.hardware import Hardware
from sparsercnn.recipe.input_size import InputSize
from sparsercnn.text import counted

# What a model size sets (the presets differ in these).
MODEL_KEYS = tuple(
    f"model.{name}"
    for name in (
        "backbone_depth",
        "backbone_norm",
        "freeze_at",
        "backbone_width",
        "fpn_dim",
        "proposal_init",
        "hidden_dim",
        "num_heads",
        "ffn_dim",
        "dynamic_dim",
    )
)

# What the input size sets.
INPUT_KEYS = tuple(
    f"input.{name}"
    for name in ("train_min_sizes", "train_max_size", "test_min_size", "test_max_size")
)


def precision_text(amp: bool, hardware: Hardware) -> str:
    """The arithmetic training runs in with ``train.amp`` on ``hardware`` (as
    :func:`~sparsercnn.engine.train_step.autocast_dtype` picks it): bf16 autocast where the
    device runs bf16 natively, fp16 autocast on a GPU without, fp32 on a CPU without (which
    would only emulate bf16) or without ``amp``."""
    if amp and hardware.native_bf16:
        return "bf16 autocast"
    if amp and hardware.is_gpu:
        return "fp16 autocast"
    return "fp32"


def model_name(cfg: Config) -> str:
    """``"R18/32, head 64"``: the backbone's depth (and width where not the standard one) and
    the head's width."""
    model = cfg.model
    width = "" if model.backbone_width == ModelConfig.backbone_width else f"/{model.backbone_width}"
    return f"R{model.backbone_depth}{width}, head {model.hidden_dim}"


def input_text(cfg: Config) -> str:
    """The input size of ``cfg`` as the table gives it (the recipe's sizes are one
    :class:`InputSize` for training and evaluation; a ``--set`` may give others)."""
    given = cfg.input
    test = InputSize(given.test_min_size, given.test_max_size)
    if given.train_min_sizes == (test.short,) and given.train_max_size == test.long:
        return str(test)
    train = "/".join(str(side) for side in given.train_min_sizes)
    return f"train {train} (long side <= {given.train_max_size}), test {test}"


def schedule_text(cfg: Config) -> str:
    """The schedule row of a run's config: its steps and the decays it takes (those before
    ``max_iter``), by its ``gamma``."""
    train = cfg.train
    decays = Schedule.of(train).decays_taken(train.max_iter)
    steps = " and ".join(str(step) for step in decays)
    where = f"{'step' if len(decays) == 1 else 'steps'} {steps}"
    lr = f"lr x{train.gamma:g} at {where}" if decays else "no lr decay"
    return f"{counted(train.max_iter, 'step')} (at most), {lr}"


def augmentation_text(cfg: Config) -> str:
    """Flips always; random crops where ``input.crop``."""
    return "flips, random crops" if cfg.input.crop else "flips"


def lr_text(cfg: Config) -> str:
    """The learning rate, ``per 16 images`` where ``train.scale_lr`` scales it by the batch."""
    return f"{cfg.train.lr:.2g}" + (" per 16 images" if cfg.train.scale_lr else "")


def passes_text(passes: float) -> str:
    """``"~26 passes"``, ``"~1 pass"``, ``"~0.25 passes"``: the schedule's passes over each
    image."""
    if round(passes) >= 1:
        return f"~{counted(round(passes), 'pass', 'passes')}"
    return f"~{passes:.2g} passes"


TRAINED_VALUE: dict[str, Callable[[Config, Hardware], object]] = {
    "precision": lambda cfg, hardware: precision_text(cfg.train.amp, hardware),
    "batch size": lambda cfg, _: cfg.train.batch_size,
    "model": lambda cfg, _: model_name(cfg),
    "proposals": lambda cfg, _: cfg.model.num_proposals,
    "stages": lambda cfg, _: cfg.model.num_stages,
    "input size": lambda cfg, _: input_text(cfg),
    "schedule": lambda cfg, _: schedule_text(cfg),
    "warm-up": lambda cfg, _: counted(cfg.train.warmup_iters, "step"),
    "augmentation": lambda cfg, _: augmentation_text(cfg),
    "learning rate": lambda cfg, _: lr_text(cfg),
    "frozen": lambda cfg, _: cfg.train.freeze,
}
"""A row's value in a config (the run's, where a ``--set`` gives one of its keys) on the
training device: by row name, in the order of the table."""

ROW_ORDER = tuple(TRAINED_VALUE)
"""The table's rows in the order printed, whichever order they were chosen in."""
