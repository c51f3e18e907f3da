"""What the automatic recipe returns: a config, each choice with its reason, and warnings."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sparsercnn.config import Config


@dataclass(frozen=True)
class Choice:
    """One decision of the recipe, for the table it prints.

    Attributes:
        name, value, reason: the table's three columns.
        keys: the config values the decision sets (``"section.key"``), by which a ``--set``
            that replaces it is found.
        given: a ``--set`` gave one of ``keys``: ``value`` is what the run trains with (the
            recipe's own choice, if another, is in ``reason``).
    """

    name: str
    value: str
    reason: str
    keys: tuple[str, ...] = ()
    given: bool = False


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

    def format(self, trained: Config | None = None) -> str:
        """The choices as an aligned table, then the warnings.

        Args:
            trained: the config the run trains with, when ``--set`` or ``--freeze`` changed the
                recipe's: the choices they replaced are starred and the changed values listed.
                Choices a ``--set`` gave (:attr:`Choice.given`) are starred without it.
        """
        changed = {} if trained is None else self.config.differences(trained)
        width = max(len(c.name) for c in self.choices)
        value_width = max(len(c.value) for c in self.choices)
        lines = ["auto recipe (override any value with --set):"]
        for c in self.choices:
            mark = "*" if c.given or changed.keys() & set(c.keys) else " "
            lines.append(f" {mark}{c.name:<{width}}  {c.value:<{value_width}}  {c.reason}")
        if changed:
            lines.append(
                "* given or replaced by --set or --freeze (the run trains with these; see "
                "config.json):"
            )
            dumps = json.dumps
            lines += [
                f"    {key}: {dumps(old)} -> {dumps(new)}" for key, (old, new) in changed.items()
            ]
        elif any(c.given for c in self.choices):
            lines.append("* given by --set (the run trains with these; see config.json)")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_dict(self, trained: Config | None = None) -> dict[str, Any]:
        """Plain data for ``recipe.json`` beside the run's ``config.json``; with ``trained``,
        the values ``--set`` or ``--freeze`` changed (``{"section.key": [chosen, trained]}``)."""
        changed = {} if trained is None else self.config.differences(trained)
        return {
            "choices": [vars(c) for c in self.choices],
            "warnings": list(self.warnings),
            "seconds_per_iteration": self.seconds_per_iteration,
            "iterations": self.iterations,
            "overridden": {key: list(values) for key, values in changed.items()},
        }


@dataclass(frozen=True)
class Budget:
    """What the run may spend: a wall-clock time, or else a number of steps (or neither)."""

    seconds: float | None = None
    iterations: int | None = None


class BudgetSpentError(ValueError):
    """The time budget was used up choosing the recipe: timing its training steps took it all."""

    def __init__(self, budget_minutes: float, spent_seconds: float) -> None:
        super().__init__(
            f"--time-budget {budget_minutes:g} min was used up choosing the recipe "
            f"({spent_seconds:.0f} s of timing); give a longer budget, or a fixed --preset"
        )
