"""Config overrides, serialisation round trips and presets."""

from __future__ import annotations

import json
import logging
import shlex
from pathlib import Path

import pytest

from sparsercnn.config import (
    BACKBONE_DEPTHS,
    NUM_FREEZABLE_PARTS,
    Config,
    log_schedule_notes,
    override_arguments,
    override_value,
)
from sparsercnn.model import backbone
from sparsercnn.presets import PRESETS, get_preset


def test_round_trip_through_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = get_preset("r50_300pro_3x")
    path = tmp_path / "config.json"
    path.write_text(cfg.to_json())
    assert Config.load(path) == cfg


def test_overrides_parse_values_and_reject_unknown_keys() -> None:
    cfg = get_preset("demo").apply_overrides(
        [
            "model.num_proposals=300",
            "train.steps=[10,20]",
            "input.crop=true",
            "model.backbone_norm=bn_eval",
        ]
    )
    assert cfg.model.num_proposals == 300
    assert cfg.train.steps == (10, 20)
    assert cfg.input.crop is True
    assert cfg.model.backbone_norm == "bn_eval"
    with pytest.raises(ValueError, match=r"unknown config key 'model\.num_proposal'"):
        cfg.apply_overrides(["model.num_proposal=3"])
    with pytest.raises(ValueError, match=r"section\.key=value"):
        cfg.apply_overrides(["num_proposals=3"])
    with pytest.raises(ValueError, match="expects an integer"):
        cfg.apply_overrides(["model.num_proposals=1.5"])
    with pytest.raises(ValueError, match="must be one of"):
        cfg.apply_overrides(["model.backbone_norm=group"])


def test_differences_list_the_changed_values_in_field_order() -> None:
    cfg = get_preset("demo")
    changed = cfg.apply_overrides(["train.seed=7", "input.crop=true", "train.steps=[5,9]"])
    assert list(cfg.differences(changed)) == ["input.crop", "train.steps", "train.seed"]
    assert cfg.differences(changed)["train.steps"] == (cfg.train.steps, (5, 9))
    assert cfg.differences(cfg.apply_overrides([f"train.seed={cfg.train.seed}"])) == {}


def test_set_arguments_survive_a_shell_and_give_the_values_back() -> None:
    """``--set`` arguments in messages are pasted into a shell: ``model.steps=[1, 2]`` is two
    words there, and a list or a string in brackets or quotes needs quoting."""
    values = {
        "train.steps": [2400, 2800],
        "train.max_iter": 6,
        "train.scale_lr": False,
        "model.backbone_norm": "bn",
        "train.init_from": "my weights/model (old).pth",
    }
    arguments = override_arguments(values)
    assert arguments.startswith("'train.steps=[2400,2800]' train.max_iter=6 train.scale_lr=false ")
    config = Config().apply_overrides(shlex.split(arguments))
    assert config.train.steps == (2400, 2800) and config.train.max_iter == 6
    assert config.train.scale_lr is False and config.model.backbone_norm == "bn"
    assert config.train.init_from == "my weights/model (old).pth"
    assert override_value((1, 2)) == "[1,2]"


def test_override_errors_suggest_the_near_miss() -> None:
    cfg = get_preset("tiny")
    with pytest.raises(ValueError, match=r"\(did you mean 'model\.num_proposals'\?\)"):
        cfg.apply_overrides(["model.num_proposal=3"])
    with pytest.raises(ValueError, match=r"unknown section 'modle' \(did you mean 'model'\?\)"):
        cfg.apply_overrides(["modle.num_proposals=3"])
    with pytest.raises(ValueError, match=r"bad override 'train\.max_iter': expected"):
        cfg.apply_overrides(["train.max_iter"])
    with pytest.raises(ValueError) as info:
        cfg.apply_overrides(["train.zzz=1"])
    assert "did you mean" not in str(info.value) and "\n" not in str(info.value)


