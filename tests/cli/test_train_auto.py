"""``sparsercnn train`` without ``--preset``: the automatic recipe is chosen, printed, saved in
``recipe.json`` and ``config.json``, reused on ``--resume``, and a hopeless budget is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from sparsercnn.cli.main import main
from sparsercnn.config import Config
from sparsercnn.data import policy
from sparsercnn.data.checked_coco import CheckedCoco
from sparsercnn.engine.model_init import StartingWeights
from sparsercnn.model import build_model
from sparsercnn.recipe import for_dataset
from sparsercnn.recipe.step_timing import StepCost
from sparsercnn.weights.convert import export_state_dict
from tests.synthetic_coco import SyntheticCoco, WriteCoco, truncate


def _train(data: SyntheticCoco, run: Path, *extra: str) -> list[str]:
    files = ["--train-json", str(data.json_path), "--train-images", str(data.image_dir)]
    return ["train", *files, "--output-dir", str(run), *extra]


def _stop_at_the_recipe(monkeypatch: pytest.MonkeyPatch, seen: dict[str, object]) -> None:
    """``recipe_for_dataset`` records its keyword arguments in ``seen`` and stops the command."""

    def recipe_for_dataset(*args: object, **kwargs: object) -> None:
        seen.update(kwargs)
        raise ValueError("stop after the recipe's arguments")

    monkeypatch.setattr("sparsercnn.recipe.recipe_for_dataset", recipe_for_dataset)


@pytest.mark.slow
def test_auto_is_the_default_and_its_choices_are_saved(
    tiny_coco: SyntheticCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    options = [
        "--set",
        "train.max_iter=3",
        "--set",
        "model.num_proposals=30",
        "train.seed=7",
    ]
    assert main(_train(tiny_coco, run, *options)) == 0
    out = capsys.readouterr().out
    assert "auto recipe" in out and "input size" in out and "training ended at iteration 3" in out
    # The table shows what the run trains with: the proposals given (not chosen), starred, and
    # what --set changed of the recipe's choices.
    assert " *proposals      30 " in out and "given by --set model.num_proposals" in out
    assert "    train.seed: 40244023 -> 7" in out
    recipe = json.loads((run / "recipe.json").read_text())
    names = [choice["name"] for choice in recipe["choices"]]
    assert {"precision", "proposals", "input size", "schedule"} <= set(names)
    given = [choice["name"] for choice in recipe["choices"] if choice["given"]]
    assert given == ["proposals", "schedule"]  # train.max_iter=3 as well
    assert recipe["overridden"] == {"train.seed": [40244023, 7]}
    cfg = Config.load(run / "config.json")
    # 96x128 images: their own size (never upscaled), a schedule of the 3 steps asked for.
    assert cfg.input.test_min_size == 96 and cfg.input.train_min_sizes == (96,)
    # Its decays before the end only: one at step 3 would never be reached.
    assert cfg.train.max_iter == 3 and cfg.train.steps == (2,)
    assert cfg.model.num_classes == 2 and cfg.model.num_proposals == 30

    # Resuming takes the run's own config (no new recipe), with the new overrides.
    assert main(_train(tiny_coco, run, "--resume", "--set", "train.max_iter=4")) == 0
    out = capsys.readouterr().out
    assert "auto recipe" not in out and "training ended at iteration 4" in out
    resumed = Config.load(run / "config.json")
    assert resumed.input == cfg.input and resumed.train.max_iter == 4


def test_resume_of_no_run_names_the_folder(
    tiny_coco: SyntheticCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_train(tiny_coco, tmp_path / "nothing", "--resume")) == 2
    assert "(--output-dir) is not a run folder" in capsys.readouterr().err
    (tmp_path / "nothing").mkdir()
    assert main(_train(tiny_coco, tmp_path / "nothing", "--resume")) == 2
    err = capsys.readouterr().err
    assert f"--resume (--output-dir): no training checkpoint (checkpoint_*.pt) in {tmp_path}" in err


def test_bad_data_is_refused_before_the_recipe_times_anything(
    write_coco: WriteCoco,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bad box, a missing image, a truncated image and a bad --set are named before the
    recipe's timing (seconds to minutes of a budget); with --skip-invalid the recipe reads the
    set without the bad entries, as training will (the truncated one included)."""
    data = write_coco()
    coco = data.read_json()
    coco["annotations"][0]["bbox"] = [5, 5, -4, 10]
    coco["images"][1]["file_name"] = "missing.png"
    data.write_json(coco)
    truncate(data.image_dir / coco["images"][2]["file_name"])
    seen: dict[str, int] = {}

    def stop(cfg: Config, *args: object, **kwargs: object) -> float:
        raise AssertionError("the recipe timed a step")

    def profile_seen(checked: CheckedCoco) -> None:
        seen["images"] = original(checked).num_images
        raise ValueError("stop after the profile")

    monkeypatch.setattr(for_dataset, "measure_step_seconds", stop)
    run = tmp_path / "run"
    assert main(_train(data, run, "--time-budget", "5")) == 2
    err = capsys.readouterr().err
    assert "missing.png" in err and "--skip-invalid" in err
    assert coco["images"][2]["file_name"] in err  # decoded before the recipe
    assert f"annotation {coco['annotations'][0]['id']}" in err
    assert not run.exists()
    bad_set = ["--time-budget", "5", "--skip-invalid", "--set", "train.nonexistent=3"]
    assert main(_train(data, run, *bad_set)) == 2
    assert "unknown config key 'train.nonexistent'" in capsys.readouterr().err
    original = for_dataset.DatasetProfile.from_checked
    monkeypatch.setattr(for_dataset.DatasetProfile, "from_checked", profile_seen)
    assert main(_train(data, run, "--time-budget", "5", "--skip-invalid")) == 2
    assert "stop after the profile" in capsys.readouterr().err
    assert seen["images"] == len(coco["images"]) - 2  # left out, as training will leave them


