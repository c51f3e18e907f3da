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


def test_an_animated_gif_is_a_video_and_a_still_one_an_image(tmp_path: Path) -> None:
    """An animated GIF was an image: its first frame alone was predicted, without a word."""
    pytest.importorskip("av")
    from PIL import Image

    from sparsercnn.video import VideoFile

    frames = [Image.new("RGB", (24, 16), color) for color in ("red", "green", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    frames[0].save(tmp_path / "still.gif")
    animated, still = input_groups([tmp_path / "anim.gif", tmp_path / "still.gif"], None)
    assert isinstance(animated, VideoFile) and still == [tmp_path / "still.gif"]
    assert [frame.index for frame in animated.frames()] == [0, 1, 2]
    # The same in a folder.
    assert [type(group) for group in input_groups([tmp_path], None)] == [VideoFile, list]
