"""Checks of the image files a COCO file names (present, fully decodable, of the JSON's size),
and of the image files it does not name.

:func:`check_image_files` is the file half of the data policy (:mod:`sparsercnn.data.policy`);
the JSON half is :func:`~sparsercnn.data.validation.check_coco`. Decoding goes through
:func:`~sparsercnn.data.image_io.load_image`, the function the dataset loads pixels with, so a
file that passes here loads in training; each file is opened once, for its header and its
pixels. It runs in a thread pool: Pillow releases the GIL
while decoding, and on 2 shared cores threads beat a 2-process pool in every run on 640x480
JPEGs (1.3-4x; processes pay for their start and for shipping every result back); on tiny
images the two were within the noise.

An image folder that does not exist, is a file or is empty fails first, in one line
(:func:`check_image_folder`), instead of a missing-file error for every image.

A decoded file's size is the truth for its boxes: where it differs from the JSON's ``width`` /
``height`` (one ``image_size_mismatch`` warning naming both), or where the JSON gives none
(:func:`~sparsercnn.data.image_entry.image_entry_size`), the data policy checks the image's
boxes against the file's size (:func:`~sparsercnn.data.validation.check_coco`'s
``image_sizes``).

Issue codes. Errors: ``image_file_missing``, ``no_image_found``, ``wrong_image_folder`` (most
of the files, and a few, missing from the folder, or of other sizes than the JSON's: the folder
of another split, whose files are numbered alike, say), ``image_file_unreadable``
(not an image, truncated, or in a mode that cannot become RGB), ``image_exif_turned`` (the JSON
gives the stored size of a file that its EXIF orientation turns by 90 degrees: the boxes were
most likely drawn on the sideways pixels, and would land on the wrong ones). Warnings:
``image_size_mismatch``, ``image_multi_frame`` (an animation or multi-page file: its first frame
is read), ``duplicate_file_name`` (two names that the file system resolves to one file, such as
``a.jpg`` and ``A.jpg`` on macOS and Windows: equal names are the JSON check's). Info:
``unlisted_image_files`` (image files in the image folder that the JSON does not name, one issue
for all: :func:`find_unlisted_images`).
"""

from __future__ import annotations

import logging
import os
import time
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sparsercnn.data.dataset_error import DatasetError
from sparsercnn.data.image_entry import (
    FILE_RESIZED_REMEDY,
    format_given_size,
    given_image_size,
    given_size_agrees,
)
from sparsercnn.data.image_io import ImageReadError, load_image_and_header
from sparsercnn.data.image_suffixes import IMAGE_SUFFIXES
from sparsercnn.data.issues import Issue
from sparsercnn.data.validation import REPEATED_FILE_CONSEQUENCE
from sparsercnn.paths import file_identity
from sparsercnn.text import counted, listing, verb

logger = logging.getLogger(__name__)

# Unlisted image files named in the unlisted_image_files issue.
_MAX_NAMED_UNLISTED = 5

# The flags an image folder can come from, named where the one given is not known.
IMAGE_FOLDER_FLAGS = "--images, --train-images or --val-images"
# A folder is called the wrong one (wrong_image_folder) when more than half of the files, and
# at least this many, are missing from it or differ in size from the JSON's.
_MIN_FILES_OF_WRONG_FOLDER = 3
# The errors of an image file itself, not of its JSON entry or its annotations: what a refusal
# lists as bad files.
FILE_ERROR_CODES = frozenset({"image_file_missing", "image_file_unreadable", "image_exif_turned"})


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
    inside = [image["file_name"] for image in images if _points_inside(image["file_name"])]
    if inside and not _list_dir(root):
        raise ImageFolderError(
            root,
            source,
            f"is empty, but the file names {counted(len(inside), 'image')} in it (e.g. "
            f"{inside[0]!r}); {fix}",
        )


