"""The training loop on the "tiny" preset and a tiny COCO data set written to a temp folder."""

from __future__ import annotations

import json
import logging
import math
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from sparsercnn import config as config_module
from sparsercnn.config import Config
from sparsercnn.data.coco import CocoDataset, ImageChangedError
from sparsercnn.data.image_io import ImageReadError
from sparsercnn.data.loader import build_train_loader
from sparsercnn.data.transforms import build_test_transform, build_train_transform
from sparsercnn.engine import checkpoint as checkpoint_module
from sparsercnn.engine import train_step, training_evaluation
from sparsercnn.engine import trainer as trainer_module
from sparsercnn.engine.checkpoint import LAST_CHECKPOINT_FILE, load_training_checkpoint
from sparsercnn.engine.distributed import DistInfo
from sparsercnn.engine.lr_schedule import train_lr_factor
from sparsercnn.engine.resume import check_resume
from sparsercnn.engine.time_budget import FINISH_OVERHEAD_S, BudgetedSchedule, TimeBudget
from sparsercnn.engine.train_step import NonFiniteLossError
from sparsercnn.engine.trainer import Trainer
from sparsercnn.engine.training_images import data_identity
from sparsercnn.loss import NonFiniteCostError, SetLoss
from sparsercnn.model_file import load_model_file
from sparsercnn.run_files import MODEL_BEST_FILE
from sparsercnn.safetensors_file import stored_tensors_crc32
from sparsercnn.structures import ModelOutput, Target
from tests.synthetic_coco import SyntheticCoco, tiny_config


def _datasets(data: SyntheticCoco, cfg: Config) -> tuple[CocoDataset, CocoDataset]:
    train = CocoDataset(data.json_path, data.image_dir, build_train_transform(cfg.input))
    val = CocoDataset(
        data.json_path, data.image_dir, build_test_transform(cfg.input), skip_unreadable=False
    )
    return train, val


def _trainer(data: SyntheticCoco, cfg: Config, output_dir: Path, **kwargs: Any) -> Trainer:
    train, val = _datasets(data, cfg)
    val_dataset = val if kwargs.pop("with_val", False) else None
    return Trainer(
        cfg, train, output_dir, val_dataset=val_dataset, device="cpu", progress=False, **kwargs
    )


