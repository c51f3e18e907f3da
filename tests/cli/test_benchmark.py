"""``sparsercnn benchmark`` as a command: its output file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparsercnn.cli.main import main


def test_an_existing_output_is_replaced_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As every other command's --output: a file already there is not replaced silently."""
    output = tmp_path / "bench.json"
    output.write_text("{}\n")
    argv = ["benchmark", "--preset", "tiny", "--image-size", "64", "96", "--warmup", "0"]
    assert main([*argv, "--iters", "1", "--output", str(output)]) == 0
    assert f"--output {output} exists: it will be replaced" in caplog.text
    assert json.loads(output.read_text())["settings"]["preset"] == "tiny"


def test_an_output_that_is_not_json_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--output model.safetensors (the model file named by mistake, with --preset) used to be
    replaced by the JSON result, after a warning."""
    output = tmp_path / "model.safetensors"
    output.write_bytes(b"the user's model")
    argv = ["benchmark", "--preset", "tiny", "--iters", "1", "--output", str(output)]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"sparsercnn benchmark: error: --output {output}: the benchmark writes its result as "
        "JSON; give it a name ending in .json (e.g. model.json)"
    )
    assert output.read_bytes() == b"the user's model"


def test_the_device_is_checked_by_what_runs_on_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--backend onnx --device cuda`` was refused by PyTorch's CUDA check while parsing, with
    onnxruntime-gpu there to run it; PyTorch's backends still need PyTorch's CUDA, named as
    --device."""
    import torch

    from sparsercnn import benchmarking

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    asked: list[list[str]] = []

    def stop(settings: list[benchmarking.BenchmarkSettings]) -> None:
        asked.append([f"{s.backend} {s.device}" for s in settings])
        raise ValueError("stop")

    monkeypatch.setattr(benchmarking, "run_benchmarks", stop)
    assert main(["benchmark", "--preset", "tiny", "--backend", "onnx", "--device", "cuda"]) == 2
    assert asked == [["onnx cuda"]]
    capsys.readouterr()
    assert (
        main(["benchmark", "--preset", "tiny", "--backend", "onnx", "eager", "--device", "cuda"])
        == 2
    )
    assert capsys.readouterr().err == (
        "sparsercnn benchmark: error: --device 'cuda': no CUDA device is available here; use "
        "'cpu'\n"
    )
    assert asked == [["onnx cuda"]]
