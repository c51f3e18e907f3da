"""Training checkpoints: round trip, RNG states, atomic writes, pruning, refusal of bad files."""

from __future__ import annotations

import errno
import pickle
import random
import re
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pytest
import torch
from torch import nn

from sparsercnn.config import Config
from sparsercnn.data.categories import CategoryMap
from sparsercnn.engine import checkpoint as checkpoint_module
from sparsercnn.engine.checkpoint import (
    LAST_CHECKPOINT_FILE,
    CheckedResume,
    DamagedCheckpointError,
    check_resume,
    check_run_folder,
    find_last_checkpoint,
    list_checkpoints,
    load_training_checkpoint,
    log_config_changes,
    resolve_checkpoint_path,
    restore_training_state,
    save_training_checkpoint,
)
from sparsercnn.engine.rng_state import restore_rng_states, rng_states
from sparsercnn.engine.training_images import data_identity
from sparsercnn.presets import tiny
from tests.damaged_archive import flip_a_byte_of_the_largest_record

CATEGORIES = CategoryMap([1, 2], ["cat", "dog"])


def _model_and_optimizer() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    model(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    return model, optimizer


def _save(directory: Path, iteration: int, keep: int = 0, **kwargs: Any) -> Path:
    model, optimizer = _model_and_optimizer()
    return save_training_checkpoint(
        directory, iteration, model, optimizer, None, Config(), CATEGORIES, keep=keep, **kwargs
    )


def test_round_trip(tmp_path: Path) -> None:
    model, optimizer = _model_and_optimizer()
    config = Config()
    config.train.max_iter = 1234
    path = save_training_checkpoint(
        tmp_path, 17, model, optimizer, None, config, CATEGORIES, extra={"best_ap": 0.25}
    )
    assert path.name == "checkpoint_0000017.pt"
    state = load_training_checkpoint(tmp_path)
    assert state["path"] == str(path)
    assert state["iteration"] == 17
    assert state["scaler"] is None
    assert state["extra"] == {"best_ap": 0.25}
    assert Config.from_dict(state["config"]) == config
    assert CategoryMap.from_dict(state["categories"]) == CATEGORIES
    for key, value in model.state_dict().items():
        assert torch.equal(state["model"][key], value)
    fresh = torch.optim.AdamW(model.parameters(), lr=1.0)
    fresh.load_state_dict(state["optimizer"])
    assert fresh.state_dict()["param_groups"] == optimizer.state_dict()["param_groups"]
    moments = fresh.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(moments, optimizer.state_dict()["state"][0]["exp_avg"])


def test_rng_states_restore_every_generator() -> None:
    torch.manual_seed(1)
    random.seed(2)
    np.random.seed(3)
    states = rng_states()
    first = (torch.rand(3), random.random(), np.random.rand(3))
    restore_rng_states(states)
    second = (torch.rand(3), random.random(), np.random.rand(3))
    assert torch.equal(first[0], second[0])
    assert first[1] == second[1]
    assert np.array_equal(first[2], second[2])


def test_rng_states_survive_the_file(tmp_path: Path) -> None:
    np.random.seed(5)
    np.random.randn()  # leaves a cached Gaussian in the NumPy state
    _save(tmp_path, 1)
    expected = (torch.rand(2), random.random(), np.random.randn(2))
    restore_rng_states(load_training_checkpoint(tmp_path)["rng"][0])
    assert torch.equal(torch.rand(2), expected[0])
    assert random.random() == expected[1]
    assert np.array_equal(np.random.randn(2), expected[2])


def test_failed_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _save(tmp_path, 1)

    def broken_save(obj: object, handle: BinaryIO) -> None:
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", broken_save)
    with pytest.raises(OSError, match=r"checkpoint_0000002\.pt \(No space left") as caught:
        _save(tmp_path, 2)
    assert caught.value.errno == errno.ENOSPC
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint_0000001.pt",
        LAST_CHECKPOINT_FILE,
    ]
    assert load_training_checkpoint(tmp_path)["iteration"] == 1


def test_keeps_only_the_newest(tmp_path: Path) -> None:
    for iteration in (10, 20, 30, 40, 50):
        _save(tmp_path, iteration, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "checkpoint_0000040.pt",
        "checkpoint_0000050.pt",
    ]
    assert (tmp_path / LAST_CHECKPOINT_FILE).read_text().strip() == "checkpoint_0000050.pt"
    assert load_training_checkpoint(tmp_path)["iteration"] == 50


