"""Output folder faults end with a one-line error naming the path, before or without damage:
an existing file, a folder that cannot be written, a disk that fills up during the run."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from sparsercnn import atomic_file, safetensors_file
from sparsercnn.cli.main import main
from tests.reliability.training_run import TrainingRun
from tests.synthetic_coco import SyntheticCoco


def _train(run: TrainingRun) -> list[str]:
    return run.command()[3:]  # the arguments after `python -m sparsercnn`


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    return error


def test_output_dir_that_is_a_file(
    tiny_coco: SyntheticCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "run"
    existing.write_text("not a folder")
    assert main(_train(TrainingRun(tiny_coco, existing))) == 2
    assert f"output folder {existing} is an existing file" in _one_line_error(capsys)
    assert existing.read_text() == "not a folder"

    below = existing / "run"
    assert main(_train(TrainingRun(tiny_coco, below))) == 2
    assert f"cannot create output folder {below}: {existing} is a file" in _one_line_error(capsys)


@pytest.mark.skipif(
    os.geteuid() == 0,
    reason="root writes into read-only folders; test_output_dir_without_write_permission covers it",
)
def test_output_dir_that_cannot_be_written(
    tiny_coco: SyntheticCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(_train(TrainingRun(tiny_coco, locked / "run"))) == 2
    finally:
        locked.chmod(0o700)
    assert f"cannot write in output folder {locked / 'run'}" in _one_line_error(capsys)


def test_output_dir_without_write_permission(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What the kernel answers a non-root user in a read-only folder (root is never refused).
    def refuse(**kwargs: object) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(kwargs["dir"]))

    monkeypatch.setattr(atomic_file.tempfile, "TemporaryFile", refuse)
    run = TrainingRun(tiny_coco, tmp_path / "run")
    assert main(_train(run)) == 2
    error = _one_line_error(capsys)
    assert f"cannot write in output folder {run.output_dir} (Permission denied)" in error


def test_disk_full_while_writing_the_model_names_the_file(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def fill_the_disk(tensors: object, filename: str, metadata: object = None) -> None:
        Path(filename).write_bytes(b"half a model")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    run = TrainingRun(tiny_coco, tmp_path / "run")
    monkeypatch.setattr(safetensors_file, "save_file", fill_the_disk)
    assert main(_train(run)) == 1  # a runtime failure, not bad input
    final = run.file("model_final.safetensors")
    message, hint = capsys.readouterr().err.strip().splitlines()[-2:]
    assert message.startswith("sparsercnn train: failed: OSError:")
    assert f"could not write {final} (No space left on device)" in message
    assert "--debug" in hint
    leftovers = sorted(p.name for p in run.output_dir.iterdir())
    assert not final.exists() and not [name for name in leftovers if name.endswith(".tmp")]
    assert "checkpoint_0000008.pt" in leftovers  # the run can be resumed
