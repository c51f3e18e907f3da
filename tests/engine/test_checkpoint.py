"""Training checkpoints: round trip, RNG states, atomic writes, pruning, refusal of bad files."""

from __future__ import annotations

import errno
import pickle
import random
import re
import signal
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pytest
import torch

from sparsercnn.config import Config
from sparsercnn.data.categories import CategoryMap
from sparsercnn.engine import checkpoint as checkpoint_module
from sparsercnn.engine import interrupts as interrupts_module
from sparsercnn.engine.checkpoint import (
    LAST_CHECKPOINT_FILE,
    DamagedCheckpointError,
    check_run_folder,
    find_last_checkpoint,
    list_checkpoints,
    load_training_checkpoint,
    resolve_checkpoint_path,
    save_training_checkpoint,
)
from sparsercnn.engine.interrupts import DeferredInterrupt
from sparsercnn.engine.rng_state import restore_rng_states, rng_states
from tests.damaged_archive import flip_a_byte_of_the_largest_record
from tests.engine.small_checkpoints import (
    CATEGORIES,
    count_summed_checkpoints,
    model_and_optimizer,
    save_checkpoint,
)
from tests.file_mappings import mapped_from, needs_proc_maps


def test_round_trip(tmp_path: Path) -> None:
    model, optimizer = model_and_optimizer()
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


@needs_proc_maps
def test_a_checkpoint_is_read_once_its_tensors_mapped(tmp_path: Path) -> None:
    """Resuming read a checkpoint twice: its records' checksums, then torch.load into memory, a
    second copy. Its tensors are now views of the pages the checksums read."""
    path = save_checkpoint(tmp_path, 3)
    state = load_training_checkpoint(tmp_path)
    assert mapped_from(state["model"]["0.weight"], path)
    assert mapped_from(state["optimizer"]["state"][0]["exp_avg"], path)


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
    save_checkpoint(tmp_path, 1)
    expected = (torch.rand(2), random.random(), np.random.randn(2))
    restore_rng_states(load_training_checkpoint(tmp_path)["rng"][0])
    assert torch.equal(torch.rand(2), expected[0])
    assert random.random() == expected[1]
    assert np.array_equal(np.random.randn(2), expected[2])


def test_failed_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_checkpoint(tmp_path, 1)

    def broken_save(obj: object, handle: BinaryIO) -> None:
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", broken_save)
    with pytest.raises(OSError, match=r"checkpoint_0000002\.pt \(No space left") as caught:
        save_checkpoint(tmp_path, 2)
    assert caught.value.errno == errno.ENOSPC
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint_0000001.pt",
        LAST_CHECKPOINT_FILE,
    ]
    assert load_training_checkpoint(tmp_path)["iteration"] == 1


def test_keeps_only_the_newest(tmp_path: Path) -> None:
    for iteration in (10, 20, 30, 40, 50):
        save_checkpoint(tmp_path, iteration, keep=2)
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
    save_checkpoint(tmp_path, 30)
    assert [path.name for path in stale if path.exists()] == [] and other.exists()


def test_keep_zero_keeps_all(tmp_path: Path) -> None:
    for iteration in (1, 2, 3):
        save_checkpoint(tmp_path, iteration, keep=0)
    assert len(list_checkpoints(tmp_path)) == 3


def test_stale_pointer_falls_back_to_newest(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 3)
    save_checkpoint(tmp_path, 7)
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
    save_checkpoint(tmp_path, 10)  # with a checkpoint it is a run to resume
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
    path = save_checkpoint(tmp_path, 4)
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
    save_checkpoint(tmp_path, 3)
    newest = save_checkpoint(tmp_path, 5)
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
    save_checkpoint(tmp_path, 3)
    newest = save_checkpoint(tmp_path, 5)
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
    save_checkpoint(tmp_path, 3)
    save_checkpoint(tmp_path, 5)
    newest = save_checkpoint(tmp_path, 7)
    newest.write_bytes(newest.read_bytes()[:100])
    (tmp_path / "checkpoint_0000005.pt").write_bytes(b"")
    (tmp_path / "checkpoint_0000006.pt").write_text("garbage")  # overwritten: not a zip
    with caplog.at_level("WARNING"):
        state = load_training_checkpoint(tmp_path)
    assert state["iteration"] == 3
    assert "checkpoint_0000007.pt" in caplog.text and "checkpoint_0000005.pt" in caplog.text
    assert "checkpoint_0000006.pt" in caplog.text
    assert "resuming from checkpoint_0000003.pt" in caplog.text


