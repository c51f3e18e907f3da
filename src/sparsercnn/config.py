"""Configuration dataclasses, ``--set key=value`` overrides and their (de)serialisation.

The config is plain data. Only the ``build_*`` functions read it; modules take typed arguments.
Named presets live in :mod:`sparsercnn.presets`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import logging
import math
import shlex
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

BackboneNorm = Literal["frozen_bn", "bn_eval", "bn"]
ProposalInit = Literal["image", "center", "grid", "random"]
DeltaClamp = Literal["official", "mmdet"]
Freeze = Literal["none", "backbone", "all_but_class_logits"]
# torch.compile modes of the benchmark's compile backend on CUDA (reduce-overhead: CUDA graphs).
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
# How inference computes (sparsercnn.model.inference.evaluating): float32, bf16 autocast,
# float32 with Winograd 3x3 convolutions (CPU; approximate), or an int8 backbone and FPN
# (CPU; calibrated model files; approximate).
Precision = Literal["fp32", "bf16", "winograd", "int8"]
# ResNet depths the backbone builds (sparsercnn.model.backbone.ARCHITECTURES; a test keeps the
# two equal), and the parts freeze_at can freeze (stem, res2..res5).
BACKBONE_DEPTHS = (18, 34, 50, 101)
NUM_FREEZABLE_PARTS = 5
# Finest FPN levels whose output conv can run on demand (P2..P4; P5 is always dense).
MAX_ON_DEMAND_LEVELS = 3
# Data-loading processes where none are given: training's train.num_workers, and a model file's
# run over a dataset (eval, diagnose and their library functions; --workers).
DEFAULT_NUM_WORKERS = 2


@dataclass
class ModelConfig:
    """Architecture (spec 2-6, 8). Defaults reproduce the released R50 / 100-proposal model."""

    num_classes: int = 80
    # Backbone (spec 2.1). "frozen_bn": detectron2 FrozenBN (official); "bn_eval": BatchNorm with
    # frozen statistics but trainable affine (mmdetection); "bn": ordinary training-mode BatchNorm,
    # for training from scratch (the CPU demo).
    backbone_depth: int = 50
    backbone_norm: BackboneNorm = "frozen_bn"
    freeze_at: int = 2  # 0: nothing frozen, 1: stem, 2: stem + res2 (spec 2.1), ... 5: everything
    # Stem/res2 channels, doubled by each later stage; 64 is the standard ResNet (all published
    # weights), narrower backbones are for training from scratch on a CPU (the demo: 32).
    backbone_width: int = 64
    fpn_dim: int = 256
    # Inference: the finest FPN levels (2: P2 and P3) whose 3x3 output conv runs only on the
    # 16x16 tiles RoIAlign reads; the same values where read. 0 (default): every level dense,
    # as the trained models measured so far read 88-100% of P2's tiles (BENCHMARKS.md).
    fpn_on_demand_levels: int = 0
    # Proposals (spec 3) and head (spec 5).
    num_proposals: int = 100
    proposal_init: ProposalInit = "image"
    num_stages: int = 6
    hidden_dim: int = 256
    num_heads: int = 8
    ffn_dim: int = 2048
    dynamic_dim: int = 64
    dropout: float = 0.0
    num_cls_layers: int = 1
    num_reg_layers: int = 3
    pooler_resolution: int = 7
    sampling_ratio: int = 2
    prior_prob: float = 0.01
    box_delta_clamp: DeltaClamp = "official"  # official: dw,dh <= 8.74; mmdet: |dw|,|dh| <= 4.135
    # Paper ablations (Tables 3-8, 10); defaults = the released models.
    use_self_attention: bool = True
    use_dynamic_conv: bool = True
    reuse_features: bool = True
    box_positional_encoding: bool = False
    # Input normalisation (spec 1.1): RGB, 0-255, torchvision mean/std.
    pixel_mean: tuple[float, float, float] = (123.675, 116.280, 103.530)
    pixel_std: tuple[float, float, float] = (58.395, 57.120, 57.375)
    size_divisibility: int = 32
    # Post-processing (spec 8): official clips to the image and drops empty boxes; mmdet does not.
    clip_boxes: bool = True

    def __post_init__(self) -> None:
        _check_at_least(self, "model", 1, "num_classes", "num_proposals", "num_stages")
        _check_at_least(self, "model", 1, "hidden_dim", "num_heads", "ffn_dim", "dynamic_dim")
        _check_at_least(self, "model", 1, "fpn_dim", "backbone_width", "pooler_resolution")
        _check_at_least(self, "model", 1, "size_divisibility")
        # Refused here, before a run's data check, rather than when the model is built.
        if self.backbone_depth not in BACKBONE_DEPTHS:
            raise ValueError(
                f"model.backbone_depth must be one of {list(BACKBONE_DEPTHS)}, got "
                f"{self.backbone_depth}"
            )
        _check_in_range(self, "model", "freeze_at", 0, NUM_FREEZABLE_PARTS)
        _check_in_range(self, "model", "fpn_on_demand_levels", 0, MAX_ON_DEMAND_LEVELS)
        self.check_widths()
        # sampling_ratio 0: RoIAlign's adaptive grid (not with CUDA graphs or the fixed shapes).
        _check_at_least(self, "model", 0, "sampling_ratio", "num_cls_layers", "num_reg_layers")
        _check_in_range(self, "model", "dropout", 0.0, 1.0, high_open=True)
        _check_in_range(self, "model", "prior_prob", 0.0, 1.0, low_open=True, high_open=True)
        # Inputs are divided by pixel_std: a 0 made them infinite.
        if (
            not all(math.isfinite(v) for v in (*self.pixel_mean, *self.pixel_std))
            or min(self.pixel_std) <= 0
        ):
            raise ValueError(
                "model.pixel_mean must be finite and model.pixel_std finite and > 0, got "
                f"{list(self.pixel_mean)} and {list(self.pixel_std)}"
            )

    def check_widths(self) -> None:
        """Refuse widths the model cannot be built with (both problems in one message): RoI
        features of ``fpn_dim`` channels feed the head of ``hidden_dim`` directly, and attention
        splits ``hidden_dim`` into ``num_heads`` equal parts.

        Raises:
            ValueError: naming the keys and values that would do.
        """
        problems = []
        if self.fpn_dim != self.hidden_dim:
            problems.append(
                f"model.fpn_dim ({self.fpn_dim}) must equal model.hidden_dim ({self.hidden_dim}), "
                "as RoI features feed the head directly: set both to one width"
            )
        if self.hidden_dim % self.num_heads:
            heads = max(d for d in range(1, self.num_heads + 1) if self.hidden_dim % d == 0)
            width = -(-self.hidden_dim // self.num_heads) * self.num_heads
            problems.append(
                f"model.hidden_dim ({self.hidden_dim}) must be a multiple of model.num_heads "
                f"({self.num_heads}), the attention heads it is split into: e.g. "
                f"model.hidden_dim={width} or model.num_heads={heads}"
            )
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class LossConfig:
    """Matching costs and loss weights (spec 7)."""

    class_weight: float = 2.0
    l1_weight: float = 5.0
    giou_weight: float = 2.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    cost_eps: float = 1e-8  # official focal-cost epsilon (mmdetection: 1e-12)
    deep_supervision: bool = True

    def __post_init__(self) -> None:
        for name in ("class_weight", "l1_weight", "giou_weight", "focal_gamma"):
            _check_in_range(self, "loss", name, 0.0, math.inf)
        _check_in_range(self, "loss", "focal_alpha", 0.0, 1.0)
        _check_in_range(self, "loss", "cost_eps", 0.0, 1.0, low_open=True)


@dataclass
class InputConfig:
    """Image sizes and augmentation (spec 1.2-1.3)."""

    train_min_sizes: tuple[int, ...] = tuple(range(480, 801, 32))
    train_max_size: int = 1333
    test_min_size: int = 800
    test_max_size: int = 1333
    # Images per forward pass when evaluating, during training and in `sparsercnn eval` alike:
    # the same batches give bit-identical detections (other sizes differ at float noise).
    test_batch_size: int = 1
    flip_prob: float = 0.5
    crop: bool = False
    # Share of training images that take the crop policy (spec 1.3's 0.5); the rest are resized.
    crop_prob: float = 0.5
    crop_pre_sizes: tuple[int, ...] = (400, 500, 600)
    crop_size: tuple[int, int] = (384, 600)

    def __post_init__(self) -> None:
        _check_at_least(self, "input", 1, "test_min_size", "test_max_size", "test_batch_size")
        _check_at_least(self, "input", 1, "train_max_size")
        for name in ("flip_prob", "crop_prob"):
            _check_in_range(self, "input", name, 0.0, 1.0)
        for name in ("train_min_sizes", "crop_pre_sizes"):
            sizes = getattr(self, name)
            if not sizes or min(sizes) < 1:
                raise ValueError(f"input.{name} must list sizes >= 1, got {list(sizes)}")
        if len(self.crop_size) != 2 or not 1 <= self.crop_size[0] <= self.crop_size[1]:
            got = list(self.crop_size)
            raise ValueError(f"input.crop_size must be [min, max] with 1 <= min <= max, got {got}")


def _check_at_least(section: object, name: str, least: int, *fields: str) -> None:
    """Raise naming the key (``train.max_iter``) when a count is below ``least``."""
    for field_name in fields:
        value = getattr(section, field_name)
        if value < least:
            raise ValueError(f"{name}.{field_name} must be >= {least}, got {value}")


def _check_in_range(
    section: object,
    name: str,
    field_name: str,
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise naming the key (``loss.focal_alpha``) when a number is outside ``[low, high]``
    (an open end excludes its bound), or not a number."""
    value = getattr(section, field_name)
    inside = (
        isinstance(value, int | float)
        and (low < value if low_open else low <= value)
        and (value < high if high_open else value <= high)
    )
    if not inside:  # NaN compares false: refused too
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name}.{field_name} must be in {interval}, got {value}")