def test_a_half_written_checkpoint_of_a_killed_run_is_deleted(tmp_path: Path) -> None:
    """Also a model file's (as large as the model: left for good before, kill after kill)."""
    stale = [
        tmp_path / f".{name}.k3j9x1ab.tmp"  # atomic_write's temporary names
        for name in ("checkpoint_0000020.pt", "model_best.safetensors", "metrics.jsonl")
    ]
    for path in stale:
        path.write_bytes(b"\0" * 1000)
    other = tmp_path / ".notes.txt.abc.tmp"
    other.write_text("not ours")
    _save(tmp_path, 30)
    assert [path.name for path in stale if path.exists()] == [] and other.exists()


def test_keep_zero_keeps_all(tmp_path: Path) -> None:
    for iteration in (1, 2, 3):
        _save(tmp_path, iteration, keep=0)
    assert len(list_checkpoints(tmp_path)) == 3


def test_stale_pointer_falls_back_to_newest(tmp_path: Path) -> None:
    _save(tmp_path, 3)
    _save(tmp_path, 7)
    (tmp_path / LAST_CHECKPOINT_FILE).write_text("checkpoint_0000099.pt\n")
    found = find_last_checkpoint(tmp_path)
    assert found is not None and found.name == "checkpoint_0000007.pt"


def test_missing_checkpoint_errors_name_the_flag_the_place_and_what_to_do(tmp_path: Path) -> None:
    """They named the path but not the flag that gave it (``--resume``, or ``--output-dir``'s
    folder for a bare ``--resume``)."""
    empty = "no training checkpoint (checkpoint_*.pt) in {}; give the output folder of a run "
    empty += "that saved one (or one of its checkpoint_*.pt files), or start a new run without "
    empty += "--resume"
    with pytest.raises(FileNotFoundError, match=re.escape(f"--resume: {empty.format(tmp_path)}")):
        load_training_checkpoint(tmp_path)
    missing = tmp_path / "checkpoint_0000005.pt"
    expected = f"--resume: training checkpoint {missing} does not exist; give one of the run's "
    with pytest.raises(FileNotFoundError, match=re.escape(expected)):
        load_training_checkpoint(missing)
    flag = "--resume (--output-dir)"
    with pytest.raises(FileNotFoundError, match=re.escape(f"{flag}: {empty.format(tmp_path)}")):
        resolve_checkpoint_path(tmp_path, flag=flag)


@pytest.mark.parametrize(
    "left",
    [
        ("config.json",),  # a run killed before its first record, or the user's own config
        ("config.json", "metrics.jsonl"),  # killed after records, before its first checkpoint
        ("config.json", "metrics.jsonl", "model_final.safetensors"),  # checkpoints deleted
    ],
)
def test_a_folder_without_a_checkpoint_is_never_sent_to_resume(
    tmp_path: Path, left: tuple[str, ...]
) -> None:
    """A folder holding a config.json alone, or a finished run's files without its checkpoints,
    was refused as another run to resume (--resume), and --resume refused it as holding no
    checkpoint (start a new run): each sent the user to the other. A run killed before its
    first checkpoint was told apart by an empty metrics.jsonl the trainer wrote for that."""
    for name in left:
        (tmp_path / name).write_text("{}")
    with pytest.raises(FileExistsError) as refused:
        check_run_folder(tmp_path, False, is_main=True)
    message = str(refused.value)
    names = ", ".join(left)
    assert f"{tmp_path} holds files a training run writes ({names}) but no checkpoint" in message
    assert "--resume" not in message
    command = "rm " + " ".join(str(tmp_path / name) for name in left)
    # Never advised: deleting a trained model.
    assert (command in message) == ("model_final.safetensors" not in left)
    expected = f"--resume: no training checkpoint (checkpoint_*.pt) in {tmp_path} (only {names}: "
    with pytest.raises(FileNotFoundError, match=re.escape(expected)) as nothing:
        resolve_checkpoint_path(tmp_path)
    assert "start a new run without --resume" in str(nothing.value)
    _save(tmp_path, 10)  # with a checkpoint it is a run to resume
    expected = f"{tmp_path} already holds another training run (checkpoint_0000010.pt, "
    expected += f"{LAST_CHECKPOINT_FILE}, {names}); "
    with pytest.raises(FileExistsError, match=re.escape(expected + "resume it (--resume)")):
        check_run_folder(tmp_path, False, is_main=True)
    assert sorted(path.name for path in tmp_path.iterdir() if path.suffix != ".pt") == sorted(
        [*left, LAST_CHECKPOINT_FILE]
    )


