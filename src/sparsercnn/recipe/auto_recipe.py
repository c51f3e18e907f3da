"""``--preset auto``: a training recipe chosen from the dataset, the hardware and the budget.

:func:`choose_recipe` starts from a model size (:func:`~sparsercnn.presets.small` from scratch,
:func:`~sparsercnn.presets.medium` when the budget has room for it, the paper's R50 recipe from
published weights) and sets, each with its reason:

- the **input size** (:func:`~sparsercnn.recipe.input_size.choose_input_size`): the best trade
  of small objects against training steps, priced with a short timing of real training steps
  (:class:`~sparsercnn.recipe.step_timing.StepCost`);
- the **number of proposals**: comfortably above the most objects in one image;
- the **number of stages** from scratch under a time budget: :data:`SHORT_BUDGET_STAGES` unless
  the paper's six still get :data:`SIX_STAGE_ITERATIONS` steps or the given ``train.max_iter``,
  or the images hold few objects (:data:`FEW_OBJECTS_PER_IMAGE`); without a budget the paper's
  six. Fewer stages are taken only where they buy steps: a run of given steps trains the same
  stages with a budget that fits them as without one;
- batch size, learning rate, warm-up, schedule (fitted to the budget), precision (bf16 where the
  device runs it natively);
- from scratch, **random crops** besides the flips when the schedule passes over each image
  :data:`CROP_FROM_PASSES` times or more (a small set, a long budget, or none); the steps, and
  under a time budget the input size, are then priced with the crops;
- with weights (``--init-from``, ``--backbone-weights``): the architecture they fit, the
  fine-tuning learning rate, and a frozen backbone when the set is very small.

Under a time budget every choice counts the steps the run trains: the budget's, or a given
``train.max_iter`` where the budget fits it (fewer steps than the budget's do not buy the medium
model, and a larger input or the six stages cost none of them). Advice to train longer names the
flag that limits the run: ``--time-budget``, and ``train.max_iter`` where a given one is short.

It lists what would make the run go wrong (:mod:`~sparsercnn.recipe.advice`, budget warnings),
and refuses a budget that ends the run before one logged window of steps. Every choice is an
ordinary config value: the run's ``config.json`` holds them and ``--set`` overrides any of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from sparsercnn.config import Config, InputConfig, ModelConfig, override_keys
from sparsercnn.data.transforms import build_train_transform
from sparsercnn.engine.lr_schedule import Schedule, decay_steps, images_per_step
from sparsercnn.presets import medium, r50_100pro_3x, small
from sparsercnn.recipe import advice
from sparsercnn.recipe.dataset_profile import DatasetProfile
from sparsercnn.recipe.hardware import Hardware
from sparsercnn.recipe.input_size import (
    InputChoice,
    InputSize,
    choose_input_size,
    largest_input_reason,
    proposal_coverage,
    resolvable_share,
)
from sparsercnn.recipe.recipe import Budget, Choice, Recipe
from sparsercnn.recipe.step_timing import StepCost
from sparsercnn.text import counted
from sparsercnn.weights.finetune import ARCHITECTURE_FIELDS

# Fewer steps than this are too few to learn much from scratch (warned about, with the budget
# that would give them).
MIN_ITERATIONS = 1000
# From this many steps of the small model at the chosen size, the medium model is tried, and
# taken if it still gets MEDIUM_MODEL_ITERATIONS.
MEDIUM_MODEL_ITERATIONS = 4000
# From scratch under a time budget, the small model trains this many refinement stages unless
# the paper's six still get SIX_STAGE_ITERATIONS steps, or the given train.max_iter (which fewer
# stages would not raise: they only buy steps the budget limits). On the demo's data (fp32, AVX2
# kernels, 6.8 minutes) 6 stages reached 1250 steps and AP 0.48, 4 stages 1480 steps and 0.56, 3
# stages 1803 steps and 0.58: short runs gain more from steps than from the later stages, which a
# model trained with six adds little to (stages 3 / 6 of the 1687-step demo model: AP 0.61 /
# 0.63).
SHORT_BUDGET_STAGES = 3
SIX_STAGE_ITERATIONS = 4000
# ... except on sets whose images hold at most this many objects (median): there each stage's
# loss has few boxes to learn from, and every stage counts. 10 minutes on photos of 1000-2000 px
# with large objects: 1-3 per image (median 2), six stages AP 0.52 in 1644 steps against three's
# 0.41 in 2016; 4-6 per image (median 5), 0.55 in 1557 against 0.50 in 2096. With a median of 6
# (the demo's shapes, 24 classes) three did as well or better.
FEW_OBJECTS_PER_IMAGE = 5
# A time-budgeted schedule is this many times the steps the timing expects (the trainer shortens
# a schedule to the pace it measures, never lengthens it).
BUDGET_HEADROOM = 2
# Share of the budget left to the final evaluation, checkpoints and the model file.
BUDGET_RESERVE = 0.1
# Without a budget: epochs of a from-scratch run (at least 3 * MIN_ITERATIONS steps) and of a
# fine-tuning run (at least MIN_ITERATIONS).
SCRATCH_EPOCHS = 60
FINETUNE_EPOCHS = 12
MAX_PROPOSALS = 500
# Proposals per object of the densest image (plus PROPOSALS_SLACK): near one per object every
# slot is needed, and ground truth beyond N can never be matched (spec 13 #4).
PROPOSALS_PER_OBJECT = 1.25
PROPOSALS_SLACK = 5
# From this many passes over each training image (steps x batch / images), training from scratch
# adds random crops to the flips: many passes over few images let the model memorise them.
# 10 minutes, seed 1: 43 aerial photos of tree crowns (745 boxes), ~330 passes, AP 0.016 with flips
# only (a run on another split of the photos: 0.95 on its training images) against 0.111 with
# crops; 1-3 large objects on 160 photos, ~80 passes, 0.548 against 0.600; the demo's shapes (600
# images), ~24 passes, 0.727 against 0.692. The demo's own runs (~46-52 passes) stay below, with
# room for a faster machine.
CROP_FROM_PASSES = 70
# The crop policy (spec 1.3) at the input's short side S: resize the short side to one of these
# multiples of S, cut a window of CROP_WINDOW x S per side (at most the image), resize it to S. At
# S = 320 these are the paper's 400-600 px and 384-600 px windows: zooms of up to ~1.5x.
CROP_PRE_SIZES = (1.25, 1.5625, 1.875)
CROP_WINDOW = (1.2, 1.875)
CROP_KEYS = ("input.crop", "input.crop_pre_sizes", "input.crop_size")
# A crop is resized to the input's short side S, an image whose resize its long side bounds (an
# elongated image, or one fitted into a square) to less: crops enlarge such images by S over
# their resized short side on top of their own zoom, and the pre-crop resize (no long-side cap)
# makes a 200x4000 image fitted into 1280x1280 one of 2400x48000. Crops are left out when the
# median image is enlarged more than this (a guard, not a measured optimum).
CROP_MAX_FRAME_ZOOM = 2.0
SCRATCH_LR_BATCH_8 = 7e-4

StepCostOf = Callable[[Config], StepCost]
"""Prices a config's training step by input size (a short timing in real runs)."""
SpentSeconds = Callable[[], float]
"""Seconds of the time budget spent so far (on the data's profile and the timing)."""


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
    spent_seconds: SpentSeconds | None = None,
    batch_size: int | None = None,
    world_size: int = 1,
    overrides: Sequence[str] = (),
) -> Recipe:
    """Choose a config for training on ``profile``'s data on ``hardware`` within ``budget``.

    Args:
        profile: the training set.
        hardware: the device.
        budget: the time or step budget.
        step_cost_of: returns a config's step cost by input size.
        init_from: a detector checkpoint to start from; ``init_model`` is its architecture.
        backbone_weights: ImageNet ResNet weights; ``backbone_depth`` is their depth.
        spent_seconds: what the choice has spent of the time budget, read once after the first
            timing (most of it: the first steps pay for start-up), so that every number of the
            recipe counts the same steps: those of the budget left then (without it, the whole
            budget). Later candidates' timings are left to the trainer's refit.
        batch_size: the images per step to train with (``train.batch_size`` given), which the
            timing, the steps and the learning rate follow; else chosen for the device.
        world_size: the training processes (torchrun), each of ``train.batch_size`` images per
            step: the learning rate and the passes over the data follow their total.
        overrides: the ``--set`` values (``section.key=value``) the run trains with: the timing,
            the steps, the other choices and the warnings are those of the config with them, a
            given ``model.num_proposals`` or ``model.num_stages`` is not chosen, a model size
            they do not fit is not taken (the medium model from scratch when they fit only it),
            and the rows they give are starred (:attr:`Choice.given`). ``Recipe.config`` holds
            the recipe's own choices: apply ``overrides`` to it for the run's.

    Raises:
        ValueError: the set has no box, the overrides fit none of the models the recipe may
            train, or the budget left after the timing (if any) is shorter than one logged
            window (of the given ``train.max_iter`` where fewer: steps the budget fits end the
            run before it, and are never refused).
    """
    if profile.num_boxes == 0:
        raise ValueError("the training set has no usable box: there is nothing to learn")
    check_overrides_fit_weights(
        overrides,
        init_from=init_from,
        init_model=init_model,
        backbone_weights=backbone_weights,
        backbone_depth=backbone_depth,
    )
    budget, batch_size = _given_steps_and_batch(list(overrides), budget, batch_size)
    if init_model is not None:
        cfg = replace(r50_100pro_3x(), model=replace(init_model))
        model_reason = f"the architecture of {init_from}"
    elif backbone_depth is not None:
        cfg = r50_100pro_3x()
        cfg.model.backbone_depth = backbone_depth
        model_reason = f"the paper's head on the given ResNet-{backbone_depth} backbone"
    else:
        cfg, model_reason = _scratch_model(list(overrides))
        if budget.seconds is not None:
            cfg.model.num_stages = SHORT_BUDGET_STAGES
    cfg.model.num_classes = profile.num_classes
    cfg.train = replace(cfg.train, init_from=init_from, backbone_weights=backbone_weights)
    builder = _Builder(
        profile,
        hardware,
        budget,
        step_cost_of,
        cfg,
        spent_seconds,
        batch_size,
        world_size,
        list(overrides),
    )
    builder.choose(model_reason)
    return builder.result()


