"""Tests of the assembled detector: sizes, parameter counts, gradients, stage semantics."""

from __future__ import annotations

import math

import pytest
import torch

from sparsercnn import build_model, get_preset
from sparsercnn.config import ModelConfig
from sparsercnn.structures import ImageBatch


def tiny_model(**overrides: object) -> torch.nn.Module:
    cfg = get_preset("tiny")
    for key, value in overrides.items():
        setattr(cfg.model, key, value)
    return build_model(cfg, num_classes=3)


@pytest.mark.parametrize(
    ("depth", "num_proposals", "expected"),
    [
        (50, 100, 106_290_888),
        (50, 300, 106_342_888),
        (101, 100, 125_283_016),
        (101, 300, 125_335_016),
    ],
)
def test_parameter_count_matches_spec(depth: int, num_proposals: int, expected: int) -> None:
    model = build_model(ModelConfig(backbone_depth=depth, num_proposals=num_proposals))
    assert count_parameters(model) == expected


def count_parameters(module: torch.nn.Module) -> int:
    """Parameters plus norm affine buffers (FrozenBN weight/bias), not running statistics: how
    spec 5.3 counts."""
    total = sum(p.numel() for p in module.parameters())
    for name, buffer in module.named_buffers():
        if name.rsplit(".", 1)[-1] in ("weight", "bias"):
            total += buffer.numel()
    return total


def test_head_stage_parameter_count() -> None:
    model = build_model("r50_100pro_3x")
    stage = model.head.stages[0]
    assert sum(p.numel() for p in stage.parameters()) == 13_235_412
    assert len(stage.state_dict()) == 40  # spec 11.5: 40 keys per stage


def test_forward_shapes_on_images_of_different_sizes() -> None:
    model = tiny_model().eval()
    images = [torch.randint(0, 256, (3, 100, 140), dtype=torch.uint8), torch.rand(3, 90, 64) * 255]
    with torch.no_grad():
        output = model(images)
    assert len(output.stages) == 2
    assert output.image_sizes.tolist() == [[100, 140], [90, 64]]
    for stage in output.stages:
        assert stage.logits.shape == (2, 16, 3)
        assert stage.boxes.shape == (2, 16, 4)
        assert torch.isfinite(stage.boxes).all()
    # "image" init: proposals are the whole unpadded image.
    assert output.proposal_boxes[0, 0].tolist() == [0.0, 0.0, 140.0, 100.0]
    assert output.proposal_boxes[1, 0].tolist() == [0.0, 0.0, 64.0, 90.0]


def test_padding_is_to_multiple_of_32_and_zero_after_normalisation() -> None:
    model = tiny_model()
    batch = model.preprocess([torch.full((3, 33, 70), 255, dtype=torch.uint8)])
    assert batch.tensor.shape == (1, 3, 64, 96)
    assert batch.tensor[0, :, 33:, :].abs().sum() == 0
    assert batch.tensor[0, :, :, 70:].abs().sum() == 0
    expected = (255 - 123.675) / 58.395
    assert batch.tensor[0, 0, 0, 0].item() == pytest.approx(expected)


