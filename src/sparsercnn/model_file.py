"""Our released model format: one safetensors file holding weights, config and label map.

The file's metadata carries ``format`` ("sparsercnn"), ``format_version``, ``config`` (the resolved
:class:`~sparsercnn.config.Config` as JSON) and ``categories`` (the label map: contiguous label ->
dataset category id and name), and optionally ``int8_calibration`` (the activation ranges of
:class:`~sparsercnn.model.int8_features.Int8Calibration`, written by ``export --int8`` to a
``.safetensors`` output), and ``tensors_crc32`` and ``header_crc32``, the CRC-32 of the tensor
data and of the header that loading checks (:mod:`sparsercnn.safetensors_file`). Loading never
unpickles anything. The same weights, config and label map always give the same bytes.

Adding ``tensors_crc32``, then ``header_crc32``, kept format version 1: each is one more metadata
entry, which earlier versions of sparsercnn ignore (they load these files, unchecked), and files
without it, which those versions wrote, load as before, unchecked. The version goes up only for a
change that a reader unaware of it would read wrongly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor, nn

from sparsercnn.config import Config
from sparsercnn.data.categories import CategoryMap
from sparsercnn.fetched_file import FetchedFile
from sparsercnn.model import SparseRCNN, build_model
from sparsercnn.model.int8_features import Int8Calibration
from sparsercnn.paths import check_file, permission_error
from sparsercnn.runtime import check_device
from sparsercnn.safetensors_file import (
    SafetensorsHeader,
    check_header_crc32,
    load_tensors,
    read_header,
    write_safetensors,
)
from sparsercnn.text import listing
from sparsercnn.torch_archive import ZIP_MAGIC

FORMAT_NAME = "sparsercnn"
FORMAT_VERSION = "1"
# Metadata format of the backbone-only safetensors files that `sparsercnn convert` writes from a
# torchvision ResNet: training's starting weights, no model file.
BACKBONE_FORMAT_NAME = "sparsercnn-backbone"
INT8_CALIBRATION_KEY = "int8_calibration"
# What to do when a file's own config builds a model its weights do not fit.
CONFIG_DISAGREES = (
    "the config stored with the weights does not describe them (the file is damaged, or its "
    "metadata was edited): save, export or convert the model again"
)


@dataclass
class LoadedModel:
    """What :func:`load_model_file` returns."""

    model: SparseRCNN
    config: Config
    categories: CategoryMap


def model_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The model's persistent tensors, unwrapped from DDP/compile and made contiguous on CPU."""
    module = getattr(model, "module", model)
    module = getattr(module, "_orig_mod", module)
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def save_model_file(
    path: str | Path,
    model: nn.Module,
    config: Config,
    categories: CategoryMap,
    int8_calibration: Int8Calibration | None = None,
) -> Path:
    """Write the model to ``path`` (``.safetensors``) atomically, with ``int8_calibration``
    in its metadata when given (:func:`~sparsercnn.safetensors_file.write_safetensors`)."""
    path = Path(path)
    if len(categories) != config.model.num_classes:
        raise ValueError(
            f"label map has {len(categories)} classes but the model has {config.model.num_classes}"
        )
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": config.to_json(),
        "categories": json.dumps(categories.to_dict()),
    }
    if int8_calibration is not None:
        metadata[INT8_CALIBRATION_KEY] = int8_calibration.to_json()
    return write_safetensors(path, model_state_dict(model), metadata)


def _read(path: Path) -> tuple[dict[str, Tensor], Config, CategoryMap, dict[str, str]]:
    """Weights, config, label map and the whole metadata of the model file ``path``: its tensor
    data read once, its header (a few kB) a second time for the CRC-32
    (:func:`read_open_model_file`), and its first 4 bytes before, which tell what a file
    safetensors refuses is (:func:`unreadable_model_file_message`).

    Raises:
        FileNotFoundError, IsADirectoryError: ``path`` is no file.
        PermissionError: the user may not read it.
        ValueError: the file is not a readable sparsercnn model file, or its header or tensor
            data do not match the CRC-32 stored with them (a damaged copy).
    """
    check_file(path, "model file", "the .safetensors file")
    start = b""
    try:
        with open(path, "rb") as file:
            start = file.read(len(ZIP_MAGIC))
        opened = safe_open(str(path), framework="pt")  # reads and checks the header's layout
    except PermissionError as error:  # not a damaged file: one the user may not read
        raise permission_error(f"model file {path}", error) from None
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(unreadable_model_file_message(path, start, error)) from error
    with opened as handle:
        try:
            header = read_header(path)
            tensors, config, categories = read_open_model_file(handle, path, header, _copy_again)
        except (SafetensorError, OSError) as error:
            raise ValueError(unreadable_model_file_message(path, start, error)) from error
    return tensors, config, categories, header.metadata


def read_open_model_file(
    handle: safe_open,
    file: str | Path | FetchedFile,
    header: SafetensorsHeader,
    again: Callable[[], str],
) -> tuple[dict[str, Tensor], Config, CategoryMap]:
    """Weights, config and label map of the model file ``file``, open as ``handle``
    (``safe_open``) with its ``header`` read
    (:func:`~sparsercnn.safetensors_file.read_header`), as a reader that opened a safetensors
    file and found a model file hands it on: the header is checked (format, version, its
    CRC-32, config and label map) before any tensor is loaded, the tensor data against their
    CRC-32 as they are loaded (:func:`~sparsercnn.safetensors_file.load_tensors`).

    Args:
        again: what to do about a file that fails its CRC-32, for the message (a download
            kept in the cache: delete it); called only for a damaged file.

    Raises:
        ValueError: the header is not a readable sparsercnn model file's, or the header or the
            tensor data do not match their CRC-32.
        SafetensorError, OSError: the tensor data could not be read; the caller, which opened
            the file, says what to do about it.
    """
    config, categories = _checked_header(file, header, again)
    return load_tensors(handle, file, header, again), config, categories


