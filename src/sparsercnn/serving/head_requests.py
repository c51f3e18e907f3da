"""``HEAD`` on every ``GET`` route: the ASGI middleware :class:`HeadAsGet`.

FastAPI's ``@app.get`` routes take ``GET`` only, so ``HEAD /health`` (load balancers' health
checks, ``curl -I``) was answered 405. RFC 9110 (section 9.3.2) makes a ``HEAD`` answer the
``GET`` answer's status and headers without its body; routing ``HEAD`` as ``GET`` here gives every
``GET`` route that at once, without a second route (and a duplicate operation in the OpenAPI
schema) per path.
"""

from __future__ import annotations

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
