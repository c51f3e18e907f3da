"""``read_starting_weights`` and ``prepare_model``: the starting weights are read once, their
errors name the option that gave the file."""

from __future__ import annotations

import gc
import logging
import weakref
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from sparsercnn.cli.main import main
from sparsercnn.config import Config
from sparsercnn.data.coco import CocoDataset
from sparsercnn.data.transforms import build_train_transform
from sparsercnn.engine.model_init import (
    INIT_FROM,
    naming_option,
    prepare_model,
    read_starting_weights,
)
from sparsercnn.engine.trainer import Trainer
from sparsercnn.model import build_model
from sparsercnn.weights import convert
from sparsercnn.weights.convert import export_state_dict
from sparsercnn.weights.key_tables import Layout
from sparsercnn.weights.readers import RawCheckpoint
from tests.denied_file import deny_reading
from tests.synthetic_coco import SyntheticCoco, tiny_config


def _with_weights(cfg: Config, **weights: str) -> Config:
    return replace(cfg, train=replace(cfg.train, **weights))


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("init_from", "--init-from (train.init_from): checkpoint {path} does not exist"),
        ("backbone_weights", "--backbone-weights (train.backbone_weights): checkpoint {path} does"),
    ],
)
def test_a_missing_file_names_its_option(option: str, message: str, tmp_path: Path) -> None:
    cfg = tiny_config()
    missing = tmp_path / "missing.pth"
    with pytest.raises(FileNotFoundError) as raised:
        prepare_model(build_model(cfg), _with_weights(cfg, **{option: str(missing)}))
    assert str(raised.value).startswith(message.format(path=missing))


def test_a_folder_names_its_option(tmp_path: Path) -> None:
    cfg = tiny_config()
    with pytest.raises(IsADirectoryError, match=r"^--init-from \(train.init_from\): checkpoint "):
        prepare_model(build_model(cfg), _with_weights(cfg, init_from=str(tmp_path)))


def test_the_checkpoint_warnings_are_given_by_the_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The load that training does says what the conversion assumed (once: the recipe's read of
    the architecture leaves it to this one)."""
    cfg = tiny_config()
    cfg.model.num_classes = 2
    bare = tmp_path / "bare.pth"
    torch.save(build_model(cfg).state_dict(), bare)
    with caplog.at_level(logging.WARNING, logger="sparsercnn"):
        prepare_model(build_model(cfg), _with_weights(cfg, init_from=str(bare)))
    assert sum("classes that are not COCO's" in r.getMessage() for r in caplog.records) == 1


def _bare_checkpoint_and_resnet(tmp_path: Path) -> tuple[Config, Path, Path]:
    """tiny_config's model as a bare state dict (its conversion warns) and its backbone as a
    torchvision ResNet file."""
    cfg = tiny_config()
    state = build_model(cfg).state_dict()
    bare, resnet = tmp_path / "bare.pth", tmp_path / "resnet.pth"
    torch.save(state, bare)
    backbone = {key: value for key, value in state.items() if key.startswith("backbone.")}
    torch.save(export_state_dict(backbone, "torchvision"), resnet)
    return cfg, bare, resnet


@pytest.mark.parametrize("option", ["init_from", "backbone_weights"])
def test_weights_read_before_are_loaded_without_reading_the_file_again(
    option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The recipe reads the starting weights (their notes said then); training loads what it
    read: the file is read once, its notes said once."""
    cfg, bare, resnet = _bare_checkpoint_and_resnet(tmp_path)
    path = str(bare if option == "init_from" else resnet)
    reads: list[str] = []
    read_checkpoint = convert.read_checkpoint

    def counted(src: str | Path, layout: Layout | None = None) -> RawCheckpoint:
        reads.append(str(src))
        return read_checkpoint(src, layout)

    monkeypatch.setattr(convert, "read_checkpoint", counted)
    cfg = _with_weights(cfg, **{option: path})
    with caplog.at_level(logging.INFO, logger="sparsercnn"):
        weights = read_starting_weights(cfg.train.init_from, cfg.train.backbone_weights)
        model = build_model(cfg)
        prepare_model(model, cfg, weights=weights)
    assert reads == [path]
    assert sum(r.getMessage().startswith(f"read {path}:") for r in caplog.records) == 1
    assert f"initialised from {path}" in caplog.text
    source = torch.load(bare, weights_only=True)["backbone.conv1.weight"]
    assert torch.equal(model.state_dict()["backbone.conv1.weight"], source)

    # Weights read for other files are not used: those of the config are read.
    other = _with_weights(cfg, **{option: str(tmp_path / "missing.pth")})
    with pytest.raises(FileNotFoundError, match=r"missing\.pth"):
        prepare_model(build_model(cfg), other, weights=weights)


