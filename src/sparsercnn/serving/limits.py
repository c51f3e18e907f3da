"""What one request may hold, and the ASGI middleware that enforces the body size.

:class:`Limits` holds the server's ``--max-image-bytes``, ``--max-image-pixels`` and
``--max-images``; the body limit follows from them (every image at its byte limit, base64
encoded with line breaks, plus room for the other fields). :class:`BodySizeLimit` refuses a
larger body with 413 before the application reads it (by its Content-Length) or while it reads
it (chunked bodies).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from sparsercnn.serving.errors import BodyTooLarge, body_too_large_message, error_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Room for form fields, multipart headers and JSON keys beside the images.
BODY_OVERHEAD_BYTES = 64 * 1024
# Room for one image's quotes, comma and data: URL prefix (JSON) or part headers (multipart).
PER_IMAGE_OVERHEAD_BYTES = 256


@dataclass(frozen=True)
class Limits:
    """Per-request limits.

    Attributes:
        max_image_bytes: most bytes of one encoded image file.
        max_image_pixels: most pixels (``height * width``, from the header) of one image.
        max_images: most images in one ``/v1/detect`` request.
    """

    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    max_images: int = 16

    def __post_init__(self) -> None:
        for name in ("max_image_bytes", "max_image_pixels", "max_images"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def max_body_bytes(self) -> int:
        """Most bytes of a request body: every image at its limit, base64 encoded (4/3) as
        ``base64`` writes it (lines of 76 characters, each ending in a JSON-escaped ``\\r\\n``),
        in quotes with a ``data:`` URL prefix."""
        encoded = -(-self.max_image_bytes // 3) * 4
        wrapped = encoded + -(-encoded // 76) * len(r"\r\n")
        return self.max_images * (wrapped + PER_IMAGE_OVERHEAD_BYTES) + BODY_OVERHEAD_BYTES


class BodySizeLimit:
    """ASGI middleware answering 413 to HTTP requests whose body exceeds ``max_bytes``.

    A declared Content-Length above the limit is refused before the body is read; otherwise
    reading past the limit raises :class:`~sparsercnn.serving.errors.BodyTooLarge` inside the
    route, which the application's error handler answers with 413.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = error_response(413, body_too_large_message(self.max_bytes))
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)
