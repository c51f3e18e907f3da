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


@pytest.mark.parametrize("suffix", ["gif", "png"])
def test_an_animated_gif_or_png_is_a_video_and_a_still_one_an_image(
    tmp_path: Path, suffix: str
) -> None:
    """An animated GIF, then an animated PNG (APNG), was an image: its first frame alone was
    predicted."""
    pytest.importorskip("av")
    from sparsercnn.video import VideoFile

    animated_file, still_file = tmp_path / f"anim.{suffix}", tmp_path / f"still.{suffix}"
    _save_frames(animated_file, 3)
    _save_frames(still_file, 1)
    animated, still = input_groups([animated_file, still_file], None)
    assert isinstance(animated, VideoFile) and still == [still_file]
    assert [frame.index for frame in animated.frames()] == [0, 1, 2]
    # The same in a folder.
    assert [type(group) for group in input_groups([tmp_path], None)] == [VideoFile, list]


@pytest.mark.parametrize("suffix", ["webp", "tif"])
def test_an_animated_webp_or_a_multi_page_tiff_is_an_image(tmp_path: Path, suffix: str) -> None:
    """PyAV fails on an animated WebP and reads a TIFF's first page alone: both stay images
    (read as their first frame, with a warning: sparsercnn.data.image_io)."""
    path = tmp_path / f"anim.{suffix}"
    _save_frames(path, 3)
    assert input_groups([path], None) == [[path]]


def _save_frames(path: Path, num_frames: int) -> None:
    from PIL import Image

    frames = [Image.new("RGB", (24, 16), color) for color in ("red", "green", "blue")]
    frames[0].save(path, save_all=num_frames > 1, append_images=frames[1:num_frames], duration=100)
