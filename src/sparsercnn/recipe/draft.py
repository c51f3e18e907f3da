"""The automatic recipe while it is being chosen: the config so far, the rows and warnings
written, and what the choices share (the data's profile, the device, the budget, the ``--set``
values and the step cost in use).

The choices themselves are functions of a :class:`RecipeDraft` in the modules named after them
(:mod:`~sparsercnn.recipe.model_size`, :mod:`~sparsercnn.recipe.proposals`,
:mod:`~sparsercnn.recipe.stages`, ...); :func:`~sparsercnn.recipe.auto_recipe.choose_recipe`
calls them in order, each one reading the ones before.
"""

from __future__ import annotations

from collections.abc import Callable

from sparsercnn.config import Config, override_keys
from sparsercnn.engine.lr_schedule import images_per_step
from sparsercnn.recipe.dataset_profile import DatasetProfile
from sparsercnn.recipe.explanation import INPUT_KEYS, TRAINED_VALUE
from sparsercnn.recipe.hardware import Hardware
from sparsercnn.recipe.input_size import InputSize
from sparsercnn.recipe.recipe import Budget, Choice
from sparsercnn.recipe.step_timing import StepCost

StepCostOf = Callable[[Config], StepCost]
"""Prices a config's training step by input size (a short timing in real runs)."""
SpentSeconds = Callable[[], float]
"""Seconds of the time budget spent so far (on the data's profile and the timing)."""


class RecipeDraft:
    """The recipe so far and what every choice reads.

    Attributes:
        profile, hardware, budget: the training set, the device, the time or step budget.
        overrides, given: the ``--set`` values the run trains with, and the keys they give.
        cfg: the recipe's own config so far (without the ``--set`` values: :meth:`trained`).
        from_scratch: no starting weights (``train.init_from``, ``train.backbone_weights``).
        choices, warnings: the table's rows and the warnings written so far.
        crowd_warning: the crowd warning of the proposals set last (a later choice replaces it).
        cost: the step cost of the model in use (timed runs).
        spent: the budget spent when the first step cost came (the steps count from there).
        iterations: the steps the schedule is fitted to.
        size: the input size in use.
    """

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
        self.overrides = list(overrides or ())
        self.given = frozenset(override_keys(self.overrides))
        self.hardware = hardware
        self.budget = budget
        self.step_cost_of = step_cost_of
        self.spent_seconds = spent_seconds
        self.given_batch_size = batch_size
        self.world_size = world_size
        self.spent = 0.0
        self.priced = False
        self.cfg = cfg
        self.from_scratch = not (cfg.train.init_from or cfg.train.backbone_weights)
        self.choices: list[Choice] = []
        self.warnings: list[str] = []
        self.crowd_warning: str | None = None
        self.cost: StepCost | None = None
        self.iterations = 0
        self.size: InputSize | None = None

    def note(self, name: str, value: object, reason: str, *keys: str) -> None:
        """Record a choice and the config values (``section.key``) it set; where a ``--set``
        gives one of them, the row shows what the run trains with
        (:data:`~sparsercnn.recipe.explanation.TRAINED_VALUE`) and the recipe's own choice in
        its reason."""
        self.choices.append(self.row(name, value, reason, *keys))

    def row(self, name: str, value: object, reason: str, *keys: str) -> Choice:
        """The table's row of a choice (:meth:`note`)."""
        given = sorted(self.given.intersection(keys))
        if not given:
            return Choice(name, str(value), reason, keys)
        by = f"given by --set {', '.join(given)}"
        trained = self.trained()
        if trained.differences(self.cfg).keys().isdisjoint(keys):  # what the recipe took
            return Choice(name, str(value), f"{by}: {reason}", keys, given=True)
        shown = str(TRAINED_VALUE[name](trained, self.hardware))
        mine = f"the recipe's {value}: " if shown != str(value) else ""
        return Choice(name, shown, f"{by} ({mine}{reason})", keys, given=True)

    def warn(self, warning: str | None) -> None:
        """Add ``warning`` (``None``: nothing to warn about)."""
        if warning is not None:
            self.warnings.append(warning)

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
        if not self.given.intersection(INPUT_KEYS):
            return self.size
        given = self.trained().input
        if test:
            return InputSize(given.test_min_size, given.test_max_size)
        return InputSize(max(given.train_min_sizes), given.train_max_size)

    @property
    def images_per_step(self) -> int:
        """Images per optimiser step over every process (what the lr and passes follow)."""
        return images_per_step(self.trained().train, self.world_size)