def _points_inside(file_name: str) -> bool:
    """Whether a ``file_name`` names a file inside the image folder (not absolute, no ``..``)."""
    path = Path(file_name)
    return not path.is_absolute() and ".." not in path.parts


@dataclass(frozen=True)
class FileCheck:
    """What :func:`check_image_files` found.

    Attributes:
        issues: the issues: a folder without any or most of the files, or whose files are
            mostly of other sizes (``no_image_found``, ``wrong_image_folder``) first, then those
            of the names (missing files, names of one file), then those of decoding, each in
            image order.
        sizes: ``(width, height)`` in pixels after EXIF orientation of every decoded file, by
            image id (empty without decoding): the size its boxes are checked against.
    """

    issues: list[Issue]
    sizes: dict[int, tuple[int, int]]


def check_image_files(
    images: Iterable[dict[str, Any]],
    image_dir: str | os.PathLike[str],
    *,
    decode: bool,
    num_threads: int | None = None,
    source: str | None = None,
) -> FileCheck:
    """Check that every image file exists and, with ``decode``, that it decodes in full.

    Existence is checked by listing each folder once (cheap even for 100k files); images whose
    names differ but resolve to one file are warned about (:func:`_same_file_issues`). Decoding
    reads every pixel, so a file truncated after its header is an error; a decoded size that
    differs from the JSON's ``width`` / ``height`` (after EXIF orientation) is a warning, or an
    error where the JSON gives the size before an EXIF turn by 90 degrees; a file of several
    frames is a warning (its first is read). A folder without any of the files, or where most
    of them (and a few) are missing or of another size, is one more error, first: the folder is
    likely the wrong one. A file decoded before in this process, unchanged since (size,
    modification time), is not decoded again; the logged ``decoded N images`` line counts only
    the files decoded now.

    Args:
        images: ``images`` entries that passed the JSON checks (``id``, ``file_name``,
            ``width``, ``height``), or failed them only for giving no size (a file's size is
            then compared with nothing).
        image_dir: the folder that ``file_name`` is relative to.
        decode: decode every present file (slow: about 1 ms per small image and core).
        num_threads: decoding threads; default ``min(32, cores + 4)`` (the thread pool's
            default: decoding also waits for the disk).
        source: what the log line and a ``wrong_image_folder`` error name (the COCO file);
            default the image folder (the log line) and "the JSON" (the error).

    Returns:
        The issues and, with ``decode``, the size of every file that decodes.
    """
    root = Path(image_dir)
    listings: dict[Path, set[str]] = {}
    spellings: dict[Path, dict[str, str]] = {}  # a folder's names by their casefold, for hints
    elsewhere = _FilesByName(root)
    issues: list[Issue] = []
    present: list[tuple[dict[str, Any], Path]] = []
    missing: list[dict[str, Any]] = []
    images = list(images)
    for image in images:
        path = root / image["file_name"]
        if path.parent not in listings:
            listings[path.parent] = _list_dir(path.parent)
        # is_file() as a fallback: case-insensitive file systems and odd names.
        if path.name in listings[path.parent] or path.is_file():
            present.append((image, path))
        else:
            if path.parent not in spellings:
                spellings[path.parent] = {name.casefold(): name for name in listings[path.parent]}
            hint = _missing_hint(image, path, root, spellings[path.parent], elsewhere)
            if hint is None:
                hint = (
                    ": restore the file, or correct the 'file_name' (relative to the image "
                    f"folder {os.fspath(root)!r})"
                )
                missing.append(image)  # not there under another spelling either
            message = f"image {image['id']}: file {os.fspath(path)!r} does not exist{hint}"
            file = image["file_name"]
            issues.append(Issue("error", "image_file_missing", message, image["id"], None, file))
    issues.extend(_same_file_issues(present))
    mostly_missing = _is_most(len(missing), len(images))
    if len(images) > 1 and not present:
        message = (
            f"none of the {len(images)} image files exist under {os.fspath(root)!r} (e.g. "
            f"{images[0]['file_name']!r}): is the image folder right?"
        )
        issues.insert(0, Issue("error", "no_image_found", message))
    elif mostly_missing:
        issues.insert(0, _mostly_missing_issue(root, missing, len(images), source))
    sizes: dict[int, tuple[int, int]] = {}
    if decode and present:
        start = time.perf_counter()
        with ThreadPoolExecutor(num_threads) as pool:
            found = list(pool.map(lambda item: _remembered_findings(*item), present))
        for (image, _), (findings, _) in zip(present, found, strict=True):
            issues.extend(findings.issues)
            if findings.size is not None:
                sizes[image["id"]] = findings.size
        _log_decoded(source or os.fspath(root), sum(fresh for _, fresh in found), len(found), start)
        if not mostly_missing:  # one folder issue is enough
            pairs = zip(present, found, strict=True)
            decoded = [(image, findings) for (image, _), (findings, _) in pairs]
            if (resized := _mostly_resized_issue(root, decoded, source)) is not None:
                issues.insert(0, resized)
    return FileCheck(issues, sizes)


