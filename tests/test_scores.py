"""The score as written and the score threshold: one rounding, one comparison."""

from __future__ import annotations

import numpy as np
import torch

from sparsercnn.scores import passes_threshold, written_score


def test_a_score_is_written_to_six_significant_digits() -> None:
    assert written_score(0.12345678) == 0.123457
    assert written_score(float(np.float32(0.3))) == 0.3  # not 0.30000001192092896
    assert written_score(1.23456789e-7) == 1.23457e-07  # tiny scores keep their order


def test_a_score_passes_the_threshold_it_is_written_as() -> None:
    """float32 0.29999998 is written 0.3: a threshold of 0.3 keeps it, as it keeps 0.3 itself."""
    scores = torch.tensor([0.3, 0.29999998, 0.2999], dtype=torch.float32)
    assert float(scores[1]) < 0.3
    assert passes_threshold(scores, 0.3).tolist() == [True, True, False]
    assert passes_threshold(scores.double().numpy(), 0.3).tolist() == [True, True, False]
    assert passes_threshold([0.5, float("nan")], 0.0).tolist() == [True, False]
    assert passes_threshold(torch.zeros(0), 0.3).shape == (0,)
