"""Atomic writes: the destination holds its old content or the complete new one, never a part,
and no temporary file is left, whether written in one call or streamed."""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

import pytest

from sparsercnn.atomic_file import (
    AtomicFile,
    atomic_write,
    atomic_write_text,
    leftover_temporaries,
    special_file_kind,
    write_error,
    write_target,
)


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
    with pytest.raises(OSError) as raised, AtomicFile(tmp_path / "v.mp4", name=name) as file:
        raise OSError(errno.ENOSPC, "No space left on device", str(file.tmp))
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
    elsewhere) went unnamed; its own errors are marked with the name and the reason they give,
    so that one named again (for another file) names that file alone, once."""
    look_alike = OSError(
        errno.EIO, "could not write a.json (x); any previous version of it is intact"
    )
    assert str(write_error(look_alike, "a.json")).endswith(
        f"could not write a.json ({look_alike.strerror}); any previous version of it is intact"
    )
    own = write_error(OSError(errno.ENOSPC, "No space left on device"), "a.json")
    renamed = write_error(own, "b.json")
    assert renamed.errno == errno.ENOSPC
    assert renamed.strerror == (
        "could not write b.json (No space left on device); any previous version of it is intact"
    )


def _full_disk(path: Path, *args: object, **kwargs: object) -> int:
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


def test_a_writer_that_writes_its_temporary_file_atomically_names_the_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: "could not write m.safetensors (could not write .m.safetensors.x.tmp (No space
    ...); ...); ...": a writer that writes the temporary file through atomic_write itself (an
    int8 model file written by save_model_file) named the hidden file, and the file twice."""
    monkeypatch.setattr(Path, "write_text", _full_disk)
    target = tmp_path / "m.safetensors"
    with pytest.raises(OSError) as raised:
        atomic_write(target, lambda tmp: atomic_write_text(tmp, "weights"))
    assert raised.value.errno == errno.ENOSPC
    assert raised.value.strerror == (
        f"could not write {target} (No space left on device); any previous version of it is intact"
    )
    assert list(tmp_path.iterdir()) == []


def test_an_error_naming_another_file_leaves_a_with_block_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that changes together with another (predict's frame list, staged until its
    results are written) is written in a with block: an error writing the other one names that
    one, not the staged file, and the staged file is discarded; so does an error reading
    another file. Was: "could not write the frame list (could not write the results (...);
    ...); ...", and "could not write int8.onnx (No such file or directory)" for its input."""
    staged, results = tmp_path / "preds.frames.json", tmp_path / "preds.json"
    staged.write_text("earlier")
    write_text = Path.write_text

    def full_disk(path: Path, text: str, *args: object, **kwargs: object) -> int:
        if path.name.startswith(".preds.json."):
            _full_disk(path)
        return write_text(path, text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError) as raised, AtomicFile(staged) as file:
        file.write_text("new")
        atomic_write_text(results, "[]")
    assert raised.value.strerror == (
        f"could not write {results} (No space left on device); any previous version of it is intact"
    )
    assert staged.read_text() == "earlier" and leftover_temporaries(tmp_path, "*") == []
    # An input the writer reads, missing: its own error, not "could not write" the output.
    missing = tmp_path / "model.onnx"
    with pytest.raises(FileNotFoundError) as raised:
        atomic_write(tmp_path / "int8.onnx", lambda tmp: tmp.write_bytes(missing.read_bytes()))
    assert raised.value.filename == str(missing) and "could not write" not in str(raised.value)
    assert leftover_temporaries(tmp_path, "*") == []


def test_a_write_through_a_link_replaces_its_target_and_keeps_the_link(tmp_path: Path) -> None:
    """The rename replaced the link itself by a regular file, its target keeping the old
    content: a write goes through the link, as a shell's ``>`` does."""
    target = tmp_path / "runs" / "metrics.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "metrics.json"
    link.symlink_to(Path("runs") / "metrics.json")
    assert write_target(link) == target and write_target(target) == target
    assert atomic_write_text(link, "new") == target
    assert link.is_symlink() and target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["metrics.json"]
    dangling = tmp_path / "new.json"
    dangling.symlink_to(tmp_path / "runs" / "new.json")
    atomic_write_text(dangling, "created")
    assert dangling.is_symlink() and (target.parent / "new.json").read_text() == "created"
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(OSError, match=r"could not write .*a \(Too many levels of symbolic"):
        atomic_write_text(tmp_path / "a", "x")
    assert (tmp_path / "a").is_symlink()


def test_a_named_pipe_is_refused_not_replaced(tmp_path: Path) -> None:
    """A rename over a named pipe (or, as root, a device such as /dev/null) put a regular file
    in its place."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    assert special_file_kind(pipe) == "a named pipe"
    assert special_file_kind(tmp_path) is None and special_file_kind(tmp_path / "none") is None
    with pytest.raises(
        OSError, match=re.escape(f"could not write {pipe} (it is a named pipe, not")
    ):
        atomic_write_text(pipe, "x")
    link = tmp_path / "link"
    link.symlink_to(pipe)
    with pytest.raises(OSError, match=re.escape(f"could not write {pipe} (it is a named pipe")):
        atomic_write_text(link, "x")
    assert stat.S_ISFIFO(pipe.stat().st_mode) and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "pipe"]  # no temporary
