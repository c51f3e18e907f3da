"""Sigmoid focal loss and the focal matching cost, as pure functions of logits.

Both follow Lin et al., "Focal Loss for Dense Object Detection" (2017), with the sigmoid
(no background class) formulation of spec 7: the cost ranks predictions for the Hungarian matcher
(spec 7.1), the loss trains the classifier (spec 7.2).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def sigmoid_focal_loss(
    logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> Tensor:
    """Element-wise sigmoid focal loss, without reduction (spec 7.2, L_cls).

    ``loss = -alpha_t * (1 - p_t)^gamma * log(p_t)`` with ``p = sigmoid(logits)``,
    ``p_t = p`` and ``alpha_t = alpha`` where the target is 1, ``p_t = 1 - p`` and
    ``alpha_t = 1 - alpha`` where it is 0. ``log(p_t)`` comes from
    ``binary_cross_entropy_with_logits``, so huge logits do not overflow.

    Args:
        logits: any shape, e.g. ``(B, N, C)`` class logits.
        targets: same shape as ``logits``, floats in ``[0, 1]`` (one-hot, zeros for no object).
        alpha: weight of the positive term, in ``[0, 1]``.
        gamma: focusing exponent, ``>= 0``.

    Returns:
        The loss per element, same shape as ``logits``.
    """
    prob = logits.sigmoid()
    cross_entropy = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    negatives = 1 - targets
    p_t = prob * targets + (1 - prob) * negatives
    alpha_t = alpha * targets + (1 - alpha) * negatives
    return alpha_t * (1 - p_t) ** gamma * cross_entropy


def focal_cost(
    logits: Tensor,
    labels: Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
    eps: float = 1e-8,
) -> Tensor:
    """Classification cost of assigning each prediction to each ground-truth label (spec 7.1).

    ``Ccls(i, c) = alpha (1 - p_ic)^gamma (-log(p_ic + eps))
    - (1 - alpha) p_ic^gamma (-log(1 - p_ic + eps))`` with ``p = sigmoid(logits)``: the focal
    loss of calling prediction ``i`` class ``c`` minus the focal loss of calling it not ``c``.
    ``eps`` is 1e-8 in the official code, 1e-12 in mmdetection.

    Args:
        logits: ``(..., P, C)`` class logits of ``P`` predictions.
        labels: ``(..., G)`` int64 class of each of ``G`` ground-truth boxes, in ``[0, C)``;
            leading (batch) dimensions as in ``logits``.
        alpha: weight of the positive term.
        gamma: focusing exponent.
        eps: keeps the logarithms finite when ``p`` saturates at 0 or 1.

    Returns:
        ``(..., P, G)`` cost, lower is a better match.
    """
    # Only the G target columns are needed: (..., P, C) -> (..., P, G) before any arithmetic.
    columns = labels.unsqueeze(-2).expand(*logits.shape[:-1], labels.shape[-1])
    prob = logits.gather(-1, columns).sigmoid()
    positive = alpha * (1 - prob) ** gamma * -(prob + eps).log()
    negative = (1 - alpha) * prob**gamma * -(1 - prob + eps).log()
    return positive - negative
