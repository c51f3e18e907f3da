"""int8 model files: ``sparsercnn export --int8 --output X.safetensors`` (the calibration in the
file's metadata, the same weights), ``--precision int8`` on predict and eval, and the refusals
(an uncalibrated model, a ``.safetensors`` output without ``--int8``, a failed export).

One tiny model (categories of the synthetic data set) is exported once per module, through the
CLI, calibrated on three of the synthetic images. Tests that run the int8 kernel skip where this
CPU or PyTorch build has none; the refusals pretend it has one where they never reach it.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
import torch

from sparsercnn import get_preset
from sparsercnn.cli.main import main
from sparsercnn.export import int8_model_file
from sparsercnn.model import inference
from sparsercnn.model.int8_features import Int8Features, int8_available
from sparsercnn.model_file import load_model_file
from sparsercnn.predictor import Predictor
from tests.synthetic_coco import SyntheticCoco

needs_int8 = pytest.mark.skipif(
    not int8_available(), reason="this CPU or PyTorch build has no oneDNN int8 convolution"
)
NEEDS_CALIBRATION = "precision int8 needs a calibrated model file"


@pytest.fixture(scope="module")
def int8_export(
    model_file: Path, tiny_coco: SyntheticCoco, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """``sparsercnn export --int8`` to a model file: the file and what the command printed."""
    output = tmp_path_factory.mktemp("int8") / "tiny_int8.safetensors"
    argv = ["export", "--model", str(model_file), "--output", str(output), "--int8"]
    argv += ["--calibration", str(tiny_coco.image_dir), "--calibration-images", "3"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(argv) == 0
    return output, printed.getvalue()


@pytest.fixture
def kernel_present(monkeypatch: pytest.MonkeyPatch) -> None:
    """``check_precision`` accepts int8 as where the kernel exists (for refusals that come
    before any int8 convolution runs, and so hold on every CPU)."""
    monkeypatch.setattr(inference, "int8_available", lambda: True)


@pytest.fixture
def int8_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The batch size of every run of the int8 backbone and FPN, in order."""
    calls: list[int] = []
    call = Int8Features.__call__

    def counted(self: Int8Features, x: torch.Tensor) -> list[torch.Tensor]:
        calls.append(x.shape[0])
        return call(self, x)

    monkeypatch.setattr(Int8Features, "__call__", counted)
    return calls


def error_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def export_argv(model_file: Path, output: Path, calibration: Path) -> list[str]:
    return [
        "export",
        "--model",
        str(model_file),
        "--output",
        str(output),
        "--int8",
        "--calibration",
        str(calibration),
    ]


@needs_int8
def test_export_writes_the_same_model_with_its_calibration(
    int8_export: tuple[Path, str], model_file: Path
) -> None:
    path, printed = int8_export
    loaded, expected = load_model_file(path), load_model_file(model_file)
    calibration = loaded.model.int8_calibration
    assert calibration is not None and calibration.num_images == 3
    names = {"stem", "layer1.0", "layer1.0.conv1", "layer2.0.downsample", "fpn.merged2"}
    assert names <= set(calibration.ranges) and "fpn.merged5" in calibration.ranges
    assert all(r.low <= 0.0 <= r.high for r in calibration.ranges.values())
    assert calibration.ranges["stem"].high > 0  # a ReLU output that saw the images
    assert expected.model.int8_calibration is None
    assert loaded.config == expected.config
    assert loaded.categories.to_dict() == expected.categories.to_dict()
    tensors, expected_tensors = loaded.model.state_dict(), expected.model.state_dict()
    assert all(torch.equal(tensors[key], expected_tensors[key]) for key in expected_tensors)
    assert "calibrated on 3 images" in printed and "run it with --precision int8" in printed
    assert "int8 vs fp32 on 3 calibration images" in printed
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


@needs_int8
def test_int8_predictions_are_close_to_fp32(
    int8_export: tuple[Path, str],
    model_file: Path,
    tiny_coco: SyntheticCoco,
    int8_calls: list[int],
) -> None:
    path = int8_export[0]
    images = tiny_coco.image_paths[:3]
    calls = int8_calls
    fp32 = Predictor.from_file(path, batch_size=3)(images)
    assert calls == []
    int8 = Predictor.from_file(path, precision="int8", batch_size=3)(images)
    assert sum(calls) == len(images)  # the features of every image came from the int8 graph
    # Without --precision int8 the calibrated file computes in fp32, as the original does.
    original = Predictor.from_file(model_file, batch_size=3)(images)
    for a, e in zip(fp32, original, strict=True):
        assert torch.equal(a.scores, e.scores) and torch.equal(a.boxes, e.boxes)
    num_proposals = get_preset("tiny").model.num_proposals
    for a, e in zip(int8, fp32, strict=True):
        assert a.source == e.source and a.image_size == e.image_size
        assert 0 < len(a.scores) <= num_proposals and a.boxes.shape == (len(a.scores), 4)
        assert torch.isfinite(a.boxes).all() and ((a.scores > 0) & (a.scores <= 1)).all()
        k = min(len(a.scores), len(e.scores), 10)
        torch.testing.assert_close(a.scores[:k], e.scores[:k], rtol=0, atol=0.05)