def _is_most(count: int, total: int) -> bool:
    """Whether ``count`` of ``total`` image files is most of them, and a few: what calls the
    image folder into question (``wrong_image_folder``) rather than the files."""
    return count >= _MIN_FILES_OF_WRONG_FOLDER and 2 * count > total


def _mostly_missing_issue(
    root: Path, missing: Sequence[dict[str, Any]], total: int, source: str | None
) -> Issue:
    """The ``wrong_image_folder`` error of a folder that lacks most of the files."""
    message = (
        f"image folder {os.fspath(root)!r} may be the wrong one for {source or 'the JSON'}: "
        f"{len(missing)} of its {total} image files do not exist in it (e.g. "
        f"{missing[0]['file_name']!r}): give the folder that its 'file_name' entries are "
        f"relative to ({IMAGE_FOLDER_FLAGS})"
    )
    return Issue("error", "wrong_image_folder", message)


def _mostly_resized_issue(
    root: Path, decoded: Sequence[tuple[dict[str, Any], _Findings]], source: str | None
) -> Issue | None:
    """The ``wrong_image_folder`` error of a folder most of whose decoded files differ in size
    from the JSON's (``decoded``: the present images with their findings), else ``None``: the
    files of another split, numbered alike (``000000.jpg``...), are found but are other
    pictures, and their boxes would be checked and clipped against pictures they were not
    drawn on. Entries that give no size are not counted."""
    sized = [
        (image, findings)
        for image, findings in decoded
        if findings.size is not None and given_image_size(image) != (None, None)
    ]
    resized = [
        (image, findings.size)
        for image, findings in sized
        if any(issue.code == "image_size_mismatch" for issue in findings.issues)
    ]
    if not _is_most(len(resized), len(sized)):
        return None
    image, size = resized[0]
    assert size is not None  # sized files only
    json = source or "the JSON"
    message = (
        f"image folder {os.fspath(root)!r} may be the wrong one for {json}: {len(resized)} of "
        f"the {len(sized)} image files differ in size from its 'width' and 'height' (e.g. "
        f"{image['file_name']!r}: JSON {format_given_size(given_image_size(image))}, file "
        f"{size[0]}x{size[1]}): give the folder of its images ({IMAGE_FOLDER_FLAGS}); if this "
        "is it, correct the JSON's 'width' and 'height', or rescale the boxes if the files were "
        "resized after they were drawn"
    )
    return Issue("error", "wrong_image_folder", message)


