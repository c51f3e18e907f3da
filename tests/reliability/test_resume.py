"""A run killed with SIGKILL and resumed ends exactly where an uninterrupted run ends, also
from a damaged newest checkpoint or a checkpoint named with ``--resume PATH``; a run stopped by
Ctrl-C or SIGTERM checkpoints its last step first."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sparsercnn.cli.main import main
from tests.reliability.training_run import MAX_ITER, TrainingRun, sha256
from tests.synthetic_coco import SyntheticCoco

FINAL_FILES = ("model_final.safetensors", f"checkpoint_{MAX_ITER:07d}.pt", "config.json")


@pytest.fixture(scope="module")
def killed_run(tiny_coco: SyntheticCoco, tmp_path_factory: pytest.TempPathFactory) -> TrainingRun:
    """A run killed (SIGKILL) after its second checkpoint; copy it before resuming."""
    run = TrainingRun(tiny_coco, tmp_path_factory.mktemp("killed") / "run")
    run.kill_after_checkpoint(2)
    return run


def _copy(run: TrainingRun, destination: Path) -> TrainingRun:
    shutil.copytree(run.output_dir, destination)
    return TrainingRun(run.data, destination)


def _assert_same_files(run: TrainingRun, reference: TrainingRun) -> None:
    for name in FINAL_FILES:
        assert sha256(run.file(name)) == sha256(reference.file(name)), name
    assert run.losses() == reference.losses()  # the redone iterations replace their records


def test_killed_run_resumes_to_identical_files(
    killed_run: TrainingRun, straight_run: TrainingRun, tmp_path: Path
) -> None:
    run = _copy(killed_run, tmp_path / "run")
    output = run.complete("--resume")
    assert "resumed from" in output
    _assert_same_files(run, straight_run)


def test_damaged_newest_checkpoint_falls_back_with_a_warning(
    killed_run: TrainingRun, straight_run: TrainingRun, tmp_path: Path
) -> None:
    run = _copy(killed_run, tmp_path / "run")
    # The checkpoint resume tries first: the kill may land after a checkpoint is written and
    # before last_checkpoint names it, so that one need not be the newest file.
    newest = run.output_dir / (run.output_dir / "last_checkpoint").read_text().strip()
    newest.write_bytes(newest.read_bytes()[:1000])
    output = run.complete("--resume")
    assert f"skipped damaged training checkpoint(s) in {run.output_dir}: {newest.name}" in output
    _assert_same_files(run, straight_run)


def test_resume_from_a_named_checkpoint(
    killed_run: TrainingRun, straight_run: TrainingRun, tmp_path: Path
) -> None:
    run = _copy(killed_run, tmp_path / "run")
    output = run.complete("--resume", str(run.file("checkpoint_0000001.pt")))
    assert "checkpoint_0000001.pt at iteration 1" in output
    _assert_same_files(run, straight_run)


def _train_cli(run: TrainingRun, *extra: str, overrides: tuple[str, ...] = ()) -> list[str]:
    return run.command(*extra, overrides=overrides)[3:]  # after `python -m sparsercnn`


def test_resume_path_must_be_a_compatible_training_checkpoint(
    killed_run: TrainingRun,
    straight_run: TrainingRun,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = TrainingRun(killed_run.data, tmp_path / "run")
    model_file = straight_run.file("model_final.safetensors")
    assert main(_train_cli(run, "--resume", str(model_file))) == 2
    error = capsys.readouterr().err.strip()
    assert "model_final.safetensors is a model file, not a training checkpoint" in error
    assert len(error.splitlines()) == 1

    checkpoint = killed_run.file("checkpoint_0000001.pt")
    other_model = _train_cli(run, "--resume", str(checkpoint), overrides=("model.num_proposals=8",))
    assert main(other_model) == 2
    error = capsys.readouterr().err.strip()
    assert f"{checkpoint} is from a run with another model" in error
    assert "(model.num_proposals 16 -> 8)" in error and len(error.splitlines()) == 1

    missing = tmp_path / "checkpoint_0000099.pt"
    assert main(_train_cli(run, "--resume", str(missing))) == 2
    assert f"training checkpoint {missing} does not exist" in capsys.readouterr().err


# No periodic checkpoint: the only one to resume from is the one the interrupt writes.
NO_CHECKPOINTS = ("--set", "train.max_iter=40", "train.checkpoint_period=0")


@pytest.fixture(scope="module")
def straight_40(tiny_coco: SyntheticCoco, tmp_path_factory: pytest.TempPathFactory) -> TrainingRun:
    run = TrainingRun(tiny_coco, tmp_path_factory.mktemp("straight40") / "run")
    run.complete(*NO_CHECKPOINTS)
    return run


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_run_checkpoints_its_last_step_and_resumes_to_the_same_model(
    tiny_coco: SyntheticCoco,
    straight_40: TrainingRun,
    tmp_path: Path,
    signum: int,
    exit_code: int,
) -> None:
    """Ctrl-C (or SIGTERM) finishes the step under way and checkpoints it: a run without a
    periodic checkpoint (a short budgeted one) is not lost, and resumes exactly."""
    run = TrainingRun(tiny_coco, tmp_path / "run")
    code, output = run.interrupt_after_step(3, signum, *NO_CHECKPOINTS)
    assert code == exit_code, output[-3000:]
    (checkpoint,) = run.output_dir.glob("checkpoint_*.pt")
    iteration = int(checkpoint.stem.split("_")[1])
    assert 3 <= iteration < 40
    assert f"interrupted after iteration {iteration}" in output and "--resume" in output
    assert not run.file("model_final.safetensors").exists()

    run.complete("--resume", *NO_CHECKPOINTS)
    final = load_file(run.file("model_final.safetensors"))
    reference = load_file(straight_40.file("model_final.safetensors"))
    assert final.keys() == reference.keys()
    assert all(torch.equal(final[key], reference[key]) for key in final)
    assert run.losses() == straight_40.losses()
