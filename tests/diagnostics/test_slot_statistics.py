"""Slot statistics: counts add up to the matches, confidence thresholds, advice, JSON and plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from sparsercnn.data.categories import CategoryMap
from sparsercnn.diagnostics import slot_statistics
from sparsercnn.diagnostics.slot_statistics import (
    NEVER_MATCHED,
    NO_SINGLE_CLASS,
    SlotStatistics,
    _match_records,
    slot_statistics_of_model_file,
    write_slot_statistics,
)
from sparsercnn.model import build_model
from sparsercnn.model_file import save_model_file
from sparsercnn.scores import written_score
from sparsercnn.structures import PixelMap, Target
from tests.diagnostics.diagnostics_data import (
    CROWDED_OBJECTS,
    NUM_PROPOSALS,
    DiagnosticsData,
    tiny_config,
    write_subset_json,
)


@pytest.fixture(scope="module")
def statistics(data: DiagnosticsData) -> SlotStatistics:
    return slot_statistics_of_model_file(
        data.model_file, data.json_path, data.image_dir, score_threshold=0.0
    )


def test_counts_add_up_to_the_matches(statistics: SlotStatistics, data: DiagnosticsData) -> None:
    expected = sum(min(n, NUM_PROPOSALS) for n in data.objects_per_image)
    assert statistics.num_matched == expected
    assert int(statistics.matched_counts.sum()) == expected
    assert int(statistics.class_counts.sum()) == expected
    assert np.array_equal(statistics.class_counts.sum(axis=1), statistics.matched_counts)
    assert statistics.num_gt_boxes == sum(data.objects_per_image)
    assert statistics.max_objects_per_image == CROWDED_OBJECTS
    assert statistics.num_images == len(data.objects_per_image)
    sizes = np.concatenate([values for _, values in statistics.size_groups()])
    assert len(sizes) == expected


def test_per_match_values(statistics: SlotStatistics) -> None:
    assert statistics.match_centres_norm.shape == (statistics.num_matched, 2)
    assert ((statistics.match_centres_norm > 0) & (statistics.match_centres_norm < 1)).all()
    # Sizes are in original pixels: the 12 x 12 squares of the crowded image and 32 x 24 cells.
    assert statistics.match_sqrt_areas.min() == pytest.approx(12.0, rel=1e-3)
    assert statistics.match_sqrt_areas.max() <= np.sqrt(110 * 80) + 1e-3
    dominant = statistics.dominant_labels
    matched = statistics.matched_counts > 0
    assert ((dominant != NEVER_MATCHED) == matched).all()
    assert np.isnan(statistics.mean_centres_norm[~matched]).all()


def test_confidence_threshold(statistics: SlotStatistics) -> None:
    # Every slot's best score is >= 0 in every image.
    assert (statistics.confident_counts == statistics.num_images).all()
    assert statistics.never_confident == [] and statistics.dead_slots == []


def _hand_made(matched: list[int], confident: list[int], most: int) -> SlotStatistics:
    """Statistics of 3 slots and 1 class, one match per count, all at the image centre."""
    slots = np.repeat(np.arange(3), matched)
    return SlotStatistics(
        class_names=["thing"],
        num_images=4,
        num_gt_boxes=len(slots),
        max_objects_per_image=most,
        score_threshold=0.5,
        matched_counts=np.array(matched),
        confident_counts=np.array(confident),
        class_counts=np.array(matched)[:, None],
        proposal_boxes_cxcywh_norm=np.full((3, 4), 0.5),
        match_slots=slots,
        match_labels=np.zeros(len(slots), dtype=np.int64),
        match_centres_norm=np.full((len(slots), 2), 0.5),
        match_sqrt_areas=np.arange(1.0, len(slots) + 1),
    )


def test_dead_slots_and_advice_by_hand() -> None:
    statistics = _hand_made(matched=[3, 0, 0], confident=[4, 2, 0], most=2)
    assert statistics.never_matched == [1, 2]
    assert statistics.never_confident == [2]
    assert statistics.dead_slots == [2]
    assert statistics.mean_sqrt_areas[0] == pytest.approx(2.0)
    assert statistics.dominant_labels.tolist() == [0, -1, -1]
    (dead,) = statistics.advice()  # one dead slot only
    assert dead.startswith("1 of 3 slots was never matched and never confident (score >= 0.5)")
    two_dead = _hand_made(matched=[3, 0, 0], confident=[4, 0, 0], most=2).advice()
    assert two_dead[0].startswith("2 of 3 slots were never matched")
    # Slots 1 and 2 were never matched: not listed among the most matched with "(0)".
    assert "most matched slots: 0 (3)\n" in statistics.format()
    # One slot of each count: "1 slots" was written.
    single = _hand_made(matched=[2, 0, 1], confident=[1, 1, 1], most=1)
    assert "never matched: 1 slot;" in single.format()
    assert [name for name, _ in single.size_groups()] == ["group 1: 1 slot", "group 2: 1 slot"]
    unmatched = _hand_made(matched=[0, 0, 0], confident=[1, 1, 1], most=1)
    assert unmatched.format().endswith("most matched slots: none")
    crowded = _hand_made(matched=[1, 1, 1], confident=[1, 1, 1], most=3).advice()
    assert len(crowded) == 1 and "(> 80%)" in crowded[0]
    overfull = _hand_made(matched=[1, 1, 1], confident=[1, 1, 1], most=5).advice()
    assert "2 of them can never be detected" in overfull[0]
    assert "train with model.num_proposals=20" in overfull[0]  # as the recipe would choose


def test_a_slot_whose_classes_tie_has_no_dominant_class() -> None:
    """Slot 0 matched a circle and a square once each: neither dominates (the lowest label
    used to win every tie, colouring most slots as the first class)."""
    statistics = _hand_made(matched=[2, 3, 0], confident=[1, 1, 1], most=1)
    statistics.class_names = ["circle", "square"]
    statistics.class_counts = np.array([[1, 1], [1, 2], [0, 0]])
    assert statistics.dominant_labels.tolist() == [NO_SINGLE_CLASS, 1, NEVER_MATCHED]
    records = [statistics.slot_record(slot)["dominant_class"] for slot in range(3)]
    assert records == [None, "square", None]


def test_advice_about_too_few_proposals(statistics: SlotStatistics) -> None:
    advice = " ".join(statistics.advice())
    assert f"{CROWDED_OBJECTS} objects" in advice and f"N = {NUM_PROPOSALS}" in advice
    assert "advice:" in statistics.format()


def test_write_slot_statistics(statistics: SlotStatistics, tmp_path: Path) -> None:
    paths = write_slot_statistics(statistics, tmp_path)
    record = json.loads(paths["json"].read_text())
    assert record["num_matched"] == statistics.num_matched
    assert sum(slot["matched"] for slot in record["slots"]) == statistics.num_matched
    assert sum(sum(slot["classes"].values()) for slot in record["slots"]) == record["num_matched"]
    for key in ("matches", "centres", "sizes"):
        with Image.open(paths[key]) as image:
            assert image.format == "PNG" and image.width > 100


def test_classes_that_share_a_name_are_counted_apart(data: DiagnosticsData, tmp_path: Path) -> None:
    """Two categories named alike (a validation warning, not an error): each keeps its own
    count in slots.json instead of one overwriting the other under the shared name."""
    categories = [{"id": 1, "name": "shape"}, {"id": 3, "name": "shape"}]
    coco = data.coco.read_json()
    coco["categories"] = categories
    json_path = tmp_path / "same_names.json"
    json_path.write_text(json.dumps(coco))
    torch.manual_seed(0)
    model_file = save_model_file(
        tmp_path / "model.safetensors",
        build_model(tiny_config()),
        tiny_config(),
        CategoryMap.from_coco(categories),
    )
    statistics = slot_statistics_of_model_file(model_file, json_path, data.image_dir)
    record = statistics.to_dict()
    counted = [count for slot in record["slots"] for count in slot["classes"].values()]
    assert sum(counted) == record["num_matched"] > 0
    assert {name for slot in record["slots"] for name in slot["classes"]} == {
        "shape (1)",
        "shape (3)",
    }


def test_match_sizes_are_in_original_pixels_by_the_pixel_map() -> None:
    """A JPEG decoded at 1/4 and resized to the input: a match's size is reported in the file's
    pixels through its pixel map (4 x 0.5 = 2 per axis here), not the ratio of sizes, which
    a partial last DCT block makes inexact."""
    target = Target(boxes=torch.tensor([[0.0, 0.0, 10.0, 20.0]]), labels=torch.tensor([1]))
    slots, gts = torch.tensor([3]), torch.tensor([0])
    input_size = torch.tensor([50.0, 60.0])
    by_ratio = _match_records(target, slots, gts, input_size, (201, 241))
    assert by_ratio[0, 4] == pytest.approx((200 * (201 * 241) / (50 * 60)) ** 0.5)
    mapped = _match_records(
        target, slots, gts, input_size, (201, 241), PixelMap(2.0, 2.0, -3.0, 0.0)
    )
    assert mapped[0, 4] == pytest.approx((200 * 4) ** 0.5)
    assert mapped[0, :4].tolist() == by_ratio[0, :4].tolist()


def test_a_threshold_copied_from_a_written_score_counts_that_slot_confident(
    data: DiagnosticsData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slot's best score compares as written (6 digits), as every other threshold does: a
    threshold copied from it counts the slot confident, though the float32 is a little below
    (the raw comparison left it out)."""
    subset = write_subset_json(data, 1, tmp_path / "one_image.json")
    bests: list[torch.Tensor] = []
    run_model = slot_statistics.run_model

    def recording(*args: Any, **kwargs: Any) -> Any:
        output = run_model(*args, **kwargs)
        bests.append(output.last.logits.sigmoid().amax(dim=-1).cpu())
        return output

    monkeypatch.setattr(slot_statistics, "run_model", recording)
    slot_statistics_of_model_file(data.model_file, subset, data.image_dir)
    (best,) = bests  # (1, N)
    scores = best[0].double().tolist()
    threshold = max(written_score(s) for s in scores if written_score(s) > s)
    statistics = slot_statistics_of_model_file(
        data.model_file, subset, data.image_dir, score_threshold=threshold
    )
    expected = [int(written_score(s) >= threshold) for s in scores]
    assert statistics.confident_counts.tolist() == expected
    assert expected != [int(s >= threshold) for s in scores]
