"""Resuming a run: refusals (another model, past max_iter), what a resume says it changes
(batch, images; the schedule and settings in test_resume_changes), said once, and the states
restored."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from sparsercnn.config import Config
from sparsercnn.engine import resume as resume_module
from sparsercnn.engine.checkpoint import (
    DamagedCheckpointError,
    load_training_checkpoint,
    save_training_checkpoint,
)
from sparsercnn.engine.resume import check_resume, restore_training_state
from sparsercnn.engine.training_images import data_identity
from tests.damaged_archive import flip_a_byte_of_the_largest_record
from tests.engine.small_checkpoints import (
    CATEGORIES,
    count_summed_checkpoints,
    model_and_optimizer,
    save_checkpoint,
)
from tests.file_mappings import mapped_from, needs_proc_maps


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("model", "num_heads", 4),  # the same tensors, split into other heads
        ("model", "freeze_at", 4),  # other trainable tensors than the optimizer state's
        ("train", "freeze", "backbone"),
    ],
)
def test_resuming_with_another_model_is_refused_naming_each_change(
    tmp_path: Path, section: str, key: str, value: object
) -> None:
    """Was: a changed model.num_heads resumed with a warning (weights trained for 8 heads read as
    4), a changed freeze failed in the optimizer ("loaded state dict contains a parameter group
    that doesn't match the size of optimizer's group"), neither naming the key."""
    path = save_checkpoint(tmp_path, 8)
    model, optimizer = model_and_optimizer()
    current = Config()
    before = getattr(getattr(current, section), key)
    setattr(getattr(current, section), key, value)
    with pytest.raises(ValueError) as error:
        restore_training_state(tmp_path, model, optimizer, None, current, CATEGORIES)
    message = str(error.value)
    assert message.startswith(f"{path} is from a run with another model ")
    assert f"({section}.{key} {before!r} -> {value!r})" in message
    assert "--resume without --preset, --config, --freeze or --set model.*" in message


def test_a_changed_dropout_resumes() -> None:
    """Dropout acts in training only: the weights compute what they did."""
    saved, current = Config(), Config()
    current.model.dropout = 0.5
    resume_module.check_same_model(saved, current, "checkpoint_0000008.pt")


class _Images:
    """What :func:`data_identity` reads of a ``CocoDataset``."""

    def __init__(self, ids: list[int], size: tuple[int, int] = (64, 80)) -> None:
        self.image_ids = ids
        self.image_sizes = [size] * len(ids)


def _identity(images: _Images, *, with_ids: bool = True) -> dict[str, Any]:
    """:func:`data_identity` of ``images``; ``with_ids=False``: as a checkpoint written before
    the ids and sizes were kept holds it."""
    identity = data_identity(images)
    assert identity is not None
    if not with_ids:
        identity = {key: identity[key] for key in ("num_images", "digest")}
    return identity


@pytest.mark.parametrize(
    ("images", "with_ids", "expected"),
    [
        (_Images([1, 2, 3]), True, None),
        (_Images([1, 2, 3]), False, None),
        (_Images([1, 2]), True, "trained on 3 images with 2 (1 removed: id 3): it does not"),
        (_Images([1, 2, 4]), True, "trained on 3 images with 3 (1 added: id 4; 1 removed: id 3)"),
        (_Images([1, 2, 3], (80, 64)), True, "with 3 (3 resized: ids 1 64x80 -> 80x64, 2 64x80"),
        (_Images([1, 2]), False, "resuming a run trained on 3 images with 2: it does not continue"),
        (_Images([1, 2, 4]), False, "on 3 images with 3 others (other image ids or sizes)"),
    ],
)
def test_resuming_on_other_training_images_is_warned_about(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    images: _Images,
    with_ids: bool,
    expected: str | None,
) -> None:
    """Was: a run resumed with another --train-json of the same classes went on without a word,
    on another data order; then: without saying which images changed. A checkpoint written
    before the ids were kept (``with_ids=False``) still says that they changed."""
    save_checkpoint(tmp_path, 8, extra={"data": _identity(_Images([1, 2, 3]), with_ids=with_ids)})
    model, optimizer = model_and_optimizer()
    current = data_identity(images)
    with caplog.at_level("WARNING"):
        restore_training_state(tmp_path, model, optimizer, None, Config(), CATEGORIES, data=current)
    if expected is None:
        assert not caplog.records
    else:
        assert expected in caplog.text and "--train-json and --train-images" in caplog.text


@pytest.mark.parametrize(
    ("world_size", "batch_size", "expected"),
    [
        # torchrun with 2 processes resuming a 1-process run: twice the images, the lr scaled.
        (
            2,
            2,
            "1 process(es) x 2 image(s) x 1 micro-batch(es) (2 images/step, lr 3.13e-06)"
            " with 2 x 2 x 1 (4 images/step, lr 6.25e-06)",
        ),
        (1, 4, "(2 images/step, lr 3.13e-06) with 1 x 4 x 1 (4 images/step, lr 6.25e-06)"),
        (1, 2, None),
    ],
)
def test_resuming_with_other_processes_or_batch_is_warned_about(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    world_size: int,
    batch_size: int,
    expected: str | None,
) -> None:
    """The checkpoint holds one RNG state per process: resuming with another number of processes
    (or another batch) changes the images per step, the scaled lr and the data order."""
    saved = Config()
    saved.train.batch_size = 2
    model, optimizer = model_and_optimizer()
    save_training_checkpoint(tmp_path, 8, model, optimizer, None, saved, CATEGORIES)
    resumed = Config()
    resumed.train.batch_size = batch_size
    with caplog.at_level("WARNING", logger="sparsercnn.engine"):
        restore_training_state(
            tmp_path, model, optimizer, None, resumed, CATEGORIES, world_size=world_size
        )
    warnings = [r.getMessage() for r in caplog.records if "resuming a run of" in r.getMessage()]
    if expected is None:
        assert not warnings
    else:
        (warning,) = warnings
        assert expected in warning and "does not continue as the interrupted run" in warning


@pytest.mark.parametrize(
    ("saved", "resumed", "warned"),
    [(None, True, True), (None, False, False), (True, False, True), (True, True, False)],
)
def test_resuming_with_grouping_turned_on_or_off_is_warned_about(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    saved: bool | None,
    resumed: bool,
    warned: bool,
) -> None:
    """Grouping changes the batches: resuming with it switched is warned about, and a
    checkpoint saved before the option existed (``None``: no key) counts as ungrouped."""
    config = Config()
    if saved is not None:
        config.train.aspect_ratio_grouping = saved
    else:
        original = Config.to_dict

        def without_key(self: Config) -> dict[str, Any]:
            data = original(self)
            del data["train"]["aspect_ratio_grouping"]
            return data

        monkeypatch.setattr(Config, "to_dict", without_key)
    model, optimizer = model_and_optimizer()
    save_training_checkpoint(tmp_path, 8, model, optimizer, None, config, CATEGORIES)
    monkeypatch.undo()
    current = Config()
    current.train.aspect_ratio_grouping = resumed
    with caplog.at_level("WARNING", logger="sparsercnn.engine"):
        restore_training_state(tmp_path, model, optimizer, None, current, CATEGORIES)
    warnings = [r.getMessage() for r in caplog.records if "aspect-ratio grouping" in r.getMessage()]
    assert bool(warnings) == warned
    if warned:
        flag = str(bool(saved)).lower()
        assert f"--set train.aspect_ratio_grouping={flag} continues as it was" in warnings[0]


def test_a_resume_checked_first_is_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """check_resume says before the data what restoring says after it (was: only restoring, after
    the data's check): restoring the checkpoint checked says nothing again; what it refuses,
    both refuse."""
    saved = Config()
    saved.train.max_iter, saved.train.steps = 40, (30,)
    model, optimizer = model_and_optimizer()
    save_training_checkpoint(tmp_path, 20, model, optimizer, None, saved, CATEGORIES)
    newest = save_training_checkpoint(tmp_path, 40, model, optimizer, None, saved, CATEGORIES)
    current = Config()
    current.train.max_iter, current.train.steps, current.train.log_period = 40, (30,), 5
    with caplog.at_level("INFO", logger="sparsercnn.engine"):
        checked = check_resume(tmp_path, current)
    said = [r.getMessage() for r in caplog.records]
    assert checked is not None and (checked.path, checked.iteration) == (newest, 40)
    assert "train.log_period 20 -> 5" in said[0] and "nothing to train" in said[1]
    caplog.clear()
    with caplog.at_level("INFO", logger="sparsercnn.engine"):
        restore_training_state(checked, model, optimizer, None, current, CATEGORIES)
    assert [r.getMessage() for r in caplog.records] == [f"resumed from {newest} at iteration 40"]
    current.train.max_iter = 30
    with pytest.raises(ValueError, match=r"at iteration 40, past train\.max_iter 30"):
        check_resume(tmp_path, current)
    with pytest.raises(ValueError, match=r"at iteration 40, past train\.max_iter 30"):
        restore_training_state(tmp_path, model, optimizer, None, current, CATEGORIES)


def test_a_rank_the_checkpoint_has_no_state_of_keeps_its_own(tmp_path: Path) -> None:
    """Resuming a 1-process run with 2: rank 1 keeps its own random numbers instead of taking
    rank 0's (both would then draw the same dropout masks)."""
    save_checkpoint(tmp_path, 8)
    model, optimizer = model_and_optimizer()
    streams = []
    for rank in (0, 1):
        torch.manual_seed(100 + rank)
        restore_training_state(
            tmp_path, model, optimizer, None, Config(), CATEGORIES, rank=rank, world_size=2
        )
        streams.append(torch.rand(4))
    assert not torch.equal(streams[0], streams[1])
    torch.manual_seed(101)
    assert torch.equal(streams[1], torch.rand(4))


@needs_proc_maps
def test_a_restored_optimizer_trains_on_its_own_memory_not_the_file(tmp_path: Path) -> None:
    """The checkpoint's tensors are mapped (read once): the model copies its weights, but the
    optimizer keeps moments on its parameters' device as they are given, and trained on views
    of a file the run prunes later."""
    path = save_checkpoint(tmp_path, 8)
    model, optimizer = model_and_optimizer()
    restore_training_state(tmp_path, model, optimizer, None, Config(), CATEGORIES)
    moments = [value for state in optimizer.state.values() for value in state.values()]
    assert moments and not any(mapped_from(value, path) for value in moments)
    assert not any(mapped_from(value, path) for value in model.state_dict().values())


def _notes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "before train.max_iter" in r.getMessage()]


