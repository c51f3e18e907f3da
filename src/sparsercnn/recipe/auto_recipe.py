"""``--preset auto``: a training recipe chosen from the dataset, the hardware and the budget.

:func:`choose_recipe` starts from a model size (:func:`~sparsercnn.presets.small` or
:func:`~sparsercnn.presets.medium` from scratch, the paper's R50 recipe from published weights)
and sets, each with its reason:

- the **input size**: the smallest short side (a multiple of 32, never above the images' own)
  at which 90% of the boxes keep at least :data:`TARGET_BOX_PX` pixels (``sqrt(w * h)``), within
  what the budget allows: at least :data:`MIN_ITERATIONS` steps must fit, priced with a short
  timing of real training steps (:class:`~sparsercnn.recipe.step_timing.StepCost`);
- the **number of proposals**: comfortably above the most objects in one image;
- batch size, learning rate, warm-up, schedule (fitted to the budget), precision (bf16 where the
  device runs it natively) and data-loading workers;
- with weights (``--init-from``, ``--backbone-weights``): the architecture they fit, the
  fine-tuning learning rate, and a frozen backbone when the set is very small.

It also lists what would make the run go wrong (:attr:`Recipe.warnings`), and refuses a budget
shorter than one logged window of steps. Every choice is an ordinary config value: the run's
``config.json`` holds them and ``--set`` overrides any of them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sparsercnn.config import Config, ModelConfig
from sparsercnn.presets import medium, r50_100pro_3x, small
from sparsercnn.recipe.dataset_profile import DatasetProfile
from sparsercnn.recipe.hardware import Hardware
from sparsercnn.recipe.step_timing import StepCost

logger = logging.getLogger(__name__)

# A box whose sqrt(w * h) falls below this after resizing covers under two cells of the
# stride-4 level (P2) that small boxes are pooled from: the model can hardly tell it apart.
MIN_RESOLVABLE_PX = 8.0
# Warn about tiny boxes from this share of the boxes on.
TINY_BOX_WARNING_SHARE = 0.02
# The input size is chosen so that this fraction of the boxes keeps TARGET_BOX_PX pixels.
TARGET_BOX_PX = 12.0
TARGET_BOX_FRACTION = 0.9
MIN_SHORT_SIDE = 128
MAX_SHORT_SIDE = 800
SIZE_STEP = 32
# The long side never exceeds this multiple of the short side (the paper's 1333 / 800).
MAX_ASPECT = 1333 / 800
# Steps a from-scratch run needs to learn the shapes of its classes (the demo reaches 0.6 AP in
# about 1500 steps of 8 images); fewer are allowed but warned about.
MIN_ITERATIONS = 1000
# With a budget for this many steps at a size above the one the objects need, the input grows
# (finer localisation) until the steps would drop below it.
ENOUGH_ITERATIONS = 2000
# From this many steps at the chosen size, the wider model is worth its cost.
MEDIUM_MODEL_ITERATIONS = 4000
# A time-budgeted schedule is this many times the steps the timing expects.
BUDGET_HEADROOM = 2
# Share of the budget left to the final evaluation, checkpoints and the model file.
BUDGET_RESERVE = 0.1
# Without a budget: epochs of a from-scratch run (at least MIN_ITERATIONS * 3 steps) and of a
# fine-tuning run.
SCRATCH_EPOCHS = 60
FINETUNE_EPOCHS = 12
MAX_PROPOSALS = 500
FEW_BOXES_PER_CLASS = 10
# Below these, training from scratch cannot learn much: start from a published model.
SMALL_SET_IMAGES = 100
SMALL_SET_BOXES = 300
SCRATCH_LR_BATCH_8 = 7e-4


@dataclass(frozen=True)
class Choice:
    """One decision of the recipe, for the table it prints."""

    name: str
    value: str
    reason: str


@dataclass
class Recipe:
    """A resolved config with the reasons behind it.

    Attributes:
        config: the config to train with.
        choices: what was chosen and why, in the order printed.
        warnings: what the data, hardware or budget make likely to go wrong.
        seconds_per_iteration: the timed step cost at the chosen size (``None`` when untimed).
        iterations: the steps the schedule was fitted to.
    """

    config: Config
    choices: list[Choice]
    warnings: list[str] = field(default_factory=list)
    seconds_per_iteration: float | None = None
    iterations: int = 0

    def format(self) -> str:
        """The choices as an aligned table, then the warnings."""
        width = max(len(c.name) for c in self.choices)
        value_width = max(len(c.value) for c in self.choices)
        lines = ["auto recipe (override any value with --set):"]
        lines += [
            f"  {c.name:<{width}}  {c.value:<{value_width}}  {c.reason}" for c in self.choices
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``recipe.json`` beside the run's ``config.json``."""
        return {
            "choices": [vars(c) for c in self.choices],
            "warnings": list(self.warnings),
            "seconds_per_iteration": self.seconds_per_iteration,
            "iterations": self.iterations,
        }


