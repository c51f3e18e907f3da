"""``sparsercnn serve``: an HTTP detection server with a web page (needs the ``serve`` extra)."""

from __future__ import annotations

import argparse
import errno
import socket
from typing import TYPE_CHECKING, Any

from sparsercnn.cli.common import (
    add_cuda_graphs_argument,
    add_device_argument,
    add_model_argument,
    add_precision_argument,
    int_at_least,
    user_path,
)

if TYPE_CHECKING:
    import uvicorn

SERVE_EXTRA_HINT = "pip install 'sparsercnn[serve]'"
# On shutdown uvicorn waits for open connections without limit unless told: a slow client would
# stall it. Requests still running after this many seconds are cancelled.
SHUTDOWN_GRACE_SECONDS = 10
DEFAULT_MAX_CONNECTIONS = 64


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve detections over HTTP, with a web page",
        description="Serve a model over HTTP: POST /v1/detect (multipart files or JSON with "
        "base64 images), POST /v1/stages (every stage of one image), GET /v1/model, "
        "GET /health, the API docs at /docs and a page at / that draws the detections and "
        "every refinement stage. Concurrent requests are batched. On Ctrl-C or SIGTERM, "
        f"requests still running after {SHUTDOWN_GRACE_SECONDS} s are cancelled.",
    )
    add_model_argument(parser)
    parser.add_argument(
        "--onnx",
        type=user_path,
        help="ONNX export of --model (of its weights: an export of another checkpoint is "
        "refused), run by onnxruntime on --device (cuda needs the "
        "onnxruntime-gpu package) for requests running every stage; --model runs requests with "
        "fewer stages and the page's stage view (GET /v1/model names both, and the execution "
        "provider)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=int_at_least(0),
        default=8000,
        help="port to listen on (default %(default)s; 0: any free port)",
    )
    parser.add_argument(
        "--max-batch",
        type=int_at_least(1),
        default=8,
        help="most images per batch of concurrent requests (default %(default)s; 1 turns "
        "batching off)",
    )
    parser.add_argument(
        "--max-wait-ms",
        type=int_at_least(0),
        default=10,
        help="how long a batch waits for more requests after its first (ms, default %(default)s)",
    )
    parser.add_argument(
        "--max-queued-images",
        type=int_at_least(1),
        default=128,  # sparsercnn.serving.service.DEFAULT_MAX_QUEUED_IMAGES (imports FastAPI)
        help="most images waiting for the model, each held at the model's input size; a "
        "request past it gets 503 at once (default %(default)s)",
    )
    parser.add_argument(
        "--max-connections",
        type=int_at_least(1),
        default=DEFAULT_MAX_CONNECTIONS,
        help="most open client connections, idle keep-alive ones included: a request on one "
        "past it gets a plain-text 503 from uvicorn at once, before its upload is read, which "
        "bounds the uploads held in memory (default %(default)s)",
    )
    parser.add_argument(
        "--max-images",
        type=int_at_least(1),
        default=16,
        help="most images per request (default %(default)s)",
    )
    parser.add_argument(
        "--max-image-bytes",
        type=int_at_least(1),
        default=20 * 1024 * 1024,
        help="most bytes of one image file (default %(default)s: 20 MiB)",
    )
    parser.add_argument(
        "--max-image-pixels",
        type=int_at_least(1),
        default=40_000_000,
        help="most pixels (height x width) of one image (default %(default)s)",
    )
    add_device_argument(parser)
    add_precision_argument(parser)
    add_cuda_graphs_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn
        from starlette import requests as starlette_requests

        from sparsercnn.serving import Limits, create_app
    except ImportError as error:
        raise ImportError(
            f"sparsercnn serve needs FastAPI and uvicorn ({error}): {SERVE_EXTRA_HINT}"
        ) from error
    if starlette_requests.parse_options_header is None:  # set when python-multipart imports
        raise ImportError(
            f"sparsercnn serve needs python-multipart for uploads: {SERVE_EXTRA_HINT}"
        )
    if args.port > 65535:
        raise ValueError(f"--port {args.port} is not a port; use 1..65535 (0: any free port)")
    # Bound before the model loads: a busy port fails at once, and port 0 is known to print.
    listening = _bind(args.host, args.port)
    with listening:
        limits = Limits(
            max_image_bytes=args.max_image_bytes,
            max_image_pixels=args.max_image_pixels,
            max_images=args.max_images,
        )
        app = create_app(
            args.model,
            onnx_file=args.onnx,
            device=args.device,
            precision=args.precision,
            cuda_graphs=args.cuda_graphs,
            limits=limits,
            max_batch_images=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            max_queued_images=args.max_queued_images,
            max_connections=args.max_connections,
        )
        port = listening.getsockname()[1]
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"serving {args.model} at http://{host}:{port}/ (API docs at /docs)", flush=True)
        uvicorn.Server(server_config(app, args.max_connections)).run(sockets=[listening])
    return 0


def server_config(app: Any, max_connections: int) -> uvicorn.Config:
    """uvicorn's settings for ``app``: at most ``max_connections`` open connections served and
    :data:`SHUTDOWN_GRACE_SECONDS` for running requests on shutdown."""
    import uvicorn

    return uvicorn.Config(
        app,
        log_level="info",
        # uvicorn answers 503 once the open connections, this one included, reach the limit.
        limit_concurrency=max_connections + 1,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )


def _bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: a free one), for uvicorn to listen on.

    Raises:
        ValueError: the address is in use or cannot be bound, naming ``--host``/``--port``.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise ValueError(f"--host {host!r} is not an address here ({error.strerror})") from None
    listening = socket.socket(family, kind, proto)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind(address)
    except OSError as error:
        listening.close()
        in_use = error.errno == errno.EADDRINUSE
        reason = "the port is in use" if in_use else f"{error.strerror}; check --host"
        raise ValueError(
            f"cannot listen on {host}:{port} ({reason}); choose another --port (0: any free one)"
        ) from None
    return listening