def _checked_header(
    file: str | Path | FetchedFile, header: SafetensorsHeader, again: Callable[[], str]
) -> tuple[Config, CategoryMap]:
    """The config and label map that the ``header``'s metadata holds, once its format, version
    and CRC-32 (:func:`~sparsercnn.safetensors_file.check_header_crc32`) are checked."""
    path, metadata = Path(file), header.metadata
    if metadata.get("format") == BACKBONE_FORMAT_NAME:
        raise ValueError(
            f"{path} holds only a ResNet's weights (the backbone file `sparsercnn convert` makes "
            "of a torchvision ResNet), not a detector: train from it with --backbone-weights, "
            "and give the model file of a detector here"
        )
    if metadata.get("format") != FORMAT_NAME:
        raise ValueError(
            f"{path} is a safetensors file but not a sparsercnn model (metadata format="
            f"{metadata.get('format')!r}); convert it with `sparsercnn convert`"
        )
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has model file format version {metadata.get('format_version')!r}; this "
            f"sparsercnn reads version {FORMAT_VERSION}: use the sparsercnn that wrote it"
        )
    check_header_crc32(file, header, again)
    try:
        config = Config.from_run_dict(json.loads(metadata["config"]))
        categories = CategoryMap.from_dict(json.loads(metadata["categories"]))
    except (KeyError, ValueError, TypeError) as error:
        # ValueError covers JSON syntax, unknown config keys and wrong types.
        raise ValueError(
            f"{path}: damaged metadata, or written by another version of sparsercnn ({error}); "
            "re-export the model"
        ) from error
    if len(categories) != config.model.num_classes:
        raise ValueError(
            f"{path}: damaged metadata: the label map has {len(categories)} classes but the "
            f"config has model.num_classes={config.model.num_classes}; re-export the model"
        )
    return config, categories


def _copy_again() -> str:
    """What to do about a damaged model file, for the message."""
    return "copy, download or save it again"


def unreadable_model_file_message(path: Path, start: bytes, error: Exception) -> str:
    """One line saying what ``path``, which safetensors could not read (``error``), is and what
    to do, told from its name and its first bytes ``start`` (``b""``: none could be read)."""
    if path.suffix.lower() == ".onnx":
        return (
            f"{path} is an ONNX export, not a model file (.safetensors): predict and eval take "
            "it with --onnx (serve: --onnx beside --model); other commands need the .safetensors "
            "it was exported from"
        )
    if start == ZIP_MAGIC or start[:1] == b"\x80":  # torch.save's zip archive, or a bare pickle
        return (
            f"{path} is a PyTorch checkpoint, not a model file (.safetensors): convert a published "
            "checkpoint with `sparsercnn convert`; a run's model files are model_final.safetensors "
            "and model_best.safetensors (checkpoint_*.pt only resume training)"
        )
    return (
        f"{path} is damaged or not a model file (safetensors: {error}); copy it again, or "
        "convert official/mmdetection checkpoints with `sparsercnn convert`"
    )


def _int8_calibration(metadata: dict[str, str], path: str | Path) -> Int8Calibration | None:
    record = metadata.get(INT8_CALIBRATION_KEY)
    if record is None:
        return None
    try:
        return Int8Calibration.from_json(record)
    except ValueError as error:
        raise ValueError(f"{path}: {error}; export it again with --int8") from None


def load_model_file(path: str | Path, device: torch.device | str = "cpu") -> LoadedModel:
    """Build the model described by the file and load its weights strictly (with its int8
    calibration, where it has one), on ``device``.

    Raises:
        FileNotFoundError, IsADirectoryError: ``path`` is no file.
        PermissionError: the user may not read it.
        ValueError: the file is not a readable sparsercnn model file, is damaged (its header or
            tensor data do not match their CRC-32, its config does not fit its weights, or its
            int8 calibration record is unreadable), or ``device`` is not one
            (:func:`~sparsercnn.runtime.check_device`).
    """
    device = check_device(device)
    tensors, config, categories, metadata = _read(Path(path))
    model = build_model(config)
    try:
        load_state_dict_strict(model, tensors, source=str(path))
    except ValueError as error:
        raise ValueError(f"{error}; {CONFIG_DISAGREES}") from None
    model.set_int8_calibration(_int8_calibration(metadata, path))
    model.to(device)
    return LoadedModel(model=model, config=config, categories=categories)


def load_state_dict_strict(
    model: nn.Module,
    tensors: dict[str, Tensor],
    source: str,
    key_name: Callable[[str], str] | None = None,
) -> None:
    """Load ``tensors`` into ``model``; any missing, unexpected or mis-shaped key is an error.

    ``key_name`` gives the name the file uses for one of ``model``'s keys, for the message (a
    converted checkpoint's own names); by default the keys are named as they are.
    """
    name = key_name or (lambda key: key)
    own = model.state_dict()
    missing = sorted(name(k) for k in set(own) - set(tensors))
    unexpected = sorted(name(k) for k in set(tensors) - set(own))
    mismatched = sorted(
        f"{name(k)}: file {tuple(tensors[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(tensors)
        if tensors[k].shape != own[k].shape
    )
    if missing or unexpected or mismatched:
        parts = [
            f"{title} keys: {listing(keys)}"
            for title, keys in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("mis-shaped", mismatched),
            )
            if keys
        ]
        raise ValueError(f"{source} does not fit the model: " + "; ".join(parts))
    model.load_state_dict(tensors, strict=True)
