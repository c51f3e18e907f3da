"""int8 export: the quantized graph, its metadata, OnnxPredictor on it, the CLI's checks, and
``eval --onnx`` against ``eval --model``.

The session's tiny model (``session_model_file``) is exported once per module through the CLI
with ``--int8``, calibrated on the synthetic images; its fp32 export is the session's
``onnx_export``, and the synthetic data set has the model's categories.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sparsercnn.cli.main import main
from sparsercnn.engine.inference import EXPORTED_GRAPH
from sparsercnn.engine.model_evaluation import evaluate_model_file, evaluate_onnx_file
from sparsercnn.export import OnnxCheckError, OnnxPredictor, quantization
from sparsercnn.export.quantization import (
    QuantizationReport,
    calibration_images,
    compare_predictions,
    export_int8_onnx,
    quantization_record,
    quantize_onnx,
)
from sparsercnn.prediction import Prediction
from tests import synthetic_coco
from tests.export.failed_check import FAILED_PARITY
from tests.synthetic_coco import SyntheticCoco

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")
pytest.importorskip("onnxscript")


# The categories of ``session_model_file`` (gapped ids, as in COCO), so that eval can run it.
CATEGORIES = [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> SyntheticCoco:
    """Eight 96x128 images with a red (id 3) and a green (id 7) box each."""
    root = tmp_path_factory.mktemp("coco")
    return synthetic_coco.write_coco(root, num_images=8, categories=CATEGORIES)


@pytest.fixture(scope="module")
def model_file(session_model_file: Path) -> Path:
    """The session's tiny model file, the model of ``fp32_path``; read it, never change it."""
    return session_model_file


@pytest.fixture(scope="module")
def fp32_path(model_file_onnx: Path) -> Path:
    """The session's fp32 export of ``model_file``; read it, never change it."""
    return model_file_onnx


