"""Tests for the recipe's warnings about the training set (numbers worked out by hand)."""

from __future__ import annotations

import pytest

from sparsercnn.recipe.advice import crowd_warning, rare_class_warning
from sparsercnn.recipe.input_size import proposal_coverage
from tests.recipe.test_auto_recipe import profile_of


def test_crowd_warning_counts_the_boxes_that_cannot_be_detected() -> None:
    # 70 boxes in the first image, one in each of 130 others: 20 over 50 proposals.
    profile = profile_of((256, 256), [20.0] * 200, objects_per_image=70)
    warning = crowd_warning(profile, 50, "set model.num_proposals")
    assert warning == (
        "20 of 200 boxes (10%) cannot be detected: 1 image has more objects than the 50 "
        "proposals (up to 70 in one image); set model.num_proposals"
    )
    # The same count as the share of detectable boxes the proposals' reason gives.
    assert proposal_coverage(profile, 50) == pytest.approx(1 - 20 / 200)
    assert crowd_warning(profile, 70, "") is None


def test_rare_class_warning_names_each_class_with_its_count() -> None:
    one = profile_of((160, 160), [30.0] * 23, num_classes=2)  # 12 and 11 boxes
    assert rare_class_warning(one) is None
    rare = profile_of((160, 160), [30.0] * 13, num_classes=2)  # 7 and 6 boxes
    assert rare_class_warning(rare) == (
        "2 classes have fewer than 10 boxes: class0 (7), class1 (6); expect a low AP on them"
    )
    lone = profile_of((160, 160), [30.0] * 19, num_classes=2)  # 10 and 9 boxes
    assert rare_class_warning(lone) == (
        "1 class has fewer than 10 boxes: class1 (9); expect a low AP on them"
    )
    many = profile_of((160, 160), [30.0] * 12, num_classes=12)  # one box each
    assert rare_class_warning(many) == (
        "12 classes have fewer than 10 boxes: class0 (1), class1 (1), class2 (1), class3 (1), "
        "class4 (1), class5 (1), class6 (1), class7 (1) ... (12 in all); expect a low AP on them"
    )
