"""What the automatic recipe returns: a config, each choice with its reason, and warnings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sparsercnn.config import Config


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