@dataclass
class TrainConfig:
    """Optimisation recipe (spec 9). ``lr`` is for ``batch_size`` images; see ``scale_lr``."""

    batch_size: int = 16
    lr: float = 2.5e-5
    reference_batch_size: int = 16
    scale_lr: bool = True  # linear scaling: lr * total_batch / reference_batch_size
    weight_decay: float = 1e-4
    max_iter: int = 270_000
    steps: tuple[int, ...] = (210_000, 250_000)
    gamma: float = 0.1
    warmup_iters: int = 1000
    warmup_factor: float = 0.01
    clip_grad_norm: float = 1.0  # <= 0: no clipping
    grad_accum_steps: int = 1
    amp: bool = False  # bf16 autocast where supported; matching and losses stay fp32
    seed: int = 40244023
    num_workers: int = DEFAULT_NUM_WORKERS
    # Batches of one orientation each (w > h or not), as both references train (spec 1.4);
    # false: consecutive samples, so a batch mixing them is padded to max(h) x max(w).
    aspect_ratio_grouping: bool = True
    # Decoded training images kept in memory, per data-loading process (0: decode every sample).
    image_cache_mb: int = 1024
    # Periods in steps; <= 0: never (the run's last step is still checkpointed, evaluated and
    # logged). keep_checkpoints <= 0 keeps every checkpoint.
    checkpoint_period: int = 5000
    keep_checkpoints: int = 3
    eval_period: int = 7330
    log_period: int = 20
    max_nonfinite_steps: int = 10
    # Starting weights: a detector checkpoint (ours, official, mmdetection; path, URL or published
    # name) and/or ImageNet backbone weights (torchvision ResNet). A different class set
    # re-initialises only the class logits (classes of the same name keep theirs).
    init_from: str = ""
    backbone_weights: str = ""
    # For very small datasets: train the head only, or only the class logits.
    freeze: Freeze = "none"

    def __post_init__(self) -> None:
        _check_at_least(self, "train", 1, "batch_size", "reference_batch_size", "max_iter")
        _check_at_least(self, "train", 1, "grad_accum_steps", "max_nonfinite_steps")
        _check_at_least(self, "train", 0, "num_workers", "image_cache_mb")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"train.lr must be a number > 0, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"train.weight_decay must be a number >= 0, got {self.weight_decay}")
        _check_at_least(self, "train", 0, "warmup_iters")
        _check_in_range(self, "train", "warmup_factor", 0.0, 1.0)
        _check_in_range(self, "train", "gamma", 0.0, 1.0, low_open=True)
        if math.isnan(self.clip_grad_norm):
            raise ValueError("train.clip_grad_norm must be a number (<= 0: no clipping), got nan")
        if self.steps and min(self.steps) < 1:
            raise ValueError(f"train.steps must be iterations >= 1, got {list(self.steps)}")
        # As detectron2's WarmupMultiStepLR; a repeated step decays twice there.
        if list(self.steps) != sorted(self.steps):
            raise ValueError(
                f"train.steps must be in increasing order, got {list(self.steps)}; e.g. "
                f"{sorted(self.steps)}"
            )

    def schedule_notes(self) -> list[str]:
        """What of the learning-rate schedule a run of ``max_iter`` steps never reaches (a
        preset's ``steps`` and ``warmup_iters`` kept with a smaller ``--set train.max_iter``):
        valid, but said, as detectron2 warns of steps past its ``MAX_ITER``: once, of the
        schedule a run trains, where it is known (``train_from_coco`` says a new run's, before
        reading the data; a resume says the schedule it settles, unless the run has nothing to
        train; the trainer says none; a time budget's refits judge a schedule it extends)."""
        notes = []
        beyond = [step for step in self.steps if step >= self.max_iter]
        if beyond:
            notes.append(
                f"train.steps {beyond} are not before train.max_iter={self.max_iter}: the "
                "learning rate does not decay there; set train.steps to change that"
            )
        if self.warmup_iters > self.max_iter:
            notes.append(
                f"train.warmup_iters={self.warmup_iters} is more than train.max_iter="
                f"{self.max_iter}: the learning rate never reaches train.lr"
            )
        return notes


