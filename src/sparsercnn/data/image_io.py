"""Image decoding: every file becomes an 8-bit RGB PIL image in its display orientation.

The dataset reads pixels through :func:`decode_image` (:func:`load_image` in full), the data
policy's image check (:mod:`sparsercnn.data.image_check`) through :func:`load_image_and_header`
(the pixels and the header from one opening of the file), all three decoding alike, so a file that
passes the check loads in training; :func:`read_image_header` parses the header alone. They apply
the EXIF orientation tag, as the reference decoder does (spec 1.1: PIL, RGB, EXIF applied), so
sizes and pixels agree with what image viewers and annotation tools show. A truncated file raises:
nothing in the package turns on Pillow's global ``ImageFile.LOAD_TRUNCATED_IMAGES``, which would
fill the missing rows with grey.

Training never feeds a 2000-px photo to a 300-px model, and decoding it in full costs more than
the step that follows: :func:`decode_image` with ``at_least`` lets a JPEG decode at 1/2, 1/4 or
1/8 of its size (libjpeg's DCT scaling, which averages each 2x2 to 8x8 block of pixels as it
decodes), never below the size the caller needs. Training asks for the size its augmentation
makes of an image, inference (evaluation and predictors alike) for twice the test resize's
(:data:`~sparsercnn.data.transforms.INFERENCE_DECODE_MARGIN`). Such an image is not the full one
resized: its ``ceil(W / k)`` pixels tile ``k * ceil(W / k)`` full pixels, up to ``k - 1`` more than
the ``W`` there are (the last one covers a partial block), so boxes move between the two by its
:class:`~sparsercnn.structures.PixelMap`, never by the ratio of sizes.

Mode conversions done by :func:`to_rgb`:

- ``L``, ``1``, ``P``, ``CMYK``, ``YCbCr``, ``RGBX``: Pillow's own conversion to RGB;
- ``RGBA``, ``LA``, ``PA`` and palette images with a transparent colour: the alpha channel is
  dropped, keeping the stored colours (as ``cv2.imread`` and ``Image.convert("RGB")`` do, which is
  what most annotation and training tools saw). Compositing on a background would instead turn
  images whose exporter wrote an all-zero alpha channel completely black;
- ``I;16*`` (16-bit), ``I`` (32-bit int) and ``F`` (float), one rule for all three: stretched
  linearly from the image's own minimum and maximum to 0-255, and rounded (a constant image
  becomes black; NaN and infinite pixels black too). A fixed ``255 / 65535`` would leave the usual
  microscopy or machine-vision image, 10 or 12 bits of a camera stored in 16, at most 16 grey
  levels out of 256; its own range keeps all 256, as a viewer's auto-contrast (Fiji) shows it. The
  price: two images differ in brightness only by their own ranges, so convert the files to 8 bits
  beforehand where absolute intensities matter. A file read so is named once per process (INFO).

A file of several frames (an animated GIF, PNG or WebP, a multi-page TIFF) is read as its first
frame, and the first such file is named, with its frame count, in a warning once per process;
where a run knows its images beforehand, :func:`warn_multi_frame_files` names every one in that
warning (the data check lists every one too: :mod:`sparsercnn.data.image_check`; ``predict``
reads an animated GIF or PNG as a video, and the server refuses such an upload). A JPEG whose
MPO extension holds previews or a depth map of the same shot counts as one frame.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sparsercnn.data.transforms import resize_image
from sparsercnn.structures import PixelMap
from sparsercnn.text import counted, listing

logger = logging.getLogger(__name__)

# Those of formats whose files may hold several frames or pages: GIF, APNG, WebP, TIFF.
MULTI_FRAME_SUFFIXES = (".png", ".tif", ".tiff", ".webp", ".gif")
_ORIENTATION_TAG = 0x0112
# EXIF orientations 5-8 rotate by 90 or 270 degrees: the displayed image has w and h swapped.
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})
# Orientations whose displayed x (y) axis runs against the stored one (after the transpose).
_X_MIRRORING_ORIENTATIONS = frozenset({2, 3, 6, 7})
_Y_MIRRORING_ORIENTATIONS = frozenset({3, 4, 7, 8})
# Modes of more than 8 bits per pixel, stretched by their own range (module docstring).
_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# What this process has said once (module docstring): a multi-frame file, a high-depth one.
_NOTED: set[str] = set()


class ImageReadError(OSError):
    """An image file is missing, unreadable or not an image.

    Attributes:
        path: the offending file, as given by the caller.
        reason: why, in words, without the file's name (``"the file is empty (0 bytes): copy
            or export it again"``): what a list of such files gives beside each name.
    """

    def __init__(self, message: str, path: str = "", reason: str = "") -> None:
        # A single argument keeps OSError from reading it as (errno, strerror) and lets the
        # DataLoader re-raise worker errors as this type (it calls ``type(exc)(message)``).
        super().__init__(message)
        self.path = path
        self.reason = reason or message


def unreadable_listing(errors: Sequence[ImageReadError], before: Sequence[str] = ()) -> str:
    """The files of ``errors`` and why each cannot be read, for a message (the first 10, and
    how many): ``a.jpg (the file is empty (0 bytes): copy or export it again), b.png (...)``;
    ``before`` names other inputs lost, listed first (``"frame folder f (...)"``)."""
    return listing([*before, *(f"{error.path} ({error.reason})" for error in errors)])


def none_read_error(
    what: str, errors: Sequence[ImageReadError], before: Sequence[str] = ()
) -> ImageReadError:
    """The error of a run that could read none of its files, ``what`` naming them (``"2
    images"``, ``"3 frames to predict in frame folder frames"``): ``none of the {what} could be
    read: `` and :func:`unreadable_listing` (``before``, the other inputs lost, first)."""
    listed = unreadable_listing(errors, before=before)
    return ImageReadError(f"none of the {what} could be read: {listed}")


class ImageHeader(NamedTuple):
    """What the header of an image file says, sizes in display orientation (after EXIF).

    Attributes:
        height, width: size of the image as :func:`load_image` returns it.
        orientation: EXIF orientation tag (1-8, 1 when absent or unreadable).
        format: Pillow's format name (``"JPEG"``, ``"PNG"``, ...).
        mode: Pillow's mode of the stored pixels (``"RGB"``, ``"L"``, ``"I;16"``, ...).
        num_frames: frames or pages (animation, multi-page TIFF) of which only the first is
            read; 1 for a still image (and a JPEG whose MPO extension holds previews).
    """

    height: int
    width: int
    orientation: int
    format: str
    mode: str
    num_frames: int = 1

    @property
    def frames_in_words(self) -> str:
        """The frames in words, for messages: ``"3 frames (an animated GIF)"``, ``"3 frames
        (pages of a TIFF)"``."""
        return _frames_in_words(self.format, self.num_frames)

    @property
    def turned(self) -> bool:
        """Whether the orientation turns the stored pixels by 90 or 270 degrees (5-8): the
        stored size is the displayed one with width and height swapped."""
        return self.orientation in _TRANSPOSING_ORIENTATIONS


class DecodedImage(NamedTuple):
    """An image as :func:`decode_image` returns it.

    Attributes:
        image: 8-bit RGB in display orientation, possibly at a reduced scale.
        full_size: ``(h, w)`` of the file's pixels in display orientation.
        pixel_map: how ``image``'s pixels map to the full image's; ``None`` when by the ratio
            of sizes (``image`` is the full image, or a plain resize of it).
    """

    image: Image.Image
    full_size: tuple[int, int]
    pixel_map: PixelMap | None = None

    def input_map(self, input_size: tuple[int, int]) -> PixelMap | None:
        """The map from the pixels of ``image`` resized to ``input_size`` ``(h, w)`` (the model's
        input) to the full image's: :attr:`pixel_map` composed with that resize, ``None`` when
        by the ratio of sizes (no pixel map)."""
        if self.pixel_map is None:
            return None
        return self.pixel_map.after_resize((self.image.height, self.image.width), input_size)

    def rescale_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """``(h, w)`` that detections on ``image`` resized to ``input_size`` are rescaled to by
        the ratio of sizes (a post-processor's ``original_sizes``): ``full_size`` when that is
        exact, else ``input_size`` itself (the identity), whose boxes :meth:`input_map` then
        takes to the full image (as evaluation does:
        :attr:`~sparsercnn.structures.Batch.rescale_sizes`)."""
        return self.full_size if self.pixel_map is None else input_size

    def resized(self, size: tuple[int, int]) -> DecodedImage:
        """``image`` resized to ``size`` ``(h, w)``
        (:func:`~sparsercnn.data.transforms.resize_image`), with the pixel map that takes its
        pixels to the full image's (:meth:`input_map`; none when by the ratio of sizes)."""
        return DecodedImage(resize_image(self.image, size), self.full_size, self.input_map(size))


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Decode an image file in full to 8-bit RGB in display orientation.

    Args:
        path: image file of any format Pillow reads.

    Returns:
        A loaded ``PIL.Image.Image`` in mode ``"RGB"``, EXIF orientation applied (see the module
        docstring for how other modes are converted).

    Raises:
        ImageReadError: the file is missing, truncated, not an image or in an unsupported mode.
    """
    return decode_image(path).image


def decode_image(
    path: str | os.PathLike[str],
    at_least: tuple[int, int] | Callable[[int, int], tuple[int, int]] | None = None,
) -> DecodedImage:
    """Decode an image file to 8-bit RGB in display orientation, at a reduced scale if allowed.

    Args:
        path: image file of any format Pillow reads.
        at_least: ``(h, w)`` in display orientation that the caller resizes the image to at most,
            or a function of the image's display ``(h, w)`` giving it: a JPEG at least twice as
            large in both sides is then decoded at the smallest of 1/2, 1/4 and 1/8 of its size
            that keeps both sides at or above these (each side rounded up). Other formats, and
            JPEGs too small to halve, decode in full. ``None``: in full.

    Raises:
        ImageReadError: the file is missing, truncated, not an image or in an unsupported mode.
    """
    name = os.fspath(path)
    with _opened_image(name) as opened:
        return _decode_opened(opened, name, at_least)


def load_image_and_header(path: str | os.PathLike[str]) -> tuple[Image.Image, ImageHeader]:
    """:func:`load_image` and :func:`read_image_header` of a file, opened once: what the data
    check (:mod:`sparsercnn.data.image_check`) reads of every image.

    Returns:
        The image as :func:`load_image` returns it, and its header, whose ``height`` and
        ``width`` are the decoded image's.

    Raises:
        ImageReadError: the file is missing, truncated, not an image or in an unsupported mode.
    """
    name = os.fspath(path)
    with _opened_image(name) as opened:
        header = _header(opened)
        image = _decode_opened(opened, name, None).image
    return image, header._replace(height=image.height, width=image.width)


def _decode_opened(
    opened: Image.Image,
    name: str,
    at_least: tuple[int, int] | Callable[[int, int], tuple[int, int]] | None,
) -> DecodedImage:
    """:func:`decode_image` of the file ``name``, open as ``opened`` (Pillow's errors pass)."""
    stored_width, stored_height = opened.size
    orientation, reduction = 1, 1
    if at_least is not None:
        orientation = _orientation(opened)
        transposed = orientation in _TRANSPOSING_ORIENTATIONS
        if callable(at_least):
            display = (stored_height, stored_width)
            at_least = at_least(*(display[::-1] if transposed else display))
        height, width = at_least
        if transposed:
            height, width = width, height
        # JPEG's draft picks the DCT scale; every other format ignores it.
        drafted = opened.draft(opened.mode, (max(1, width), max(1, height)))
        if drafted is not None and opened.size != (stored_width, stored_height):
            # draft's box is the whole image in scaled pixels: (0, 0, W / k, H / k).
            reduction = round(stored_width / drafted[1][2])
    reduced = opened.size != (stored_width, stored_height)
    _note_reading(opened, name)
    opened.load()
    image = to_rgb(_apply_exif_orientation(opened, name))
    # Closing the file also invalidates ``opened``: never hand it out.
    image = opened.copy() if image is opened else image
    if not reduced:
        return DecodedImage(image, (image.height, image.width))
    full_size = (stored_height, stored_width)
    if orientation in _TRANSPOSING_ORIENTATIONS:
        full_size = (stored_width, stored_height)
    return DecodedImage(image, full_size, _reduced_pixel_map(full_size, reduction, orientation))


@contextmanager
def _opened_image(name: str) -> Iterator[Image.Image]:
    """The image file ``name`` opened by Pillow for the block, closed after it; Pillow's errors,
    in opening it and in the block (decoding, reading a header), raise as the
    :class:`ImageReadError` naming the file (:func:`_read_error`).

    Raises:
        ImageReadError: the file is missing, truncated, not an image or in an unsupported mode.
    """
    try:
        with Image.open(name) as opened:
            yield opened
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise _read_error(name, exc) from exc


def _read_error(name: str, exc: BaseException) -> ImageReadError:
    """The error of a file that cannot be opened or decoded, saying why in words."""
    if isinstance(exc, FileNotFoundError) and not os.path.islink(name):
        reason = "not found: check the path"
        return ImageReadError(f"image file {name!r} was {reason}", name, reason)
    reason = _read_error_reason(name, exc)
    return ImageReadError(f"cannot read image {name!r}: {reason}", name, reason)


def _read_error_reason(name: str, exc: BaseException) -> str:
    """Why the file ``name`` cannot be read, in words (:func:`_read_error`)."""
    if isinstance(exc, FileNotFoundError):  # a link whose target is gone
        return f"it is a link to {os.readlink(name)!r}, which does not exist: fix or remove it"
    if isinstance(exc, IsADirectoryError):
        return "it is a folder, not a file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, Image.DecompressionBombError):
        return (
            f"{exc} (Pillow's guard against decompression bombs); if the file is trusted, "
            "downscale it, or raise PIL.Image.MAX_IMAGE_PIXELS in Python"
        )
    if isinstance(exc, UnidentifiedImageError):
        if _is_empty(name):
            return "the file is empty (0 bytes): copy or export it again"
        return "not an image, or a damaged one (Pillow cannot identify its format)"
    if isinstance(exc, ValueError):  # Pillow's own words: a mode with no RGB, a bad tile
        return str(exc)
    return f"the file is truncated or damaged ({exc}): copy or export it again"


def _is_empty(name: str) -> bool:
    try:
        return os.path.getsize(name) == 0
    except OSError:
        return False


def multi_frame_format(path: str | os.PathLike[str]) -> str | None:
    """Pillow's format name (``"GIF"``, ``"PNG"``, ...) of a file of several frames or pages
    (:attr:`ImageHeader.num_frames` above 1), None for a still image. It looks no further than
    the second frame, where :func:`read_image_header` counts a GIF's frames to its end.

    Raises:
        ImageReadError: the file is missing or its header is not a readable image header.
    """
    with _opened_image(os.fspath(path)) as image:
        return (image.format or "") if _is_multi_frame(image) else None


def warn_multi_frame_files(paths: Sequence[str | os.PathLike[str]]) -> None:
    """Warn, naming every one, of the files of ``paths`` that have several frames or pages
    (:func:`warn_multi_frame`): the images a run is about to read. Only the headers of files
    with a suffix of :data:`MULTI_FRAME_SUFFIXES` are read; a file whose header cannot be read
    is left to its reading to report."""
    headers = []
    for path in paths:
        if not os.fspath(path).lower().endswith(MULTI_FRAME_SUFFIXES):
            continue
        try:
            headers.append((os.fspath(path), read_image_header(path)))
        except ImageReadError:
            continue
    warn_multi_frame(headers)


def warn_multi_frame(headers: Iterable[tuple[str, ImageHeader]]) -> None:
    """One warning naming each file (the first 10, and how many) whose header says it has
    several frames or pages, of which only the first is read: the images a run is about to read,
    their headers read beforehand. It stands for the once-per-process warning of reading such a
    file, which then names the files read at DEBUG only.

    Args:
        headers: each file's name, as messages give it, and its header
            (:func:`read_image_header`).
    """
    named = [
        f"{name}: {header.frames_in_words}" for name, header in headers if header.num_frames > 1
    ]
    if not named:
        return
    _NOTED.add("frames")
    logger.warning(
        "%s several frames or pages, of which only the first is read, as for every such file: %s",
        counted(len(named), "image has", "images have"),
        listing(named),
    )


def _is_multi_frame(image: Image.Image) -> bool:
    """Whether an opened image has several frames or pages: Pillow's ``is_animated``, which
    stops at the second frame where ``n_frames`` reads a GIF to its end."""
    if image.format == "MPO":  # the other pictures are the same shot's previews or depth map
        return False
    try:
        return bool(getattr(image, "is_animated", False))
    except (OSError, ValueError, SyntaxError, EOFError):  # a damaged second frame: decoding says
        return False


def _num_frames(image: Image.Image) -> int:
    """Frames or pages of an opened image (:attr:`ImageHeader.num_frames`)."""
    if not _is_multi_frame(image):
        return 1
    try:
        return max(2, int(getattr(image, "n_frames", 2)))
    except (OSError, ValueError, SyntaxError, EOFError):  # a damaged later frame: 2 at least
        return 2


def _frames_in_words(image_format: str, num_frames: int) -> str:
    """:attr:`ImageHeader.frames_in_words` of a file of Pillow's format ``image_format``."""
    kind = "pages of a TIFF" if image_format == "TIFF" else f"an animated {image_format}"
    return f"{num_frames} frames ({kind})"


def _note_reading(image: Image.Image, name: str) -> None:
    """Say once per process that a multi-frame file is read as its first frame (warning) and
    that a high-depth one is stretched by its own range (info); later files at DEBUG."""
    if _is_multi_frame(image):
        level = logging.DEBUG if "frames" in _NOTED else logging.WARNING
        _NOTED.add("frames")
        if logger.isEnabledFor(level):  # counting reads a GIF to its end
            logger.log(
                level,
                "image %r has %s: only the first is read, as for every such file",
                name,
                _frames_in_words(image.format or "", _num_frames(image)),
            )
    if image.mode in _HIGH_DEPTH_MODES:
        level = logging.DEBUG if "depth" in _NOTED else logging.INFO
        _NOTED.add("depth")
        logger.log(
            level,
            "image %r has more than 8 bits per pixel (mode %s): scaled from its own minimum and "
            "maximum to 0-255, as every such image is (convert the files to 8 bits beforehand "
            "for a fixed scale)",
            name,
            image.mode,
        )


def _reduced_pixel_map(full_size: tuple[int, int], reduction: int, orientation: int) -> PixelMap:
    """The pixel map of a JPEG decoded at ``1 / reduction`` and then turned by its EXIF
    ``orientation``; ``full_size`` ``(h, w)`` in display orientation.

    libjpeg's output pixel ``i`` covers full pixels ``[k i, k (i + 1))``: ``ceil(n / k)`` of
    them cover ``k * ceil(n / k)``, the last one past the image's far edge. An axis that the
    orientation mirrors puts that partial pixel first, so its grid starts that many full pixels
    before 0.
    """
    height, width = full_size
    overhang_x = reduction * -(-width // reduction) - width
    overhang_y = reduction * -(-height // reduction) - height
    return PixelMap(
        float(reduction),
        float(reduction),
        -float(overhang_x) if orientation in _X_MIRRORING_ORIENTATIONS else 0.0,
        -float(overhang_y) if orientation in _Y_MIRRORING_ORIENTATIONS else 0.0,
    )


def read_image_header(path: str | os.PathLike[str]) -> ImageHeader:
    """Read an image's size, orientation, format and mode from its header (no pixel decoding).

    Raises:
        ImageReadError: the file is missing or its header is not a readable image header.
    """
    with _opened_image(os.fspath(path)) as image:
        return _header(image)


def _header(image: Image.Image) -> ImageHeader:
    """:func:`read_image_header` of an opened image (Pillow's errors pass)."""
    width, height = image.size
    orientation = _orientation(image)
    if orientation in _TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    return ImageHeader(
        height, width, orientation, image.format or "", image.mode, _num_frames(image)
    )


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a PIL image of any mode to 8-bit RGB (rules in the module docstring).

    Raises:
        ValueError: Pillow cannot convert this mode to RGB.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _HIGH_DEPTH_MODES:
        return Image.fromarray(_stretch_to_uint8(np.asarray(image))).convert("RGB")
    if mode == "La":  # premultiplied; Pillow converts it to nothing but LA
        image = image.convert("LA")
    if image.mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        # Through RGBA: Pillow warns when converting a palette with transparency straight to RGB.
        image = image.convert("RGBA")
    return image.convert("RGB")


def _stretch_to_uint8(values: np.ndarray) -> np.ndarray:
    """A 2-D array of any number type, stretched linearly from its finite minimum and maximum to
    uint8 0-255; non-finite pixels and a constant image become 0."""
    data = values.astype(np.float64)
    finite = np.isfinite(data)
    if not finite.any():
        return np.zeros(data.shape, np.uint8)
    low, high = float(data[finite].min()), float(data[finite].max())
    scale = 255.0 / (high - low) if high > low else 0.0
    scaled = np.where(finite, (data - low) * scale, 0.0)
    # The clip only guards against rounding: the stretch already maps into [0, 255].
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _orientation(image: Image.Image) -> int:
    """EXIF orientation (1-8) of an opened image; 1 when absent or malformed."""
    if image.format == "PNG" and "exif" not in image.info:
        # Pillow would decode the whole PNG to look for an EXIF chunk after the pixel data.
        return 1
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception as exc:  # malformed EXIF raises many types (struct.error, KeyError, ...)
        logger.debug("ignoring unreadable EXIF data: %s", exc)
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _apply_exif_orientation(image: Image.Image, name: str) -> Image.Image:
    """Rotate/flip a loaded image as its EXIF orientation tag says."""
    try:
        transposed = ImageOps.exif_transpose(image)
    except Exception as exc:  # malformed EXIF: keep the stored orientation rather than fail
        logger.warning("ignoring malformed EXIF orientation of %r: %s", name, exc)
        return image
    return transposed if transposed is not None else image
