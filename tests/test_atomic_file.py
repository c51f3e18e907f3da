"""Atomic writes: the destination holds its old content or the complete new one, never a part,
and no temporary file is left, whether written in one call or streamed."""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest

from sparsercnn.atomic_file import AtomicFile, atomic_write, leftover_temporaries, write_error


def test_a_streamed_file_appears_complete_on_commit(tmp_path: Path) -> None:
    target = tmp_path / "out" / "video.bin"  # the folder is created
    file = AtomicFile(target)
    assert file.tmp is not None and file.tmp.parent == target.parent
    with open(file.tmp, "wb") as handle:
        handle.write(b"part one")
        assert not target.exists()
        handle.write(b", part two")
    assert file.commit() == target
    assert target.read_bytes() == b"part one, part two"
    assert list(target.parent.iterdir()) == [target]
    assert target.stat().st_mode & 0o777 != 0o600  # a plain open()'s mode, not mkstemp's
    file.discard()  # committed: nothing to remove
    assert target.exists()


def test_a_failure_keeps_the_earlier_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    target.write_text("earlier run")
    with pytest.raises(RuntimeError, match="failed part-way"), AtomicFile(target) as file:
        assert file.tmp is not None
        file.tmp.write_text("half")
        raise RuntimeError("failed part-way")
    assert target.read_text() == "earlier run"
    assert leftover_temporaries(tmp_path, "*") == []
    with pytest.raises(ValueError):
        atomic_write(target, lambda tmp: (tmp.write_text("half"), int("x")))
    assert target.read_text() == "earlier run" and leftover_temporaries(tmp_path, "*") == []


def test_errors_name_the_file_as_the_caller_names_it(tmp_path: Path) -> None:
    """A file staged to be moved on later (an annotated video) is named by its final name, and
    an error keeps its kind; the temporary file is never named."""
    name = "drawn/clip.mp4 (drawn from clip.mkv)"
    with pytest.raises(OSError) as raised, AtomicFile(tmp_path / "v.mp4", name=name):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ".v.mp4.x.tmp"))
    assert raised.value.errno == errno.ENOSPC
    assert str(raised.value).endswith(
        f"could not write {name} (No space left on device); any previous version of it is intact"
    )
    (tmp_path / "taken").mkdir()  # the finished file cannot be moved there
    refused = re.escape(f"could not write {tmp_path / 'taken'} (Is a directory)")
    with pytest.raises(IsADirectoryError, match=refused), AtomicFile(tmp_path / "taken"):
        pass
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(OSError, match=re.escape(f"could not write {blocker / 'x'} (")):
        AtomicFile(blocker / "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "taken"]


def test_write_text_names_the_file_and_removes_the_temporary_on_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For a file committed later by hand: its error names the destination, not the
    temporary file, and leaves nothing behind."""
    file = AtomicFile(tmp_path / "list.json")
    file.write_text("é")
    assert file.commit().read_text(encoding="utf-8") == "é"

    def full_disk(path: Path, *args: object, **kwargs: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    staged = AtomicFile(tmp_path / "list.json")
    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError, match=re.escape(f"could not write {tmp_path / 'list.json'} (No")):
        staged.write_text("new")
    assert staged.tmp is None and leftover_temporaries(tmp_path, "*") == []
    assert (tmp_path / "list.json").read_text(encoding="utf-8") == "é"


def test_write_text_in_a_with_block_names_the_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: "could not write X (could not write X (No space ...); ...); ...": the exit named
    the file of write_text's error, which names it already, again. Used by hand or in a with
    block, one message, of the errno's kind."""

    def full_disk(path: Path, *args: object, **kwargs: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(Path, "write_text", full_disk)
    target = tmp_path / "list.json"
    expected = (
        f"[Errno {errno.ENOSPC}] could not write {target} (No space left on device); any "
        "previous version of it is intact"
    )
    with pytest.raises(OSError) as by_hand:
        AtomicFile(target).write_text("new")
    with pytest.raises(OSError) as in_block, AtomicFile(target) as file:
        file.write_text("new")
    for raised in (by_hand, in_block):
        assert str(raised.value) == expected and raised.value.errno == errno.ENOSPC
    assert leftover_temporaries(tmp_path, "*") == [] and not target.exists()


def test_write_error_knows_its_own_errors_by_mark_not_by_text() -> None:
    """Was: an error whose text merely looked like write_error's (a message passed on from
    elsewhere) went unnamed; its own errors are marked with the name they give."""
    look_alike = OSError(
        errno.EIO, "could not write a.json (x); any previous version of it is intact"
    )
    assert write_error(look_alike, "a.json") is not look_alike
    own = write_error(OSError(errno.ENOSPC, "No space left on device"), "a.json")
    assert write_error(own, "a.json") is own
    renamed = write_error(own, "b.json")
    assert renamed.errno == errno.ENOSPC and "could not write b.json (" in str(renamed)
