"""The inputs of ``sparsercnn predict``: a folder that holds none."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sparsercnn.cli.predict_inputs import input_groups
from sparsercnn.data.image_suffixes import IMAGE_SUFFIXES
from sparsercnn.image_inputs import expand_inputs
from sparsercnn.video.suffixes import IMAGE_AND_VIDEO_SUFFIXES


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
        f"({', '.join(IMAGE_AND_VIDEO_SUFFIXES)})"
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


def test_every_image_read_as_its_first_frame_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder of two animated WebPs and a multi-page TIFF: only the first was named (once per
    process, when read), the others at DEBUG."""
    from sparsercnn.data import image_io

    monkeypatch.setattr(image_io, "_NOTED", set())
    paths = [tmp_path / name for name in ("a.webp", "b.webp", "c.tif")]
    for path in paths:
        _save_frames(path, 3)
    assert input_groups([tmp_path], None) == [paths]
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.getMessage().startswith("3 images have several frames or pages")
    assert all(f"{path}: 3 frames (" in warning.getMessage() for path in paths)


def test_a_file_given_that_is_no_image_or_video_is_refused_before_any_work(
    tmp_path: Path,
) -> None:
    """It was read as an image when its turn came, failing the run part-way: "cannot read image
    'notes.txt': not an image, or a damaged one". An image of another suffix is still one."""
    notes, still = tmp_path / "notes.txt", tmp_path / "photo.jfif"
    notes.write_text("not an image")
    _save_frames(still, 1)
    with pytest.raises(
        ValueError, match=r"notes\.txt is neither an image nor a video: its suffix "
    ):
        input_groups([still, notes], None)
    assert input_groups([still], None) == [[still]]


def test_each_image_is_opened_once_before_any_work(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every .png and .gif was opened twice: to tell an animation, then for the multi-frame
    warning. A still one is opened once, and so is a multi-page TIFF (whose frames the warning
    counts) and a GIF or PNG of another format's animation (a GIF named .png, an image that the
    warning names); a JPEG is not opened."""
    from PIL import Image

    from sparsercnn.data import image_io

    monkeypatch.setattr(image_io, "_NOTED", set())
    names = ["still.png", "still.gif", "broken.png", "pages.tif", "photo.jpg", "gif.png"]
    paths = [tmp_path / name for name in names]
    for path in paths[:2]:
        _save_frames(path, 1)
    paths[2].write_bytes(b"not a png")
    _save_frames(paths[3], 2)
    _save_frames(paths[4], 1)
    _save_frames(tmp_path / "animation.gif", 3)
    (tmp_path / "animation.gif").rename(paths[5])
    opened: list[str] = []
    real_open = Image.open

    def counting_open(name: str, *args: object, **kwargs: object) -> Image.Image:
        opened.append(Path(name).name)
        return real_open(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Image, "open", counting_open)
    assert input_groups(paths, None) == [paths]
    # The mislabelled GIF, opened again to count its frames for the warning.
    assert sorted(opened) == sorted([*names[:4], "gif.png", "gif.png"])
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert f"{paths[3]}: 2 frames (pages of a TIFF)" in warning.getMessage()
    assert f"{paths[5]}: 3 frames (an animated GIF)" in warning.getMessage()


def _save_frames(path: Path, num_frames: int) -> None:
    from PIL import Image

    frames = [Image.new("RGB", (24, 16), color) for color in ("red", "green", "blue")]
    frames[0].save(path, save_all=num_frames > 1, append_images=frames[1:num_frames], duration=100)


def test_a_staged_drawing_a_killed_run_left_in_an_input_folder_is_no_input(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A run killed before its commit into a new folder inside the input folder (so never
    marked) left its hidden staged drawing there; the next run given the input folder predicted
    that drawing as an image of the user's, its records in the results."""
    from PIL import Image

    image, staged = tmp_path / "y.png", tmp_path / "drawn" / ".y.partial.png"
    staged.parent.mkdir()
    for path in (image, staged):
        Image.new("RGB", (20, 10), "red").save(path, format="PNG")
    with caplog.at_level(logging.INFO):
        assert input_groups([tmp_path], None) == [[image]]
        assert expand_inputs(tmp_path) == [(image, str(image))]
    assert (
        f"{tmp_path}: leaving out 1 drawing of earlier runs (staged in {staged.parent} by runs "
        "killed before their end)"
    ) in caplog.text