def test_images_in_a_batch_do_not_interact() -> None:
    # Same-size images (identical padding): each image's output equals running it alone, so
    # self-attention, RoIAlign and the dynamic parameters never mix images.
    model = tiny_model().eval()
    torch.manual_seed(0)
    a, b = torch.rand(3, 96, 128) * 255, torch.rand(3, 96, 128) * 255
    with torch.no_grad():
        both = model([a, b])
        single = model([b])
    torch.testing.assert_close(both.last.boxes[1], single.last.boxes[0], atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(both.last.logits[1], single.last.logits[0], atol=1e-4, rtol=1e-4)


def test_every_trainable_parameter_gets_a_gradient_and_no_nan() -> None:
    model = tiny_model(freeze_at=0)
    model.train()
    output = model([torch.rand(3, 96, 96) * 255, torch.rand(3, 64, 96) * 255])
    loss = sum(s.logits.sum() + s.boxes.sum() * 1e-3 for s in output.stages)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
    assert model.proposals.boxes.weight.grad.abs().sum() > 0


def test_boxes_into_next_stage_carry_no_gradient() -> None:
    model = tiny_model(freeze_at=0)
    output = model([torch.rand(3, 64, 64) * 255])
    # A loss on stage-1 boxes must not reach stage 0's box regressor (boxes are detached) ...
    output.stages[1].boxes.sum().backward()
    assert model.head.stages[0].box_deltas.weight.grad is None
    # ... but features flow on: stage 0's attention receives gradient through stage 1.
    assert model.head.stages[0].ffn_linear2.weight.grad is not None


def test_initialisation_by_parameter_name() -> None:
    model = build_model(
        ModelConfig(
            num_classes=4, hidden_dim=64, fpn_dim=64, num_heads=8, ffn_dim=128, backbone_depth=18
        )
    )
    prior_bias = -math.log((1 - 0.01) / 0.01)
    for stage in model.head.stages:
        assert torch.allclose(stage.class_logits.bias, torch.full((4,), prior_bias))
        # The official quirk would also overwrite 4-element biases elsewhere: we do not.
        assert not torch.allclose(stage.box_deltas.bias, torch.full((4,), prior_bias))
        bound = math.sqrt(6 / (64 + 4))
        assert stage.class_logits.weight.abs().max() <= bound
    assert torch.equal(
        model.proposals.boxes.weight, torch.tensor([[0.5, 0.5, 1.0, 1.0]]).repeat(100, 1)
    )
    # Stages are initialised independently (unshared weights).
    assert not torch.equal(
        model.head.stages[0].ffn_linear1.weight, model.head.stages[1].ffn_linear1.weight
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"use_self_attention": False},
        {"use_dynamic_conv": False},
        {"reuse_features": False},
        {"box_positional_encoding": True},
        {"proposal_init": "grid"},
        {"proposal_init": "center"},
        {"proposal_init": "random"},
        {"box_delta_clamp": "mmdet"},
        {"num_stages": 1},
    ],
)
def test_ablation_switches_build_and_run(overrides: dict[str, object]) -> None:
    model = tiny_model(**overrides)
    output = model([torch.rand(3, 64, 80) * 255])
    assert len(output.stages) == model.num_stages
    assert torch.isfinite(output.last.boxes).all()
    if overrides.get("use_self_attention") is False:
        assert model.head.stages[0].self_attn is None


def test_reuse_features_off_feeds_learned_features_to_every_stage() -> None:
    on = tiny_model(reuse_features=True)
    off = tiny_model(reuse_features=False)
    off.load_state_dict(on.state_dict())
    image = [torch.rand(3, 64, 64) * 255]
    with torch.no_grad():
        out_on, out_off = on(image), off(image)
    torch.testing.assert_close(out_on.stages[0].logits, out_off.stages[0].logits)
    assert not torch.allclose(out_on.stages[1].logits, out_off.stages[1].logits)


def test_running_fewer_stages_returns_those_stages() -> None:
    model = tiny_model(num_stages=3).eval()
    image = [torch.rand(3, 64, 64) * 255]
    with torch.no_grad():
        full = model(image)
        first_two = model(image, num_stages=2)
    assert len(first_two.stages) == 2
    torch.testing.assert_close(first_two.stages[1].boxes, full.stages[1].boxes)
    with pytest.raises(ValueError, match="num_stages"):
        model(image, num_stages=4)


def test_accepts_an_image_batch_and_rejects_bad_images() -> None:
    model = tiny_model().eval()
    batch = ImageBatch.from_tensors([torch.zeros(3, 64, 64)])
    with torch.no_grad():
        assert len(model(batch).stages) == 2
    with pytest.raises(ValueError, match=r"image 0: expected a \(3, H, W\)"):
        model([torch.zeros(1, 64, 64)])


def test_bad_config_combinations_raise() -> None:
    # Widths set after construction (as presets do) skip ModelConfig's own check: the build
    # checks them again, with the same message.
    cfg = ModelConfig(backbone_depth=18)
    cfg.fpn_dim = 128
    with pytest.raises(ValueError, match=r"model.fpn_dim \(128\) must equal model.hidden_dim"):
        build_model(cfg)
    cfg = ModelConfig(backbone_depth=18)
    cfg.num_heads = 7
    with pytest.raises(ValueError, match=r"multiple of model.num_heads \(7\).*num_heads=4$"):
        build_model(cfg)
    with pytest.raises(ValueError, match="num_heads"):
        ModelConfig(hidden_dim=256, num_heads=7, backbone_depth=18)
