"""Reading an image request: multipart uploads or JSON with base64 images, plus parameters.

Both endpoints take their images in a field named ``images`` (repeated file parts, or a JSON
list of base64 strings) and their parameters as query parameters, form fields or JSON keys.
Every name the endpoint does not know is refused (FastAPI would ignore it), as are a parameter
given twice, an empty body, too many images and other content types.
"""

from __future__ import annotations

import json
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartParser
from starlette.requests import ClientDisconnect

from sparsercnn.serving.errors import ApiError, BodyTooLarge
from sparsercnn.serving.uploads import check_file_size, decode_base64, upload_label

IMAGES_FIELD = "images"
# Parts a multipart body may have (before our own count check names the limit).
MULTIPART_SLACK = 16
# Most characters of a bad value repeated in its error message.
MAX_ECHO_CHARS = 60
Options = TypeVar("Options", bound=BaseModel)


@dataclass
class UploadedImage:
    """One image of a request, still encoded.

    Attributes:
        name: the upload's file name, or ``images[i]``.
        field: ``images[i]``.
        data: the encoded file.
        file_name: the upload's file name, when it has one.
    """

    name: str
    field: str
    data: bytes
    file_name: str | None = None

    @property
    def label(self) -> str:
        """How messages name it: ``images[1] (photo.jpg)``, or ``images[1]``."""
        return upload_label(self.field, self.file_name)