@needs_int8
def test_eval_with_precision_int8(
    int8_export: tuple[Path, str],
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    int8_calls: list[int],
) -> None:
    path = int8_export[0]
    base = ["eval", "--model", str(path), "--json", str(tiny_coco.json_path)]
    base += ["--images", str(tiny_coco.image_dir), "--workers", "0"]
    metrics = {}
    for precision in ("fp32", "int8"):
        output = tmp_path / f"{precision}.json"
        assert main([*base, "--precision", precision, "--output", str(output)]) == 0
        assert f"speed on cpu ({precision}): " in capsys.readouterr().out
        metrics[precision] = json.loads(output.read_text())
        assert sum(int8_calls) == (tiny_coco.num_images if precision == "int8" else 0)
    assert metrics["int8"]["precision"] == "int8" and metrics["int8"]["num_detections"] > 0
    for key in ("AP", "AP50"):
        assert metrics["int8"][key] == pytest.approx(metrics["fp32"][key], abs=0.03)


@pytest.mark.usefixtures("kernel_present")
def test_predict_int8_without_calibration_is_refused(
    model_file: Path, tiny_coco: SyntheticCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "predictions.json"
    argv = ["predict", "--model", str(model_file), str(tiny_coco.image_paths[0])]
    assert main([*argv, "--precision", "int8", "--output", str(output)]) == 2
    (line,) = error_lines(capsys)
    assert line.startswith("sparsercnn predict: error: ") and NEEDS_CALIBRATION in line
    assert "sparsercnn export --int8 --calibration DIR --output" in line
    assert not output.exists()


@pytest.mark.usefixtures("kernel_present")
def test_eval_int8_without_calibration_is_refused(
    model_file: Path, tiny_coco: SyntheticCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "metrics.json"
    argv = ["eval", "--model", str(model_file), "--json", str(tiny_coco.json_path)]
    argv += ["--images", str(tiny_coco.image_dir), "--workers", "0", "--output", str(output)]
    assert main([*argv, "--precision", "int8"]) == 2
    (line,) = error_lines(capsys)
    assert line.startswith("sparsercnn eval: error: ") and NEEDS_CALIBRATION in line
    assert "sparsercnn export --int8 --calibration DIR --output" in line
    assert not output.exists()


def test_precision_int8_without_the_kernel_is_refused(
    model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inference, "int8_available", lambda: False)
    with pytest.raises(ValueError, match="no oneDNN int8 convolution; use fp32"):
        Predictor.from_file(model_file, precision="int8")


def test_a_safetensors_output_needs_int8(
    model_file: Path, tiny_coco: SyntheticCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out" / "model.safetensors"
    assert main(["export", "--model", str(model_file), "--output", str(output)]) == 2
    (line,) = error_lines(capsys)
    assert line.startswith("sparsercnn export: error: ") and str(output) in line
    assert "export writes ONNX files (.onnx)" in line and "--int8 --calibration DIR" in line
    assert not output.parent.exists()


def test_an_output_of_another_suffix_is_refused(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An ONNX graph written as ``model.pt`` would be taken for a PyTorch checkpoint."""
    output = tmp_path / "model.pt"
    assert main(["export", "--model", str(model_file), "--output", str(output)]) == 2
    (line,) = error_lines(capsys)
    assert f"--output {output}: export writes an ONNX file (.onnx)" in line
    assert not output.exists()


def test_an_unreadable_calibration_image_writes_nothing(
    model_file: Path, tiny_coco: SyntheticCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "calibration"
    images.mkdir()
    shutil.copy(tiny_coco.image_paths[0], images / "a.png")
    (images / "bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    output = tmp_path / "out" / "int8.safetensors"
    output.parent.mkdir()
    assert main(export_argv(model_file, output, images)) == 2
    (line,) = error_lines(capsys)
    # Found before the model is loaded, naming the flag.
    assert line.startswith("sparsercnn export: error: --calibration: cannot read image ")
    assert "bad.jpg" in line
    assert list(output.parent.iterdir()) == []


@pytest.mark.usefixtures("kernel_present")
def test_a_failed_comparison_writes_nothing(
    model_file: Path,
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The int8-vs-fp32 comparison is part of the export (as for ONNX files): when it fails,
    the command fails and leaves no model file that looks exported."""

    def fail(*args: object) -> None:
        raise RuntimeError("comparison failed")

    monkeypatch.setattr(int8_model_file, "compare_predictions", fail)
    output = tmp_path / "out" / "int8.safetensors"
    output.parent.mkdir()
    argv = export_argv(model_file, output, tiny_coco.image_dir)
    assert main([*argv, "--calibration-images", "1"]) == 1
    assert "comparison failed" in capsys.readouterr().err
    assert list(output.parent.iterdir()) == []


def test_export_without_the_kernel_writes_nothing(
    model_file: Path,
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On a CPU without oneDNN int8 the export cannot compare int8 with fp32: it says so
    (exit 2) and writes no file (``--no-check`` is the way to calibrate there)."""
    monkeypatch.setattr(inference, "int8_available", lambda: False)
    output = tmp_path / "out" / "int8.safetensors"
    output.parent.mkdir()
    argv = export_argv(model_file, output, tiny_coco.image_dir)
    assert main([*argv, "--calibration-images", "1"]) == 2
    (line,) = error_lines(capsys)
    assert line.startswith("sparsercnn export: error: ") and "no oneDNN int8" in line
    assert str(output) in line and "export with --no-check" in line  # not "use fp32"
    assert list(output.parent.iterdir()) == []
