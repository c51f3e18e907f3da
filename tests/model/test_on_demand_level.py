"""On-demand FPN levels: the tiles a stage reads hold the dense convolution's values, the model's
outputs do not change, and training keeps the dense pyramid."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsercnn.model import build_model
from sparsercnn.model.inference import evaluating
from sparsercnn.model.on_demand_level import OnDemandLevel
from sparsercnn.ops.multilevel_roi_align import FlattenedLevels, flatten_levels
from sparsercnn.presets import get_preset


def test_filled_tiles_hold_the_dense_convolution_and_the_rest_stays_zero() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 6, 3, padding=1)
    merged = torch.randn(2, 8, 21, 35)  # not a multiple of the tile: partial edge tiles
    dense = conv(merged)
    level = OnDemandLevel(0, merged, conv, tile=8)
    other = torch.randn(2, 6, 5, 7)
    levels = flatten_levels([level.placeholder(other), other], strides=(4, 8))
    h, w = 21, 35
    # Read pixel (20, 34) of image 1 (the bottom-right partial tile) and (3, 9) of image 0.
    rows = torch.tensor([1 * h * w + 20 * w + 34, 3 * w + 9, levels.table.shape[0] - 1])
    with torch.no_grad():
        level.fill(levels, rows)
    table = levels.table[: 2 * h * w].view(2, h, w, 6).permute(0, 3, 1, 2)
    computed = torch.zeros(2, 1, h, w, dtype=torch.bool)
    computed[1, :, 16:21, 32:35] = True  # tile (2, 4) of image 1
    computed[0, :, 0:8, 8:16] = True  # tile (0, 1) of image 0
    torch.testing.assert_close(table * computed, dense.detach() * computed, rtol=0, atol=1e-6)
    assert (table[~computed.expand_as(table)] == 0).all()
    assert level.done.sum() == 2 and level.computed_fraction == pytest.approx(2 / 30)
    assert torch.equal(levels.table[2 * h * w :], other.permute(0, 2, 3, 1).reshape(-1, 6))


def test_a_tile_is_computed_once() -> None:
    conv = nn.Conv2d(4, 4, 3, padding=1)
    level = OnDemandLevel(0, torch.randn(1, 4, 16, 16), conv, tile=8)
    levels = flatten_levels([level.placeholder(torch.zeros(1, 4, 2, 2))], strides=(4,))
    calls = []
    original = torch.nn.functional.conv2d

    def counting(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(args[0].shape[0])  # type: ignore[union-attr]
        return original(*args, **kwargs)  # type: ignore[arg-type]

    with torch.no_grad(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.nn.functional, "conv2d", counting)
        level.fill(levels, torch.tensor([0, 1]))
        level.fill(levels, torch.tensor([2, 8 * 16]))  # tile 0 again, and tile (1, 0)
        level.fill(levels, torch.tensor([0]))
    assert calls == [1, 1]


def test_small_levels_stay_dense() -> None:
    assert not OnDemandLevel.pays(40, 40)  # a 160x160 image's P2: 3x3 tiles
    assert OnDemandLevel.pays(128, 128) and not OnDemandLevel.pays(112, 128)  # 8x8, 7x8


def test_only_3x3_output_convolutions_can_be_deferred() -> None:
    with pytest.raises(ValueError, match="3x3 convolution with stride 1 and padding 1"):
        OnDemandLevel(0, torch.zeros(1, 4, 8, 8), nn.Conv2d(4, 4, 1))


def _varied_tiny_model(on_demand: int) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = get_preset("tiny")
    cfg.model.fpn_on_demand_levels = on_demand
    model = build_model(cfg)
    num = model.num_proposals
    generator = torch.Generator().manual_seed(1)
    centres = torch.rand(num, 2, generator=generator)
    sizes = torch.linspace(0.03, 0.6, num)[:, None].repeat(1, 2)
    with torch.no_grad():
        model.proposals.boxes.weight.copy_(torch.cat([centres, sizes], 1))
    return model


@pytest.mark.parametrize("num_levels", [1, 2, 3])
def test_model_outputs_do_not_change_with_on_demand_levels(
    num_levels: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Large enough for P2-P4 to have >= MIN_TILES tiles (P4 of 1024x1280 is 64x80: 4x5 tiles,
    # so P4 stays dense: MIN_TILES decides, which the count below checks).
    images = [torch.randint(0, 256, (3, h, w)).float() for h, w in [(1024, 1280), (1000, 1270)]]
    dense, on_demand = _varied_tiny_model(0), _varied_tiny_model(num_levels)
    filled: set[int] = set()
    original = OnDemandLevel.fill

    def fill(self: OnDemandLevel, levels: FlattenedLevels, rows: torch.Tensor) -> None:
        filled.add(self.level)
        original(self, levels, rows)

    monkeypatch.setattr(OnDemandLevel, "fill", fill)
    with evaluating(dense), evaluating(on_demand):
        expected, actual = dense(images), on_demand(images)
    assert filled == set(range(min(num_levels, 2)))
    for a, b in zip(expected.stages, actual.stages, strict=True):
        torch.testing.assert_close(b.logits, a.logits, rtol=0, atol=1e-5)
        torch.testing.assert_close(b.boxes, a.boxes, rtol=0, atol=1e-3)


def test_training_and_autograd_keep_the_dense_pyramid(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _varied_tiny_model(2)
    requested = []
    original = model.fpn.pyramid

    def pyramid(features: list[torch.Tensor], num_on_demand: int = 0) -> object:
        requested.append(num_on_demand)
        return original(features, num_on_demand)

    monkeypatch.setattr(model.fpn, "pyramid", pyramid)
    image = [torch.randint(0, 256, (3, 128, 160)).float()]
    model.train()(image)
    model.eval()(image)  # autograd on: gradients could be wanted
    with torch.no_grad():
        model(image)
    assert requested == [0, 0, 2]


def test_build_refuses_deferring_every_level() -> None:
    cfg = get_preset("tiny")
    cfg.model.fpn_on_demand_levels = 4
    with pytest.raises(ValueError, match="fpn_on_demand_levels must be 0-3"):
        build_model(cfg)
