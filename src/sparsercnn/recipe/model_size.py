"""The automatic recipe's model: the architecture of the starting weights, or from scratch the
small model, and the medium one when the budget has room for it.

The evidence is the starting weights (``--init-from``: their architecture; ``--backbone-weights``:
their ResNet's depth under the paper's head), the ``--set`` values (a model they do not fit is
not taken), and under a time budget the steps the medium model's own timing gets
(:data:`MEDIUM_MODEL_ITERATIONS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sparsercnn.config import Config, ModelConfig, override_keys
from sparsercnn.presets import medium, r50_100pro_3x, small
from sparsercnn.recipe.draft import RecipeDraft
from sparsercnn.recipe.explanation import MODEL_KEYS, model_name
from sparsercnn.recipe.input_setting import choose_input
from sparsercnn.recipe.input_size import InputChoice, InputSize
from sparsercnn.recipe.proposals import proposals_reason, set_proposals
from sparsercnn.recipe.step_budget import budget_steps_at, capped, is_given, price
from sparsercnn.text import counted
from sparsercnn.weights.finetune import ARCHITECTURE_FIELDS

# From this many steps of the small model at the chosen size, the medium model is tried, and
# taken if it still gets MEDIUM_MODEL_ITERATIONS.
MEDIUM_MODEL_ITERATIONS = 4000


def check_overrides_fit_weights(
    overrides: Sequence[str],
    *,
    init_from: str = "",
    init_model: ModelConfig | None = None,
    backbone_weights: str = "",
    backbone_depth: int | None = None,
) -> ModelConfig | None:
    """Refuse ``--set`` values that change what the starting weights fix of the model
    :func:`~sparsercnn.recipe.auto_recipe.choose_recipe` trains with them: the architecture of
    the detector checkpoint ``init_from`` (``init_model``), or the depth of the ResNet of
    ``backbone_weights`` (``backbone_depth``) under the paper's head. Their tensors load into
    no other model, so such a run would fail only once the weights load, after the data's
    check and the timing; the CLI calls this before both.

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


def candidate_presets(init_from: bool, backbone_weights: bool) -> tuple[str, ...]:
    """The presets whose model :func:`~sparsercnn.recipe.auto_recipe.choose_recipe` may train:
    with a detector checkpoint (``init_from``) its architecture, not known before the file is
    read, so any of them; with ResNet ``backbone_weights`` the paper's head
    (``r50_100pro_3x``); from scratch ``small``, or ``medium`` when the budget has room
    (:func:`take_medium_if_roomy`)."""
    if init_from:
        return ("small", "medium", "r50_100pro_3x")
    if backbone_weights:
        return ("r50_100pro_3x",)
    return ("small", "medium")


def starting_model(
    overrides: list[str],
    *,
    init_from: str,
    init_model: ModelConfig | None,
    backbone_depth: int | None,
) -> tuple[Config, str]:
    """The config to start from, and why its model: the architecture of the detector checkpoint
    ``init_from`` (``init_model``), the paper's head on the ImageNet ResNet of
    ``backbone_depth``, or from scratch the small model (the medium one where only it fits the
    ``overrides``). The training settings are the paper's recipe's with weights, the small or
    medium preset's from scratch.

    Raises:
        ValueError: from scratch, the overrides fit neither model (the small model's error).
    """
    if init_model is not None:
        cfg = replace(r50_100pro_3x(), model=replace(init_model))
        return cfg, f"the architecture of {init_from}"
    if backbone_depth is not None:
        cfg = r50_100pro_3x()
        cfg.model.backbone_depth = backbone_depth
        return cfg, f"the paper's head on the given ResNet-{backbone_depth} backbone"
    return _scratch_model(overrides)


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


def note_model(draft: RecipeDraft, reason: str) -> None:
    """The model's row."""
    draft.note("model", model_name(draft.cfg), reason, *MODEL_KEYS)


def take_medium_if_roomy(
    draft: RecipeDraft, choice: InputChoice, model_reason: str
) -> tuple[InputChoice, str]:
    """From scratch with the paper's six stages, the medium model where the small one's steps
    at ``choice``'s size leave room for it (half of them, at most the given ones, still
    MEDIUM_MODEL_ITERATIONS) and its own timing confirms it (:func:`_try_medium`): ``choice``
    with its reason counting the medium model's steps where the size stays best, and the
    model's reason. Else ``choice`` and ``model_reason``."""
    size = choice.size
    six = draft.cfg.model.num_stages == ModelConfig.num_stages
    # The medium model's steps are about half the small one's (and no more than given).
    roomy = capped(draft, budget_steps_at(draft, size) / 2) >= MEDIUM_MODEL_ITERATIONS
    larger = draft.cfg.model.backbone_width < medium().model.backbone_width
    if not (draft.from_scratch and six and roomy and larger):
        return choice, model_reason
    medium_reason = _try_medium(draft, size)
    if medium_reason is None:
        return choice, model_reason
    # The input size's reason counts the medium model's steps (the size is kept).
    again = choose_input(draft)
    if again.size == size:
        choice = replace(choice, reason=again.reason)
    return choice, medium_reason


def _try_medium(draft: RecipeDraft, size: InputSize) -> str | None:
    """Switch to the medium model when its timing still gives MEDIUM_MODEL_ITERATIONS steps at
    ``size`` (with at least the proposals in use, and only where the ``--set`` values fit it);
    the model's reason, else ``None``."""
    candidate = medium().model
    proposals = max(draft.cfg.model.num_proposals, candidate.num_proposals)
    if "model.num_proposals" in draft.given:
        proposals = draft.cfg.model.num_proposals
    candidate = replace(candidate, num_classes=draft.cfg.model.num_classes, num_proposals=proposals)
    if not draft.fits(replace(draft.cfg, model=candidate)):
        return None
    cost = price(draft, replace(draft.cfg, model=candidate))
    steps = int(capped(draft, budget_steps_at(draft, size, cost)))
    if steps < MEDIUM_MODEL_ITERATIONS:
        return None
    before = draft.cfg.model.num_proposals
    draft.cfg.model, draft.cost = candidate, cost
    if proposals != before:  # the table and the crowd warning follow the medium model's
        set_proposals(draft, proposals, proposals_reason(draft, proposals))
    allows = f"allows ~{counted(steps, 'step')}"
    if is_given(draft, steps):
        allows = f"fits the given {counted(steps, 'step')}"
    return f"the budget {allows} of the medium model at input size {size}"
