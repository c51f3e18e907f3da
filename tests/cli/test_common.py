"""The CLI's shared checks and messages."""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import stat
from pathlib import Path

import pytest
import torch

from sparsercnn.cli.common import (
    add_device_argument,
    check_model_paths,
    check_output_path,
    checkpoint_source,
    device_name,
    output_file,
    refuse_flags,
    refuse_model_flags_with_onnx,
    resolve_device,
    torch_device_name,
    user_path,
    warn_replacing,
)
from sparsercnn.cli.main import build_parser, main, subcommand_parsers
from sparsercnn.config import DEFAULT_NUM_WORKERS, TrainConfig
from sparsercnn.diagnostics import evaluate_model_file_stages, slot_statistics_of_model_file
from sparsercnn.diagnostics.feature_reads import collect_feature_reads
from sparsercnn.engine.model_evaluation import evaluate_model_file, evaluate_onnx_file
from tests.synthetic_coco import WriteCoco


def test_only_an_existing_file_is_said_to_be_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    existing = tmp_path / "metrics.json"
    existing.write_text("{}")
    with caplog.at_level(logging.WARNING):
        warn_replacing(None, "--results")
        warn_replacing(tmp_path / "new.json", "--output")
        warn_replacing(tmp_path, "--output")  # a folder is refused elsewhere, not replaced
        warn_replacing(existing, "--output")
    assert [r.getMessage() for r in caplog.records] == [
        f"--output {existing} exists: it will be replaced once this run succeeds"
    ]
    assert existing.read_text() == "{}"


def test_the_files_a_command_writes_into_a_folder_are_said_to_be_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One warning for the folder of ``eval --report-dir`` and ``diagnose --output-dir``,
    naming those of its files that exist (a folder of their name is not replaced)."""
    names = ("a.png", "b.json", "c.png")
    with caplog.at_level(logging.WARNING):
        warn_replacing(None, "--report-dir", files=names)
        warn_replacing(tmp_path / "new", "--report-dir", files=names)
        warn_replacing(tmp_path, "--report-dir", files=names)
        (tmp_path / "c.png").write_text("an earlier report's")
        (tmp_path / "a.png").mkdir()
        (tmp_path / "b.json").write_text("{}")
        warn_replacing(tmp_path, "--report-dir", files=names)
    assert [r.getMessage() for r in caplog.records] == [
        f"--report-dir {tmp_path} holds b.json, c.png: this run replaces them"
    ]


def test_a_link_among_the_files_replaced_is_said_to_be_one_with_its_target(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A write goes through a link (:func:`~sparsercnn.atomic_file.write_target`): the
    warning names the file whose content it replaces."""
    target = tmp_path / "kept.png"
    target.write_text("an earlier report's")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "a.png").symlink_to(target)
    (tmp_path / "link.json").symlink_to(target)
    with caplog.at_level(logging.WARNING):
        warn_replacing(tmp_path / "report", "--report-dir", files=("a.png", "b.png"))
        warn_replacing(tmp_path / "link.json", "--output")
    assert [r.getMessage() for r in caplog.records] == [
        f"--report-dir {tmp_path / 'report'} holds a.png (a link: its target {target}): this "
        "run replaces them",
        f"--output {tmp_path / 'link.json'} (a link: its target {target}) exists: it will be "
        "replaced once this run succeeds",
    ]


