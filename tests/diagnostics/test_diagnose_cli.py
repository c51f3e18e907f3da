"""The ``visualize`` and ``diagnose`` subcommands: arguments reach the library, files appear.

The handlers are registered on a parser built here, the way ``cli/main.py`` registers them.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest

from sparsercnn.cli import diagnose, visualize
from sparsercnn.data.dataset_error import DatasetError
from tests.diagnostics.diagnostics_data import DiagnosticsData, write_subset_json


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sparsercnn")
    subparsers = parser.add_subparsers(dest="command", required=True)
    visualize.add_parser(subparsers)
    diagnose.add_parser(subparsers)
    args = parser.parse_args(argv)
    return int(args.handler(args))


def _dataset_args(data: DiagnosticsData, output: Path) -> list[str]:
    """Arguments of a ``diagnose`` kind, on the first two images (one of them crowded)."""
    subset = write_subset_json(data, 2, output.parent / f"{output.name}_subset.json")
    return [
        "--model",
        str(data.model_file),
        "--json",
        str(subset),
        "--images",
        str(data.image_dir),
        "--output-dir",
        str(output),
        "--workers",
        "0",
        "--device",
        "cpu",
    ]


def test_visualize(data: DiagnosticsData, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    output = tmp_path / "figure.png"
    image = str(data.image_dir / "000.png")
    argv = ["visualize", "--model", str(data.model_file), image, "--stages", "1", "2"]
    assert _run([*argv, "--output", str(output), "--device", "cpu"]) == 0
    assert output.stat().st_size > 0 and str(output) in capsys.readouterr().out


def test_visualize_names_the_flag_of_a_bad_stage_or_output_before_the_model_runs(
    data: DiagnosticsData,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model ran")

    monkeypatch.setattr("sparsercnn.diagnostics.stage_boxes.compute_stage_boxes", no_run)
    argv = ["visualize", "--model", str(data.model_file), str(data.image_dir / "000.png")]
    argv += ["--device", "cpu"]
    with pytest.raises(SystemExit):
        _run([*argv, "--stages", "0", "--output", str(tmp_path / "a.png")])
    assert "argument --stages: must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"\(--stages\) \[1, 3\] .*give stages from 1 to 2$"):
        _run([*argv, "--stages", "1", "3", "--output", str(tmp_path / "a.png")])
    with pytest.raises(ValueError, match=r"\(--stages\) \[2, 2\] .*give each stage once$"):
        _run([*argv, "--stages", "2", "2", "--output", str(tmp_path / "a.png")])
    output = tmp_path / "x.xyz"
    with pytest.raises(ValueError, match=rf"^--output {output}: \.xyz is not an image format"):
        _run([*argv, "--output", str(output)])
    # Pillow writes XBM (1-bit images only) and ICO (icon sizes), but not this figure as it is.
    for name, problem in (("x.xbm", "cannot hold this drawing"), ("x.ico", "ICO cannot hold")):
        with pytest.raises(ValueError, match=rf"^--output {tmp_path / name}: .*{problem}"):
            _run([*argv, "--output", str(tmp_path / name)])
        assert not (tmp_path / name).exists()
    assert not output.exists() and not (tmp_path / "a.png").exists()


def test_diagnose_stages(
    data: DiagnosticsData, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    output = tmp_path / "out"
    argv = ["diagnose", "stages", *_dataset_args(data, output), "--latency-images", "1"]
    assert _run(argv) == 0
    assert "AP50" in capsys.readouterr().out
    record = json.loads((output / "stages.json").read_text())
    assert [row["stage"] for row in record["stages"]] == [1, 2] and record["num_images"] == 2
    assert (output / "stages.png").stat().st_size > 0


def test_diagnose_slots_and_report(data: DiagnosticsData, tmp_path: Path) -> None:
    output = tmp_path / "out"
    assert _run(["diagnose", "slots", *_dataset_args(data, output)]) == 0
    names = {p.name for p in output.iterdir()}
    assert {"slots.json", "slot_matches.png", "slot_centres.png", "slot_sizes.png"} <= names
    assert json.loads((output / "slots.json").read_text())["num_images"] == 2
    assert _run(["diagnose", "report", *_dataset_args(data, output), "--samples", "1"]) == 0
    assert (output / "confusion_matrix.png").is_file()
    assert sorted(p.name for p in (output / "samples").iterdir()) == [
        ".sparsercnn-samples.json",
        "1.png",
    ]


def test_diagnose_slots_prints_its_advice_once(
    data: DiagnosticsData,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The advice is in the printed summary; it is not logged as a warning besides."""
    output = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        assert _run(["diagnose", "slots", *_dataset_args(data, output)]) == 0
    advice = json.loads((output / "slots.json").read_text())["advice"]
    assert advice  # the crowded image holds more objects than the tiny model has proposals
    printed = capsys.readouterr().out + caplog.text
    assert all(printed.count(line) == 1 for line in advice)


