"""Tests for the automatic recipe's decisions (pure: profiles, hardware and step costs are made
up here, so every rule is checked against numbers worked out by hand)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from sparsercnn.config import Config
from sparsercnn.data.transforms import build_train_transform
from sparsercnn.data.validation import check_coco
from sparsercnn.presets import get_preset, r50_300pro_3x, small
from sparsercnn.recipe import Budget, DatasetProfile, Hardware, StepCost, choose_recipe
from sparsercnn.recipe.crops import CROP_FROM_PASSES
from sparsercnn.recipe.input_size import (
    FULL_BOX_PX,
    INVISIBLE_BOX_PX,
    RESOLVED_BOX_PX,
    InputSize,
    candidate_inputs,
    resolvable_share,
    size_score,
    training_progress,
)
from sparsercnn.recipe.model_size import candidate_presets, check_overrides_fit_weights
from sparsercnn.recipe.stages import SHORT_BUDGET_STAGES

CPU = Hardware(device="cpu", cpu_threads=2, native_bf16=True)
# 0.2 s per step plus 1 s per megapixel: 160x160 -> 0.226 s, 640x640 -> 0.61 s (the test sets
# have images of one size, so a padded batch image is the image).
COST = StepCost(fixed=0.2, per_pixel=1e-6)


def profile_of(
    image_size: tuple[int, int],
    box_sides: list[float],
    *,
    num_images: int = 200,
    num_classes: int = 2,
    objects_per_image: int | None = None,
) -> DatasetProfile:
    """``num_images`` images of ``image_size`` (h, w); the square boxes of ``box_sides`` are dealt
    round-robin over the images (or ``objects_per_image`` of them go to the first image), their
    classes alternating."""
    height, width = image_size
    images = [
        {"id": i + 1, "file_name": f"{i}.jpg", "height": height, "width": width}
        for i in range(num_images)
    ]
    annotations = []
    for k, side in enumerate(box_sides):
        image_id = 1 if objects_per_image and k < objects_per_image else k % num_images + 1
        annotations.append(
            {
                "id": k + 1,
                "image_id": image_id,
                "category_id": k % num_classes + 1,
                "bbox": [0.0, 0.0, side, side],
                "area": side * side,
                "iscrowd": 0,
            }
        )
    categories = [{"id": c + 1, "name": f"class{c}"} for c in range(num_classes)]
    data = {"images": images, "annotations": annotations, "categories": categories}
    return DatasetProfile.from_checked(check_coco(data, "test.json"))


def choose(profile: DatasetProfile, minutes: float | None = 10.0, **kwargs: Any) -> Any:
    budget = Budget(seconds=None if minutes is None else minutes * 60)
    hardware = kwargs.pop("hardware", CPU)
    cost = kwargs.pop("cost", COST)
    return choose_recipe(profile, hardware, budget, lambda cfg: cost, **kwargs)


def reason_of(recipe: Any, name: str) -> str:
    return str(next(c.reason for c in recipe.choices if c.name == name))


def test_profile_box_sizes_follow_the_test_resize() -> None:
    profile = profile_of((1000, 1500), [20.0, 40.0, 80.0], num_images=3)
    assert profile.num_images == 3 and profile.num_boxes == 3 and profile.max_objects == 1
    assert profile.median_short_side == 1000 and profile.long_to_short == pytest.approx(1.5)
    # Short side 500 -> scale 0.5 (the long side 750 is under the cap)...
    np.testing.assert_allclose(profile.box_sides_at(500, 1000), [10.0, 20.0, 40.0])
    # ...and a cap of 600 on the long side makes it 0.4.
    np.testing.assert_allclose(profile.box_sides_at(500, 600), [8.0, 16.0, 32.0])


def test_size_score_resolvable_share_and_training_progress() -> None:
    profile = profile_of((1000, 1000), [20.0, 40.0])
    # At 400 px the boxes are 8 and 16 px: half way up the 4-12 px ramp, and resolved; one and
    # two doublings above INVISIBLE_BOX_PX on the log scale up to FULL_BOX_PX.
    assert resolvable_share(profile, InputSize(400, 400)) == pytest.approx((0.5 + 1.0) / 2)
    assert resolvable_share(profile, InputSize(200, 200)) == pytest.approx((0.0 + 0.5) / 2)
    octaves = np.log2(FULL_BOX_PX / INVISIBLE_BOX_PX)
    assert size_score(profile, InputSize(400, 400)) == pytest.approx((1 + 2) / 2 / octaves)
    assert size_score(profile, InputSize(100, 100)) == 0  # 2 and 4 px: not detected
    # Boxes past FULL_BOX_PX gain nothing more.
    assert size_score(profile_of((1000, 1000), [500.0]), InputSize(800, 800)) == 1
    assert training_progress(0) == training_progress(300) == 0
    assert training_progress(1100) == pytest.approx(1 - np.exp(-1))


def test_mixed_orientations_are_fitted_into_a_square() -> None:
    # Landscape, portrait and (twice as many) square images. A batch mixing them is padded to
    # the long side both ways, so fitting every image into a square gives the square ones more
    # pixels for about the same padded batch as a short side with its long-side cap; batches
    # grouped by orientation (the default) are priced as such: the square then costs more, and
    # large boxes still take it (with one square image in three, the two are within 0.5% of
    # each other: the capped side wins on the batches training deals). Random crops, which a
    # square input makes costlier (a crop fills it), stay off: ~30 passes over each image.
    sizes = [(1000, 1500), (1500, 1000), (1200, 1200), (1200, 1200)]
    images = [sizes[i % 4] for i in range(400)]
    profile = profile_of((1000, 1000), [150.0] * 800, num_images=400)
    profile = replace(
        profile,
        image_heights=np.array([h for h, _ in images]),
        image_widths=np.array([w for _, w in images]),
    )
    candidates = candidate_inputs(profile)
    assert InputSize(192, 192) in candidates and InputSize(128, 192) in candidates
    pixels = [profile.padded_batch_pixels(s.transform(), 8) for s in candidates]
    assert pixels == sorted(pixels)  # cheapest first
    square, capped = (
        profile.padded_batch_pixels(s.transform(), 8, grouping="none")
        for s in (InputSize(192, 192), InputSize(128, 192))
    )
    assert capped < square < 1.1 * capped  # a batch without portraits pads less when capped
    square, capped = (
        pixels[candidates.index(s)] for s in (InputSize(192, 192), InputSize(128, 192))
    )
    assert square > 1.2 * capped  # grouped: portraits with squares, landscapes alone
    assert size_score(profile, InputSize(192, 192)) > size_score(profile, InputSize(128, 192))
    size = choose(profile).config.input
    assert size.test_min_size == size.test_max_size == size.train_max_size
    assert size.train_min_sizes == (size.test_min_size,)


def test_small_objects_on_large_images_get_a_larger_input() -> None:
    # 20-px objects on 1000 px images, 15 minutes: 640 px (boxes of 12.8 px, score 0.315, 1328
    # steps, value 0.2282) beats 608 (0.301, 1421 steps, 0.2273) and 672 (0.329, 1243, 0.2275).
    profile = profile_of((1000, 1000), [20.0] * 400)
    recipe = choose(profile, minutes=15)
    side = recipe.config.input.test_min_size
    assert side == 640
    assert recipe.config.input.train_min_sizes == (640,)
    assert np.quantile(profile.box_sides_at(side, side), 0.1) >= RESOLVED_BOX_PX
    assert not any("under 8 px" in w for w in recipe.warnings)
    reason = next(c.reason for c in recipe.choices if c.name == "input size")
    assert reason.startswith("boxes of 13 px (median) with ~1328 steps")


def test_a_short_budget_trades_size_for_steps_and_says_what_budget_would_do() -> None:
    profile = profile_of((1000, 1000), [20.0] * 400)
    # Pixels four times dearer and 3 minutes: 608 px gives 105 steps (nothing learned yet); 256
    # px gives 518 steps (progress 0.24) on boxes of 5 px (score 0.067), the best product
    # (224 px: 646 steps, 0.35 x 0.031; 288 px: 424 steps, 0.14 x 0.099).
    costly = StepCost(fixed=0.05, per_pixel=4e-6)
    recipe = choose(profile, minutes=3, cost=costly)
    side = recipe.config.input.test_min_size
    assert side == 256
    warning = next(w for w in recipe.warnings if "would resolve the boxes" in w)
    minutes = int(np.ceil(costly.seconds(608 * 608) * 1000 / 0.9 / 60))
    assert "input size fit into 608x608 would resolve" in warning
    assert f"--time-budget {minutes} " in warning
    # With 11 minutes the trade takes 576 px (boxes of 11.5 px, not all resolved), while 1000
    # steps at 608 px would fit: the budget is not what stands in the way, so no warning.
    recipe = choose(profile, minutes=11)
    assert recipe.config.input.test_min_size == 576
    assert not any("would resolve the boxes" in w for w in recipe.warnings)


def test_the_resolution_warning_quotes_the_given_steps_the_run_trains() -> None:
    # As above, with 300 given steps: 320 px, where the budget would give ~352 but the run
    # trains the 300.
    profile = profile_of((1000, 1000), [20.0] * 400)
    costly = StepCost(fixed=0.05, per_pixel=4e-6)
    recipe = choose_recipe(profile, CPU, Budget(seconds=180, iterations=300), lambda cfg: costly)
    assert recipe.config.input.test_min_size == 320
    warning = next(w for w in recipe.warnings if "would resolve the boxes" in w)
    assert warning.startswith("the run trains the given 300 steps at input size fit into 320x320;")
    assert "352" not in warning


def test_a_roomy_budget_buys_resolution_beyond_what_the_objects_need() -> None:
    # 400-px objects: in 10 minutes the trade stops at 320 px (boxes of 128 px, 1785 steps);
    # in 30 the input grows while 2000 steps still fit, past FULL_BOX_PX (from 416 px on).
    profile = profile_of((1000, 1000), [400.0] * 400)
    assert choose(profile, minutes=10).config.input.test_min_size == 320
    recipe = choose(profile, minutes=30)
    side = recipe.config.input.test_min_size
    # The largest size with 2000 steps in 90% of 30 minutes (0.2 + side^2 * 1e-6 s each).
    assert COST.seconds(side * side) * 2000 <= 1620 < COST.seconds((side + 32) ** 2) * 2000
    assert side == 768
    assert choose(profile, minutes=600).config.input.test_min_size == 800  # the largest


def test_images_are_not_upsampled() -> None:
    recipe = choose(profile_of((160, 160), [6.0, 30.0] * 50))
    assert recipe.config.input.test_min_size == 160
    text = recipe.format()
    assert "images' own size" in text and "inputs are never upscaled" in text


@pytest.mark.parametrize("minutes", [5.0, 600.0])
def test_images_shrunk_by_the_input_cap_are_not_called_their_own_size(minutes: float) -> None:
    """4-px boxes on 2000x1500 images: the largest input the recipe considers (800 px) shrinks
    them to 2 px. The table said "the images' own size", and a short budget's warning asked for
    a longer budget, which no input the recipe considers would help."""
    profile = profile_of((1500, 2000), [4.0] * 120, num_images=12)
    recipe = choose(profile, minutes=minutes)
    if minutes > 60:
        assert recipe.config.input.test_max_size == 1088  # 800 x 4/3, rounded up to 32
        assert reason_of(recipe, "input size") == (
            "the largest input the recipe considers (about the paper's 800-px short side): "
            "the images are shrunk to 54% of their size"
        )
    (warning,) = [w for w in recipe.warnings if "px at input size" in w]
    assert "120 of 120 boxes" in warning and "no input the recipe considers helps" in warning
    assert "--time-budget" not in warning and "images themselves" not in warning


def test_images_shrunk_by_the_size_steps_are_not_said_shrunk_by_the_input_cap() -> None:
    """175-px images: the candidates stop at 160 px (32-px steps up to the images' size), which
    shrinks them to 91%. The reason named the cap of the paper's 800-px short side."""
    recipe = choose(profile_of((175, 175), [6.0, 30.0] * 50), minutes=600)
    assert recipe.config.input.test_min_size == 160
    assert reason_of(recipe, "input size") == (
        "about the images' own size (inputs go up to the median image's, in 32-px steps): the "
        "images are shrunk to 91% of their size"
    )
    (warning,) = [w for w in recipe.warnings if "px at input size" in w]
    assert "800" not in warning and "about the images' own size" in warning


def test_proposals_stay_above_the_most_objects_in_an_image() -> None:
    profile = profile_of((512, 512), [30.0] * 400, objects_per_image=120)
    recipe = choose(profile)
    assert recipe.config.model.num_proposals == 160  # 120 * 1.25 + 5 = 155, rounded up to 10
    crowded = profile_of((512, 512), [30.0] * 700, objects_per_image=600)
    recipe = choose(crowded)
    assert recipe.config.model.num_proposals == 500
    assert any("more objects than the 500 proposals" in w for w in recipe.warnings)
    assert choose(crowded, minutes=None).config.model.num_proposals == 500


def test_proposals_at_the_cap_say_so_and_what_would_give_more() -> None:
    # 601 objects in one image: the recipe's cap of 500, whatever the budget; no budget to
    # lengthen without --time-budget.
    crowded = profile_of((512, 512), [30.0] * 700, objects_per_image=600)
    for minutes in (10.0, None):
        recipe = choose(crowded, minutes=minutes)
        reason = reason_of(recipe, "proposals")
        assert reason == "the most the recipe trains; up to 601 objects in one image"
        (warning,) = [w for w in recipe.warnings if "more objects than the" in w]
        assert warning.endswith("set model.num_proposals above the recipe's 500 (slower steps)")
        assert "--time-budget" not in warning
    # Under the cap, without a budget: the advice names no budget either.
    few = profile_of((512, 512), [30.0] * 400, objects_per_image=120)
    untimed = choose(few, minutes=None, init_from="x.pt", init_model=small().model)
    (warning,) = [w for w in untimed.warnings if "more objects than the" in w]
    # A checkpoint's proposals are its tensors: another count would not load (it advised one).
    assert warning.endswith(
        "the proposals are those of x.pt (--init-from), whose weights load into no other count: "
        "start from a model with more proposals"
    )
    # ResNet weights hold no proposals: any count loads.
    backbone = choose(few, minutes=None, backbone_weights="r50.pth", backbone_depth=50)
    (warning,) = [w for w in backbone.warnings if "more objects than the" in w]
    assert warning.endswith("; set model.num_proposals")


def test_proposals_that_cost_more_steps_than_they_gain_are_not_taken() -> None:
    # One image of 121 objects among 200: 160 proposals cover every box, 50 cover 82%; when
    # the larger head halves the steps of a short budget, 50 proposals win.
    profile = profile_of((512, 512), [30.0] * 400, objects_per_image=120)

    def cost_of(cfg: Config) -> StepCost:
        return StepCost(fixed=0.2 * cfg.model.num_proposals / 50, per_pixel=1e-6)

    budget = Budget(seconds=5 * 60)
    recipe = choose_recipe(profile, CPU, budget, cost_of)
    assert recipe.config.model.num_proposals == 50
    reason = next(c.reason for c in recipe.choices if c.name == "proposals")
    assert "82% of the boxes detectable" in reason
    assert any("more objects than the 50 proposals" in w for w in recipe.warnings)
    # With a cost that does not grow with the proposals, coverage decides.
    assert choose_recipe(profile, CPU, budget, lambda cfg: COST).config.model.num_proposals == 160


def test_budget_shorter_than_one_logged_window_is_refused() -> None:
    profile = profile_of((160, 160), [30.0] * 400)
    with pytest.raises(ValueError, match=r"--time-budget .* shorter than one logged window"):
        choose(profile, minutes=0.02)  # 1.2 s < 10 steps of 0.226 s


def test_the_logged_window_refused_is_the_one_the_run_logs() -> None:
    # 3.24 s of steps: 14 of 0.226 s, over the 10 of the window the schedule sets. With weights
    # the window was the paper preset's 20 steps (never logged: the schedule sets 10).
    profile = profile_of((160, 160), [30.0] * 400)
    for weights in ({}, {"init_from": "x.pt", "init_model": small().model}):
        recipe = choose(profile, minutes=0.06, **weights)
        assert recipe.iterations == 14 and recipe.config.train.log_period == 10
    # A given window is the one the run logs with (and stays a --set, not the recipe's own).
    recipe = choose(profile, minutes=0.03, overrides=["train.log_period=5"])
    assert recipe.iterations == 7 and recipe.config.train.log_period == 10
    with pytest.raises(ValueError, match=r"one logged window \(5 steps of"):
        choose(profile, minutes=0.02, overrides=["train.log_period=5"])


def test_a_given_step_count_that_ends_the_run_before_the_budget_is_not_refused() -> None:
    # 1.2 s leave 1.08 s of steps of 0.216 s (128 px), under a window of 10; the run logs at its
    # last step: 4 steps given by --set fit the budget and end the run, as they would alone.
    profile = profile_of((160, 160), [30.0] * 400)
    recipe = choose(profile, minutes=0.02, overrides=["train.max_iter=4"])
    assert recipe.iterations == recipe.config.train.max_iter == 4
    assert "the given number of steps" in reason_of(recipe, "schedule")
    # 6 given steps the budget cuts short: their window is refused, and named as such.
    with pytest.raises(ValueError, match=r"shorter than one logged window \(6 steps of"):
        choose(profile, minutes=0.02, overrides=["train.max_iter=6"])


def test_too_short_a_budget_is_warned_with_the_budget_that_would_do() -> None:
    recipe = choose(profile_of((160, 160), [30.0] * 400), minutes=1)
    # 30-px boxes are resolved at 128 px, where 54 s give 249 steps of 0.216 s.
    assert recipe.config.input.test_min_size == 128
    warning = next(w for w in recipe.warnings if "too short to learn" in w)
    assert "~249 steps" in warning and "--time-budget 5 " in warning


def test_the_steps_are_those_of_the_budget_left_after_the_timing() -> None:
    profile = profile_of((160, 160), [30.0] * 400)

    def choose_after(spent: float, minutes: float) -> Any:
        budget = Budget(seconds=minutes * 60)
        return choose_recipe(profile, CPU, budget, lambda cfg: COST, spent_seconds=lambda: spent)

    # 2 minutes, 60 s of them timing: 54 s of steps of 0.216 s at 128 px, as in 1 minute untimed.
    recipe = choose_after(60.0, 2)
    assert recipe.iterations == int(54 / COST.seconds(128 * 128)) == 249
    assert "~249 steps of 0.22 s (timed)" in reason_of(recipe, "schedule")
    # 1000 steps take 240 s + the 10% reserve, and the timing comes first: 300.4 s, 6 minutes.
    warning = next(w for w in recipe.warnings if "too short to learn" in w)
    assert "~249 steps" in warning and "--time-budget 6 " in warning
    # A budget the timing leaves less than one logged window of (10 x 0.216 s) is refused, one
    # it used up as well, before the recipe is shown, with the budget that would do.
    for spent in (119.0, 121.0):
        window = rf"2 min leaves less than one logged window after {spent:.0f} s of timing"
        with pytest.raises(ValueError, match=window + r" .* at least 2\.1 min"):
            choose_after(spent, 2)


def test_a_given_batch_size_is_what_the_steps_and_learning_rate_follow() -> None:
    profile = profile_of((160, 160), [30.0] * 400, num_images=400)
    recipe = choose(profile, batch_size=4)
    train = recipe.config.train
    assert train.batch_size == 4 and train.lr == pytest.approx(7e-4 * np.sqrt(4 / 8))
    assert reason_of(recipe, "batch size") == "the given images per step"
    # ~2500 steps of 4 images over 400 images: ~25 passes (not the 8-image batch's ~50).
    passes = recipe.iterations * 4 / 400
    assert reason_of(recipe, "augmentation").startswith(f"~{passes:.0f} passes over each of 400")
    # The same override applied to the run changes nothing the table would star.
    trained = recipe.config.apply_overrides(["train.batch_size=4"])
    assert "*" not in recipe.format(trained=trained)


def test_several_processes_scale_the_learning_rate_and_passes_by_their_total_batch() -> None:
    """Under torchrun every process trains train.batch_size images per step."""
    profile = profile_of((160, 160), [30.0] * 400, num_images=400)
    single, double = choose(profile), choose(profile, world_size=2)
    assert double.config.train.batch_size == single.config.train.batch_size == 8
    assert double.config.train.lr == pytest.approx(7e-4 * np.sqrt(16 / 8))
    assert reason_of(double, "batch size").endswith(
        "per process: 2 processes train 16 images per step"
    )
    passes = double.iterations * 16 / 400
    assert reason_of(double, "augmentation").startswith(f"~{passes:.0f} passes over each of 400")


def test_a_given_schedule_longer_than_the_budget_is_what_the_trainer_shortens() -> None:
    # 10 minutes give ~2500 steps; train.max_iter=100000: the schedule is configured as the
    # 100000 steps (decays at 80% and 93% of them), which the trainer scales down to its pace,
    # so the decays stay at 80% and 93% of the steps trained.
    profile = profile_of((160, 160), [30.0] * 400, num_images=400)
    budget = Budget(seconds=600, iterations=100_000)
    recipe = choose_recipe(profile, CPU, budget, lambda cfg: COST)
    train = recipe.config.train
    assert train.max_iter == 100_000 and train.steps == (80_000, 93_333)
    expected = int(540 / COST.seconds(160 * 160))  # at 160 px
    assert recipe.iterations == expected and train.warmup_iters == 50
    assert reason_of(recipe, "schedule") == (
        f"~{expected} steps of 0.23 s (timed) fit the budget, fewer than the given number of "
        "steps; configured as 100000, which the trainer fits to its measured pace"
    )
    trained = recipe.config.apply_overrides(["train.max_iter=100000"])
    assert "*" not in recipe.format(trained=trained)


def test_a_set_without_boxes_is_refused() -> None:
    with pytest.raises(ValueError, match="no usable box"):
        choose(profile_of((160, 160), []))


def test_precision_follows_native_bf16() -> None:
    profile = profile_of((160, 160), [30.0] * 400)
    assert choose(profile).config.train.amp
    avx2 = Hardware(device="cpu", cpu_threads=2, native_bf16=False)
    recipe = choose(profile, hardware=avx2)
    assert not recipe.config.train.amp and "emulate bf16" in recipe.format()


def test_a_long_budget_takes_the_medium_model() -> None:
    profile = profile_of((160, 160), [30.0] * 400)
    assert choose(profile, minutes=10).config.model.hidden_dim == 64
    recipe = choose(profile, minutes=120)
    assert recipe.config.model.hidden_dim == 128 and recipe.config.model.backbone_width == 64


def test_the_models_chosen_from_scratch_are_among_the_candidates_the_cli_checks() -> None:
    """``candidate_presets`` is what ``train --set model.*`` is checked against before the data
    is read: every model the recipe takes from scratch must be one of them."""
    widths = {
        (get_preset(name).model.backbone_width, get_preset(name).model.hidden_dim)
        for name in candidate_presets(init_from=False, backbone_weights=False)
    }
    profile = profile_of((160, 160), [30.0] * 400)
    for minutes in (10, 120, None):
        model = choose(profile, minutes=minutes).config.model
        assert (model.backbone_width, model.hidden_dim) in widths, minutes


def test_short_budgets_train_fewer_stages_and_long_ones_the_papers_six() -> None:
    profile = profile_of((160, 160), [30.0] * 1200)  # 6 objects per image
    # 10 minutes: ~2393 steps of 0.226 s, under SIX_STAGE_ITERATIONS (4000).
    recipe = choose(profile, minutes=10)
    assert recipe.config.model.num_stages == SHORT_BUDGET_STAGES == 3
    reason = reason_of(recipe, "stages")
    assert "~2393 steps" in reason and "the paper's 6 from ~4000 steps" in reason
    # 30 minutes: six stages still get ~7180 steps at this (stage-blind) cost.
    recipe = choose(profile, minutes=30)
    assert recipe.config.model.num_stages == 6
    assert "the paper's: ~7180 steps" in reason_of(recipe, "stages")
    # Without a time budget the schedule counts epochs: the paper's six, with their row (as the
    # model's own proposals have theirs).
    recipe = choose(profile, minutes=None)
    assert recipe.config.model.num_stages == 6
    assert reason_of(recipe, "stages") == (
        "the paper's; fewer only under a --time-budget, where they buy more steps"
    )


def test_given_stages_have_their_row_with_or_without_a_budget_or_weights() -> None:
    """As given proposals: a --set model.num_stages is starred in the table, the untimed path's
    and with backbone weights (whose head is the recipe's) included."""
    profile = profile_of((160, 160), [30.0] * 1200)
    given = ["model.num_stages=2"]
    for kwargs in ({"minutes": None}, {"backbone_weights": "r.pth", "backbone_depth": 50}):
        recipe = choose(profile, overrides=given, **kwargs)
        (row,) = [c for c in recipe.choices if c.name == "stages"]
        assert row.given and row.value == "2"
        assert row.reason.startswith("given by --set model.num_stages (the recipe's 6: the paper's")


def test_six_stages_that_would_miss_their_steps_are_not_taken() -> None:
    # Each stage costs 50 ms: 3 stages get 4612 steps of 0.176 s in 15 minutes, 6 stages only
    # 2488 of 0.326 s, so the recipe keeps 3 and what it chose with their timing.
    profile = profile_of((160, 160), [30.0] * 1200)
    timed: list[int] = []

    def cost_of(cfg: Config) -> StepCost:
        timed.append(cfg.model.num_stages)
        return StepCost(fixed=0.05 * cfg.model.num_stages, per_pixel=1e-6)

    recipe = choose_recipe(profile, CPU, Budget(seconds=15 * 60), cost_of)
    assert timed == [3, 6] and recipe.config.model.num_stages == 3
    assert recipe.iterations == int(810 / (0.15 + 160 * 160 * 1e-6))
    names = [c.name for c in recipe.choices]
    assert names.count("proposals") == 1 and names.count("stages") == 1
    assert "~4612 steps" in reason_of(recipe, "stages")


def test_the_stages_follow_the_steps_the_run_trains_whichever_limit_holds() -> None:
    """A run of given steps trains the same stages with a budget that fits them as without one
    (fewer buy no steps); where the budget is the limit, the budget's rule holds whatever steps
    were given. Each stage costs 50 ms: 15 minutes give 3 stages 4612 steps of 0.176 s at 160
    px, 6 stages 2487 of 0.326 s."""
    profile = profile_of((160, 160), [30.0] * 1200)  # 6 objects per image

    def stages(budget: Budget) -> tuple[int, str]:
        def cost_of(cfg: Config) -> StepCost:
            return StepCost(fixed=0.05 * cfg.model.num_stages, per_pixel=1e-6)

        recipe = choose_recipe(profile, CPU, budget, cost_of)
        return recipe.config.model.num_stages, reason_of(recipe, "stages")

    # The given steps limit: the six of a run without a budget.
    assert stages(Budget(iterations=2000))[0] == 6
    assert stages(Budget(seconds=900, iterations=2000)) == (
        6,
        "the paper's: the budget fits the given 2000 steps with them (fewer would buy no steps)",
    )
    # The budget limits: its rule, as without train.max_iter.
    assert stages(Budget(seconds=900))[0] == SHORT_BUDGET_STAGES
    assert stages(Budget(seconds=900, iterations=5000)) == stages(Budget(seconds=900))
    # The budget fits the given 3000 steps with 3 stages, not with 6: there the fewer stages
    # buy steps.
    assert stages(Budget(seconds=900, iterations=3000)) == (
        SHORT_BUDGET_STAGES,
        "the budget fits the given 3000 steps at input size fit into 160x160 with these; with "
        "the paper's 6, ~2487 steps",
    )
    # ...or input size: 6 stages fit 1000 given steps of 1000x1000 images only at 704 px.
    profile = profile_of((1000, 1000), [40.0] * 4000, num_images=400)
    assert stages(Budget(seconds=900, iterations=1000)) == (
        SHORT_BUDGET_STAGES,
        "the budget fits the given 1000 steps at input size fit into 800x800 with these; with "
        "the paper's 6, at input size fit into 704x704, with smaller objects",
    )
    assert stages(Budget(seconds=900, iterations=800))[0] == 6


def test_images_with_few_objects_keep_the_papers_six_stages() -> None:
    # 200 images, 5 objects each: every stage's supervision counts, whatever the budget.
    few = profile_of((160, 160), [30.0] * 1000)
    recipe = choose(few, minutes=10)
    assert recipe.config.model.num_stages == 6
    assert reason_of(recipe, "stages").startswith("the paper's: 5 objects in the median image")
    # One more object per image: the short-budget rule again.
    assert choose(profile_of((160, 160), [30.0] * 1200), minutes=10).config.model.num_stages == 3
    one = choose(profile_of((160, 160), [30.0] * 200), minutes=10)
    assert reason_of(one, "stages").startswith("the paper's: 1 object in the median image gives ")


def test_the_table_lists_the_choices_in_one_order_timed_or_not() -> None:
    # The timed path chooses the proposals before the model: they were listed above it.
    profile = profile_of((160, 160), [30.0] * 400)
    for minutes in (10.0, None):
        names = [c.name for c in choose(profile, minutes=minutes).choices]
        assert names[:6] == [
            "precision",
            "batch size",
            "model",
            "proposals",
            "stages",
            "input size",
        ]


def test_schedule_fits_the_budget_with_headroom_or_counts_epochs() -> None:
    profile = profile_of((160, 160), [30.0] * 400, num_images=400)
    recipe = choose(profile, minutes=10)
    expected = int(540 / COST.seconds(160 * 160))
    assert recipe.iterations == expected
    train = recipe.config.train
    assert train.max_iter == 2 * expected  # the trainer shortens it to its measured pace
    assert train.steps == (round(0.8 * train.max_iter), round(train.max_iter * 14 / 15))
    # The trainer keeps the warm-up: it is set from the steps expected, not the headroom.
    assert train.warmup_iters == min(max(50, round(expected * 0.02)), expected // 10)
    assert f"configured as {2 * expected}, which the trainer fits" in reason_of(recipe, "schedule")
    no_budget = choose(profile, minutes=None)
    assert no_budget.config.train.max_iter == 60 * 400 // 8  # 60 epochs of 400 images
    assert no_budget.seconds_per_iteration is None
    assert reason_of(no_budget, "schedule") == "60 epochs of 400 images, without a time budget"


def test_an_untimed_schedule_says_when_its_minimum_outnumbers_the_epochs() -> None:
    # 60 epochs of 40 images at batch 8 are 300 steps: the schedule is the 3000-step minimum.
    recipe = choose(profile_of((160, 160), [30.0] * 40, num_images=40), minutes=None)
    assert recipe.config.train.max_iter == 3000
    assert reason_of(recipe, "schedule") == (
        "at least 3000 steps without a time budget (60 epochs of 40 images are only 300)"
    )


def test_warm_up_is_never_more_than_a_tenth_of_a_short_run() -> None:
    profile = profile_of((160, 160), [30.0] * 400, num_images=400)
    hardware, budget = CPU, Budget(seconds=None, iterations=30)
    short = choose_recipe(profile, hardware, budget, lambda cfg: COST)
    assert short.config.train.max_iter == 30 and short.config.train.warmup_iters == 3
    assert reason_of(short, "warm-up") == "a tenth of the 30 steps"
    assert choose(profile, minutes=None).config.train.warmup_iters == 60  # 2% of 3000


def test_many_passes_over_few_images_add_random_crops_scaled_to_the_input() -> None:
    # 10 minutes of 0.226 s steps at 160 px: ~2389 steps of 8 images.
    steps = int(540 / COST.seconds(160 * 160))
    images_at_threshold = steps * 8 // CROP_FROM_PASSES
    few = choose(profile_of((160, 160), [30.0] * 400, num_images=images_at_threshold))
    assert few.config.input.crop
    assert few.config.input.crop_pre_sizes == (200, 250, 300)  # 1.25-1.875 x the 160 px side
    assert few.config.input.crop_size == (192, 300)
    assert reason_of(few, "augmentation").startswith(f"~{CROP_FROM_PASSES} passes over each of")
    many = choose(profile_of((160, 160), [30.0] * 400, num_images=images_at_threshold + 20))
    assert not many.config.input.crop
    assert reason_of(many, "augmentation").endswith(f"each of {images_at_threshold + 20} images")
    # Without a budget: 60 epochs, at least 3000 steps (600 passes over 40 images).
    untimed = choose(profile_of((160, 160), [30.0] * 40, num_images=40), minutes=None)
    assert untimed.config.input.crop
    assert reason_of(untimed, "augmentation").startswith("~600 passes over each of 40 images")


def test_steps_with_random_crops_are_priced_with_them() -> None:
    # 20 images of 240x480: ~700 passes in 10 minutes, crops. A crop is resized to the input's
    # short side whatever the image's aspect: fitted into a 448x448 square, the 224x448 images
    # would be padded as 448x448 crops (0.39 s a step, not 0.30), so a capped input is taken.
    profile = profile_of((240, 480), [60.0] * 40, num_images=20)
    recipe = choose(profile)
    cfg = recipe.config
    assert cfg.input.crop and cfg.input.test_min_size < cfg.input.test_max_size
    crops = build_train_transform(cfg.input)
    pixels = profile.padded_batch_pixels(crops, 8, seed=cfg.train.seed)
    assert recipe.seconds_per_iteration == pytest.approx(COST.seconds(pixels))
    assert recipe.iterations == int(540 / COST.seconds(pixels))
    assert f"with ~{recipe.iterations} steps" in reason_of(recipe, "input size")
    assert reason_of(recipe, "schedule").startswith(f"~{recipe.iterations} steps of")
    # Crops given by --set on a set the recipe would not crop are priced as well.
    many = profile_of((240, 480), [60.0] * 400, num_images=400)
    given = choose(many, overrides=["input.crop=true"])
    trained = given.config.apply_overrides(["input.crop=true"])
    assert not given.config.input.crop and trained.input.crop
    crops = build_train_transform(trained.input)
    pixels = many.padded_batch_pixels(crops, 8, seed=trained.train.seed)
    assert given.seconds_per_iteration == pytest.approx(COST.seconds(pixels))
    assert given.seconds_per_iteration != pytest.approx(
        COST.seconds(
            many.padded_batch_pixels(replace(crops, crop_pre_sizes=()), 8, seed=trained.train.seed)
        )
    )


def test_warnings_for_rare_classes_and_small_sets() -> None:
    sides = [30.0] * 40 + [30.0] * 3
    profile = profile_of((160, 160), sides, num_images=30, num_classes=2)
    recipe = choose(profile)
    assert any("fewer than 10 boxes" in w for w in recipe.warnings) is False
    rare = profile_of((160, 160), [30.0] * 61, num_images=30, num_classes=20)
    warnings = choose(rare).warnings
    assert any("classes have fewer than 10 boxes" in w for w in warnings)
    assert any("--init-from" in w for w in warnings)


def test_finetuning_keeps_the_checkpoint_architecture_and_freezes_on_few_boxes() -> None:
    model = r50_300pro_3x().model
    profile = profile_of((480, 640), [60.0] * 100, num_images=50)
    recipe = choose(profile, init_from="r50_300pro_3x", init_model=model)
    cfg: Config = recipe.config
    assert cfg.model.num_proposals == 300 and cfg.model.backbone_depth == 50
    assert cfg.model.num_classes == 2
    assert cfg.train.init_from == "r50_300pro_3x" and cfg.train.scale_lr
    assert cfg.train.freeze == "backbone"
    assert not any("--init-from" in w for w in recipe.warnings)


def test_finetuning_keeps_the_checkpoints_stages() -> None:
    # A 3-stage model of this recipe's own, fine-tuned on images of few objects (where a model
    # from scratch gets six) or with a budget for six: its stages stay (else it would not load).
    model = replace(small().model, num_stages=3)
    few = profile_of((160, 160), [30.0] * 400)  # 2 objects per image
    for profile, minutes in ((few, 10.0), (profile_of((160, 160), [30.0] * 1200), 60.0)):
        recipe = choose(profile, minutes=minutes, init_from="mine.safetensors", init_model=model)
        assert recipe.config.model.num_stages == 3
        assert "stages" not in [c.name for c in recipe.choices]


def test_random_crops_are_left_out_where_they_would_enlarge_elongated_images() -> None:
    # 200x4000 images fitted into 1280x1280 are 64 px high; a crop would be resized to 1280 px
    # on its short side (after a pre-crop resize to 2400x48000).
    profile = profile_of((200, 4000), [100.0] * 18, num_images=6)
    recipe = choose(profile)
    assert recipe.config.input.test_min_size == 1280 and not recipe.config.input.crop
    reason = reason_of(recipe, "augmentation")
    assert "no random crops" in reason and "enlarge these images 20.0x" in reason
    # Square images as few: crops.
    assert choose(profile_of((256, 256), [40.0] * 18, num_images=6)).config.input.crop


def test_format_and_to_dict_name_every_choice() -> None:
    recipe = choose(profile_of((1000, 1000), [20.0] * 400), minutes=5)
    text = recipe.format()
    names = [c.name for c in recipe.choices]
    names_listed = ("precision", "batch size", "proposals", "model", "stages", "input size")
    for name in (*names_listed, "schedule"):
        assert name in names and name in text
    data = recipe.to_dict()
    assert data["choices"][0]["name"] == names[0] and data["warnings"] == recipe.warnings


def test_choices_replaced_by_set_are_starred_and_the_changes_listed() -> None:
    recipe = choose(profile_of((1000, 1000), [20.0] * 400), minutes=5)
    assert "*" not in recipe.format(trained=recipe.config)
    trained = recipe.config.apply_overrides(["input.crop=true", "train.seed=3", "train.lr=0.001"])
    lines = recipe.format(trained=trained).splitlines()
    starred = [line.split()[0] for line in lines if line.startswith(" *")]
    assert starred == ["*augmentation", "*learning"]
    assert "    input.crop: false -> true" in lines and "    train.lr: 0.0007 -> 0.001" in lines
    assert any(line.startswith("    train.seed: ") and line.endswith("-> 3") for line in lines)
    overridden = recipe.to_dict(trained=trained)["overridden"]
    assert overridden["input.crop"] == [False, True] and set(overridden) == {
        "input.crop",
        "train.seed",
        "train.lr",
    }
    assert recipe.to_dict()["overridden"] == {}


def test_the_medium_model_s_proposals_are_those_in_the_table_and_warnings() -> None:
    # 66 objects in one image: 90 proposals for the small model, the medium model's 100 after;
    # the medium step costs twice the small one's, so its input size counts half the steps.
    profile = profile_of((160, 160), [30.0] * 1200 + [20.0] * 60, objects_per_image=60)

    def cost_of(cfg: Config) -> StepCost:
        return StepCost(fixed=0.2 * cfg.model.hidden_dim / 64, per_pixel=1e-6)

    recipe = choose_recipe(profile, CPU, Budget(seconds=120 * 60), cost_of)
    assert recipe.config.model.hidden_dim == 128 and recipe.config.model.num_proposals == 100
    names = [c.name for c in recipe.choices]
    assert names.count("proposals") == 1
    assert next(c.value for c in recipe.choices if c.name == "proposals") == "100"
    assert reason_of(recipe, "proposals") == (
        "the medium model's default (at most 66 objects in one image: 90 would do)"
    )
    steps = f"~{recipe.iterations} steps"
    assert steps in reason_of(recipe, "model") and steps in reason_of(recipe, "input size")
    # The short-budget stages' proposals, the six stages' and the medium model's: one warning.
    crowded = profile_of((160, 160), [30.0] * 1200 + [20.0] * 600, objects_per_image=600)
    recipe = choose_recipe(crowded, CPU, Budget(seconds=120 * 60), cost_of)
    assert [c.name for c in recipe.choices].count("proposals") == 1
    assert len([w for w in recipe.warnings if "cannot be detected" in w]) == 1


def test_six_stages_choose_the_proposals_once() -> None:
    # 30 minutes: the six stages' proposals replace the three stages' (one row, one warning).
    profile = profile_of((160, 160), [30.0] * 1200 + [20.0] * 60, objects_per_image=60)
    recipe = choose(profile, minutes=30)
    assert recipe.config.model.num_stages == 6
    assert [c.name for c in recipe.choices].count("proposals") == 1
    assert next(c.value for c in recipe.choices if c.name == "proposals") == "90"


def test_untimed_input_that_resolves_no_box_says_so() -> None:
    # 6 px boxes on 1000 px images: shrunk to 80% at the largest input, none resolves them.
    profile = profile_of((1000, 1000), [6.0] * 100 + [14.0] * 300, num_images=100)
    recipe = choose(profile, minutes=None)
    reason = reason_of(recipe, "input size")
    assert reason.startswith("none resolves the boxes: the largest input the recipe considers")
    assert "shrunk to 80%" in reason
    resolved = profile_of((1000, 1000), [40.0] * 400, num_images=100)
    assert reason_of(choose(resolved, minutes=None), "input size") == (
        "the smallest size resolving the boxes"
    )


def test_a_given_step_count_under_the_budget_is_what_every_choice_counts() -> None:
    # 400 images of 1000x1000 with 10 boxes of 40 px each. 10 minutes give ~1347 steps at 448
    # px, the budget's best trade; the run trains a given train.max_iter=1000, which the budget
    # fits up to 576 px (540 s / 0.532 s = 1015 steps; 608 px: 948): there a larger input
    # costs no step. 300 given steps are too few to learn anything at any size: the largest
    # input the budget fits them at, not the cheapest.
    profile = profile_of((1000, 1000), [40.0] * 4000, num_images=400)

    def choose_steps(minutes: float, steps: int) -> Any:
        budget = Budget(seconds=minutes * 60, iterations=steps)
        return choose_recipe(profile, CPU, budget, lambda cfg: COST)

    assert choose(profile, minutes=10).config.input.test_min_size == 448
    recipe = choose_steps(10, 1000)
    assert recipe.iterations == 1000 and recipe.config.input.test_min_size == 576
    assert reason_of(recipe, "input size") == (
        "boxes of 23 px (median): the largest objects at which the budget fits the given 1000 steps"
    )
    assert choose_steps(10, 300).config.input.test_min_size == 800
    # 3 hours give ~11571 steps, which take the medium model and six stages: 300 given steps
    # take the six stages (as without a budget) but not the medium model, and no row counts the
    # budget's steps but the schedule's.
    assert choose(profile, minutes=180).config.model.num_stages == 6
    recipe = choose_steps(180, 300)
    model = recipe.config.model
    assert (model.hidden_dim, model.num_stages) == (small().model.hidden_dim, 6)
    assert reason_of(recipe, "stages") == (
        "the paper's: the budget fits the given 300 steps with them (fewer would buy no steps)"
    )
    assert [c.name for c in recipe.choices if "11571" in c.reason] == ["schedule"]


def test_a_given_step_count_too_short_to_learn_is_warned_about() -> None:
    profile = profile_of((160, 160), [30.0] * 400)

    def warnings_of(budget: Budget) -> list[str]:
        return choose_recipe(profile, CPU, budget, lambda cfg: COST).warnings

    # 2 minutes give ~478 steps at 160 px, the run trains the 50 given: about them, not the 478.
    (warning,) = [w for w in warnings_of(Budget(seconds=120, iterations=50)) if "short" in w]
    assert warning == (
        "train.max_iter=50 trains only 50 steps: too short to learn much; set "
        "train.max_iter=1000 or more (1000 steps take about 5 minutes: pass --time-budget 5 or "
        "more)"
    )
    (warning,) = [w for w in warnings_of(Budget(seconds=600, iterations=50)) if "short" in w]
    assert warning.endswith("(1000 steps take about 5 minutes)")
    (warning,) = [w for w in warnings_of(Budget(iterations=50)) if "short" in w]
    assert warning.endswith("set train.max_iter=1000 or more")
    assert not any("short" in w for w in warnings_of(Budget(iterations=1000)))
    # A given count the budget cuts short: the budget's steps are what the run trains.
    (warning,) = [w for w in warnings_of(Budget(seconds=120, iterations=5000)) if "short" in w]
    assert warning.startswith("the budget gives only ~478 steps")


def test_advice_to_train_longer_names_a_given_train_max_iter_that_caps_the_run() -> None:
    """A given train.max_iter under MIN_ITERATIONS caps the run whatever the budget: advice to
    train MIN_ITERATIONS steps names it beside the budget; a larger one, or none, leaves the
    budget alone to name."""
    small_boxes = profile_of((1000, 1000), [20.0] * 4000, num_images=400)
    shapes = profile_of((160, 160), [30.0] * 400)

    def advice(profile: DatasetProfile, budget: Budget, start: str) -> str:
        recipe = choose_recipe(profile, CPU, budget, lambda cfg: COST)
        (warning,) = [w for w in recipe.warnings if w.startswith(start)]
        return warning.rsplit(": ", 1)[1]

    # 20-px boxes resolved at 608 px, where 1000 steps take 11 minutes: 2 minutes fit the 300
    # given steps at 384 px.
    assert advice(small_boxes, Budget(seconds=120, iterations=300), "the run trains") == (
        "set train.max_iter=1000 or more and pass --time-budget 11 or more"
    )
    for given in (3000, None):
        resolve = advice(small_boxes, Budget(seconds=120, iterations=given), "the budget gives")
        assert resolve == "pass --time-budget 11 or more"
    # 2 minutes give ~478 steps: too few to learn, whether or not 600 were given.
    assert advice(shapes, Budget(seconds=120, iterations=600), "the budget gives only") == (
        "set train.max_iter=1000 or more and pass --time-budget 5 or more"
    )
    for given in (5000, None):
        learn = advice(shapes, Budget(seconds=120, iterations=given), "the budget gives only")
        assert learn == "pass --time-budget 5 or more"


def test_the_least_budget_named_by_the_refusal_gives_a_logged_window() -> None:
    # 60 s of timing; steps of 0.2164 s at 128 px: a window of 10 takes 2.164 s, which the
    # budget gives after its 10% reserve from 62.40 s on (1.1 min when rounded up).
    profile = profile_of((160, 160), [30.0] * 400)

    def choose_after(minutes: float) -> Any:
        budget = Budget(seconds=minutes * 60)
        return choose_recipe(profile, CPU, budget, lambda cfg: COST, spent_seconds=lambda: 60.0)

    # 62.28 s: 2.28 s left, 2.05 s of steps after the reserve, which would be 9 steps.
    with pytest.raises(ValueError, match=r"--time-budget 1\.038 min .* at least 1\.1 min"):
        choose_after(1.038)
    assert choose_after(1.1).iterations >= 10


def test_warnings_and_rows_describe_the_proposals_given_by_set() -> None:
    # 63 objects in one image: the recipe's 90 proposals cover them, 30 given do not.
    profile = profile_of((640, 640), [20.0] * 400, num_images=100, objects_per_image=60)
    assert not [w for w in choose(profile).warnings if "cannot be detected" in w]
    priced: list[int] = []

    def cost_of(cfg: Config) -> StepCost:
        priced.append(cfg.model.num_proposals)
        return COST

    for minutes in (10.0, None):
        budget = Budget(seconds=None if minutes is None else minutes * 60)
        recipe = choose_recipe(profile, CPU, budget, cost_of, overrides=["model.num_proposals=30"])
        row = next(c for c in recipe.choices if c.name == "proposals")
        assert row.given and row.value == "30" and row.reason.startswith("given by --set")
        assert " *proposals      30 " in recipe.format(trained=recipe.config)
        crowd = [w for w in recipe.warnings if "cannot be detected" in w]
        assert len(crowd) == 1 and "than the 30 proposals" in crowd[0]
        assert crowd[0].endswith("set a larger model.num_proposals")
    assert set(priced) == {30}  # the timing is of the proposals trained
    recipe = choose(profile, overrides=["model.num_proposals=200"])
    assert not [w for w in recipe.warnings if "cannot be detected" in w]


def test_an_input_size_given_by_set_is_what_the_steps_and_warnings_describe() -> None:
    profile = profile_of((640, 640), [20.0] * 400, num_images=100)
    own = choose(profile)
    assert own.config.input.test_min_size > 160 and not own.warnings
    sizes = ["input.train_min_sizes=[160]", "input.train_max_size=160"]
    sizes += ["input.test_min_size=160", "input.test_max_size=160"]
    recipe = choose(profile, overrides=sizes)
    # The recipe's own size stays in its config (the run's is the --set one) ...
    assert recipe.config.input.test_min_size == own.config.input.test_min_size
    row = next(c for c in recipe.choices if c.name == "input size")
    assert row.given and row.value == "fit into 160x160" and "the recipe's fit into" in row.reason
    # ... but the steps are those of 160x160 (0.2256 s each in 90% of 10 minutes), and the
    # 5-px boxes are warned about with the size given.
    assert recipe.iterations == int(540 / COST.seconds(160 * 160))
    assert recipe.seconds_per_iteration == pytest.approx(COST.seconds(160 * 160))
    tiny = [w for w in recipe.warnings if "under 8 px" in w]
    assert len(tiny) == 1 and "at input size fit into 160x160" in tiny[0]
    assert "the one --set input.* gives: set a larger one" in tiny[0]


def test_crop_sizes_follow_the_input_the_run_trains_at() -> None:
    # Few images, a long budget: crops, scaled to the input given by --set (not the recipe's).
    profile = profile_of((640, 640), [200.0] * 40, num_images=20)
    recipe = choose(profile, overrides=["input.test_min_size=320", "input.test_max_size=320"])
    assert recipe.config.input.crop and recipe.config.input.crop_size == (384, 600)
    # Without crops, the sizes still follow the input, for a --set input.crop=true.
    recipe = choose(profile_of((640, 640), [200.0] * 400, num_images=400), minutes=1)
    assert not recipe.config.input.crop
    short = recipe.config.input.test_min_size
    assert recipe.config.input.crop_size == (round(short * 1.2), round(short * 1.875))


def test_overrides_fitting_only_the_medium_model_take_it() -> None:
    profile = profile_of((160, 160), [30.0] * 400)
    recipe = choose(profile, minutes=5, overrides=["model.num_heads=128"])
    assert recipe.config.model.hidden_dim == 128 and recipe.config.model.num_heads == 8
    model = next(c for c in recipe.choices if c.name == "model")
    assert model.given and "the medium model" in model.reason
    assert "model.num_heads=128 fits" in model.reason
    recipe.config.apply_overrides(["model.num_heads=128"])  # fits what the recipe chose
    with pytest.raises(ValueError, match=r"model\.hidden_dim"):
        choose(profile, overrides=["model.num_heads=256"])


def test_train_values_given_by_set_steer_the_schedule_and_rows() -> None:
    profile = profile_of((160, 160), [30.0] * 400)
    given = ["train.max_iter=500", "train.batch_size=4", "train.lr=0.001", "model.num_stages=6"]
    recipe = choose(profile, overrides=given)
    assert recipe.iterations == 500 and recipe.config.train.max_iter == 500
    assert recipe.config.train.batch_size == 4 and recipe.config.model.num_stages == 6
    rows = {c.name: c for c in recipe.choices}
    assert {name for name, c in rows.items() if c.given} == {
        "batch size",
        "stages",
        "schedule",
        "learning rate",
    }
    assert rows["learning rate"].value == "0.001"
    assert "the recipe's 0.00049" in rows["learning rate"].reason  # sqrt(4 / 8) x 7e-4
    assert any("train.max_iter=500 trains only 500 steps" in w for w in recipe.warnings)
    text = recipe.format(trained=recipe.config.apply_overrides(given))
    assert any(line.startswith("    train.lr: 0.000494") for line in text.splitlines())


def test_overrides_that_do_not_fit_the_starting_weights_name_them() -> None:
    profile = profile_of((160, 160), [30.0] * 400)
    with pytest.raises(ValueError, match="in the paper's head on the given ResNet-18 backbone"):
        choose(
            profile, backbone_depth=18, backbone_weights="r18.pth", overrides=["model.num_heads=7"]
        )


def test_counts_of_one_are_singular_in_the_table_and_warnings() -> None:
    # One step over 8 images of one object each: "1 step", "~1 pass", "1 object", "8 images";
    # over 200 images, a fraction of a pass (not "~0 passes").
    few = profile_of((160, 160), [30.0] * 8, num_images=8)
    recipe = choose(few, minutes=None, overrides=["train.max_iter=1"])
    rows = {c.name: c for c in recipe.choices}
    assert rows["schedule"].value == "1 step, no lr decay"
    assert rows["warm-up"].value == "1 step" and rows["warm-up"].reason == "a tenth of the 1 step"
    assert rows["augmentation"].reason == "~1 pass over each of 8 images"
    assert rows["proposals"].reason.startswith("the small model's default (at most 1 object in")
    assert any(w.startswith("train.max_iter=1 trains only 1 step:") for w in recipe.warnings)
    assert any(w.startswith("8 images with 8 boxes: too few") for w in recipe.warnings)
    many = profile_of((160, 160), [30.0] * 200)
    recipe = choose(many, minutes=None, overrides=["train.max_iter=1"])
    assert reason_of(recipe, "augmentation") == "~0.04 passes over each of 200 images"
    one = profile_of((160, 160), [30.0], num_images=1)
    assert any(w.startswith("1 image with 1 box: too few") for w in choose(one).warnings)


def test_a_model_s_default_proposals_above_what_the_images_need_say_so() -> None:
    # At most 2 objects in one image need 10 proposals; the medium model (which
    # model.num_heads=128 fits) trains its default 100, the small one its 50, timed or not.
    profile = profile_of((160, 160), [30.0] * 400)
    for minutes in (None, 5.0):
        recipe = choose(profile, minutes=minutes, overrides=["model.num_heads=128"])
        assert next(c.value for c in recipe.choices if c.name == "proposals") == "100"
        assert reason_of(recipe, "proposals") == (
            "the medium model's default (at most 2 objects in one image: 10 would do)"
        )
        small_recipe = choose(profile, minutes=minutes)
        assert reason_of(small_recipe, "proposals").startswith("the small model's default (")
    # Proposals given by --set are not the model's default, even at its count.
    given = choose(profile, minutes=None, overrides=["model.num_proposals=50"])
    assert "default" not in reason_of(given, "proposals")


@pytest.mark.parametrize(
    ("weights", "overrides", "refused"),
    [
        (
            {"init_from": "x.pt", "init_model": small().model},
            ["model.ffn_dim=128", "model.num_proposals=30"],
            "--set model.num_proposals=30 model.ffn_dim=128: --init-from x.pt has "
            "num_proposals 50, ffn_dim 256, which --preset auto keeps",
        ),
        (
            {"backbone_weights": "r50.pth", "backbone_depth": 50},
            ["model.backbone_depth=101"],
            "--set model.backbone_depth=101: --backbone-weights r50.pth has backbone_depth 50",
        ),
    ],
)
def test_overrides_that_change_the_starting_weights_architecture_are_refused(
    weights: dict[str, Any], overrides: list[str], refused: str
) -> None:
    """The weights load into no other architecture: a --set that passes the config's own check
    was refused only when they loaded, after the data's check and the timing."""
    profile = profile_of((160, 160), [30.0] * 400)
    with pytest.raises(ValueError, match=re.escape(refused)):
        choose(profile, overrides=overrides, **weights)
    with pytest.raises(ValueError, match=re.escape(refused)):
        check_overrides_fit_weights(overrides, **weights)
    # Values that keep the architecture, or change what no tensor's shape holds, are kept.
    check_overrides_fit_weights(["model.num_heads=4", "train.lr=0.001"], **weights)


def test_proposals_given_by_set_with_weights_have_their_starred_row() -> None:
    # The recipe takes a given count into its own config: without a row (weights get none of
    # their own) the table neither showed nor listed it.
    profile = profile_of((160, 160), [30.0] * 400)
    weights: dict[str, Any] = {"backbone_weights": "r18.pth", "backbone_depth": 18}
    recipe = choose(profile, minutes=None, overrides=["model.num_proposals=300"], **weights)
    row = next(c for c in recipe.choices if c.name == "proposals")
    assert row.given and row.value == "300" and recipe.config.model.num_proposals == 300
    assert "proposals" not in [c.name for c in choose(profile, minutes=None, **weights).choices]


def test_a_schedule_too_short_to_decay_has_no_decay_and_says_so() -> None:
    # 80% and 93% of 2 steps round to step 2: a decay at the last step is never reached, and
    # the row said "lr x0.1 at 80% and 93%" while training warned that it does not decay.
    profile = profile_of((160, 160), [30.0] * 400)
    for steps, decays, text in ((2, (), "no lr decay"), (3, (2,), "lr x0.1 at 67%")):
        recipe = choose(profile, minutes=None, overrides=[f"train.max_iter={steps}"])
        assert recipe.config.train.steps == decays
        assert recipe.config.train.schedule_notes() == []
        assert next(c.value for c in recipe.choices if c.name == "schedule").endswith(text)
    given = ["train.max_iter=2", "train.steps=[1,5]"]
    recipe = choose(profile, minutes=None, overrides=given)
    assert next(c.value for c in recipe.choices if c.name == "schedule") == (
        "2 steps (at most), lr x0.1 at step 1"
    )


def test_the_schedule_row_of_given_decays_gives_their_gamma() -> None:
    # It said "lr x0.1" whatever train.gamma the run decays by.
    profile = profile_of((160, 160), [30.0] * 400)
    given = ["train.max_iter=20", "train.steps=[10,15]", "train.gamma=0.5"]
    recipe = choose(profile, minutes=None, overrides=given)
    assert next(c.value for c in recipe.choices if c.name == "schedule") == (
        "20 steps (at most), lr x0.5 at steps 10 and 15"
    )