def check_overrides_fit_weights(
    overrides: Sequence[str],
    *,
    init_from: str = "",
    init_model: ModelConfig | None = None,
    backbone_weights: str = "",
    backbone_depth: int | None = None,
) -> ModelConfig | None:
    """Refuse ``--set`` values that change what the starting weights fix of the model
    :func:`choose_recipe` trains with them: the architecture of the detector checkpoint
    ``init_from`` (``init_model``), or the depth of the ResNet of ``backbone_weights``
    (``backbone_depth``) under the paper's head. Their tensors load into no other model, so
    such a run would fail only once the weights load, after the data's check and the timing;
    the CLI calls this before both.

    Returns:
        The model the run trains with the weights and the overrides (``None`` without
        weights), for the weights' own check (their ResNet's width).

    Raises:
        ValueError: the message names the ``--set`` values, the option and file of the weights,
            and the weights' values; or the overrides do not fit the weights' model at all.
    """
    fields: tuple[str, ...]
    if init_model is not None:
        option, source, fields = "--init-from", init_from, ARCHITECTURE_FIELDS
        fixed, trained = init_model, f"the architecture of {init_from}"
    elif backbone_depth is not None:
        option, source, fields = "--backbone-weights", backbone_weights, ("backbone_depth",)
        fixed = replace(r50_100pro_3x().model, backbone_depth=backbone_depth)
        trained = f"the paper's head on the given ResNet-{backbone_depth} backbone ({source})"
    else:
        return None
    try:
        cfg = replace(r50_100pro_3x(), model=replace(fixed))
        model = cfg.apply_overrides(list(overrides)).model
    except ValueError as error:
        raise ValueError(
            f"--set: {error} (in {trained}, which --preset auto trains); give values that fit "
            "it, or a fixed --preset"
        ) from error
    changed = [name for name in fields if getattr(model, name) != getattr(fixed, name)]
    if not changed:
        return model
    # The last value given for a key is the one applied.
    given = dict(zip(override_keys(overrides), (item.strip() for item in overrides), strict=True))
    named = " ".join(given[f"model.{name}"] for name in changed)
    theirs = ", ".join(f"{name} {getattr(fixed, name)}" for name in changed)
    raise ValueError(
        f"--set {named}: {option} {source} has {theirs}, which --preset auto keeps (the weights "
        f"load into no other architecture); leave {'it' if len(changed) == 1 else 'them'} out "
        f"of --set, or train without {option}"
    )


