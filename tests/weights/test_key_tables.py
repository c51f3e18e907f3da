"""Full-size key layouts (R50/R101, on the meta device: no memory) map to our model strictly."""

from __future__ import annotations

import re

import pytest
import torch

from sparsercnn.model import build_model
from sparsercnn.model.backbone import ResNet
from sparsercnn.weights.convert import convert_raw, export_state_dict, to_our_names
from sparsercnn.weights.key_tables import KEY_TABLE, LAYOUTS, rename_keys
from sparsercnn.weights.readers import RawCheckpoint
from tests.weights.reference_checkpoints import R50_100, R101_300, make_pair


def test_every_row_uses_the_same_placeholders_in_every_layout() -> None:
    for row in KEY_TABLE:
        names = {
            layout: set(re.findall(r"\{(\w+)\}", pattern))
            for layout in LAYOUTS
            if (pattern := row.pattern(layout)) is not None
        }
        assert len({frozenset(v) for v in names.values()}) == 1, row


def test_reference_key_counts_match_the_spec() -> None:
    pair = make_pair(R50_100, device="meta")
    assert len(pair.official) == 523
    assert len(pair.mmdet) == 576


@pytest.mark.parametrize("layout", ["official", "mmdet"])
def test_r50_100_converts_strictly_to_our_model(layout: str) -> None:
    pair = make_pair(R50_100, device="meta")
    tensors = pair.official if layout == "official" else pair.mmdet
    converted = convert_raw(RawCheckpoint(tensors, layout, f"<{layout}>"))
    model_cfg = converted.config.model
    assert (model_cfg.backbone_depth, model_cfg.num_proposals, model_cfg.num_classes) == (
        50,
        100,
        80,
    )
    assert (model_cfg.num_stages, model_cfg.hidden_dim, model_cfg.ffn_dim) == (6, 256, 2048)
    assert (model_cfg.dynamic_dim, model_cfg.pooler_resolution) == (64, 7)
    assert (model_cfg.num_cls_layers, model_cfg.num_reg_layers) == (1, 3)
    if layout == "official":
        assert len(converted.state_dict) == 523
        assert (model_cfg.backbone_norm, model_cfg.box_delta_clamp, model_cfg.clip_boxes) == (
            "frozen_bn",
            "official",
            True,
        )
    else:
        assert len(converted.state_dict) == 576  # BatchNorm keeps its counters
        assert (model_cfg.backbone_norm, model_cfg.box_delta_clamp, model_cfg.clip_boxes) == (
            "bn_eval",
            "mmdet",
            False,
        )
    with torch.device("meta"):
        expected = build_model(converted.config).state_dict()
    assert set(converted.state_dict) == set(expected)
    for key, value in converted.state_dict.items():
        assert value.shape == expected[key].shape, key


def test_r101_300_is_recognised_from_shapes() -> None:
    pair = make_pair(R101_300, device="meta")
    converted = convert_raw(RawCheckpoint(pair.official, "official", "<r101>"))
    assert converted.config.model.backbone_depth == 101
    assert converted.config.model.num_proposals == 300
    assert len(converted.state_dict) == 523 + 17 * 15


@pytest.mark.parametrize("layout", ["official", "mmdet"])
def test_export_restores_every_reference_key(layout: str) -> None:
    pair = make_pair(R50_100, device="meta")
    source = pair.official if layout == "official" else pair.mmdet
    ours = to_our_names(source, layout, "<test>")
    exported = export_state_dict(ours, layout)
    assert set(exported) == set(source)
    assert all(exported[k] is source[k] for k in source)


def test_official_and_mmdet_names_of_one_tensor_map_to_the_same_key() -> None:
    pair = make_pair(R50_100, device="meta")
    from_official = to_our_names(pair.official, "official", "<official>")
    from_mmdet = to_our_names(pair.mmdet, "mmdet", "<mmdet>")
    for key, tensor in from_official.items():
        assert from_mmdet[key] is tensor, key


def test_torchvision_resnet50_keys_fill_our_backbone() -> None:
    pair = make_pair(R50_100, device="meta")
    # torchvision names = mmdetection's without "backbone.", plus the classifier.
    torchvision = {
        k.removeprefix("backbone."): v for k, v in pair.mmdet.items() if k.startswith("backbone.")
    }
    torchvision["fc.weight"] = torch.empty(1000, 2048, device="meta")
    torchvision["fc.bias"] = torch.empty(1000, device="meta")
    renamed, dropped, unmatched = rename_keys(torchvision, "torchvision", "ours")
    assert sorted(dropped) == ["fc.bias", "fc.weight"] and not unmatched
    with torch.device("meta"):
        backbone = ResNet(50, norm="bn")
    expected = {f"backbone.{k}": v.shape for k, v in backbone.state_dict().items()}
    assert {k: v.shape for k, v in renamed.items()} == expected


def test_unknown_key_is_reported_by_name() -> None:
    pair = make_pair(R50_100, device="meta")
    pair.official["head.head_series.0.extra_layer.weight"] = torch.empty(3, device="meta")
    with pytest.raises(
        ValueError,
        match=r"head\.head_series\.0\.extra_layer\.weight; the layout has no such tensors "
        r".*: re-save the state dict without those keys",
    ):
        to_our_names(pair.official, "official", "<official>")
