"""The lock a training run holds on its folder: a second run into it is refused, naming the
folder and the process that runs in it; the run's own nested hold is the same hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparsercnn.engine.run_lock import RunFolderInUseError, run_folder_lock
from sparsercnn.run_files import RUN_LOCK_FILE
from tests.lock_holder import lock_held_elsewhere


def test_a_folder_another_run_holds_is_refused_naming_it_and_what_to_do(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with (
        lock_held_elsewhere(run / RUN_LOCK_FILE) as other,
        pytest.raises(RunFolderInUseError) as error,
        run_folder_lock(run),
    ):
        pass
    assert str(error.value) == (
        f"{run} is in use by another training run (process {other.pid}, lock "
        f"{run / RUN_LOCK_FILE}); wait for that run to end (or stop it) and run again, or "
        "choose another output folder"
    )


def test_a_run_holds_its_folder_once_and_leaves_no_lock_file(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with run_folder_lock(run):
        assert (run / RUN_LOCK_FILE).is_file()
        with run_folder_lock(run):  # train_from_coco inside the train command's hold
            pass
        assert (run / RUN_LOCK_FILE).is_file()
    assert run.is_dir() and not any(run.iterdir())
    with run_folder_lock(tmp_path / "missing", make=False):
        pass
    assert not (tmp_path / "missing").exists()