def test_another_tool_s_checkpoint_pointer_is_not_replaced(tmp_path: Path) -> None:
    """detectron2 (the reference Sparse R-CNN) names its checkpoint in ``last_checkpoint``: a
    new run in its folder passed the check and replaced the pointer at its first checkpoint."""
    (tmp_path / LAST_CHECKPOINT_FILE).write_text("model_final.pth")
    (tmp_path / "model_final.pth").write_bytes(b"the reference's weights")
    expected = f"{tmp_path} holds files a training run writes ({LAST_CHECKPOINT_FILE}) but no "
    with pytest.raises(FileExistsError, match=re.escape(expected)):
        check_run_folder(tmp_path, False, is_main=True)
    assert (tmp_path / LAST_CHECKPOINT_FILE).read_text() == "model_final.pth"


def test_truncated_file_gives_clear_error(tmp_path: Path) -> None:
    path = _save(tmp_path, 4)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DamagedCheckpointError, match=r"checkpoint_0000004\.pt is damaged"):
        load_training_checkpoint(path)
    with pytest.raises(DamagedCheckpointError, match=r"every training checkpoint.*_0000004\.pt"):
        load_training_checkpoint(tmp_path)


@pytest.mark.parametrize(
    ("change", "reason"),
    [("no optimizer", "lacks ['optimizer']"), ("no RNG states", "no RNG states")],
)
def test_an_incomplete_checkpoint_is_named_with_what_to_do_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, change: str, reason: str
) -> None:
    _save(tmp_path, 3)
    newest = _save(tmp_path, 5)
    data = torch.load(newest, weights_only=True)
    if change == "no optimizer":
        del data["optimizer"]
    else:
        data["rng"] = []
    torch.save(data, newest)
    expected = (
        f"training checkpoint {newest} is damaged ({reason}); resume from another "
        "checkpoint_*.pt of the run (`--resume` alone skips damaged ones)"
    )
    with pytest.raises(DamagedCheckpointError, match=re.escape(expected)) as refused:
        load_training_checkpoint(newest)
    assert refused.value.reason == reason
    with caplog.at_level("WARNING"):
        assert load_training_checkpoint(tmp_path)["iteration"] == 3
    assert f"checkpoint_0000005.pt ({reason}); resuming from checkpoint_0000003.pt" in caplog.text


def test_a_checkpoint_damaged_inside_a_record_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """torch.load does not check the CRC-32 of the archive's records: a checkpoint with a byte
    changed (a bad copy or disk) was resumed from, with its wrong numbers."""
    _save(tmp_path, 3)
    newest = _save(tmp_path, 5)
    record = flip_a_byte_of_the_largest_record(newest)
    expected = (
        rf"checkpoint_0000005\.pt is damaged \(record {record} does not match the checksum "
        r"stored with it\); resume from another checkpoint_\*\.pt"
    )
    with pytest.raises(DamagedCheckpointError, match=expected) as refused:
        load_training_checkpoint(newest)
    # As the other ranks receive it: pickled (engine.distributed).
    copy = pickle.loads(pickle.dumps(refused.value))
    assert (str(copy), copy.reason) == (str(refused.value), refused.value.reason)
    with caplog.at_level("WARNING"):
        assert load_training_checkpoint(tmp_path)["iteration"] == 3
    assert (
        f"checkpoint_0000005.pt (record {record} does not match the checksum stored with it); "
        "resuming from checkpoint_0000003.pt" in caplog.text
    )


def test_foreign_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint_0000001.pt"
    torch.save({"model": {}}, path)
    with pytest.raises(ValueError, match="not a sparsercnn training checkpoint"):
        load_training_checkpoint(path)


