"""Checks of the image files a COCO file names: present, fully decodable, of the JSON's size.

:func:`check_image_files` is the file half of the data policy (:mod:`sparsercnn.data.policy`);
the JSON half is :func:`~sparsercnn.data.validation.check_coco`. Decoding goes through
:func:`~sparsercnn.data.image_io.load_image`, the function the dataset loads pixels with, so a
file that passes here loads in training. It runs in a thread pool: Pillow releases the GIL
while decoding, and on 2 shared cores threads beat a 2-process pool in every run on 640x480
JPEGs (1.3-4x; processes pay for their start and for shipping every result back); on tiny
images the two were within the noise.

An image folder that does not exist, is a file or is empty fails first, in one line
(:func:`check_image_folder`), instead of a missing-file error for every image.

Issue codes. Errors: ``image_file_missing``, ``no_image_found``, ``image_file_unreadable``
(not an image, truncated, or in a mode that cannot become RGB), ``image_exif_turned`` (the JSON
gives the stored size of a file that its EXIF orientation turns by 90 degrees: the boxes were
most likely drawn on the sideways pixels, and would land on the wrong ones). Warnings:
``image_size_mismatch``, ``image_multi_frame`` (an animation or multi-page file: its first frame
is read).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sparsercnn.data.image_io import ImageReadError, load_image, read_image_header
from sparsercnn.data.validation import DatasetError, Issue
from sparsercnn.text import counted

logger = logging.getLogger(__name__)

# The flags an image folder can come from, named where the one given is not known.
IMAGE_FOLDER_FLAGS = "--images, --train-images or --val-images"


class ImageFolderError(DatasetError):
    """An image folder that cannot hold the images of a COCO file (:func:`check_image_folder`).

    The check does not know which flag gave the folder; an entry point that does names it with
    :meth:`given_as`.

    Attributes:
        image_dir: the folder.
        source: the COCO file whose images it should hold.
        problem: what is wrong with it and what to do.
        flag: the flag(s) the message names as the folder's.
    """

    def __init__(
        self,
        image_dir: str | os.PathLike[str],
        source: str,
        problem: str,
        flag: str = IMAGE_FOLDER_FLAGS,
    ) -> None:
        super().__init__(image_dir, source, problem, flag)  # the args a pickled copy is made of
        self.image_dir = Path(image_dir)
        self.source = source
        self.problem = problem
        self.flag = flag

    def __str__(self) -> str:
        return (
            f"image folder {os.fspath(self.image_dir)!r} of {self.source} (the {self.flag} "
            f"path) {self.problem}"
        )

    def given_as(self, flag: str) -> ImageFolderError:
        """The same error, naming ``flag`` as the folder's flag."""
        return ImageFolderError(self.image_dir, self.source, self.problem, flag)


def check_image_folder(
    image_dir: str | os.PathLike[str], images: Sequence[dict[str, Any]], *, source: str
) -> None:
    """Raise when ``image_dir`` cannot hold the images of ``source``: it does not exist, is a
    file, or is empty while ``source`` names files inside it. Checked before the files one by
    one, whose list of every missing file would bury the cause.

    Args:
        image_dir: the folder that ``file_name`` is relative to.
        images: ``images`` entries that passed the JSON checks.
        source: the COCO file, for the message.

    Raises:
        ImageFolderError: one line naming the folder, the JSON and the flags that give the
            folder.
    """
    root = Path(image_dir)
    fix = "give the folder that its 'file_name' entries are relative to"
    if not root.exists():
        raise ImageFolderError(root, source, f"does not exist; {fix}")
    if not root.is_dir():
        raise ImageFolderError(root, source, f"is a file, not a folder; {fix}")
    # Absolute or '../' names do not point into the folder: an empty one may be right for them.
    inside = [
        image["file_name"]
        for image in images
        if not Path(image["file_name"]).is_absolute() and ".." not in Path(image["file_name"]).parts
    ]
    if inside and not _list_dir(root):
        raise ImageFolderError(
            root,
            source,
            f"is empty, but the file names {counted(len(inside), 'image')} in it (e.g. "
            f"{inside[0]!r}); {fix}",
        )


