"""``--preset auto``: the training recipe chosen from the dataset, the hardware and the budget.

:func:`recipe_for_dataset` reads and times, :func:`choose_recipe` decides (pure: a profile, a
device description, a budget and a step pricer in, a :class:`Recipe` out).
"""

from sparsercnn.recipe.auto_recipe import choose_recipe
from sparsercnn.recipe.dataset_profile import DatasetProfile
from sparsercnn.recipe.for_dataset import recipe_for_dataset
from sparsercnn.recipe.hardware import Hardware, detect_hardware
from sparsercnn.recipe.recipe import Budget, Choice, Recipe
from sparsercnn.recipe.step_timing import StepCost, measure_step_seconds

__all__ = [
    "Budget",
    "Choice",
    "DatasetProfile",
    "Hardware",
    "Recipe",
    "StepCost",
    "choose_recipe",
    "detect_hardware",
    "measure_step_seconds",
    "recipe_for_dataset",
]