class _Exploit:
    """Unpickling this runs code: it writes the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "checkpoint_0000001.pt"
    torch.save({"format": "sparsercnn-training-checkpoint", "payload": _Exploit(marker)}, path)
    with pytest.raises(ValueError, match="not loaded"):
        load_training_checkpoint(path)
    assert not marker.exists()


def test_damaged_newest_falls_back_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _save(tmp_path, 3)
    _save(tmp_path, 5)
    newest = _save(tmp_path, 7)
    newest.write_bytes(newest.read_bytes()[:100])
    (tmp_path / "checkpoint_0000005.pt").write_bytes(b"")
    (tmp_path / "checkpoint_0000006.pt").write_text("garbage")  # overwritten: not a zip
    with caplog.at_level("WARNING"):
        state = load_training_checkpoint(tmp_path)
    assert state["iteration"] == 3
    assert "checkpoint_0000007.pt" in caplog.text and "checkpoint_0000005.pt" in caplog.text
    assert "checkpoint_0000006.pt" in caplog.text
    assert "resuming from checkpoint_0000003.pt" in caplog.text


def test_model_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "model_final.safetensors"
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(ValueError, match=r"model_final\.safetensors is a model file.*--init-from"):
        load_training_checkpoint(path)


def test_equal_states_give_equal_bytes(tmp_path: Path) -> None:
    first = _save(tmp_path / "a", 3, rng=[{"seed": torch.tensor([1, 2])}])
    second = _save(tmp_path / "b", 3, rng=[{"seed": torch.tensor([1, 2])}])
    assert first.read_bytes() == second.read_bytes()


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
    path = _save(tmp_path, 8)
    model, optimizer = _model_and_optimizer()
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
    checkpoint_module.check_same_model(saved, current, "checkpoint_0000008.pt")


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
    _save(tmp_path, 8, extra={"data": _identity(_Images([1, 2, 3]), with_ids=with_ids)})
    model, optimizer = _model_and_optimizer()
    current = data_identity(images)
    with caplog.at_level("WARNING"):
        restore_training_state(tmp_path, model, optimizer, None, Config(), CATEGORIES, data=current)
    if expected is None:
        assert not caplog.records
    else:
        assert expected in caplog.text and "--train-json and --train-images" in caplog.text


def test_config_changes_on_resume_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    saved, current = Config(), Config()
    saved.train.max_iter, current.train.max_iter = 2, 4
    current.model.dropout = 0.5
    with caplog.at_level("INFO", logger="sparsercnn.engine.checkpoint"):
        log_config_changes(saved, current, 2, base_lr=1.0, extended=False)
    assert "schedule extended on resume at iteration 2: max_iter 2 -> 4" in caplog.text
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
    with caplog.at_level("INFO", logger="sparsercnn.engine.checkpoint"):
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
    with caplog.at_level("INFO", logger="sparsercnn.engine.checkpoint"):
        log_config_changes(saved, current, 39, base_lr=1.0, extended=extended)
    line = (
        "schedule extended on resume at iteration 39: max_iter 39 -> 41, steps [] -> [39, 40], "
        "warm-up 5 -> 5"
    )
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
    with caplog.at_level("INFO", logger="sparsercnn.engine.checkpoint"):
        log_config_changes(saved, current, 85, base_lr=1.0, extended=False)
    (record,) = caplog.records
    assert record.getMessage().startswith(
        f"schedule {change} on resume at iteration 85: max_iter 100 -> "
    )
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
    with caplog.at_level("INFO", logger="sparsercnn.engine.checkpoint"):
        log_config_changes(saved, current, iteration, base_lr=1.0, extended=False)
    changed = "gamma 0.1 -> 0.5" if gamma == 0.5 else "warm-up factor 0.01 -> 0.1"
    line = (
        f"schedule {change} on resume at iteration {iteration}: max_iter 100 -> 100, steps [80] "
        f"-> [80], warm-up 10 -> 10, {changed}"
    )
    if change.startswith("replaced"):
        rise = "; the learning rate rises from 0.1 to 0.5 there" if gamma == 0.5 else ""
        kept = "train.gamma=0.1" if gamma == 0.5 else "train.warmup_factor=0.01"
        line += (
            f"{rise}; to keep the run's schedule, resume without --preset or --config (the "
            f"run's config.json), or with --set {kept}"
        )
    assert [r.getMessage() for r in caplog.records] == [line]


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
    model, optimizer = _model_and_optimizer()
    save_training_checkpoint(tmp_path, 8, model, optimizer, None, saved, CATEGORIES)
    resumed = Config()
    resumed.train.batch_size = batch_size
    with caplog.at_level("WARNING", logger="sparsercnn.engine.checkpoint"):
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
    model, optimizer = _model_and_optimizer()
    save_training_checkpoint(tmp_path, 8, model, optimizer, None, config, CATEGORIES)
    monkeypatch.undo()
    current = Config()
    current.train.aspect_ratio_grouping = resumed
    with caplog.at_level("WARNING", logger="sparsercnn.engine.checkpoint"):
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
    the data's check): restoring from the checkpoint checked says nothing again, from another
    one (the checked one damaged) says it of that one; what it refuses, both refuse."""
    saved = Config()
    saved.train.max_iter, saved.train.steps = 40, (30,)
    model, optimizer = _model_and_optimizer()
    save_training_checkpoint(tmp_path, 20, model, optimizer, None, saved, CATEGORIES)
    newest = save_training_checkpoint(tmp_path, 40, model, optimizer, None, saved, CATEGORIES)
    current = Config()
    current.train.max_iter, current.train.steps, current.train.log_period = 40, (30,), 5
    with caplog.at_level("INFO", logger="sparsercnn.engine.checkpoint"):
        checked = check_resume(tmp_path, current)
    said = [r.getMessage() for r in caplog.records]
    assert checked is not None and (checked.path, checked.iteration) == (newest, 40)
    assert "train.log_period 20 -> 5" in said[0] and "nothing to train" in said[1]
    caplog.clear()
    with caplog.at_level("INFO", logger="sparsercnn.engine.checkpoint"):
        restore_training_state(
            tmp_path, model, optimizer, None, current, CATEGORIES, checked=checked
        )
    assert [r.getMessage() for r in caplog.records] == [f"resumed from {newest} at iteration 40"]
    older = CheckedResume(tmp_path / "checkpoint_0000020.pt", 20)
    caplog.clear()
    with caplog.at_level("INFO", logger="sparsercnn.engine.checkpoint"):
        restore_training_state(tmp_path, model, optimizer, None, current, CATEGORIES, checked=older)
    assert sum("train.log_period 20 -> 5" in r.getMessage() for r in caplog.records) == 1
    current.train.max_iter = 30
    with pytest.raises(ValueError, match=r"at iteration 40, past train\.max_iter 30"):
        check_resume(tmp_path, current)
    with pytest.raises(ValueError, match=r"at iteration 40, past train\.max_iter 30"):
        restore_training_state(tmp_path, model, optimizer, None, current, CATEGORIES)


