"""Uploaded image bytes to RGB PIL images, through the package's one decoder.

The bytes go to a temporary file read by :func:`~sparsercnn.data.image_io.read_image_header`
(the pixel limit is checked on the header's size, before any pixel is decoded, and a file of
several frames is refused: the client would read its first frame's detections as the file's,
where ``predict`` reads each frame of an animated GIF or PNG and names any other such file in a
warning) and then
:func:`~sparsercnn.data.image_io.decode_image` (a truncated file fails; EXIF orientation, mode
conversion and a large JPEG's reduced scale as in ``predict`` and evaluation). Every failure is
an :class:`~sparsercnn.serving.errors.ApiError` naming the field. :func:`at_input_size` then
shrinks the decoded image to the model's input size, so that a request waiting for its batch
holds what the model reads of its images, not their full pixels.
"""

from __future__ import annotations

import base64
import binascii
import re
import tempfile
from collections.abc import Callable

from PIL import Image

from sparsercnn.data.image_io import DecodedImage, ImageReadError, decode_image, read_image_header
from sparsercnn.data.transforms import InferenceTransform
from sparsercnn.serving.errors import ApiError
from sparsercnn.serving.limits import Limits

_URL_SAFE_TO_STANDARD = str.maketrans("-_", "+/")


def decode_upload(
    data: bytes,
    field: str,
    limits: Limits,
    file_name: str | None = None,
    at_least: Callable[[int, int], tuple[int, int]] | None = None,
) -> DecodedImage:
    """Decode one uploaded image file.

    Args:
        data: the encoded file (PNG, JPEG, ... anything Pillow reads).
        field: how the request names it (``images[0]``).
        limits: byte and pixel limits.
        file_name: the upload's file name, added to messages.
        at_least: the size the model's resize needs of an image of a given ``(h, w)``
            (:meth:`~sparsercnn.data.transforms.InferenceTransform.source_size`); ``None``
            decodes in full.

    Returns:
        The RGB image in display orientation, possibly at a reduced scale, and its full size.

    Raises:
        ApiError: 400 empty, not an image, truncated or damaged; 413 over a limit; 415 a file
            of several frames (an animation, a multi-page TIFF), of which the detections of
            one would be answered as the file's.
    """
    label = upload_label(field, file_name)
    if not data:
        raise ApiError(400, f"{label} is empty (0 bytes); send the image file's contents", field)
    check_file_size(len(data), field, file_name, limits.max_image_bytes)
    with tempfile.NamedTemporaryFile(prefix="sparsercnn-upload-") as handle:
        handle.write(data)
        handle.flush()
        try:
            header = read_image_header(handle.name)
        except ImageReadError as error:
            cause = error.__cause__
            if isinstance(cause, Image.DecompressionBombError):
                # Over twice Pillow's MAX_IMAGE_PIXELS, which the service keeps at least the
                # limit: the guard stands for our own refusal.
                raise _too_many_pixels(label, field, limits, _bomb_pixels(cause)) from None
            raise ApiError(
                400,
                f"{label} is not an image file Pillow can read "
                f"({_reason(error, handle.name)}); send a PNG, JPEG, BMP, TIFF, WebP or GIF file",
                field,
            ) from None
        if header.num_frames > 1:
            # Its first frame's detections, answered 200, would read as the whole file's.
            raise ApiError(
                415,
                f"{label} has {header.frames_in_words}; this API detects objects in one image: "
                "send the frame you want as a still image (PNG or JPEG)",
                field,
            )
        if header.height * header.width > limits.max_image_pixels:
            raise _too_many_pixels(
                label, field, limits, header.height * header.width, (header.width, header.height)
            )
        try:
            return decode_image(handle.name, at_least)
        except ImageReadError as error:
            raise ApiError(
                400,
                f"{label} could not be decoded ({_reason(error, handle.name)}): the file is "
                "truncated or damaged; send the complete file",
                field,
            ) from None


