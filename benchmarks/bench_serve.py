"""Throughput and latency of ``sparsercnn serve``, with request batching on and off.

Starts the server as a subprocess on 127.0.0.1 (a free port) on a model file (default: a
randomly initialised ``--preset`` model saved to a temporary file: speed does not depend on the
weights), then for each of ``--clients`` concurrent clients sends ``--requests`` requests of one
``--image-size`` JPEG to ``POST /v1/detect`` (each setting stops early after ``--time-limit``
seconds), once with batching (``--max-batch``, ``--max-wait-ms``) and once without
(``--max-batch 1``). Prints a markdown table of requests/s, p50 and p95 latency and the mean
images per model call; ``--write`` appends it to BENCHMARKS.md with the command and the machine.

Usage: python benchmarks/bench_serve.py [--preset demo] [--model FILE] [--clients 1 4 16]
       [--requests 64] [--time-limit 60] [--image-size 640 480] [--max-batch 8]
       [--max-wait-ms 10] [--write]
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

from sparsercnn import build_model, get_preset
from sparsercnn.benchmarking import PartTiming, machine_kind
from sparsercnn.cli.common import int_at_least, positive_number, user_path
from sparsercnn.data.categories import CategoryMap
from sparsercnn.model_file import save_model_file

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 120.0
WARMUP_REQUESTS = 3


def random_model_file(preset: str, folder: Path) -> Path:
    """A randomly initialised ``preset`` model with 3 classes, saved in ``folder``."""
    cfg = get_preset(preset)
    cfg.model.num_classes = 3
    torch.manual_seed(0)
    categories = CategoryMap([1, 2, 3], ["a", "b", "c"])
    return save_model_file(folder / f"{preset}.safetensors", build_model(cfg), cfg, categories)


def jpeg(width: int, height: int) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """``sparsercnn serve`` in a subprocess, stopped on exit."""

    def __init__(self, model: Path, max_batch: int, max_wait_ms: int, log: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "sparsercnn", "serve", "--model", str(model)]
        command += ["--port", str(port), "--max-batch", str(max_batch)]
        command += ["--max-wait-ms", str(max_wait_ms), "--max-images", "1"]
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        with open(log, "wb") as output:
            self.process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, env=env
            )
        self.log = log

    def __enter__(self) -> Server:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def health(self) -> dict[str, int]:
        return httpx.get(f"{self.url}/health", timeout=10).json()  # type: ignore[no-any-return]


def load(
    url: str, image: bytes, clients: int, requests: int, time_limit: float
) -> dict[str, float]:
    """``requests`` requests from ``clients`` threads (or fewer, at ``time_limit``)."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    deadline = time.monotonic() + time_limit

    def client() -> None:
        with httpx.Client(timeout=300) as session:
            while time.monotonic() < deadline:
                with lock:
                    if next(counter, None) is None:
                        return
                start = time.perf_counter()
                response = session.post(
                    f"{url}/v1/detect", files=[("images", ("bench.jpg", image, "image/jpeg"))]
                )
                elapsed = time.perf_counter() - start
                with lock:
                    if response.status_code == 200:
                        latencies.append(elapsed)
                    else:
                        failures.append(response.text[:200])

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0]}")
    if not latencies:
        raise RuntimeError(f"no request was answered within --time-limit {time_limit:g} s")
    return latency_summary(latencies, wall)


def latency_summary(latencies: list[float], wall: float) -> dict[str, float]:
    """Requests, requests/s over ``wall`` seconds, and the p50 and p95 latency in ms, the
    percentiles as ``sparsercnn benchmark`` computes them (:class:`PartTiming`: interpolated
    between the requests, never beyond the slowest, where ``statistics.quantiles``' default
    extrapolates past it on few requests)."""
    timing = PartTiming.from_seconds(latencies, batch_size=1)
    return {
        "requests": len(latencies),
        "rps": len(latencies) / wall,
        "p50_ms": timing.p50_ms,
        "p95_ms": timing.p95_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="demo", help="preset of the random model")
    parser.add_argument("--model", type=user_path, help="a model file instead of a random model")
    parser.add_argument("--clients", type=int_at_least(1), nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int_at_least(1), default=64, help="requests per setting")
    parser.add_argument(
        "--time-limit", type=positive_number, default=60.0, help="seconds per setting"
    )
    parser.add_argument(
        "--image-size", type=int_at_least(1), nargs=2, default=[640, 480], metavar=("W", "H")
    )
    parser.add_argument("--max-batch", type=int_at_least(1), default=8)
    parser.add_argument("--max-wait-ms", type=int_at_least(0), default=10)
    parser.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    args = parser.parse_args()
    image = jpeg(*args.image_size)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as folder:
        model = args.model or random_model_file(args.preset, Path(folder))
        settings = [("on", args.max_batch, args.max_wait_ms), ("off", 1, 0)]
        for name, max_batch, max_wait_ms in settings:
            log = Path(folder) / f"serve-{name}.log"
            with Server(model, max_batch, max_wait_ms, log) as server:
                for _ in range(WARMUP_REQUESTS):
                    load(server.url, image, 1, 1, args.time_limit)
                for clients in args.clients:
                    before = server.health()
                    result = load(server.url, image, clients, args.requests, args.time_limit)
                    after = server.health()
                    calls = after["batches"] - before["batches"]
                    per_call = (after["images"] - before["images"]) / max(calls, 1)
                    rows.append(
                        f"| {name} | {clients} | {result['requests']:.0f} | {result['rps']:.2f} "
                        f"| {result['p50_ms']:.0f} | {result['p95_ms']:.0f} | {per_call:.2f} |"
                    )
                    print(rows[-1], flush=True)
    source = str(args.model) if args.model else f"random {args.preset} model"
    command = "python benchmarks/bench_serve.py " + " ".join(sys.argv[1:])
    header = (
        f"`sparsercnn serve` on {machine_kind()}, {source}, one {args.image_size[0]}x"
        f"{args.image_size[1]} JPEG per request, batching on = --max-batch {args.max_batch} "
        f"--max-wait-ms {args.max_wait_ms}, off = --max-batch 1 (`{command.strip()}`):\n\n"
        "| batching | clients | requests | requests/s | p50 ms | p95 ms | images per model call |\n"
        "|---|---|---|---|---|---|---|"
    )
    text = header + "\n" + "\n".join(rows)
    print(text)
    if args.write:
        with open(REPO / "BENCHMARKS.md", "a", encoding="utf-8") as handle:
            handle.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
