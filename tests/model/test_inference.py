"""When a model's unused int8 calibration is worth a note (:func:`unused_int8_calibration`)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsercnn.model import inference
from sparsercnn.model.int8_features import Int8Calibration

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_the_int8_note_is_given_only_where_the_calibration_could_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inference, "int8_available", lambda: True)
    model = nn.Module()
    model.int8_calibration = Int8Calibration()
    note = inference.unused_int8_calibration(model, "bf16", CPU)
    assert note is not None and note.startswith(
        "carries an int8 calibration, unused at precision bf16: --precision int8 runs"
    )
    assert inference.unused_int8_calibration(model, "int8", CPU) is None
    assert inference.unused_int8_calibration(model, "fp32", CUDA) is None
    monkeypatch.setattr(inference, "int8_available", lambda: False)
    assert inference.unused_int8_calibration(model, "fp32", CPU) is None
    monkeypatch.setattr(inference, "int8_available", lambda: True)
    model.int8_calibration = None
    assert inference.unused_int8_calibration(model, "fp32", CPU) is None