def check_file_size(size: int, field: str, file_name: str | None, max_image_bytes: int) -> None:
    """Refuse an image file of ``size`` bytes over ``max_image_bytes`` (``--max-image-bytes``).

    Raises:
        ApiError: 413 naming the field (and file name).
    """
    if size > max_image_bytes:
        raise ApiError(
            413,
            f"{upload_label(field, file_name)} is {size} bytes, more than the limit of "
            f"{max_image_bytes}; send a smaller file",
            field,
        )


def _too_many_pixels(
    label: str, field: str, limits: Limits, pixels: str | int, size: tuple[int, int] | None = None
) -> ApiError:
    """The 413 of an image over ``limits.max_image_pixels``, one sentence for both refusals:
    "has N pixels (WxH)" where the header gave its displayed ``(width, height)``, "has N pixels"
    (or "has over N pixels") where Pillow's decompression-bomb guard refused it first and only
    its count is known (:func:`_bomb_pixels`)."""
    shape = f" ({size[0]}x{size[1]})" if size is not None else ""
    return ApiError(
        413,
        f"{label} has {pixels} pixels{shape}, more than the limit of "
        f"{limits.max_image_pixels}; downscale it first",
        field,
    )


def _bomb_pixels(error: Image.DecompressionBombError) -> str:
    """How many pixels the image Pillow's decompression-bomb guard refused has, as its message
    says ("Image size (196000000 pixels) exceeds limit of ..."), or "over" its limit where the
    message says no count. A count, not the stored width x height: the same for any EXIF
    orientation."""
    found = re.search(r"\((\d+) pixels\)", str(error))
    return found.group(1) if found else f"over {2 * (Image.MAX_IMAGE_PIXELS or 0)}"


def upload_label(field: str, file_name: str | None) -> str:
    """How messages name an upload: ``images[1] (photo.jpg)``, or ``images[1]``."""
    return f"{field} ({file_name})" if file_name else field


def at_input_size(decoded: DecodedImage, transform: InferenceTransform) -> DecodedImage:
    """``decoded`` resized now as the predictor would resize it, when that makes it smaller.

    The predictor resizes every input with ``transform`` (:meth:`InferenceTransform.image_tensor`:
    :func:`~sparsercnn.data.transforms.resize_image` to :meth:`InferenceTransform.output_size`);
    doing it here, at upload, lets a queued request hold its images at the model's input size
    (a 7000x5000 PNG: 105 MB decoded, 58 kB for a 160-px model). The predictor's own resize of
    the result is then a no-op, so the model gets the same pixels, and the detections reach the
    upload's pixels as they did from the decoded image: by the ratio of sizes to ``full_size``,
    or for a JPEG decoded at a reduced scale by its pixel map composed with the resize
    (:meth:`~sparsercnn.data.image_io.DecodedImage.resized`), the very map the predictor
    composes from the decoded image.

    Kept as it is: an image the resize would not make smaller, and one whose resized size the
    transform would resize again.
    """
    image = decoded.image
    size = transform.output_size(image.height, image.width)
    if size[0] * size[1] >= image.height * image.width:
        return decoded
    resized = decoded.resized(size)
    if transform.output_size(resized.image.height, resized.image.width) != size:
        return decoded  # the predictor would resize the resized image: keep what it resizes
    return resized


def decode_base64(text: str, field: str) -> bytes:
    """The bytes of a base64 string, with or without a ``data:...;base64,`` URL prefix.

    Whitespace is ignored (``base64`` and e-mail tools wrap lines at 76 characters), as are
    missing ``=`` padding and the URL-safe alphabet (``-`` and ``_`` for ``+`` and ``/``): each
    still gives the one byte string it encodes.

    Raises:
        ApiError: 400 when ``text`` is not base64.
    """
    text = "".join(text.split())
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    text = text.translate(_URL_SAFE_TO_STANDARD)
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ApiError(
            400, f"{field} is not valid base64 ({error}); encode the image file with base64", field
        ) from None


def _reason(error: ImageReadError, temporary_name: str) -> str:
    """Pillow's reason, without the temporary file's name."""
    cause = error.__cause__
    reason = str(cause) if cause is not None else "unreadable"
    return reason.replace(f" {temporary_name!r}", "").replace(temporary_name, "the upload")
