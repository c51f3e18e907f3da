"""Fixtures of the server tests: encoded test images, an in-process client of the app on the
tiny model file (``model_file`` of tests/conftest.py), and a real ``sparsercnn serve`` process."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from sparsercnn.serving import Limits, create_app

with warnings.catch_warnings():  # Starlette's note that it prefers httpx2 to httpx
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

REPO = Path(__file__).resolve().parents[2]
SERVER_START_TIMEOUT_S = 60.0
MakeClient = Callable[..., TestClient]


def encoded_image(width: int, height: int, seed: int = 0, image_format: str = "PNG") -> bytes:
    """A noisy RGB image with a bright rectangle, encoded as ``image_format``."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 120, (height, width, 3), dtype=np.uint8)
    pixels[height // 4 : height // 2, width // 4 : width // 2] = (230, 40, 40)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format)
    return buffer.getvalue()


def decoded(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


@pytest.fixture
def make_client(model_file: Path) -> Iterator[MakeClient]:
    """``make_client(**create_app_options)``: a started in-process client of the tiny model."""
    clients: list[TestClient] = []

    def make(raise_server_exceptions: bool = True, **options: object) -> TestClient:
        app = create_app(model_file, **options)  # type: ignore[arg-type]
        client = TestClient(app, raise_server_exceptions=raise_server_exceptions)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    """The app with small limits: 3 images, 60 kB and 200x200 pixels per image."""
    limits = Limits(max_image_bytes=60_000, max_image_pixels=200 * 200, max_images=3)
    return make_client(limits=limits, max_batch_images=4, max_wait_ms=5)


@pytest.fixture
def served(model_file: Path, tmp_path: Path) -> Iterator[str]:
    """A real ``sparsercnn serve`` (uvicorn) on 127.0.0.1 and ``--port 0``; yields the URL it
    printed (with the port it was given)."""
    log = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + str(REPO)}
    command = [sys.executable, "-m", "sparsercnn", "serve", "--model", str(model_file)]
    command += ["--host", "127.0.0.1", "--port", "0"]
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"sparsercnn serve exited with {process.returncode}: {log.read_text()}")
            printed = re.search(r" at (http://127\.0\.0\.1:(\d+))/ ", log.read_text())
            try:
                if printed and httpx.get(f"{printed[1]}/health", timeout=1.0).status_code == 200:
                    assert printed[2] != "0"
                    url = printed[1]
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"sparsercnn serve did not answer in time: {log.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
