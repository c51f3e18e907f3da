"""The precision rule of an ONNX file: the graph's, and a ``--precision`` that contradicts it is
refused (``predict``, ``eval`` and ``serve`` apply :func:`check_graph_precision`)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from sparsercnn.export.onnx_runtime import OnnxPredictor, check_graph_precision


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
