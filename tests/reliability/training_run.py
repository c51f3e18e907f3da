"""``sparsercnn train`` as a subprocess on a tiny data set: run it, kill it, resume it.

A plain module with a distinct name, imported by the reliability tests. Every run has the same
configuration (a narrow ResNet-18 on 64-96 pixel images, a checkpoint after every iteration,
all checkpoints kept) and the same environment (one thread), so that runs can be compared
byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.synthetic_coco import SyntheticCoco

MAX_ITER = 8
TIMEOUT_S = 240
OVERRIDES = [
    "model.backbone_width=8",
    "model.dropout=0.1",  # the RNG states matter
    "input.train_min_sizes=[64,80]",
    "input.train_max_size=96",
    "input.test_min_size=64",
    "input.test_max_size=96",
    "train.batch_size=1",
    "train.grad_accum_steps=2",  # the data order spans micro-batches
    "train.num_workers=0",
    f"train.max_iter={MAX_ITER}",
    "train.log_period=1",
    "train.checkpoint_period=1",
    "train.keep_checkpoints=0",
    "train.eval_period=0",
]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TrainingRun:
    """One output folder of ``sparsercnn train`` on ``data`` with the tiny configuration."""

    def __init__(self, data: SyntheticCoco, output_dir: Path) -> None:
        self.data = data
        self.output_dir = output_dir

    def command(self, *extra: str, overrides: tuple[str, ...] = ()) -> list[str]:
        """The ``sparsercnn train`` command line; ``overrides`` go after the tiny ones."""
        return [
            sys.executable,
            "-m",
            "sparsercnn",
            "train",
            "--train-json",
            str(self.data.json_path),
            "--train-images",
            str(self.data.image_dir),
            "--output-dir",
            str(self.output_dir),
            "--preset",
            "tiny",
            "--device",
            "cpu",
            "--set",
            *OVERRIDES,
            *overrides,
            *extra,
        ]

    def start(self, *extra: str) -> subprocess.Popen[str]:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        return subprocess.Popen(
            self.command(*extra),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # Ctrl-C acts in the run even where the tests were started with SIGINT ignored (a
            # background job): Python keeps an inherited SIG_IGN.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )

    def complete(self, *extra: str) -> str:
        """Run to the end; the combined output. Fails the test if the run fails."""
        process = self.start(*extra)
        output, _ = process.communicate(timeout=TIMEOUT_S)
        assert process.returncode == 0, f"training failed:\n{output[-4000:]}"
        return output

    def kill_after_checkpoint(self, iteration: int) -> None:
        """Start a run and SIGKILL it once ``checkpoint_{iteration}`` is written."""
        process = self.start()
        wanted = self.output_dir / f"checkpoint_{iteration:07d}.pt"
        deadline = time.monotonic() + TIMEOUT_S
        try:
            while not wanted.is_file() and process.poll() is None:
                assert time.monotonic() < deadline, "the run never reached the checkpoint"
                time.sleep(0.01)
            process.send_signal(signal.SIGKILL)
            output, _ = process.communicate(timeout=TIMEOUT_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == -signal.SIGKILL, f"the run ended by itself:\n{output[-4000:]}"
        assert not (self.output_dir / "model_final.safetensors").exists()

    def interrupt_after_step(self, step: int, signum: int, *extra: str) -> tuple[int, str]:
        """Start a run, send ``signum`` once it has logged ``step`` steps; its exit code and
        output."""
        process = self.start(*extra)
        deadline = time.monotonic() + TIMEOUT_S
        try:
            while process.poll() is None and len(self._logged_losses()) < step:
                assert time.monotonic() < deadline, f"the run never logged step {step}"
                time.sleep(0.01)
            process.send_signal(signum)
            output, _ = process.communicate(timeout=TIMEOUT_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        return process.returncode, output

    def _logged_losses(self) -> list[str]:
        log = self.file("metrics.jsonl")
        lines = log.read_text().splitlines() if log.is_file() else []
        return [line for line in lines if '"loss"' in line]

    def file(self, name: str) -> Path:
        return self.output_dir / name

    def losses(self) -> list[tuple[int, float]]:
        """``(iteration, loss)`` of every training record of ``metrics.jsonl``."""
        records = [json.loads(line) for line in self.file("metrics.jsonl").read_text().splitlines()]
        return [(record["iter"], record["loss"]) for record in records if "loss" in record]
