"""The README as a user reads it: its Python examples run as written (on a tiny model and
made-up files), its command lines parse with the real argument parser, and the flags, config
keys, defaults and rules it states are the code's."""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import sparsercnn
from tests.tiny_model import write_tiny_model_file

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text()
# Whitespace-normalised, so that a phrase matches across the README's line breaks.
FLAT_TEXT = " ".join(TEXT.split())
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.DOTALL)
BASH_BLOCKS = re.findall(r"```bash\n(.*?)```", TEXT, flags=re.DOTALL)
# What `sparsercnn train ...` stands for: the flags train requires, where the line leaves them out.
TRAIN_REQUIRED = {"--train-json": "train.json", "--train-images": "images/", "--output-dir": "out/"}
# Flags the README gives to other programs: scripts/setup.sh and torchrun.
OTHER_PROGRAMS_FLAGS = {
    "--browser",
    "--nproc-per-node",
    "--nnodes",
    "--node-rank",
    "--master-addr",
    "--master-port",
}


def test_the_readme_has_its_python_examples() -> None:
    assert len(BLOCKS) >= 3
    assert any("Predictor.from_file" in block for block in BLOCKS)


def test_the_names_the_readme_imports_from_the_package_are_exported() -> None:
    names = re.findall(r"^from sparsercnn import (.+)$", README.read_text(), flags=re.MULTILINE)
    imported = {name.strip() for line in names for name in line.split(",")}
    assert imported and imported <= set(sparsercnn.__all__)
    for name in sparsercnn.__all__:
        assert getattr(sparsercnn, name) is not None and name in dir(sparsercnn)


def test_the_python_api_is_exported_from_the_package() -> None:
    """A Python user trains, evaluates, loads and predicts with names from ``sparsercnn``
    alone (they were only in submodules), each the submodule's own object."""
    from sparsercnn.data.categories import CategoryMap
    from sparsercnn.engine import model_evaluation, pipeline
    from sparsercnn.model_file import load_model_file, save_model_file
    from sparsercnn.prediction import Prediction

    for name, value in {
        "Prediction": Prediction,
        "CategoryMap": CategoryMap,
        "load_model_file": load_model_file,
        "save_model_file": save_model_file,
        "train_from_coco": pipeline.train_from_coco,
        "evaluate_model_file": model_evaluation.evaluate_model_file,
        "evaluate_onnx_file": model_evaluation.evaluate_onnx_file,
    }.items():
        assert name in sparsercnn.__all__ and getattr(sparsercnn, name) is value


def test_the_readme_python_blocks_run_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In one namespace, as a reader pastes them: the video example uses the predictor of the
    one before it. Only the files they name are made here."""
    monkeypatch.chdir(tmp_path)
    write_tiny_model_file(tmp_path / "model.safetensors")
    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save("photo.jpg")
    (tmp_path / "folder").mkdir()
    Image.fromarray(np.full((50, 70, 3), 128, np.uint8)).save("folder/a.png")
    has_av = importlib.util.find_spec("av") is not None
    if has_av:
        from tests.video.clips import write_clip

        write_clip(tmp_path / "clip.mp4")
    namespace: dict[str, object] = {}
    for index, block in enumerate(BLOCKS):
        if "sparsercnn.video" in block and not has_av:
            continue  # the `video` extra (PyAV) is not installed
        exec(compile(block, f"README.md python block {index}", "exec"), namespace)
    assert len(namespace["detections"]) == 1  # type: ignore[arg-type]
    if has_av:
        assert (tmp_path / "drawn.mp4").stat().st_size > 0


def readme_commands() -> list[tuple[str, list[str]]]:
    """Every ``sparsercnn`` command line of the README's bash blocks, as ``(line, argv)``:
    continuation lines joined, comments dropped."""
    commands = []
    for block in BASH_BLOCKS:
        for line in block.replace("\\\n", " ").splitlines():
            for words in _shell_commands(shlex.split(line, comments=True)):
                argv = _sparsercnn_arguments(words)
                if argv is not None:
                    commands.append((line.strip(), argv))
    return commands


def _sparsercnn_arguments(words: list[str]) -> list[str] | None:
    """What ``sparsercnn`` gets from one shell command (``.venv/bin/sparsercnn ...`` and
    ``torchrun ... -m sparsercnn ...`` too; None for another program), the ``...`` of
    ``sparsercnn train ...`` filled with the flags train requires that the line leaves out."""
    from torch.distributed.run import get_args_parser

    if words[0] == "torchrun":
        launch = get_args_parser().parse_args(words[1:])
        assert launch.module and launch.training_script == "sparsercnn", words
        argv = list(launch.training_script_args)
    elif Path(words[0]).name == "sparsercnn":
        argv = words[1:]
    else:
        return None
    if "..." in argv:
        at = argv.index("...")
        argv[at : at + 1] = [
            word
            for flag, value in TRAIN_REQUIRED.items()
            if flag not in argv
            for word in (flag, value)
        ]
    return argv


def _shell_commands(words: list[str]) -> list[list[str]]:
    """``words`` split at ``&&``, ``||``, ``|`` and ``;`` into the commands they chain."""
    commands: list[list[str]] = [[]]
    for word in words:
        if word in ("&&", "||", "|", ";"):
            commands.append([])
        else:
            commands[-1].append(word)
    return [command for command in commands if command]


def cli_parsers() -> list[argparse.ArgumentParser]:
    from sparsercnn.cli.main import build_parser, subcommand_parsers

    parser = build_parser()
    return [parser, *subcommand_parsers(parser)]


def test_every_readme_command_line_parses_with_the_real_parser(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each command a reader copies is accepted by ``sparsercnn``'s parser as written (not
    run), its ``--set`` values by the config of its preset, and every command is shown."""
    from sparsercnn.cli.main import COMMANDS, build_parser
    from sparsercnn.presets import PRESETS, get_preset

    commands = readme_commands()
    parser = build_parser()
    shown = set()
    for line, argv in commands:
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"README command does not parse: {line}\n{capsys.readouterr().err}")
        shown.add(args.command)
        if getattr(args, "overrides", None):
            preset = args.preset if args.preset in PRESETS else "small"
            get_preset(preset).apply_overrides(args.overrides)
    # `eval`'s module is `evaluate`: the names come from the parser, not the modules.
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert len(subparsers.choices) == len(COMMANDS)
    assert shown == set(subparsers.choices)