def _given_steps_and_batch(
    overrides: list[str], budget: Budget, batch_size: int | None
) -> tuple[Budget, int | None]:
    """``budget`` and ``batch_size`` with the ``train.max_iter`` and ``train.batch_size`` of
    ``overrides`` where not given otherwise: the steps and the batch the run trains with."""
    keys = override_keys(overrides)
    train_overrides = [
        item for item, key in zip(overrides, keys, strict=True) if key.startswith("train.")
    ]
    given = Config().apply_overrides(train_overrides).train
    if budget.iterations is None and "train.max_iter" in keys:
        budget = replace(budget, iterations=given.max_iter)
    if batch_size is None and "train.batch_size" in keys:
        batch_size = given.batch_size
    return budget, batch_size


def _scratch_model(overrides: list[str]) -> tuple[Config, str]:
    """The model to start from without weights, and why: the small one, or the medium one when
    the ``overrides`` fit only it (``model.num_heads=128`` divides the medium head's width of
    128, not the small one's 64).

    Raises:
        ValueError: the overrides fit neither (the small model's error).
    """
    try:
        small().apply_overrides(overrides)
    except ValueError as small_error:
        try:
            medium().apply_overrides(overrides)
        except ValueError:
            raise small_error from None
        given = " ".join(item for item in overrides if item.startswith("model."))
        reason = f"from scratch: the medium model (standard ResNet-18), the one --set {given} fits"
        return medium(), reason
    return small(), "from scratch: the small model (half-width ResNet-18)"


def candidate_presets(init_from: bool, backbone_weights: bool) -> tuple[str, ...]:
    """The presets whose model :func:`choose_recipe` may train: with a detector checkpoint
    (``init_from``) its architecture, not known before the file is read, so any of them; with
    ResNet ``backbone_weights`` the paper's head (``r50_100pro_3x``); from scratch ``small``, or
    ``medium`` when the budget has room (``_Builder._try_medium``)."""
    if init_from:
        return ("small", "medium", "r50_100pro_3x")
    if backbone_weights:
        return ("r50_100pro_3x",)
    return ("small", "medium")