def test_presets_are_fresh_and_faithful() -> None:
    assert set(PRESETS) >= {
        "r50_100pro_3x",
        "r50_300pro_3x",
        "r101_100pro_3x",
        "r101_300pro_3x",
        "demo",
    }
    a, b = get_preset("demo"), get_preset("demo")
    a.model.num_proposals = 1
    assert b.model.num_proposals != 1
    r50 = get_preset("r50_300pro_3x")
    assert (r50.model.num_proposals, r50.input.crop, r50.model.backbone_depth) == (300, True, 50)
    assert (
        r50.train.lr == 2.5e-5
        and r50.train.max_iter == 270_000
        and r50.train.steps == (210_000, 250_000)
    )
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("r50")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.max_iter=0", "train.max_iter must be >= 1, got 0"),
        ("train.batch_size=-1", "train.batch_size must be >= 1, got -1"),
        ("train.num_workers=-2", "train.num_workers must be >= 0, got -2"),
        ("train.image_cache_mb=-1", "train.image_cache_mb must be >= 0, got -1"),
        ("input.test_batch_size=0", "input.test_batch_size must be >= 1, got 0"),
        ("input.crop_prob=1.5", r"input.crop_prob must be in \[0, 1\], got 1.5"),
        ("input.flip_prob=-0.1", r"input.flip_prob must be in \[0, 1\], got -0.1"),
        ("train.lr=-1", "train.lr must be a number > 0, got -1"),
        ("train.weight_decay=-0.5", "train.weight_decay must be a number >= 0, got -0.5"),
        # Training sizes of 0 trained on 1x1-pixel images, with exit 0.
        ("input.train_max_size=0", "input.train_max_size must be >= 1, got 0"),
        ("input.train_min_sizes=[0]", r"input.train_min_sizes must list sizes >= 1, got \[0\]"),
        ("input.train_min_sizes=[]", r"input.train_min_sizes must list sizes >= 1, got \[\]"),
        ("input.crop_pre_sizes=[-1]", r"input.crop_pre_sizes must list sizes >= 1"),
        ("input.crop_size=[600,384]", r"input.crop_size must be \[min, max\] with 1 <= min"),
        # A negative gamma made the learning rate negative after the first decay.
        ("train.gamma=-1", r"train.gamma must be in \(0, 1\], got -1"),
        ("train.warmup_iters=-5", "train.warmup_iters must be >= 0, got -5"),
        ("train.warmup_factor=2", r"train.warmup_factor must be in \[0, 1\], got 2"),
        ("train.steps=[0,5]", r"train.steps must be iterations >= 1, got \[0, 5\]"),
        ("model.num_proposals=0", "model.num_proposals must be >= 1, got 0"),
        ("model.size_divisibility=0", "model.size_divisibility must be >= 1, got 0"),
        ("model.prior_prob=0", r"model.prior_prob must be in \(0, 1\), got 0"),
        ("model.dropout=1", r"model.dropout must be in \[0, 1\), got 1"),
        ("loss.giou_weight=-2", r"loss.giou_weight must be in \[0, inf\], got -2"),
        ("loss.focal_alpha=2", r"loss.focal_alpha must be in \[0, 1\], got 2"),
        # A list of 2 failed in the model's build (RuntimeError); a std of 0 gave inf inputs.
        ("model.pixel_mean=[1,2]", r"'model.pixel_mean' expects 3 values, got \[1, 2\]"),
        ("model.pixel_std=[0,1,1]", r"model.pixel_std finite and > 0, got .*\[0.0, 1.0, 1.0\]"),
        ("input.crop_size=[1,2,3]", r"'input.crop_size' expects 2 values"),
        # Refused by the model's build, after the whole training set had been decoded.
        ("model.backbone_depth=42", r"model.backbone_depth must be one of \[18, 34, 50, 101\]"),
        ("model.freeze_at=9", r"model.freeze_at must be in \[0, 5\], got 9"),
        ("model.fpn_on_demand_levels=4", r"model.fpn_on_demand_levels must be in \[0, 3\]"),
        # The schedule sorted them silently; detectron2 refuses.
        ("train.steps=[900,800]", r"train.steps must be in increasing order, got \[900, 800\]"),
    ],
)
def test_values_out_of_range_are_refused_naming_the_key(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_preset("tiny").apply_overrides([override])


def test_model_widths_are_refused_before_the_build_naming_keys_and_values() -> None:
    """An FPN width other than the head's, or a head width the attention heads do not divide,
    failed only in the model's build, after the training set had been decoded."""
    with pytest.raises(ValueError) as info:
        get_preset("demo").apply_overrides(["model.hidden_dim=250"])
    message = str(info.value)
    assert "model.fpn_dim (64) must equal model.hidden_dim (250)" in message
    assert "model.hidden_dim (250) must be a multiple of model.num_heads (4)" in message
    assert "model.hidden_dim=252 or model.num_heads=2" in message and "\n" not in message
    with pytest.raises(ValueError, match=r"model.hidden_dim=33 or model.num_heads=2$"):
        get_preset("tiny").apply_overrides(["model.num_heads=3"])
    ok = get_preset("tiny").apply_overrides(["model.hidden_dim=48", "model.fpn_dim=48"])
    assert (ok.model.hidden_dim, ok.model.fpn_dim, ok.model.num_heads) == (48, 48, 2)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_passes_the_configs_checks(name: str) -> None:
    """Presets set widths after construction (:func:`~sparsercnn.presets.medium`): what they end
    with passes the checks a config file of theirs would get."""
    cfg = get_preset(name)
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_aspect_ratio_grouping_is_on_by_default_and_overridable(tmp_path: Path) -> None:
    """Both references group batches by orientation (spec 1.4); ``--set`` turns it off, and
    the choice travels through config.json."""
    assert Config().train.aspect_ratio_grouping is True
    assert all(get_preset(name).train.aspect_ratio_grouping for name in PRESETS)
    off = Config().apply_overrides(["train.aspect_ratio_grouping=false"])
    assert off.train.aspect_ratio_grouping is False
    path = tmp_path / "config.json"
    path.write_text(off.to_json())
    assert Config.load(path).train.aspect_ratio_grouping is False
    with pytest.raises(ValueError, match=r"'train\.aspect_ratio_grouping' expects true/false"):
        Config().apply_overrides(["train.aspect_ratio_grouping=1"])


def test_a_run_saved_before_grouping_existed_reads_as_ungrouped(tmp_path: Path) -> None:
    """A config.json (or checkpoint) a run wrote before ``train.aspect_ratio_grouping`` existed
    trained without it: read as that run's, it continues so; a config given by hand takes the
    default."""
    data = Config().to_dict()
    del data["train"]["aspect_ratio_grouping"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    assert Config.load(path, of_run=True).train.aspect_ratio_grouping is False
    assert Config.load(path).train.aspect_ratio_grouping is True
    assert Config.from_run_dict(Config().to_dict()).train.aspect_ratio_grouping is True


def test_the_configs_backbone_limits_are_the_backbones() -> None:
    assert set(BACKBONE_DEPTHS) == set(backbone.ARCHITECTURES)
    assert NUM_FREEZABLE_PARTS == backbone.NUM_FREEZABLE_PARTS


def test_config_file_errors_name_the_line_and_the_near_miss(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{\n  "model": {"num_classes": 3,},\n}\n')
    with pytest.raises(ValueError, match=r"line 2 column 30: .*no comments or trailing commas"):
        Config.load(path)
    path.write_text(json.dumps({"model": {"num_proposal": 5}}))
    with pytest.raises(ValueError) as info:
        Config.load(path)
    message = str(info.value)
    assert "unknown config key(s) 'model.num_proposal'" in message
    assert "(did you mean 'model.num_proposals'?)" in message and "\n" not in message
    path.write_text(json.dumps({"trian": {}}))
    with pytest.raises(ValueError, match=r"'trian' \(did you mean 'train'\?\); valid sections"):
        Config.load(path)


def test_a_partial_config_file_takes_the_defaults(tmp_path: Path) -> None:
    """What ``--config``'s help says: keys left out take ``Config()``'s values, which are
    the r50_100pro_3x preset's."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model": {"num_classes": 3}}))
    cfg = Config.load(path)
    assert cfg.differences(get_preset("r50_100pro_3x")) == {"model.num_classes": (3, 80)}


def test_schedule_notes_say_what_max_iter_cuts_off() -> None:
    assert Config().train.schedule_notes() == []
    assert get_preset("small").train.schedule_notes() == []
    cut = get_preset("small").apply_overrides(["train.max_iter=40"]).train
    steps, warmup = cut.schedule_notes()
    assert "train.steps [2400, 2800] are not before train.max_iter=40" in steps
    assert "train.warmup_iters=50 is more than train.max_iter=40" in warmup
    # The last iteration taken is max_iter - 1: a step at max_iter never applies.
    (at_end,) = (
        Config()
        .apply_overrides(["train.steps=[10,20]", "train.max_iter=20", "train.warmup_iters=5"])
        .train.schedule_notes()
    )
    assert "[20]" in at_end


def test_the_schedule_notes_are_logged_by_one_helper(caplog: pytest.LogCaptureFixture) -> None:
    """The command, the resume check and the trainer each wrote this loop."""
    cut = get_preset("small").apply_overrides(["train.max_iter=40"]).train
    with caplog.at_level(logging.WARNING, logger="sparsercnn.config"):
        log_schedule_notes(cut)
        log_schedule_notes(Config().train)
    assert [r.getMessage() for r in caplog.records] == cut.schedule_notes()
    assert {r.levelno for r in caplog.records} == {logging.WARNING}


def test_a_run_saved_with_steps_out_of_order_still_reads(tmp_path: Path) -> None:
    """Steps out of order were accepted (and sorted by the schedule) before they were refused:
    such a run's config.json still resumes, with the steps it trained with."""
    data = Config().to_dict()
    data["train"]["steps"] = [250_000, 210_000]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    assert Config.load(path, of_run=True).train.steps == (210_000, 250_000)
    with pytest.raises(ValueError, match=r"train\.steps must be in increasing order"):
        Config.load(path)