def test_every_flag_the_readme_names_exists_with_its_listed_choices() -> None:
    """A ``--flag`` anywhere in the README (prose, comments, commands) is an option of some
    ``sparsercnn`` command, and a list of its values (``--backend eager|compile|...``) is
    exactly the parser's choices."""
    options: dict[str, list[argparse.Action]] = {}
    for parser in cli_parsers():
        for action in parser._actions:
            for flag in action.option_strings:
                options.setdefault(flag, []).append(action)
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", TEXT))
    assert named - OTHER_PROGRAMS_FLAGS - set(options) == set()
    listed = re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*) (\w[\w-]*(?:\|\w[\w-]*)+)", TEXT)
    assert listed
    for flag, values in listed:
        choices = [set(a.choices) for a in options[flag] if a.choices is not None]
        if choices:  # --device cpu|cuda is a free-form device name
            assert set(values.split("|")) in choices, (flag, values)


def test_the_defaults_the_readme_states_are_the_parsers() -> None:
    """``--max-batch`` ... (default 8): the value is the flag's default in a command that has
    it."""
    defaults: dict[str, set[float]] = {}
    for parser in cli_parsers():
        for action in parser._actions:
            if isinstance(action.default, int | float) and not isinstance(action.default, bool):
                for flag in action.option_strings:
                    defaults.setdefault(flag, set()).add(float(action.default))
    stated = re.findall(r"`(--[a-z][a-z0-9-]*)`[^`()]*\(default ([0-9.]+)[;,)]", FLAT_TEXT)
    assert {flag for flag, _ in stated} >= {
        "--max-batch",
        "--max-wait-ms",
        "--max-queued-images",
        "--max-connections",
        "--score-threshold",
    }
    for flag, value in stated:
        assert float(value) in defaults.get(flag, set()), (flag, value)


def test_the_config_keys_the_readme_names_exist() -> None:
    """``train.image_cache_mb``, ``model.fpn_on_demand_levels``, ...: keys ``--set`` accepts
    (file names such as ``train.json`` aside)."""
    from sparsercnn.config import Config

    sections = Config().to_dict()
    named = set(re.findall(r"(?<![\w./-])(model|train|input|loss)\.([a-z_][a-z0-9_]*)", TEXT))
    file_suffixes = {"json", "onnx", "safetensors", "pt", "pth"}
    keys = {(section, key) for section, key in named if key not in file_suffixes}
    assert len(keys) >= 10
    assert {f"{s}.{k}" for s, k in keys if k not in sections[s]} == set()


