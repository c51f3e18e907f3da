"""Inference helpers: eval mode restored, size groups, and batch-invariant model runs."""

from __future__ import annotations

import pytest
import torch

from sparsercnn.model import build_model, inference
from sparsercnn.model.inference import evaluating, group_by_padded_size, run_model
from sparsercnn.presets import get_preset
from sparsercnn.runtime import fast_bf16_supported
from sparsercnn.structures import padded_size


def test_padded_size_rounds_up() -> None:
    assert padded_size(96, 128, 32) == (96, 128)
    assert padded_size(97, 1, 32) == (128, 32)
    assert padded_size(5, 7, 1) == (5, 7)


def test_groups_keep_first_appearance_order() -> None:
    sizes = [(96, 128), (70, 150), (90, 100), (64, 64), (95, 127)]
    assert group_by_padded_size(sizes, 32) == [[0, 2, 4], [1], [3]]
    assert group_by_padded_size([], 32) == []


def test_evaluating_restores_the_mode_and_disables_autograd() -> None:
    model = torch.nn.Linear(2, 2).train()
    with evaluating(model):
        assert not model.training and not torch.is_grad_enabled()
        assert not model(torch.ones(1, 2)).requires_grad
    assert model.training and torch.is_grad_enabled()
    with pytest.raises(RuntimeError), evaluating(model):
        raise RuntimeError("restored on errors too")
    assert model.training


@pytest.mark.skipif(not fast_bf16_supported(torch.device("cpu")), reason="no native bf16 here")
def test_evaluating_in_bf16_runs_convolutions_in_bf16_and_restores_fp32() -> None:
    conv = torch.nn.Conv2d(3, 4, 3)
    with evaluating(conv, "bf16"):
        assert conv(torch.ones(1, 3, 8, 8)).dtype == torch.bfloat16
    assert conv(torch.ones(1, 3, 8, 8)).dtype == torch.float32


def test_evaluating_refuses_emulated_bf16_and_unknown_precisions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = torch.nn.Linear(2, 2).train()
    monkeypatch.setattr(inference, "fast_bf16_supported", lambda device: False)
    with (
        pytest.raises(ValueError, match=r"cpu has no native bf16.*use fp32"),
        evaluating(model, "bf16"),
    ):
        pass
    with (
        pytest.raises(ValueError, match="precision must be one of fp32, bf16"),
        evaluating(
            model,
            "fp16",  # type: ignore[arg-type]
        ),
    ):
        pass
    assert model.training


def test_run_model_is_batch_invariant_and_keeps_the_order() -> None:
    torch.manual_seed(0)
    model = build_model(get_preset("tiny"))
    images = [torch.randint(0, 256, (3, h, w)).float() for h, w in [(64, 96), (40, 60), (64, 90)]]
    with evaluating(model):
        together = run_model(model, images)
        alone = [run_model(model, [image]) for image in images]
        padded = run_model(model, images, batch_invariant=False)
    for i, single in enumerate(alone):
        assert together.image_sizes[i].tolist() == single.image_sizes[0].tolist()
        for stage, reference in zip(together.stages, single.stages, strict=True):
            # Float noise too, relative to logits of ~5 (1.0e-5 seen on the AVX-512 machine A).
            torch.testing.assert_close(stage.logits[i], reference.logits[0], atol=1e-5, rtol=1e-5)
            # Float noise of batched against single products, relative to boxes of ~300 px (it
            # depends on the thread count: 8e-6 seen under pytest-xdist).
            torch.testing.assert_close(stage.boxes[i], reference.boxes[0], atol=2e-3, rtol=2e-5)
    # Padding image 1 (40x60) to 64x96 changes what its RoIs read.
    assert not torch.allclose(padded.last.logits[1], alone[1].last.logits[0], atol=1e-3)
