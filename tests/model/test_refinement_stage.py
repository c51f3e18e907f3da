"""Refinement stage: which attention kernel runs."""

from __future__ import annotations

import torch

from sparsercnn.model.refinement_stage import MATH_ATTENTION_MAX_PROPOSALS, RefinementStage


def _stage() -> RefinementStage:
    torch.manual_seed(0)
    return RefinementStage(
        num_classes=3,
        hidden_dim=32,
        num_heads=4,
        ffn_dim=64,
        dynamic_dim=8,
        pooler_resolution=7,
        dropout=0.0,
        num_cls_layers=1,
        num_reg_layers=1,
        scale_clamp=(-4.0, 4.0),
    )


def _attention_ops(num_proposals: int, *, grad: bool, bf16: bool) -> set[str]:
    """The scaled-dot-product operators one forward pass of a stage dispatches."""
    generator = torch.Generator().manual_seed(1)
    roi = torch.randn(2 * num_proposals, 49, 32, generator=generator)
    features = torch.randn(2, num_proposals, 32, generator=generator)
    boxes = torch.tensor([10.0, 10.0, 50.0, 40.0]).expand(2, num_proposals, 4)
    with (
        torch.profiler.profile() as profile,
        torch.set_grad_enabled(grad),
        torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16),
    ):
        _stage()(roi, features, boxes)
    return {e.name for e in profile.events() if "scaled_dot_product" in e.name}


def test_bf16_training_on_cpus_runs_the_math_attention_kernel_up_to_128_proposals() -> None:
    math_kernel = "aten::_scaled_dot_product_attention_math"
    flash_kernel = "aten::_scaled_dot_product_flash_attention_for_cpu"
    assert math_kernel in _attention_ops(MATH_ATTENTION_MAX_PROPOSALS, grad=True, bf16=True)
    assert flash_kernel not in _attention_ops(MATH_ATTENTION_MAX_PROPOSALS, grad=True, bf16=True)
    # More proposals, fp32, or inference: PyTorch's own choice (flash on CPUs).
    assert flash_kernel in _attention_ops(MATH_ATTENTION_MAX_PROPOSALS + 1, grad=True, bf16=True)
    assert flash_kernel in _attention_ops(MATH_ATTENTION_MAX_PROPOSALS, grad=True, bf16=False)
    assert flash_kernel in _attention_ops(MATH_ATTENTION_MAX_PROPOSALS, grad=False, bf16=True)
