"""What a resumed run says it changes: the learning-rate schedule, named for what it does, and
every other changed setting with the ``--set`` that keeps the run's."""

from __future__ import annotations

import pytest

from sparsercnn.config import Config
from sparsercnn.engine.resume_changes import log_config_changes
from sparsercnn.presets import tiny


def test_config_changes_on_resume_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Was: ``max_iter 2 -> 4, steps [] -> [], warm-up 0 -> 0``, naming the settings that did
    not change."""
    saved, current = Config(), Config()
    saved.train.max_iter, current.train.max_iter = 2, 4
    current.model.dropout = 0.5
    with caplog.at_level("INFO", logger="sparsercnn.engine.resume_changes"):
        log_config_changes(saved, current, 2, base_lr=1.0, extended=False)
    assert "schedule extended on resume at iteration 2: max_iter 2 -> 4\n" in caplog.text
    assert (
        "resuming with other settings than the run's: model.dropout 0.0 -> 0.5; --set "
        "model.dropout=0.0 keeps the run's"
    ) in caplog.text


def test_a_fixed_preset_resumed_without_its_set_values_says_each_change_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``train --preset tiny --set train.max_iter=6 'train.steps=[4]' train.warmup_iters=2
    train.checkpoint_period=3 train.seed=7``, resumed at 3 with ``--preset tiny --resume``: the
    preset's 3000 steps restarted the warm-up with an info line, and its other checkpoint
    period and seed (another data order) went unsaid. Each is said once, with the ``--set``
    that keeps the run's values."""
    overrides = ["train.max_iter=6", "train.steps=[4]", "train.warmup_iters=2"]
    overrides += ["train.checkpoint_period=3", "train.seed=7"]
    saved, current = tiny().apply_overrides(overrides), tiny()
    with caplog.at_level("INFO", logger="sparsercnn.engine.resume_changes"):
        log_config_changes(saved, current, 3, base_lr=1.0, extended=False)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "schedule replaced (not the learning rates the run trained with) on resume at "
            "iteration 3: max_iter 6 -> 3000, steps [4] -> [2400, 2800], warm-up 2 -> 50; to "
            "keep the run's schedule, resume without --preset or --config (the run's "
            "config.json), or with --set train.max_iter=6 'train.steps=[4]' "
            "train.warmup_iters=2",
        ),
        (
            "WARNING",
            "resuming with other settings than the run's: train.seed 7 -> 40244023, "
            "train.checkpoint_period 3 -> 500; --set train.seed=7 train.checkpoint_period=3 "
            "keeps the run's",
        ),
    ]


@pytest.mark.parametrize("extended", [True, False])
def test_a_completed_run_extended_says_its_decays_are_a_fresh_run_s(
    caplog: pytest.LogCaptureFixture, extended: bool
) -> None:
    """The trainer said the extension in a line of its own and the resume's schedule line
    said it again. Steps the user chose for the extension are not called a fresh run's, also
    where they are the same (the line guessed the extension from the steps)."""
    saved, current = Config(), Config()
    saved.train.max_iter, saved.train.steps, saved.train.warmup_iters = 39, (), 5
    current.train.max_iter, current.train.steps, current.train.warmup_iters = 41, (39, 40), 5
    with caplog.at_level("INFO", logger="sparsercnn.engine.resume_changes"):
        log_config_changes(saved, current, 39, base_lr=1.0, extended=extended)
    line = "schedule extended on resume at iteration 39: max_iter 39 -> 41, steps [] -> [39, 40]"
    if extended:
        line += " (the decays of a fresh run of that length; set train.steps to choose others)"
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("INFO", line)]


@pytest.mark.parametrize(
    ("max_iter", "steps", "warmup_iters", "change"),
    [
        (300, (80, 250), 10, "extended"),
        (90, (80,), 10, "shortened"),
        (100, (80, 95), 10, "changed ahead"),
        # Another preset's whole schedule: the decay taken at 80 is gone.
        (3000, (2400, 2800), 10, "replaced (not the learning rates the run trained with)"),
        (100, (80, 93), 50, "replaced (not the learning rates the run trained with)"),
    ],
)
def test_a_schedule_change_on_resume_is_named_for_what_it_does(
    caplog: pytest.LogCaptureFixture,
    max_iter: int,
    steps: tuple[int, ...],
    warmup_iters: int,
    change: str,
) -> None:
    """A run at iteration 85 of its schedule (100 steps, decays at 80 and 93) resumed with
    another: every longer schedule was "extended", another preset's whole schedule too."""
    saved, current = Config(), Config()
    saved.train.max_iter, saved.train.steps, saved.train.warmup_iters = 100, (80, 93), 10
    current.train.max_iter, current.train.steps = max_iter, steps
    current.train.warmup_iters = warmup_iters
    with caplog.at_level("INFO", logger="sparsercnn.engine.resume_changes"):
        log_config_changes(saved, current, 85, base_lr=1.0, extended=False)
    (record,) = caplog.records
    message = record.getMessage()
    assert message.startswith(f"schedule {change} on resume at iteration 85: ")
    assert ("max_iter 100 -> " in message) == (max_iter != 100)
    assert record.levelname == ("WARNING" if change.startswith("replaced") else "INFO")


@pytest.mark.parametrize(
    ("iteration", "gamma", "warmup_factor", "change"),
    [
        (85, 0.5, 0.01, "replaced (not the learning rates the run trained with)"),
        (50, 0.5, 0.01, "changed ahead"),
        (85, 0.1, 0.1, "replaced (not the learning rates the run trained with)"),
    ],
)
def test_a_changed_gamma_or_warm_up_factor_on_resume_is_logged(
    caplog: pytest.LogCaptureFixture,
    iteration: int,
    gamma: float,
    warmup_factor: float,
    change: str,
) -> None:
    """Another train.gamma or train.warmup_factor was not said, though it changes the learning
    rates the run trained with (after its decay at 80, during its warm-up) or will train with."""
    saved, current = Config(), Config()
    for config in (saved, current):
        config.train.max_iter, config.train.steps, config.train.warmup_iters = 100, (80,), 10
    current.train.gamma, current.train.warmup_factor = gamma, warmup_factor
    with caplog.at_level("INFO", logger="sparsercnn.engine.resume_changes"):
        log_config_changes(saved, current, iteration, base_lr=1.0, extended=False)
    changed = "gamma 0.1 -> 0.5" if gamma == 0.5 else "warm-up factor 0.01 -> 0.1"
    line = f"schedule {change} on resume at iteration {iteration}: {changed}"
    if change.startswith("replaced"):
        rise = "; the learning rate rises from 0.1 to 0.5 there" if gamma == 0.5 else ""
        kept = "train.gamma=0.1" if gamma == 0.5 else "train.warmup_factor=0.01"
        line += (
            f"{rise}; to keep the run's schedule, resume without --preset or --config (the "
            f"run's config.json), or with --set {kept}"
        )
    assert [r.getMessage() for r in caplog.records] == [line]