def test_a_folder_s_checkpoint_read_before_is_not_summed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: ``summed`` taken for a checkpoint file only, and ignored for a run folder (every
    checkpoint of it summed again). The file an earlier read summed is not; another is."""
    save_checkpoint(tmp_path, 3)
    state = load_training_checkpoint(tmp_path)
    summed = count_summed_checkpoints(monkeypatch)
    assert load_training_checkpoint(tmp_path, summed=state["stamp"])["iteration"] == 3
    assert summed == []
    newest = save_checkpoint(tmp_path, 5)
    assert load_training_checkpoint(tmp_path, summed=state["stamp"])["iteration"] == 5
    assert summed == [newest]


def test_model_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "model_final.safetensors"
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(ValueError, match=r"model_final\.safetensors is a model file.*--init-from"):
        load_training_checkpoint(path)


def test_equal_states_give_equal_bytes(tmp_path: Path) -> None:
    first = save_checkpoint(tmp_path / "a", 3, rng=[{"seed": torch.tensor([1, 2])}])
    second = save_checkpoint(tmp_path / "b", 3, rng=[{"seed": torch.tensor([1, 2])}])
    assert first.read_bytes() == second.read_bytes()


def test_pruning_keeps_the_checkpoint_just_written(tmp_path: Path) -> None:
    """A run resumed from an earlier checkpoint (a copy) into a folder holding later ones: the
    checkpoint it writes is the one ``--resume`` must read, not the first one pruned."""
    for iteration in (30, 40):
        save_checkpoint(tmp_path, iteration, keep=2)
    written = save_checkpoint(tmp_path, 15, keep=2)
    assert written.is_file()
    assert load_training_checkpoint(tmp_path)["iteration"] == 15
    save_checkpoint(tmp_path, 35, keep=2)
    # Up to the one written, the newest two are kept; 40 is still ahead of the run.
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "checkpoint_0000030.pt",
        "checkpoint_0000035.pt",
        "checkpoint_0000040.pt",
    ]
    assert load_training_checkpoint(tmp_path)["iteration"] == 35


@pytest.mark.parametrize(
    "failure",
    # A full disk, or a second Ctrl-C (stop at once) while the pointer is written.
    [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()],
    ids=["full disk", "Ctrl-C"],
)
def test_a_failed_pointer_write_does_not_resume_from_the_previous_checkpoint(
    failure: BaseException, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_checkpoint(tmp_path, 1)
    write = checkpoint_module.atomic_write

    def failing_for_the_pointer(path: Path, content: Any) -> Path:
        if Path(path).name == LAST_CHECKPOINT_FILE:
            raise failure
        return write(path, content)

    monkeypatch.setattr(checkpoint_module, "atomic_write", failing_for_the_pointer)
    with pytest.raises(type(failure)):
        save_checkpoint(tmp_path, 2)
    assert load_training_checkpoint(tmp_path)["iteration"] == 2


@pytest.mark.usefixtures("python_sigint")
@pytest.mark.parametrize("writes_before", [1, 2])
def test_a_second_ctrl_c_during_the_write_stops_as_an_interrupt(
    writes_before: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second Ctrl-C handled inside a write that torch's archive writer called (which turns
    what it raises into a RuntimeError) stops the run as an interrupt, leaving nothing
    half-written."""
    save_checkpoint(tmp_path, 1)
    real_open = open

    class SignalledFile:
        def __init__(self, handle: BinaryIO) -> None:
            self.handle, self.writes = handle, 0

        def write(self, data: bytes) -> int:
            if self.writes == writes_before:
                signal.raise_signal(signal.SIGINT)  # the second Ctrl-C: it acts at once
            self.writes += 1
            return self.handle.write(data)

        def flush(self) -> None:
            self.handle.flush()

        def __enter__(self) -> SignalledFile:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

    def signalled_open(path: Path, mode: str) -> SignalledFile:
        return SignalledFile(real_open(path, mode))

    monkeypatch.setattr(checkpoint_module, "open", signalled_open, raising=False)
    monkeypatch.setattr(interrupts_module, "REPEAT_GRACE_S", 0.0)  # a second press, not a repeat
    with DeferredInterrupt() as interrupt:
        signal.raise_signal(signal.SIGINT)  # the first Ctrl-C: a checkpoint is written
        assert interrupt.requested == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint(tmp_path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint_0000001.pt",
        LAST_CHECKPOINT_FILE,
    ]