@pytest.mark.skipif(
    not (os.path.exists(os.devnull) and stat.S_ISCHR(os.stat(os.devnull).st_mode)),
    reason="no character device at os.devnull",
)
def test_a_device_given_as_an_output_file_is_refused_before_any_write() -> None:
    """As root, ``eval --output /dev/null`` replaced the device by a regular file. Only the
    check runs here, which writes nothing to the path it refuses."""
    with pytest.raises(ValueError) as refused:
        check_output_path(Path(os.devnull), "--output")
    assert str(refused.value) == (
        f"--output {os.devnull} is a character device, not a regular file, and a command "
        "writes its files whole (replacing what is there); give the path of a regular file"
    )
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_a_folder_given_for_an_output_file_is_named_as_one_and_left_alone(
    write_coco: WriteCoco, capsys: pytest.CaptureFixture[str]
) -> None:
    """``validate --output IMAGES`` said the report "would replace a file in the --images
    folder": not that a file path is wanted."""
    data = write_coco(num_images=1, size=(48, 64))
    before = sorted(data.image_dir.iterdir())
    argv = ["validate", "--json", str(data.json_path), "--images", str(data.image_dir)]
    for folder in (data.image_dir, data.json_path.parent):
        assert main([*argv, "--output", str(folder)]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines == [
            f"sparsercnn validate: error: --output {folder} is a folder; give a file name"
        ]
    assert sorted(data.image_dir.iterdir()) == before


@pytest.mark.parametrize("name", ["gpu", "cuda:x"])
def test_a_device_that_is_none_is_refused_in_the_runtime_s_words(name: str) -> None:
    """--device is checked by the one device name rule (runtime.parse_device), at parsing and
    when resolved; each message names the flag once (argparse adds ``argument --device:``)."""
    with pytest.raises(argparse.ArgumentTypeError, match=rf"^'{name}' is not a device; use"):
        device_name(name)
    with pytest.raises(argparse.ArgumentTypeError, match=rf"^'{name}' is not a device; use"):
        torch_device_name(name)
    with pytest.raises(ValueError, match=rf"^--device '{name}' is not a device; use 'cpu'"):
        resolve_device(name)
    assert resolve_device("cpu") == torch.device("cpu")


def test_a_bad_device_is_a_parser_error_naming_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser(prog="sparsercnn predict")
    add_device_argument(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--device", "mps"])
    assert (
        "sparsercnn predict: error: argument --device: 'mps': sparsercnn runs on 'cpu', "
        "'cuda' or 'cuda:N' only"
    ) in capsys.readouterr().err
    assert parser.parse_args([]).device is None
    expected = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == expected  # the default: the runtime's


def _every_action(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    """(command, action) for every argument of ``sparsercnn`` and its subcommands."""
    return [
        (sub.prog, action)
        for sub in (parser, *subcommand_parsers(parser))
        for action in sub._actions
    ]


def test_every_path_flag_expands_the_home_folder() -> None:
    """A shell expands ``--output ~/x`` but not ``--output=~/x``: each path flag expands it
    itself (those that also take a URL or a published name too), none takes ``~`` literally."""
    actions = _every_action(build_parser())
    literal = [f"{prog} {action.dest}" for prog, action in actions if action.type is Path]
    assert literal == []
    expanding = {
        f"{prog.removeprefix('sparsercnn ')} {(action.option_strings or [action.metavar])[0]}"
        for prog, action in actions
        if action.type in (user_path, output_file, checkpoint_source)
    }
    assert {
        "convert SRC",
        "convert --output",
        "train --init-from",
        "train --backbone-weights",
        "train --resume",
        "predict PATH",
        "predict --model",
        "diagnose stages --json",
        "serve --onnx",
        "visualize IMAGE",
    } <= expanding


def test_every_workers_default_is_the_config_s() -> None:
    """``diagnose stages`` and ``diagnose slots`` loaded with 2 processes by default, their
    library functions with none: the default number of loading processes is one constant,
    which every --workers flag (and its help), model file's run and train.num_workers take."""
    flags = [action for _, action in _every_action(build_parser()) if action.dest == "workers"]
    assert len(flags) >= 5
    assert all(action.default in (None, DEFAULT_NUM_WORKERS) for action in flags)
    assert all(f"(default {DEFAULT_NUM_WORKERS})" in str(action.help) for action in flags)
    for run in (
        evaluate_model_file,
        evaluate_onnx_file,
        collect_feature_reads,
        evaluate_model_file_stages,
        slot_statistics_of_model_file,
    ):
        default = inspect.signature(run).parameters["num_workers"].default
        assert default == DEFAULT_NUM_WORKERS, run.__name__
    assert TrainConfig().num_workers == DEFAULT_NUM_WORKERS


def test_every_flag_that_writes_a_file_refuses_a_folder_name() -> None:
    """``--output newdir/`` (a folder not there yet) wrote a file named ``newdir``: a ``Path``
    drops the trailing separator."""
    writing = {
        f"{prog.removeprefix('sparsercnn ')} {action.option_strings[0]}"
        for prog, action in _every_action(build_parser())
        if action.type is output_file
    }
    assert writing == {
        "benchmark --output",
        "convert --output",
        "eval --output",
        "eval --results",
        "export --output",
        "predict --output",
        "validate --output",
        "visualize --output",
    }
    with pytest.raises(argparse.ArgumentTypeError, match=r"^newdir/ names a folder; give a file"):
        output_file("newdir/")
    assert output_file("~/a.json") == Path.home() / "a.json"


@pytest.mark.parametrize(
    "command", [["validate", "--json", "{json}", "--images", "{images}"], ["convert", "{json}"]]
)
def test_an_output_file_named_as_a_new_folder_is_refused_in_one_line(
    write_coco: WriteCoco,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    data = write_coco(num_images=1, size=(48, 64))
    argv = [part.format(json=data.json_path, images=data.image_dir) for part in command]
    output = f"{tmp_path / 'newdir'}/"
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--output", output])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"sparsercnn {argv[0]}: error: argument --output: {output} names a folder; give a file name"
    )
    assert not (tmp_path / "newdir").exists()


def test_a_path_flag_given_with_an_equals_sign_names_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--json=~/a.json`` (the shell leaves the ``~``) and ``--json ~/a.json`` (the shell
    expands it) give the same path; URLs and published names are left as they are."""
    monkeypatch.setenv("HOME", str(tmp_path))
    parser = build_parser()
    by_shell = parser.parse_args(
        ["validate", "--json", str(tmp_path / "a.json"), "--images", str(tmp_path / "images")]
    )
    literal = parser.parse_args(["validate", "--json=~/a.json", "--images=~/images"])
    assert (literal.json, literal.images) == (by_shell.json, by_shell.images)
    assert literal.json == tmp_path / "a.json"
    train = parser.parse_args(
        [
            "train",
            "--train-json=~/a.json",
            "--train-images=~/images",
            "--output-dir=~/run",
            "--init-from=~/detector.pth",
            "--backbone-weights=https://example.org/r50.pth",
            "--resume=~/run/checkpoint_0000010.pt",
        ]
    )
    assert train.output_dir == tmp_path / "run"
    assert train.init_from == str(tmp_path / "detector.pth")
    assert train.backbone_weights == "https://example.org/r50.pth"
    assert train.resume == tmp_path / "run" / "checkpoint_0000010.pt"
    convert = parser.parse_args(["convert", "r50_100pro_3x", "--output=~/m.safetensors"])
    assert (convert.src, convert.output) == ("r50_100pro_3x", tmp_path / "m.safetensors")


def test_device_goes_with_onnx_and_the_model_only_flags_are_refused() -> None:
    """``--device cuda --onnx X`` was refused as a flag of --model only: the ONNX session runs
    on --device now (its provider follows it)."""
    args = argparse.Namespace(stages=None, device="cuda:1", cuda_graphs=False)
    refuse_model_flags_with_onnx(args)
    args.stages, args.cuda_graphs = 2, True
    with pytest.raises(ValueError, match=r"^--stages 2, --cuda-graphs: --stages and "):
        refuse_model_flags_with_onnx(args)


def test_flags_given_are_named_with_their_values_and_those_not_given_are_not() -> None:
    """One helper for every "these flags mean nothing here" refusal (--onnx, --detections):
    not given is None or a switch's False; 0 is given."""
    args = argparse.Namespace(stages=None, cuda_graphs=False, workers=0, batch_size=None)
    refuse_flags(args, ("--stages", "--cuda-graphs", "--batch-size"), "unused")
    with pytest.raises(ValueError, match=r"^--workers 0: no model runs; drop it$"):
        refuse_flags(args, ("--stages", "--cuda-graphs", "--workers"), "no model runs")
    args.cuda_graphs = True
    with pytest.raises(ValueError, match=r"^--cuda-graphs, --workers 0: no model; drop them$"):
        refuse_flags(args, ("--cuda-graphs", "--workers"), "no model")


def test_eval_and_predict_run_the_onnx_file_on_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sparsercnn.cli import main as cli_main

    asked: list[object] = []

    def stop(*args: object, **kwargs: object) -> None:
        asked.append(kwargs["device"])
        raise ValueError("stop")

    monkeypatch.setattr("sparsercnn.engine.model_evaluation.evaluate_onnx_file", stop)
    monkeypatch.setattr("sparsercnn.export.onnx_runtime.OnnxPredictor", stop)
    onnx, image = tmp_path / "m.onnx", tmp_path / "a.png"
    onnx.write_bytes(b"never read")
    image.write_bytes(b"never read")
    evaluation = ["eval", "--onnx", str(onnx), "--json", "x.json", "--images", str(tmp_path)]
    assert cli_main.main([*evaluation, "--device", "cpu"]) == 2
    assert cli_main.main(evaluation) == 2
    assert cli_main.main(["predict", "--onnx", str(onnx), "--device", "cpu", str(image)]) == 2
    assert asked == ["cpu", None, "cpu"]


def test_a_gpu_is_checked_by_what_runs_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CPU-only PyTorch beside onnxruntime-gpu: ``--onnx X --device cuda`` was refused as
    PyTorch's "no CUDA device" while the arguments were parsed. The ONNX file's session is now
    asked for onnxruntime's CUDA provider; a model file is still refused, naming --device; a
    command that only runs PyTorch still refuses it as it parses."""
    onnxruntime = pytest.importorskip("onnxruntime")
    from sparsercnn.cli import main as cli_main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    asked: list[object] = []

    def session(path: str, **kwargs: object) -> None:
        asked.append(kwargs["providers"])
        raise ValueError("stop")

    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    onnx, image = tmp_path / "m.onnx", tmp_path / "a.png"
    onnx.write_bytes(b"never read")
    image.write_bytes(b"never read")
    output = str(tmp_path / "out.json")
    evaluation = ["eval", "--onnx", str(onnx), "--json", "x.json", "--images", str(tmp_path)]
    assert cli_main.main([*evaluation, "--device", "cuda"]) == 2
    predict = ["predict", "--onnx", str(onnx), "--output", output, str(image)]
    assert cli_main.main([*predict, "--device", "cuda:1"]) == 2
    assert asked == [
        [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"],
        [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"],
    ]
    capsys.readouterr()
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"never read")
    predict = ["predict", "--model", str(model), "--output", output, str(image)]
    assert cli_main.main([*predict, "--device", "cuda"]) == 2
    assert capsys.readouterr().err == (
        "sparsercnn predict: error: --device 'cuda': no CUDA device is available here; use 'cpu'\n"
    )
    parser = argparse.ArgumentParser(prog="sparsercnn demo")
    add_device_argument(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--device", "cuda"])
    assert "argument --device: 'cuda': no CUDA device" in capsys.readouterr().err
    add_device_argument(onnx_parser := argparse.ArgumentParser(), onnx=True)
    assert onnx_parser.parse_args(["--device", "cuda"]).device == "cuda"


def test_the_detections_file_is_checked_with_the_model_files(tmp_path: Path) -> None:
    """--detections was checked by a call of its own beside check_model_paths."""
    args = argparse.Namespace(model=None, onnx=None, detections=tmp_path)
    with pytest.raises(IsADirectoryError, match=r"^--detections .* give the results .json file"):
        check_model_paths(args)
    args.detections = tmp_path / "missing.json"
    with pytest.raises(FileNotFoundError, match=r"^--detections .*missing.json does not exist"):
        check_model_paths(args)


@pytest.mark.parametrize(
    ("command", "flag", "wanted"),
    [
        (["export", "--output", "{folder}/existing.onnx"], "--model", ".safetensors"),
        (["predict", "--output", "{folder}/existing.onnx", "{folder}/a.png"], "--onnx", ".onnx"),
        (
            ["predict", "--output", "{folder}/existing.onnx", "{folder}/a.png"],
            "--model",
            ".safetensors",
        ),
        (
            [
                "eval",
                "--json",
                "x.json",
                "--images",
                "{folder}",
                "--output",
                "{folder}/existing.onnx",
            ],
            "--onnx",
            ".onnx",
        ),
        (
            ["eval", "--json", "x.json", "--output", "{folder}/existing.json"],
            "--detections",
            "results .json",
        ),
        (["benchmark", "--output", "{folder}/existing.json"], "--model", ".safetensors"),
    ],
)
def test_a_folder_given_as_the_model_is_named_as_one_before_the_outputs_are_checked(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    flag: str,
    wanted: str,
) -> None:
    """``export --model . --output existing.onnx`` said "--output existing.onnx would replace a
    file in the --model folder ."; the model path is checked first, naming its flag."""
    from sparsercnn.cli import main as cli_main

    for name in ("existing.onnx", "existing.json", "a.png"):
        (tmp_path / name).write_text("the user's")
    argv = [part.format(folder=tmp_path) for part in command]
    assert cli_main.main([argv[0], flag, str(tmp_path), *argv[1:]]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"sparsercnn {argv[0]}: error: {flag} {tmp_path} is a folder; give the {wanted} file in it"
    )
    assert (tmp_path / "existing.onnx").read_text() == "the user's"
