"""An HTTP server on 127.0.0.1 with Range support, serving the bytes a download test gives it
and recording the requests it saw (the ``serve`` fixture of the weights tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal


@dataclass
class WeightsServer:
    """What the test server serves and what it saw (:func:`serving`)."""

    payload: bytes
    truncate_first: int | None = None  # bytes sent by the first response before hanging up
    honour_range: bool = True
    # How a body's end is told: its Content-Length, chunks (HTTP/1.1), or closing the connection
    framing: Literal["length", "chunked", "close"] = "length"
    delay: float = 0.0  # seconds before each response, so that concurrent requests overlap
    # (status, Retry-After header or None) answered to the first requests, one each
    errors: list[tuple[int, str | None]] = field(default_factory=list)
    ranges: list[str | None] = field(default_factory=list)
    url: str = ""


def handler(state: WeightsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not self.path.endswith(".pth"):
                self.send_error(404)
                return
            # Chunks are HTTP/1.1 (the connection still closes after the response: urllib asks so)
            self.protocol_version = "HTTP/1.1" if state.framing == "chunked" else "HTTP/1.0"
            requested = self.headers.get("Range")
            state.ranges.append(requested)
            time.sleep(state.delay)
            if state.errors:
                status, retry_after = state.errors.pop(0)
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = 0
            if requested and state.honour_range:
                start = int(requested.removeprefix("bytes=").split("-")[0])
                if start >= len(state.payload):
                    self.send_error(416)
                    return
                self.send_response(206)
                end = len(state.payload) - 1
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(state.payload)}")
            else:
                self.send_response(200)
            body = state.payload[start:]
            cut = state.truncate_first is not None and len(state.ranges) == 1
            if cut:
                body = body[: state.truncate_first]
                self.close_connection = True
            if state.framing == "length":
                self.send_header("Content-Length", str(len(state.payload) - start))
            elif state.framing == "chunked":
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if state.framing != "chunked":
                self.wfile.write(body)
                return
            if body:
                self.wfile.write(f"{len(body):x}\r\n".encode() + body + b"\r\n")
            # Cut: the next chunk's size line and a byte of it, then the connection closes.
            self.wfile.write(b"10\r\nx" if cut else b"0\r\n\r\n")

        def log_message(self, format: str, *args: object) -> None:
            del format, args

    return Handler


@contextmanager
def serving() -> Iterator[WeightsServer]:
    """A :class:`WeightsServer` running until the block ends (set ``no_proxy`` for its
    address: a proxy would answer instead)."""
    state = WeightsServer(payload=b"")
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
