"""A rank of a two-process (gloo, CPU) training run killed mid-run ends the whole job: the other
rank exits with an error within a bounded time instead of waiting on its peer forever."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.reliability.training_run import TrainingRun
from tests.synthetic_coco import SyntheticCoco

WORLD_SIZE = 2
# Far below the 30 min collective timeout: a lost peer must be noticed, not waited out.
BOUND_S = 90


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _launch(run: TrainingRun) -> list[subprocess.Popen[str]]:
    """The ranks as torchrun would start them (its environment), on the CPU."""
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "WORLD_SIZE": str(WORLD_SIZE),
        "OMP_NUM_THREADS": "1",
    }
    command = run.command(overrides=("train.max_iter=1000",))
    return [
        subprocess.Popen(
            command,
            env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(WORLD_SIZE)
    ]


def test_killed_rank_ends_the_job(tiny_coco: SyntheticCoco, tmp_path: Path) -> None:
    run = TrainingRun(tiny_coco, tmp_path / "run")
    ranks = _launch(run)
    try:
        deadline = time.monotonic() + BOUND_S
        while not run.file("checkpoint_0000002.pt").is_file():
            assert all(p.poll() is None for p in ranks), ranks[0].communicate()[0][-4000:]
            assert time.monotonic() < deadline, "the ranks never reached their second step"
            time.sleep(0.05)
        ranks[1].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        output, _ = ranks[0].communicate(timeout=BOUND_S)
        waited = time.monotonic() - killed_at
    finally:
        for process in ranks:
            if process.poll() is None:
                process.kill()
        killed_output = ranks[1].communicate()[0]
        ranks[0].communicate()
    assert ranks[1].returncode == -signal.SIGKILL
    assert ranks[0].returncode not in (0, None), output[-4000:]
    assert waited < BOUND_S
    assert not run.file("model_final.safetensors").exists()
    # The run's log is rank 0's: rank 1 says it joined, and repeats no setup line.
    assert " INFO sparsercnn.data" in output
    logged = [line for line in killed_output.splitlines() if " INFO " in line]
    assert len(logged) == 1 and "rank 1 of 2 joined" in logged[0], killed_output
