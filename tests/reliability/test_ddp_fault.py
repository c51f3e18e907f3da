"""A rank of a two-process (gloo, CPU) training run killed mid-run ends the whole job: the other
rank exits with an error within a bounded time instead of waiting on its peer forever."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.reliability.training_run import TIMEOUT_S, TrainingRun
from tests.synthetic_coco import SyntheticCoco

WORLD_SIZE = 2
# Far below the 30 min collective timeout: a lost peer must be noticed, not waited out.
BOUND_S = 90


@contextmanager
def _reserved_port() -> Iterator[int]:
    """A local port that no other process is given while the block runs. The socket holding it
    is bound, never listening, with ``SO_REUSEADDR``, which the rank-0 store sets too: the store
    alone can listen there. (A port found free and closed before the ranks start can be taken
    in between by another test's server or an outgoing connection; rank 0 then fails with
    "address already in use".)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def _launch(run: TrainingRun, port: int) -> list[subprocess.Popen[str]]:
    """The ranks as torchrun would start them (its environment), on the CPU."""
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
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
    waited: float | None = None
    outputs: dict[int, str] = {}
    with _reserved_port() as port:
        ranks = _launch(run, port)
        try:
            # The start-up (two processes importing torch and checking the data) is not what
            # is bounded: on a loaded machine it alone can take longer than BOUND_S.
            deadline = time.monotonic() + TIMEOUT_S
            while not run.file("checkpoint_0000002.pt").is_file():
                if not all(p.poll() is None for p in ranks):
                    break  # a rank failed: its output is in the failure message below
                assert time.monotonic() < deadline, "the ranks never reached their second step"
                time.sleep(0.05)
            else:
                ranks[1].send_signal(signal.SIGKILL)
                killed_at = time.monotonic()
                outputs[0] = ranks[0].communicate(timeout=BOUND_S)[0]
                waited = time.monotonic() - killed_at
        finally:
            for process in ranks:
                if process.poll() is None:
                    process.kill()
            for rank, process in enumerate(ranks):
                if rank not in outputs:
                    outputs[rank] = process.communicate()[0]
    output, killed_output = outputs[0], outputs[1]
    assert waited is not None, f"a rank ended early:\n{output[-3000:]}\n{killed_output[-3000:]}"
    assert ranks[1].returncode == -signal.SIGKILL
    assert ranks[0].returncode not in (0, None), output[-4000:]
    assert waited < BOUND_S
    assert not run.file("model_final.safetensors").exists()
    # The run's log is rank 0's: rank 1 says it joined, and repeats no setup line.
    assert " INFO sparsercnn.data" in output
    logged = [line for line in killed_output.splitlines() if " INFO " in line]
    assert len(logged) == 1 and "rank 1 of 2 joined" in logged[0], killed_output
