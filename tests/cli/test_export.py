"""``sparsercnn export``'s own checks: what it says and refuses before any export runs (the
exports themselves are tested in tests/export/)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

from sparsercnn.cli.main import main
from sparsercnn.export import OnnxCheckError, onnx_export
from tests.export.failed_check import FAILED_PARITY
from tests.synthetic_coco import SyntheticCoco


class _Report:
    def summary(self) -> str:
        return "exported"


def test_an_existing_output_is_replaced_with_a_warning(
    model_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As predict, eval and visualize do: the run says, before its work, that it replaces the
    user's file (atomically, once it succeeds)."""
    calls: list[dict[str, Any]] = []

    def export(model: Path, output: Path, **options: Any) -> _Report:
        calls.append(options)
        return _Report()

    monkeypatch.setattr(onnx_export, "export_onnx", export)
    output = tmp_path / "model.onnx"
    output.write_bytes(b"an earlier export")
    with caplog.at_level(logging.WARNING):
        assert main(["export", "--model", str(model_file), "--output", str(output)]) == 0
    assert f"--output {output} exists: it will be replaced once this run succeeds" in caplog.text
    assert calls == [{"opset": onnx_export.DEFAULT_OPSET, "dynamic_batch": True, "check": True}]


def test_a_failed_check_says_the_flag_once(
    model_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The library's advice names its parameter (``check=False``); the command line says its
    flag instead, not both."""
    parity = FAILED_PARITY

    def export(model: Path, output: Path, **options: Any) -> _Report:
        raise OnnxCheckError(output, parity)

    monkeypatch.setattr(onnx_export, "export_onnx", export)
    output = tmp_path / "model.onnx"
    assert main(["export", "--model", str(model_file), "--output", str(output)]) == 1
    failed, advice = capsys.readouterr().err.strip().splitlines()
    assert failed.startswith(f"sparsercnn export: check failed: {output}: onnxruntime disagrees")
    assert failed.endswith("; the file was not written") and "check=False" not in failed
    assert advice == "export with --no-check to write the file anyway"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--opset", "20"], "--opset shapes an ONNX graph; .* drop it,"),
        (["--batch", "static"], "--batch shapes an ONNX graph; .* drop it,"),
        (["--batch", "dynamic", "--opset", "18"], "--opset and --batch shape an .* drop them,"),
    ],
)
def test_graph_flags_are_refused_for_an_int8_model_file(
    extra: list[str],
    expected: str,
    model_file: Path,
    tiny_coco: SyntheticCoco,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A .safetensors output has no ONNX graph: an opset or batch axis asked for would be
    silently ignored."""
    output = tmp_path / "out" / "int8.safetensors"
    argv = ["export", "--model", str(model_file), "--output", str(output), "--int8"]
    argv += ["--calibration", str(tiny_coco.image_dir), *extra]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert re.match(f"sparsercnn export: error: {expected} or name a .onnx output$", line)
    assert not output.parent.exists()


@pytest.mark.parametrize(
    ("opset", "reasons"),
    [
        ("16", ["needs opset 17 or newer", "writes opsets 18 to 25"]),
        ("17", ["writes opsets 18 to "]),
    ],
)
def test_an_opset_the_exporter_cannot_write_is_refused_before_the_export(
    opset: str,
    reasons: list[str],
    model_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """torch 2.13's exporter writes opsets 18 to 25 (onnxscript's converter): asked for 17, it
    used to trace for a minute, then refuse the opset-18 graph it wrote."""
    if onnx_export.writable_opsets() != range(18, 26):
        pytest.skip("another exporter version: other writable opsets")

    def export(*_: Any, **__: Any) -> _Report:
        raise AssertionError("exported despite the opset")

    monkeypatch.setattr(onnx_export, "export_onnx", export)
    output = tmp_path / "model.onnx"
    argv = ["export", "--model", str(model_file), "--output", str(output), "--opset", opset]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"sparsercnn export: error: opset (--opset) {opset}: ")
    assert all(reason in line for reason in reasons) and "the default is 18" in line
    assert not output.exists()