def test_the_schedule_notes_of_a_resumed_run_are_said_with_its_check_and_only_if_it_trains(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The trainer said what of the schedule a run never reaches after the data's check, and
    also to a finished run resumed with nothing to train. check_resume says it before, once,
    of a run that trains."""
    config = Config()
    config.train.max_iter, config.train.steps, config.train.warmup_iters = 40, (50,), 5
    model, optimizer = model_and_optimizer()
    save_training_checkpoint(tmp_path / "run", 20, model, optimizer, None, config, CATEGORIES)
    finished = tmp_path / "finished"
    save_training_checkpoint(finished, 40, model, optimizer, None, config, CATEGORIES)
    with caplog.at_level("INFO", logger="sparsercnn.engine"):
        checked = check_resume(tmp_path / "run", config)
        assert _notes(caplog) == [
            "train.steps [50] are not before train.max_iter=40: the learning rate does not decay "
            "there; set train.steps to change that"
        ]
        restore_training_state(checked, model, optimizer, None, config, CATEGORIES)
        assert len(_notes(caplog)) == 1
        caplog.clear()
        check_resume(finished, config)
        restore_training_state(finished, model, optimizer, None, config, CATEGORIES)
    assert any("nothing to train" in r.getMessage() for r in caplog.records)
    assert _notes(caplog) == []


@pytest.mark.parametrize(
    ("budget_given", "budget_extends", "said"),
    [
        (False, True, "(raise train.max_iter, or give a time budget, to continue the run)"),
        (True, True, None),  # the budget trains the run on
        (True, False, "(raise train.max_iter to continue the run)"),  # the demo's
        (False, False, "(raise train.max_iter to continue the run)"),
    ],
)
def test_a_finished_run_is_told_of_a_time_budget_only_where_one_would_extend_it(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    budget_given: bool,
    budget_extends: bool,
    said: str | None,
) -> None:
    """Whether a budget is given and whether the command's budget extends a finished run were
    passed as "extends" (the conjunction) and "hint", a pair whose callers each computed the
    conjunction; both entry points take the two facts and say alike."""
    path = save_checkpoint(tmp_path, Config().train.max_iter)
    model, optimizer = model_and_optimizer()
    flags = {"budget_given": budget_given, "budget_extends": budget_extends}
    for check in (
        lambda: check_resume(path, Config(), **flags),
        lambda: restore_training_state(path, model, optimizer, None, Config(), CATEGORIES, **flags),
    ):
        caplog.clear()
        with caplog.at_level("INFO", logger="sparsercnn.engine.resume"):
            check()
        lines = [r.getMessage() for r in caplog.records if "nothing to train" in r.getMessage()]
        if said is None:
            assert not lines
        else:
            (line,) = lines
            assert line.endswith(said)


def test_a_damaged_newest_checkpoint_is_skipped_by_the_check_which_says_it_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A run folder whose newest checkpoint is damaged inside a tensor: the check (before the
    data) said what resuming it at iteration 8 changes, then restoring (after the data) skipped
    it and said it again of iteration 4, taking back nothing. The check chooses the checkpoint
    restoring reads, and says so once."""
    save_checkpoint(tmp_path, 4)
    newest = save_checkpoint(tmp_path, 8)
    flip_a_byte_of_the_largest_record(newest, tensor=True)
    config = Config()
    config.train.log_period = 5
    with caplog.at_level("INFO", logger="sparsercnn.engine"):
        checked = check_resume(tmp_path, config)
    older = tmp_path / "checkpoint_0000004.pt"
    assert (checked.config, checked.path, checked.iteration) == (config, older, 4)
    said = [r.getMessage() for r in caplog.records]
    assert (
        "checkpoint_0000008.pt (record" in said[0] and "resuming from checkpoint_0000004" in said[0]
    )
    assert sum("train.log_period 20 -> 5" in line for line in said) == 1
    caplog.clear()
    model, optimizer = model_and_optimizer()
    with caplog.at_level("INFO", logger="sparsercnn.engine"):
        point = restore_training_state(checked, model, optimizer, None, config, CATEGORIES)
    assert point.iteration == 4
    assert [r.getMessage() for r in caplog.records] == [f"resumed from {older} at iteration 4"]


@pytest.mark.parametrize("read_first", [False, True])
def test_a_checkpoint_checked_before_the_data_is_not_summed_again_unless_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_first: bool
) -> None:
    """Was: the check before the data summed every record of the checkpoint, and restoring it
    after the data summed them all again (a third of torch.load's time). The file the check
    summed is not summed again; one put in its place since is (here damaged, and refused).
    ``read_first``: the check takes the checkpoint a command read (for its config)."""
    save_checkpoint(tmp_path, 4)
    summed = count_summed_checkpoints(monkeypatch)
    checked = check_resume(load_training_checkpoint(tmp_path) if read_first else tmp_path, Config())
    model, optimizer = model_and_optimizer()
    restore_training_state(checked, model, optimizer, None, Config(), CATEGORIES)
    assert summed == [checked.path]
    copy = tmp_path / "copy.pt"
    shutil.copyfile(checked.path, copy)
    flip_a_byte_of_the_largest_record(copy, tensor=True)
    os.replace(copy, checked.path)
    with pytest.raises(DamagedCheckpointError, match=r"checkpoint_0000004\.pt is damaged \(record"):
        restore_training_state(checked, model, optimizer, None, Config(), CATEGORIES)
    assert summed == [checked.path] * 2


