"""Conversion on small real tensors: bit-exact round trips, official = mmdetection outputs."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from sparsercnn.cli import convert as convert_cli
from sparsercnn.data.categories import CategoryMap
from sparsercnn.engine.checkpoint import save_training_checkpoint
from sparsercnn.model import build_model, build_postprocessor
from sparsercnn.model_file import load_model_file, load_state_dict_strict, model_state_dict
from sparsercnn.ops.boxes import clip_boxes
from sparsercnn.presets import get_preset
from sparsercnn.safetensors_file import DIGEST_KEY
from sparsercnn.weights.convert import (
    COCO_CATEGORIES,
    backbone_state_dict,
    check_backbone,
    coco_categories,
    convert_checkpoint,
    export_state_dict,
    save_converted,
)
from tests.damaged_safetensors import flip_a_tensor_byte
from tests.denied_file import deny_reading
from tests.weights.reference_checkpoints import (
    COCO_CLASSES,
    R50_100,
    TINY,
    ReferencePair,
    make_pair,
    save_mmdet,
    save_official,
)
from tests.weights.weights_server import WeightsServer


def test_coco_table() -> None:
    ids = [i for i, _ in COCO_CATEGORIES]
    assert len(ids) == 80 and ids == sorted(set(ids)) and ids[0] == 1 and ids[-1] == 90
    assert coco_categories().names == list(COCO_CLASSES)
    assert coco_categories().category_ids[11] == 13  # "stop sign": the first gap


@pytest.mark.parametrize("layout", ["official", "mmdet"])
def test_round_trip_is_bit_exact(
    tmp_path: Path, tiny_files: dict[str, Path], tiny_pair: ReferencePair, layout: str
) -> None:
    """reference -> our safetensors file -> reference names: every tensor bit for bit."""
    loaded = load_model_file(save_converted(tiny_files[layout], tmp_path / "model.safetensors"))
    assert loaded.categories == coco_categories()
    assert loaded.config.model.box_delta_clamp == layout
    source = tiny_pair.official if layout == "official" else tiny_pair.mmdet
    exported = export_state_dict(model_state_dict(loaded.model), layout)
    assert set(exported) == set(source)
    for key, value in source.items():
        assert exported[key].dtype == value.dtype, key
        assert torch.equal(exported[key], value), key


def _outputs(path: Path, image: torch.Tensor) -> tuple[object, object]:
    converted = convert_checkpoint(path)
    model = build_model(converted.config)
    load_state_dict_strict(model, converted.state_dict, str(path))
    model.eval()
    with torch.no_grad():
        output = model([image])
    detections = build_postprocessor(converted.config)(output, [(90, 120)])
    return output, detections[0]


def test_official_and_mmdet_give_the_same_outputs(tiny_files: dict[str, Path]) -> None:
    image = torch.rand(3, 72, 96, generator=torch.Generator().manual_seed(1)) * 255
    official, official_dets = _outputs(tiny_files["official"], image)
    mmdet, mmdet_dets = _outputs(tiny_files["mmdet"], image)
    for a, b in zip(official.stages, mmdet.stages, strict=True):
        # FrozenBN vs eval-mode BatchNorm: the same arithmetic, rounded differently.
        torch.testing.assert_close(a.logits, b.logits, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(a.boxes, b.boxes, rtol=1e-4, atol=1e-3)
    # The documented difference (spec 8, 12): official clips to the image, mmdetection does not.
    raw = mmdet_dets["boxes"]
    outside = (raw[:, :2] < 0).any() | (raw[:, 2] > 120).any() | (raw[:, 3] > 90).any()
    assert outside, "the test image should produce boxes crossing the border"
    assert len(official_dets["boxes"]) == len(raw)
    torch.testing.assert_close(official_dets["boxes"], clip_boxes(raw, 90, 120), atol=1e-3, rtol=0)
    torch.testing.assert_close(official_dets["scores"], mmdet_dets["scores"], atol=1e-4, rtol=0)
    assert torch.equal(official_dets["labels"], mmdet_dets["labels"])


def test_missing_and_misshaped_keys_are_listed_in_the_files_names(
    tmp_path: Path, tiny_pair: ReferencePair
) -> None:
    tensors = dict(tiny_pair.official)
    del tensors["head.head_series.1.norm3.bias"]
    with pytest.raises(ValueError, match=r"missing keys: head\.head_series\.1\.norm3\.bias"):
        convert_checkpoint(save_official(tmp_path / "missing.pth", tensors))
    tensors = dict(tiny_pair.official)
    tensors["head.head_series.1.norm1.weight"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"mis-shaped keys: head\.head_series\.1\.norm1\.weight"):
        convert_checkpoint(save_official(tmp_path / "shape.pth", tensors))
    tensors = dict(tiny_pair.official)
    tensors["head.head_series.2.norm1.weight"] = torch.zeros(TINY.hidden)  # a third stage, partly
    with pytest.raises(ValueError, match=r"missing keys: head\.head_series\.2\."):
        convert_checkpoint(save_official(tmp_path / "extra.pth", tensors))


def test_a_checkpoint_missing_some_attention_tensors_names_them_as_missing(
    tmp_path: Path, tiny_pair: ReferencePair
) -> None:
    """Was: self-attention read from stage 0's in_proj alone, so a file without it was taken
    for a model without self-attention, and refused for every other attention tensor as
    "unexpected", with no word of what to do."""
    tensors = dict(tiny_pair.mmdet)
    gone = [k for k in tensors if k.startswith("roi_head.bbox_head.0.attention.attn.in_proj")]
    for key in gone:
        del tensors[key]
    with pytest.raises(ValueError) as info:
        convert_checkpoint(save_mmdet(tmp_path / "cut.pth", tensors))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'cut.pth'} does not fit the model: missing keys: ")
    assert all(key in message for key in gone) and "unexpected" not in message
    assert message.endswith(
        "not as published (damaged, cut short, or saved by modified code): "
        "download or copy it again"
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_weights_with_nan_or_infinity_are_refused_naming_the_tensor(
    tmp_path: Path, tiny_pair: ReferencePair, value: float
) -> None:
    """Was: converted and written without a word, to give NaN detections (or losses) later."""
    key = "head.head_series.1.norm1.weight"
    tensors = dict(tiny_pair.official)
    tensors[key] = tensors[key].clone()
    tensors[key][3] = value
    src, dst = tmp_path / "nan.pth", tmp_path / "nan.safetensors"
    with pytest.raises(
        ValueError,
        match=rf"^{src}: 1 tensor holds NaN or infinite values "
        rf"\({key}\): the file is damaged.*download or copy it again$",
    ):
        save_converted(save_official(src, tensors), dst)
    assert not dst.exists()
    resnet = {  # an ImageNet ResNet, in torchvision's names
        k.removeprefix("backbone."): v
        for k, v in tiny_pair.mmdet.items()
        if k.startswith("backbone.")
    }
    resnet["layer2.0.bn1.running_var"] = torch.full_like(resnet["layer2.0.bn1.running_var"], value)
    torch.save(resnet, src)
    with pytest.raises(ValueError, match=r"\(layer2\.0\.bn1\.running_var\): the file is damaged"):
        backbone_state_dict(src)


def test_stages_with_other_classes_are_named_not_the_others(
    tmp_path: Path, tiny_pair: ReferencePair
) -> None:
    """The classes are read from the first stage: one stage with another number of classes is
    named, whichever it is."""
    for stage in (0, 1):
        tensors = dict(tiny_pair.official)
        tensors[f"head.head_series.{stage}.class_logits.weight"] = torch.zeros(5, TINY.hidden)
        with pytest.raises(ValueError, match="class logits disagree") as info:
            convert_checkpoint(save_official(tmp_path / "classes.pth", tensors))
        assert f"head.head_series.{stage}.class_logits.weight: 5" in str(info.value)


def test_backbone_counters_are_dropped_or_synthesised(tmp_path: Path) -> None:
    pair = make_pair(TINY)
    # An official-layout file that nevertheless carries BatchNorm counters: dropped for FrozenBN.
    with_counters = dict(pair.official)
    with_counters["backbone.bottom_up.stem.conv1.norm.num_batches_tracked"] = torch.tensor(5)
    converted = convert_checkpoint(save_official(tmp_path / "c.pth", with_counters))
    assert not any(k.endswith("num_batches_tracked") for k in converted.state_dict)
    # An mmdetection file without counters: zeros are added for BatchNorm (bn_eval).
    without = {k: v for k, v in pair.mmdet.items() if not k.endswith("num_batches_tracked")}
    converted = convert_checkpoint(save_mmdet(tmp_path / "m.pth", without))
    assert converted.state_dict["backbone.bn1.num_batches_tracked"].item() == 0


def test_class_names_other_than_coco(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    arch = TINY.__class__(**{**TINY.__dict__, "num_classes": 3})
    pair = make_pair(arch)
    path = save_mmdet(tmp_path / "mine.pth", pair.mmdet, classes=("cat", "dog", "bird"))
    with caplog.at_level(logging.WARNING):
        converted = convert_checkpoint(path)
    assert converted.categories.names == ["cat", "dog", "bird"]
    assert converted.categories.category_ids == [1, 2, 3]
    assert "not COCO's" in caplog.text and "named class_" not in caplog.text
    path = save_mmdet(tmp_path / "wrong.pth", pair.mmdet, classes=("cat", "dog"))
    with pytest.raises(
        ValueError,
        match=r"names 2 classes but the class logits have 3 rows, .*: re-save the checkpoint "
        r"with its 3 class names there, or without its meta",
    ):
        convert_checkpoint(path)


def test_our_own_file_passes_through(tmp_path: Path, tiny_files: dict[str, Path]) -> None:
    dst = save_converted(tiny_files["mmdet"], tmp_path / "ours.safetensors")
    first = convert_checkpoint(tiny_files["mmdet"])
    again = convert_checkpoint(dst)
    assert again.config == first.config and again.categories == first.categories
    assert all(torch.equal(again.state_dict[k], v) for k, v in first.state_dict.items())


def test_our_file_whose_config_was_edited_is_blamed_not_the_user(
    tmp_path: Path, tiny_files: dict[str, Path]
) -> None:
    """``--init-from``/``convert`` of a model file whose metadata no longer fits its weights."""
    dst = save_converted(tiny_files["official"], tmp_path / "ours.safetensors")
    loaded = load_model_file(dst)
    edited = replace(loaded.config, model=replace(loaded.config.model, num_proposals=300))
    metadata = {
        "format": "sparsercnn",
        "format_version": "1",
        "config": edited.to_json(),
        "categories": json.dumps(loaded.categories.to_dict()),
    }
    save_file(model_state_dict(loaded.model), str(dst), metadata=metadata)
    with pytest.raises(ValueError) as info:
        convert_checkpoint(dst)
    message = str(info.value)
    assert message.startswith(f"{dst} does not fit the model: mis-shaped keys: proposals.")
    assert message.endswith(
        "(the file is damaged, or its metadata was edited): save, export or convert the model again"
    )


def test_torchvision_file_is_not_a_detector(tmp_path: Path, tiny_pair: ReferencePair) -> None:
    backbone = {
        k.removeprefix("backbone."): v
        for k, v in tiny_pair.mmdet.items()
        if k.startswith("backbone.")
    }
    path = tmp_path / "resnet18.pth"
    torch.save(backbone, path)
    with pytest.raises(ValueError, match="only a torchvision ResNet"):
        convert_checkpoint(path)


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    convert_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.handler(args))


def test_cli_convert(
    tmp_path: Path, tiny_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    dst = tmp_path / "out.safetensors"
    assert _cli(["convert", str(tiny_files["official"]), "--output", str(dst)]) == 0
    assert str(dst) in capsys.readouterr().out
    loaded = load_model_file(dst)
    assert loaded.config.model.backbone_depth == 18
    assert loaded.config.model.clip_boxes is True
    with pytest.raises(
        ValueError,
        match=r"r18_mmdet\.pth: \d+ keys are not part of the official layout: .*; the key "
        r"names are those of the mmdet layout: drop --from",
    ):
        _cli(["convert", str(tiny_files["mmdet"]), "--output", str(dst), "--from", "official"])


def test_cli_convert_of_a_file_the_user_may_not_read_says_so(
    tmp_path: Path, tiny_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: "[Errno 13] Permission denied: '...'", the raw OSError."""
    src, dst = tiny_files["official"], tmp_path / "out.safetensors"
    deny_reading(monkeypatch, "sparsercnn.paths", src)
    with pytest.raises(PermissionError) as raised:
        _cli(["convert", str(src), "--output", str(dst)])
    assert str(raised.value) == (
        f"SRC: checkpoint {src} cannot be read (Permission denied); check its permissions"
    )
    assert not dst.exists()


