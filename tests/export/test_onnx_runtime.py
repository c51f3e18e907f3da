"""The precision rule of an ONNX file: the graph's, and a ``--precision`` that contradicts it is
refused (``predict``, ``eval`` and ``serve`` apply :func:`check_graph_precision`); and the
execution provider that follows the device asked for, never falling back to the CPU."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import torch

from sparsercnn.export.onnx_runtime import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    OnnxPredictor,
    check_graph_precision,
    installed_onnxruntime,
    onnx_device,
    session_providers,
)

CPU_ONLY = ["AzureExecutionProvider", CPU_PROVIDER]
WITH_CUDA = [CUDA_PROVIDER, CPU_PROVIDER]


def graph(precision: str) -> OnnxPredictor:
    """A stand-in with the two attributes the rule reads."""
    return SimpleNamespace(path=Path("m.onnx"), precision=precision)  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("graph_precision", "asked"),
    [("fp32", None), ("int8", None), ("fp32", "fp32"), ("int8", "int8")],
)
def test_a_precision_the_graph_computes_in_or_none_is_accepted(
    graph_precision: str, asked: str | None
) -> None:
    check_graph_precision(graph(graph_precision), asked)


@pytest.mark.parametrize(
    ("graph_precision", "asked", "advice"),
    [
        ("fp32", "int8", "or export an int8 graph (`sparsercnn export --int8"),
        ("fp32", "bf16", "without --onnx (--model FILE --precision bf16)"),
        ("fp32", "winograd", "without --onnx (--model FILE --precision winograd)"),
        ("int8", "fp32", "leave out --precision"),
    ],
)
def test_another_precision_is_refused_naming_both_flags(
    graph_precision: str, asked: str, advice: str
) -> None:
    with pytest.raises(ValueError) as error:
        check_graph_precision(graph(graph_precision), asked)
    message = str(error.value)
    assert message.startswith(
        f"--precision {asked}: --onnx m.onnx computes in {graph_precision}, the precision it "
        "was exported in; leave out --precision"
    )
    assert advice in message


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyTorch sees two GPUs (none is used: only the device checks ask)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.mark.usefixtures("two_gpus")
@pytest.mark.parametrize(
    ("device", "available", "expected"),
    [
        (None, WITH_CUDA, "cuda:0"),
        (None, CPU_ONLY, "cpu"),  # the default needs onnxruntime's CUDA provider, too
        ("cpu", WITH_CUDA, "cpu"),
        ("cuda", WITH_CUDA, "cuda:0"),
        ("cuda:1", CPU_ONLY, "cuda:1"),  # asked for: refused by session_providers, not moved
    ],
)
def test_the_session_device_is_the_one_asked_or_the_default(
    device: str | None, available: list[str], expected: str
) -> None:
    assert str(onnx_device(device, available)) == expected


def test_without_a_gpu_the_default_is_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert onnx_device(None, WITH_CUDA) == torch.device("cpu")


def test_a_gpu_asked_of_onnxruntime_is_not_checked_against_pytorch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A CPU-only PyTorch beside onnxruntime-gpu: ``--onnx X --device cuda`` was refused as "no
    CUDA device is available here" (PyTorch's check); the CUDA provider decides instead."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert onnx_device("cuda", WITH_CUDA) == torch.device("cuda", 0)
    assert onnx_device("cuda:1", WITH_CUDA) == torch.device("cuda", 1)
    assert session_providers(onnx_device("cuda:1", WITH_CUDA), WITH_CUDA)[0] == (
        CUDA_PROVIDER,
        {"device_id": 1},
    )
    with pytest.raises(ValueError, match=r"^device 'gpu' is not a device; use 'cpu'"):
        onnx_device("gpu", WITH_CUDA)


def test_the_provider_follows_the_device() -> None:
    assert session_providers(torch.device("cpu"), WITH_CUDA) == [CPU_PROVIDER]
    assert session_providers(torch.device("cuda", 1), WITH_CUDA) == [
        (CUDA_PROVIDER, {"device_id": 1}),
        CPU_PROVIDER,
    ]


def test_a_gpu_without_the_cuda_provider_is_refused_naming_the_flag_and_package() -> None:
    """``--device cuda`` with ``--onnx`` ran on the CPU provider (eval) or was refused as a
    flag of --model only; with a CPU-only onnxruntime it must say so, not fall back."""
    with pytest.raises(ValueError) as error:
        session_providers(torch.device("cuda", 0), CPU_ONLY)
    message = str(error.value)
    assert message.startswith(
        f"device 'cuda:0' (--device): the installed {installed_onnxruntime()} has no "
        f"{CUDA_PROVIDER} (it offers AzureExecutionProvider, CPUExecutionProvider); "
    )
    assert "pip install onnxruntime-gpu" in message and message.endswith("use --device cpu")
    assert installed_onnxruntime().startswith("onnxruntime")


class FakeSession:
    """An ``onnxruntime.InferenceSession`` stand-in: records its providers and runs on
    ``started`` (onnxruntime's CUDA provider that failed to start leaves the CPU's)."""

    started: ClassVar[list[str]] = []
    asked: ClassVar[list[Any]] = []

    def __init__(self, path: str, **kwargs: Any) -> None:
        FakeSession.asked = kwargs["providers"]

    def get_providers(self) -> list[str]:
        return self.started

    def get_modelmeta(self) -> Any:
        raise RuntimeError("metadata read: the providers were accepted")


@pytest.mark.usefixtures("two_gpus")
@pytest.mark.parametrize(
    ("available", "started", "message"),
    [
        (CPU_ONLY, [CPU_PROVIDER], "the installed onnxruntime"),
        (WITH_CUDA, [CPU_PROVIDER], f"could not start its {CUDA_PROVIDER}"),
        (WITH_CUDA, WITH_CUDA, "metadata read: the providers were accepted"),
    ],
)
def test_the_predictor_runs_on_the_device_asked_or_refuses(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    available: list[str],
    started: list[str],
    message: str,
) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    path = tmp_path / "m.onnx"
    path.write_bytes(b"never parsed")
    FakeSession.asked, FakeSession.started = [], started
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: available)
    monkeypatch.setattr(onnxruntime, "InferenceSession", FakeSession)
    with pytest.raises((ValueError, RuntimeError), match=message):
        OnnxPredictor(path, device="cuda:1")
    if available == WITH_CUDA:
        assert FakeSession.asked == [(CUDA_PROVIDER, {"device_id": 1}), CPU_PROVIDER]
    else:
        assert FakeSession.asked == []  # refused before a session is made


def test_a_session_that_cannot_open_the_gpu_names_the_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnxruntime refusing a GPU it has no such index for (PyTorch, CPU-only, cannot count the
    GPUs) was reported as "not a valid ONNX model"; it names --device and the GPU now."""
    onnxruntime = pytest.importorskip("onnxruntime")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"never parsed")

    def refuse(path: str, **kwargs: Any) -> None:
        raise RuntimeError("CUDA failure 101: invalid device ordinal")

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: WITH_CUDA)
    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)
    with pytest.raises(ValueError) as error:
        OnnxPredictor(path, device="cuda:3")
    assert str(error.value).startswith(
        f"onnxruntime could not load --onnx {path} on device 'cuda:3' (--device: CUDA failure "
        "101: invalid device ordinal); check that GPU 3 is here (nvidia-smi), or try --device cpu"
    )
    with pytest.raises(ValueError, match=r"^--onnx .*m\.onnx is not a valid ONNX model"):
        OnnxPredictor(path, device="cpu")


def test_the_predictor_names_its_device_and_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    path = tmp_path / "m.onnx"
    path.write_bytes(b"never parsed")
    FakeSession.started = [CPU_PROVIDER]
    monkeypatch.setattr(onnxruntime, "InferenceSession", FakeSession)
    predictor = OnnxPredictor.__new__(OnnxPredictor)
    with pytest.raises(RuntimeError, match="metadata read"):  # set before the metadata
        OnnxPredictor.__init__(predictor, path)
    assert FakeSession.asked == [CPU_PROVIDER]
    assert (predictor.device, predictor.provider) == ("cpu", CPU_PROVIDER)
    # In the words eval's report and predict's summary use.
    assert predictor.runs_on == "cpu (onnxruntime CPUExecutionProvider)"