def test_a_checked_resume_is_checked_once_and_restored_only_with_its_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command's check of the resume carried its config, and restoring it checked the resume
    again against the trainer's own: two checks of one resume, and a config other than the one
    checked (whose changes the check had said) restored without a word. The check runs once;
    restoring with another config is refused, with one message naming what differs."""
    saved = Config()
    saved.train.max_iter, saved.train.steps = 40, (30,)
    model, optimizer = model_and_optimizer()
    path = save_training_checkpoint(tmp_path, 20, model, optimizer, None, saved, CATEGORIES)
    checks: list[object] = []
    check_same_model = resume_module.check_same_model

    def counted(saved: Config, current: Config, source: str | Path) -> None:
        checks.append(source)
        check_same_model(saved, current, source)

    monkeypatch.setattr(resume_module, "check_same_model", counted)
    checked = check_resume(tmp_path, saved)
    point = restore_training_state(checked, model, optimizer, None, saved, CATEGORIES)
    assert point.iteration == 20 and checks == [path]
    other = Config()
    other.train.max_iter, other.train.steps = 50, (30,)
    with pytest.raises(ValueError) as error:
        restore_training_state(checked, model, optimizer, None, other, CATEGORIES)
    assert str(error.value) == (
        f"{path}: the resume was checked with another config than the one it is restored with "
        "(train.max_iter 40 -> 50): check it again (check_resume) with the config the run "
        "trains with"
    )
    assert checks == [path]


def test_a_checked_checkpoint_rewritten_with_another_iteration_is_refused(tmp_path: Path) -> None:
    """The checked file, replaced since the check by a checkpoint of another iteration, is not
    restored as the one checked (whose iteration the check judged against train.max_iter)."""
    config = Config()
    model, optimizer = model_and_optimizer()
    path = save_training_checkpoint(tmp_path, 20, model, optimizer, None, config, CATEGORIES)
    checked = check_resume(path, config)
    later = save_training_checkpoint(
        tmp_path / "other", 30, model, optimizer, None, config, CATEGORIES
    )
    shutil.copyfile(later, path)
    with pytest.raises(ValueError, match=r"holds iteration 30, not 20 as when the resume was"):
        restore_training_state(checked, model, optimizer, None, config, CATEGORIES)


def test_a_checked_checkpoint_replaced_by_another_run_s_is_checked_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: a file replaced since the check had its iteration compared only, so another run's
    checkpoint at the same iteration, of another model, was restored (here its tensors fit, so
    nothing else refused it). Its config is checked again, as a resume from it would be."""
    config = Config()
    model, optimizer = model_and_optimizer()
    path = save_training_checkpoint(tmp_path, 20, model, optimizer, None, config, CATEGORIES)
    checked = check_resume(path, config)
    another = Config()
    another.model.num_heads = 4
    theirs = save_training_checkpoint(
        tmp_path / "other", 20, model, optimizer, None, another, CATEGORIES
    )
    shutil.copyfile(theirs, path)
    refused = pytest.raises(ValueError, match=r"is from a run with another model \(model\.num_h")
    with caplog.at_level("WARNING", logger="sparsercnn.engine"), refused:
        restore_training_state(checked, model, optimizer, None, config, CATEGORIES)
    assert caplog.messages == [
        f"{path} was rewritten or replaced since the resume was checked: checked again"
    ]
    # The run's own checkpoint put back (another stamp, the same config) is restored.
    save_training_checkpoint(tmp_path, 20, model, optimizer, None, config, CATEGORIES)
    point = restore_training_state(checked, model, optimizer, None, config, CATEGORIES)
    assert (point.path, point.iteration) == (path, 20)