@dataclass(frozen=True)
class Budget:
    """What the run may spend: a wall-clock time, or else a number of steps (or neither)."""

    seconds: float | None = None
    iterations: int | None = None


StepCostOf = Callable[[Config], StepCost]
"""Prices a config's training step by input size (a short timing in real runs)."""


def choose_recipe(
    profile: DatasetProfile,
    hardware: Hardware,
    budget: Budget,
    step_cost_of: StepCostOf,
    *,
    init_from: str = "",
    backbone_weights: str = "",
    init_model: ModelConfig | None = None,
    backbone_depth: int | None = None,
) -> Recipe:
    """Choose a config for training on ``profile``'s data on ``hardware`` within ``budget``.

    Args:
        profile: the training set.
        hardware: the device.
        budget: the time or step budget.
        step_cost_of: returns a config's step cost by input size.
        init_from: a detector checkpoint to start from; ``init_model`` is its architecture.
        backbone_weights: ImageNet ResNet weights; ``backbone_depth`` is their depth.

    Raises:
        ValueError: the set has no box, or the budget is shorter than one logged window.
    """
    if profile.num_boxes == 0:
        raise ValueError("the training set has no usable box: there is nothing to learn")
    base, model_reason = _base_config(hardware, init_model, backbone_depth, init_from)
    recipe = _Builder(profile, hardware, budget, step_cost_of, base)
    recipe.choose(model_reason, init_from=init_from, backbone_weights=backbone_weights)
    return recipe.result()


def _base_config(
    hardware: Hardware, init_model: ModelConfig | None, backbone_depth: int | None, init_from: str
) -> tuple[Config, str]:
    """The starting config and why: the weights' architecture, or the small model."""
    if init_model is not None:
        cfg = r50_100pro_3x()
        cfg.model = replace(init_model)
        return cfg, f"the architecture of {init_from}"
    if backbone_depth is not None:
        cfg = r50_100pro_3x()
        cfg.model.backbone_depth = backbone_depth
        return cfg, f"the paper's head on the given ResNet-{backbone_depth} backbone"
    return small(), "trained from scratch: the small model (half-width ResNet-18)"


