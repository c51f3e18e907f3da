"""``sparsercnn serve``: a real uvicorn server answers, errors are one line with exit code 2, and
``sparsercnn --help`` does not import FastAPI."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sparsercnn.cli.main import main
from sparsercnn.cli.serve import DEFAULT_MAX_CONNECTIONS, SHUTDOWN_GRACE_SECONDS, server_config
from sparsercnn.serving.service import DEFAULT_MAX_QUEUED_IMAGES
from tests.serving.conftest import encoded_image


def test_real_server_answers_every_route(served: str) -> None:
    assert httpx.get(f"{served}/health").json()["status"] == "ok"
    model = httpx.get(f"{served}/v1/model").json()
    assert model["num_stages"] == 2
    # Every limit of the server is reported, uvicorn's too.
    assert model["max_connections"] == DEFAULT_MAX_CONNECTIONS
    assert model["max_queued_images"] == DEFAULT_MAX_QUEUED_IMAGES
    assert 'id="stage-slider"' in httpx.get(f"{served}/").text
    image = encoded_image(128, 96)
    detect = httpx.post(f"{served}/v1/detect", files=[("images", ("a.png", image, "image/png"))])
    assert detect.status_code == 200 and detect.json()["images"][0]["detections"]
    bad = httpx.post(f"{served}/v1/detect", files=[("images", ("a.png", b"nope", "image/png"))])
    assert bad.status_code == 400 and "images[0] (a.png)" in bad.json()["error"]
    stages = httpx.post(f"{served}/v1/stages", files=[("images", ("a.png", image, "image/png"))])
    assert len(stages.json()["stages"]) == 2
    docs = httpx.get(f"{served}/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in docs and "cdn" not in docs
    assert httpx.get(f"{served}/docs-assets/swagger-ui-bundle.js").status_code == 200


@pytest.mark.parametrize("module", ["uvicorn", "fastapi_offline"])
def test_missing_extra_is_one_line_naming_the_install(
    model_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    module: str,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # importing it now raises ImportError
    assert main(["serve", "--model", str(model_file), "--port", "0"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "pip install 'sparsercnn[serve]'" in lines[0]
    assert module in lines[0]


def test_bad_model_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.safetensors"
    assert main(["serve", "--model", str(missing), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sparsercnn serve: error:") and str(missing) in err


def test_a_busy_port_is_one_line_before_the_model_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The port is bound first: a busy one is refused naming it (the model file does not even
    exist here), and nothing claims to be serving."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        missing = tmp_path / "missing.safetensors"
        assert (
            main(["serve", "--model", str(missing), "--host", "127.0.0.1", "--port", str(port)])
            == 2
        )
    captured = capsys.readouterr()
    assert f"cannot listen on 127.0.0.1:{port} (the port is in use)" in captured.err
    assert "serving" not in captured.out


def test_help_does_not_import_fastapi() -> None:
    code = (
        "import sys\n"
        "from sparsercnn.cli.main import build_parser\n"
        "build_parser().format_help()\n"
        "print(','.join(m for m in ('fastapi', 'uvicorn', 'sparsercnn.serving') "
        "if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_help_gives_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's batching defaults (a batch closes at 8 images or after 10 ms) and the
    limits a request meets are in ``serve --help``."""
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for default in ("(default 8;", "(ms, default 10)", "(default 16)", "(default 127.0.0.1)"):
        assert default in text
    assert "(default 8000; 0: any free port)" in text
    # The CLI cannot import the service's default (it imports FastAPI): the two agree.
    assert f"gets 503 at once (default {DEFAULT_MAX_QUEUED_IMAGES})" in text
    assert f"held in memory (default {DEFAULT_MAX_CONNECTIONS})" in text
    assert f"requests still running after {SHUTDOWN_GRACE_SECONDS} s are cancelled" in text


def test_uvicorn_gets_the_connection_limit_and_a_shutdown_grace(
    model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slow clients cannot stall a shutdown, and ``--max-connections`` reaches uvicorn."""
    import uvicorn

    configs: list[uvicorn.Config] = []

    class RecordingServer:
        def __init__(self, config: uvicorn.Config) -> None:
            configs.append(config)

        def run(self, sockets: list[socket.socket]) -> None:
            pass

    monkeypatch.setattr(uvicorn, "Server", RecordingServer)
    argv = ["serve", "--model", str(model_file), "--port", "0", "--device", "cpu"]
    assert main([*argv, "--max-connections", "3"]) == 0
    assert main(argv) == 0
    assert [c.timeout_graceful_shutdown for c in configs] == [SHUTDOWN_GRACE_SECONDS] * 2
    assert [c.limit_concurrency for c in configs] == [4, DEFAULT_MAX_CONNECTIONS + 1]


def test_max_connections_serves_that_many_open_connections() -> None:
    """uvicorn answers 503 once the open connections, the asking one included, reach its
    limit_concurrency: ``--max-connections N`` serves N of them, the next one gets 503."""
    import threading

    import uvicorn

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listening.getsockname()[1]}/"
    server = uvicorn.Server(server_config(app, max_connections=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    clients = [httpx.Client() for _ in range(3)]  # each holds its connection open (keep-alive)
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        assert [client.get(url).status_code for client in clients] == [200, 200, 503]
    finally:
        for client in clients:
            client.close()
        server.should_exit = True
        thread.join(10)
        listening.close()
