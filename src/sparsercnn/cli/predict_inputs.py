"""The inputs of ``sparsercnn predict``: the paths given, found and grouped in order
(:func:`input_groups`), refused before any work when one is given twice or an output would
replace one (:func:`refuse_writing_over_inputs`, :func:`refuse_media_output`), and the images
that could not be read when their turn came (:func:`unreadable_images`, :func:`warn_unreadable`).

A folder stands for its images and videos (:func:`~sparsercnn.image_inputs.folder_files`), or
with ``--fps`` for one frame sequence; the command runs each :data:`InputGroup` in turn.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sparsercnn.data.image_suffixes import IMAGE_SUFFIXES
from sparsercnn.video.suffixes import IMAGE_AND_VIDEO_SUFFIXES, VIDEO_SUFFIXES

if TYPE_CHECKING:
    from sparsercnn.data.image_io import ImageReadError
    from sparsercnn.drawing_writer import DrawingWriter
    from sparsercnn.video import FrameSequence

    # A run of consecutive image files (batched together), or one opened video or frame folder.
    InputGroup = list[Path] | FrameSequence

logger = logging.getLogger(__name__)


def input_groups(
    paths: list[Path], fps: float | None, skip: Path | None = None
) -> list[InputGroup]:
    """The inputs in order as runs of consecutive image files and opened frame sequences
    (videos and animated GIFs and PNGs, and with ``fps`` folders); a folder otherwise stands for its
    images and videos, sorted by path, leaving out those below the folder ``skip`` and below
    folders of drawings an earlier run made (:data:`~sparsercnn.image_inputs.DRAWINGS_MARKER`).
    The images read as their first frame (an animated WebP, a multi-page TIFF) are named, all in
    one warning (:func:`~sparsercnn.data.image_io.warn_multi_frame_files`).

    Raises:
        FileNotFoundError: a path does not exist, or a folder holds no input.
        ValueError: a file is an input twice (:func:`refuse_repeated_inputs`), a file given
            is no image or video (:func:`refuse_unknown_file`), a video cannot be read
            (:class:`~sparsercnn.video.VideoFile`), or ``fps`` is given without a folder.
    """
    from sparsercnn.data.image_io import warn_multi_frame_files
    from sparsercnn.video import FrameFolder, VideoFile
    from sparsercnn.video.reader import ANIMATION_FORMATS, frames_format, reads_as_video

    items: list[Path | FrameSequence] = []
    given: list[tuple[Path, Path]] = []  # (input, the path the user gave for it)
    for path in paths:
        if path.is_dir() and fps is None:
            given.extend((found, path) for found in folder_inputs(path, skip))
        elif not path.exists():
            raise FileNotFoundError(f"input {path} does not exist")
        else:
            refuse_unknown_file(path)
            given.append((path, path))
    refuse_repeated_inputs(given)
    # The images whose headers may say they have several frames: not a GIF or PNG whose header,
    # read once to tell an animation, said it has one (or is unreadable: its reading says so).
    maybe_multi_frame: list[Path] = []
    for path, _ in given:
        if fps is not None and path.is_dir():
            items.append(FrameFolder(path, fps, skip=skip))
            continue
        suffix, image_format = path.suffix.lower(), frames_format(path)
        if reads_as_video(suffix, image_format):
            items.append(VideoFile(path))  # an animated GIF or PNG too: every frame
            continue
        items.append(path)
        if image_format is not None or suffix not in ANIMATION_FORMATS:
            maybe_multi_frame.append(path)
    if fps is not None and not any(isinstance(item, FrameFolder) for item in items):
        raise ValueError("--fps reads folders as frame sequences, but no folder was given")
    warn_multi_frame_files(maybe_multi_frame)
    groups: list[InputGroup] = []
    for item in items:
        if not isinstance(item, Path):
            groups.append(item)
        elif groups and isinstance(groups[-1], list):
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def refuse_unknown_file(path: Path) -> None:
    """Fail before any work when a file given, whose suffix is neither an image's nor a
    video's, is no image Pillow reads either (``notes.txt``, a video ``.ogv``): it was read as
    an image when its turn came, failing the run part-way as "not an image, or a damaged one".

    Raises:
        ValueError: naming the file, its suffix and the suffixes read.
    """
    from sparsercnn.data.image_io import ImageReadError, read_image_header

    if path.is_dir() or path.suffix.lower() in IMAGE_AND_VIDEO_SUFFIXES:
        return
    try:
        read_image_header(path)
    except ImageReadError:
        raise ValueError(
            f"input {path} is neither an image nor a video: its suffix {path.suffix or '(none)'} "
            f"is not an image's ({', '.join(IMAGE_SUFFIXES)}) nor a video's "
            f"({', '.join(VIDEO_SUFFIXES)}), and Pillow cannot read it; convert it, or rename "
            "it if it is one"
        ) from None


def refuse_repeated_inputs(given: list[tuple[Path, Path]]) -> None:
    """Fail before any work when one file (or frame folder) is an input twice: given twice,
    under two names (``./a.mp4``, a link) or inside a folder also given; its records would be
    written twice.

    Args:
        given: each input and the path the user gave for it (itself, or its folder).

    Raises:
        ValueError: naming both ways it was given.
    """
    from sparsercnn.paths import file_identity

    seen: dict[object, str] = {}
    for path, argument in given:
        # By file identity; where the file system numbers no files, by the resolved path.
        key = file_identity(path) or os.path.realpath(path)
        named = str(path) if path == argument else f"{path} (in folder {argument})"
        if key not in seen:
            seen[key] = named
        elif seen[key] == named:
            raise ValueError(f"input {named} is given twice; give it once")
        else:
            raise ValueError(
                f"inputs {seen[key]} and {named} are the same file, given twice; give it once"
            )


def folder_inputs(folder: Path, skip: Path | None) -> list[Path]:
    """The image and video files below ``folder``, sorted, but for drawings
    (:func:`~sparsercnn.image_inputs.folder_files`).

    Raises:
        FileNotFoundError: none is left.
    """
    from sparsercnn.image_inputs import folder_files, no_files_error

    found = folder_files(folder, IMAGE_AND_VIDEO_SUFFIXES, skip)
    if not found:
        raise no_files_error(folder, "image or video files", IMAGE_AND_VIDEO_SUFFIXES)
    return found


def refuse_writing_over_inputs(
    groups: list[InputGroup], output: Path, drawings: DrawingWriter | None
) -> None:
    """Fail before any work when ``--output`` is one of the input files, when an image's
    drawing would replace a file that is no earlier drawing
    (:meth:`~sparsercnn.drawing_writer.DrawingWriter.check_target`): the image itself
    (``--save-images`` naming the images' folder), another input, or a file of the user's; or
    when ``--save-images`` holds the user's images or videos
    (:meth:`~sparsercnn.drawing_writer.DrawingWriter.check_folder`)."""
    from sparsercnn.video import FrameFolder

    images = [path for group in groups if isinstance(group, list) for path in group]
    files = images + [
        file
        for group in groups
        if not isinstance(group, list)
        for file in (group.files if isinstance(group, FrameFolder) else [group.path])
    ]
    _refuse_output_among(output, files)
    if drawings is None:
        return
    for image in images:
        drawings.check_image(image)
    drawings.check_folder()


def refuse_media_output(output: Path, paths: Sequence[Path]) -> None:
    """Fail before any work when ``--output`` names an image or a video (``--output
    drawn.mp4``): the results JSON would be written under that name, replacing such a file.
    Its suffix alone tells: call it before the model is loaded and the inputs opened. One of
    the input ``paths`` as given is named as such (as :func:`refuse_writing_over_inputs`
    names every input file)."""
    if output.suffix.lower() in IMAGE_AND_VIDEO_SUFFIXES:
        _refuse_output_among(output, paths)
        raise ValueError(
            f"--output {output} names an image or video file, but --output is the results "
            "JSON: give a .json name (--save-images DIR draws the detections)"
        )


def _refuse_output_among(output: Path, files: Iterable[Path]) -> None:
    """Fail when ``output`` is an existing file that is one of ``files`` (by file identity: a
    link, another spelling)."""
    if output.is_file() and any(file.is_file() and output.samefile(file) for file in files):
        raise ValueError(f"--output {output} is one of the inputs; give another file name")


def unreadable_images(
    errors: list[ImageReadError], num_read: int, lost_sequences: Sequence[tuple[str, str]]
) -> list[dict[str, str]]:
    """The images that could not be read (a truncated JPEG, an empty PNG), as the frame list
    records them (:func:`~sparsercnn.cli.predict_sequences.write_outputs`): ``file_name`` (as
    records name an image) and ``reason``. Such an image is left out and the others predicted,
    unless no input was predicted at all.

    Args:
        errors: the error of each image that could not be read, in input order.
        num_read: how many images and frames were predicted.
        lost_sequences: ``(kind, path)`` of the frame folders and videos of which no frame was
            predicted (:func:`~sparsercnn.cli.predict_sequences.lost_sequences`), each named in
            a warning.

    Raises:
        ImageReadError: no input was read (``num_read`` is 0): the one image's own error, or
            one naming every image and why (:func:`~sparsercnn.data.image_io.none_read_error`)
            and every frame folder and video lost.
    """
    from sparsercnn.data.image_io import none_read_error
    from sparsercnn.text import counted

    if num_read == 0 and lost_sequences:
        lost = [f"{kind} {path} (no frame of it read, as warned)" for kind, path in lost_sequences]
        raise none_read_error("inputs", errors, before=lost)
    if errors and num_read == 0:
        if len(errors) == 1:
            raise errors[0]
        raise none_read_error(counted(len(errors), "image"), errors)
    return [{"file_name": error.path, "reason": error.reason} for error in errors]


def warn_unreadable(errors: list[ImageReadError], listed_in: Path) -> None:
    """One warning naming each image of :func:`unreadable_images` and why
    (:func:`~sparsercnn.data.image_io.unreadable_listing`), and the file ``listed_in`` that
    lists them all."""
    from sparsercnn.data.image_io import unreadable_listing
    from sparsercnn.text import counted, verb

    logger.warning(
        "%s could not be read and %s left out (listed in %s): %s",
        counted(len(errors), "image"),
        verb(len(errors), "was"),
        listed_in,
        unreadable_listing(errors),
    )
