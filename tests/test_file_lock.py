"""The lock between processes on a lock file: another process's hold is named and waited for
or refused, and one a killed process held is free."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sparsercnn import file_lock
from sparsercnn.file_lock import exclusive_lock, is_held, shared_lock
from tests.lock_holder import lock_held_elsewhere


def _refuse(holder: str | None) -> None:
    raise RuntimeError(f"held by {holder}")


def test_a_lock_another_process_holds_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with lock_held_elsewhere(path) as other:
        refused = pytest.raises(RuntimeError, match=f"^held by process {other.pid}$")
        with refused, exclusive_lock(path, _refuse):
            pass
        assert path.is_file()  # the holder's, left alone


def test_a_lock_a_killed_process_held_is_free_and_its_file_removed_after(tmp_path: Path) -> None:
    """The system releases the lock of a process killed (SIGKILL, nothing of it runs after):
    the file it leaves is no stale lock."""
    path = tmp_path / "x.lock"
    with lock_held_elsewhere(path):
        pass  # killed
    assert path.is_file()
    with exclusive_lock(path, _refuse):
        assert path.read_text().split()[0].isdigit()
    assert not path.exists()


def test_a_lock_file_replaced_again_and_again_is_refused_not_waited_for_forever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that finds the lock file it locked removed or replaced takes the lock again on
    the new one: without a bound, a file system whose file numbers change (or a program that
    keeps replacing the file) held it in that loop for ever."""
    tries: list[int] = []

    def replaced(path: Path, handle: object) -> bool:
        tries.append(1)
        if len(tries) > 10_000:
            raise RuntimeError("still trying")
        return False

    monkeypatch.setattr(file_lock, "_is_open", replaced)
    path = tmp_path / "x.lock"
    replaced_error = f"cannot lock {path}: it was replaced 100 times in a row"
    with pytest.raises(OSError, match=re.escape(replaced_error)), exclusive_lock(path, _refuse):
        pass
    assert len(tries) == 100


def test_a_shared_lock_lets_no_process_lock_exclusively(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    handle = shared_lock(path, unlocked="")
    assert handle is not None and is_held(path)
    with pytest.raises(RuntimeError, match=r"^held by None$"), exclusive_lock(path, _refuse):
        pass
    handle.close()
    assert not is_held(path)
    with exclusive_lock(path, _refuse) as held:
        assert held
    assert not path.exists()
