"""The automatic recipe of a COCO training set on a device: read, time, choose.

:func:`recipe_for_dataset` profiles the training set (checked by the data policy here, or as
its caller checked it before), describes the device, takes the architecture of the starting
weights if any (read once, by :func:`~sparsercnn.engine.model_init.read_starting_weights`), and
gives :func:`choose_recipe` a step pricer that times real training steps of a candidate config
at two input sizes (a few seconds on a CPU for the small model) plus the loading of a few of the
set's own images.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from sparsercnn.config import Config, TrainConfig
from sparsercnn.data.checked_coco import CheckedCoco
from sparsercnn.data.image_cache import image_bytes
from sparsercnn.data.image_io import ImageReadError, decode_image
from sparsercnn.data.transforms import resize_image, resized_shape
from sparsercnn.recipe.auto_recipe import choose_recipe
from sparsercnn.recipe.dataset_profile import DatasetProfile
from sparsercnn.recipe.hardware import detect_hardware
from sparsercnn.recipe.recipe import Budget, BudgetSpentError, Recipe
from sparsercnn.recipe.step_timing import ImageLoadCost, StepCost, measure_step_seconds

if TYPE_CHECKING:
    from sparsercnn.engine.model_init import StartingWeights

logger = logging.getLogger(__name__)

# The two short sides the step cost is timed at (the long side follows the images' aspect).
TIMING_SIDES = (160, 384)
# Images decoded to price data loading (in the training process: workers are off on CPUs).
TIMED_IMAGES = 4


def recipe_for_dataset(
    train_json: str | os.PathLike[str],
    train_images: str | os.PathLike[str],
    device: torch.device,
    *,
    time_budget_minutes: float | None = None,
    max_iter: int | None = None,
    batch_size: int | None = None,
    world_size: int = 1,
    weights: StartingWeights | None = None,
    image_cache_mb: int = TrainConfig.image_cache_mb,
    skip_invalid: bool = False,
    checked: CheckedCoco | None = None,
    overrides: Sequence[str] = (),
) -> Recipe:
    """Choose the training config for a COCO set (``--preset auto``).

    Args:
        train_json, train_images: the training set.
        device: where training will run (and where the steps are timed).
        time_budget_minutes: the wall-clock budget; without it the schedule counts epochs.
        max_iter: the steps to train (``train.max_iter``, also read off ``overrides``): with a
            time budget, the run trains no more, and every choice counts them where the budget
            gives more.
        batch_size: the images per step given (``train.batch_size``), else chosen.
        world_size: the training processes, each of ``batch_size`` images per step.
        weights: the starting weights (``train.init_from``: a detector checkpoint, whose
            architecture is kept; ``train.backbone_weights``: ImageNet ResNet weights for the
            backbone), read once by :func:`~sparsercnn.engine.model_init.read_starting_weights`
            and given to training as they are, so that their files are not read again.
        image_cache_mb: the training dataset's image cache (``train.image_cache_mb``): whether
            the set's decoded images fit it decides what loading a sample costs.
        skip_invalid: the entries the data policy calls errors are left out (as training will
            leave them out) instead of refused.
        checked: the training set as the data policy keeps it (the ``checked`` entries of
            :func:`~sparsercnn.data.policy.checked_for_training` of ``train_json`` and
            ``train_images``, with ``skip_invalid``), where the caller checked it already
            (``train`` before its budget starts): profiled as it is, the set is not checked
            again. None: it is checked here.
        overrides: the ``--set`` values the run trains with (``choose_recipe``'s
            ``overrides``): the timing, the choices and the warnings are those of that config.

    Raises:
        ValueError: a budget that leaves less than one logged window of steps after the
            timing (the steps are those of the budget left).
        BudgetSpentError: the budget was spent before a candidate after the first was timed
            (a busy machine cannot spend much more than the budget choosing), or by the
            timing as a whole.
        DatasetError: the JSON is missing or not a COCO instances file, or the data policy
            refuses the set (:class:`~sparsercnn.data.policy.InvalidDataError`, naming every
            bad entry and missing file): before any timing, as training would refuse it; not
            raised for a ``checked`` set.
    """
    start = time.perf_counter()
    # The whole data policy, decoding included, so that the recipe describes the entries
    # training keeps at their files' sizes (the dataset's own check then decodes only files
    # changed since).
    if checked is None:
        profile = DatasetProfile.from_dataset(train_json, train_images, skip_invalid=skip_invalid)
    else:
        profile = DatasetProfile.from_checked(checked)
    seconds = None if time_budget_minutes is None else time_budget_minutes * 60
    load_seconds = _image_load_seconds(profile, Path(train_images), image_cache_mb * 2**20)

    timed = False

    def step_cost_of(cfg: Config) -> StepCost:
        nonlocal timed
        # The first config is always timed: the budget's own check needs its price.
        spent = time.perf_counter() - start
        if timed and seconds is not None and spent >= seconds:
            raise BudgetSpentError(seconds / 60, spent)
        timed = True
        return _time_step_cost(cfg, profile, device, load_seconds)

    recipe = choose_recipe(
        profile,
        detect_hardware(device),
        Budget(seconds=seconds, iterations=max_iter),
        step_cost_of,
        init_from=weights.init_from if weights is not None else "",
        backbone_weights=weights.backbone_weights if weights is not None else "",
        init_model=(
            weights.checkpoint.config.model
            if weights is not None and weights.checkpoint is not None
            else None
        ),
        backbone_depth=weights.backbone_depth if weights is not None else None,
        spent_seconds=lambda: time.perf_counter() - start,
        batch_size=batch_size,
        world_size=world_size,
        overrides=overrides,
    )
    spent = time.perf_counter() - start
    if seconds is not None and spent >= seconds:  # before the recipe is shown as if to train
        raise BudgetSpentError(seconds / 60, spent)
    return recipe


def _time_step_cost(
    cfg: Config, profile: DatasetProfile, device: torch.device, load_seconds: float
) -> StepCost:
    """Time ``cfg``'s step at the two TIMING_SIDES; add the data loading of a batch."""
    boxes = max(1, int(statistics.median(profile.objects_per_image.tolist())))
    aspect = min(profile.long_to_short, 1333 / 800)
    timings = []
    for side in TIMING_SIDES:
        size = (side, int(side * aspect) // 32 * 32)
        start = time.perf_counter()
        step = measure_step_seconds(cfg, size, device, num_boxes=boxes)
        logger.info(
            "timed a training step of R%d/%d, head %d x %d stages at %dx%d: %.2f s (%.1f s "
            "spent timing)",
            cfg.model.backbone_depth,
            cfg.model.backbone_width,
            cfg.model.hidden_dim,
            cfg.model.num_stages,
            *size,
            step,
            time.perf_counter() - start,
        )
        timings.append((size[0] * size[1], step + load_seconds * cfg.train.batch_size))
    return StepCost.fit(timings[0], timings[1])


def _image_load_seconds(profile: DatasetProfile, image_dir: Path, cache_bytes: int) -> float:
    """Seconds a training sample spends on its image (:class:`ImageLoadCost`), timed on a few of
    the set's images spread over it, loaded as the training dataset loads them for the larger
    timing size: decoded at the resolution that size needs, then resized; the resize alone when
    the set fits an image cache of ``cache_bytes``."""
    picked = range(0, profile.num_images, max(1, profile.num_images // TIMED_IMAGES))
    decode_seconds, resize_seconds, sizes = [], [], []
    for index in picked[:TIMED_IMAGES]:
        # From the checked size (the file's), as the dataset does.
        height, width = int(profile.image_heights[index]), int(profile.image_widths[index])
        size = resized_shape(height, width, TIMING_SIDES[-1], 10_000)
        start = time.perf_counter()
        try:
            image = decode_image(image_dir / profile.file_names[index], at_least=size).image
        except ImageReadError:  # the data policy reports it when training starts
            continue
        decoded = time.perf_counter()
        resize_image(image, size)
        decode_seconds.append(decoded - start)
        resize_seconds.append(time.perf_counter() - decoded)
        sizes.append(image_bytes(image.width, image.height))
    if not sizes:
        return 0.0
    median = statistics.median
    cost = ImageLoadCost(median(decode_seconds), median(resize_seconds), median(sizes))
    return cost.per_sample(profile.num_images, cache_bytes)
