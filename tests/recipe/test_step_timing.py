"""Tests for the recipe's step timing, its straight-line cost model and the image loading cost."""

from __future__ import annotations

import pytest
import torch

from sparsercnn.presets import get_preset
from sparsercnn.recipe import StepCost, measure_step_seconds
from sparsercnn.recipe.step_timing import ImageLoadCost


def test_step_cost_is_a_line_through_two_timings() -> None:
    cost = StepCost.fit((10_000, 0.3), (40_000, 0.6))
    assert cost.per_pixel == pytest.approx(1e-5) and cost.fixed == pytest.approx(0.2)
    assert cost.seconds(100 * 500) == pytest.approx(0.7)
    # The smaller size was no faster (a launch-bound GPU step, or a busy CPU): every size up to
    # the larger one costs its timing (on an H200, a 0.09 s step was once priced 0.016 s at the
    # smaller size), and larger inputs cost in proportion to their pixels, never look free.
    flat = StepCost.fit((10_000, 0.5), (40_000, 0.4))
    assert flat.seconds(10_000) == pytest.approx(0.4) and flat.seconds(1) == pytest.approx(0.4)
    assert flat.seconds(1000 * 1000) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="small pixels < large pixels"):
        StepCost.fit((40_000, 0.4), (10_000, 0.5))


def test_measure_step_seconds_runs_real_steps() -> None:
    cfg = get_preset("tiny")
    cfg.model.num_classes = 3
    seconds = measure_step_seconds(cfg, (64, 96), torch.device("cpu"), num_boxes=2)
    assert 0 < seconds < 60


def test_image_load_cost_counts_decoding_only_when_the_set_outgrows_the_cache() -> None:
    cost = ImageLoadCost(decode_seconds=0.02, resize_seconds=0.001, decoded_bytes=1000)
    assert cost.per_sample(num_images=50, cache_bytes=50_000) == pytest.approx(0.001)
    assert cost.per_sample(num_images=51, cache_bytes=50_000) == pytest.approx(0.021)
    assert cost.per_sample(num_images=1, cache_bytes=0) == pytest.approx(0.021)
