"""Starting training from published weights: new class sets, ImageNet backbones, freezing."""

from __future__ import annotations

import math
import shlex
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from sparsercnn.config import Config, ModelConfig
from sparsercnn.data.categories import CategoryMap
from sparsercnn.loss import build_criterion
from sparsercnn.model import build_model
from sparsercnn.presets import get_preset
from sparsercnn.structures import Target
from sparsercnn.weights.convert import convert_checkpoint, save_converted
from sparsercnn.weights.finetune import (
    freeze_all_but_class_logits,
    freeze_backbone,
    init_from_checkpoint,
    load_backbone_weights,
    other_architecture_error,
)
from tests.weights.reference_checkpoints import ReferencePair

PRIOR_BIAS = -math.log((1 - 0.01) / 0.01)


def test_three_classes_from_an_80_class_checkpoint(
    tiny_files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    source = convert_checkpoint(tiny_files["official"])
    # A model for a 3-class data set, trained with ordinary BatchNorm: counters get synthesised.
    cfg = Config(model=replace(source.config.model, num_classes=3, backbone_norm="bn"))
    torch.manual_seed(0)
    model = build_model(cfg)
    with caplog.at_level("INFO"):
        reinitialised = init_from_checkpoint(model, tiny_files["official"])
    assert sorted(reinitialised) == sorted(
        f"head.stages.{s}.class_logits.{p}" for s in range(2) for p in ("weight", "bias")
    )
    assert "re-initialised for 3 classes (the checkpoint has 80)" in caplog.text
    loaded = {k: v.clone() for k, v in model.state_dict().items()}
    for key, value in source.state_dict.items():
        if key not in reinitialised:
            assert torch.equal(loaded[key], value), key
    assert torch.allclose(loaded["head.stages.1.class_logits.bias"], torch.full((3,), PRIOR_BIAS))

    trainable = freeze_all_but_class_logits(model)
    assert sorted(trainable) == sorted(reinitialised)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    image = torch.rand(3, 64, 80, generator=torch.Generator().manual_seed(2)) * 255
    target = Target(boxes=torch.tensor([[4.0, 6.0, 40.0, 50.0]]), labels=torch.tensor([2]))
    loss = build_criterion(cfg)(model([image]), [target])
    assert torch.isfinite(loss.total)
    loss.total.backward()
    optimizer.step()

    after = model.state_dict()
    for key, value in source.state_dict.items():
        if key not in reinitialised:
            assert torch.equal(after[key], value), key  # BatchNorm statistics included
    assert not torch.equal(
        after["head.stages.0.class_logits.weight"], loaded["head.stages.0.class_logits.weight"]
    )


def test_same_classes_load_everything(tiny_files: dict[str, Path]) -> None:
    source = convert_checkpoint(tiny_files["mmdet"])
    model = build_model(source.config)
    assert init_from_checkpoint(model, tiny_files["mmdet"].as_uri()) == []
    assert all(torch.equal(model.state_dict()[k], v) for k, v in source.state_dict.items())


def test_class_logits_follow_the_class_names(
    model_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A model file's classes (cat, dog) onto another set of the same size: each row moves to
    the class of its name and the rest are re-initialised, not reused by position."""
    source = convert_checkpoint(model_file)
    source_weight, source_bias = (
        source.state_dict[f"head.stages.0.class_logits.{p}"] for p in ("weight", "bias")
    )
    for names, kept in ((["dog", "cat"], [1, 0]), (["dog", "fox"], [1, None])):
        model = build_model(source.config)
        with caplog.at_level("INFO"):
            reset = init_from_checkpoint(model, model_file, categories=CategoryMap([5, 9], names))
        assert len(reset) == 2 * source.config.model.num_stages
        weight, bias = (
            model.head.stages[0].class_logits.weight,
            model.head.stages[0].class_logits.bias,
        )
        for row, source_row in enumerate(kept):
            if source_row is None:
                assert bias[row].item() == pytest.approx(PRIOR_BIAS)
            else:
                assert torch.equal(weight[row], source_weight[source_row])
                assert torch.equal(bias[row], source_bias[source_row])
    assert "those of dog kept from the checkpoint's class of that name" in caplog.text
    # The same number of classes: their names say why the logits were re-initialised.
    assert "re-initialised for 2 classes (the checkpoint has 2: cat, dog)" in caplog.text
    model = build_model(source.config)
    same = CategoryMap([30, 70], ["cat", "dog"])  # other ids, same names: everything loads
    assert init_from_checkpoint(model, model_file, categories=same) == []


def test_other_architecture_is_an_error(tiny_files: dict[str, Path]) -> None:
    """The message names the settings that differ and the --set that makes them fit."""
    cfg = convert_checkpoint(tiny_files["official"]).config
    model = build_model(Config(model=replace(cfg.model, num_proposals=5, ffn_dim=16)))
    with pytest.raises(ValueError) as info:
        init_from_checkpoint(model, tiny_files["official"])
    message = str(info.value)
    assert "r18_official.pth is a model of another architecture: num_proposals 8 (the" in message
    assert "ffn_dim 64 (the model: 16)" in message
    assert "--set model.num_proposals=8 model.ffn_dim=64, or with --preset auto" in message
    assert "proposals.boxes.weight: file (8, 4) vs model (5, 4)" in str(info.value.__cause__)


def test_the_set_of_another_architecture_can_be_pasted_into_a_shell() -> None:
    """The --set was built on its own, without a shell's quoting (a list's ``[1, 2]`` is two
    words there): it is the config's (``override_arguments``), and gives the values back."""
    differences: list[tuple[str, object, object]] = [
        ("num_proposals", 8, 5),
        ("use_self_attention", False, True),
    ]
    message = str(other_architecture_error("r18 official.pth", differences))
    given = message.partition("--set ")[2].partition(", or with --preset auto")[0]
    model = Config().apply_overrides(shlex.split(given)).model
    assert (model.num_proposals, model.use_self_attention) == (8, False)


def _torchvision_resnet18(pair: ReferencePair) -> dict[str, torch.Tensor]:
    """torchvision's names: mmdetection's backbone keys without the prefix, plus ``fc``."""
    tensors = {
        k.removeprefix("backbone."): v for k, v in pair.mmdet.items() if k.startswith("backbone.")
    }
    tensors["fc.weight"] = torch.zeros(1000, 512)
    tensors["fc.bias"] = torch.zeros(1000)
    return tensors


@pytest.mark.parametrize("through_convert", [False, True])
@pytest.mark.parametrize("norm", ["frozen_bn", "bn"])
def test_torchvision_backbone_loads_without_missing_keys(
    tmp_path: Path, tiny_pair: ReferencePair, norm: str, through_convert: bool
) -> None:
    tensors = _torchvision_resnet18(tiny_pair)
    path = tmp_path / "resnet18.pth"
    torch.save(tensors, path)
    if through_convert:
        path = save_converted(path, tmp_path / "resnet18.safetensors")
    cfg = get_preset("tiny")
    cfg.model.backbone_width = 64  # torchvision's ResNet-18 (tiny's is an eighth as wide)
    cfg.model.backbone_norm = norm
    model = build_model(cfg)
    load_backbone_weights(model, path)
    loaded = model.backbone.state_dict()
    for key, value in loaded.items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, tensors[key]), key


