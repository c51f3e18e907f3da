"""The lock between processes on a lock file: another process's hold is named and waited for
or refused, and one a killed process held is free."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparsercnn.file_lock import exclusive_lock
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
