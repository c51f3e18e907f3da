"""The frame list ``predict`` writes beside its results (write_outputs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparsercnn.atomic_file import leftover_temporaries
from sparsercnn.cli.predict_sequences import write_outputs

VIDEOS = [{"file_name": "clip.mp4", "frames": [], "skipped_frames": []}]


def test_the_frame_list_is_staged_under_a_name_of_its_own(tmp_path: Path) -> None:
    """It was staged by hand under one fixed name beside the results: a file or folder left
    there (a killed run, another run writing the same results) failed the write, naming the
    hidden file."""
    output = tmp_path / "preds.json"
    (tmp_path / ".preds.frames.json.staged.tmp").mkdir()
    assert write_outputs([], VIDEOS, output) == tmp_path / "preds.frames.json"
    assert json.loads((tmp_path / "preds.frames.json").read_text())["videos"] == VIDEOS
    assert json.loads(output.read_text()) == []


def test_a_failed_results_write_leaves_no_staged_frame_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(records: object, path: Path) -> None:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr("sparsercnn.evaluation.results.write_results_json", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_outputs([], VIDEOS, tmp_path / "preds.json")
    assert list(tmp_path.iterdir()) == []
    assert leftover_temporaries(tmp_path, "preds.frames.json") == []
