"""Tests for the count of FPN pixels the stages read: checked against the pixels from which the
reference RoIAlign takes a gradient, level by level and stage by stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor

from sparsercnn.diagnostics.feature_reads import (
    TILE_SIZES,
    collect_feature_reads,
    count_image_reads,
    empty_feature_reads,
    write_feature_reads,
)
from sparsercnn.model import SparseRCNN
from sparsercnn.model.inference import evaluating
from sparsercnn.model_file import load_model_file
from sparsercnn.ops.multilevel_roi_align import assign_levels
from sparsercnn.ops.roi_sampling import roi_align
from tests.diagnostics.diagnostics_data import DiagnosticsData


def _gradient_reads(model: SparseRCNN, image: Tensor) -> list[list[Tensor]]:
    """``[stage][level]`` boolean maps of the feature pixels whose value the stage's RoIAlign
    output depends on: where the reference ``roi_align`` puts a non-zero gradient."""
    with evaluating(model):
        batch = model.preprocess([image])
        output = model(batch)
    height, width = batch.tensor.shape[-2:]
    stage_boxes = [output.proposal_boxes] + [stage.boxes for stage in output.stages[:-1]]
    maps = []
    for boxes in stage_boxes:
        level = assign_levels(boxes[0])
        stage_maps = []
        for index, stride in enumerate(model.head.strides):
            feature = torch.ones(1, 1, height // stride, width // stride, requires_grad=True)
            selected = boxes[0][level == index]
            if len(selected):
                pooled = roi_align(feature, [selected], 7, 1 / stride, 2, aligned=True)
                pooled.sum().backward()
                assert feature.grad is not None
                stage_maps.append(feature.grad[0, 0] != 0)
            else:
                stage_maps.append(torch.zeros(feature.shape[2:], dtype=torch.bool))
        maps.append(stage_maps)
    return maps


@pytest.fixture
def varied_model(data: DiagnosticsData) -> SparseRCNN:
    """The tiny test model with proposals of every size, so that every level is read."""
    model = load_model_file(data.model_file).model
    num = model.num_proposals
    sizes = torch.linspace(0.05, 1.0, num)
    centres = torch.rand(num, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.proposals.boxes.weight.copy_(torch.cat([centres, sizes[:, None].repeat(1, 2)], 1))
    return model


def test_reads_are_the_pixels_roi_align_depends_on(varied_model: SparseRCNN) -> None:
    image = torch.randint(0, 256, (3, 500, 700), generator=torch.Generator().manual_seed(1))
    reads = empty_feature_reads(varied_model.head.strides, varied_model.num_stages)
    with evaluating(varied_model):
        count_image_reads(varied_model, image, reads)
    expected = _gradient_reads(varied_model, image)
    assert reads.num_images == 1
    for index, level in enumerate(reads.levels):
        union = torch.stack([stage[index] for stage in expected]).any(0)
        assert level.pixels == union.numel()  # 512 x 704 padded, over the stride squared
        assert level.read_pixels == int(union.sum())
        assert level.stage_read_pixels == [int(stage[index].sum()) for stage in expected]
        for tile in TILE_SIZES:
            rows = range(0, union.shape[0], tile)
            cols = range(0, union.shape[1], tile)
            read = sum(bool(union[r : r + tile, c : c + tile].any()) for r in rows for c in cols)
            assert (level.tiles[tile], level.read_tiles[tile]) == (len(rows) * len(cols), read)
    # Proposals from 5% to 100% of a 500x700 image fall on every level; P2 is read only in part.
    assert all(level.read_pixels > 0 for level in reads.levels)
    assert 0 < reads.levels[0].read_fraction < 1


def test_reads_of_a_dataset_are_written_and_tabulated(
    data: DiagnosticsData, tmp_path: Path
) -> None:
    reads = collect_feature_reads(
        data.model_file, data.json_path, data.image_dir, max_images=3, num_workers=0
    )
    assert reads.num_images == 3
    assert [level.name for level in reads.levels] == ["P2", "P3", "P4", "P5"]
    # The test resize makes the 96x128 images 128x160: P2 is 32x40 per image.
    assert reads.levels[0].pixels == 3 * 32 * 40
    table = reads.format_table()
    assert "over 3 images" in table and table.splitlines()[2].startswith("P2")
    path = write_feature_reads(reads, tmp_path / "out")
    record = json.loads(path.read_text())
    assert record["levels"][0]["read_fraction"] == pytest.approx(reads.levels[0].read_fraction)
    assert record["levels"][0]["tile_fractions"]["16"] == pytest.approx(
        reads.levels[0].tile_fraction(16)
    )


def test_reads_need_no_labels_of_the_models_classes(data: DiagnosticsData, tmp_path: Path) -> None:
    """Unlabelled images of another data set (other categories, no boxes) can be read."""
    coco = json.loads(data.json_path.read_text())
    coco["categories"] = [{"id": 9, "name": "tree"}]
    coco["annotations"] = []
    other = tmp_path / "other.json"
    other.write_text(json.dumps(coco))
    reads = collect_feature_reads(data.model_file, other, data.image_dir, num_workers=0)
    assert reads.num_images == len(coco["images"])