@pytest.fixture(scope="module")
def int8_export(
    model_file: Path, dataset: SyntheticCoco, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """``sparsercnn export --int8`` on the tiny model: the file and what the command printed."""
    output = tmp_path_factory.mktemp("int8") / "tiny_int8.onnx"
    argv = ["export", "--model", str(model_file), "--output", str(output), "--int8"]
    argv += ["--calibration", str(dataset.image_dir), "--calibration-images", "5"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(argv) == 0
    return output, printed.getvalue()


@pytest.mark.slow
def test_int8_file_has_int8_convolutions_and_fp32_head(int8_export: tuple[Path, str]) -> None:
    model = onnx.load(str(int8_export[0]))
    producers = {out: node for node in model.graph.node for out in node.output}
    initializers = {init.name: init for init in model.graph.initializer}
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    assert convs
    for conv in convs:
        data, weight = (producers.get(name) for name in conv.input[:2])
        assert data is not None and data.op_type == "DequantizeLinear"
        assert weight is not None and weight.op_type == "DequantizeLinear"
        stored = initializers[weight.input[0]]
        assert stored.data_type == onnx.TensorProto.INT8
        assert len(onnx.numpy_helper.to_array(initializers[weight.input[1]])) > 1  # per channel
    # The head's matrix products stay fp32: no DequantizeLinear feeds them.
    matmuls = [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm")]
    assert matmuls
    for node in matmuls:
        assert all(
            producers[name].op_type != "DequantizeLinear"
            for name in node.input
            if name in producers
        )


@pytest.mark.slow
def test_int8_metadata_keeps_the_export_and_records_the_quantization(
    int8_export: tuple[Path, str], fp32_path: Path
) -> None:
    path, printed = int8_export

    def props(p: Path) -> dict[str, str]:
        return {prop.key: prop.value for prop in onnx.load(str(p)).metadata_props}

    int8_props, fp32_props = props(path), props(fp32_path)
    record = json.loads(int8_props.pop("quantization"))
    assert int8_props == fp32_props
    assert record["num_calibration_images"] == 5
    assert record["op_types"] == ["Conv"]
    assert "QDQ" in record["method"] and record["calibration"] == "MinMax"
    assert quantization_record(path) == record and quantization_record(fp32_path) is None
    assert "int8 Conv, calibrated on 5 images" in printed
    assert "int8 vs fp32 on 4 calibration images" in printed
    assert not list(path.parent.glob(".*.tmp"))


@pytest.mark.slow
def test_onnx_predictor_runs_int8_close_to_fp32(
    int8_export: tuple[Path, str], fp32_path: Path, dataset: SyntheticCoco
) -> None:
    int8 = OnnxPredictor(int8_export[0], batch_size=2)
    fp32 = OnnxPredictor(fp32_path, batch_size=2)
    assert int8.categories.category_ids == fp32.categories.category_ids == [3, 7]
    assert (int8.precision, fp32.precision) == ("int8", "fp32")  # what eval's metrics record
    actual, expected = int8(dataset.image_dir), fp32(dataset.image_dir)
    assert [p.source for p in actual] == [p.source for p in expected]
    num_proposals = int8.config.model.num_proposals
    for a, e in zip(actual, expected, strict=True):
        assert a.image_size == e.image_size and 0 < len(a.boxes) <= num_proposals
        assert a.boxes.shape == (len(a.scores), 4) and a.labels.shape == a.scores.shape
        assert torch.isfinite(a.boxes).all() and ((a.scores > 0) & (a.scores <= 1)).all()
        assert (a.scores[:-1] >= a.scores[1:]).all()
        # Clipping may empty a different few boxes; the sorted scores stay close.
        k = min(len(a.scores), len(e.scores))
        torch.testing.assert_close(a.scores[:k], e.scores[:k], rtol=0, atol=0.05)
    comparison = quantization.compare_predictions(fp32, int8, dataset.image_paths)
    assert comparison.num_images == len(dataset.image_paths)
    assert comparison.num_compared >= len(dataset.image_paths)
    assert 0.0 < comparison.mean_iou <= 1.0 and 0.0 < comparison.max_score_diff < 0.05


def test_calibration_images_are_spread_over_the_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for i in range(10):
        image = np.full((4, 4, 3), i, dtype=np.uint8)
        folder = tmp_path / "sub" if i % 2 else tmp_path
        np.save(folder / f"skip{i}.npy", image)  # not an image: ignored
        from PIL import Image

        Image.fromarray(image).save(folder / f"{i:02d}.png")
    chosen = calibration_images(tmp_path, 3)
    assert len(chosen) == 3 and all(p.suffix == ".png" for p in chosen)
    assert chosen[0] != chosen[1] != chosen[2]
    assert len(calibration_images(tmp_path, 100)) == 10
    with pytest.raises(ValueError, match="at least 1"):
        calibration_images(tmp_path, 0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--int8"], "--int8 needs --calibration DIR"),
        (["--calibration", "{images}"], "apply to int8 export only; add --int8"),
        (["--calibration-images", "3"], "apply to int8 export only; add --int8"),
        (["--int8", "--calibration", "{missing}"], "--calibration: calibration folder"),
        (["--int8", "--calibration", "{empty}"], "contains no image files"),
        (["--int8", "--calibration", "{file}"], "is a file; calibration needs a folder"),
        # Found before the minute-long fp32 export, not after it.
        (["--int8", "--calibration", "{bad}"], "--calibration: cannot read image"),
        (["--int8", "--calibration", "{truncated}"], "--calibration: cannot read image"),
    ],
)
def test_bad_int8_flags_fail_before_any_work(
    extra: list[str],
    message: str,
    model_file: Path,
    dataset: SyntheticCoco,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.png").write_bytes(b"")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "notes.png").write_text("not an image")
    (tmp_path / "truncated").mkdir()
    shutil.copy(dataset.image_dir / dataset.file_names[0], tmp_path / "truncated")
    synthetic_coco.truncate(tmp_path / "truncated" / dataset.file_names[0])  # header intact
    names = {
        "images": dataset.image_dir,
        "missing": tmp_path / "missing",
        "empty": tmp_path / "empty",
        "file": tmp_path / "file.png",
        "bad": tmp_path / "bad",
        "truncated": tmp_path / "truncated",
    }
    output = tmp_path / "out" / "model.onnx"
    argv = ["export", "--model", str(model_file), "--output", str(output)]
    assert main(argv + [arg.format(**names) for arg in extra]) == 2
    error = capsys.readouterr().err
    assert message in error and "sparsercnn export: error:" in error
    assert len(error.strip().splitlines()) <= 2
    assert not output.parent.exists()


def test_comparison_says_when_it_compared_an_images_best_detection() -> None:
    """An image without a detection at COMPARISON_SCORE is compared by its best one, and the
    summary says so instead of calling it a detection at that score."""

    def prediction(scores: list[float]) -> Prediction:
        return Prediction(
            boxes=torch.tensor([[0.0, 0.0, 10.0, 10.0]] * len(scores)).reshape(-1, 4),
            scores=torch.tensor(scores),
            labels=torch.zeros(len(scores), dtype=torch.int64),
            class_names=["cat"] * len(scores),
            category_ids=[3] * len(scores),
            image_size=(20, 20),
            source="x",
        )

    def predictor(predictions: list[Prediction]) -> Any:
        return lambda images: predictions

    # Two confident detections, an image whose best scores 0.1, and one without detections.
    predictions = [prediction([0.9, 0.5]), prediction([0.1, 0.05]), prediction([])]
    same = predictor(predictions)
    comparison = compare_predictions(same, same, ["a", "b", "c"])
    assert (comparison.num_compared, comparison.num_best_only, comparison.num_lost) == (3, 1, 0)
    summary = comparison.summary()
    assert "int8 vs fp32 on 3 calibration images" in summary
    assert "3 fp32 detections (score >= 0.3, or the best of the 1 image without one)" in summary
    confident = predictor(predictions[:1])
    alone = compare_predictions(confident, confident, ["a"]).summary()
    assert "int8 vs fp32 on 1 calibration image (" in alone
    assert "2 fp32 detections (score >= 0.3)," in alone
    unsure = predictor([predictions[1], predictions[1]])
    two_without = compare_predictions(unsure, unsure, ["b", "b"]).summary()
    assert "or the best of each of the 2 images without one" in two_without


def test_the_summary_counts_in_the_singular_for_one_image(tmp_path: Path) -> None:
    record: dict[str, object] = {"op_types": ["Conv"], "num_calibration_images": 1}
    report = QuantizationReport(
        path=tmp_path / "int8.onnx", num_bytes=2**20, seconds=1.0, record=record, comparison=None
    )
    assert "int8 Conv, calibrated on 1 image)" in report.summary()
    record["num_calibration_images"] = 2
    assert "calibrated on 2 images)" in report.summary()
    # The time is the writing's, not a property of the file among its size and format.
    assert report.summary().startswith(f"wrote {tmp_path / 'int8.onnx'} in 1.0 s (1.0 MiB, ")


def test_calibration_images_flag_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["export", "--model", "m", "--output", "o.onnx", "--calibration-images", "0"])
    assert "--calibration-images" in capsys.readouterr().err


def test_int8_without_onnxruntime_fails_before_the_export(
    model_file: Path,
    dataset: SyntheticCoco,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--int8 --no-check`` needs onnxruntime for the quantizer: the install hint comes at
    once, not a bare import error after the fp32 export."""

    def export(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported before finding onnxruntime missing")

    monkeypatch.setattr(quantization, "export_onnx", export)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # find_spec: not installed
    output = tmp_path / "int8.onnx"
    argv = ["export", "--model", str(model_file), "--output", str(output), "--int8"]
    argv += ["--calibration", str(dataset.image_dir), "--no-check"]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        "sparsercnn export: error: ONNX export needs onnxruntime: pip install "
        "'sparsercnn[export]' (onnx, onnxscript, onnxruntime)"
    )
    with pytest.raises(ImportError, match="needs onnxruntime"):
        quantize_onnx(tmp_path / "fp32.onnx", output, dataset.image_paths[:1])
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_calibration_image_is_a_bad_input(fp32_path: Path, tmp_path: Path) -> None:
    """Named as the image it is, not as a failure to write the int8 file (exit 2, not 1)."""
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(ValueError, match=r"calibration cannot read image .*broken\.jpg"):
        quantization.calibration_feed(OnnxPredictor(fp32_path, batch_size=1), broken)


def test_a_failed_fp32_check_names_the_int8_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fp32 graph is checked in a temporary folder, whose path the error named: the user
    was told that a file they never asked for was not written."""
    parity = FAILED_PARITY

    def export(model: object, output: Path, **options: object) -> None:
        raise OnnxCheckError(output, parity)

    monkeypatch.setattr(quantization, "export_onnx", export)
    output = tmp_path / "int8.onnx"
    with pytest.raises(OnnxCheckError) as failed:
        export_int8_onnx(tmp_path / "model.safetensors", output, [tmp_path / "image.jpg"])
    assert failed.value.path == output and failed.value.parity is parity
    assert str(failed.value).startswith(f"{output}: onnxruntime disagrees with PyTorch on its fp32")
    assert "check=False" in str(failed.value) and not output.exists()


@pytest.mark.slow
def test_failed_quantization_writes_nothing(
    fp32_path: Path, dataset: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("calibration failed")

    monkeypatch.setattr(quantization, "quantize_graph", fail)
    output = tmp_path / "int8.onnx"
    with pytest.raises(RuntimeError, match="calibration failed"):
        quantize_onnx(fp32_path, output, dataset.image_paths[:2])
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="at least one image"):
        quantize_onnx(fp32_path, output, [])


@pytest.mark.slow
def test_eval_onnx_gives_the_metrics_of_eval_model(
    model_file: Path, fp32_path: Path, dataset: SyntheticCoco
) -> None:
    expected = evaluate_model_file(model_file, dataset.json_path, dataset.image_dir, num_workers=0)
    actual = evaluate_onnx_file(fp32_path, dataset.json_path, dataset.image_dir, num_workers=0)
    assert actual.evaluation.image_ids == expected.evaluation.image_ids
    for a, e in zip(actual.evaluation.detections, expected.evaluation.detections, strict=True):
        assert a["labels"].tolist() == e["labels"].tolist()
        torch.testing.assert_close(a["boxes"], e["boxes"], rtol=1e-3, atol=1e-2)
        torch.testing.assert_close(a["scores"], e["scores"], rtol=0, atol=1e-5)
    a_metrics, e_metrics = actual.result.to_dict(), expected.result.to_dict()
    for key in ("AP", "AP50", "AP75"):
        assert a_metrics[key] == pytest.approx(e_metrics[key], abs=1e-4)
    assert actual.to_dict()["device"] == "cpu (onnxruntime CPUExecutionProvider)"
    # The exported graph post-processes: its time says so, where the model's does not.
    assert actual.to_dict()["model_time_covers"] == EXPORTED_GRAPH
    assert f"images/s model only ({EXPORTED_GRAPH})," in actual.format()
    assert "model only (forward pass)," in expected.format()


@pytest.mark.slow
def test_eval_cli_with_onnx(
    fp32_path: Path, dataset: SyntheticCoco, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = tmp_path / "metrics.json"
    base = ["eval", "--json", str(dataset.json_path), "--images", str(dataset.image_dir)]
    code = main([*base, "--onnx", str(fp32_path), "--workers", "0", "--output", str(metrics)])
    assert code == 0
    assert 0.0 <= json.loads(metrics.read_text())["AP"] <= 1.0
    assert json.loads(metrics.read_text())["precision"] == "fp32"
    assert "cpu (onnxruntime CPUExecutionProvider) (fp32)" in capsys.readouterr().out
    assert main([*base, "--onnx", str(fp32_path), "--stages", "1"]) == 2
    assert "--stages and --cuda-graphs apply to --model" in capsys.readouterr().err
    # The graph computes in the precision it was exported in: another one is refused.
    assert main([*base, "--onnx", str(fp32_path), "--precision", "int8"]) == 2
    assert f"--onnx {fp32_path} computes in fp32" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --model and --onnx are mutually exclusive
        main([*base, "--onnx", str(fp32_path), "--model", "m.safetensors"])