def test_the_recipe_profiles_the_checked_set_without_inspecting_it_again(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``train`` checks the set before its budget starts; the recipe profiled it by checking
    the JSON a second time, inside the budget. It takes the checked entries instead: one
    inspection of the set before training."""
    inspected: list[str] = []
    inspect = policy.inspect_dataset

    def counted(json_path: Path, *args: Any, **kwargs: Any) -> policy.Inspection:
        inspected.append(str(json_path))
        return inspect(json_path, *args, **kwargs)

    def stop(*args: object, **kwargs: object) -> None:
        raise ValueError("stop before training")

    monkeypatch.setattr(policy, "inspect_dataset", counted)
    monkeypatch.setattr(
        for_dataset, "_time_step_cost", lambda *args: StepCost(fixed=0.01, per_pixel=0.0)
    )
    monkeypatch.setattr("sparsercnn.engine.pipeline.train_from_coco", stop)
    assert main(_train(tiny_coco, tmp_path / "run", "--time-budget", "5")) == 2
    captured = capsys.readouterr()
    assert "auto recipe" in captured.out and "stop before training" in captured.err
    assert inspected == [str(tiny_coco.json_path)]


@pytest.mark.parametrize("budget", ["nan", "inf", "0", "-1"])
def test_a_budget_that_is_not_a_positive_number_is_refused_by_the_parser(
    tiny_coco: SyntheticCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str], budget: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(_train(tiny_coco, tmp_path / "run", "--time-budget", budget))
    assert exit_info.value.code == 2
    assert "argument --time-budget: must be a finite number > 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_budget_shorter_than_one_logged_window_is_refused_before_training(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(for_dataset, "TIMING_SIDES", (96, 128))  # a quicker timing
    run = tmp_path / "run"
    assert main(_train(tiny_coco, run, "--time-budget", "0.001")) == 2
    err = capsys.readouterr().err
    assert "--time-budget" in err and "one logged window" in err
    assert not run.exists()  # the refused run leaves no folder behind


def test_overrides_the_recipe_must_know_reach_it(
    tiny_coco: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``train.max_iter``, ``train.batch_size`` or ``train.image_cache_mb`` override changes
    what the recipe chooses (the schedule; the timing, steps and learning rate; the price of
    loading), so it is given to the recipe, not only applied after."""
    seen: dict[str, object] = {}

    _stop_at_the_recipe(monkeypatch, seen)
    overrides = ["train.max_iter=40", "train.image_cache_mb=0", "train.batch_size=3"]
    assert main(_train(tiny_coco, tmp_path / "run", "--set", *overrides)) == 2
    # The steps and the batch from the overrides (choose_recipe reads them), the cache as such.
    assert seen["overrides"] == overrides and seen["image_cache_mb"] == 0

    seen.clear()
    assert main(_train(tiny_coco, tmp_path / "run2")) == 2
    assert seen["overrides"] == [] and seen["image_cache_mb"] == Config().train.image_cache_mb
    assert seen["world_size"] == 1  # the processes of torchrun (WORLD_SIZE), which scale the lr


def test_files_a_run_would_replace_are_refused_and_kept(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The user's own config.json in the output folder (even given as --config) and a
    recipe.json there are refused before any work, not replaced; a refused run takes back the
    setup files it wrote into an existing folder, so that the next try is not refused."""
    run = tmp_path / "run"
    run.mkdir()
    mine = Config().to_json()
    (run / "config.json").write_text(mine)
    assert main(_train(tiny_coco, run, "--config", str(run / "config.json"))) == 2
    assert "config.json" in capsys.readouterr().err
    assert (run / "config.json").read_text() == mine
    (run / "config.json").unlink()
    (run / "recipe.json").write_text("{}")
    assert main(_train(tiny_coco, run)) == 2
    assert "(recipe.json)" in capsys.readouterr().err
    assert [p.name for p in run.iterdir()] == ["recipe.json"]
    (run / "recipe.json").unlink()

    def refuse(*args: object, **kwargs: object) -> None:
        raise ValueError("refused after the recipe")

    monkeypatch.setattr("sparsercnn.engine.pipeline.train_from_coco", refuse)
    assert main(_train(tiny_coco, run)) == 2
    assert "refused after the recipe" in capsys.readouterr().err
    assert list(run.iterdir()) == []


def test_starting_weights_given_by_set_reach_the_recipe(
    tiny_coco: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_file: Path
) -> None:
    """``--set train.init_from=FILE`` starts from FILE as ``--init-from FILE`` does: the recipe
    took the small model from scratch, and loading FILE into it then failed, advising --preset
    auto."""
    seen: dict[str, object] = {}

    _stop_at_the_recipe(monkeypatch, seen)
    argv = _train(tiny_coco, tmp_path / "run", "--set", f"train.init_from={model_file}")
    assert main(argv) == 2
    weights = seen["weights"]
    assert isinstance(weights, StartingWeights) and weights.init_from == str(model_file)
    assert weights.checkpoint is not None and weights.checkpoint.categories.names == ["cat", "dog"]


@pytest.mark.parametrize(
    ("overrides", "refused"),
    [
        # small's widths (64 wide): refused for the default config's fpn_dim (256).
        (["model.hidden_dim=64"], None),
        (["model.hidden_dim=64", "train.max_iter=40"], None),
        # medium's 128-wide head splits into 128 heads.
        (["model.num_heads=128"], None),
        # The default config's 256 splits into 256 heads, no model auto chooses does: it was
        # refused only after the data's check.
        (["model.num_heads=256"], "small: model.hidden_dim (64) must be a multiple of"),
        # With ResNet weights auto trains the paper's 256-wide head.
        (["model.hidden_dim=64", "train.backbone_weights=r18.pth"], "model.fpn_dim (256)"),
    ],
)
def test_model_overrides_are_checked_against_the_models_auto_chooses(
    overrides: list[str],
    refused: str | None,
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checked: list[object] = []
    seen: dict[str, object] = {}

    monkeypatch.setattr("sparsercnn.cli.train.check_training_data", lambda *a: checked.append(a))
    _stop_at_the_recipe(monkeypatch, seen)
    assert main(_train(tiny_coco, tmp_path / "run", "--set", *overrides)) == 2
    err = capsys.readouterr().err
    if refused is None:
        assert "stop after the recipe's arguments" in err
        assert seen["overrides"] == overrides  # the recipe chooses with them
    else:
        assert refused in err and not checked and not (tmp_path / "run").exists()


def test_overrides_that_change_the_checkpoint_architecture_are_refused_before_the_data(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    model_file: Path,
) -> None:
    """auto trains the --init-from checkpoint's architecture: a --set that changes it (but fits
    the config's own check) failed only when the weights loaded, after the data's check, and
    advised --preset auto."""
    checked: list[object] = []
    monkeypatch.setattr("sparsercnn.cli.train.check_training_data", lambda *a: checked.append(a))
    run = tmp_path / "run"
    argv = _train(tiny_coco, run, "--init-from", str(model_file), "--set", "model.ffn_dim=128")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"--set model.ffn_dim=128: --init-from {model_file} has ffn_dim 64" in err
    assert not checked and not run.exists()


def test_resnet_weights_of_another_width_are_refused_before_the_data_or_taken_when_set(
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """auto puts the paper's head on --backbone-weights at the standard width: a narrower
    ResNet failed only when it loaded, after the data's check; a --set of its width fits."""
    cfg = Config().apply_overrides(["model.backbone_depth=18", "model.backbone_width=8"])
    state = build_model(cfg).state_dict()
    resnet = {key: value for key, value in state.items() if key.startswith("backbone.")}
    path = tmp_path / "r18_narrow.pth"
    torch.save(export_state_dict(resnet, "torchvision"), path)
    checked: list[object] = []
    seen: dict[str, object] = {}

    monkeypatch.setattr("sparsercnn.cli.train.check_training_data", lambda *a: checked.append(a))
    _stop_at_the_recipe(monkeypatch, seen)
    run = tmp_path / "run"
    assert main(_train(tiny_coco, run, "--backbone-weights", str(path))) == 2
    err = capsys.readouterr().err
    assert "holds a ResNet of width 8" in err and "model.backbone_width=8" in err
    assert not checked and not run.exists()
    argv = _train(
        tiny_coco, run, "--backbone-weights", str(path), "--set", "model.backbone_width=8"
    )
    assert main(argv) == 2
    assert "stop after the recipe's arguments" in capsys.readouterr().err and checked
