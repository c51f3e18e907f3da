"""Training objective (spec 7): focal loss and cost, Hungarian matching, the set criterion."""

from sparsercnn.loss.criterion import SetCriterion, SetLoss, build_criterion
from sparsercnn.loss.focal import focal_cost, sigmoid_focal_loss
from sparsercnn.loss.matcher import HungarianMatcher, NonFiniteCostError

__all__ = [
    "HungarianMatcher",
    "NonFiniteCostError",
    "SetCriterion",
    "SetLoss",
    "build_criterion",
    "focal_cost",
    "sigmoid_focal_loss",
]