def _missing_hint(
    image: dict[str, Any],
    path: Path,
    root: Path,
    spellings: Mapping[str, str],
    elsewhere: _FilesByName,
) -> str | None:
    """The end of the ``image_file_missing`` message of ``image`` (its file ``path`` under
    ``root``, which does not exist) where its file is there under another spelling: how to
    write its ``file_name``, as annotation tools write them: with Windows separators;
    URL-encoded (``%20`` for a space); in another case on a case-sensitive file system
    (``spellings``: the names in the file's folder by their casefold; a dataset made on macOS
    or Windows can have either); relative to the image folder's parent (``images/a.jpg`` with
    ``images/`` given as the folder); or as a path where the export was made (absolute,
    ``../``), whose base name is one file under ``root`` (``elsewhere``). Only a hint: the
    file used is always the one the JSON names. ``None``: no such file (a folder where most
    files have none is likely the wrong one)."""
    file = image["file_name"]
    posix = file.replace("\\", "/")
    if os.sep == "/" and posix != file and (root / posix).is_file():
        return f" (its 'file_name' has Windows separators: write it {posix!r})"
    if (decoded := unquote(posix)) != posix and (root / decoded).is_file():
        return f" (its 'file_name' is URL-encoded, '%20' for a space: write it {decoded!r})"
    if (other := spellings.get(path.name.casefold())) is not None:
        written = os.path.join(os.path.dirname(file), other)
        return (
            f", but {other!r} does, which differs only in case: file names are "
            f"case-sensitive here; write it {written!r}"
        )
    folder = Path(os.path.abspath(root))
    parent = root.parent if root.name else folder.parent  # as given where it names the folder
    if Path(decoded).parts[:1] == (folder.name,) and (parent / decoded).is_file():
        return (
            f", but {os.fspath(parent / decoded)!r} does: the 'file_name' starts with "
            f"the image folder's own name {folder.name!r}; give the image folder as "
            f"{os.fspath(parent)!r}, the folder the names are relative to"
        )
    found = elsewhere.get(decoded.rsplit("/", 1)[-1])
    if len(found) == 1:
        return (
            f", but a file of that name is at {found[0]!r} under the image folder: if "
            "it is this image (a 'file_name' with the path of the machine that exported it), "
            f"write it relative to the image folder, {found[0]!r}"
        )
    if found:
        return (
            f"; files of that name are at {listing([repr(name) for name in found])} "
            "under the image folder: write the 'file_name' relative to the image folder"
        )
    return None