async def read_image_request(
    request: Request, options_model: type[Options], max_images: int, max_image_bytes: int
) -> tuple[list[UploadedImage], Options]:
    """The images and validated parameters of ``request``.

    Args:
        request: a ``multipart/form-data`` or ``application/json`` request.
        options_model: the endpoint's parameters (a pydantic model forbidding other names).
        max_images: most images allowed.
        max_image_bytes: most bytes of one image file (multipart files over it are refused
            before they are read into memory; :func:`decode_upload` checks every image).

    Raises:
        ApiError: 400 (malformed, unknown or repeated parameter, bad value, no image),
            413 (more than ``max_images`` images, or a file over ``max_image_bytes``),
            415 (another content type).
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.headers.get("content-length") == "0":
        raise ApiError(400, f"request body is empty; {_how_to_send()}")
    values: dict[str, Any] = {}
    for name, value in request.query_params.multi_items():
        if name == IMAGES_FIELD:  # else "unknown parameter 'images'; ... accepts: images"
            raise ApiError(
                400,
                f"{IMAGES_FIELD} go in the request body, not in the query string; {_how_to_send()}",
                IMAGES_FIELD,
            )
        _put(values, name, value, "query string")
    if content_type == "multipart/form-data":
        images = await _read_multipart(request, values, max_images, max_image_bytes)
    elif content_type == "application/json":
        images = await _read_json(request, values, max_images)
    else:
        raise ApiError(
            415, f"content type {content_type or '(none)'!r} is not accepted; {_how_to_send()}"
        )
    if not images:
        raise ApiError(400, f"no image in the request; {_how_to_send()}", IMAGES_FIELD)
    _check_count(len(images), max_images)
    return images, validate_options(options_model, values)


def validate_options(options_model: type[Options], values: dict[str, Any]) -> Options:
    """``values`` as ``options_model``; unknown names and bad values raise a 400 naming them."""
    known = set(options_model.model_fields) - {IMAGES_FIELD}
    unknown = sorted(set(values) - known)
    if unknown:
        accepted = ", ".join([IMAGES_FIELD, *sorted(known)])
        raise ApiError(
            400, f"unknown parameter {unknown[0]!r}; this endpoint accepts: {accepted}", unknown[0]
        )
    try:
        return options_model.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        message = first["msg"].removeprefix("Value error, ")  # pydantic's prefix to our own
        got = repr(first.get("input"))
        got = got if len(got) <= MAX_ECHO_CHARS else f"{got[:MAX_ECHO_CHARS]}... ({len(got)} chars)"
        raise ApiError(400, f"parameter {field}: {message} (got {got})", field) from None


class _EndCheckingParser(MultiPartParser):
    """starlette's multipart parser, noting whether the body reached its closing boundary:
    python-multipart drops a part the body ends inside of without a word."""

    ended = False

    def on_end(self) -> None:
        self.ended = True


async def _parse_multipart(request: Request, max_images: int) -> FormData:
    """The parts of ``request``'s multipart body (:meth:`Request.form`'s parsing), checked
    to end with the closing boundary.

    Raises:
        ApiError: 400 (malformed, or cut off before its closing boundary), 413 (far more than
            ``max_images`` files).
    """
    try:
        async with aclosing(request.stream()) as stream:
            parser = _EndCheckingParser(
                request.headers, stream, max_files=max_images + MULTIPART_SLACK, max_fields=64
            )
            form = await parser.parse()
    except (BodyTooLarge, ApiError, ClientDisconnect):  # answered by their own handlers
        raise
    except Exception as error:  # python-multipart raises several types on malformed bodies
        detail = str(getattr(error, "detail", None) or error)
        if detail.startswith("Too many files"):  # over max_files: far more than max_images
            raise ApiError(
                413,
                f"over {max_images + MULTIPART_SLACK} images in one request, more than the limit "
                f"of {max_images}; send them in several requests",
                IMAGES_FIELD,
            ) from None
        raise ApiError(400, f"the multipart body could not be parsed: {detail}") from None
    if not parser.ended:
        await form.close()
        raise ApiError(
            400,
            "the multipart body is cut off or malformed: it ends before its closing boundary "
            "line (--BOUNDARY--), inside a part that was not read; send the whole body",
        )
    return form


async def _read_multipart(
    request: Request, values: dict[str, Any], max_images: int, max_image_bytes: int
) -> list[UploadedImage]:
    form = await _parse_multipart(request, max_images)
    try:
        return await _read_parts(form, values, max_images, max_image_bytes)
    finally:
        # The parts' temporary files (on disk past 1 MB) would stay until the answer, queue
        # included, or, on an error, until collected.
        await form.close()


async def _read_parts(
    form: FormData, values: dict[str, Any], max_images: int, max_image_bytes: int
) -> list[UploadedImage]:
    """The image files of ``form``; its other fields go into ``values``."""
    # Counted and sized before any file is read into memory.
    files = [v for n, v in form.multi_items() if n == IMAGES_FIELD and isinstance(v, UploadFile)]
    _check_count(len(files), max_images)
    images: list[UploadedImage] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name != IMAGES_FIELD:
                raise ApiError(
                    400, f"unknown file field {name!r}; send image files as {IMAGES_FIELD!r}", name
                )
            field = f"{IMAGES_FIELD}[{len(images)}]"
            if value.size is not None:
                check_file_size(value.size, field, value.filename, max_image_bytes)
            data = await value.read()
            images.append(UploadedImage(value.filename or field, field, data, value.filename))
        elif name == IMAGES_FIELD:
            raise ApiError(
                400,
                f"{IMAGES_FIELD} must be file parts (multipart files), got a text field; "
                "with curl: -F images=@photo.jpg",
                IMAGES_FIELD,
            )
        else:
            _put(values, name, value, "form fields")
    return images


async def _read_json(
    request: Request, values: dict[str, Any], max_images: int
) -> list[UploadedImage]:
    # Read without Request.body(), which would keep the body for the request's lifetime,
    # queue included: only the decoded images need to stay.
    body = b"".join([chunk async for chunk in request.stream()])
    if not body.strip():
        raise ApiError(400, f"request body is empty; {_how_to_send()}")
    try:
        document = json.loads(body, object_pairs_hook=_object_without_repeated_keys)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, f"request body is not valid JSON ({error})") from None
    except RecursionError:
        raise ApiError(400, "request body is not valid JSON (nested too deeply)") from None
    except ValueError:  # json reads no integer of over 4300 digits
        raise ApiError(400, "request body is not valid JSON (a number is too long)") from None
    if not isinstance(document, dict):
        raise ApiError(
            400, f'the JSON body must be an object like {{"{IMAGES_FIELD}": ["<base64>"]}}'
        )
    encoded = document.pop(IMAGES_FIELD, None)
    if not isinstance(encoded, list) or not all(isinstance(item, str) for item in encoded):
        raise ApiError(
            400, f"{IMAGES_FIELD} must be a list of base64 strings (image files)", IMAGES_FIELD
        )
    for name, value in document.items():
        _put(values, name, value, "JSON body")
    _check_count(len(encoded), max_images)  # before decoding any
    images = []
    for index, text in enumerate(encoded):
        field = f"{IMAGES_FIELD}[{index}]"
        images.append(UploadedImage(field, field, decode_base64(text, field)))
    return images


def _object_without_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's ``pairs`` as a dict; a key given twice is refused (``json`` would keep
    the last value silently)."""
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ApiError(400, f"key {key!r} is given twice in the JSON body; give it once", key)
        document[key] = value
    return document


def _check_count(count: int, max_images: int) -> None:
    if count > max_images:
        raise ApiError(
            413,
            f"{count} images in one request, more than the limit of {max_images}; "
            "split them over several requests",
            IMAGES_FIELD,
        )


def _put(values: dict[str, Any], name: str, value: Any, where: str) -> None:
    if name in values:
        raise ApiError(
            400, f"parameter {name!r} is given twice ({where} and before); give it once", name
        )
    values[name] = value


def _how_to_send() -> str:
    return (
        f"send multipart/form-data with image files in {IMAGES_FIELD!r} (curl -F "
        f'{IMAGES_FIELD}=@photo.jpg) or application/json {{"{IMAGES_FIELD}": ["<base64>"]}}'
    )