@pytest.mark.parametrize("kind", ["stages", "slots", "report", "reads"])
def test_diagnose_help_gives_the_defaults(kind: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        _run(["diagnose", kind, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "where files are written (default diagnostics; the files of an earlier diagnosis there "
        "are replaced, with a warning)" in text
    )
    assert "data-loading processes (default 2)" in text
    if kind in ("slots", "report"):
        assert "(default 0.3" in text


def test_diagnose_needs_a_kind() -> None:
    with pytest.raises(SystemExit):
        _run(["diagnose"])


@pytest.mark.parametrize("kind", sorted(diagnose.OUTPUT_FILES))
def test_a_wrong_images_folder_is_named_by_its_one_flag(
    kind: str, data: DiagnosticsData, tmp_path: Path
) -> None:
    """As in ``eval``: the error names --images, not the three flags a folder can come from."""
    argv = ["diagnose", kind, *_dataset_args(data, tmp_path / "out")]
    argv[argv.index("--images") + 1] = str(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"\(the --images path\) does not exist") as info:
        _run(argv)
    assert "--train-images" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_diagnose_reads(
    data: DiagnosticsData, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    output = tmp_path / "out"
    argv = ["diagnose", "reads", "--model", str(data.model_file), "--json", str(data.json_path)]
    argv += ["--images", str(data.image_dir), "--output-dir", str(output), "--workers", "0"]
    assert _run([*argv, "--max-images", "2", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "over 2 images" in printed and "16x16 tiles" in printed
    assert json.loads((output / "feature_reads.json").read_text())["num_images"] == 2


def test_diagnose_warns_before_replacing_its_earlier_files(
    data: DiagnosticsData, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As ``visualize --output`` does, a diagnosis says which files of --output-dir it
    replaces (an earlier diagnosis', or anyone's), before the model runs."""
    output = tmp_path / "out"
    argv = ["diagnose", "reads", "--model", str(data.model_file), "--json", str(data.json_path)]
    argv += ["--images", str(data.image_dir), "--output-dir", str(output), "--workers", "0"]
    argv += ["--max-images", "1", "--device", "cpu"]
    with caplog.at_level(logging.WARNING):
        assert _run(argv) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    (output / "feature_reads.json").write_text("an earlier diagnosis")
    with caplog.at_level(logging.WARNING):
        assert _run(argv) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [f"--output-dir {output} holds feature_reads.json: this run replaces them"]
    assert json.loads((output / "feature_reads.json").read_text())["num_images"] == 1


def test_diagnose_reads_takes_unlabelled_images(data: DiagnosticsData, tmp_path: Path) -> None:
    """The reads need no ground truth: a file of production images without annotations."""
    coco = json.loads(data.json_path.read_text())
    unlabelled = tmp_path / "unlabelled.json"
    unlabelled.write_text(json.dumps({**coco, "annotations": []}))
    output = tmp_path / "out"
    argv = ["diagnose", "reads", "--model", str(data.model_file), "--json", str(unlabelled)]
    argv += ["--images", str(data.image_dir), "--output-dir", str(output), "--workers", "0"]
    assert _run([*argv, "--max-images", "2", "--device", "cpu"]) == 0
    assert json.loads((output / "feature_reads.json").read_text())["num_images"] == 2
    # The diagnoses that score against the ground truth still refuse it.
    stages = ["diagnose", "stages", *argv[2:], "--latency-images", "0"]
    with pytest.raises(DatasetError, match="no usable box"):
        _run(stages)


def test_diagnose_report_refuses_to_write_among_the_images(
    data: DiagnosticsData, tmp_path: Path
) -> None:
    """Images named like the report's drawings (``samples/1.png``) are not replaced, as
    ``eval --report-dir`` refuses the same folder."""
    images = tmp_path / "data"
    (images / "samples").mkdir(parents=True)
    drawing = images / "samples" / "1.png"
    drawing.write_bytes((data.image_dir / "000.png").read_bytes())
    coco = json.loads(data.json_path.read_text())
    coco["images"] = [{**coco["images"][0], "file_name": "samples/1.png"}]
    coco["annotations"] = [
        a for a in coco["annotations"] if a["image_id"] == coco["images"][0]["id"]
    ]
    subset = tmp_path / "one.json"
    subset.write_text(json.dumps(coco))
    before = drawing.read_bytes()
    argv = ["diagnose", "report", "--model", str(data.model_file), "--json", str(subset)]
    argv += ["--images", str(images), "--output-dir", str(images), "--workers", "0"]
    # The message names the flag the user gave (--output-dir, not eval's --report-dir).
    with pytest.raises(ValueError, match=r"--output-dir .* would write among the images of"):
        _run([*argv, "--device", "cpu"])
    assert drawing.read_bytes() == before
    assert sorted(p.name for p in images.iterdir()) == ["samples"]


@pytest.mark.parametrize(
    ("kind", "name"), [("stages", "stages.png"), ("reads", "feature_reads.json")]
)
def test_diagnose_refuses_to_replace_an_input_file(
    data: DiagnosticsData, tmp_path: Path, kind: str, name: str
) -> None:
    """A file of the image folder (or the JSON) that a diagnosis would write over fails the
    command before the model runs."""
    images = tmp_path / "images"
    images.mkdir()
    for image in data.image_dir.iterdir():
        (images / image.name).write_bytes(image.read_bytes())
    (images / name).write_text("the user's")
    argv = ["diagnose", kind, "--model", str(data.model_file), "--json", str(data.json_path)]
    argv += ["--images", str(images), "--output-dir", str(images), "--workers", "0"]
    with pytest.raises(ValueError, match=f"{name} would replace a file in the --images folder"):
        _run([*argv, "--device", "cpu"])
    assert (images / name).read_text() == "the user's"


def test_visualize_names_a_bad_image_argument_before_the_model_loads(
    data: DiagnosticsData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("sparsercnn.diagnostics.stage_boxes.load_model_file", no_load)
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes((data.image_dir / "000.png").read_bytes()[:200])
    output = tmp_path / "figure.png"
    for image, error, message in (
        (tmp_path / "nope.png", FileNotFoundError, r"^IMAGE \S*nope\.png was not found: check the"),
        (tmp_path, IsADirectoryError, r"^IMAGE \S* is a folder; give one image"),
        (notes, ValueError, r"^IMAGE \S*notes\.png: cannot read image .*: not an image, or a"),
        (truncated, ValueError, r"^IMAGE \S*cut\.png: .*truncated.*; give a readable image file$"),
    ):
        argv = ["visualize", "--model", str(data.model_file), str(image), "--output", str(output)]
        with pytest.raises(error, match=message):
            _run([*argv, "--device", "cpu"])
    assert not output.exists()


def test_visualize_warns_before_replacing_a_file(
    data: DiagnosticsData, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    output = tmp_path / "figure.png"
    output.write_bytes(b"an earlier figure")
    argv = ["visualize", "--model", str(data.model_file), str(data.image_dir / "000.png")]
    with caplog.at_level(logging.WARNING):
        assert _run([*argv, "--output", str(output), "--device", "cpu"]) == 0
    assert f"--output {output} exists: it will be replaced" in caplog.text
    assert output.read_bytes() != b"an earlier figure"


def test_diagnose_report_with_a_file_named_samples_fails_before_the_model_runs(
    data: DiagnosticsData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "out"
    output.mkdir()
    (output / "samples").write_text("the user's")

    def no_evaluation(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model ran")

    monkeypatch.setattr("sparsercnn.engine.model_evaluation.evaluate_model_file", no_evaluation)
    with pytest.raises(NotADirectoryError, match=r"samples into .*samples, which is a file"):
        _run(["diagnose", "report", *_dataset_args(data, output)])
    assert (output / "samples").read_text() == "the user's"


def test_diagnose_report_refuses_a_user_s_file_named_as_a_sample_before_the_model_runs(
    data: DiagnosticsData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "out"
    (output / "samples").mkdir(parents=True)
    (output / "samples" / "7.png").write_text("the user's")
    (output / "samples" / "007.png").write_text("not a sample's name")

    def no_evaluation(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model ran")

    monkeypatch.setattr("sparsercnn.engine.model_evaluation.evaluate_model_file", no_evaluation)
    with pytest.raises(ValueError, match=r"^--output-dir \S*out: \S*samples/7\.png is no drawing"):
        _run(["diagnose", "report", *_dataset_args(data, output)])
    assert (output / "samples" / "7.png").read_text() == "the user's"