class _FilesByName:
    """The image files under a folder by base name, as paths relative to it; listed once, when
    first asked (a missing file's hint)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.by_name: dict[str, list[str]] | None = None

    def get(self, name: str) -> list[str]:
        """The relative paths of the files called ``name``, sorted."""
        if self.by_name is None:
            self.by_name = defaultdict(list)
            for path in sorted(_image_files_under(self.root)[0]):
                self.by_name[os.path.basename(path)].append(os.path.relpath(path, self.root))
        return self.by_name.get(name, [])


def _same_file_issues(present: Sequence[tuple[dict[str, Any], Path]]) -> list[Issue]:
    """``duplicate_file_name`` warnings (as :func:`~sparsercnn.data.validation.check_coco`
    gives for equal names) for images whose ``file_name`` strings differ but resolve to one
    file (``present``: the images with their paths), in image order: another case on macOS and
    Windows, another Unicode form on macOS, ``./`` or a Windows separator in the name. Only names
    that are alike but for these are looked up, and told apart as the file system does, by file
    identity (:func:`~sparsercnn.paths.file_identity`); links to one file under unrelated names
    are not looked for."""
    alike: dict[str, set[str]] = defaultdict(set)
    keys = [_name_key(path) for _, path in present]
    for (image, _), key in zip(present, keys, strict=True):
        alike[key].add(image["file_name"])
    first_of_file: dict[tuple[int, int], dict[str, Any]] = {}
    issues = []
    for (image, path), key in zip(present, keys, strict=True):
        if len(alike[key]) < 2 or (identity := file_identity(os.fspath(path))) is None:
            continue
        first = first_of_file.setdefault(identity, image)
        file = image["file_name"]
        if first["file_name"] != file:  # equal names: the JSON check's warning
            message = (
                f"images {first['id']} ({first['file_name']!r}) and {image['id']} ({file!r}) "
                f"name one file, as the file system resolves them: {REPEATED_FILE_CONSEQUENCE}"
            )
            issues.append(Issue("warning", "duplicate_file_name", message, image["id"], None, file))
    return issues


def _name_key(path: Path) -> str:
    """``path`` as a file system that ignores case and Unicode form (macOS, Windows) may resolve
    it: names of one key may be one file."""
    normal = os.path.normpath(os.fspath(path).replace("\\", "/"))
    return unicodedata.normalize("NFC", normal).casefold()


def find_unlisted_images(
    image_dir: str | os.PathLike[str], file_names: Iterable[object], *, source: str
) -> Issue | None:
    """The ``unlisted_image_files`` info: image files (:data:`IMAGE_SUFFIXES`) in ``image_dir``
    or its subfolders that no ``file_name`` names (as the file system resolves it: on a
    case-insensitive one, ``IMG_1.JPG`` names ``img_1.jpg``), counted in one issue naming a
    few; ``None`` when there is none, or when no ``file_name`` points into the folder
    (absolute or ``../`` names: the folder is not where the images are). Hidden files and
    folders are passed over, and folder links are not followed.

    Args:
        image_dir: the folder that ``file_name`` is relative to.
        file_names: every ``images[].file_name`` of the JSON, those of entries with errors
            included (they name a file all the same); values that are no string are passed over.
        source: the COCO file, for the message.
    """
    root = Path(image_dir)
    names = [name for name in file_names if isinstance(name, str) and name]
    # A Windows separator names the same file (image_file_missing says how to write it).
    named = {os.path.normpath(root / name.replace("\\", "/")) for name in names}
    if not any(map(_points_inside, names)):
        return None
    found, has_links = _image_files_under(root)
    unlisted = [path for path in found if os.path.normpath(path) not in named]
    # A named file found under another name: one the file system resolves the JSON's name to
    # (another case on macOS and Windows, another Unicode form on macOS), or one reached
    # through a link (any named file may be a link's target). Told apart as the file system
    # does, by file identity; only the names not found as written are looked up.
    others = named if has_links else named - {os.path.normpath(path) for path in found}
    if unlisted and others:
        named_files = {file for path in others if (file := file_identity(path)) is not None}
        if named_files:
            unlisted = [path for path in unlisted if file_identity(path) not in named_files]
    if not unlisted:
        return None
    shown = sorted(os.path.relpath(path, root) for path in unlisted)
    examples = listing([repr(name) for name in shown], limit=_MAX_NAMED_UNLISTED)
    message = (
        f"{counted(len(unlisted), 'image file')} under {os.fspath(root)!r} "
        f"{verb(len(unlisted), 'is')} not in {source} (e.g. {examples}): "
        "not trained or evaluated on; annotate them if they should be, or check that the JSON "
        "is the one for this folder (another file listing them, such as a validation split, is "
        "fine)"
    )
    return Issue("info", "unlisted_image_files", message)


def _image_files_under(root: Path) -> tuple[list[str], bool]:
    """The paths of the image files in ``root`` and its subfolders (hidden ones and folder
    links passed over), and whether the tree holds a link (file or folder)."""
    found: list[str] = []
    has_links = False
    folders = [os.fspath(root)]
    while folders:
        try:
            entries = list(os.scandir(folders.pop()))
        except OSError:  # unreadable: its files cannot be used either
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            has_links |= entry.is_symlink()
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry.path)
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                found.append(entry.path)
    return found, has_links


def _log_decoded(source: str, num_decoded: int, num_present: int, start: float) -> None:
    """One line on what was decoded now; files remembered from an earlier check are not."""
    remembered = num_present - num_decoded
    since = "since its check" if remembered == 1 else "since their check"
    if num_decoded == 0:
        logger.debug(
            "%s: %s unchanged %s, not decoded again", source, counted(remembered, "image"), since
        )
        return
    seconds = time.perf_counter() - start
    again = f" ({counted(remembered, 'other')} unchanged {since})" if remembered else ""
    logger.info("%s: decoded %s in %.1f s%s", source, counted(num_decoded, "image"), seconds, again)


@dataclass(frozen=True)
class _Findings:
    """What decoding one file found: its issues, and its size ``(width, height)`` after EXIF
    orientation (``None``: it does not decode)."""

    issues: tuple[Issue, ...]
    size: tuple[int, int] | None


# Decode results by file (path, size, modification time) and JSON entry (id, name, size or
# None), for this process: a training run checks its files before choosing its recipe and again
# when it builds its dataset; the second check decodes only what changed in between.
_DECODED: dict[tuple[str, int, int, int, str, tuple[int | None, int | None]], _Findings] = {}


def _remembered_findings(image: dict[str, Any], path: Path) -> tuple[_Findings, bool]:
    """The file's findings and whether it was decoded now (False: remembered)."""
    try:
        stat = path.stat()
    except OSError:
        return _findings(image, path), True
    key = (
        os.path.abspath(path),
        stat.st_size,
        stat.st_mtime_ns,
        int(image["id"]),
        str(image["file_name"]),
        given_image_size(image),
    )
    if key in _DECODED:
        return _DECODED[key], False
    _DECODED[key] = _findings(image, path)
    return _DECODED[key], True