class _Builder:
    """The choices in order; each one may read the ones before."""

    def __init__(
        self,
        profile: DatasetProfile,
        hardware: Hardware,
        budget: Budget,
        step_cost_of: StepCostOf,
        cfg: Config,
        spent_seconds: SpentSeconds | None,
        batch_size: int | None = None,
        world_size: int = 1,
        overrides: list[str] | None = None,
    ) -> None:
        self.profile = profile
        # The --set values the run trains with, and the keys they give.
        self.overrides = list(overrides or ())
        self.given = frozenset(override_keys(self.overrides))
        self.hardware = hardware
        self.budget = budget
        self.step_cost_of = step_cost_of
        self.spent_seconds = spent_seconds
        self.given_batch_size = batch_size
        self.world_size = world_size
        # The budget spent when the first step cost came (the steps count from there).
        self.spent = 0.0
        self._priced = False
        self.cfg = cfg
        self.from_scratch = not (cfg.train.init_from or cfg.train.backbone_weights)
        self.choices: list[Choice] = []
        self.warnings: list[str] = []
        # The crowd warning of the proposals set last (a later choice replaces it).
        self._crowd_warning: str | None = None
        self.cost: StepCost | None = None
        self.iterations = 0
        self.size: InputSize | None = None

    def note(self, name: str, value: object, reason: str, *keys: str) -> None:
        """Record a choice and the config values (``section.key``) it set; where a ``--set``
        gives one of them, the row shows what the run trains with (:data:`_TRAINED_VALUE`) and
        the recipe's own choice in its reason."""
        self.choices.append(self._row(name, value, reason, *keys))

    def _row(self, name: str, value: object, reason: str, *keys: str) -> Choice:
        """The table's row of a choice (:meth:`note`)."""
        given = sorted(self.given.intersection(keys))
        if not given:
            return Choice(name, str(value), reason, keys)
        by = f"given by --set {', '.join(given)}"
        trained = self.trained()
        if trained.differences(self.cfg).keys().isdisjoint(keys):  # what the recipe took
            return Choice(name, str(value), f"{by}: {reason}", keys, given=True)
        shown = str(_TRAINED_VALUE[name](trained))
        mine = f"the recipe's {value}: " if shown != str(value) else ""
        return Choice(name, shown, f"{by} ({mine}{reason})", keys, given=True)

    def trained(self, cfg: Config | None = None) -> Config:
        """``cfg`` (the recipe's config so far) with the ``--set`` values: what the run trains."""
        cfg = self.cfg if cfg is None else cfg
        return cfg.apply_overrides(self.overrides) if self.overrides else cfg

    def fits(self, cfg: Config) -> bool:
        """Whether the ``--set`` values fit ``cfg`` (its model, for one)."""
        try:
            self.trained(cfg)
        except ValueError:
            return False
        return True

    def trained_size(self, *, test: bool = False) -> InputSize:
        """The input size the run trains (or with ``test``, evaluates) at: the recipe's, or the
        one a ``--set`` of ``input.*`` gives (the largest of several training sizes)."""
        assert self.size is not None
        if not self.given.intersection(_INPUT_KEYS):
            return self.size
        given = self.trained().input
        if test:
            return InputSize(given.test_min_size, given.test_max_size)
        return InputSize(max(given.train_min_sizes), given.train_max_size)

    def warn(self, warning: str | None) -> None:
        if warning is not None:
            self.warnings.append(warning)

    def choose(self, model_reason: str) -> None:
        self._precision_and_batch()
        if self.budget.seconds is None:
            self._note_model(model_reason)
            self._note_stages()
            self._untimed_size_and_schedule()
        else:
            self._timed_size_and_schedule(model_reason)
        if self.from_scratch:
            self._note_augmentation()
        self._optimiser()
        self.warn(advice.rare_class_warning(self.profile))
        if self.from_scratch:
            self.warn(advice.small_set_warning(self.profile))

    def result(self) -> Recipe:
        seconds = None
        if self.cost is not None and self.size is not None:
            seconds = self.cost.seconds(self._pixels(self.trained_size()))
        # In one order whichever way they were chosen (the timed path sets the proposals first).
        rows = sorted(self.choices, key=lambda c: list(_TRAINED_VALUE).index(c.name))
        return Recipe(self.cfg, rows, self.warnings, seconds, self.iterations)

    def _note_model(self, reason: str) -> None:
        self.note("model", _model_name(self.cfg), reason, *_MODEL_KEYS)

    def _note_stages(self, reason: str | None = None) -> None:
        """The stages' row: ``reason`` where the recipe chose them (from scratch under a time
        budget), else the model's own count, as the proposals' row: from scratch always, with
        weights (whose count it is) only where a ``--set`` gives it."""
        if reason is None and self.from_scratch:
            reason = "the paper's; fewer only under a --time-budget, where they buy more steps"
        elif reason is None and "model.num_stages" in self.given:
            init_from = self.cfg.train.init_from
            reason = f"those of {init_from} (--init-from)" if init_from else "the paper's"
        if reason is None:
            return
        self.note("stages", self.cfg.model.num_stages, reason, "model.num_stages")

    def _precision_and_batch(self) -> None:
        train = self.cfg.train
        train.amp = self.hardware.native_bf16 or self.hardware.is_gpu
        if train.amp:
            self.note("precision", "bf16 autocast", self.hardware.describe(), "train.amp")
        else:
            reason = "this CPU would only emulate bf16 (ten times slower)"
            self.note("precision", "fp32", reason, "train.amp")
        batch = 16 if self.hardware.is_gpu else 8
        train.batch_size = max(1, min(batch, self.profile.num_images))
        # On a CPU, loading in the training process beats workers competing for its cores.
        train.num_workers = 4 if self.hardware.is_gpu else 0
        self.cfg.input.test_batch_size = 8
        where = "the GPU" if self.hardware.is_gpu else "a CPU"
        reason = f"images per step on {where}"
        if self.given_batch_size is not None:
            train.batch_size, reason = self.given_batch_size, "the given images per step"
        if self.world_size > 1:
            reason += (
                f", per process: {self.world_size} processes train {self.images_per_step} "
                "images per step"
            )
        self.note("batch size", train.batch_size, reason, "train.batch_size")

    @property
    def images_per_step(self) -> int:
        """Images per optimiser step over every process (what the lr and passes follow)."""
        return images_per_step(self.trained().train, self.world_size)

    def _wanted_proposals(self) -> int:
        """Comfortably above the most objects in one image (from scratch; else the weights'),
        or those a ``--set`` gives."""
        if "model.num_proposals" in self.given:
            return self.trained().model.num_proposals
        if not self.from_scratch:
            return self.cfg.model.num_proposals
        wanted = proposals_for(self.profile.max_objects)
        return min(max(self.cfg.model.num_proposals, wanted), MAX_PROPOSALS)

    def _proposals_reason(self, proposals: int, why: str = "") -> str:
        """Why ``proposals`` for the set's densest image: above it (``why`` added), the model's
        own count from scratch where the densest image needs fewer, or the recipe's cap of
        MAX_PROPOSALS below it."""
        most = self.profile.max_objects
        objects = counted(most, "object")
        if proposals >= MAX_PROPOSALS and proposals < most:
            return f"the most the recipe trains; up to {objects} in one image"
        needed = proposals_for(most)
        is_medium = self.cfg.model.backbone_width == medium().model.backbone_width
        name, own = ("medium", medium()) if is_medium else ("small", small())
        given = "model.num_proposals" in self.given
        if self.from_scratch and not given and own.model.num_proposals == proposals > needed:
            return f"the {name} model's default (at most {objects} in one image: {needed} would do)"
        return f"at most {objects} in one image" + (f" ({why})" if why else "")

    def _set_proposals(self, proposals: int, reason: str) -> None:
        """Set the proposals, with their row of the table and their crowd warning, in place of
        those of proposals set before (the six stages or the medium model choose again)."""
        self.cfg.model.num_proposals = proposals
        # With weights the count is theirs, and a row only when a --set gives it.
        if self.from_scratch or "model.num_proposals" in self.given:
            row = self._row("proposals", proposals, reason, "model.num_proposals")
            rows = [i for i, c in enumerate(self.choices) if c.name == "proposals"]
            if rows:
                self.choices[rows[0]] = row
            else:
                self.choices.append(row)
        if not self.from_scratch:
            remedy = (
                f"the proposals are those of {self.cfg.train.init_from} (--init-from), whose "
                "weights load into no other count: start from a model with more proposals"
                if self.cfg.train.init_from
                else "set model.num_proposals"
            )
        elif "model.num_proposals" in self.given:
            remedy = "set a larger model.num_proposals"
        elif proposals >= MAX_PROPOSALS:
            remedy = f"set model.num_proposals above the recipe's {MAX_PROPOSALS} (slower steps)"
        elif self.budget.seconds is not None:
            remedy = "a longer --time-budget affords more, or set model.num_proposals"
        else:
            remedy = "set model.num_proposals"
        warning = advice.crowd_warning(self.profile, proposals, remedy)
        if self._crowd_warning in self.warnings:
            self.warnings.remove(self._crowd_warning)
        self._crowd_warning = warning
        self.warn(warning)

    def _untimed_size_and_schedule(self) -> None:
        """Without a time budget: enough proposals, the smallest size resolving the boxes, steps
        by epochs."""
        proposals = self._wanted_proposals()
        self._set_proposals(proposals, self._proposals_reason(proposals))
        steps = self.budget.iterations or self._epoch_iterations()
        choice = choose_input_size(self.profile, lambda size: steps)
        reason = "the smallest size resolving the boxes"
        if resolvable_share(self.profile, choice.resolving) < 0.99:
            reason = (
                f"none resolves the boxes: {largest_input_reason(self.profile, choice.resolving)}"
            )
        self._set_input(choice.resolving, reason)
        self.iterations = steps
        if self.from_scratch:
            self._choose_crops(steps)
        self._warn_given_steps()
        if self.budget.iterations is not None:
            self._set_schedule("the given number of steps")
        else:
            self._set_schedule(self._epochs_reason())

    def _timed_size_and_schedule(self, model_reason: str) -> None:
        # Only a model from scratch gets its stages chosen: weights (--init-from) keep theirs.
        short_budget = self.from_scratch and self.cfg.model.num_stages < ModelConfig.num_stages
        stages_reason = None
        if "model.num_stages" in self.given and self.from_scratch:
            short_budget = False
            self.cfg.model.num_stages = self.trained().model.num_stages
            stages_reason = "the timing and the steps are those of these stages"
        median = float(np.median(self.profile.objects_per_image))
        if short_budget and median <= FEW_OBJECTS_PER_IMAGE:
            self.cfg.model.num_stages = ModelConfig.num_stages
            objects = f"{median:g} object{'' if median == 1 else 's'} in the median image"
            stages_reason = (
                f"the paper's: {objects} give{'s' if median == 1 else ''} each stage few boxes to "
                "learn from, and every stage counts"
            )
        choice = self._choose_proposals_and_size()
        if stages_reason is None and short_budget:
            choice, stages_reason = self._try_six_stages(choice)
        size = choice.size
        assert self.cost is not None
        six = self.cfg.model.num_stages == ModelConfig.num_stages
        # The medium model's steps are about half the small one's (and no more than given).
        roomy = self._capped(self._budget_steps_at(size) / 2) >= MEDIUM_MODEL_ITERATIONS
        larger = self.cfg.model.backbone_width < medium().model.backbone_width
        if self.from_scratch and six and roomy and larger:
            medium_reason = self._try_medium(size)
            if medium_reason is not None:
                model_reason = medium_reason
                # The input size's reason counts the medium model's steps (the size is kept).
                again = self._choose_input()
                if again.size == size:
                    choice = replace(choice, reason=again.reason)
        self._use_input(size)
        if self.from_scratch:
            choice = self._with_crops(choice)
        self._note_model(model_reason)
        self._note_stages(stages_reason)
        self._note_input(choice.reason)
        size = self.trained_size()  # what the steps are priced at
        self.iterations = int(self._budget_steps_at(size))
        self._check_budget(replace(choice, size=size))
        total = BUDGET_HEADROOM * self.iterations
        seconds = self.cost.seconds(self._pixels(size))
        reason = f"~{counted(self.iterations, 'step')} of {seconds:.2f} s (timed) fit the budget"
        if self.budget.iterations is not None and self.budget.iterations <= self.iterations:
            reason = f"the given number of steps (the budget would allow ~{self.iterations})"
            self.iterations = total = self.budget.iterations
            self._warn_given_steps(self._minutes_for(size))
        elif self.budget.iterations is not None:
            # The given schedule, which the trainer shortens to the budget: its decays keep
            # their places (80%, 93%) only when they are set from its length.
            reason += ", fewer than the given number of steps"
            total = self.budget.iterations
        self._set_schedule(reason, total=total)

    def _choose_proposals_and_size(self) -> InputChoice:
        """Proposals and input size together: each proposal count is timed (more proposals, a
        costlier head and matching), and the count whose best size gives the most resolvable
        boxes x detectable boxes x training progress wins."""
        wanted = self._wanted_proposals()
        counts = sorted({self.cfg.model.num_proposals, wanted})
        if "model.num_proposals" in self.given:
            counts = [wanted]
        options = []
        for count in counts:
            model = replace(self.cfg.model, num_proposals=count)
            cost = self._price(replace(self.cfg, model=model))
            self.cost = cost
            choice = self._choose_input()
            coverage = proposal_coverage(self.profile, count)
            options.append((choice.value * coverage, count, cost, choice, coverage))
        _, count, self.cost, choice, coverage = max(options, key=lambda o: (o[0], o[1]))
        most = self.profile.max_objects
        reason = self._proposals_reason(count, "each needs its own proposal")
        if "model.num_proposals" in self.given:
            reason = self._proposals_reason(count)
        elif count < wanted:
            steps = int(self._steps_at(choice.size))
            reason = (
                f"{coverage:.0%} of the boxes detectable (up to {counted(most, 'object')} in an "
                f"image) with ~{counted(steps, 'step')}: more proposals would cost more in steps "
                "than they gain"
            )
        self._set_proposals(count, reason)
        return choice

    def _try_six_stages(self, short: InputChoice) -> tuple[InputChoice, str]:
        """The paper's six stages when they still get SIX_STAGE_ITERATIONS steps, or the given
        ``train.max_iter`` at an input size as good (fewer stages buy neither steps nor size
        then: the six of a run without a budget); proposals and size chosen again with their
        timing. Else the short-budget stages and ``short``; with the reason for the stage
        count."""
        stages, cost, proposals = self.cfg.model.num_stages, self.cost, self.cfg.model.num_proposals
        steps = int(self._steps_at(short.size))
        # Six stages are slower: only from these steps can they get to either.
        if steps >= SIX_STAGE_ITERATIONS or self._is_given(steps):
            choices, warnings, crowd = list(self.choices), list(self.warnings), self._crowd_warning
            self.cfg.model.num_stages = ModelConfig.num_stages
            choice = self._choose_proposals_and_size()
            six_steps = int(self._steps_at(choice.size))
            if self._is_given(six_steps) and choice.value >= short.value:
                return choice, (
                    f"the paper's: the budget fits the given {counted(six_steps, 'step')} with "
                    "them (fewer would buy no steps)"
                )
            if six_steps >= SIX_STAGE_ITERATIONS:
                about = "the given " if self._is_given(six_steps) else "~"
                return choice, f"the paper's: {about}{counted(six_steps, 'step')} fit the budget"
            # Back to the short-budget stages and what was chosen for them.
            self.choices, self.warnings, self._crowd_warning = choices, warnings, crowd
            self.cfg.model.num_stages, self.cfg.model.num_proposals = stages, proposals
            self.cost = cost
            if self._is_given(steps):
                six = f"~{counted(six_steps, 'step')}"
                if self._is_given(six_steps):
                    six = f"at input size {choice.size}, with smaller objects"
                return short, (
                    f"the budget fits the given {counted(steps, 'step')} at input size "
                    f"{short.size} with these; with the paper's {ModelConfig.num_stages}, {six}"
                )
        reason = (
            f"~{counted(steps, 'step')} fit the budget: a short run gains more from steps than "
            f"from later stages (the paper's {ModelConfig.num_stages} from "
            f"~{SIX_STAGE_ITERATIONS} steps)"
        )
        return short, reason

    def _pixels(self, size: InputSize) -> float:
        """Pixels of a padded training batch image at ``size``: of the batches the run deals,
        of the samples its training transform makes (:meth:`_training_input`)."""
        trained = self.trained()
        # The profile prices each (transform, batch, grouping) once.
        return self.profile.padded_batch_pixels(
            build_train_transform(self._training_input(size)),
            trained.train.batch_size,
            grouping="sample" if trained.train.aspect_ratio_grouping else "none",
            size_divisibility=trained.model.size_divisibility,
            seed=trained.train.seed,
        )

    def _training_input(self, size: InputSize) -> InputConfig:
        """The run's training input at the recipe's input ``size``: the config so far with the
        ``--set`` values (random crops once chosen or where given, their windows following
        ``size`` where not given), its training resize ``size``."""
        pre_sizes, window = _crop_windows(size.short)
        windows = replace(self.cfg.input, crop_pre_sizes=pre_sizes, crop_size=window)
        given = self.trained(replace(self.cfg, input=windows)).input
        return replace(given, train_min_sizes=(size.short,), train_max_size=size.long)

    def _price(self, cfg: Config) -> StepCost:
        """``cfg``'s step cost with the ``--set`` values; the first notes what the budget has
        spent by then."""
        cost = self.step_cost_of(self.trained(cfg))
        if self.spent_seconds is not None and not self._priced:
            self.spent = self.spent_seconds()
        self._priced = True
        return cost

    def _usable_seconds(self) -> float:
        """Seconds of steps in the budget left after the timing, less the end-of-run reserve."""
        assert self.budget.seconds is not None
        return max(self.budget.seconds - self.spent, 0.0) * (1 - BUDGET_RESERVE)

    def _budget_steps_at(self, size: InputSize) -> float:
        """The steps the budget left gives at ``size`` (at the step cost in use)."""
        assert self.cost is not None
        return self._usable_seconds() / self.cost.seconds(self._pixels(size))

    def _steps_at(self, size: InputSize) -> float:
        """The steps the run trains at ``size``: the budget's, or fewer given ones."""
        return self._capped(self._budget_steps_at(size))

    def _capped(self, steps: float) -> float:
        """``steps`` the budget gives, no more than the given ``train.max_iter``."""
        given = self.budget.iterations
        return steps if given is None else min(steps, given)

    def _is_given(self, steps: float) -> bool:
        """Whether the run trains the given ``train.max_iter`` where the budget gives ``steps``
        (or :meth:`_steps_at` gives them: the given ones)."""
        return self.budget.iterations is not None and steps >= self.budget.iterations

    def _choose_input(self) -> InputChoice:
        """The input size (:func:`choose_input_size`) for the steps the run trains."""
        return choose_input_size(
            self.profile, self._budget_steps_at, given_steps=self.budget.iterations
        )

    def _try_medium(self, size: InputSize) -> str | None:
        """Switch to the medium model when it still gets MEDIUM_MODEL_ITERATIONS steps."""
        candidate = medium().model
        proposals = max(self.cfg.model.num_proposals, candidate.num_proposals)
        if "model.num_proposals" in self.given:
            proposals = self.cfg.model.num_proposals
        candidate = replace(
            candidate, num_classes=self.cfg.model.num_classes, num_proposals=proposals
        )
        if not self.fits(replace(self.cfg, model=candidate)):
            return None
        cost = self._price(replace(self.cfg, model=candidate))
        steps = int(self._capped(self._usable_seconds() / cost.seconds(self._pixels(size))))
        if steps < MEDIUM_MODEL_ITERATIONS:
            return None
        before = self.cfg.model.num_proposals
        self.cfg.model, self.cost = candidate, cost
        if proposals != before:  # the table and the crowd warning follow the medium model's
            self._set_proposals(proposals, self._proposals_reason(proposals))
        allows = f"allows ~{counted(steps, 'step')}"
        if self._is_given(steps):
            allows = f"fits the given {counted(steps, 'step')}"
        return f"the budget {allows} of the medium model at input size {size}"

    def _set_input(self, size: InputSize, reason: str) -> None:
        self._use_input(size)
        self._note_input(reason)

    def _use_input(self, size: InputSize) -> None:
        """Train and evaluate at ``size``, without crops (:meth:`_choose_crops` decides)."""
        self.size = size
        self.cfg.input = replace(
            self.cfg.input,
            train_min_sizes=(size.short,),
            train_max_size=size.long,
            test_min_size=size.short,
            test_max_size=size.long,
            crop=False,
        )

    def _note_input(self, reason: str) -> None:
        """The input size's row and the tiny-box warning at the size the run evaluates at."""
        assert self.size is not None
        self.note("input size", str(self.size), reason, *_INPUT_KEYS)
        given = not self.given.isdisjoint(_INPUT_KEYS)
        self.warn(advice.tiny_box_warning(self.profile, self.trained_size(test=True), given=given))

    def _check_budget(self, choice: InputChoice) -> None:
        """Refuse a budget under one logged window; warn about one too short to learn."""
        assert self.cost is not None and self.budget.seconds is not None
        step = self.cost.seconds(self._pixels(choice.size))
        # The window of the schedule set next (_set_schedule), not the starting preset's: of
        # the given steps, or of the budget's with headroom.
        total = self.budget.iterations or BUDGET_HEADROOM * self.iterations
        log_period = self._log_period(total)
        if self.budget.iterations is not None:
            # The run logs at its last step as well: a given train.max_iter under the window is
            # the window, so that one the budget fits (which ends the run) is never refused.
            log_period = min(log_period, self.budget.iterations)
        window = step * log_period
        # The steps are those of the budget less the end-of-run reserve (_usable_seconds): the
        # budget suggested gives a whole window of them.
        if self._usable_seconds() < window:
            short = "is shorter than one logged window"
            if self.spent:
                short = f"leaves less than one logged window after {self.spent:.0f} s of timing"
            least = (window / (1 - BUDGET_RESERVE) + self.spent) / 60
            raise ValueError(
                f"--time-budget {self.budget.seconds / 60:g} min {short} "
                f"({log_period} steps of {step:.2f} s, with "
                f"{BUDGET_RESERVE:.0%} of the budget kept for the end of the run); give at least "
                f"{math.ceil(least * 10) / 10:.1f} min"
            )
        steps = self.iterations
        # A given train.max_iter under the budget's steps is what the run trains (warned about
        # with it, by _warn_given_steps).
        given_limits = self._is_given(steps)
        resolving, minutes = choice.resolving, self._minutes_for(choice.resolving)
        unresolved = resolvable_share(self.profile, choice.size) < 0.99
        resolvable = resolvable_share(self.profile, resolving) >= 0.99
        if unresolved and resolvable and minutes * 60 > self.budget.seconds:
            run_steps = int(self._steps_at(choice.size))
            trains = (
                f"the run trains the given {counted(run_steps, 'step')}"
                if given_limits
                else f"the budget gives ~{counted(run_steps, 'step')}"
            )
            self.warn(
                f"{trains} at input size {choice.size}; input size {resolving} would resolve the "
                f"boxes, and {MIN_ITERATIONS} steps there take about {counted(minutes, 'minute')}: "
                f"{self._longer_run(minutes)}"
            )
        elif steps < MIN_ITERATIONS and not given_limits:
            minutes = self._minutes_for(choice.size)
            self.warn(
                f"the budget gives only ~{counted(steps, 'step')} ({step:.2f} s each at input size "
                f"{choice.size}): "
                f"too short to learn much; {MIN_ITERATIONS} steps take about "
                f"{counted(minutes, 'minute')}: {self._longer_run(minutes)}"
            )

    def _longer_run(self, minutes: int) -> str:
        """What gives the run MIN_ITERATIONS steps where they take ``minutes`` of budget: a
        longer ``--time-budget``, and a larger ``train.max_iter`` where a given one is fewer
        (it caps the run whatever the budget)."""
        budget = f"pass --time-budget {minutes} or more"
        given = self.budget.iterations
        if given is not None and given < MIN_ITERATIONS:
            return f"set train.max_iter={MIN_ITERATIONS} or more and {budget}"
        return budget

    def _log_period(self, total: int) -> int:
        """Steps per logged window of a schedule of ``total`` steps (a ``--set`` one where
        given, which the run logs with)."""
        if "train.log_period" in self.given:
            return self.trained().train.log_period
        return _log_period_for(total)

    def _warn_given_steps(self, minutes: int | None = None) -> None:
        """Warn when the run trains the given ``train.max_iter`` and it is under MIN_ITERATIONS
        (``minutes``: the budget MIN_ITERATIONS steps take, with a time budget)."""
        given = self.budget.iterations
        if given is None or given >= MIN_ITERATIONS:
            return
        todo = f"set train.max_iter={MIN_ITERATIONS} or more"
        if minutes is not None:
            assert self.budget.seconds is not None
            todo += f" ({MIN_ITERATIONS} steps take about {counted(minutes, 'minute')}"
            todo += (
                f": pass --time-budget {minutes} or more)"
                if minutes * 60 > self.budget.seconds
                else ")"
            )
        self.warn(
            f"train.max_iter={given} trains only {counted(given, 'step')}: too short to learn "
            f"much; {todo}"
        )

    def _minutes_for(self, size: InputSize) -> int:
        """Whole minutes of budget that give MIN_ITERATIONS steps at ``size`` (with the timing)."""
        assert self.cost is not None
        seconds = self.cost.seconds(self._pixels(size)) * MIN_ITERATIONS
        return math.ceil((seconds / (1 - BUDGET_RESERVE) + self.spent) / 60)

    def _epoch_steps(self) -> tuple[int, int, int]:
        """``(epochs, their steps, the fewest steps)`` of a run without a budget."""
        epochs = SCRATCH_EPOCHS if self.from_scratch else FINETUNE_EPOCHS
        steps = math.ceil(epochs * self.profile.num_images / self.images_per_step)
        return epochs, steps, 3 * MIN_ITERATIONS if self.from_scratch else MIN_ITERATIONS

    def _epoch_iterations(self) -> int:
        _, steps, fewest = self._epoch_steps()
        return max(steps, fewest)

    def _epochs_reason(self) -> str:
        epochs, steps, fewest = self._epoch_steps()
        images = self.profile.num_images
        if steps >= fewest:
            return f"{epochs} epochs of {counted(images, 'image')}, without a time budget"
        return (
            f"at least {fewest} steps without a time budget ({epochs} epochs of "
            f"{counted(images, 'image')} are only {steps})"
        )

    def _set_schedule(self, reason: str, total: int | None = None) -> None:
        """The schedule of ``self.iterations`` steps, configured as ``total`` (a budgeted run's
        headroom, which the trainer fits to the pace it measures). The warm-up is set from the
        steps expected: the trainer keeps it when it fits the schedule."""
        expected = max(self.iterations, 1)
        total = max(total or expected, 1)
        train = self.cfg.train
        train.max_iter = total
        # As a resumed run extended past its end (extended_schedule) places them.
        train.steps = decay_steps(total)
        # 2% of the steps, 50 to 1000, and never more than a tenth of a short run.
        train.warmup_iters = min(1000, max(50, round(expected * 0.02)), max(1, expected // 10))
        # About five checkpoints in the steps expected (an interrupt writes one as well).
        train.checkpoint_period = max(100, expected // 5)
        train.eval_period = 0
        train.log_period = _log_period_for(total)
        shares = " and ".join(f"{step / total:.0%}" for step in train.steps)
        lr = f"lr x0.1 at {shares}" if train.steps else "no lr decay"
        schedule = f"{counted(self.iterations, 'step')}, {lr}"
        if total != expected:
            reason += f"; configured as {total}, which the trainer fits to its measured pace"
        self.note("schedule", schedule, reason, "train.max_iter", "train.steps")
        reason = "2% of the steps, 50 to 1000"
        if train.warmup_iters < 50:
            reason = f"a tenth of the {counted(expected, 'step')}"
        self.note("warm-up", counted(train.warmup_iters, "step"), reason, "train.warmup_iters")

    def _choose_crops(self, steps: int) -> bool:
        """Whether to add random crops to the flips: when the run's ``steps`` (priced with flips
        alone) pass over each image CROP_FROM_PASSES times or more, unless a crop's frame would
        enlarge the images more than CROP_MAX_FRAME_ZOOM. Their windows follow the input the run
        trains at (a --set input.* one included), even without crops, for a --set
        input.crop=true; steps priced from here on are those with the crops (:meth:`_pixels`)."""
        passes = steps * self.images_per_step / self.profile.num_images
        crop = passes >= CROP_FROM_PASSES and self._crop_frame_zoom() <= CROP_MAX_FRAME_ZOOM
        pre_sizes, window = _crop_windows(self.trained().input.test_min_size)
        self.cfg.input = replace(
            self.cfg.input, crop=crop, crop_pre_sizes=pre_sizes, crop_size=window
        )
        return crop

    def _with_crops(self, choice: InputChoice) -> InputChoice:
        """The input size and crops of a timed run from scratch at ``choice`` (in use): where
        :meth:`_choose_crops` takes crops, the size is chosen again with its steps priced with
        them, and taken where crops still hold at it (else ``choice``'s size is kept)."""
        if not self._choose_crops(self._run_steps()):
            return choice
        again = self._choose_input()
        if again.size == choice.size:
            return again
        self._use_input(again.size)
        if self._choose_crops(self._run_steps()):
            return again
        self._use_input(choice.size)
        self._choose_crops(self._run_steps())
        return choice

    def _run_steps(self) -> int:
        """The steps the run trains at the input in use (:meth:`_steps_at`)."""
        return int(self._steps_at(self.trained_size()))

    def _note_augmentation(self) -> None:
        """The augmentation's row (:meth:`_choose_crops`), with the passes of the run's steps."""
        images = self.profile.num_images
        passes = self.iterations * self.images_per_step / images
        reason = f"{_passes_text(passes)} over each of {counted(images, 'image')}"
        if self.cfg.input.crop:
            reason += ": crops keep the model from memorising them"
            self.note("augmentation", "flips, random crops", reason, *CROP_KEYS)
            return
        zoom = self._crop_frame_zoom()
        if passes >= CROP_FROM_PASSES and zoom > CROP_MAX_FRAME_ZOOM:
            short = self.trained().input.test_min_size
            reason += (
                f"; no random crops: a crop is resized to the input's {short}-px short side, "
                f"which would enlarge these images {zoom:.1f}x more than the input size does"
            )
        self.note("augmentation", "flips", reason, *CROP_KEYS)

    def _crop_frame_zoom(self) -> float:
        """The median image's enlargement by a crop's frame: the input's short side over the
        image's short side at the input size (1 where the short side sets the resize)."""
        size = self.trained_size(test=True)
        heights, widths = self.profile.image_heights, self.profile.image_widths
        scales = self.profile.resize_scales(size.short, size.long)
        return float(np.median(size.short / (np.minimum(heights, widths) * scales)))

    def _optimiser(self) -> None:
        train = self.cfg.train
        if self.from_scratch:
            train.scale_lr = False
            train.lr = SCRATCH_LR_BATCH_8 * math.sqrt(self.images_per_step / 8)
            reason = "AdamW from scratch (sqrt batch scaling)"
            self.note("learning rate", f"{train.lr:.2g}", reason, "train.lr", "train.scale_lr")
            return
        train.scale_lr = True  # the paper's 2.5e-5 per 16 images, scaled linearly
        reason = "the paper's fine-tuning rate"
        self.note(
            "learning rate", f"{train.lr:.2g} per 16 images", reason, "train.lr", "train.scale_lr"
        )
        if train.init_from and self.profile.num_boxes < advice.SMALL_SET_BOXES:
            train.freeze = "backbone"
            boxes = self.profile.num_boxes
            reason = (
                f"only {counted(boxes, 'box', 'boxes')}: train the head on the pretrained features"
            )
            self.note("frozen", "backbone + FPN", reason, "train.freeze")


# What a model size sets (the presets differ in these).
_MODEL_KEYS = tuple(
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
_INPUT_KEYS = tuple(
    f"input.{name}"
    for name in ("train_min_sizes", "train_max_size", "test_min_size", "test_max_size")
)


def _input_text(cfg: Config) -> str:
    """The input size of ``cfg`` as the table gives it (the recipe's sizes are one
    :class:`InputSize` for training and evaluation; a ``--set`` may give others)."""
    given = cfg.input
    test = InputSize(given.test_min_size, given.test_max_size)
    if given.train_min_sizes == (test.short,) and given.train_max_size == test.long:
        return str(test)
    train = "/".join(str(side) for side in given.train_min_sizes)
    return f"train {train} (long side <= {given.train_max_size}), test {test}"


def _schedule_text(cfg: Config) -> str:
    """The schedule row of a run's config: its steps and the decays it takes (those before
    ``max_iter``), by its ``gamma``."""
    train = cfg.train
    decays = Schedule.of(train).decays_taken(train.max_iter)
    steps = " and ".join(str(step) for step in decays)
    where = f"{'step' if len(decays) == 1 else 'steps'} {steps}"
    lr = f"lr x{train.gamma:g} at {where}" if decays else "no lr decay"
    return f"{counted(train.max_iter, 'step')} (at most), {lr}"


def _augmentation_text(cfg: Config) -> str:
    return "flips, random crops" if cfg.input.crop else "flips"


def _lr_text(cfg: Config) -> str:
    return f"{cfg.train.lr:.2g}" + (" per 16 images" if cfg.train.scale_lr else "")


# A choice's value in a config (the run's, where a --set gives one of its keys): by row name, in
# the order of the table.
_TRAINED_VALUE: dict[str, Callable[[Config], object]] = {
    "precision": lambda cfg: "bf16 autocast" if cfg.train.amp else "fp32",
    "batch size": lambda cfg: cfg.train.batch_size,
    "model": lambda cfg: _model_name(cfg),
    "proposals": lambda cfg: cfg.model.num_proposals,
    "stages": lambda cfg: cfg.model.num_stages,
    "input size": _input_text,
    "schedule": _schedule_text,
    "warm-up": lambda cfg: counted(cfg.train.warmup_iters, "step"),
    "augmentation": _augmentation_text,
    "learning rate": _lr_text,
    "frozen": lambda cfg: cfg.train.freeze,
}


def _crop_windows(short: int) -> tuple[tuple[int, ...], tuple[int, int]]:
    """``(crop_pre_sizes, crop_size)`` of the crop policy at the input's short side ``short``
    (CROP_PRE_SIZES and CROP_WINDOW times it)."""
    pre_sizes = tuple(round(short * factor) for factor in CROP_PRE_SIZES)
    return pre_sizes, (round(short * CROP_WINDOW[0]), round(short * CROP_WINDOW[1]))


def _log_period_for(total: int) -> int:
    """The recipe's steps per logged window of a schedule of ``total`` steps."""
    return 10 if total < 20000 else 20


def _passes_text(passes: float) -> str:
    """``"~26 passes"``, ``"~1 pass"``, ``"~0.25 passes"``: the schedule's passes over each
    image."""
    if round(passes) >= 1:
        return f"~{counted(round(passes), 'pass', 'passes')}"
    return f"~{passes:.2g} passes"


def _model_name(cfg: Config) -> str:
    model = cfg.model
    width = "" if model.backbone_width == ModelConfig.backbone_width else f"/{model.backbone_width}"
    return f"R{model.backbone_depth}{width}, head {model.hidden_dim}"


def proposals_for(max_objects: int) -> int:
    """The proposals to train for images of up to ``max_objects`` objects: comfortably above
    them (x PROPOSALS_PER_OBJECT + PROPOSALS_SLACK), rounded up to a multiple of 10."""
    return _round_up(max_objects * PROPOSALS_PER_OBJECT + PROPOSALS_SLACK, 10)


def _round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)
