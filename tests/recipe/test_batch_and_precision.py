"""Tests for the automatic recipe's precision and batch
(:mod:`sparsercnn.recipe.batch_and_precision`): the precision row names the arithmetic the
trainer runs (:func:`~sparsercnn.engine.train_step.autocast_dtype`), not the flag."""

from __future__ import annotations

from sparsercnn.recipe import Hardware, Recipe
from tests.recipe.test_auto_recipe import choose, profile_of

OLD_GPU = Hardware(
    device="cuda:0", cpu_threads=8, native_bf16=False, gpu_name="Tesla T4", gpu_memory_gib=15
)
CPU_WITHOUT_BF16 = Hardware(device="cpu", cpu_threads=2, native_bf16=False)


def _precision_row(recipe: Recipe) -> tuple[str, str]:
    (row,) = [c for c in recipe.choices if c.name == "precision"]
    return row.value, row.reason


def test_a_gpu_without_native_bf16_trains_fp16_autocast() -> None:
    recipe = choose(profile_of((160, 160), [30.0] * 400), hardware=OLD_GPU)
    assert recipe.config.train.amp
    assert _precision_row(recipe) == ("fp16 autocast", "Tesla T4 (15 GiB), no native bf16")


def test_amp_given_on_a_cpu_without_native_bf16_is_shown_as_the_fp32_it_trains() -> None:
    recipe = choose(
        profile_of((160, 160), [30.0] * 400),
        hardware=CPU_WITHOUT_BF16,
        overrides=["train.amp=true"],
    )
    value, reason = _precision_row(recipe)
    assert value == "fp32"
    assert reason.startswith("given by --set train.amp (this CPU would only emulate bf16")