def _list_dir(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except OSError:
        return set()


def _findings(image: dict[str, Any], path: Path) -> _Findings:
    """The problems of one image file, from one opening of it: unreadable, or turned away from
    the JSON's size by its EXIF orientation (errors); of another size, or of several frames
    (warnings). An entry that gives half a size is checked on that half; one that gives none
    has none to disagree with."""
    image_id, file = image["id"], image["file_name"]
    try:
        decoded, header = load_image_and_header(path)
        decoded.close()
    except ImageReadError as exc:
        message = f"image {image_id}: {exc}"
        return _Findings(
            (Issue("error", "image_file_unreadable", message, image_id, None, file),), None
        )
    width, height = header.width, header.height
    issues = []
    if header.num_frames > 1:
        message = (
            f"image {image_id} ({file!r}) has {header.frames_in_words}; only the first is read"
        )
        issues.append(Issue("warning", "image_multi_frame", message, image_id, None, file))
    given = given_image_size(image)
    if given_size_agrees(given, (width, height)):
        return _Findings(tuple(issues), (width, height))
    whole = None not in given
    json_size = f"{format_given_size(given)}{' (w x h)' if whole else ''}"
    upright = (
        "swap the JSON's width and height"
        if whole
        else f"write its 'width' {width} and 'height' {height}"
    )
    if given_size_agrees(given, (height, width)) and header.turned:
        message = (
            f"image {image_id} ({file!r}): the JSON gives {json_size}, "
            f"the stored size, but EXIF orientation {header.orientation} turns the file to "
            f"{width}x{height}, so its boxes would land on the wrong pixels: if they were drawn "
            "on the stored (sideways) image, as annotation tools that ignore the tag do, reset "
            "the tag (e.g. `exiftool -Orientation=1 -n -overwrite_original FILE`); if on the "
            f"upright image, {upright}"
        )
        issues.append(Issue("error", "image_exif_turned", message, image_id, None, file))
    else:
        message = (
            f"image {image_id} ({file!r}): the JSON gives {json_size} "
            f"but the file is {width}x{height} after EXIF orientation; its boxes are checked "
            "against the file's size (and clipped to it for training): if they were drawn on "
            f"the file as it is, correct the JSON's 'width' and 'height'; {FILE_RESIZED_REMEDY}"
        )
        issues.append(Issue("warning", "image_size_mismatch", message, image_id, None, file))
    return _Findings(tuple(issues), (width, height))