def log_schedule_notes(train: TrainConfig) -> None:
    """Warn of each of ``train``'s :meth:`~TrainConfig.schedule_notes`, where the caller
    decided that they are said (once, of the schedule a run trains)."""
    for note in train.schedule_notes():
        logger.warning("%s", note)


# Keys added after runs were saved without them, with the value that gives what those runs did.
ADDED_KEYS: dict[tuple[str, str], Any] = {("train", "aspect_ratio_grouping"): False}


@dataclass
class Config:
    """The whole resolved configuration; saved beside every checkpoint."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    input: InputConfig = field(default_factory=InputConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Config:
        """Build a config from :meth:`to_dict` output; unknown keys are an error."""
        return _from_dict(Config, data, "")

    @staticmethod
    def from_run_dict(data: dict[str, Any]) -> Config:
        """:meth:`from_dict` of a config this package saved (a run's ``config.json``, a
        checkpoint's, a model file's): a key added to the package since then reads as what that
        run did
        (:data:`ADDED_KEYS`), not as today's default; ``train.steps`` out of order, refused
        since, read sorted (the schedule sorted them)."""
        if not isinstance(data, dict):
            return Config.from_dict(data)  # names what it is
        data = dict(data)
        for (section, key), value in ADDED_KEYS.items():
            entries = data.get(section)
            if isinstance(entries, dict) and key not in entries:
                data[section] = {**entries, key: value}
        train = data.get("train")
        if isinstance(train, dict) and isinstance(train.get("steps"), list):
            with contextlib.suppress(TypeError):  # not numbers: from_dict names the key
                data["train"] = {**train, "steps": sorted(train["steps"])}
        return Config.from_dict(data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @staticmethod
    def load(path: str | Path, *, of_run: bool = False) -> Config:
        """A ``config.json``; ``of_run``: one a training run wrote (:meth:`from_run_dict`)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(
                f"cannot read config {path}: not valid JSON at line {error.lineno} column "
                f"{error.colno}: {error.msg} (JSON allows no comments or trailing commas)"
            ) from error
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"cannot read config {path}: {error}") from error
        return Config.from_run_dict(data) if of_run else Config.from_dict(data)

    def apply_overrides(self, overrides: list[str]) -> Config:
        """Return a copy with ``section.key=value`` overrides applied (values parsed as JSON).

        Examples: ``model.num_proposals=300``, ``train.steps=[800,900]``, ``input.crop=true``.
        A value that is not valid JSON is taken as a string (``model.backbone_norm=bn``).
        """
        data = self.to_dict()
        for item in overrides:
            key, sep, raw = item.partition("=")
            parts = key.strip().split(".")
            if not sep or len(parts) != 2:
                raise ValueError(
                    f"bad override {item!r}: expected section.key=value, e.g. "
                    "model.num_proposals=300"
                )
            section, name = parts
            if section not in data:
                hint = _did_you_mean(section, data)
                raise ValueError(
                    f"bad override {item!r}: unknown section {section!r}{hint}; sections: "
                    f"{', '.join(sorted(data))}"
                )
            if name not in data[section]:
                hint = _did_you_mean(name, data[section], prefix=f"{section}.")
                raise ValueError(
                    f"unknown config key {key.strip()!r}{hint}; valid keys in {section!r}: "
                    f"{', '.join(sorted(data[section]))}"
                )
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
            data[section][name] = value
        return Config.from_dict(data)

    def differences(self, other: Config) -> dict[str, tuple[Any, Any]]:
        """The values that differ from ``other``'s, as ``{"section.key": (ours, theirs)}`` in the
        order of the fields (what ``--set`` changed in a chosen config, for example)."""
        ours, theirs = self.to_dict(), other.to_dict()
        return {
            f"{section}.{name}": (value, theirs[section][name])
            for section, values in ours.items()
            for name, value in values.items()
            if value != theirs[section][name]
        }