def test_a_checkpoint_and_backbone_weights_together_are_refused(tmp_path: Path) -> None:
    """The detector checkpoint's own backbone would replace the other weights, silently."""
    _, bare, resnet = _bare_checkpoint_and_resnet(tmp_path)
    with pytest.raises(ValueError, match=r"^--init-from \(train.init_from\) .*bare.pth and "):
        read_starting_weights(str(bare), str(resnet))


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("init_from", r"^--init-from \(train.init_from\): checkpoint .*missing.pth does not"),
        ("backbone_weights", r"^--backbone-weights \(train.backbone_weights\): checkpoint "),
    ],
)
def test_reading_a_missing_file_names_its_option(option: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=message):
        read_starting_weights(**{option: str(tmp_path / "missing.pth")})
    with pytest.raises(IsADirectoryError, match=r"is a folder"):
        read_starting_weights(**{option: str(tmp_path)})


@pytest.mark.parametrize(
    ("option", "named"),
    [
        ("init_from", "--init-from (train.init_from)"),
        ("backbone_weights", "--backbone-weights (train.backbone_weights)"),
    ],
)
def test_a_file_the_user_may_not_read_is_said_so_naming_its_option(
    option: str, named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: "[Errno 13] Permission denied: '...'", the raw OSError, without the option."""
    path = tmp_path / "weights.pth"
    torch.save({}, path)
    deny_reading(monkeypatch, "sparsercnn.paths", path)
    with pytest.raises(PermissionError) as raised:
        read_starting_weights(**{option: str(path)})
    assert str(raised.value) == (
        f"{named}: checkpoint {path} cannot be read (Permission denied); check its permissions"
    )


@pytest.mark.parametrize(
    ("flag", "option"),
    [
        ("--init-from", "--init-from (train.init_from)"),
        ("--backbone-weights", "--backbone-weights (train.backbone_weights)"),
    ],
)
def test_train_names_the_option_of_a_file_that_is_not_a_checkpoint(
    flag: str, option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A COCO JSON, a zip of something else or a text file given as weights: refused before the
    data check (no annotations file exists), the message naming the flag once, then the file."""
    annotations = tmp_path / "instances.json"
    annotations.write_text('{"images": [], "annotations": [], "categories": []}')
    archive = tmp_path / "weights.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("readme.txt", "no tensors here")
    notes = tmp_path / "notes.txt"
    notes.write_text("not weights")
    for path in (annotations, archive, notes):
        data = ["--train-json", str(tmp_path / "a.json"), "--train-images", str(tmp_path)]
        run = ["--output-dir", str(tmp_path / "run"), "--preset", "tiny"]
        assert main(["train", *data, *run, flag, str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"sparsercnn train: error: {option}: {path} "), err
        assert err.count(flag) == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_an_error_already_naming_the_option_is_not_named_twice() -> None:
    named = r"^--init-from \(train.init_from\): x.pth is not"
    inner = naming_option(INIT_FROM)
    with pytest.raises(ValueError, match=named) as info, naming_option(INIT_FROM), inner:
        raise ValueError("x.pth is not a checkpoint")
    assert str(info.value).count("--init-from") == 1


def test_weights_of_another_architecture_name_their_option(tmp_path: Path) -> None:
    cfg, bare, resnet = _bare_checkpoint_and_resnet(tmp_path)
    other = replace(cfg.model, num_proposals=cfg.model.num_proposals + 1, backbone_depth=34)
    with pytest.raises(ValueError, match=r"^--init-from \(train.init_from\): .*bare.pth is a mod"):
        read_starting_weights(init_from=str(bare)).check_fits(other)
    with pytest.raises(
        ValueError, match=r"^--backbone-weights \(train.backbone_weights\): .*resnet.pth holds a "
    ):
        read_starting_weights(backbone_weights=str(resnet)).check_fits(other)


@pytest.mark.parametrize("option", ["init_from", "backbone_weights"])
def test_a_trainer_releases_the_starting_weights_once_its_model_is_built(
    option: str, tiny_coco: SyntheticCoco, tmp_path: Path
) -> None:
    """The CLI and ``train_from_coco`` hold the weights they read through the whole training
    (a detector checkpoint: 0.4 GB for R50); once the trainer's model holds them, their tensors
    are freed, and weights released are read again if loaded anew."""
    cfg, bare, resnet = _bare_checkpoint_and_resnet(tmp_path)
    cfg = _with_weights(cfg, **{option: str(bare if option == "init_from" else resnet)})
    weights = read_starting_weights(cfg.train.init_from, cfg.train.backbone_weights)
    read = weights.checkpoint.state_dict if weights.checkpoint is not None else weights.backbone
    assert read
    tensors = [weakref.ref(tensor) for tensor in read.values()]
    conv1 = read["backbone.conv1.weight"].clone()
    del read
    train = CocoDataset(tiny_coco.json_path, tiny_coco.image_dir, build_train_transform(cfg.input))
    trainer = Trainer(
        cfg, train, tmp_path / "run", device="cpu", progress=False, starting_weights=weights
    )
    gc.collect()
    assert [tensor() for tensor in tensors if tensor() is not None] == []
    assert weights.released and weights.checkpoint is None and weights.backbone is None
    assert torch.equal(trainer.model.state_dict()["backbone.conv1.weight"], conv1)
    assert not weights.is_for(cfg.train)
    model = build_model(cfg)
    prepare_model(model, cfg, weights=weights)  # the file read again
    assert torch.equal(model.state_dict()["backbone.conv1.weight"], conv1)
