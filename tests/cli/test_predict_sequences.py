"""The frame list ``predict`` writes beside its results (write_outputs), and the sequences it
tells lost (lost_sequences)."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sparsercnn.atomic_file import leftover_temporaries
from sparsercnn.cli.predict_sequences import lost_sequences, write_outputs
from sparsercnn.video import FrameFolder

VIDEOS = [{"file_name": "clip.mp4", "frames": [], "skipped_frames": []}]


def test_the_frame_list_is_staged_under_a_name_of_its_own(tmp_path: Path) -> None:
    """It was staged by hand under one fixed name beside the results: a file or folder left
    there (a killed run, another run writing the same results) failed the write, naming the
    hidden file."""
    output = tmp_path / "preds.json"
    (tmp_path / ".preds.frames.json.staged.tmp").mkdir()
    assert write_outputs([], VIDEOS, [], output) == tmp_path / "preds.frames.json"
    assert json.loads((tmp_path / "preds.frames.json").read_text())["videos"] == VIDEOS
    assert json.loads(output.read_text()) == []


def test_a_failed_results_write_names_the_results_and_leaves_no_staged_frame_list(
    tmp_path: Path,
) -> None:
    output = tmp_path / "preds.json"
    output.mkdir()  # the results cannot be moved there
    with pytest.raises(IsADirectoryError) as raised:
        write_outputs([], VIDEOS, [], output)
    assert raised.value.strerror.startswith(f"could not write {output} (")
    assert list(tmp_path.iterdir()) == [output]
    assert leftover_temporaries(tmp_path, "*") == []


def test_a_failed_frame_list_write_names_the_frame_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_text = Path.write_text

    def full_disk(path: Path, text: str, *args: Any, **kwargs: Any) -> int:
        if ".preds.frames.json." in path.name:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return write_text(path, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError) as raised:
        write_outputs([], VIDEOS, [], tmp_path / "preds.json")
    assert raised.value.errno == errno.ENOSPC
    assert raised.value.strerror.startswith(
        f"could not write {tmp_path / 'preds.frames.json'} (No space left on device)"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_lost_frame_folder_is_told_by_its_sequence_not_the_file_system(tmp_path: Path) -> None:
    """The kind was read from the disk at the end of the run: a frame folder removed meanwhile
    was told a video."""
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(frames / "0.png")
    folder = FrameFolder(frames, fps=5)
    shutil.rmtree(frames)
    listed = [
        {"file_name": str(frames), "frames": [], "skipped_frames": [0]},
        {"file_name": "kept", "frames": [{"frame_index": 0}], "skipped_frames": []},
    ]
    assert lost_sequences([folder, folder], listed) == [("frame folder", str(frames))]
