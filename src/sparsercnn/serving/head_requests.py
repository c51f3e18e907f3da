"""``HEAD`` on every ``GET`` route: the ASGI middleware :class:`HeadAsGet`.

FastAPI's ``@app.get`` routes take ``GET`` only, so ``HEAD /health`` (load balancers' health
checks, ``curl -I``) was answered 405. RFC 9110 (section 9.3.2) makes a ``HEAD`` answer the
``GET`` answer's status and headers without its body; routing ``HEAD`` as ``GET`` here gives every
``GET`` route that at once, without a second route (and a duplicate operation in the OpenAPI
schema) per path; :func:`with_head` makes a 405 answer's ``Allow`` list it there too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # limits imports errors, which imports with_head from here
    from sparsercnn.serving.limits import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """ASGI middleware that runs an HTTP ``HEAD`` request as ``GET`` and sends the answer's
    status and headers (``Content-Length`` included) with an empty body.

    A path without ``GET`` answers ``HEAD`` as it answers ``GET`` (405 naming its methods).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        # A copy: the server keeps its own scope, whose HEAD tells it to send no body either.
        await self.app({**scope, "method": "GET"}, receive, headers_only)


def with_head(allow: str) -> str:
    """The methods of an ``Allow`` header (``"GET"``, ``"GET, HEAD"``, ``"POST"``) with ``HEAD``
    after ``GET`` where ``GET`` is listed without it: :class:`HeadAsGet` answers ``HEAD`` on every
    ``GET`` route, which FastAPI's routes do not list (RFC 9110, section 10.2.1: ``Allow`` lists
    the methods the path supports)."""
    methods = [method.strip() for method in allow.split(",") if method.strip()]
    if "GET" in methods and "HEAD" not in methods:
        methods.insert(methods.index("GET") + 1, "HEAD")
    return ", ".join(methods)
