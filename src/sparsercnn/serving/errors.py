"""The server's error answers: one JSON shape, ``{"error": MESSAGE, "field": NAME | null}``.

Route code raises :class:`ApiError` for bad input (a 4xx status and a message naming the field
and what to do); :func:`install_error_handlers` turns it, Starlette's own HTTP errors (unknown
route and wrong method, whose messages name the request and list the server's endpoints), a
shutdown or a full queue (503) and unexpected failures into that shape, so a client always gets
JSON and the server keeps serving. A client that closes its connection before its body is read is
logged in one line, not as a server failure.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Route

from sparsercnn.serving.head_requests import with_head

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """A request the server refuses.

    Args:
        status: the HTTP status (400 bad value, 413 too large, 415 wrong content type, ...).
        message: what is wrong and what to do, naming the field.
        field: the offending field (``images[1]``, ``stages``), when there is one.
    """

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


class BodyTooLarge(Exception):
    """A request body passed the size limit while it was being read (no Content-Length)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes)
        self.max_bytes = max_bytes


class BatcherClosed(RuntimeError):
    """The request batcher was closed (the server is shutting down) before it ran a request."""


class BatcherFull(RuntimeError):
    """The request batcher's queue holds as many images as it may (the server is busy)."""


def error_response(
    status: int,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers)


def endpoints(app: FastAPI) -> str:
    """The routes of ``app`` by path, as ``GET /, GET /health, ..., POST /v1/detect`` (HEAD
    left out)."""
    routes = sorted((r for r in app.routes if isinstance(r, Route)), key=lambda r: r.path)
    return ", ".join(
        f"{method} {route.path}"
        for route in routes
        for method in sorted(route.methods or ())
        if method != "HEAD"
    )


def http_error_message(request: Request, error: StarletteHTTPException) -> str:
    """What a client is told of Starlette's own HTTP errors: an unknown path (404) or method
    (405) names the request, the methods the path takes (``Allow``) and the endpoints."""
    asked = f"{request.method} {request.url.path}"
    listed = f"this server answers {endpoints(request.app)}"
    if error.status_code == 404:
        return f"{asked}: no such path; {listed}"
    if error.status_code == 405:
        allowed = _allowed_methods(error)
        takes = f" (it takes {allowed})" if allowed else ""
        return f"{asked}: the method is not allowed on this path{takes}; {listed}"
    return str(error.detail)


def _allowed_methods(error: StarletteHTTPException) -> str | None:
    """The ``Allow`` header of a 405 ``error``, ``HEAD`` included wherever ``GET`` is
    (:func:`~sparsercnn.serving.head_requests.with_head`); None where it has none."""
    allowed = (error.headers or {}).get("Allow")
    return with_head(allowed) if allowed is not None else None


def body_too_large_message(max_bytes: int) -> str:
    return (
        f"request body is larger than {max_bytes} bytes; send fewer or smaller images "
        "(the server's --max-image-bytes and --max-images set this limit)"
    )


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with the JSON shape of this module."""

    async def api_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiError)
        return error_response(error.status, error.message, error.field)

    async def too_large(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, BodyTooLarge)
        return error_response(413, body_too_large_message(error.max_bytes))

    async def shutting_down(request: Request, error: Exception) -> JSONResponse:
        return error_response(503, f"{error}; send the request again once the server is back")

    async def busy(request: Request, error: Exception) -> JSONResponse:
        return error_response(503, f"{error}; send the request again in a moment")

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        # Allow (405) is part of the answer (RFC 9110), and the message repeats it.
        headers = dict(error.headers or {})
        allowed = _allowed_methods(error)
        if allowed is not None:
            headers["Allow"] = allowed
        return error_response(
            error.status_code, http_error_message(request, error), headers=headers or None
        )

    async def client_gone(request: Request, error: Exception) -> JSONResponse:
        # Not a server failure: without this handler the server logged a traceback as an
        # "Exception in ASGI application". The answer goes nowhere (uvicorn drops it).
        logger.info(
            "%s %s: the client closed the connection before its request body was read",
            request.method,
            request.url.path,
        )
        return error_response(400, "the client closed the connection before the body was read")

    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        # Starlette re-raises the error after this answer, for the server to log it.
        return error_response(500, f"internal error: {type(error).__name__}: {error}")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(BodyTooLarge, too_large)
    app.add_exception_handler(BatcherClosed, shutting_down)
    app.add_exception_handler(BatcherFull, busy)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(Exception, unexpected)