def test_pruning_keeps_the_checkpoint_just_written(tmp_path: Path) -> None:
    """A run resumed from an earlier checkpoint (a copy) into a folder holding later ones: the
    checkpoint it writes is the one ``--resume`` must read, not the first one pruned."""
    for iteration in (30, 40):
        _save(tmp_path, iteration, keep=2)
    written = _save(tmp_path, 15, keep=2)
    assert written.is_file()
    assert load_training_checkpoint(tmp_path)["iteration"] == 15
    _save(tmp_path, 35, keep=2)
    # Up to the one written, the newest two are kept; 40 is still ahead of the run.
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "checkpoint_0000030.pt",
        "checkpoint_0000035.pt",
        "checkpoint_0000040.pt",
    ]
    assert load_training_checkpoint(tmp_path)["iteration"] == 35


def test_a_rank_the_checkpoint_has_no_state_of_keeps_its_own(tmp_path: Path) -> None:
    """Resuming a 1-process run with 2: rank 1 keeps its own random numbers instead of taking
    rank 0's (both would then draw the same dropout masks)."""
    _save(tmp_path, 8)
    model, optimizer = _model_and_optimizer()
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


@pytest.mark.parametrize(
    "failure",
    # A full disk, or a second Ctrl-C (stop at once) while the pointer is written.
    [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()],
    ids=["full disk", "Ctrl-C"],
)
def test_a_failed_pointer_write_does_not_resume_from_the_previous_checkpoint(
    failure: BaseException, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _save(tmp_path, 1)
    write = checkpoint_module.atomic_write

    def failing_for_the_pointer(path: Path, content: Any) -> Path:
        if Path(path).name == LAST_CHECKPOINT_FILE:
            raise failure
        return write(path, content)

    monkeypatch.setattr(checkpoint_module, "atomic_write", failing_for_the_pointer)
    with pytest.raises(type(failure)):
        _save(tmp_path, 2)
    assert load_training_checkpoint(tmp_path)["iteration"] == 2
