"""How the ``sparsercnn`` command ends on faults: exit 2 and one named line for bad input, exit 1
with the exception type and a ``--debug`` hint for other failures, 130 when interrupted, and the
full traceback only with ``--debug``."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest
import torch

from sparsercnn.cli import train, validate
from sparsercnn.cli.main import DEBUG_HINT, main
from sparsercnn.weights.http_download import DownloadFailed
from tests.synthetic_coco import WriteCoco

VALIDATE = ["validate", "--json", "x.json", "--images", "x"]


@pytest.fixture
def image(write_coco: WriteCoco) -> Path:
    (path,) = write_coco(file_names=["a.png"], size=(48, 64)).image_paths
    return path


def raising_handler(
    monkeypatch: pytest.MonkeyPatch, error: BaseException, command: ModuleType = validate
) -> None:
    """Make the handler of ``command`` (a module of :mod:`sparsercnn.cli`, ``validate`` unless
    given) raise ``error`` (the parser looks it up when built)."""

    def handler(args: argparse.Namespace) -> NoReturn:
        raise error

    monkeypatch.setattr(command, "run", handler)


def error_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def test_missing_input_file_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.json"
    assert main(["validate", "--json", str(missing), "--images", str(tmp_path)]) == 2
    (line,) = error_lines(capsys)
    assert line.startswith("sparsercnn validate: error: ") and str(missing) in line


def test_a_folder_given_as_model_file_is_bad_input(
    tmp_path: Path, image: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    assert main(["predict", "--model", str(folder), str(image)]) == 2
    (line,) = error_lines(capsys)
    # Named by its flag, before the outputs are checked (check_model_paths).
    assert f"--model {folder} is a folder; give the .safetensors file in it" in line
    # Was "ONNX model run does not exist", of a folder that exists.
    assert main(["predict", "--onnx", str(folder), str(image)]) == 2
    (line,) = error_lines(capsys)
    assert f"--onnx {folder} is a folder; give the .onnx file in it" in line


def test_visualize_of_a_folder_points_to_predict(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["visualize", "--model", str(model_file), str(tmp_path)]) == 2
    (line,) = error_lines(capsys)
    assert f"IMAGE {tmp_path} is a folder; give one image" in line and "predict" in line


def test_precision_applies_to_a_model_file_not_to_an_onnx_file(
    tmp_path: Path,
    image: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"never read")
    assert main(["predict", "--onnx", str(onnx), "--stages", "1", str(image)]) == 2
    (line,) = error_lines(capsys)
    assert "--cuda-graphs apply to --model, not to --onnx" in line
    evaluation = ["eval", "--onnx", str(onnx), "--json", "x.json", "--images", "."]
    metrics = tmp_path / "metrics.json"
    metrics.write_text("{}")
    with caplog.at_level(logging.WARNING):
        assert main([*evaluation, "--cuda-graphs", "--output", str(metrics)]) == 2
    assert "--cuda-graphs apply to --model, not to --onnx" in error_lines(capsys)[0]
    # Refused before saying that --output would be replaced: a refused command replaces nothing.
    assert "will be replaced" not in caplog.text


def test_predict_refuses_model_flags_with_onnx_before_replacing_anything(
    tmp_path: Path,
    image: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As eval: the refusal names the flag given and comes before the warning that --output
    will be replaced (predict used to warn first, for a command that then replaced nothing)."""
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"never read")
    output = tmp_path / "predictions.json"
    output.write_text("[]")
    argv = ["predict", "--onnx", str(onnx), "--stages", "1", "--output", str(output)]
    with caplog.at_level(logging.WARNING):
        assert main([*argv, str(image)]) == 2
    (line,) = error_lines(capsys)
    assert line.startswith("sparsercnn predict: error: --stages 1: --stages and --cuda-graphs")
    assert "at the precision it was exported in; drop it" in line
    assert "will be replaced" not in caplog.text
    assert output.read_text() == "[]"


