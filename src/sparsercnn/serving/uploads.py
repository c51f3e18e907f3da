"""Uploaded image bytes to RGB PIL images, through the package's one decoder.

The bytes go to a temporary file read by :func:`~sparsercnn.data.image_io.read_image_header`
(the pixel limit is checked on the header's size, before any pixel is decoded) and then
:func:`~sparsercnn.data.image_io.decode_image` (a truncated file fails; EXIF orientation, mode
conversion and a large JPEG's reduced scale as in ``predict`` and evaluation). Every failure is
an :class:`~sparsercnn.serving.errors.ApiError` naming the field.
"""

from __future__ import annotations

import base64
import binascii
import tempfile
from collections.abc import Callable

from PIL import Image

from sparsercnn.data.image_io import DecodedImage, ImageReadError, decode_image, read_image_header
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
        ApiError: 400 empty, not an image, truncated or damaged; 413 over a limit.
    """
    label = f"{field} ({file_name})" if file_name else field
    if not data:
        raise ApiError(400, f"{label} is empty (0 bytes); send the image file's contents", field)
    if len(data) > limits.max_image_bytes:
        raise ApiError(
            413,
            f"{label} is {len(data)} bytes, more than the limit of {limits.max_image_bytes}; "
            "send a smaller file",
            field,
        )
    with tempfile.NamedTemporaryFile(prefix="sparsercnn-upload-") as handle:
        handle.write(data)
        handle.flush()
        try:
            header = read_image_header(handle.name)
        except ImageReadError as error:
            if isinstance(error.__cause__, Image.DecompressionBombError):
                raise ApiError(
                    413,
                    f"{label} has over {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels (Pillow's "
                    f"decompression-bomb guard), more than the limit of "
                    f"{limits.max_image_pixels}; downscale it first",
                    field,
                ) from None
            raise ApiError(
                400,
                f"{label} is not an image file Pillow can read "
                f"({_reason(error, handle.name)}); send a PNG, JPEG, BMP, TIFF, WebP or GIF file",
                field,
            ) from None
        pixels = header.height * header.width
        if pixels > limits.max_image_pixels:
            raise ApiError(
                413,
                f"{label} is {header.width}x{header.height} = {pixels} pixels, more than the "
                f"limit of {limits.max_image_pixels}; downscale it first",
                field,
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