def test_cli_convert_never_replaces_its_source_and_warns_before_replacing(
    tmp_path: Path, tiny_files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "r18_official.pth"
    src.write_bytes(tiny_files["official"].read_bytes())
    with pytest.raises(ValueError, match="is the file SRC names"):
        _cli(["convert", str(src), "--output", str(src)])
    assert src.read_bytes() == tiny_files["official"].read_bytes()
    with pytest.raises(ValueError, match=r"--output .*model\.pth: .* ending in \.safetensors"):
        _cli(["convert", str(src), "--output", str(tmp_path / "model.pth")])
    assert not (tmp_path / "model.pth").exists()
    # A file:// URL names its file only once fetched; that file is not overwritten either.
    ours = save_converted(src, tmp_path / "ours.safetensors")
    before = ours.read_bytes()
    with pytest.raises(ValueError, match="is the file SRC names"):
        _cli(["convert", ours.as_uri(), "--output", str(ours)])
    assert ours.read_bytes() == before
    dst = tmp_path / "model.safetensors"
    dst.write_bytes(b"an earlier conversion")
    with caplog.at_level(logging.WARNING):
        assert _cli(["convert", src.as_uri(), "--output", str(dst)]) == 0
    assert f"--output {dst} exists: it will be replaced" in caplog.text
    assert load_model_file(dst).config.model.backbone_depth == 18


def test_bare_state_dict_in_our_names(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = build_model("tiny")
    path = tmp_path / "bare.pth"
    torch.save(model.state_dict(), path)
    with caplog.at_level(logging.WARNING):
        converted = convert_checkpoint(path)
    assert "without a config" in caplog.text
    # Was: "save models with save_model_file to keep them", a Python name to a CLI user.
    cli_way = caplog.text.index("use the model file `sparsercnn train` wrote")
    assert "model_final.safetensors" in caplog.text
    assert caplog.text.index("sparsercnn.save_model_file") > cli_way
    assert converted.config.model.backbone_norm == "bn_eval"  # it has BatchNorm counters
    assert converted.config.model.num_proposals == 16 and converted.config.model.num_stages == 2
    assert all(torch.equal(converted.state_dict[k], v) for k, v in model.state_dict().items())


def test_classes_of_a_file_without_names_are_said_to_be_named_by_number(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: "assigning category ids 1..2", not saying that predictions would read "class_1"."""
    cfg = get_preset("tiny")
    cfg.model.num_classes = 2
    path = tmp_path / "bare.pth"
    torch.save(build_model(cfg).state_dict(), path)
    with caplog.at_level(logging.WARNING):
        converted = convert_checkpoint(path)
    assert converted.categories.names == ["class_1", "class_2"]
    assert "ids 1..2 in stored order, named class_1..class_2 (the file names none)" in caplog.text


def test_a_training_checkpoint_keeps_its_config_and_label_map(tmp_path: Path) -> None:
    """A run's checkpoint_*.pt converts with the classes (ids 3 and 7, names) and the settings
    it was trained with, not ids 1..K, placeholder names and default settings."""
    cfg = get_preset("tiny")
    cfg.model.num_classes = 2
    cfg.input.test_min_size = 96
    model = build_model(cfg)
    categories = CategoryMap([3, 7], ["cat", "dog"])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    path = save_training_checkpoint(tmp_path / "run", 4, model, optimizer, None, cfg, categories)
    converted = convert_checkpoint(path)
    assert converted.categories == categories and converted.config == cfg
    assert all(torch.equal(converted.state_dict[k], v) for k, v in model.state_dict().items())
    loaded = load_model_file(save_converted(path, tmp_path / "model.safetensors"))
    assert loaded.categories == categories and loaded.config == cfg


def test_a_backbone_file_is_not_a_detector(tmp_path: Path, tiny_pair: ReferencePair) -> None:
    """What `convert` makes of a torchvision ResNet is pointed to --backbone-weights, not
    reported as a detector missing its proposals."""
    resnet = {
        k.removeprefix("backbone."): v
        for k, v in tiny_pair.mmdet.items()
        if k.startswith("backbone.")
    }
    torch.save(resnet, tmp_path / "resnet18.pth")
    backbone = save_converted(tmp_path / "resnet18.pth", tmp_path / "resnet18.safetensors")
    with pytest.raises(ValueError, match=r"resnet18\.safetensors holds only a ResNet .*--backbone"):
        convert_checkpoint(backbone)
    # Written as model files are: with the CRC-32 of its tensors, checked when it is read.
    with safe_open(str(backbone), framework="pt") as handle:
        assert DIGEST_KEY in handle.metadata()
    flip_a_tensor_byte(backbone)
    with pytest.raises(ValueError, match=r"resnet18\.safetensors is damaged: its tensor data"):
        backbone_state_dict(backbone)


def test_bare_state_dict_of_a_narrow_backbone(tmp_path: Path) -> None:
    """The ResNet's width is read from its stem, as its depth from its blocks."""
    cfg = get_preset("small")
    model = build_model(cfg)
    path = tmp_path / "bare.pth"
    torch.save(model.state_dict(), path)
    converted = convert_checkpoint(path)
    assert converted.config.model.backbone_width == cfg.model.backbone_width == 32


# The heads of a Faster R-CNN, in detectron2's and mmdetection's names (R-50-FPN, 80 classes).
FASTER_RCNN_HEADS = {
    "official": {
        "proposal_generator.rpn_head.conv.weight": (256, 256, 3, 3),
        "roi_heads.box_head.fc1.weight": (1024, 12544),
        "roi_heads.box_predictor.cls_score.weight": (81, 1024),
    },
    "mmdet": {
        "rpn_head.rpn_conv.weight": (256, 256, 3, 3),
        "roi_head.bbox_head.shared_fcs.0.weight": (1024, 12544),
        "roi_head.bbox_head.fc_cls.weight": (81, 1024),
    },
}


@pytest.mark.parametrize("layout", ["official", "mmdet"])
def test_another_detectors_checkpoint_gives_its_resnet_only(
    tmp_path: Path, tiny_pair: ReferencePair, layout: str
) -> None:
    """A Faster R-CNN is not converted (the message says what it is, not "modified code"), but
    its ResNet is backbone weights; its FPN and heads are left out."""
    tensors = tiny_pair.official if layout == "official" else tiny_pair.mmdet
    detector = {k: v for k, v in tensors.items() if k.startswith(("backbone.", "neck."))}
    detector |= {key: torch.zeros(shape) for key, shape in FASTER_RCNN_HEADS[layout].items()}
    path = tmp_path / "faster_rcnn.pth"
    torch.save({"model": detector} if layout == "official" else {"state_dict": detector}, path)
    with pytest.raises(ValueError, match="holds no Sparse R-CNN head: it is another detector's"):
        convert_checkpoint(path)
    backbone = backbone_state_dict(path)
    ours = {k: v for k, v in tiny_pair.mmdet.items() if k.startswith("backbone.")}
    if layout == "official":  # FrozenBN: no BatchNorm counters
        ours = {k: v for k, v in ours.items() if not k.endswith("num_batches_tracked")}
    assert backbone.keys() == ours.keys()
    assert all(torch.equal(backbone[key], value) for key, value in ours.items())


def test_a_file_without_a_resnet_names_its_layout(tmp_path: Path, tiny_pair: ReferencePair) -> None:
    path = save_mmdet(tmp_path / "mmdet.pth", tiny_pair.mmdet)
    with pytest.raises(ValueError, match=r"holds no ResNet weights .*those of the mmdet layout"):
        backbone_state_dict(path, layout="official")


def _resnet50(first_block: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """A ResNet-50's tensors (our names, meta device) whose ``layer1.0`` convolutions have the
    given shapes."""
    resnet = {
        k: v
        for k, v in make_pair(R50_100, device="meta").mmdet.items()
        if k.startswith("backbone.")
    }
    for conv, shape in first_block.items():
        resnet[f"backbone.layer1.0.{conv}.weight"] = torch.empty(shape, device="meta")
    return resnet


@pytest.mark.parametrize(
    ("dropped", "blocks"),
    [("backbone.layer3.5.", "(3, 4, 5, 3)"), ("backbone.layer4.", "(3, 4, 6, 0)")],
)
def test_a_resnet_with_blocks_missing_says_which_depths_exist_and_what_to_do(
    dropped: str, blocks: str
) -> None:
    """Was: "is not one of depths [18, 34, 50, 101]", nothing said of what the file lacks or
    what to give instead."""
    resnet = {k: v for k, v in _resnet50({}).items() if not k.startswith(dropped)}
    with pytest.raises(ValueError) as info:
        check_backbone(resnet, "r50.pth", "torchvision")
    assert str(info.value) == (
        f"r50.pth: a ResNet with {blocks} bottleneck blocks per stage, which no supported depth "
        "has (ResNet-50 (3, 4, 6, 3), ResNet-101 (3, 4, 23, 3)): the file lacks blocks or has "
        "extra ones (cut short, edited, or another network); use the complete weights of a "
        "ResNet-18/34/50/101"
    )


@pytest.mark.parametrize(
    ("first_block", "found"),
    [
        # torchvision's resnext50_32x4d: 32 groups of 4 channels.
        (
            {"conv1": (128, 64, 1, 1), "conv2": (128, 4, 3, 3)},
            r"conv2\.weight .* is grouped: a ResNeXt",
        ),
        # torchvision's wide_resnet50_2: blocks twice as wide as the stem.
        (
            {"conv1": (128, 64, 1, 1), "conv2": (128, 128, 3, 3)},
            r"conv1\.weight has 128 channels for a stem of 64",
        ),
    ],
)
def test_a_resnext_or_wide_resnet_is_named_as_such(
    first_block: dict[str, tuple[int, ...]], found: str
) -> None:
    with pytest.raises(ValueError, match=rf"^rx\.pth: layer1\.0\.{found}.*plain ResNet") as info:
        check_backbone(_resnet50(first_block), "rx.pth", "torchvision")
    assert "mis-shaped" not in str(info.value)
    assert check_backbone(_resnet50({}), "r50.pth", "torchvision") == 50


def test_cli_convert_exit_status_says_whose_checksum_failed(
    tmp_path: Path,
    serve: WeightsServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Was: exit 2 ("the input is wrong") for every checksum mismatch of a download. A file
    the server sent that fails its published checksum (here: the one its mmdetection name
    carries) is a failed download, exit 1; one that fails the --sha256 given is wrong input,
    exit 2, and the message says which checksum it was."""
    from sparsercnn.cli.main import EXIT_BAD_INPUT, EXIT_FAILED, main

    monkeypatch.setenv("SPARSERCNN_CACHE", str(tmp_path / "cache"))
    serve.payload = b"an error page, not the published file"
    url = f"{serve.url}/sparse_rcnn_r50_20201218_154234-7bc5c054.pth"
    output = str(tmp_path / "model.safetensors")
    assert main(["convert", url, "--output", output]) == EXIT_FAILED
    failed = capsys.readouterr().err.strip()
    assert failed.startswith("sparsercnn convert: failed: checksum mismatch for the download")
    assert "7bc5c054... (the one its name carries)" in failed
    assert "the server sent another file than the one published" in failed
    assert main(["convert", url, "--output", output, "--sha256", "deadbeef"]) == EXIT_BAD_INPUT
    refused = capsys.readouterr().err.strip()
    assert refused.startswith("sparsercnn convert: error: checksum mismatch for the download")
    assert (
        "the URL serves another file than the checksum given describes; check --sha256" in refused
    )
    assert not Path(output).exists()


def test_cli_convert_checks_src_first_as_fetch_does(tmp_path: Path) -> None:
    """Was: convert's own check of SRC, which let any URL through, so that a missing file://
    SRC was reported after the --output checks ("ending in .safetensors"); the check is now
    fetch's own, naming SRC, before --output is looked at."""
    missing = (tmp_path / "nothing.pth").as_uri()
    with pytest.raises(FileNotFoundError, match=r"^SRC: checkpoint .*nothing\.pth does not exist"):
        _cli(["convert", missing, "--output", str(tmp_path / "model.pth")])
    with pytest.raises(IsADirectoryError, match=r"^SRC: checkpoint .* is a folder"):
        _cli(["convert", str(tmp_path), "--output", str(tmp_path / "model.pth")])
