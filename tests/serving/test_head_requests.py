"""``HEAD`` on the server's ``GET`` routes: the ``GET`` answer's status and headers, no body."""

from __future__ import annotations

import asyncio

import pytest

from sparsercnn.serving.head_requests import HeadAsGet, with_head
from sparsercnn.serving.limits import Message, Receive, Scope, Send
from tests.serving.conftest import TestClient


@pytest.mark.parametrize("path", ["/health", "/v1/model", "/", "/docs", "/static/app.js"])
def test_get_routes_answer_head_with_the_get_headers_and_no_body(
    client: TestClient, path: str
) -> None:
    """A load balancer's ``HEAD /health`` or ``curl -I`` got 405 from the ``@app.get`` routes."""
    get = client.get(path)
    head = client.head(path)
    assert (head.status_code, get.status_code) == (200, 200)
    assert head.content == b""
    for name in ("content-type", "content-length"):
        assert head.headers[name] == get.headers[name]


def test_head_on_a_post_route_answers_as_get_does(client: TestClient) -> None:
    head = client.head("/v1/detect")
    assert head.status_code == 405 and head.headers["allow"] == "POST"
    assert head.content == b""


@pytest.mark.parametrize("path", ["/health", "/v1/model", "/", "/docs", "/static/app.js"])
def test_a_405_on_a_get_route_lists_head_in_allow_and_in_its_message(
    client: TestClient, path: str
) -> None:
    """``PUT /health`` answered ``Allow: GET``, although every GET route answers HEAD too."""
    put = client.put(path)
    assert put.status_code == 405 and put.headers["allow"] == "GET, HEAD"
    assert (
        f"PUT {path}: the method is not allowed on this path (it takes GET, HEAD)"
        in (put.json()["error"])
    )


@pytest.mark.parametrize(
    ("allow", "expected"),
    [
        ("GET", "GET, HEAD"),
        ("GET, HEAD", "GET, HEAD"),
        ("HEAD, GET", "HEAD, GET"),
        ("GET,POST", "GET, HEAD, POST"),
        ("POST", "POST"),
        ("", ""),
    ],
)
def test_with_head_adds_head_where_get_is_listed(allow: str, expected: str) -> None:
    assert with_head(allow) == expected


def test_the_middleware_runs_head_as_get_and_sends_no_body() -> None:
    """Whatever the server does with a ``HEAD`` answer's body, none leaves the app; the
    server's own scope keeps ``HEAD``."""
    seen: list[str] = []
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["method"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello", "more_body": True})
        await send({"type": "http.response.body", "body": b"!"})

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "HEAD", "path": "/health"}
    asyncio.run(HeadAsGet(app)(scope, receive, send))
    assert seen == ["GET"] and scope["method"] == "HEAD"
    assert [m.get("body") for m in sent] == [None, b"", b""]
    assert sent[1]["more_body"] is True
    scope = {"type": "http", "method": "GET", "path": "/health"}
    asyncio.run(HeadAsGet(app)(scope, receive, send))
    assert sent[-2:][0]["body"] == b"hello"
