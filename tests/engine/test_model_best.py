"""The run's ``model_best`` when it resumes: made to agree with the best its checkpoint records
(written again, copied from beside the checkpoint, or the best counted again), on the "tiny"
preset and a tiny COCO data set written to a temp folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from sparsercnn.config import Config
from sparsercnn.data.coco import CocoDataset
from sparsercnn.data.transforms import build_train_transform
from sparsercnn.engine import model_best as model_best_module
from sparsercnn.engine.evaluation_history import EvaluationHistory
from sparsercnn.engine.trainer import Trainer
from sparsercnn.model_file import save_model_file
from sparsercnn.run_files import MODEL_BEST_FILE
from sparsercnn.safetensors_file import stored_tensors_crc32
from tests.synthetic_coco import SyntheticCoco, tiny_config


def _trainer(data: SyntheticCoco, cfg: Config, output_dir: Path, **kwargs: Any) -> Trainer:
    train = CocoDataset(data.json_path, data.image_dir, build_train_transform(cfg.input))
    return Trainer(cfg, train, output_dir, device="cpu", progress=False, **kwargs)


def _run_with_a_later_model_best(
    data: SyntheticCoco, tmp_path: Path, best_iteration: int
) -> tuple[Path, str]:
    """A run whose checkpoint at 2 records AP 25% at ``best_iteration`` with model_best's
    CRC-32, that went on to write another model_best; returns the checkpoint and that CRC."""
    trainer = _trainer(data, tiny_config(), tmp_path)
    best = tmp_path / MODEL_BEST_FILE
    save_model_file(best, trainer.model, trainer.cfg, trainer.categories)
    recorded = stored_tensors_crc32(best)
    trainer.iteration = 2
    trainer.evaluations = EvaluationHistory(0.25, best_iteration, recorded, last_iteration=2)
    trainer._save_checkpoint()
    with torch.no_grad():  # trained on: a later iteration's weights
        for parameter in trainer.model.parameters():
            parameter.add_(0.5)
    save_model_file(best, trainer.model, trainer.cfg, trainer.categories)
    assert recorded is not None and stored_tensors_crc32(best) != recorded
    return tmp_path / "checkpoint_0000002.pt", recorded


@pytest.mark.parametrize("best_iteration", [2, 1])
def test_a_model_best_written_after_the_checkpoint_resumed_is_not_named_its_best(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    best_iteration: int,
) -> None:
    """``--resume checkpoint_2.pt`` of a run that went on to write model_best later restored
    iteration 2's best AP, and the report evaluated the later file as "best at iteration 2".
    The checkpoint of the best's iteration holds its model: model_best is written again from
    it. An earlier best's model is in no file: the best counts again from the next evaluation."""
    checkpoint, recorded = _run_with_a_later_model_best(tiny_coco, tmp_path, best_iteration)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=model_best_module.__name__):
        resumed = _trainer(tiny_coco, tiny_config(), tmp_path, resume=checkpoint)
    (message,) = [r.getMessage() for r in caplog.records if MODEL_BEST_FILE in r.getMessage()]
    best = tmp_path / MODEL_BEST_FILE
    assert message.startswith(
        f"{best} holds another model, one written after that checkpoint (in the iterations this "
        f"resume trains again) or put there, not the best model {checkpoint} records (AP 25.00% "
        f"at iteration {best_iteration})"
    )
    history = resumed.evaluations
    if best_iteration == 2:
        assert message.endswith("written again from that checkpoint, which holds it")
        assert stored_tensors_crc32(best) == history.best_model_crc32 == recorded
        assert (history.best_ap, history.best_iteration) == (0.25, 2)
    else:
        assert "the best AP counts again from this run's next evaluation" in message
        assert (history.best_ap, history.best_iteration, history.best_model_crc32) == (None,) * 3
        assert history.last_iteration == 2