def test_predict_refuses_an_output_that_is_an_input_without_saying_it_replaces_it(
    model_file: Path,
    image: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Was: "--output a.png exists: it will be replaced once this run succeeds", then the
    refusal: the user read that their image was about to go."""
    before = image.read_bytes()
    with caplog.at_level(logging.WARNING):
        argv = ["predict", "--model", str(model_file), "--output", str(image), str(image)]
        assert main(argv) == 2
    (line,) = error_lines(capsys)
    assert line.endswith(f"--output {image} is one of the inputs; give another file name")
    assert "will be replaced" not in caplog.text
    assert image.read_bytes() == before


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_predict_refuses_a_precision_the_onnx_graph_does_not_compute_in(
    tmp_path: Path,
    image: Path,
    model_file_onnx: Path,
    precision: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An fp32 graph with ``--precision int8`` ran fp32 without a word (or, before that, was
    refused whatever the graph's precision); the refusal names both flags and comes before the
    warning that --output will be replaced. The graph's own precision is accepted."""
    output = tmp_path / "predictions.json"
    output.write_text("[]")
    argv = ["predict", "--onnx", str(model_file_onnx), "--output", str(output), str(image)]
    with caplog.at_level(logging.WARNING):
        assert main([*argv, "--precision", precision]) == 2
    (line,) = error_lines(capsys)
    assert line.startswith(
        f"sparsercnn predict: error: --precision {precision}: --onnx {model_file_onnx} "
        "computes in fp32, the precision it was exported in; leave out --precision"
    )
    assert "will be replaced" not in caplog.text
    assert output.read_text() == "[]"
    assert main([*argv, "--precision", "fp32"]) == 0


@pytest.mark.parametrize(
    ("model", "flags", "message"),
    [
        ("onnx", ["--precision", "int8"], "--precision int8: --onnx {} computes in fp32"),
        ("model", ["--precision", "int8"], "precision int8 needs a calibrated model file"),
        ("model", ["--stages", "9"], "num_stages (--stages) 9: {} has stages 1..2"),
    ],
)
def test_eval_refuses_the_model_s_settings_before_saying_it_replaces_an_output(
    tmp_path: Path,
    model_file: Path,
    model_file_onnx: Path,
    model: str,
    flags: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As predict: ``eval --onnx fp32.onnx --precision int8 --output M.json`` logged "--output
    M.json exists: it will be replaced" before refusing the precision (and so did --model's
    refusals)."""
    path = model_file_onnx if model == "onnx" else model_file
    output = tmp_path / "metrics.json"
    output.write_text("{}")
    images = tmp_path / "images"
    images.mkdir()
    argv = ["eval", f"--{model}", str(path), "--json", "x.json", "--images", str(images)]
    with caplog.at_level(logging.WARNING):
        assert main([*argv, *flags, "--output", str(output)]) == 2
    (line,) = error_lines(capsys)
    assert message.format(path) in line
    assert "will be replaced" not in caplog.text
    assert output.read_text() == "{}"


def test_cuda_graphs_on_a_cpu_name_the_flag_and_the_device(
    model_file: Path, image: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["predict", "--model", str(model_file), str(image), "--device", "cpu", "--cuda-graphs"]
    assert main(args) == 2
    (line,) = error_lines(capsys)
    assert "--cuda-graphs" in line and "--device cuda" in line and "on cpu" in line


def test_an_output_path_inside_a_file_is_bad_input(
    model_file: Path, image: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # FileExistsError from creating the output's folder, where a file is.
    output = image / "predictions.json"
    assert main(["predict", "--model", str(model_file), str(image), "--output", str(output)]) == 2
    (line,) = error_lines(capsys)
    assert line.startswith("sparsercnn predict: error: ") and str(image) in line
    assert "Errno" not in line


def test_an_unreadable_image_is_bad_input(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"\xff\xd8\xff not a jpeg")
    output = tmp_path / "p.json"
    assert main(["predict", "--model", str(model_file), str(fake), "--output", str(output)]) == 2
    (line,) = error_lines(capsys)
    assert line.startswith("sparsercnn predict: error: ") and str(fake) in line


def test_an_unknown_set_key_names_the_key_and_the_near_miss(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--train-json", "t.json", "--train-images", "t", "--output-dir"]
    argv += [str(tmp_path / "run"), "--preset", "tiny", "--set", "model.num_proposal=8"]
    assert main(argv) == 2
    (line,) = error_lines(capsys)
    assert "'model.num_proposal'" in line and "did you mean 'model.num_proposals'?" in line


def test_a_badly_typed_set_value_names_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    argv = ["train", "--train-json", "t.json", "--train-images", "t", "--output-dir", str(run)]
    assert main([*argv, "--preset", "tiny", "--set", "train.max_iter=many"]) == 2
    assert not run.exists()
    (line,) = error_lines(capsys)
    assert "'train.max_iter' expects an integer, got 'many'" in line


@pytest.mark.parametrize("preset", ["auto", "tiny"])
def test_a_model_value_the_build_refuses_is_named_before_the_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], preset: str
) -> None:
    """It was refused by the model's build, after every training image had been decoded."""
    run = tmp_path / "run"
    argv = ["train", "--train-json", "t.json", "--train-images", "t", "--output-dir", str(run)]
    assert main([*argv, "--preset", preset, "--set", "model.backbone_depth=42"]) == 2
    assert not run.exists()
    (line,) = error_lines(capsys)
    assert "model.backbone_depth must be one of [18, 34, 50, 101], got 42" in line


def test_a_config_file_with_a_trailing_comma_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.json"
    config.write_text('{\n  "train": {"max_iter": 5,}\n}\n')
    argv = ["train", "--train-json", "t.json", "--train-images", "t", "--output-dir", "o"]
    assert main([*argv, "--config", str(config)]) == 2
    (line,) = error_lines(capsys)
    assert str(config) in line and "line 2 column 27" in line and "trailing commas" in line


def test_config_file_alone_is_enough_and_a_foreign_one_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = tmp_path / "coco.json"
    foreign.write_text(json.dumps({"images": []}))
    argv = ["train", "--train-json", "t.json", "--train-images", "t", "--output-dir", "o"]
    assert main([*argv, "--config", str(foreign)]) == 2
    (line,) = error_lines(capsys)
    assert f"--config {foreign}" in line and "unknown config key" in line


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (
            ["eval", "--model", "m", "--json", "j", "--images", "i", "--batch-size", "-1"],
            "--batch-size",
        ),
        (["eval", "--model", "m", "--json", "j", "--images", "i", "--workers", "-1"], "--workers"),
        (["eval", "--model", "m", "--json", "j", "--images", "i", "--device", "gpu"], "--device"),
        (["benchmark", "--threads", "0"], "--threads"),
        (["benchmark", "--image-size", "0", "64"], "--image-size"),
        (["visualize", "--model", "m", "x.jpg", "--score-threshold", "2"], "--score-threshold"),
        (
            [
                "diagnose",
                "report",
                "--model",
                "m",
                "--json",
                "j",
                "--images",
                "i",
                "--samples",
                "-1",
            ],
            "--samples",
        ),
    ],
)
def test_bad_flag_values_stop_at_parsing_naming_the_flag(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert f"error: argument {named}" in capsys.readouterr().err


def test_a_multi_line_message_keeps_two_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    raising_handler(monkeypatch, ValueError("x.json: 3 problems\n[a] first\n[b] second\n"))
    assert main(VALIDATE) == 2
    assert error_lines(capsys) == [
        "sparsercnn validate: error: x.json: 3 problems",
        "[a] first [...]",
    ]


def test_a_full_disk_is_a_runtime_failure_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    error = OSError(errno.ENOSPC, "No space left on device", "/runs/model_final.safetensors")
    raising_handler(monkeypatch, error)
    assert main(VALIDATE) == 1
    first, second = error_lines(capsys)
    assert first.startswith(
        "sparsercnn validate: failed: OSError: /runs/model_final.safetensors: No space left on "
        "device (free disk space"
    )
    assert second == DEBUG_HINT


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (RuntimeError("kernel failed\ndetails\nmore"), "failed: RuntimeError: kernel failed [...]"),
        (torch.OutOfMemoryError("CUDA out of memory."), "lower the batch size"),
        (
            RuntimeError("[gloo/transport/tcp/pair.cc:553] Connection closed by peer [::1]:29500"),
            "Connection closed by peer [::1]:29500 (another process of this torchrun job "
            "stopped first: its own error is the cause)",
        ),
        (KeyError("images"), "failed: KeyError: 'images'"),
        (AssertionError(), "failed: AssertionError: (no message)"),
    ],
)
def test_other_exceptions_exit_1_with_their_type_and_the_debug_hint(
    error: Exception,
    shown: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    raising_handler(monkeypatch, error)
    assert main(VALIDATE) == 1
    err = capsys.readouterr().err
    first, second = err.strip().splitlines()
    assert shown in first and second == DEBUG_HINT and "Traceback" not in err


def test_a_failure_that_says_what_to_do_is_shown_without_type_and_debug_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: "failed: ConnectionError: ..." and "run again with --debug for the full traceback"
    after a download's retries, like a crash, though the message says what to do."""
    message = (
        "could not connect to https://example.org/m.pth (Name or service not known); gave up "
        "after 3 attempt(s), nothing was received: check the network and the URL, or download "
        "the file yourself and give its path"
    )
    raising_handler(monkeypatch, DownloadFailed(message))
    assert main(VALIDATE) == 1  # the input is not wrong: the run failed
    assert error_lines(capsys) == [f"sparsercnn validate: failed: {message}"]


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_re_raises_before_or_after_the_command(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    raising_handler(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    argv = ["--debug", *VALIDATE] if where == "before" else [*VALIDATE, "--debug"]
    with pytest.raises(OSError, match="No space left"):
        main(argv)


@pytest.mark.parametrize(
    ("world_size", "rank", "says"),
    [(None, None, True), ("2", "0", True), ("2", "1", False), (None, "1", True), ("1", "1", True)],
)
def test_interrupt_exits_130_and_one_rank_says_so(
    world_size: str | None,
    rank: str | None,
    says: bool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Under torchrun every rank exits 130, and rank 0 alone prints the line. A single process
    (``WORLD_SIZE`` unset or 1) is rank 0 whatever ``RANK`` a job script left set, as training
    takes it: it exited without a word."""
    for name, value in (("WORLD_SIZE", world_size), ("RANK", rank)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    raising_handler(monkeypatch, KeyboardInterrupt(), train)
    assert main(TRAIN) == 130
    assert error_lines(capsys) == (["sparsercnn train: interrupted"] if says else [])


def test_sigterm_is_handled_as_an_interrupt_and_exits_143(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGTERM raises inside the command (so its ``finally`` blocks run), and the default
    handler is back afterwards."""
    cleaned: list[bool] = []

    def handler(args: argparse.Namespace) -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # not reached: the signal raises first
        finally:
            cleaned.append(True)
        return 0

    monkeypatch.setattr(validate, "run", handler)
    assert main(VALIDATE) == 143
    assert error_lines(capsys) == ["sparsercnn validate: terminated (SIGTERM)"]
    assert cleaned == [True]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_warnings_logged_before_a_failure_still_show(tmp_path: Path) -> None:
    # In a real process (pytest's log capture would swallow the records in this one).
    script = tmp_path / "run.py"
    script.write_text(
        "import logging, sys\n"
        "from sparsercnn.cli import validate\n"
        "from sparsercnn.cli.main import main\n"
        "def handler(args):\n"
        "    logging.getLogger('sparsercnn.data').warning('image 7 has no annotations')\n"
        "    raise RuntimeError('boom')\n"
        "validate.run = handler\n"
        "sys.exit(main(['validate', '--json', 'j', '--images', 'i']))\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert "WARNING sparsercnn.data: image 7 has no annotations" in lines[0]
    assert lines[1:] == ["sparsercnn validate: failed: RuntimeError: boom", DEBUG_HINT]


def test_torch_info_records_do_not_show_after_an_interrupt(tmp_path: Path) -> None:
    """Ctrl-C during torch's import (which the command starts with) left its loggers on the
    root's INFO level: its exit logged three "INFO torch._subclasses.fake_tensor: FakeTensor
    cache stats" lines after "interrupted". Its warnings still show."""
    script = tmp_path / "run.py"
    script.write_text(
        "import logging, sys\n"
        "from sparsercnn.cli import main as cli\n"
        "def interrupted_import():\n"
        "    # torch._subclasses.fake_tensor logs at exit; torch sets its loggers up last.\n"
        "    log = logging.getLogger('torch._subclasses.fake_tensor')\n"
        "    log.info('FakeTensor cache stats:')\n"
        "    log.warning('a torch warning')\n"
        "    raise KeyboardInterrupt\n"
        "cli.retain_freed_memory = interrupted_import\n"
        "assert 'torch' not in sys.modules\n"
        "sys.exit(cli.main(['validate', '--json', 'j', '--images', 'i']))\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert done.returncode == 130
    lines = done.stderr.strip().splitlines()
    assert "WARNING torch._subclasses.fake_tensor: a torch warning" in lines[0]
    assert lines[1:] == ["sparsercnn validate: interrupted"]


def test_convert_names_the_published_checkpoints_for_an_unknown_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["convert", "r50_100pro", "--output", str(tmp_path / "m.safetensors")]) == 2
    (line,) = error_lines(capsys)
    assert "SRC: checkpoint r50_100pro does not exist; nor is it a published name (" in line
    assert "r50_100pro_3x" in line


def test_convert_of_a_published_file_not_there_says_where_to_get_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's table names the published files: ``convert r50_100pro_3x_model.pth`` before
    downloading it said only that SRC does not exist."""
    output = str(tmp_path / "m.safetensors")
    assert main(["convert", "r50_100pro_3x_model.pth", "--output", output]) == 2
    assert error_lines(capsys) == [
        "sparsercnn convert: error: SRC: checkpoint r50_100pro_3x_model.pth does not exist; it is "
        "the "
        "download of the published checkpoint r50_100pro_3x: pass the name r50_100pro_3x "
        "instead (downloaded once, then cached), or download it from "
        "https://github.com/PeizeSun/SparseR-CNN/releases/download/v0.1/r50_100pro_3x_model.pth"
    ]
    # Was: "SRC .../mine.pth does not exist", with nothing to do.
    assert main(["convert", str(tmp_path / "mine.pth"), "--output", output]) == 2
    assert error_lines(capsys)[0].endswith(
        "mine.pth does not exist; check the path, or give a published name instead "
        "(`sparsercnn convert --help` lists them)"
    )


@pytest.mark.parametrize("command", ["export", "visualize"])
def test_output_inside_a_file_fails_before_any_work(
    command: str, model_file: Path, image: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = image / "out.png"
    argv = [command, "--model", str(model_file), "--output", str(output)]
    assert main([*argv, str(image)] if command == "visualize" else argv) == 2
    (line,) = error_lines(capsys)
    assert f"--output {output}: {image} is a file, not a folder" in line


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc")
def test_an_output_folder_that_takes_no_file_fails_before_any_work(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """/proc takes no new file, even from root: found before the evaluation, not after it."""
    argv = ["diagnose", "stages", "--model", str(model_file), "--json", str(tmp_path / "x.json")]
    argv += ["--images", str(tmp_path), "--output-dir", "/proc/sparsercnn-test"]
    assert main(argv) == 2
    (line,) = error_lines(capsys)
    assert "--output-dir /proc/sparsercnn-test: cannot write in /proc" in line


@pytest.mark.parametrize(
    ("argv", "victim", "message"),
    [
        # A typo (--output val.json for --json val.json) cost the annotations.
        (["eval", "--model", "{model}", "{data}", "--output", "{json}"], "json",
         "--output {json} is the file --json names"),
        (["eval", "--model", "{model}", "{data}", "--results", "{model}"], "model",
         "--results {model} is the file --model names"),
        (["eval", "--model", "{model}", "{data}", "--output", "{image}"], "image",
         "--output {image} would replace a file in the --images folder"),
        (["visualize", "--model", "{model}", "{image}", "--output", "{image}"], "image",
         "--output {image} is the file IMAGE names"),
        (["predict", "--model", "{model}", "{image}", "--output", "{model}"], "model",
         "--output {model} is the file --model names"),
        # Refused before the file is read: any file stands for the ONNX model here.
        (["predict", "--onnx", "{json}", "{image}", "--output", "{json}"], "json",
         "--output {json} is the file --onnx names"),
        (["export", "--model", "{model}", "--output", "{model}"], "model",
         "--output {model} is the file --model names"),
        (["convert", "{model}", "--output", "{model}"], "model",
         "--output {model} is the file SRC names"),
        (["benchmark", "--model", "{model}", "--output", "{model}"], "model",
         "--output {model} is the file --model names"),
    ],
)  # fmt: skip
def test_an_output_that_would_destroy_an_input_is_refused(
    model_file: Path,
    write_coco: WriteCoco,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    victim: str,
    message: str,
) -> None:
    data = write_coco(num_images=2, size=(48, 64))
    paths = {"model": model_file, "json": data.json_path, "image": data.image_paths[0]}
    names = {key: str(path) for key, path in paths.items()}
    data_args = ["--json", str(data.json_path), "--images", str(data.image_dir)]
    expanded: list[str] = []
    for arg in argv:
        expanded += data_args if arg == "{data}" else [arg.format(**names)]
    before = paths[victim].read_bytes()
    assert main(expanded) == 2
    assert message.format(**names) in capsys.readouterr().err
    assert paths[victim].read_bytes() == before


def test_eval_output_and_results_must_differ(
    model_file: Path, write_coco: WriteCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_coco(num_images=2, size=(48, 64))
    same = tmp_path / "out.json"
    argv = ["eval", "--model", str(model_file), "--json", str(data.json_path)]
    argv += ["--images", str(data.image_dir), "--output", str(same), "--results", str(same)]
    assert main(argv) == 2
    assert f"--output and --results both name {same}" in capsys.readouterr().err
    assert not same.exists()


@pytest.mark.parametrize(
    ("flag", "name"),
    [
        ("--output", "confusion_matrix.json"),
        ("--results", "samples/results.json"),
        ("--output", "."),
    ],
)
def test_eval_outputs_among_the_report_files_are_refused(
    model_file: Path,
    write_coco: WriteCoco,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    flag: str,
    name: str,
) -> None:
    """The report is written after --output and --results: it replaced the metrics file by its
    confusion matrix (or deleted results in its samples folder) without a word, or failed
    with a traceback after the evaluation where --output had taken the report's folder."""
    data = write_coco(num_images=2, size=(48, 64))
    report = tmp_path / "report"

    def no_evaluation(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model ran")

    monkeypatch.setattr("sparsercnn.engine.model_evaluation.evaluate_model_file", no_evaluation)
    output = report / name
    argv = ["eval", "--model", str(model_file), "--json", str(data.json_path)]
    argv += ["--images", str(data.image_dir), "--report-dir", str(report), flag, str(output)]
    assert main(argv) == 2
    (line,) = error_lines(capsys)
    assert f"{flag} {output} is a file that --report-dir {report} writes after it" in line
    assert not output.exists()


@pytest.mark.parametrize("report_of_images", [".", ".."])
def test_eval_report_dir_among_the_images_is_refused(
    model_file: Path,
    write_coco: WriteCoco,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    report_of_images: str,
) -> None:
    """Images in ``<report>/samples`` (``000.png``...) were deleted as an earlier report's
    drawings; images in the report folder itself could be replaced by its plots."""
    data = write_coco(num_images=2, size=(48, 64))
    images = tmp_path / "report" / "samples"
    images.parent.mkdir()
    data.image_dir.rename(images)
    report = images / report_of_images
    argv = ["eval", "--model", str(model_file), "--json", str(data.json_path)]
    argv += ["--images", str(images), "--report-dir", str(report), "--workers", "0"]
    assert main(argv) == 2
    assert f"--report-dir {report} would write among the images" in capsys.readouterr().err
    assert sorted(path.name for path in images.iterdir()) == ["000.png", "001.png"]


@pytest.mark.parametrize("case", ["samples is a file", "report would replace --json"])
def test_eval_report_dir_problems_fail_before_the_model_runs(
    model_file: Path,
    write_coco: WriteCoco,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    """``eval --report-dir`` runs ``diagnose report``'s checks up front: no model work, no
    report file written, one line naming the flag."""
    data = write_coco(num_images=2, size=(48, 64))
    report = tmp_path / "report"
    report.mkdir()
    json_path = data.json_path
    if case == "samples is a file":
        (report / "samples").write_text("the user's")
    else:
        json_path = report / "confusion_matrix.json"
        data.json_path.rename(json_path)

    def no_evaluation(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model ran")

    monkeypatch.setattr("sparsercnn.engine.model_evaluation.evaluate_model_file", no_evaluation)
    argv = ["eval", "--model", str(model_file), "--json", str(json_path)]
    argv += ["--images", str(data.image_dir), "--report-dir", str(report), "--workers", "0"]
    before = {path.name: path.read_bytes() for path in report.iterdir()}
    assert main(argv) == 2
    (line,) = error_lines(capsys)
    assert f"--report-dir {report}" in line
    assert {path.name: path.read_bytes() for path in report.iterdir()} == before


@pytest.mark.parametrize("command", ["validate", "eval", "train"])
@pytest.mark.parametrize("kind", ["missing", "file", "empty"])
def test_a_wrong_image_folder_is_one_line_naming_it(
    model_file: Path,
    write_coco: WriteCoco,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    kind: str,
) -> None:
    """Not one line per missing image: the folder, its flag and what to do, before any work."""
    # The model's categories: eval compares them before it looks at the images.
    categories = [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]
    data = write_coco(num_images=3, size=(48, 64), categories=categories)
    images = tmp_path / "images"
    if kind == "file":
        images.write_text("not a folder")
    elif kind == "empty":
        images.mkdir()
    json_flag, images_flag = (
        ("--train-json", "--train-images")
        if command == "train"
        else (
            "--json",
            "--images",
        )
    )
    argv = [command, json_flag, str(data.json_path), images_flag, str(images)]
    if command == "eval":
        argv += ["--model", str(model_file), "--workers", "0"]
    if command == "train":
        argv += ["--output-dir", str(tmp_path / "run")]
    assert main(argv) == 2
    (line,) = error_lines(capsys)
    assert f"image folder {str(images)!r} of {data.json_path}" in line
    assert f"(the {images_flag} path)" in line  # the one flag given, not every possible one
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["validate", "eval", "diagnose", "train", "train-val"])
@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_an_unreadable_annotation_file_is_one_line_naming_its_flag(
    model_file: Path,
    write_coco: WriteCoco,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    kind: str,
) -> None:
    data = write_coco(num_images=2, size=(48, 64))
    json_path = tmp_path / "annotations.json"
    if kind == "folder":
        json_path.mkdir()
    flag = {"train": "--train-json", "train-val": "--val-json"}.get(command, "--json")
    argv = [command, "--json", str(json_path), "--images", str(data.image_dir)]
    if command == "eval":
        argv += ["--model", str(model_file), "--workers", "0"]
    if command == "diagnose":
        argv[1:1] = ["slots"]
        argv += ["--model", str(model_file), "--output-dir", str(tmp_path / "out")]
    if command.startswith("train"):
        train_json = json_path if command == "train" else data.json_path
        argv = ["train", "--train-json", str(train_json), "--train-images", str(data.image_dir)]
        argv += ["--output-dir", str(tmp_path / "run"), "--preset", "tiny"]
        if command == "train-val":
            argv += ["--val-json", str(json_path), "--val-images", str(data.image_dir)]
    assert main(argv) == 2
    (line,) = error_lines(capsys)
    assert f"annotation file {json_path} (the {flag} path) " in line
    problems = {"missing": "was not found: check the path", "folder": "is a folder; give the COCO"}
    assert problems[kind] in line


def test_a_wrong_validation_image_folder_names_its_flag(
    write_coco: WriteCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_coco(num_images=2, size=(48, 64))
    missing = tmp_path / "val_images"
    argv = ["train", "--train-json", str(data.json_path), "--train-images", str(data.image_dir)]
    argv += ["--val-json", str(data.json_path), "--val-images", str(missing)]
    argv += ["--output-dir", str(tmp_path / "run"), "--preset", "tiny"]
    assert main(argv) == 2
    (line,) = error_lines(capsys)
    assert f"image folder {str(missing)!r} of {data.json_path} (the --val-images path) does " in (
        line
    )
    assert not (tmp_path / "run").exists()


def test_a_command_that_does_not_share_its_work_refuses_torchrun_s_processes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[argparse.Namespace] = []
    monkeypatch.setattr(validate, "run", ran.append)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(VALIDATE) == 2
    (line,) = error_lines(capsys)
    assert "sparsercnn validate runs in one process, but WORLD_SIZE=2" in line
    assert "without torchrun" in line and not ran
    monkeypatch.setenv("WORLD_SIZE", "1")
    main(VALIDATE)
    assert len(ran) == 1


TRAIN = ["train", "--train-json", "x.json", "--train-images", "x", "--output-dir", "run"]


@pytest.mark.parametrize("command", [VALIDATE, TRAIN])
@pytest.mark.parametrize("value", ["0", "abc"])
def test_a_world_size_that_is_no_number_of_processes_is_named_once_for_every_command(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    value: str,
) -> None:
    """The CLI parsed WORLD_SIZE on its own: ``validate`` ran "in one process, but
    WORLD_SIZE=abc (torchrun)", ``train`` ran one process with WORLD_SIZE=0. Both now stop,
    before any work, with the one message that ``init_distributed`` gives."""
    ran: list[argparse.Namespace] = []
    monkeypatch.setattr(validate, "run", ran.append)
    monkeypatch.setenv("WORLD_SIZE", value)
    assert main(command) == 2
    (line,) = error_lines(capsys)
    assert f"environment variable WORLD_SIZE={value!r} is not an integer >= 1" in line
    assert not ran
