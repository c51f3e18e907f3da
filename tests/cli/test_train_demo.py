"""The ``train`` and ``demo`` handlers end to end, on a few small synthetic images."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from sparsercnn.cli import demo
from sparsercnn.cli.main import main
from sparsercnn.data import demo_dataset
from sparsercnn.data.demo_dataset import DEMO_CLASSES, generate_demo_dataset
from sparsercnn.engine import inference
from sparsercnn.engine.trainer import Trainer
from sparsercnn.image_inputs import DRAWINGS_MARKER
from sparsercnn.model import build_model
from sparsercnn.recipe import for_dataset
from sparsercnn.recipe.step_timing import StepCost
from sparsercnn.run_files import RUN_LOCK_FILE
from sparsercnn.weights import convert
from sparsercnn.weights.key_tables import Layout
from sparsercnn.weights.readers import RawCheckpoint
from tests.lock_holder import lock_held_elsewhere
from tests.synthetic_coco import tiny_config


@pytest.mark.slow
def test_train_writes_the_model_file_and_the_metrics_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = generate_demo_dataset(tmp_path / "data", num_train=4, num_val=0, image_size=(96, 128))
    run = tmp_path / "run"
    argv = ["train", "--train-json", str(data.train_json), "--train-images"]
    argv += [str(data.train_images), "--output-dir", str(run), "--preset", "tiny"]
    argv += ["--set", "train.max_iter=2", "train.log_period=1", "--device", "cpu"]
    assert main(argv) == 0
    assert "training ended at iteration 2" in capsys.readouterr().out
    from sparsercnn.model_file import load_model_file

    loaded = load_model_file(run / "model_final.safetensors")
    assert loaded.config.model.num_classes == len(DEMO_CLASSES)
    assert loaded.config.train.max_iter == 2 and loaded.categories.names == list(DEMO_CLASSES)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["iter"] for r in steps] == [1, 2]
    assert all(r["loss"] > 0 for r in steps)


TABLE_HEADER = "COCO bbox evaluation on"  # the first line of EvaluationResult.format_table()


@pytest.mark.slow
def test_train_prints_the_final_table_once_with_its_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Training logs each evaluation on one line; the table of the model report/ draws is
    printed once, after the summary (the log held the same table before it)."""
    data = generate_demo_dataset(tmp_path / "data", num_train=4, num_val=2, image_size=(96, 128))
    run = tmp_path / "run"
    argv = ["train", "--train-json", str(data.train_json), "--train-images"]
    argv += [str(data.train_images), "--val-json", str(data.val_json), "--val-images"]
    argv += [str(data.val_images), "--output-dir", str(run), "--preset", "tiny"]
    argv += ["--set", "train.max_iter=2", "train.eval_period=2", "--device", "cpu"]
    with caplog.at_level(logging.INFO):
        assert main(argv) == 0
    printed = capsys.readouterr().out
    assert (printed + caplog.text).count(TABLE_HEADER) == 1
    assert "Per-class AP:" in printed and "speed on cpu" in printed
    summary = printed.index("final AP")
    assert (
        summary
        < printed.index("evaluation of model_best.safetensors:")
        < printed.index(TABLE_HEADER)
    )
    evaluations = "sparsercnn.engine.training_evaluation"
    logged = [r.getMessage() for r in caplog.records if r.name == evaluations]
    assert any(m.startswith("evaluation at iteration 2: COCO bbox AP ") for m in logged)
    assert caplog.text.count("COCO bbox AP ") == 1  # not the evaluator's line besides