def test_a_checkpoint_resumed_into_a_new_folder_brings_its_model_best(
    tiny_coco: SyntheticCoco, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: ``--resume run/checkpoint_2.pt --output-dir new`` of a best at iteration 1 said
    "new/model_best.safetensors is not there ... which no file of this run holds now" and
    counted the best again, while run/model_best.safetensors held it: it is copied."""
    run = tmp_path / "run"
    trainer = _trainer(tiny_coco, tiny_config(), run)
    best = save_model_file(run / MODEL_BEST_FILE, trainer.model, trainer.cfg, trainer.categories)
    recorded = stored_tensors_crc32(best)
    trainer.iteration = 2
    trainer.evaluations = EvaluationHistory(0.25, 1, recorded, last_iteration=2)
    trainer._save_checkpoint()
    new = tmp_path / "new"
    with caplog.at_level(logging.WARNING, logger=model_best_module.__name__):
        resumed = _trainer(tiny_coco, tiny_config(), new, resume=run / "checkpoint_0000002.pt")
    assert not [r for r in caplog.records if r.name == model_best_module.__name__]
    history = resumed.evaluations
    assert (history.best_ap, history.best_iteration, history.best_model_crc32) == (
        0.25,
        1,
        recorded,
    )
    assert (new / MODEL_BEST_FILE).read_bytes() == best.read_bytes()


def _resume_beside_another_model_best(
    data: SyntheticCoco, tmp_path: Path, caplog: pytest.LogCaptureFixture, best_iteration: int
) -> tuple[Trainer, Path, int]:
    """Resume the checkpoint of iteration 2 of a run whose best (AP 0.25) was at
    ``best_iteration`` into a new folder holding another run's model_best, and check that file
    is kept and the warning says so. Returns the trainer (now holding the other run's weights),
    the first run's model_best and the CRC-32 recorded for it."""
    run = tmp_path / "run"
    trainer = _trainer(data, tiny_config(), run)
    best = save_model_file(run / MODEL_BEST_FILE, trainer.model, trainer.cfg, trainer.categories)
    trainer.iteration = 2
    recorded = stored_tensors_crc32(best)
    trainer.evaluations = EvaluationHistory(0.25, best_iteration, recorded, last_iteration=2)
    trainer._save_checkpoint()
    with torch.no_grad():  # another run's weights
        for parameter in trainer.model.parameters():
            parameter.add_(0.5)
    new = tmp_path / "new"
    theirs = save_model_file(new / MODEL_BEST_FILE, trainer.model, trainer.cfg, trainer.categories)
    kept = theirs.read_bytes()
    with caplog.at_level(logging.WARNING, logger=model_best_module.__name__):
        resumed = _trainer(data, tiny_config(), new, resume=run / "checkpoint_0000002.pt")
    assert theirs.read_bytes() == kept
    (message,) = [r.getMessage() for r in caplog.records if r.name == model_best_module.__name__]
    assert message.startswith(f"{theirs} holds another model")
    assert message.endswith("writes model_best.safetensors (copy this one elsewhere to keep it)")
    assert resumed.evaluations.best_ap is None
    return trainer, best, recorded


def test_a_model_best_in_the_new_folder_is_kept_not_replaced_by_the_checkpoint_s(
    tiny_coco: SyntheticCoco, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: resumed into a folder holding another model_best, that file was replaced at once by
    a copy of the one beside the checkpoint. It is the user's: kept until this run's next
    evaluation writes model_best, and the warning says to copy it elsewhere to keep it."""
    _resume_beside_another_model_best(tiny_coco, tmp_path, caplog, best_iteration=1)


def test_a_model_best_in_the_new_folder_is_kept_at_the_best_s_own_iteration_too(
    tiny_coco: SyntheticCoco, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: resumed into a folder holding another model_best from the checkpoint of the best's
    own iteration, that file was replaced at once by the checkpoint's model. It is kept as where
    the checkpoint is of a later iteration; into the checkpoint's own folder it is written."""
    trainer, best, recorded = _resume_beside_another_model_best(
        tiny_coco, tmp_path, caplog, best_iteration=2
    )
    save_model_file(best, trainer.model, trainer.cfg, trainer.categories)  # written after
    resumed = _trainer(tiny_coco, tiny_config(), best.parent, resume=True)
    history = resumed.evaluations
    assert (history.best_ap, history.best_model_crc32) == (0.25, recorded)
    assert stored_tensors_crc32(best) == recorded
