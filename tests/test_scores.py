"""The score as written and the score threshold: one rounding, one comparison."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsercnn import scores as scores_module
from sparsercnn.scores import check_score_threshold, passes_threshold, written_score


def test_a_score_is_written_to_six_significant_digits() -> None:
    assert written_score(0.12345678) == 0.123457
    assert written_score(float(np.float32(0.3))) == 0.3  # not 0.30000001192092896
    assert written_score(1.23456789e-7) == 1.23457e-07  # tiny scores keep their order


def test_a_threshold_is_a_number_in_the_range_of_scores() -> None:
    assert (check_score_threshold(0), check_score_threshold(1.0)) == (0.0, 1.0)
    # Was refused as "must be a number in [0, 1], got np.float32(0.5)": a number of numpy or a
    # 0-dim tensor (a score taken from the model's output) is a number.
    for number in (np.float32(0.5), np.float64(0.5), torch.tensor(0.5), np.array(0.5)):
        value = check_score_threshold(number)  # type: ignore[arg-type]
        assert (type(value), value) == (float, 0.5)
    bad_tensors = (torch.tensor([0.5]), torch.tensor(True), np.bool_(True), torch.tensor(1j))
    # 10**400 raised OverflowError (float() of an int past float's range), not this message.
    for bad in (float("nan"), float("-inf"), -1e-9, 1.0001, True, "0.5", 10**400, *bad_tensors):
        with pytest.raises(ValueError, match=r"^score_threshold must be a number in \[0, 1\]"):
            check_score_threshold(bad)  # type: ignore[arg-type]


def test_a_score_passes_the_threshold_it_is_written_as() -> None:
    """float32 0.29999998 is written 0.3: a threshold of 0.3 keeps it, as it keeps 0.3 itself."""
    scores = torch.tensor([0.3, 0.29999998, 0.2999994, 0.2999], dtype=torch.float32)
    assert float(scores[1]) < 0.3
    assert passes_threshold(scores, 0.3).tolist() == [True, True, False, False]
    assert passes_threshold(scores.double().numpy(), 0.3).tolist() == [True, True, False, False]
    assert passes_threshold([0.5, float("nan")], 0.0).tolist() == [True, False]
    assert passes_threshold(torch.zeros(0), 0.3).shape == (0,)


def test_the_written_boundary_is_exact() -> None:
    """0.2999995 and up are written 0.3: the float32 on either side of it fall either side of
    the threshold; and a threshold of 7 digits fails a score of its own value, written with 6."""
    below = np.float32(0.2999995)
    if below >= 0.2999995:
        below = np.nextafter(below, np.float32(0))
    above = np.nextafter(below, np.float32(1))
    scores = np.array([below, above], dtype=np.float32)
    assert passes_threshold(scores, 0.3).tolist() == [False, True]
    assert passes_threshold(torch.from_numpy(scores), 0.3).tolist() == [False, True]
    seven_digits = [0.1234564, 0.12345649, 0.1234566]  # written 0.123456, 0.123456, 0.123457
    assert passes_threshold(seven_digits, 0.1234564).tolist() == [False, False, True]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_the_mask_equals_every_score_written_and_compared(dtype: torch.dtype) -> None:
    """Scores a few float32 steps and a few written digits around thresholds of 6 digits and
    more: the mask is every score written and compared, one by one."""
    generator = torch.Generator().manual_seed(0)
    for threshold in (0.3, 0.05, 0.999999, 0.1234564, 1.5e-7, 0.0):
        steps = torch.arange(-60, 61, dtype=torch.float64)
        near = threshold * (1 + steps * 1e-7)  # the float32 steps and the written digits
        spread = torch.rand(200, generator=generator, dtype=torch.float64)
        values = torch.cat([near, spread, torch.tensor([float("nan"), float("inf")])]).to(dtype)
        expected = [written_score(v) >= threshold for v in values.double().tolist()]
        assert passes_threshold(values, threshold).tolist() == expected
        assert passes_threshold(values.double().numpy(), threshold).tolist() == expected
    ends = torch.tensor([0.5, float("inf"), float("nan")], dtype=dtype)
    assert passes_threshold(ends, float("inf")).tolist() == [False, True, False]
    assert passes_threshold(ends, float("-inf")).tolist() == [True, True, False]
    ends_array = ends.double().numpy()
    assert passes_threshold(ends_array, float("inf")).tolist() == [False, True, False]


def test_the_mask_keeps_the_scores_type_shape_and_device() -> None:
    """A tensor gives a bool tensor of its shape on its device (no numpy round trip for
    tensors on an accelerator); an array gives an array of its shape."""
    scores = torch.tensor([[0.1, 0.5, 0.29999998], [0.3, 0.2, 0.9]])
    mask = passes_threshold(scores, 0.3)
    assert isinstance(mask, torch.Tensor) and mask.dtype == torch.bool
    assert mask.shape == (2, 3) and mask.device == scores.device
    assert mask.tolist() == [[False, True, True], [True, False, True]]
    array_mask = passes_threshold(scores.numpy(), 0.3)
    assert isinstance(array_mask, np.ndarray) and array_mask.shape == (2, 3)
    assert array_mask.tolist() == mask.tolist()


def test_only_the_scores_near_the_threshold_are_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scores are compared as they are; only the few that writing could move across the
    threshold are formatted (not every one of a model's hundreds)."""
    written: list[float] = []

    def counting(score: float) -> float:
        written.append(score)
        return written_score(score)

    monkeypatch.setattr(scores_module, "written_score", counting)
    scores = torch.cat([torch.linspace(0, 1, 1001), torch.tensor([0.29999998])])
    assert int(passes_threshold(scores, 0.3).sum()) == 701 + 1
    assert 1 <= len(written) <= 3