def check_image_files(
    images: Iterable[dict[str, Any]],
    image_dir: str | os.PathLike[str],
    *,
    decode: bool,
    num_threads: int | None = None,
    source: str | None = None,
) -> list[Issue]:
    """Check that every image file exists and, with ``decode``, that it decodes in full.

    Existence is checked by listing each folder once (cheap even for 100k files). Decoding
    reads every pixel, so a file truncated after its header is an error; a decoded size that
    differs from the JSON's ``width`` / ``height`` (after EXIF orientation) is a warning, or an
    error where the JSON gives the size before an EXIF turn by 90 degrees; a file of several
    frames is a warning (its first is read). A
    file decoded before in this process, unchanged since (size, modification time), is not
    decoded again; the logged ``decoded N images`` line counts only the files decoded now.

    Args:
        images: ``images`` entries that passed the JSON checks (``id``, ``file_name``,
            ``width``, ``height``).
        image_dir: the folder that ``file_name`` is relative to.
        decode: decode every present file (slow: about 1 ms per small image and core).
        num_threads: decoding threads; default ``min(32, cores + 4)`` (the thread pool's
            default: decoding also waits for the disk).
        source: what the log line names (the COCO file); default the image folder.

    Returns:
        The issues, in the order of ``images`` (a missing image folder comes first).
    """
    root = Path(image_dir)
    listings: dict[Path, set[str]] = {}
    issues: list[Issue] = []
    present: list[tuple[dict[str, Any], Path]] = []
    images = list(images)
    for image in images:
        path = root / image["file_name"]
        if path.parent not in listings:
            listings[path.parent] = _list_dir(path.parent)
        # is_file() as a fallback: case-insensitive file systems and odd names.
        if path.name in listings[path.parent] or path.is_file():
            present.append((image, path))
        else:
            file = image["file_name"]
            message = f"image {image['id']}: file {os.fspath(path)!r} does not exist"
            # A name written with Windows separators, whose file is there with ours.
            posix = file.replace("\\", "/")
            if os.sep == "/" and posix != file and (root / posix).is_file():
                message += f" (its 'file_name' has Windows separators: write it {posix!r})"
            issues.append(Issue("error", "image_file_missing", message, image["id"], None, file))
    if len(images) > 1 and not present:
        message = (
            f"none of the {len(images)} image files exist under {os.fspath(root)!r} (e.g. "
            f"{images[0]['file_name']!r}): is the image folder right?"
        )
        issues.insert(0, Issue("error", "no_image_found", message))
    if decode and present:
        start = time.perf_counter()
        with ThreadPoolExecutor(num_threads) as pool:
            found = list(pool.map(lambda item: _remembered_decode_issues(*item), present))
        issues.extend(issue for file_issues, _ in found for issue in file_issues)
        _log_decoded(source or os.fspath(root), sum(fresh for _, fresh in found), len(found), start)
    return issues


def _log_decoded(source: str, num_decoded: int, num_present: int, start: float) -> None:
    """One line on what was decoded now; files remembered from an earlier check are not."""
    remembered = num_present - num_decoded
    if num_decoded == 0:
        logger.debug(
            "%s: %d images unchanged since their check, not decoded again", source, remembered
        )
        return
    seconds = time.perf_counter() - start
    again = f" ({remembered} others unchanged since their check)" if remembered else ""
    logger.info("%s: decoded %d images in %.1f s%s", source, num_decoded, seconds, again)


# Decode results by file (path, size, modification time) and JSON entry, for this process: a
# training run checks its files before choosing its recipe and again when it builds its
# dataset; the second check decodes only what changed in between.
_DECODED: dict[tuple[str, int, int, int, str, int, int], tuple[Issue, ...]] = {}


def _remembered_decode_issues(image: dict[str, Any], path: Path) -> tuple[tuple[Issue, ...], bool]:
    """The file's issues and whether it was decoded now (False: remembered)."""
    try:
        stat = path.stat()
    except OSError:
        return _decode_issues(image, path), True
    key = (
        os.path.abspath(path),
        stat.st_size,
        stat.st_mtime_ns,
        int(image["id"]),
        str(image["file_name"]),
        int(image["width"]),
        int(image["height"]),
    )
    if key in _DECODED:
        return _DECODED[key], False
    _DECODED[key] = _decode_issues(image, path)
    return _DECODED[key], True


def _list_dir(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except OSError:
        return set()


def _decode_issues(image: dict[str, Any], path: Path) -> tuple[Issue, ...]:
    """The problems of one image file: unreadable, or turned away from the JSON's size by its
    EXIF orientation (errors); of another size, or of several frames (warnings)."""
    image_id, file = image["id"], image["file_name"]
    try:
        with load_image(path) as decoded:
            width, height = decoded.size
        header = read_image_header(path)
    except ImageReadError as exc:
        message = f"image {image_id}: {exc}"
        return (Issue("error", "image_file_unreadable", message, image_id, None, file),)
    issues = []
    if header.num_frames > 1:
        message = (
            f"image {image_id} ({file!r}): the {header.format} file has {header.num_frames} "
            "frames or pages; only the first is read"
        )
        issues.append(Issue("warning", "image_multi_frame", message, image_id, None, file))
    json_size = (int(image["width"]), int(image["height"]))
    if (width, height) == json_size:
        return tuple(issues)
    if (height, width) == json_size and header.orientation != 1:
        message = (
            f"image {image_id} ({file!r}): the JSON gives {json_size[0]}x{json_size[1]} (w x h), "
            f"the stored size, but EXIF orientation {header.orientation} turns the file to "
            f"{width}x{height}, so its boxes would land on the wrong pixels: if they were drawn "
            "on the stored (sideways) image, as annotation tools that ignore the tag do, reset "
            "the tag (e.g. `exiftool -Orientation=1 -n -overwrite_original FILE`); if on the "
            "upright image, swap the JSON's width and height"
        )
        issues.append(Issue("error", "image_exif_turned", message, image_id, None, file))
    else:
        message = (
            f"image {image_id} ({file!r}): the JSON gives {json_size[0]}x{json_size[1]} (w x h) "
            f"but the file is {width}x{height} after EXIF orientation"
        )
        issues.append(Issue("warning", "image_size_mismatch", message, image_id, None, file))
    return tuple(issues)
