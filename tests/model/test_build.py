"""``build_model`` and ``build_postprocessor``: the same config arguments, and one clear error
for a bad one, whether it was given to the builder or set on the config afterwards."""

from __future__ import annotations

import pytest

from sparsercnn.model import PostProcessor, build_model, build_postprocessor
from sparsercnn.presets import get_preset


@pytest.mark.parametrize(
    ("key", "value"), [("num_classes", 0), ("num_proposals", 0), ("hidden_dim", 0)]
)
def test_a_value_set_on_the_config_is_checked_when_building(key: str, value: int) -> None:
    """``cfg.model.num_classes = 0`` (the README's way of setting it) built a model with no
    class logits: assignments skip ModelConfig's own checks."""
    cfg = get_preset("tiny")
    setattr(cfg.model, key, value)
    with pytest.raises(ValueError, match=f"model.{key} must be >= 1, got 0"):
        build_model(cfg)


@pytest.mark.parametrize("num_classes", [0, 2.5, "3", True])
def test_num_classes_must_be_a_positive_integer(num_classes: object) -> None:
    with pytest.raises(
        ValueError, match=f"num_classes must be an integer >= 1, got {num_classes!r}"
    ):
        build_model("tiny", num_classes=num_classes)  # type: ignore[arg-type]


def test_num_classes_overrides_without_changing_the_config() -> None:
    cfg = get_preset("tiny")
    model = build_model(cfg, num_classes=5)
    assert model.head.stages[0].class_logits.out_features == 5
    assert cfg.model.num_classes != 5


@pytest.mark.parametrize("config", [None, 3, {"model": {}}])
def test_a_config_of_another_type_is_a_type_error(config: object) -> None:
    """Was "AttributeError: 'dict' object has no attribute 'check_widths'"."""
    for build in (build_model, build_postprocessor):
        with pytest.raises(
            TypeError, match=r"config must be a preset name .* a Config or a ModelConfig"
        ):
            build(config)  # type: ignore[arg-type]


def test_the_postprocessor_takes_a_preset_name_as_build_model_does() -> None:
    cfg = get_preset("r50_300pro_3x")
    by_name = build_postprocessor("r50_300pro_3x")
    assert isinstance(by_name, PostProcessor)
    assert vars(by_name) == vars(build_postprocessor(cfg)) == vars(build_postprocessor(cfg.model))
