"""The inputs of ``sparsercnn predict``: a folder that holds none."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparsercnn.cli.predict_inputs import input_groups
from sparsercnn.data.image_io import IMAGE_SUFFIXES
from sparsercnn.image_inputs import expand_inputs
from sparsercnn.video.suffixes import VIDEO_SUFFIXES


def test_a_folder_without_inputs_is_refused_as_in_python(tmp_path: Path) -> None:
    """predict and :func:`expand_inputs` word it alike, listing the suffixes looked for with
    commas (predict joined them with spaces)."""
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(FileNotFoundError) as from_cli:
        input_groups([tmp_path], None)
    with pytest.raises(FileNotFoundError) as from_python:
        expand_inputs(tmp_path)
    assert str(from_cli.value) == (
        f"folder {tmp_path} contains no image or video files "
        f"({', '.join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)})"
    )
    assert str(from_python.value) == (
        f"folder {tmp_path} contains no image files ({', '.join(IMAGE_SUFFIXES)})"
    )
