"""Focal loss and focal matching cost against hand-computed values (spec 7.1, 7.2)."""

import math

import pytest
import torch

from sparsercnn.loss.focal import focal_cost, sigmoid_focal_loss


def test_focal_loss_matches_hand_computed_values() -> None:
    # p = sigmoid(0) = 0.5 and p = sigmoid(log 3) = 0.75.
    logits = torch.tensor([0.0, 0.0, math.log(3.0), math.log(3.0)])
    targets = torch.tensor([1.0, 0.0, 1.0, 0.0])
    expected = torch.tensor(
        [
            0.25 * 0.5**2 * -math.log(0.5),  # positive: alpha (1 - p)^2 (-log p)
            0.75 * 0.5**2 * -math.log(0.5),  # negative: (1 - alpha) p^2 (-log(1 - p))
            0.25 * 0.25**2 * -math.log(0.75),
            0.75 * 0.75**2 * -math.log(0.25),
        ]
    )
    loss = sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0)
    torch.testing.assert_close(loss, expected)


def test_focal_loss_gamma_zero_is_weighted_cross_entropy() -> None:
    logits = torch.tensor([[1.5, -0.3]])
    targets = torch.tensor([[1.0, 0.0]])
    p = torch.sigmoid(logits)
    expected = torch.tensor([[0.4 * -math.log(p[0, 0]), 0.6 * -math.log(1 - p[0, 1])]])
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, alpha=0.4, gamma=0.0), expected)


def test_focal_loss_is_finite_and_near_zero_for_huge_correct_logits() -> None:
    logits = torch.tensor([1e4, -1e4, 80.0, -80.0], requires_grad=True)
    targets = torch.tensor([1.0, 0.0, 1.0, 0.0])
    loss = sigmoid_focal_loss(logits, targets)
    assert torch.isfinite(loss).all()
    assert float(loss.detach().sum()) < 1e-12
    loss.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_focal_cost_matches_hand_computed_values() -> None:
    logits = torch.tensor([[0.0, math.log(3.0), -1.0]])  # one prediction, three classes
    labels = torch.tensor([1, 0, 1])
    cost = focal_cost(logits, labels, alpha=0.25, gamma=2.0, eps=0.0)

    def hand(p: float) -> float:
        return 0.25 * (1 - p) ** 2 * -math.log(p) - 0.75 * p**2 * -math.log(1 - p)

    expected = torch.tensor([[hand(0.75), hand(0.5), hand(0.75)]])
    assert cost.shape == (1, 3)
    torch.testing.assert_close(cost, expected)
    assert hand(0.75) == pytest.approx(0.25 * 0.0625 * 0.2876821 - 0.75 * 0.5625 * 1.3862944)


def test_focal_cost_eps_keeps_saturated_probabilities_finite() -> None:
    logits = torch.tensor([[200.0, -200.0]])
    cost = focal_cost(logits, torch.tensor([0, 1]), eps=1e-8)
    assert torch.isfinite(cost).all()
    # Saturated right class: -(1 - alpha) * (-log eps); saturated wrong class: alpha * (-log eps).
    torch.testing.assert_close(
        cost, torch.tensor([[-0.75 * -math.log(1e-8), 0.25 * -math.log(1e-8)]])
    )


def test_focal_cost_broadcasts_over_batch_dimensions() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 5, generator=generator) * 3
    labels = torch.randint(0, 5, (3, 4), generator=generator)
    batched = focal_cost(logits, labels)
    assert batched.shape == (3, 6, 4)
    for b in range(3):
        # Equal up to the last bit's rounding of vectorised versus scalar log/pow.
        torch.testing.assert_close(batched[b], focal_cost(logits[b], labels[b]), rtol=1e-6, atol=0)