class _Builder:
    """The choices in order; each one may read the ones before."""

    def __init__(
        self,
        profile: DatasetProfile,
        hardware: Hardware,
        budget: Budget,
        step_cost_of: StepCostOf,
        base: Config,
    ) -> None:
        self.profile = profile
        self.hardware = hardware
        self.budget = budget
        self.step_cost_of = step_cost_of
        self.cfg = base
        self.choices: list[Choice] = []
        self.warnings: list[str] = []
        self.cost: StepCost | None = None
        self.iterations = 0

    @property
    def from_scratch(self) -> bool:
        return not (self.cfg.train.init_from or self.cfg.train.backbone_weights)

    def note(self, name: str, value: object, reason: str) -> None:
        self.choices.append(Choice(name, str(value), reason))

    def choose(self, model_reason: str, *, init_from: str, backbone_weights: str) -> None:
        self.cfg.model.num_classes = self.profile.num_classes
        self.cfg.train = replace(
            self.cfg.train, init_from=init_from, backbone_weights=backbone_weights
        )
        self._precision_and_batch()
        self._proposals()
        self._size_and_schedule(model_reason)
        self._optimiser()
        self._data_warnings()

    def result(self) -> Recipe:
        seconds = None
        if self.cost is not None:
            seconds = self.cost.seconds(self._input_shape(self.cfg.input.test_min_size))
        return Recipe(self.cfg, self.choices, self.warnings, seconds, self.iterations)

    def _precision_and_batch(self) -> None:
        train = self.cfg.train
        train.amp = self.hardware.native_bf16 or self.hardware.is_gpu
        precision = "bf16 autocast" if train.amp else "fp32"
        why = (
            f"{self.hardware.describe()}"
            if train.amp
            else "this CPU would only emulate bf16 (ten times slower than fp32)"
        )
        self.note("precision", precision, why)
        batch = 16 if self.hardware.is_gpu else 8
        train.batch_size = max(1, min(batch, self.profile.num_images))
        train.num_workers = 0 if not self.hardware.is_gpu else 4
        self.cfg.input.test_batch_size = 8
        self.note(
            "batch size",
            train.batch_size,
            "images per step on " + ("the GPU" if self.hardware.is_gpu else "a CPU"),
        )

    def _proposals(self) -> None:
        most = self.profile.max_objects
        base = self.cfg.model.num_proposals
        wanted = max(base, _round_up(most * 1.25 + 5, 10))
        chosen = min(wanted, MAX_PROPOSALS) if self.from_scratch else base
        self.cfg.model.num_proposals = chosen
        if self.from_scratch:
            self.note(
                "proposals",
                chosen,
                f"at most {most} objects in one image (each needs its own proposal)",
            )
        if most > chosen:
            self.warnings.append(
                f"{int((self.profile.objects_per_image > chosen).sum())} images have more "
                f"objects than the {chosen} proposals (up to {most}): the extra objects cannot be "
                "detected; raise model.num_proposals"
                + ("" if self.from_scratch else " (this re-initialises the proposals)")
            )

    def _size_and_schedule(self, model_reason: str) -> None:
        candidates = self._candidate_sides()
        need, need_reason = self._needed_side(candidates)
        if self.budget.seconds is None:
            side = need
            self.note("model", _model_name(self.cfg), model_reason)
            self._set_input(side, need_reason)
            if self.budget.iterations is not None:
                self.iterations = self.budget.iterations
                self._set_schedule("the given number of steps")
            else:
                self.iterations = self._epoch_iterations()
                self._set_schedule(f"{self._epochs_text()} without a time budget")
            return
        self.cost = self.step_cost_of(self.cfg)
        side = self._affordable_side(candidates, need)
        reason = need_reason
        roomy = max(
            [s for s in candidates if self._iterations_at(s) >= ENOUGH_ITERATIONS], default=side
        )
        if roomy > side:
            side = roomy
            reason = f"the largest size at which {ENOUGH_ITERATIONS}+ steps fit the budget"
        if self.from_scratch and self._iterations_at(side) >= MEDIUM_MODEL_ITERATIONS * 2:
            model_reason = self._try_medium(side) or model_reason
        self.note("model", _model_name(self.cfg), model_reason)
        if side < need:
            reason = f"the budget allows ~{self._iterations_at(side)} steps at {side} px"
            self._warn_budget_for(need)
        self._set_input(side, reason)
        self.iterations = self._iterations_at(side)
        self._check_budget(side)
        seconds = self.cost.seconds(self._input_shape(side))
        # The trainer shortens the schedule to the pace it measures, never lengthens it: room
        # for a machine faster than the timing.
        total = BUDGET_HEADROOM * self.iterations
        reason = (
            f"~{self.iterations} steps of {seconds:.2f} s (timed) fit the budget; the trainer "
            "fits the schedule to its measured pace"
        )
        if self.budget.iterations is not None and self.budget.iterations < self.iterations:
            reason = f"the given number of steps (the budget would allow ~{self.iterations})"
            self.iterations = total = self.budget.iterations
        self._set_schedule(reason, total=total)

    def _candidate_sides(self) -> list[int]:
        """Short sides from MIN_SHORT_SIDE up to the images' own (median), in SIZE_STEP steps."""
        native = int(self.profile.median_short_side // SIZE_STEP * SIZE_STEP)
        top = max(MIN_SHORT_SIDE, min(native, MAX_SHORT_SIDE))
        return list(range(MIN_SHORT_SIDE, top + 1, SIZE_STEP))

    def _max_size(self, side: int) -> int:
        return _round_up(side * min(self.profile.long_to_short, MAX_ASPECT), SIZE_STEP)

    def _input_shape(self, side: int) -> tuple[int, int]:
        return side, self._max_size(side)

    def _needed_side(self, candidates: list[int]) -> tuple[int, str]:
        """The smallest candidate keeping TARGET_BOX_FRACTION of the boxes at TARGET_BOX_PX."""
        for side in candidates:
            sides = self.profile.box_sides_at(side, self._max_size(side))
            if np.quantile(sides, 1 - TARGET_BOX_FRACTION) >= TARGET_BOX_PX:
                return side, (
                    f"keeps {TARGET_BOX_FRACTION:.0%} of the boxes at >= {TARGET_BOX_PX:.0f} px"
                )
        side = candidates[-1]
        return side, "the images' own size (smaller would shrink their small objects further)"

    def _iterations_at(self, side: int) -> int:
        assert self.cost is not None and self.budget.seconds is not None
        usable = self.budget.seconds * (1 - BUDGET_RESERVE)
        return int(usable / self.cost.seconds(self._input_shape(side)))

    def _affordable_side(self, candidates: list[int], need: int) -> int:
        """``need`` if MIN_ITERATIONS fit at it, else the largest candidate where they fit."""
        fitting = [s for s in candidates if s <= need and self._iterations_at(s) >= MIN_ITERATIONS]
        return max(fitting) if fitting else candidates[0]

    def _try_medium(self, side: int) -> str | None:
        """Switch to the medium model when it still gets MEDIUM_MODEL_ITERATIONS steps."""
        candidate = medium()
        candidate.model = replace(
            candidate.model,
            num_classes=self.cfg.model.num_classes,
            num_proposals=max(self.cfg.model.num_proposals, candidate.model.num_proposals),
        )
        cost = self.step_cost_of(candidate)
        assert self.budget.seconds is not None
        steps = self.budget.seconds * (1 - BUDGET_RESERVE) / cost.seconds(self._input_shape(side))
        if steps < MEDIUM_MODEL_ITERATIONS:
            return None
        self.cfg.model, self.cost = candidate.model, cost
        return f"the budget allows ~{int(steps)} steps of the medium model at {side} px"

    def _set_input(self, side: int, reason: str) -> None:
        max_size = self._max_size(side)
        self.cfg.input = replace(
            self.cfg.input,
            train_min_sizes=(side,),
            train_max_size=max_size,
            test_min_size=side,
            test_max_size=max_size,
            crop=False,
        )
        self.note("input size", f"{side} (long side <= {max_size})", reason)
        tiny = self.profile.box_sides_at(side, max_size) < MIN_RESOLVABLE_PX
        if tiny.mean() >= TINY_BOX_WARNING_SHARE:
            upscale = side >= self._candidate_sides()[-1]
            advice = (
                "they are that small in the images themselves (inputs are never upscaled)"
                if upscale
                else "a longer --time-budget allows a larger input size"
            )
            self.warnings.append(
                f"{int(tiny.sum())} of {tiny.size} boxes ({tiny.mean():.0%}) are under "
                f"{MIN_RESOLVABLE_PX:.0f} px at input size {side} "
                f"({_most_affected_classes(self.profile, tiny)}) and will be hard to detect; "
                + advice
            )

    def _warn_budget_for(self, side: int) -> None:
        assert self.cost is not None
        seconds = self.cost.seconds(self._input_shape(side)) * MIN_ITERATIONS
        minutes = seconds / (1 - BUDGET_RESERVE) / 60
        self.warnings.append(
            f"input size {side} would keep the small objects, but {MIN_ITERATIONS} steps there "
            f"need about {minutes:.0f} minutes: pass --time-budget {math.ceil(minutes)} or more"
        )

    def _check_budget(self, side: int) -> None:
        assert self.cost is not None and self.budget.seconds is not None
        step = self.cost.seconds(self._input_shape(side))
        window = step * self.cfg.train.log_period
        if self.budget.seconds < window:
            raise ValueError(
                f"--time-budget {self.budget.seconds / 60:.2f} min is shorter than one logged "
                f"window ({self.cfg.train.log_period} steps of {step:.2f} s); give at least "
                f"{math.ceil(window / 60 * 10) / 10:.1f} min"
            )
        if self.iterations < MIN_ITERATIONS:
            minutes = step * MIN_ITERATIONS / (1 - BUDGET_RESERVE) / 60
            self.warnings.append(
                f"the budget gives only ~{self.iterations} steps ({step:.2f} s each at {side} px): "
                f"too short to learn much; about {minutes:.0f} minutes give {MIN_ITERATIONS}"
            )

    def _epoch_iterations(self) -> int:
        epochs = SCRATCH_EPOCHS if self.from_scratch else FINETUNE_EPOCHS
        steps = math.ceil(epochs * self.profile.num_images / self.cfg.train.batch_size)
        floor = 3 * MIN_ITERATIONS if self.from_scratch else MIN_ITERATIONS
        return max(steps, floor)

    def _epochs_text(self) -> str:
        epochs = SCRATCH_EPOCHS if self.from_scratch else FINETUNE_EPOCHS
        return f"{epochs} epochs of {self.profile.num_images} images"

    def _set_schedule(self, reason: str, total: int | None = None) -> None:
        total = max(total or self.iterations, 1)
        train = self.cfg.train
        train.max_iter = total
        train.steps = (max(1, round(total * 0.8)), max(1, round(total * 14 / 15)))
        train.warmup_iters = min(1000, max(50, round(total * 0.02)))
        train.checkpoint_period = max(100, total // 5)
        train.eval_period = 0
        train.log_period = 10 if total < 20000 else 20
        self.note("schedule", f"{self.iterations} steps, lr x0.1 at 80% and 93%", reason)
        self.note("warm-up", f"{train.warmup_iters} steps", "2% of the steps, 50 to 1000")

    def _optimiser(self) -> None:
        train = self.cfg.train
        if self.from_scratch:
            train.scale_lr = False
            train.lr = SCRATCH_LR_BATCH_8 * math.sqrt(train.batch_size / 8)
            self.note("learning rate", f"{train.lr:.2g}", "AdamW from scratch (sqrt batch scaling)")
            return
        train.scale_lr = True  # the paper's 2.5e-5 per 16 images, scaled linearly
        self.note("learning rate", f"{train.lr:.2g} per 16 images", "the paper's fine-tuning rate")
        if self.cfg.train.init_from and self.profile.num_boxes < SMALL_SET_BOXES:
            train.freeze = "backbone"
            self.note(
                "frozen",
                "backbone + FPN",
                f"only {self.profile.num_boxes} boxes: train the head on the pretrained features",
            )

    def _data_warnings(self) -> None:
        profile = self.profile
        few = [
            f"{name} ({count})"
            for name, count in zip(
                profile.class_names, profile.boxes_per_class.tolist(), strict=True
            )
            if count < FEW_BOXES_PER_CLASS
        ]
        if few:
            self.warnings.append(
                f"{len(few)} classes have fewer than {FEW_BOXES_PER_CLASS} boxes: "
                f"{', '.join(few[:8])}{' ...' if len(few) > 8 else ''}; expect a low AP on them"
            )
        small_set = profile.num_images < SMALL_SET_IMAGES or profile.num_boxes < SMALL_SET_BOXES
        if self.from_scratch and small_set:
            self.warnings.append(
                f"{profile.num_images} images with {profile.num_boxes} boxes are few to train a "
                "detector from scratch: start from a published model with --init-from "
                "r50_100pro_3x (weights downloaded once) or your own model file"
            )


def _model_name(cfg: Config) -> str:
    model = cfg.model
    width = "" if model.backbone_width == ModelConfig.backbone_width else f"/{model.backbone_width}"
    return f"R{model.backbone_depth}{width}, head {model.hidden_dim}"


def _round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)


def _most_affected_classes(profile: DatasetProfile, tiny: np.ndarray, limit: int = 4) -> str:
    """``"star 40%, ring 12%"``: the classes with the largest share of tiny boxes."""
    counts = np.bincount(profile.box_labels[tiny], minlength=profile.num_classes)
    shares = counts / np.maximum(profile.boxes_per_class, 1)
    order = [i for i in np.argsort(-shares) if counts[i] > 0][:limit]
    return ", ".join(f"{profile.class_names[i]} {shares[i]:.0%}" for i in order)