@pytest.mark.slow
def test_demo_trains_evaluates_and_writes_every_listed_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The demo's data set, cut from 600 + 100 images to 6 + 3.
    small = functools.partial(generate_demo_dataset, num_train=6, num_val=3)
    monkeypatch.setattr(demo_dataset, "generate_demo_dataset", small)
    passes: list[int] = []  # validation passes: the one at the end of training, nothing after
    run_inference = inference.run_inference

    def counted(*args: Any, **kwargs: Any) -> Any:
        passes.append(1)
        return run_inference(*args, **kwargs)

    monkeypatch.setattr(inference, "run_inference", counted)
    monkeypatch.setattr(for_dataset, "TIMING_SIDES", (96, 128))  # a quicker recipe timing
    out = tmp_path / "demo"
    argv = ["demo", "--output-dir", str(out), "--time-budget", "1", "--device", "cpu"]
    overrides = ["train.max_iter=2", "train.batch_size=2", "model.num_stages=4"]
    with caplog.at_level(logging.INFO):
        assert main([*argv, "--set", *overrides]) == 0
    assert len(passes) == 1
    printed = capsys.readouterr().out
    assert "AP = " in printed and "on 3 validation images" in printed
    # The last evaluation's table once, just before the summary: training logged it on one line.
    assert (printed + caplog.text).count(TABLE_HEADER) == 1
    assert printed.index(TABLE_HEADER) < printed.index("Demo finished")
    assert "auto recipe" in printed and "input size" in printed
    # The best model when an evaluation ran within the budget, else the final one.
    model = Path(printed.split("model:")[1].split()[0])
    assert model.parent == out / "train" and model.name.endswith(".safetensors")
    listed = [
        model,
        out / "metrics.json",
        out / "val_results.json",
        out / "train" / "curves.png",
        out / "train" / "metrics.jsonl",
        out / "stages.png",
    ]
    for path in listed:
        assert str(path) in printed and path.stat().st_size > 0, path
    assert "learned proposals and stages 1, 2, 4" in printed  # the stages of this model
    assert (out / "report" / "confusion_matrix.png").stat().st_size > 0
    drawn = sorted(path.name for path in (out / "predictions").iterdir())
    assert drawn == [DRAWINGS_MARKER, "000000.jpg", "000001.jpg", "000002.jpg"]
    assert 0.0 <= json.loads((out / "metrics.json").read_text())["AP"] <= 1.0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "foo.bar=1"], "unknown section 'foo'"),
        (["--resume"], "holds no demo run to continue"),
    ],
)
def test_bad_demo_options_are_refused_before_the_data_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--output-dir", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_an_earlier_automatic_demo_s_recipe_refuses_a_fixed_preset_demo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fixed-preset demo into a folder holding only an earlier automatic demo's recipe.json
    went ahead and left that file beside its own run, describing another recipe."""
    out = tmp_path / "demo"
    (out / "train").mkdir(parents=True)
    (out / "train" / "recipe.json").write_text("{}")
    assert main(["demo", "--output-dir", str(out), "--preset", "tiny"]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'train'} holds files a training run writes (recipe.json) but no" in err
    assert sorted(path.name for path in (out / "train").iterdir()) == ["recipe.json"]
    assert not (out / "data").exists()


def test_an_earlier_demo_run_is_refused_before_the_data_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second demo in the same folder was refused only once the data was made and decoded
    (and, with the automatic recipe, after its timing), for the same message."""
    out = tmp_path / "demo"
    (out / "train").mkdir(parents=True)
    (out / "train" / "model_final.safetensors").write_bytes(b"the first run's model")
    assert main(["demo", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds files a training run writes (model_final.safetensors) but no checkpoint" in err
    # No checkpoint to resume, and a trained model not to delete.
    assert "--resume" not in err and "rm " not in err
    assert sorted(path.name for path in out.iterdir()) == ["train"]
    (out / "train").rename(out / "kept")
    (out / "train").write_text("not a folder")
    assert main(["demo", "--output-dir", str(out)]) == 2
    # Was: "--output-dir OUT/train is a file; give a folder", a path the user never gave.
    assert capsys.readouterr().err.endswith(
        f"--output-dir {out}: {out / 'train'} is a file where the demo's run folder goes; move "
        "it, or choose another --output-dir\n"
    )
    assert not (out / "data").exists()


@pytest.mark.parametrize("resume", [False, True])
def test_a_demo_into_the_folder_of_a_running_one_is_refused_before_the_data_is_made(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    resume: bool,
) -> None:
    """Was: the demo took the run folder's lock only when training started, so a second demo
    into the folder of one still making its data (or resumed) made the data again under it.
    It is refused first, in one line naming the folder and the process that runs in it, and
    makes nothing."""
    small = functools.partial(generate_demo_dataset, num_train=4, num_val=2)
    monkeypatch.setattr(demo_dataset, "generate_demo_dataset", small)
    out = tmp_path / "demo"
    (out / "train").mkdir(parents=True)
    if resume:
        (out / "train" / "config.json").write_text("{}")
    files = sorted(path.name for path in (out / "train").iterdir())
    argv = ["demo", "--output-dir", str(out), "--preset", "tiny", "--device", "cpu"]
    with lock_held_elsewhere(out / "train" / RUN_LOCK_FILE) as other:
        assert main([*argv, "--resume"] if resume else argv) == 2
        assert sorted(path.name for path in out.iterdir()) == ["train"]
        assert sorted(path.name for path in (out / "train").iterdir()) == [RUN_LOCK_FILE, *files]
    assert capsys.readouterr().err == (
        f"sparsercnn demo: error: {out / 'train'} is in use by another training run (process "
        f"{other.pid}, lock {out / 'train' / RUN_LOCK_FILE}); wait for that run to end (or stop "
        "it) and run again, or choose another output folder\n"
    )


@pytest.mark.slow
def test_resuming_a_finished_demo_evaluates_its_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A finished run resumed trains and evaluates nothing: the demo failed on an assertion
    (an interrupted demo drawing its figures could not be completed with --resume)."""
    small = functools.partial(generate_demo_dataset, num_train=4, num_val=2)
    monkeypatch.setattr(demo_dataset, "generate_demo_dataset", small)
    argv = ["demo", "--output-dir", str(tmp_path / "demo"), "--preset", "tiny", "--device", "cpu"]
    argv += ["--set", "train.max_iter=1", "train.batch_size=2"]
    assert main(argv) == 0
    first = capsys.readouterr().out.split("Demo finished")[1].split("AP = ")[1].split()[0]
    assert main([*argv, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert f"AP = {first} on 2 validation images" in printed
    assert "model_best.safetensors" in printed.split("model:")[1].split()[0]


@pytest.mark.slow
def test_a_demo_stopped_after_training_says_how_to_finish_and_resume_finishes_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Ctrl-C while the demo drew its predictions said only "interrupted", and the same command
    again was refused (the run folder is taken): the model is kept and --resume completes."""
    small = functools.partial(generate_demo_dataset, num_train=4, num_val=2)
    monkeypatch.setattr(demo_dataset, "generate_demo_dataset", small)
    draw = demo.draw_predictions

    def interrupted(*args: Any, **kwargs: Any) -> Path:
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "draw_predictions", interrupted)
    out = tmp_path / "demo"
    argv = ["demo", "--output-dir", str(out), "--preset", "tiny", "--device", "cpu"]
    argv += ["--set", "train.max_iter=1", "train.batch_size=2"]
    with caplog.at_level(logging.WARNING, logger="sparsercnn.cli.demo"):
        assert main(argv) == 130
    assert "run the same command with --resume" in caplog.text and str(out / "train") in caplog.text
    assert "interrupted" in capsys.readouterr().err
    assert (out / "train" / "model_best.safetensors").is_file()
    monkeypatch.setattr(demo, "draw_predictions", draw)
    assert main([*argv, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert str(out / "predictions") in printed and (out / "predictions" / "000000.jpg").is_file()


def test_the_demo_reads_starting_weights_once_before_the_data_as_train_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--set train.init_from``: the demo neither read the file up front (a wrong one was named
    only after the data was made) nor gave it to the recipe, which then chose the small model
    whatever the checkpoint's architecture, and the trainer read the file a second time."""
    cfg = tiny_config()
    path = tmp_path / "weights.pth"
    torch.save(build_model(cfg).state_dict(), path)
    events: list[str] = []
    read_checkpoint = convert.read_checkpoint

    def counted(src: str | Path, layout: Layout | None = None) -> RawCheckpoint:
        events.append("read")
        return read_checkpoint(src, layout)

    def generated(*args: Any, **kwargs: Any) -> Any:
        events.append("data")
        return generate_demo_dataset(*args, **{**kwargs, "num_train": 4, "num_val": 2})

    def loaded(self: Trainer) -> Any:
        events.append(f"hidden_dim={self.cfg.model.hidden_dim}")
        raise ValueError("stop once the model is loaded")

    monkeypatch.setattr(convert, "read_checkpoint", counted)
    monkeypatch.setattr(demo_dataset, "generate_demo_dataset", generated)
    monkeypatch.setattr(for_dataset, "_time_step_cost", lambda *args: StepCost(0.01, 0.0))
    monkeypatch.setattr(Trainer, "train", loaded)
    argv = ["demo", "--output-dir", str(tmp_path / "demo"), "--device", "cpu"]
    argv += ["--set", f"train.init_from={path}", "train.max_iter=2"]
    assert main(argv) == 2
    assert "stop once the model is loaded" in capsys.readouterr().err
    # The recipe took the checkpoint's architecture (the tiny model's 32-wide head).
    assert events == ["read", "data", f"hidden_dim={cfg.model.hidden_dim}"]
