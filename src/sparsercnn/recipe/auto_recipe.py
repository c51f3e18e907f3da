"""``--preset auto``: a training recipe chosen from the dataset, the hardware and the budget.

:func:`choose_recipe` starts from a model size (:func:`~sparsercnn.presets.small` from scratch,
:func:`~sparsercnn.presets.medium` when the budget has room for it, the paper's R50 recipe from
published weights) and sets, each with its reason, in the modules named after the choices:

- precision and batch size (:mod:`~sparsercnn.recipe.batch_and_precision`): bf16 autocast where
  the device runs bf16 natively, fp16 autocast on other GPUs, fp32 on other CPUs;
- the **input size** (:func:`~sparsercnn.recipe.input_size.choose_input_size`): the best trade
  of small objects against training steps, priced with a short timing of real training steps
  (:class:`~sparsercnn.recipe.step_timing.StepCost`, :mod:`~sparsercnn.recipe.step_budget`);
- the **number of proposals** (:mod:`~sparsercnn.recipe.proposals`): comfortably above the most
  objects in one image;
- the **number of stages** (:mod:`~sparsercnn.recipe.stages`) from scratch under a time budget:
  :data:`~sparsercnn.recipe.stages.SHORT_BUDGET_STAGES` unless the paper's six still get
  :data:`~sparsercnn.recipe.stages.SIX_STAGE_ITERATIONS` steps or the given ``train.max_iter``,
  or the images hold few objects (:data:`~sparsercnn.recipe.stages.FEW_OBJECTS_PER_IMAGE`);
  without a budget the paper's six. Fewer stages are taken only where they buy steps: a run of
  given steps trains the same stages with a budget that fits them as without one;
- the model (:mod:`~sparsercnn.recipe.model_size`): the medium one from scratch when it still
  gets :data:`~sparsercnn.recipe.model_size.MEDIUM_MODEL_ITERATIONS` steps;
- the schedule (:mod:`~sparsercnn.recipe.schedule`), fitted to the budget, and warm-up;
- from scratch, **random crops** (:mod:`~sparsercnn.recipe.crops`) besides the flips when the
  schedule passes over each image :data:`~sparsercnn.recipe.crops.CROP_FROM_PASSES` times or
  more (a small set, a long budget, or none); the steps, and under a time budget the input size,
  are then priced with the crops;
- the learning rate (:mod:`~sparsercnn.recipe.learning_rate`); with weights (``--init-from``,
  ``--backbone-weights``): the architecture they fit, the fine-tuning learning rate, and a
  frozen backbone when the set is very small.

Under a time budget every choice counts the steps the run trains: the budget's, or a given
``train.max_iter`` where the budget fits it (fewer steps than the budget's do not buy the medium
model, and a larger input or the six stages cost none of them). Advice to train longer names the
flag that limits the run: ``--time-budget``, and ``train.max_iter`` where a given one is short.

It lists what would make the run go wrong (:mod:`~sparsercnn.recipe.advice`, budget warnings),
and refuses a budget that ends the run before one logged window of steps. Every choice is an
ordinary config value: the run's ``config.json`` holds them and ``--set`` overrides any of them;
the table that explains them is :mod:`~sparsercnn.recipe.explanation`'s. The choices in progress
share a :class:`~sparsercnn.recipe.draft.RecipeDraft`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sparsercnn.config import Config, ModelConfig, override_keys
from sparsercnn.recipe import advice
from sparsercnn.recipe.batch_and_precision import set_precision_and_batch
from sparsercnn.recipe.crops import (
    choose_crops,
    note_augmentation,
)
from sparsercnn.recipe.dataset_profile import DatasetProfile
from sparsercnn.recipe.draft import RecipeDraft, SpentSeconds, StepCostOf
from sparsercnn.recipe.explanation import ROW_ORDER
from sparsercnn.recipe.hardware import Hardware
from sparsercnn.recipe.input_setting import choose_input, note_input, set_input, use_input
from sparsercnn.recipe.input_size import (
    InputChoice,
    choose_input_size,
    largest_input_reason,
    resolvable_share,
)
from sparsercnn.recipe.learning_rate import set_learning_rate
from sparsercnn.recipe.model_size import (
    check_overrides_fit_weights,
    note_model,
    starting_model,
    take_medium_if_roomy,
)
from sparsercnn.recipe.proposals import (
    choose_proposals_and_size,
    proposals_reason,
    set_proposals,
    wanted_proposals,
)
from sparsercnn.recipe.recipe import Budget, Recipe
from sparsercnn.recipe.schedule import (
    epoch_iterations,
    epochs_reason,
    set_schedule,
)
from sparsercnn.recipe.stages import (
    SHORT_BUDGET_STAGES,
    note_stages,
    timed_stages,
    try_six_stages,
)
from sparsercnn.recipe.step_budget import (
    BUDGET_HEADROOM,
    budget_steps_at,
    check_budget,
    minutes_for,
    pixels,
    steps_at,
    warn_given_steps,
)
from sparsercnn.text import counted


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
    cfg, model_reason = starting_model(
        list(overrides),
        init_from=init_from,
        init_model=init_model,
        backbone_depth=backbone_depth,
    )
    if init_model is None and backbone_depth is None and budget.seconds is not None:
        cfg.model.num_stages = SHORT_BUDGET_STAGES
    cfg.model.num_classes = profile.num_classes
    cfg.train = replace(cfg.train, init_from=init_from, backbone_weights=backbone_weights)
    draft = RecipeDraft(
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
    set_precision_and_batch(draft)
    if budget.seconds is None:
        note_model(draft, model_reason)
        note_stages(draft)
        _untimed_size_and_schedule(draft)
    else:
        _timed_size_and_schedule(draft, model_reason)
    if draft.from_scratch:
        note_augmentation(draft)
    set_learning_rate(draft)
    draft.warn(advice.rare_class_warning(profile))
    if draft.from_scratch:
        draft.warn(advice.small_set_warning(profile))
    return _recipe_of(draft)


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


def _untimed_size_and_schedule(draft: RecipeDraft) -> None:
    """Without a time budget: enough proposals, the smallest size resolving the boxes, steps
    by epochs (or the given ones), crops from scratch by their passes."""
    proposals = wanted_proposals(draft)
    set_proposals(draft, proposals, proposals_reason(draft, proposals))
    steps = draft.budget.iterations or epoch_iterations(draft)
    choice = choose_input_size(draft.profile, lambda size: steps)
    reason = "the smallest size resolving the boxes"
    if resolvable_share(draft.profile, choice.resolving) < 0.99:
        reason = f"none resolves the boxes: {largest_input_reason(draft.profile, choice.resolving)}"
    set_input(draft, choice.resolving, reason)
    draft.iterations = steps
    if draft.from_scratch:
        choose_crops(draft, steps)
    warn_given_steps(draft)
    if draft.budget.iterations is not None:
        set_schedule(draft, "the given number of steps")
    else:
        set_schedule(draft, epochs_reason(draft))


def _timed_size_and_schedule(draft: RecipeDraft, model_reason: str) -> None:
    """Under a time budget, each choice priced by the timing: stages, proposals and input size
    together, the medium model where the budget has room, crops, then the steps that fit."""
    short_budget, stages_reason = timed_stages(draft)
    choice = choose_proposals_and_size(draft)
    if stages_reason is None and short_budget:
        choice, stages_reason = try_six_stages(draft, choice)
    choice, model_reason = take_medium_if_roomy(draft, choice, model_reason)
    use_input(draft, choice.size)
    if draft.from_scratch:
        choice = _with_crops(draft, choice)
    note_model(draft, model_reason)
    note_stages(draft, stages_reason)
    note_input(draft, choice.reason)
    size = draft.trained_size()  # what the steps are priced at
    draft.iterations = int(budget_steps_at(draft, size))
    check_budget(draft, replace(choice, size=size))
    _set_timed_schedule(draft)


def _set_timed_schedule(draft: RecipeDraft) -> None:
    """The schedule of the steps the budget fits at the input the run trains at, configured
    with headroom for the trainer's refit; or the given ``train.max_iter`` where the budget fits
    it (else configured as given, which the trainer shortens)."""
    assert draft.cost is not None
    size = draft.trained_size()
    total = BUDGET_HEADROOM * draft.iterations
    seconds = draft.cost.seconds(pixels(draft, size))
    reason = f"~{counted(draft.iterations, 'step')} of {seconds:.2f} s (timed) fit the budget"
    given = draft.budget.iterations
    if given is not None and given <= draft.iterations:
        reason = f"the given number of steps (the budget would allow ~{draft.iterations})"
        draft.iterations = total = given
        warn_given_steps(draft, minutes_for(draft, size))
    elif given is not None:
        # The given schedule, which the trainer shortens to the budget: its decays keep
        # their places (80%, 93%) only when they are set from its length.
        reason += ", fewer than the given number of steps"
        total = given
    set_schedule(draft, reason, total=total)


def _with_crops(draft: RecipeDraft, choice: InputChoice) -> InputChoice:
    """The input size and crops of a timed run from scratch at ``choice`` (in use): where
    :func:`~sparsercnn.recipe.crops.choose_crops` takes crops, the size is chosen again with
    its steps priced with them, and taken where crops still hold at it (else ``choice``'s size
    is kept)."""
    if not choose_crops(draft, _run_steps(draft)):
        return choice
    again = choose_input(draft)
    if again.size == choice.size:
        return again
    use_input(draft, again.size)
    if choose_crops(draft, _run_steps(draft)):
        return again
    use_input(draft, choice.size)
    choose_crops(draft, _run_steps(draft))
    return choice


def _run_steps(draft: RecipeDraft) -> int:
    """The steps the run trains at the input in use
    (:func:`~sparsercnn.recipe.step_budget.steps_at`)."""
    return int(steps_at(draft, draft.trained_size()))


def _recipe_of(draft: RecipeDraft) -> Recipe:
    """The recipe the draft holds: its rows in the table's order whichever way they were chosen
    (the timed path sets the proposals first), and the timed step cost at the input it trains
    at."""
    seconds = None
    if draft.cost is not None and draft.size is not None:
        seconds = draft.cost.seconds(pixels(draft, draft.trained_size()))
    rows = sorted(draft.choices, key=lambda c: ROW_ORDER.index(c.name))
    return Recipe(draft.cfg, rows, draft.warnings, seconds, draft.iterations)