def _records(output_dir: Path) -> list[dict[str, Any]]:
    lines = (output_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_training_writes_outputs(tiny_coco: SyntheticCoco, tmp_path: Path) -> None:
    cfg = tiny_config()
    cfg.train.checkpoint_period = 2
    trainer = _trainer(tiny_coco, cfg, tmp_path, with_val=True)
    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    result = trainer.train()

    assert result.iteration == 3 and not result.stopped_early
    assert {"loss", "loss_cls/stage0", "loss_l1/stage1", "loss_giou/stage1"} <= set(
        result.last_losses
    )
    assert all(math.isfinite(v) for v in result.last_losses.values())
    records = _records(tmp_path)
    train_records = [r for r in records if "loss" in r]
    assert [r["iter"] for r in train_records] == [1, 2, 3]
    assert train_records[0]["lr"] == pytest.approx(cfg.train.lr * cfg.train.warmup_factor)
    assert all(math.isfinite(r["loss"]) and r["images_per_s"] > 0 for r in train_records)
    eval_records = [r for r in records if "eval" in r]
    assert [r["iter"] for r in eval_records] == [3]
    assert eval_records[0]["eval"]["num_images"] == tiny_coco.num_images
    assert result.final_metrics == eval_records[0]["eval"]

    assert sorted(p.name for p in tmp_path.glob("checkpoint_*.pt")) == [
        "checkpoint_0000002.pt",
        "checkpoint_0000003.pt",
    ]
    assert (tmp_path / LAST_CHECKPOINT_FILE).read_text().strip() == "checkpoint_0000003.pt"
    # The images trained on, which a resumed run compares its own with.
    data = load_training_checkpoint(tmp_path)["extra"]["data"]
    expected = data_identity(trainer.train_dataset)
    assert expected is not None and data["digest"] == expected["digest"]
    assert data["num_images"] == tiny_coco.num_images
    assert data["image_ids"].tolist() == trainer.train_dataset.image_ids
    assert Config.load(tmp_path / "config.json") == cfg
    loaded = load_model_file(result.model_final_path or "")
    assert loaded.config == cfg
    changed = [k for k, v in loaded.model.state_dict().items() if not torch.equal(v, initial[k])]
    assert changed, "training did not change any weight"
    assert result.model_best_path is not None and result.model_best_path.is_file()
    assert result.curves_path is not None and result.curves_path.is_file()
    assert cfg.train.max_iter == 3  # the caller's config is untouched


def test_a_checkpoint_holds_the_evaluation_of_its_iteration(
    tiny_coco: SyntheticCoco, tmp_path: Path
) -> None:
    """An evaluation due at a checkpoint's iteration runs first: the checkpoint's best AP and
    random state include it, and resuming the finished run evaluates nothing again."""
    cfg = tiny_config()
    cfg.train.checkpoint_period = cfg.train.eval_period = 2
    cfg.train.max_iter = 4
    _trainer(tiny_coco, cfg, tmp_path, with_val=True).train()
    records = _records(tmp_path)
    evaluations = {r["iter"]: r["eval"]["AP"] for r in records if "eval" in r}
    assert sorted(evaluations) == [2, 4]
    for iteration in (2, 4):
        extra = load_training_checkpoint(tmp_path / f"checkpoint_{iteration:07d}.pt")["extra"]
        best = max(ap for i, ap in evaluations.items() if i <= iteration)
        assert extra["best_ap"] == pytest.approx(best) and extra["last_evaluation"] == iteration
    # Which model_best holds that AP: the file written for it.
    assert extra["best_model_crc32"] == stored_tensors_crc32(tmp_path / MODEL_BEST_FILE)
    result = _trainer(tiny_coco, cfg, tmp_path, with_val=True, resume=True).train()
    assert result.iteration == 4 and _records(tmp_path) == records  # nothing evaluated again


def test_resuming_past_max_iter_is_refused_before_writing(
    tiny_coco: SyntheticCoco, tmp_path: Path
) -> None:
    """A lower train.max_iter than the checkpoint's iteration rewrote config.json and
    model_final with a schedule shorter than the steps the run had trained."""
    cfg = tiny_config()
    _trainer(tiny_coco, cfg, tmp_path).train()
    written = {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}
    cfg.train.max_iter = 2
    with pytest.raises(ValueError, match=r"iteration 3, past train\.max_iter 2.*max_iter=3"):
        _trainer(tiny_coco, cfg, tmp_path, resume=True)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == written


def test_a_completed_run_extended_gets_the_decays_of_a_fresh_run_of_that_length(
    tiny_coco: SyntheticCoco, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A run stopped by its budget keeps only the decays it took (here none): resumed with a
    larger train.max_iter it trained on without a decay, and with a new budget not at all. The
    resume's schedule line gives the decays the run trains with (it named the schedule before
    the extension: ``steps [] -> []``, then another line ``-> [12, 14]``)."""
    cfg = tiny_config()
    cfg.train.steps = ()
    _trainer(tiny_coco, cfg, tmp_path).train()
    cfg.train.max_iter = 15
    with caplog.at_level(logging.INFO, logger="sparsercnn.engine"):
        assert _trainer(tiny_coco, cfg, tmp_path, resume=True).cfg.train.steps == (12, 14)
    (line,) = [r.getMessage() for r in caplog.records if "on resume at iteration" in r.getMessage()]
    assert "max_iter 3 -> 15, steps [] -> [12, 14]" in line
    assert "of a fresh run of that length" in line
    # Said once: the trainer said the extension in a line of its own too.
    assert sum("[12, 14]" in r.getMessage() for r in caplog.records) == 1
    cfg.train.steps = (13,)  # chosen for the extension: kept
    assert _trainer(tiny_coco, cfg, tmp_path, resume=True).cfg.train.steps == (13,)
    # Chosen as a fresh run's are chosen too (the line guessed the extension from the steps).
    cfg.train.steps = (12, 14)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sparsercnn.engine"):
        _trainer(tiny_coco, cfg, tmp_path, resume=True)
    (line,) = [r.getMessage() for r in caplog.records if "on resume at iteration" in r.getMessage()]
    assert "steps [] -> [12, 14]" in line and "fresh run" not in line
    cfg.train.max_iter, cfg.train.steps = 3, ()
    budgeted = _trainer(tiny_coco, cfg, tmp_path, resume=True, time_budget_minutes=1.0)
    assert budgeted.budget is not None
    assert budgeted.cfg.train.max_iter == 3 + budgeted.budget.budget.first_fit_iters


def test_a_completed_run_extended_past_all_its_decays_is_told_its_rate_and_how_to_decay_ahead(
    tiny_coco: SyntheticCoco, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A run that took both its decays (steps [1, 2] of 3), resumed with train.max_iter=6,
    trained every new step at gamma ** 2 of the rate while its lines gave the base rate and
    an extension as of a fresh run: the rate in effect is logged, and a warning says the steps
    added train at it with the --set that puts decays ahead."""
    cfg = tiny_config()
    cfg.train.steps, cfg.train.warmup_iters = (1, 2), 0
    _trainer(tiny_coco, cfg, tmp_path).train()
    cfg.train.max_iter = 6
    with caplog.at_level(logging.INFO, logger="sparsercnn.engine"):
        trainer = _trainer(tiny_coco, cfg, tmp_path, resume=True)
        lr = trainer.base_lr * cfg.train.gamma**2
        trainer.train()
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning == (
        "schedule extended on resume at iteration 3: max_iter 3 -> 6; its decays [1, 2] are all "
        f"behind iteration 3: the steps added train at lr {lr:.3g}; --set 'train.steps=[5]' "
        "gives them a fresh run's decays ahead instead"
    )
    (setup,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("training on")]
    assert f"lr {lr:.3g} at iteration 3 (base {trainer.base_lr:.3g}, " in setup


def test_a_completed_run_whose_budget_does_not_extend_it_is_not_told_to_give_one(
    tiny_coco: SyntheticCoco, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``demo --resume --time-budget 5`` of a trained demo (budget_extends=False) said to give
    a time budget to continue the run, the one the demo had just ignored."""
    cfg = tiny_config()
    _trainer(tiny_coco, cfg, tmp_path).train()

    def hint(**kwargs: Any) -> str:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="sparsercnn"):  # said by check_resume
            _trainer(tiny_coco, cfg, tmp_path, resume=True, **kwargs).train()
        (line,) = [r.getMessage() for r in caplog.records if "nothing to train" in r.getMessage()]
        return line

    assert hint().endswith("(raise train.max_iter, or give a time budget, to continue the run)")
    kept = hint(time_budget_minutes=1.0, budget_extends=False)
    assert kept.endswith("(raise train.max_iter to continue the run)")


def test_a_checked_resume_is_the_one_value_that_says_what_to_restore(
    tiny_coco: SyntheticCoco, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A command's resume, checked before the data, was given as ``checked_resume`` beside a
    ``resume`` it had to agree with (``resume=False`` with it trained a new run). It is the
    ``resume``: the checkpoint it chose is restored (here not the newest), and what its check
    said (the schedule notes) is not said again."""
    cfg = tiny_config()
    cfg.train.checkpoint_period = 2
    _trainer(tiny_coco, cfg, tmp_path).train()
    chosen = tmp_path / "checkpoint_0000002.pt"
    with caplog.at_level(logging.INFO, logger="sparsercnn"):
        checked = check_resume(chosen, cfg)
    notes = [r.getMessage() for r in caplog.records if "than train.max_iter" in r.getMessage()]
    assert notes  # tiny's decays are past its 3 steps
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sparsercnn"):
        resumed = _trainer(tiny_coco, cfg, tmp_path, resume=checked)
    assert (resumed.iteration, resumed.checkpoint_path) == (2, chosen)
    said = [r.getMessage() for r in caplog.records]
    assert said == [f"resumed from {chosen} at iteration 2"]


def test_the_trainer_says_no_schedule_notes(
    tiny_coco: SyntheticCoco, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """tiny's decays and warm-up, never reached in 3 steps, were said again to the finished run
    resumed with nothing to train; and a new run's were said by the trainer unless its caller
    passed a flag saying it had said them (a command, before the data's check). A new run's are
    its caller's to say (``train_from_coco``), a resumed run's its check's: the trainer says
    none."""
    cfg = tiny_config()
    with caplog.at_level(logging.WARNING, logger="sparsercnn"):
        trainer = _trainer(tiny_coco, cfg, tmp_path)
        trainer.iteration = cfg.train.max_iter  # trained to its end
        trainer._save_checkpoint()
        _trainer(tiny_coco, cfg, tmp_path, resume=True)
    assert not [r for r in caplog.records if "than train.max_iter" in r.getMessage()]


def test_the_schedule_notes_judge_the_schedule_the_run_trains(
    tiny_coco: SyntheticCoco, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """tiny's decays (2400, 2800) and 50 warm-up steps kept with a max_iter of 3: valid, said
    by the run's caller (the trainer says none). The command said it of the config before the
    resume and the budget set the schedule: a completed run that a new budget extends (its
    refits judge the warm-up) or a larger max_iter (the decays of a fresh run of that length)
    was told it would never decay nor reach train.lr."""

    def notes() -> list[str]:
        messages = [r.getMessage() for r in caplog.records if r.name == config_module.__name__]
        return [
            message
            for message in messages
            if "than train.max_iter" in message or "before train.max_iter" in message
        ]

    cfg = tiny_config()
    with caplog.at_level(logging.WARNING, logger=config_module.__name__):
        config_module.log_schedule_notes(cfg.train)
        _trainer(tiny_coco, cfg, tmp_path).train()
        assert notes() == [
            "train.steps [2400, 2800] are not before train.max_iter=3: the learning rate does "
            "not decay there; set train.steps to change that",
            "train.warmup_iters=50 is more than train.max_iter=3: the learning rate never "
            "reaches train.lr",
        ]
        caplog.clear()
        budgeted = _trainer(tiny_coco, cfg, tmp_path, resume=True, time_budget_minutes=1.0)
        cfg.train.max_iter = 200
        extended = _trainer(tiny_coco, cfg, tmp_path, resume=True)
    assert budgeted.budget is not None and budgeted.budget.completed_at is not None
    assert extended.cfg.train.steps == (160, 187)
    assert notes() == []


def test_resuming_with_a_schedule_that_raises_the_lr_is_warned_about(
    tiny_coco: SyntheticCoco, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A run that decayed at 2, resumed with a fixed preset's whole schedule (decays at 2400
    and 2800): the decay was dropped and the learning rate went back up tenfold with only an
    info line. Its own schedule extended keeps the decay: no warning. The schedule's change is
    said once (the resume's schedule line and the trainer's warning both gave it)."""
    cfg = tiny_config()
    cfg.train.steps, cfg.train.warmup_iters = (2,), 2  # a schedule the run reaches: no notes
    _trainer(tiny_coco, cfg, tmp_path).train()
    cfg.train.max_iter = 15
    with caplog.at_level(logging.INFO, logger="sparsercnn.engine"):
        _trainer(tiny_coco, cfg, tmp_path, resume=True)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        caplog.clear()
        cfg.train.max_iter, cfg.train.steps = 3000, (2400, 2800)
        resumed = _trainer(tiny_coco, cfg, tmp_path, resume=True)
    before, after = (
        resumed.base_lr * train_lr_factor(resumed.cfg.train, 3, steps=steps)
        for steps in ((2,), (2400, 2800))
    )
    assert after == pytest.approx(10 * before)
    (message,) = [r.getMessage() for r in caplog.records if "steps [2] ->" in r.getMessage()]
    assert message.startswith("schedule replaced (not the learning rates the run trained with)")
    assert "steps [2] -> [2400, 2800]" in message
    assert f"the learning rate rises from {before:.3g} to {after:.3g} there" in message
    assert "resume without --preset or --config (the run's config.json" in message
    assert "--set train.max_iter=3 'train.steps=[2]'" in message


def test_the_lr_rise_on_resume_is_judged_by_the_run_s_own_rates(
    tiny_coco: SyntheticCoco, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A run with a decay at 2, resumed at 2 with the decay put at 3, was warned of a rise from
    the decayed rate, which it never trained at (the decay at 2 applies from step 2 on).
    Resumed at 4, after the decay, with gamma 0.5 for 0.1, the rate rose fivefold unsaid: both
    schedules were computed with the new gamma."""
    cfg = tiny_config()
    cfg.train.max_iter, cfg.train.steps, cfg.train.warmup_iters = 4, (2,), 2
    cfg.train.checkpoint_period = 2
    _trainer(tiny_coco, cfg, tmp_path).train()

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    cfg.train.steps = (3,)
    with caplog.at_level(logging.WARNING, logger="sparsercnn.engine"):
        _trainer(tiny_coco, cfg, tmp_path, resume=tmp_path / "checkpoint_0000002.pt")
        assert warnings() == []
        cfg.train.max_iter, cfg.train.steps, cfg.train.gamma = 6, (2,), 0.5
        resumed = _trainer(tiny_coco, cfg, tmp_path, resume=True)
    before, after = resumed.base_lr * 0.1, resumed.base_lr * 0.5
    (message,) = warnings()
    assert message.startswith(
        "schedule replaced (not the learning rates the run trained with) on resume at "
        "iteration 4: max_iter 4 -> 6, gamma 0.1 -> 0.5; the "
        f"learning rate rises from {before:.3g} to {after:.3g} there"
    )


def test_a_second_interrupt_during_a_checkpoint_names_the_one_before(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A second Ctrl-C stops at once, in the middle of the checkpoint the first one asked for:
    the run ended without naming the checkpoint --resume continues from."""
    cfg = tiny_config()
    cfg.train.max_iter, cfg.train.checkpoint_period = 4, 2
    save_payload = checkpoint_module._save_payload

    def interrupted_save(payload: dict[str, Any], path: Path) -> None:
        if payload["iteration"] != 4:
            return save_payload(payload, path)
        path.write_bytes(b"PK half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module, "_save_payload", interrupted_save)
    with caplog.at_level(logging.WARNING), pytest.raises(KeyboardInterrupt):
        _trainer(tiny_coco, cfg, tmp_path).train()
    assert sorted(path.name for path in tmp_path.glob("checkpoint*")) == ["checkpoint_0000002.pt"]
    earlier = tmp_path / "checkpoint_0000002.pt"
    expected = f"interrupted after iteration 4; checkpoint {earlier} holds iteration 2 (the steps "
    expected += "after it are lost): continue with --resume"
    assert expected in caplog.text


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM as the command line handles it (its Terminated)


@pytest.mark.usefixtures("python_sigint")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_run_interrupted_before_its_first_step_writes_no_checkpoint(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    signum: int,
) -> None:
    """A signal before the first step (while the model is wrapped for training) wrote
    checkpoint_0000000.pt: a folder to --resume at iteration 0 with nothing trained. A resumed
    run stopped so writes none either: the checkpoint it resumed from holds its progress. The
    notice the signal prints says so (it said a checkpoint would be saved)."""
    cfg = tiny_config()
    cfg.train.max_iter, cfg.train.checkpoint_period = 4, 2
    wrap_ddp = trainer_module.wrap_ddp

    def signalled_wrap(*args: Any, **kwargs: Any) -> torch.nn.Module:
        signal.raise_signal(signum)
        return wrap_ddp(*args, **kwargs)

    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        with monkeypatch.context() as signalled:
            signalled.setattr(trainer_module, "wrap_ddp", signalled_wrap)
            with caplog.at_level(logging.WARNING), pytest.raises(KeyboardInterrupt):
                _trainer(tiny_coco, cfg, tmp_path / "new").train()
        assert not list((tmp_path / "new").glob("*checkpoint*"))
        assert "interrupted after iteration 0; no checkpoint was written yet" in caplog.text
        notice = "interrupted before the first step: stopping, with nothing to save"
        assert notice in capfd.readouterr().err

        cfg.train.max_iter = 2
        _trainer(tiny_coco, cfg, tmp_path / "resumed").train()
        cfg.train.max_iter = 4
        resumed = _trainer(tiny_coco, cfg, tmp_path / "resumed", resume=True)
        caplog.clear()
        with monkeypatch.context() as signalled:
            signalled.setattr(trainer_module, "wrap_ddp", signalled_wrap)
            with caplog.at_level(logging.WARNING), pytest.raises(KeyboardInterrupt):
                resumed.train()
    finally:
        signal.signal(signal.SIGTERM, previous)
    checkpoint = tmp_path / "resumed" / "checkpoint_0000002.pt"
    assert list((tmp_path / "resumed").glob("checkpoint_*.pt")) == [checkpoint]
    expected = f"interrupted after iteration 2; checkpoint {checkpoint} holds iteration 2: "
    assert expected + "continue with --resume" in caplog.text
    notice = f"interrupted before the first step: stopping; {checkpoint} holds iteration 2 to "
    assert notice + "resume from" in capfd.readouterr().err


@pytest.mark.usefixtures("python_sigint")
def test_a_run_interrupted_during_its_first_step_checkpoints_it(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A Ctrl-C while the first step reads its images: the step finishes and is saved, as the
    notice says (iteration 0 alone does not tell it from a signal before the first step)."""
    cfg = tiny_config()
    cfg.train.max_iter = 4
    decode = CocoDataset._decode

    def interrupted_decode(dataset: CocoDataset, position: int) -> Any:
        signal.raise_signal(signal.SIGINT)
        return decode(dataset, position)

    monkeypatch.setattr(CocoDataset, "_decode", interrupted_decode)
    with pytest.raises(KeyboardInterrupt):
        _trainer(tiny_coco, cfg, tmp_path).train()
    assert [path.name for path in tmp_path.glob("checkpoint_*.pt")] == ["checkpoint_0000001.pt"]
    notice = "interrupted: finishing the step (or evaluation) under way, then saving a checkpoint"
    assert notice in capfd.readouterr().err


def test_a_failed_evaluation_keeps_the_checkpoint_due_and_resumes_there(
    tiny_coco: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The final evaluation fails (bad validation data): the weights trained so far are
    checkpointed before the error, and the resumed run evaluates and finishes."""
    cfg = tiny_config()
    cfg.train.checkpoint_period = cfg.train.eval_period = 0
    cfg.train.max_iter = 3
    with monkeypatch.context() as failing, pytest.raises(RuntimeError, match="evaluation failed"):
        failing.setattr(training_evaluation, "evaluate", _raise_runtime_error)
        _trainer(tiny_coco, cfg, tmp_path, with_val=True).train()
    assert (tmp_path / "checkpoint_0000003.pt").is_file()
    assert not (tmp_path / "model_final.safetensors").exists()
    result = _trainer(tiny_coco, cfg, tmp_path, with_val=True, resume=True).train()
    assert result.iteration == 3 and result.final_metrics is not None
    assert result.model_final_path is not None and result.model_final_path.is_file()
    assert result.model_best_path is not None and result.model_best_path.is_file()
    # The checkpoint was written again with the evaluation, as at a normal end: resuming the
    # run once more evaluated it a second time (two records of iteration 3).
    extra = load_training_checkpoint(tmp_path / "checkpoint_0000003.pt")["extra"]
    assert extra["last_evaluation"] == 3 and extra["best_ap"] == result.best_ap
    records = _records(tmp_path)
    assert [r["iter"] for r in records if "eval" in r] == [3]
    _trainer(tiny_coco, cfg, tmp_path, with_val=True, resume=True).train()
    assert _records(tmp_path) == records


def _raise_runtime_error(*args: object, **kwargs: object) -> None:
    raise RuntimeError("evaluation failed")


@pytest.mark.usefixtures("python_sigint")
def test_a_resumed_run_with_no_step_left_says_so_when_interrupted_in_its_evaluation(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A finished run resumed for its missed final evaluation, Ctrl-C'd during it: the notice
    said "interrupted before the first step", of a run that had no step to take; and the
    evaluation was not checkpointed, so that the next resume evaluated it again."""
    cfg = tiny_config()
    cfg.train.checkpoint_period = cfg.train.eval_period = 0
    cfg.train.max_iter = 1
    with monkeypatch.context() as failing, pytest.raises(RuntimeError, match="evaluation failed"):
        failing.setattr(training_evaluation, "evaluate", _raise_runtime_error)
        _trainer(tiny_coco, cfg, tmp_path, with_val=True).train()
    evaluate = training_evaluation.evaluate

    def interrupted_evaluate(*args: Any, **kwargs: Any) -> Any:
        signal.raise_signal(signal.SIGINT)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(training_evaluation, "evaluate", interrupted_evaluate)
    capfd.readouterr()
    with pytest.raises(KeyboardInterrupt):
        _trainer(tiny_coco, cfg, tmp_path, with_val=True, resume=True).train()
    checkpoint = tmp_path / "checkpoint_0000001.pt"
    assert [path.name for path in tmp_path.glob("checkpoint_*.pt")] == [checkpoint.name]
    notice = "interrupted with no step left to train: stopping after the final evaluation under "
    notice += f"way, if any, saved with it; {checkpoint} holds iteration 1 to resume from"
    assert notice in capfd.readouterr().err
    assert load_training_checkpoint(checkpoint)["extra"]["last_evaluation"] == 1
    assert not (tmp_path / "model_final.safetensors").exists()
    records = _records(tmp_path)
    assert [r["iter"] for r in records if "eval" in r] == [1]
    # Nothing is left to evaluate: an evaluation would raise.
    monkeypatch.setattr(training_evaluation, "evaluate", _raise_runtime_error)
    result = _trainer(tiny_coco, cfg, tmp_path, with_val=True, resume=True).train()
    assert _records(tmp_path) == records
    assert result.model_final_path is not None and result.model_final_path.is_file()
    assert result.model_best_path is not None and result.model_best_path.is_file()
    wrap_ddp = trainer_module.wrap_ddp

    def signalled_wrap(*args: Any, **kwargs: Any) -> torch.nn.Module:
        signal.raise_signal(signal.SIGINT)
        return wrap_ddp(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "wrap_ddp", signalled_wrap)
    capfd.readouterr()
    with pytest.raises(KeyboardInterrupt):
        _trainer(tiny_coco, cfg, tmp_path, with_val=True, resume=True).train()
    notice = "interrupted with no step left to train: stopping, with nothing new to save; "
    assert notice + f"{checkpoint} holds iteration 1" in capfd.readouterr().err


def test_a_failed_periodic_evaluation_is_redone_on_resume(
    tiny_coco: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The periodic evaluation at 2 fails and checkpoint 2 is saved without it: the resumed
    run continued from 2 and never evaluated it, although the error said to resume once fixed."""
    cfg = tiny_config()
    cfg.train.checkpoint_period = cfg.train.eval_period = 2
    cfg.train.max_iter = 4
    with monkeypatch.context() as failing, pytest.raises(RuntimeError, match="evaluation failed"):
        failing.setattr(training_evaluation, "evaluate", _raise_runtime_error)
        _trainer(tiny_coco, cfg, tmp_path, with_val=True).train()
    checkpoint = tmp_path / "checkpoint_0000002.pt"
    assert load_training_checkpoint(checkpoint)["extra"]["last_evaluation"] is None
    result = _trainer(tiny_coco, cfg, tmp_path, with_val=True, resume=True).train()
    assert result.iteration == 4
    assert [r["iter"] for r in _records(tmp_path) if "eval" in r] == [2, 4]
    extra = load_training_checkpoint(checkpoint)["extra"]  # checkpointed again with it
    assert extra["last_evaluation"] == 2 and extra["best_iteration"] == 2


@pytest.mark.parametrize(
    ("failing_read", "checkpoint_period", "expected"),
    [
        (
            3,
            1,
            "after iteration 2; checkpoint {run}/checkpoint_0000002.pt holds iteration 2: "
            "continue with --resume once it is fixed",
        ),
        (
            1,
            1000,
            "after iteration 0; no checkpoint was written yet, so there is nothing to "
            "resume: start the run again once it is fixed",
        ),
    ],
)
def test_a_run_stopped_by_an_error_names_the_checkpoint_that_resumes_it(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failing_read: int,
    checkpoint_period: int,
    expected: str,
) -> None:
    """An image changed on disk after the data's check stopped training with the file named,
    but not which checkpoint holds the run's progress nor that --resume continues from it, as
    an interrupted run says."""
    cfg = tiny_config()
    cfg.train.checkpoint_period, cfg.train.max_iter = checkpoint_period, 4
    trainer = _trainer(tiny_coco, cfg, tmp_path)
    caplog.clear()  # the notes on tiny's schedule cut by max_iter
    decode, reads = CocoDataset._decode, []

    def changed_on_disk(dataset: CocoDataset, position: int) -> Any:
        reads.append(position)  # one image per step (batch size 1)
        if len(reads) == failing_read:
            raise ImageReadError("not an image, or a damaged one")
        return decode(dataset, position)

    monkeypatch.setattr(CocoDataset, "_decode", changed_on_disk)
    with caplog.at_level(logging.INFO), pytest.raises(ImageChangedError, match="changed on disk"):
        trainer.train()
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert line == "training stopped by the error below " + expected.format(run=tmp_path)


def test_a_checkpoint_closes_the_logging_window(tiny_coco: SyntheticCoco, tmp_path: Path) -> None:
    """Logging every 3 steps with a checkpoint at 2: a record at 2 as well, so that a run
    resumed there logs every step (its next window starts at 3)."""
    cfg = tiny_config()
    cfg.train.log_period, cfg.train.checkpoint_period, cfg.train.max_iter = 3, 2, 4
    _trainer(tiny_coco, cfg, tmp_path).train()
    assert [r["iter"] for r in _records(tmp_path) if "loss" in r] == [2, 3, 4]


@pytest.mark.parametrize(
    "left",
    [
        "checkpoint_0000005.pt",
        "model_best.safetensors",
        "model_final.safetensors",
        "config.json",
        "curves.png",
    ],
)
def test_refuses_to_overwrite_a_run(tiny_coco: SyntheticCoco, tmp_path: Path, left: str) -> None:
    """A run folder whose checkpoints were deleted still holds another run: a new run there
    overwrote its model_final and left its model_best beside the new one; a config.json the
    user wrote there was replaced by the run's."""
    (tmp_path / left).write_bytes(b"")
    with pytest.raises(FileExistsError, match=rf"{tmp_path} .*\({left}\)") as refused:
        _trainer(tiny_coco, tiny_config(), tmp_path)
    # Only a checkpoint can be resumed.
    assert ("(--resume)" in str(refused.value)) == left.startswith("checkpoint_")
    assert (tmp_path / left).read_bytes() == b""


class _PoisonedCriterion:
    """Wraps the criterion and makes the loss NaN for the first ``count`` calls."""

    def __init__(self, criterion: Any, count: int) -> None:
        self.criterion = criterion
        self.remaining = count

    def __call__(self, output: ModelOutput, targets: list[Target]) -> SetLoss:
        loss = self.criterion(output, targets)
        if self.remaining > 0:
            self.remaining -= 1
            loss = SetLoss(total=loss.total * math.nan, terms=loss.terms, indices=loss.indices)
        return loss


def test_nonfinite_loss_skips_the_step(tiny_coco: SyntheticCoco, tmp_path: Path) -> None:
    cfg = tiny_config()
    cfg.train.max_iter = 2
    trainer = _trainer(tiny_coco, cfg, tmp_path)
    trainer.step.criterion = _PoisonedCriterion(trainer.step.criterion, count=1)
    result = trainer.train()
    assert result.iteration == 2 and result.skipped_steps == 1
    first, second = (r for r in _records(tmp_path) if "iter" in r and "eval" not in r)
    assert first["skipped"] == 1 and "loss" not in first
    assert second["skipped"] == 0 and math.isfinite(second["loss"])
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


class _DivergedMatching:
    """Raises the matcher's non-finite-cost error for the first ``count`` calls."""

    def __init__(self, criterion: Any, count: int) -> None:
        self.criterion = criterion
        self.remaining = count

    def __call__(self, output: ModelOutput, targets: list[Target]) -> SetLoss:
        if self.remaining > 0:
            self.remaining -= 1
            raise NonFiniteCostError("Hungarian matching cost for image 0 has 3 non-finite entries")
        return self.criterion(output, targets)


def test_nonfinite_matching_cost_skips_the_step(
    tiny_coco: SyntheticCoco, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tiny_config()
    cfg.train.max_iter = 2
    trainer = _trainer(tiny_coco, cfg, tmp_path)
    initial = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    trainer.step.criterion = _DivergedMatching(trainer.step.criterion, count=1)
    loader = build_train_loader(trainer.train_dataset, batch_size=2, num_workers=0, seed=0)
    step = trainer.step(loader, lr=1e-4, iteration=0)
    assert not step.applied and trainer.step.skipped_steps == 1
    assert "non-finite entries" in caplog.text
    for key, value in trainer.model.named_parameters():
        assert torch.equal(value, initial[key]), key  # the skipped step changed nothing
    assert trainer.step(loader, lr=1e-4, iteration=1).applied


def test_repeated_nonfinite_loss_raises(tiny_coco: SyntheticCoco, tmp_path: Path) -> None:
    cfg = tiny_config()
    cfg.train.max_iter = 10
    cfg.train.max_nonfinite_steps = 2
    trainer = _trainer(tiny_coco, cfg, tmp_path)
    initial = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    trainer.step.criterion = _PoisonedCriterion(trainer.step.criterion, count=100)
    with pytest.raises(NonFiniteLossError, match=r"2 consecutive steps with a non-finite loss"):
        trainer.train()
    assert trainer.iteration == 1  # raised during the second step
    for key, value in trainer.model.named_parameters():
        assert torch.equal(value, initial[key]), key  # no update was applied


def test_time_budget_stops_gracefully(tiny_coco: SyntheticCoco, tmp_path: Path) -> None:
    cfg = tiny_config()
    cfg.train.max_iter = 1000
    trainer = _trainer(tiny_coco, cfg, tmp_path, time_budget_minutes=0.001)
    result = trainer.train()
    assert result.stopped_early and result.iteration == 1
    assert load_training_checkpoint(tmp_path)["iteration"] == 1
    assert result.model_final_path is not None and result.model_final_path.is_file()
    # The config ends where the run stopped: a run from it takes the same steps, without the
    # preset's decays (at 2400 and 2800), which the run never reached.
    for saved in (
        Config.load(tmp_path / "config.json"),
        load_model_file(result.model_final_path).config,
    ):
        assert (saved.train.max_iter, saved.train.steps) == (1, ())


@pytest.mark.parametrize("minutes", [0.0, -1.0, float("nan")])
def test_a_budget_that_is_not_positive_is_refused_in_its_unit(
    tiny_coco: SyntheticCoco, tmp_path: Path, minutes: float
) -> None:
    with pytest.raises(ValueError, match=rf"^time_budget_minutes must be positive, got {minutes}$"):
        _trainer(tiny_coco, tiny_config(), tmp_path, time_budget_minutes=minutes)


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("gpu", "device 'gpu' is not a device; use 'cpu', 'cuda' or 'cuda:N'"),
        ("mps", "device 'mps': sparsercnn runs on 'cpu', 'cuda' or 'cuda:N' only"),
        ("meta", "device 'meta': sparsercnn runs on 'cpu', 'cuda' or 'cuda:N' only"),
    ],
)
def test_a_device_that_is_not_one_here_is_refused_before_anything_is_written(
    tiny_coco: SyntheticCoco, tmp_path: Path, device: str, message: str
) -> None:
    """Was torch's "Expected one of cpu, cuda, ipu, xpu, ..." for "gpu", "PyTorch is not linked
    with support for mps devices" for "mps", and a Trainer on the meta device for "meta"."""
    train, _ = _datasets(tiny_coco, tiny_config())
    with pytest.raises(ValueError, match=f"^{message}$"):
        Trainer(tiny_config(), train, tmp_path / "run", device=device, progress=False)
    assert not (tmp_path / "run").exists()


def test_a_device_other_than_dist_info_s_is_refused(
    tiny_coco: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was ignored without a word: ``dist_info.device`` decided where the run trained."""
    train, _ = _datasets(tiny_coco, tiny_config())
    # The same device, also named less precisely, is the one dist_info gives.
    for number, same in enumerate(("cpu", "cpu:0", torch.device("cpu"))):
        trainer = Trainer(
            tiny_config(), train, tmp_path / f"run{number}", device=same, dist_info=DistInfo()
        )
        assert trainer.device == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    on_gpu_1 = DistInfo(device=torch.device("cuda", 1))
    assert trainer_module._process_place("cuda", on_gpu_1) is on_gpu_1
    assert trainer_module._process_place("cuda:1", on_gpu_1) is on_gpu_1
    for device, used in [("cpu", on_gpu_1), ("cuda:0", on_gpu_1), ("cuda", DistInfo())]:
        with pytest.raises(
            ValueError, match=rf"^device '{device}' is not dist_info\.device '{used.device}': "
        ):
            Trainer(tiny_config(), train, tmp_path / "run", device=device, dist_info=used)
    with pytest.raises(ValueError, match=r"^device 'gpu' is not a device"):
        Trainer(tiny_config(), train, tmp_path / "run", device="gpu", dist_info=DistInfo())
    assert not (tmp_path / "run").exists()


def test_the_default_device_is_the_runtime_s(
    tiny_coco: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No device: CUDA where there is a GPU, as ``--device`` and the other APIs default
    (``runtime.resolve_device``), not GPU 0 of its own default."""
    train, _ = _datasets(tiny_coco, tiny_config())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    trainer = Trainer(tiny_config(), train, tmp_path / "run", progress=False)
    assert trainer.device == torch.device("cpu")


class _VirtualClockBudget(TimeBudget):
    """Every iteration takes one virtual second, whatever the load of the machine."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds, time.perf_counter(), skip_iters=1, measure_iters=2)
        self.virtual_elapsed = 0.0

    def record(self, iteration_seconds: float) -> bool:
        self.virtual_elapsed += 1.0
        return super().record(1.0)

    def elapsed(self) -> float:
        return self.virtual_elapsed


def test_time_budget_shortens_the_schedule(tiny_coco: SyntheticCoco, tmp_path: Path) -> None:
    cfg = tiny_config()
    cfg.train.max_iter = 1000
    cfg.train.steps = (800, 900)
    cfg.train.warmup_iters = 100
    trainer = _trainer(tiny_coco, cfg, tmp_path, time_budget_minutes=1.0)
    trainer.budget = BudgetedSchedule(_VirtualClockBudget(10.0), trainer.cfg.train)
    result = trainer.train()

    # Measured after 3 iterations (1 skipped, 2 averaged): 1 s each. Left: 10 - 3 s, minus the
    # end reserve (FINISH_OVERHEAD_S; no checkpoint or evaluation yet), at 1 s per iteration.
    expected_max_iter = 3 + int(10 - 3 - FINISH_OVERHEAD_S)
    fitted = Config.load(tmp_path / "config.json").train
    assert fitted.max_iter == expected_max_iter == result.iteration
    scale = expected_max_iter / 1000
    assert fitted.steps == (round(800 * scale), round(900 * scale))
    assert fitted.warmup_iters == 100  # kept (longer than the run: warned about)
    assert not result.stopped_early  # the fitted schedule ran to its end


def test_a_budget_that_ends_the_run_soon_writes_only_the_decays_it_took(
    tiny_coco: SyntheticCoco, tmp_path: Path
) -> None:
    """Fitted after 3 steps to 4 (6 s: 3 spent, 2 reserved), the decays (800 and 900 of 1000)
    scale to 3 and 4 and were moved ahead to 4 and 4: config.json said ``max_iter 4, steps [4,
    4]``, two decays the run never took, and a run from it warned of them. The decay at 3 is
    the last step's, which the run takes; the one at 4 is dropped."""
    cfg = tiny_config()
    cfg.train.max_iter, cfg.train.steps, cfg.train.warmup_iters = 1000, (800, 900), 0
    trainer = _trainer(tiny_coco, cfg, tmp_path, time_budget_minutes=1.0)
    trainer.budget = BudgetedSchedule(_VirtualClockBudget(6.0), trainer.cfg.train)
    result = trainer.train()
    assert result.iteration == 4
    assert result.model_final_path is not None
    for saved in (
        Config.load(tmp_path / "config.json"),
        load_model_file(result.model_final_path).config,
        Config.from_run_dict(load_training_checkpoint(tmp_path)["config"]),
    ):
        assert (saved.train.max_iter, saved.train.steps) == (4, (3,))
        assert saved.train.schedule_notes() == []


def test_bf16_autocast_on_cpu(
    tiny_coco: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bf16 path must work whatever this CPU runs natively (where it is emulated, it is
    # only slow).
    monkeypatch.setattr(train_step, "fast_bf16_supported", lambda device: True)
    cfg = tiny_config()
    cfg.train.max_iter = 1
    cfg.train.amp = True
    trainer = _trainer(tiny_coco, cfg, tmp_path)
    assert trainer.amp_dtype == torch.bfloat16 and trainer.scaler is None
    result = trainer.train()
    assert result.skipped_steps == 0 and math.isfinite(result.last_losses["loss"])
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


def test_amp_falls_back_to_fp32_without_native_bf16(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(train_step, "fast_bf16_supported", lambda device: False)
    with caplog.at_level("WARNING"):
        assert train_step.autocast_dtype(torch.device("cpu"), enabled=True) is None
    assert "no native bf16" in caplog.text
    assert train_step.autocast_dtype(torch.device("cpu"), enabled=False) is None


class _LoaderBuilt(Exception):
    """Stops training once the training loader is built."""


@pytest.mark.parametrize("grouping", [True, False])
def test_trainer_builds_its_loader_with_the_configured_grouping(
    tiny_coco: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, grouping: bool
) -> None:
    cfg = tiny_config()
    cfg.train.aspect_ratio_grouping = grouping
    trainer = _trainer(tiny_coco, cfg, tmp_path)
    seen: dict[str, Any] = {}

    def build(*args: Any, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise _LoaderBuilt

    monkeypatch.setattr(trainer_module, "build_train_loader", build)
    with pytest.raises(_LoaderBuilt):
        trainer.train()
    assert seen["aspect_ratio_grouping"] is grouping
