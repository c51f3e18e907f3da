"""Learned proposals: the paper's initialisations (Table 6) and per-image scaling."""

from __future__ import annotations

import pytest
import torch

from sparsercnn.model.proposals import LearnedProposals, initial_proposal_boxes


@pytest.mark.parametrize("num_proposals", [1, 7, 49, 50, 100, 300])
def test_grid_covers_the_whole_image_with_distinct_cells(num_proposals: int) -> None:
    boxes = initial_proposal_boxes(num_proposals, "grid")
    assert boxes.shape == (num_proposals, 4)
    assert len({tuple(b) for b in boxes.tolist()}) == num_proposals
    if num_proposals > 1:
        # Centres reach the first and the last row and column of the grid.
        half_cell_x, half_cell_y = boxes[0, 2] / 2, boxes[0, 3] / 2
        assert boxes[:, 0].min() == pytest.approx(half_cell_x)
        assert boxes[:, 1].min() == pytest.approx(half_cell_y)
        assert boxes[:, 0].max() == pytest.approx(1 - half_cell_x)
        assert boxes[:, 1].max() == pytest.approx(1 - half_cell_y)


def test_image_center_and_random_inits() -> None:
    assert initial_proposal_boxes(3, "image").tolist() == [[0.5, 0.5, 1.0, 1.0]] * 3
    torch.testing.assert_close(
        initial_proposal_boxes(2, "center"), torch.tensor([[0.5, 0.5, 0.1, 0.1]] * 2)
    )
    random = initial_proposal_boxes(500, "random", generator=torch.Generator().manual_seed(0))
    assert random[:, :2].min() >= 0 and random[:, :2].max() <= 1
    assert random[:, 2:].min() >= 0.01 and random[:, 2:].max() <= 1
    with pytest.raises(ValueError, match="unknown proposal init"):
        initial_proposal_boxes(3, "anchors")


def test_proposals_scale_to_each_unpadded_image() -> None:
    proposals = LearnedProposals(4, 8, init="image")
    boxes, features = proposals(torch.tensor([[100, 200], [50, 60]]))
    assert boxes.shape == (2, 4, 4) and features.shape == (2, 4, 8)
    assert boxes[0, 0].tolist() == [0.0, 0.0, 200.0, 100.0]
    assert boxes[1, 0].tolist() == [0.0, 0.0, 60.0, 50.0]
    assert torch.equal(features[0], features[1])
