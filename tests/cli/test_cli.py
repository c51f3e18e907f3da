"""The ``sparsercnn`` command line: help of every command, and the predict/eval/validate jobs."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from sparsercnn import drawing_writer
from sparsercnn.cli.main import COMMANDS, build_parser, main, subcommand_parsers
from sparsercnn.data.categories import CategoryMap
from sparsercnn.drawing_writer import DrawingWriter
from sparsercnn.evaluation.results import write_results_json
from sparsercnn.image_inputs import DRAWINGS_MARKER
from sparsercnn.predictor import BatchPredictor
from tests.synthetic_coco import Box, SyntheticCoco, WriteCoco, truncate
from tests.tiny_model import write_tiny_model_file


def command_names() -> list[str]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    return sorted(subparsers.choices)  # type: ignore[attr-defined]


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    names = command_names()
    assert len(names) == len(COMMANDS)
    assert {"demo", "train", "eval", "predict", "validate", "convert", "export"} <= set(names)
    for name in names:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: sparsercnn {name}" in capsys.readouterr().out


@pytest.fixture
def dataset(write_coco: WriteCoco) -> SyntheticCoco:
    """Images of mixed sizes and formats, one in a subfolder (without boxes), and a text file."""
    data = write_coco(
        file_names=["a.jpg", "b.png", "nested/c.jpg"],
        size=[(90, 120), (100, 64), (80, 80)],
        categories=[{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
        boxes=[[Box(3, (10, 10, 40, 30))], [Box(7, (5, 20, 30, 50))], []],
    )
    (data.image_dir / "notes.txt").write_text("not an image")
    return data


def test_predict_on_a_folder_writes_coco_results(
    model_file: Path, dataset: SyntheticCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "preds.json"
    drawn = tmp_path / "drawn"
    code = main(
        [
            "predict",
            "--model",
            str(model_file),
            str(dataset.image_dir),
            "--output",
            str(output),
            "--save-images",
            str(drawn),
            "--score-threshold",
            "0.0",
        ]
    )
    assert code == 0
    assert f"detections on 3 images written to {output}; run on cpu\n" in capsys.readouterr().out
    records = json.loads(output.read_text())
    # Written by eval's writer: the same compact JSON, byte for byte.
    assert output.read_text() == write_results_json(records, tmp_path / "again.json").read_text()
    files = {Path(r["file_name"]).name for r in records}
    assert files == {"a.jpg", "b.png", "c.jpg"}
    sizes = {"a.jpg": (90, 120), "b.png": (100, 64), "c.jpg": (80, 80)}
    for record in records:
        assert record["category_id"] in (3, 7)  # dataset ids, not contiguous labels
        x, y, w, h = record["bbox"]
        height, width = sizes[Path(record["file_name"]).name]
        assert x >= 0 and y >= 0 and x + w <= width + 0.01 and y + h <= height + 0.01
        assert 0.0 <= record["score"] <= 1.0
    drawings = sorted(str(p.relative_to(drawn)) for p in drawn.rglob("*") if p.is_file())
    # Input paths and formats kept; the folder is marked as drawings.
    assert drawings == [DRAWINGS_MARKER, "a.jpg", "b.png", "nested/c.jpg"]


def test_predict_names_where_it_ran_as_eval_does() -> None:
    """predict's summary said nothing of the device, nor of the execution provider that ran an
    --onnx file (eval's report and GET /v1/model name it)."""
    from sparsercnn.export.onnx_runtime import OnnxPredictor
    from sparsercnn.predictor import Predictor

    onnx = OnnxPredictor.__new__(OnnxPredictor)
    onnx.device, onnx.provider = "cuda:0", "CUDAExecutionProvider"
    assert onnx.runs_on == "cuda:0 (onnxruntime CUDAExecutionProvider)"
    eager = Predictor.__new__(Predictor)
    eager.device = torch.device("cuda", 1)
    assert eager.runs_on == "cuda:1"


def test_predict_never_writes_over_its_inputs(
    model_file: Path, dataset: SyntheticCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, output = dataset.image_dir, tmp_path / "preds.json"
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    def predict(*args: Path | str) -> int:
        return main(["predict", "--model", str(model_file), *map(str, args)])

    assert predict(folder, "--save-images", folder, "--output", output) == 2
    assert f"--save-images {folder} would replace the input " in capsys.readouterr().err
    image = folder / "a.jpg"
    assert predict(image, "--output", image) == 2
    assert f"--output {image} is one of the inputs" in capsys.readouterr().err
    assert predict(image, "--every", "2") == 2
    assert "--every 2 keeps every N-th frame" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert not output.exists()
    # Drawings in a folder below the input folder are not read back as inputs by the next run,
    # whether it draws again there, elsewhere, or not at all.
    drawn = folder / "drawn"
    for drawings_flag in (("--save-images", drawn),) * 2 + (("--save-images", tmp_path / "x"), ()):
        assert predict(folder, *drawings_flag, "--output", output) == 0
        sources = {Path(r["file_name"]).resolve() for r in json.loads(output.read_text())}
        assert sources and not any(s.is_relative_to(drawn.resolve()) for s in sources)
    drawings = sorted(str(p.relative_to(drawn)) for p in drawn.rglob("*") if p.is_file())
    assert drawings == [DRAWINGS_MARKER, "a.jpg", "b.png", "nested/c.jpg"]


def test_predict_never_draws_over_a_file_no_run_drew(
    model_file: Path, dataset: SyntheticCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The user's photo named as a drawing, or a folder of the user's images given as
    --save-images: they were replaced (or marked as drawings) "as drawings of an earlier run"."""
    folder, output = dataset.image_dir, tmp_path / "preds.json"
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    drawn = tmp_path / "drawn"
    drawn.mkdir()
    photo = drawn / "b.png"
    photo.write_bytes(b"the user's photo")

    def predict(*args: Path | str) -> int:
        argv = ["predict", "--model", str(model_file), "--output", str(output), *map(str, args)]
        return main(argv)

    assert predict(folder, "--save-images", drawn) == 2
    message = f"--save-images {drawn} would replace {photo}, which no earlier run drew"
    assert message in capsys.readouterr().err
    # The input folder holds the inputs' drawings' names: a.jpg, b.png.
    assert predict(folder / "nested", "--save-images", folder) == 2
    assert f"--save-images {folder} holds " in capsys.readouterr().err
    assert photo.read_bytes() == b"the user's photo" and not output.exists()
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in drawn.iterdir()) == ["b.png"]


def test_an_image_whose_drawing_has_no_image_format_is_refused_before_the_model_runs(
    model_file: Path,
    dataset: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A drawing keeps its image's name: an image named without a suffix failed after the
    model ran, on `.photo.partial is not an image format`, naming a hidden staged file."""
    photo = tmp_path / "photo"
    photo.write_bytes((dataset.image_dir / "b.png").read_bytes())
    output, drawn = tmp_path / "preds.json", tmp_path / "drawn"
    monkeypatch.setattr(BatchPredictor, "iter_predictions", None)  # the model must not run
    argv = ["predict", "--model", str(model_file), str(photo), "--output", str(output)]
    assert main([*argv, "--save-images", str(drawn)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.endswith(
        f"{drawn / 'photo'}: no suffix is not an image format Pillow can write; a drawing takes "
        f"its image's name and format: save {photo} as .png or .jpg, or leave out --save-images"
    )
    assert not output.exists() and not drawn.exists()


def test_predict_score_threshold_without_drawings_is_refused(
    model_file: Path,
    dataset: SyntheticCoco,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The threshold only chooses what is drawn: without --save-images it would change
    nothing, while the user expects fewer records."""
    output = tmp_path / "preds.json"
    argv = ["predict", "--model", str(model_file), str(dataset.image_dir / "a.jpg")]
    assert main([*argv, "--output", str(output), "--score-threshold", "0.5"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "--score-threshold 0.5" in line and "--save-images" in line and str(output) in line
    assert not output.exists()
    assert main([*argv, "--output", str(output), "--save-images", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "(score >= 0.3)" in out  # the default threshold of drawings
    assert " detections on 1 image written to " in out
    # Run again: the earlier output is replaced, and the run says so before its work; a run
    # refused for its flags replaces nothing and does not say it would.
    caplog.clear()
    assert main([*argv, "--output", str(output), "--score-threshold", "0.5"]) == 2
    assert "will be replaced" not in caplog.text
    assert main([*argv, "--output", str(output)]) == 0
    assert f"--output {output} exists: it will be replaced" in caplog.text


def test_predict_terminated_mid_run_leaves_nothing_behind(
    model_file: Path,
    dataset: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SIGTERM after the last drawing, before the results are written: no results file, no
    drawing, no hidden staged file, no folder made for them. A staged file a SIGKILLed run
    left is deleted by the next complete run."""
    drawn, output = tmp_path / "drawn", tmp_path / "preds.json"
    argv = ["predict", "--model", str(model_file), str(dataset.image_dir)]
    argv += ["--save-images", str(drawn), "--output", str(output)]
    write = DrawingWriter.write
    written: list[Path] = []

    def write_then_terminate(self: DrawingWriter, *args: Any) -> Path:
        written.append(write(self, *args))
        if len(written) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return written[-1]

    with monkeypatch.context() as patch:
        patch.setattr(DrawingWriter, "write", write_then_terminate)
        assert main(argv) == 143
    assert "terminated (SIGTERM)" in capsys.readouterr().err
    assert drawn / "nested" / "c.jpg" in written
    assert not output.exists() and not drawn.exists()
    drawn.mkdir()
    killed = drawn / ".a.partial.jpg"  # as a SIGKILLed run leaves it
    killed.write_bytes(b"half a drawing")
    assert main(argv) == 0
    drawings = sorted(str(p.relative_to(drawn)) for p in drawn.rglob("*") if p.is_file())
    assert drawings == [DRAWINGS_MARKER, "a.jpg", "b.png", "nested/c.jpg"]


def test_user_errors_are_reported_without_traceback(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["predict", "--model", str(model_file), str(tmp_path / "missing.jpg")])
    assert code == 2
    err = capsys.readouterr().err
    assert "missing.jpg" in err and "Traceback" not in err
    code = main(["predict", "--model", str(tmp_path / "none.safetensors"), str(tmp_path)])
    assert code == 2
    assert "none.safetensors" in capsys.readouterr().err


def test_validate_without_the_image_check_finds_missing_files_and_says_what_it_left_out(
    write_coco: WriteCoco, capsys: pytest.CaptureFixture[str]
) -> None:
    """--no-image-check still looks for the files (an "OK" must not hide a missing one) but
    decodes none, and its last line says so."""
    data = write_coco(num_images=3, size=(48, 64))
    data.image_paths[0].unlink()
    truncate(data.image_paths[1])
    argv = ["validate", "--json", str(data.json_path), "--images", str(data.image_dir)]
    assert main([*argv, "--no-image-check"]) == 2
    out = capsys.readouterr().out
    assert "[image_file_missing] image 1:" in out and "image_file_unreadable" not in out
    assert out.splitlines()[-1] == (
        "the image files were looked for, not opened or decoded (--no-image-check): `train` and "
        "`eval` decode every one; `sparsercnn validate` without --no-image-check does too, and "
        f"finds unreadable, truncated or resized images in {data.image_dir}"
    )
    assert main(argv) == 2
    out = capsys.readouterr().out
    assert "[image_file_missing]" in out and "[image_file_unreadable]" in out
    assert out.splitlines()[-1].startswith("FAILED: 2 errors; ")


def test_validate_all_lists_every_issue(
    write_coco: WriteCoco, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first 10 of a kind, and the count of the rest, unless --all asks for every one."""
    data = write_coco(num_images=12, size=(48, 64))
    for path in data.image_paths[:11]:
        path.unlink()
    argv = ["validate", "--json", str(data.json_path), "--images", str(data.image_dir)]
    assert main(argv) == 2
    out = capsys.readouterr().out
    assert out.count("[image_file_missing]") == 11  # 10 listed, and "... and 1 more [...]"
    assert "1 issue not listed above: `sparsercnn validate --all` lists every one" in out
    assert main([*argv, "--all"]) == 2
    out = capsys.readouterr().out
    assert out.count("[image_file_missing] image") == 11 and "not listed" not in out


def test_validate_output_writes_the_issues_as_json(
    write_coco: WriteCoco,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """--output: every issue with its severity, code, ids and file, for a pipeline; written
    whether or not there are errors, the exit code unchanged, a user's file replaced with a
    warning, never an input."""
    data = write_coco(num_images=2, size=(48, 64))
    data.image_paths[0].unlink()
    report = tmp_path / "report.json"
    report.write_text("an earlier report")
    argv = ["validate", "--json", str(data.json_path), "--images", str(data.image_dir)]
    assert main([*argv, "--output", str(report)]) == 2
    assert "[image_file_missing] image 1:" in capsys.readouterr().out  # the text report too
    assert f"--output {report} exists: it will be replaced" in caplog.text
    written = json.loads(report.read_text())
    assert written["ok"] is False and written["num_errors"] == 1
    assert written["json"] == str(data.json_path) and written["image_check"] == "decode"
    (issue,) = written["issues"]
    assert issue["severity"] == "error" and issue["code"] == "image_file_missing"
    assert issue["image_id"] == 1 and issue["annotation_id"] is None
    assert issue["file"] == data.image_paths[0].name and "does not exist" in issue["message"]
    assert written["summary"]["num_images"] == 1
    assert written["summary"]["boxes_per_category"][0].keys() == {"category_id", "name", "boxes"}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    clean = write_coco(num_images=1, size=(48, 64))
    clean_argv = ["validate", "--json", str(clean.json_path), "--images", str(clean.image_dir)]
    assert main([*clean_argv, "--output", str(report)]) == 0
    assert json.loads(report.read_text())["ok"] is True

    # Refused before any work: the annotations file, or a file in the image folder.
    annotations = data.json_path.read_bytes()
    assert main([*argv, "--output", str(data.json_path)]) == 2
    assert "--output" in capsys.readouterr().err
    assert data.json_path.read_bytes() == annotations
    image = data.image_paths[1]
    assert main([*argv, "--output", str(image)]) == 2
    assert "would replace a file in the --images folder" in capsys.readouterr().err


def test_validate_and_eval_on_a_small_coco_dataset(
    model_file: Path,
    dataset: SyntheticCoco,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    json_path, image_folder = dataset.json_path, dataset.image_dir
    assert main(["validate", "--json", str(json_path), "--images", str(image_folder)]) == 0
    metrics, results = tmp_path / "metrics.json", tmp_path / "results.json"
    results.write_text("[]")  # a file of the user's: replaced, but not silently
    eval_argv = [
        "eval",
        "--model",
        str(model_file),
        "--json",
        str(json_path),
        "--images",
        str(image_folder),
        "--output",
        str(metrics),
        "--results",
        str(results),
        "--workers",
        "0",
    ]
    code = main([*eval_argv, "--report-dir", str(tmp_path / "report")])
    assert code == 0
    assert f"--results {results} exists: it will be replaced" in caplog.text
    assert "--output" not in caplog.text  # metrics.json did not exist
    records = json.loads(results.read_text())
    sizes = {1: (90, 120), 2: (100, 64), 3: (80, 80)}  # image id: (h, w) of the file
    assert records and {r["category_id"] for r in records} <= {3, 7}
    for record in records:  # [x, y, w, h] in the original image's pixels, clipped to it
        x, y, w, h = record["bbox"]
        height, width = sizes[record["image_id"]]
        assert x >= 0 and y >= 0 and w > 0 and h > 0
        assert x + w <= width + 0.01 and y + h <= height + 0.01
    values = json.loads(metrics.read_text())
    for key in ("AP", "AP50", "AP75", "APs", "APm", "APl", "per_class"):
        assert key in values
    assert 0.0 <= values["AP"] <= 1.0
    assert values["precision"] == "fp32" and values["cuda_graphs"] is False
    assert values["num_detections"] == len(records)
    assert (tmp_path / "report" / "confusion_matrix.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "speed on cpu (fp32): " in out
    assert f"AP    {100 * values['AP']:6.2f}%" in out  # the table gives the file's AP in percent
    assert f"metrics written to {metrics} (AP and AR as 0-1 fractions)" in out
    assert f"COCO results written to {results}" in out
    caplog.clear()
    assert main([*eval_argv, "--report-dir", str(tmp_path / "report")]) == 0
    assert f"--output {metrics} exists: it will be replaced" in caplog.text
    # The earlier report's files are replaced, but not silently (as diagnose --output-dir).
    assert (
        f"--report-dir {tmp_path / 'report'} holds precision_recall.png, confusion_matrix.png, "
        "confusion_matrix.json, dataset_labels.png: this run replaces them"
    ) in caplog.text
    assert json.loads(metrics.read_text())["AP"] == values["AP"]
    capsys.readouterr()
    # A broken annotation makes validate fail with the annotation id in the report.
    coco = dataset.read_json()
    coco["annotations"][1]["bbox"] = [5, 20, -5, 50]
    dataset.write_json(coco)
    assert main(["validate", "--json", str(json_path), "--images", str(image_folder)]) == 2
    assert "annotation 2" in capsys.readouterr().out


def test_model_flag_accepts_checkpoint_alias_with_a_note(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = build_parser().parse_args(
        ["eval", "--checkpoint", "m.safetensors", "--json", "j", "--images", "i"]
    )
    assert args.model == Path("m.safetensors")
    assert "--checkpoint is now --model" in capsys.readouterr().err
    args = build_parser().parse_args(["predict", "--model", "m.safetensors", "x.jpg"])
    assert args.model == Path("m.safetensors")
    assert capsys.readouterr().err == ""


def test_help_imports_neither_the_model_nor_matplotlib() -> None:
    code = (
        "import sys\n"
        "from sparsercnn.cli.main import build_parser\n"
        "build_parser().format_help()\n"
        "heavy = [m for m in ('torch', 'matplotlib', 'sparsercnn.model') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_the_torchrun_environment_is_read_without_torch() -> None:
    """A stop before the first command step imported the engine was printed by every rank of a
    torchrun job (the rank was read from the engine's module only where already imported), and
    the refusal of a command under torchrun imported the engine and torch to read WORLD_SIZE."""
    code = (
        "import os, sys\n"
        "from sparsercnn.cli.main import check_single_process, report_stop\n"
        "os.environ.update(WORLD_SIZE='2', RANK='1')\n"
        "report_stop('sparsercnn train: interrupted')\n"
        "check_single_process('train')\n"
        "print(','.join(m for m in ('torch', 'sparsercnn.engine') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert (done.stdout.strip(), done.stderr) == ("", "")


def test_train_help_says_where_presets_are_described_and_what_config_leaves_out(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "described in the README ('Fixed presets') and defined in the module" in text
    assert "keys it leaves out take the defaults (the r50_100pro_3x preset's values)" in text


def test_demo_help_describes_the_demo_preset(capsys: pytest.CaptureFixture[str]) -> None:
    """`demo --help` gives the `demo` preset's stages and schedule as the preset has them."""
    from sparsercnn.presets import get_preset

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    demo = get_preset("demo")
    assert f"'demo' is the same model with the paper's {demo.model.num_stages} stages" in text
    assert f"a fixed {demo.train.max_iter}-step schedule" in text


def test_every_flag_with_a_default_states_it_in_its_help() -> None:
    """What `--help` says a flag defaults to is the value argparse gives it, in every command."""
    missing = []
    for parser in subcommand_parsers(build_parser()):
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0:  # positionals, switches
                continue
            default = action.default
            if default in (None, False, argparse.SUPPRESS) or default == []:
                continue  # nothing to state (an empty list: a flag that adds up, as --set)
            shown = " ".join(default) if isinstance(default, list) else str(default)
            help_text = (action.help or "") % {"default": shown}
            if "default" not in help_text or shown not in help_text:
                missing.append(f"{parser.prog} {action.option_strings[0]} (default {shown})")
    assert missing == []


def test_predict_drawings_caption_classes_sharing_a_name_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two classes named "circle" were both captioned "circle", unlike the evaluation report's
    drawings ("circle (3)", "circle (7)")."""
    captured: list[list[str]] = []
    draw = drawing_writer.draw_detections

    def capture(*args: Any, **kwargs: Any) -> Image.Image:
        captured.append(list(args[4]))  # the class names
        return draw(*args, **kwargs)

    monkeypatch.setattr(drawing_writer, "draw_detections", capture)
    model = write_tiny_model_file(
        tmp_path / "model.safetensors", CategoryMap([3, 7], ["circle", "circle"])
    )
    (tmp_path / "in").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path / "in" / "a.png")
    output = tmp_path / "predictions.json"
    command = ["predict", "--model", str(model), str(tmp_path / "in"), "--output", str(output)]
    assert main([*command, "--save-images", str(tmp_path / "drawn"), "--score-threshold", "0"]) == 0
    assert captured == [["circle (3)", "circle (7)"]]
    # The results keep the dataset's own names.
    assert {r["category_name"] for r in json.loads(output.read_text())} == {"circle"}


def test_validate_counts_one_error_per_broken_image_without_a_size(
    write_coco: WriteCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An entry without a size whose file is missing or does not decode: its file's error
    alone, in the summary and the --output JSON (was also a ``bad_image`` saying the file did
    not decode, two errors per image)."""
    data = write_coco(num_images=3, size=(48, 64))
    coco = data.read_json()
    for entry in coco["images"][:2]:
        del entry["width"], entry["height"]
    data.write_json(coco)
    data.image_paths[0].unlink()
    data.image_paths[1].write_text("not an image")
    report = tmp_path / "report.json"
    argv = ["validate", "--json", str(data.json_path), "--images", str(data.image_dir)]
    assert main([*argv, "--output", str(report)]) == 2
    assert "FAILED: 2 errors;" in capsys.readouterr().out
    written = json.loads(report.read_text())
    errors = [(i["code"], i["image_id"]) for i in written["issues"] if i["severity"] == "error"]
    assert errors == [("image_file_missing", 1), ("image_file_unreadable", 2)]
    assert written["num_errors"] == 2 and written["summary"]["num_images"] == 1