def override_keys(overrides: Sequence[str]) -> list[str]:
    """The ``section.key`` each ``section.key=value`` override names, in their order (the form
    :meth:`Config.apply_overrides` reads)."""
    return [item.partition("=")[0].strip() for item in overrides]


def override_value(value: Any) -> str:
    """``value`` as a ``section.key=value`` override gives it (:meth:`Config.apply_overrides`):
    JSON without spaces (``[2400,2800]``, ``true``, ``"bn"``)."""
    return json.dumps(value, separators=(",", ":"))


def override_arguments(values: Mapping[str, Any]) -> str:
    """The ``--set`` arguments that give ``values`` (``{"section.key": value}``), each quoted
    for a shell where it needs it: ``train.max_iter=6 'train.steps=[4]'``."""
    return " ".join(shlex.quote(f"{key}={override_value(value)}") for key, value in values.items())


def _did_you_mean(name: str, choices: dict[str, Any], prefix: str = "") -> str:
    """`` (did you mean 'model.num_proposals'?)`` for a near miss, else ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {prefix + close[0]!r}?)" if close else ""


def _from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"config section {where or '<root>'!r} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name: None for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        prefix = f"{where}." if where else ""
        hint = _did_you_mean(unknown[0], names, prefix=prefix)
        keys = ", ".join(repr(prefix + name) for name in unknown)
        valid = f"keys in {where!r}" if where else "sections"
        raise ValueError(
            f"unknown config key(s) {keys}{hint}; valid {valid}: {', '.join(sorted(names))}"
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}" if where else name)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _from_dict(hint, value, where)  # type: ignore[arg-type]
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"config key {where!r} expects a list, got {value!r}")
        args = typing.get_args(hint)
        if args[-1] is Ellipsis:
            return tuple(_coerce(args[0], v, where) for v in value)
        # A fixed length (pixel_mean's 3 channels): another failed inside the model's build.
        if len(value) != len(args):
            raise ValueError(f"config key {where!r} expects {len(args)} values, got {value!r}")
        return tuple(_coerce(item, v, where) for item, v in zip(args, value, strict=True))
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ValueError(f"config key {where!r} must be one of {allowed}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"config key {where!r} expects true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"config key {where!r} expects an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"config key {where!r} expects a number, got {value!r}")
        return float(value)
    if hint is str and not isinstance(value, str):
        raise ValueError(f"config key {where!r} expects a string, got {value!r}")
    return value