def _torchvision_resnet(depth: int, width: int) -> dict[str, torch.Tensor]:
    """A ResNet's weights in torchvision's names (ours without ``backbone.``), a narrow one."""
    model = build_model(Config(model=ModelConfig(backbone_depth=depth, backbone_width=width)))
    return {k: v for k, v in model.backbone.state_dict().items() if "num_batches" not in k}


def test_backbone_depth_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "resnet50.pth"
    torch.save(_torchvision_resnet(50, 8), path)
    with pytest.raises(
        ValueError, match="holds a ResNet-50 but the model's backbone is a ResNet-18"
    ):
        load_backbone_weights(build_model("tiny"), path)


def test_an_incomplete_resnet_is_refused_by_convert_naming_the_key(tmp_path: Path) -> None:
    """A torchvision ResNet is checked strictly when converted, not only when used."""
    tensors = _torchvision_resnet(50, 8)
    del tensors["layer4.2.conv3.weight"]
    src, dst = tmp_path / "resnet50.pth", tmp_path / "resnet50.safetensors"
    torch.save(tensors, src)
    with pytest.raises(ValueError, match=r"does not fit the model: missing keys: layer4\.2\.conv3"):
        save_converted(src, dst)
    assert not dst.exists()


def test_backbone_width_mismatch(tmp_path: Path, tiny_pair: ReferencePair) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(_torchvision_resnet18(tiny_pair), path)
    cfg = get_preset("tiny")
    cfg.model.backbone_width = 32
    with pytest.raises(ValueError, match="width 64 but the model's backbone has width 32"):
        load_backbone_weights(build_model(cfg), path)


def test_freeze_backbone_survives_train_mode() -> None:
    model = build_model("tiny")  # ordinary BatchNorm, nothing frozen
    freeze_backbone(model)
    model.train()
    batch_norms = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert batch_norms and not any(m.training for m in batch_norms)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert not any(p.requires_grad for p in model.fpn.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
