"""The same config, seed and data give the same bytes: model files and training checkpoints."""

from __future__ import annotations

from pathlib import Path

from tests.reliability.training_run import MAX_ITER, TrainingRun, sha256
from tests.synthetic_coco import SyntheticCoco


def test_repeated_run_writes_identical_files(
    tiny_coco: SyntheticCoco, straight_run: TrainingRun, tmp_path: Path
) -> None:
    # Another process (other hash seeds) and another output folder.
    again = TrainingRun(tiny_coco, tmp_path / "elsewhere")
    again.complete()
    checkpoints = [f"checkpoint_{i:07d}.pt" for i in range(1, MAX_ITER + 1)]
    for name in ("model_final.safetensors", "config.json", *checkpoints):
        assert sha256(again.file(name)) == sha256(straight_run.file(name)), name