def test_the_rules_and_numbers_the_readme_states_are_the_codes() -> None:
    """The ``auto`` recipe's rules, the presets' sizes and the demo's budget, as the README
    words them, from the constants the code decides with."""
    from sparsercnn.cli.demo import DEFAULT_TIME_BUDGET_MINUTES
    from sparsercnn.cli.serve import SHUTDOWN_GRACE_SECONDS
    from sparsercnn.config import TrainConfig
    from sparsercnn.data.demo_dataset import generate_demo_dataset
    from sparsercnn.presets import medium, small
    from sparsercnn.recipe import (
        advice,
        crops,
        input_size,
        learning_rate,
        model_size,
        proposals,
        schedule,
        stages,
    )

    i = input_size
    num_val = inspect.signature(generate_demo_dataset).parameters["num_val"].default
    s, m = small(), medium()
    phrases = [
        f"at least {proposals.PROPOSALS_PER_OBJECT:g} x the most objects in one image "
        f"(+{proposals.PROPOSALS_SLACK}), rounded up to a multiple of 10, at most "
        f"{proposals.MAX_PROPOSALS}",
        f"from {i.INVISIBLE_BOX_PX:g} px (0) to {i.FULL_BOX_PX:g} px (1)",
        f"`1 - exp(-(steps - {i.LEARNING_DELAY_STEPS:g}) / {i.PROGRESS_STEPS:g})`",
        f"With room for {i.ENOUGH_STEPS}+ steps",
        f"`medium` when the budget gives it {model_size.MEDIUM_MODEL_ITERATIONS}+ steps",
        f"{stages.SHORT_BUDGET_STAGES} refinement stages unless the paper's 6 still get "
        f"{stages.SIX_STAGE_ITERATIONS} steps",
        f"the median image holds at most {stages.FEW_OBJECTS_PER_IMAGE} objects",
        f"{schedule.SCRATCH_EPOCHS} epochs (at least {3 * schedule.MIN_ITERATIONS} steps)",
        f"passes over each image {crops.CROP_FROM_PASSES} times or more",
        f"enlarge the median image more than {crops.CROP_MAX_FRAME_ZOOM:g}x",
        f"backbone frozen under {advice.SMALL_SET_BOXES} boxes",
        f"boxes that stay under {advice.MIN_RESOLVABLE_PX:g} px",
        f"fewer than {advice.FEW_BOXES_PER_CLASS} boxes",
        f"`train.image_cache_mb`, {TrainConfig.image_cache_mb} MB per loading process",
        f"{s.model.hidden_dim}-wide head, {s.model.num_proposals} proposals, "
        f"{s.input.test_min_size} px",
        f"{m.model.hidden_dim}-wide head, {m.model.num_proposals} proposals",
        f"within a {DEFAULT_TIME_BUDGET_MINUTES:g}-minute budget",
        f"on its {num_val} validation images",
        f"requests still running after {SHUTDOWN_GRACE_SECONDS} s are cancelled",
    ]
    assert [phrase for phrase in phrases if phrase not in FLAT_TEXT] == []
    lr = re.search(r"AdamW ([0-9.e-]+) from scratch", FLAT_TEXT)
    assert lr is not None and float(lr.group(1)) == learning_rate.SCRATCH_LR_BATCH_8


def test_the_published_weights_table_is_the_codes() -> None:
    """Each row of the README's table (name, source, AP, URL) is the checkpoint
    ``from_pretrained`` downloads under that name, and every one has a row."""
    from sparsercnn.weights.published import PUBLISHED_CHECKPOINTS

    rows = re.findall(
        r"^\| `(\w+)` \| (official|mmdetection) \| ([0-9.]+) \| (\S+)", TEXT, flags=re.MULTILINE
    )
    assert {name for name, *_ in rows} == set(PUBLISHED_CHECKPOINTS)
    for name, source, box_ap, url in rows:
        published = PUBLISHED_CHECKPOINTS[name]
        layout = "official" if source == "official" else "mmdet"
        assert (published.layout, published.box_ap, published.url) == (layout, float(box_ap), url)


def test_the_python_names_the_readme_mentions_exist() -> None:
    """``sparsercnn.runtime.retain_freed_memory``, ``from sparsercnn.weights import
    from_pretrained`` (in a shell line that needs the network, so never run here), ...: every
    dotted name and ``from ... import`` of the README resolves."""
    import importlib

    dotted = set(re.findall(r"(?<![\w/.-])sparsercnn(?:\.\w+)+", TEXT))
    for module, names in re.findall(r"from (sparsercnn[\w.]*) import ([\w, ]+)", TEXT):
        dotted |= {f"{module}.{name.strip()}" for name in names.split(",")}
    assert len(dotted) >= 10
    for name in sorted(dotted):
        parts = name.split(".")
        for split in range(len(parts), 0, -1):
            try:
                found: object = importlib.import_module(".".join(parts[:split]))
            except ModuleNotFoundError:
                continue
            for attribute in parts[split:]:
                assert hasattr(found, attribute), name
                found = getattr(found, attribute)
            break


def test_the_set_loss_is_as_the_readme_describes() -> None:
    """``build_criterion(cfg)`` turns the model's output and one ``Target`` per image into a
    ``SetLoss``: ``total`` to back-propagate, weighted ``terms`` keyed ``loss_cls/stage0`` ...
    ``loss_giou/stage5`` (six stages)."""
    import torch

    from sparsercnn import build_model, get_preset
    from sparsercnn.loss import build_criterion
    from sparsercnn.loss.criterion import SetLoss
    from sparsercnn.structures import Target

    assert "`loss_cls/stage0` ... `loss_giou/stage5`" in TEXT and "a `SetLoss`" in TEXT
    cfg = get_preset("tiny")
    cfg.model.num_classes, cfg.model.num_stages = 3, 6
    output = build_model(cfg)([torch.rand(3, 96, 128) * 255])
    target = Target(boxes=torch.tensor([[10.0, 10.0, 50.0, 60.0]]), labels=torch.tensor([2]))
    loss = build_criterion(cfg)(output, [target])
    assert isinstance(loss, SetLoss) and loss.total.requires_grad
    assert {"loss_cls/stage0", "loss_giou/stage5"} <= set(loss.terms)
