"""Reading checkpoint files of every supported container safely, and telling their layout.

Containers (spec 11.1): a PyTorch ``.pth`` holding a flat state dict, ``{"model": ...}``
(detectron2) or ``{"meta": ..., "state_dict": ...}`` (mmdetection), with tensors or numpy arrays,
or one of our training checkpoints (``checkpoint_*.pt``, whose config and label map are kept);
safetensors files (ours, with config and label map, or a bare state dict). ``.pth`` files are read
with ``torch.load(weights_only=True)``: only tensors, containers, numbers, strings and plain numpy
arrays are rebuilt, so a file that tries to run code is refused; the checksums torch.save stores
with each record are checked, which torch.load does not do (but for a file whose SHA-256
:func:`~sparsercnn.weights.download.fetch` has matched, see :mod:`sparsercnn.fetched_file`).
Plain pickles (detectron2's ``.pkl``), told by their content whatever their name, are refused
outright. :mod:`sparsercnn.weights.convert` renames what this module returns.
"""

from __future__ import annotations

import logging
import re
import warnings
import zipfile
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

from sparsercnn.config import Config
from sparsercnn.data.categories import CategoryMap
from sparsercnn.fetched_file import FetchedFile
from sparsercnn.model_file import BACKBONE_FORMAT_NAME, FORMAT_NAME, read_open_model_file
from sparsercnn.paths import check_file
from sparsercnn.safetensors_file import check_header_crc32, load_tensors, read_header
from sparsercnn.text import listing
from sparsercnn.torch_archive import ZIP_MAGIC, damaged_record
from sparsercnn.weights.download_lock import recorded_url
from sparsercnn.weights.key_tables import LAYOUTS, Layout

logger = logging.getLogger(__name__)
# How many of a file's first bytes tell its kind: a safetensors header length, a pickle's
# protocol mark and torch's legacy magic number, a text file's first line.
START_SIZE = 64
# What torch.save's legacy (non-zip) format pickles first: a plain pickle lacks it.
TORCH_LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
# The largest JSON header safetensors reads (its own limit, 100 MB).
MAX_SAFETENSORS_HEADER = 100_000_000
# Keys that identify a layout: any key starting with one of these prefixes.
LAYOUT_MARKERS: dict[Layout, tuple[str, ...]] = {
    "official": ("backbone.bottom_up.", "head.head_series.", "init_proposal_boxes."),
    "mmdet": ("roi_head.bbox_head.", "rpn_head.", "neck."),
    "ours": ("head.stages.", "proposals.", "fpn."),
    "torchvision": ("layer1.", "conv1.", "bn1."),
}


@dataclass
class RawCheckpoint:
    """A checkpoint's tensors under their original names, with what the container says.

    Attributes:
        tensors: state dict in the file's own key names.
        layout: the detected (or forced) key layout.
        source: the file, for error messages.
        class_names: class names stored in the file (mmdetection ``meta["CLASSES"]``, or
            ``meta["dataset_meta"]["classes"]`` in v3), if any.
        config: the config, for our own model files and training checkpoints.
        categories: the label map, for our own model files and training checkpoints.
    """

    tensors: dict[str, Tensor]
    layout: Layout
    source: str
    class_names: list[str] | None = None
    config: Config | None = None
    categories: CategoryMap | None = None


def read_checkpoint(path: str | Path | FetchedFile, layout: Layout | None = None) -> RawCheckpoint:
    """Read the state dict of a checkpoint file and detect its layout.

    Args:
        path: a ``.pth``/``.pt`` (official, mmdetection, torchvision or a raw state dict in our
            names) or ``.safetensors`` file; where it is what
            :func:`~sparsercnn.weights.download.fetch` returned with a matched SHA-256, the
            CRC-32 inside the file are not read again.
        layout: force the layout instead of detecting it from the keys.

    Raises:
        FileNotFoundError: the file does not exist.
        IsADirectoryError: the path is a folder.
        PermissionError: the user may not read the file (:func:`~sparsercnn.paths.check_file`).
        ValueError: the file is a pickle, not a checkpoint, holds objects safe loading refuses,
            or its layout cannot be told (the message names the file and says what to do).
    """
    file, path = path, Path(path)
    check_file(path, "checkpoint", "the checkpoint file")
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"unknown checkpoint layout {layout!r}; choose one of {LAYOUTS}")
    with open(path, "rb") as handle:
        start = handle.read(START_SIZE)
    if _is_safetensors(start):
        checkpoint = _read_safetensors(file, layout)
    elif _is_plain_pickle(start):
        raise ValueError(
            f"{path} is a plain Python pickle (as detectron2's .pkl files are), not a file "
            "torch.save wrote; pickles can run arbitrary code when loaded, so they are not read. "
            "Use the .pth release of the model, or, only if you trust the file, re-save its "
            "tensors with torch.save and convert that."
        )
    else:
        checkpoint = _read_torch(file, start, layout)
    logger.info("read %s: %d tensors, %s layout", path, len(checkpoint.tensors), checkpoint.layout)
    return checkpoint


def detect_layout(keys: list[str], source: str) -> Layout:
    """The layout whose marker prefixes the keys carry; exactly one must fit.

    Raises:
        ValueError: no layout fits (the message names a wrapper's prefix that every key
            carries, where the keys under it fit one), or several do (the message suggests
            ``--from``).
    """
    found = _layouts_fitting(keys)
    if not found:
        raise ValueError(
            f"{source}: the key names ({listing(keys, limit=5)}) match no known layout: it is "
            "no Sparse R-CNN checkpoint of the official code, mmdetection or ours, nor a "
            f"torchvision ResNet{_wrapper_hint(keys)}"
        )
    if len(found) > 1:
        raise ValueError(
            f"{source}: the key names ({listing(keys, limit=5)}) match several layouts {found}; "
            "name its layout with `sparsercnn convert SRC --from LAYOUT --output FILE` "
            "(official, mmdet, torchvision) and use the converted file, or pass layout= in Python"
        )
    return found[0]


def _layouts_fitting(keys: Collection[str]) -> list[Layout]:
    """The layouts whose marker prefixes (:data:`LAYOUT_MARKERS`) some key carries, torchvision
    only where no other fits (a torchvision ResNet has top-level conv1/bn1/layerK keys and
    nothing else)."""
    found = [
        layout
        for layout, prefixes in LAYOUT_MARKERS.items()
        if any(key.startswith(prefixes) for key in keys)
    ]
    if len(found) > 1 and "torchvision" in found:
        found.remove("torchvision")
    return found


def _wrapper_hint(keys: list[str]) -> str:
    """How to go on where every key carries one prefix (``model.``, as a training wrapper such
    as a Lightning module adds) under which the keys fit a known layout; "" otherwise (and for
    no keys: a file without tensors)."""
    if not keys:
        return ""
    prefix = keys[0].split(".", 1)[0] + "."
    if not all(key.startswith(prefix) for key in keys):
        return ""
    if not _layouts_fitting([key.removeprefix(prefix) for key in keys]):
        return ""
    return (
        f"; every key starts with {prefix!r}, as a training wrapper's do: save the state dict "
        f"of the model inside it (its keys without {prefix!r}) and convert that"
    )


def _is_safetensors(start: bytes) -> bool:
    """Whether a file's first bytes ``start`` are a safetensors file's: an 8-byte little-endian
    header length, then ``{``.

    The length is not checked against the file's size: a file cut short inside its header is
    still a (damaged) safetensors file, which safetensors then reports as such.
    """
    if len(start) < 9 or start[8:9] != b"{":
        return False
    return 0 < int.from_bytes(start[:8], "little") <= MAX_SAFETENSORS_HEADER


def _is_plain_pickle(start: bytes) -> bool:
    """Whether a file's first bytes ``start`` are those of a pickle that torch.save did not
    write (a detectron2 ``.pkl``, under any name): a protocol mark (``\\x80``) without torch's
    legacy magic number. Anything else, whatever its name, is left to torch.load (which only
    rebuilds tensors and containers) and to :func:`_unreadable_message`."""
    return start[:1] == b"\x80" and TORCH_LEGACY_MAGIC not in start


def _fetch_again(url: str | None) -> str:
    """What to do about a damaged file downloaded from ``url`` (its :func:`recorded_url`: None
    for a file not downloaded into the cache): fetch it again. A download kept in the cache is
    used again until it is deleted, which the advice then says."""
    if url is None:
        return "download or copy it again"
    return f"it was downloaded from {url}: delete it, and the next run downloads it again"


def _read_safetensors(file: str | Path | FetchedFile, layout: Layout | None) -> RawCheckpoint:
    path = Path(file)

    def again() -> str:
        return _fetch_again(recorded_url(path))

    try:
        with safe_open(str(path), framework="pt") as handle:
            header = read_header(path)
            metadata = header.metadata
            if metadata.get("format") == FORMAT_NAME:  # a model file: its data read once, here
                tensors, config, categories = read_open_model_file(handle, file, header, again)
                return RawCheckpoint(
                    tensors, "ours", str(path), categories.names, config, categories
                )
            check_header_crc32(file, header, again)
            tensors = load_tensors(handle, file, header, again)
    except (SafetensorError, OSError) as error:
        raise ValueError(
            f"{path}: damaged or truncated safetensors file ({error}); {again()}"
        ) from error
    if not tensors:
        raise ValueError(f"{path} holds no tensors")
    if metadata.get("format") == BACKBONE_FORMAT_NAME:
        layout = layout or "ours"
    return RawCheckpoint(tensors, layout or detect_layout(list(tensors), str(path)), str(path))


def _numpy_globals() -> list[Any]:
    """The numpy globals a pickled plain array needs, under numpy 1.x and 2.x module names."""
    multiarray = (getattr(np, "_core", None) or np.core).multiarray
    allowed: list[Any] = [np.ndarray, np.dtype]
    # Arrays, and scalars such as a score in mmdetection's ``meta``; both only copy bytes.
    for name in ("_reconstruct", "scalar"):
        function = getattr(multiarray, name)
        allowed += [(function, f"numpy.{core}.multiarray.{name}") for core in ("core", "_core")]
    # Rebuilt dtype instances are of these per-dtype classes (numpy >= 1.25).
    kinds = (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64)
    allowed += [type(np.dtype(kind)) for kind in (*kinds, np.uint8, np.bool_)]
    return allowed


@contextmanager
def _numpy_allowed() -> Iterator[None]:
    """Allow plain numpy arrays in ``torch.load(weights_only=True)`` for this block only."""
    if not hasattr(torch.serialization, "safe_globals"):  # torch < 2.5: no numpy arrays
        yield
        return
    with torch.serialization.safe_globals(_numpy_globals()):
        yield


def _read_torch(
    file: str | Path | FetchedFile, start: bytes, layout: Layout | None
) -> RawCheckpoint:
    """Read the torch.save file ``file``, whose first bytes are ``start``."""
    path = Path(file)
    damaged = damaged_record(file)
    if damaged is not None:
        raise ValueError(
            f"{path} is a damaged PyTorch checkpoint: its record {damaged} does not match the "
            f"checksum stored with it; {_fetch_again(recorded_url(path))}"
        )
    try:
        with _numpy_allowed(), warnings.catch_warnings():
            # torch warns about any legacy pickle's protocol; refused or read, it says nothing.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = _torch_load(path, start)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise ValueError(_unreadable_message(path, start, error)) from error
    tensors, meta = _find_state_dict(obj, path)
    tensors = _strip_prefix(tensors, "module.")
    assert isinstance(obj, Mapping)  # _find_state_dict refuses anything else
    own = _training_checkpoint_labels(obj, path)
    if own is not None:
        config, categories = own
        return RawCheckpoint(
            tensors, layout or "ours", str(path), categories.names, config, categories
        )
    layout = layout or detect_layout(list(tensors), str(path))
    return RawCheckpoint(tensors, layout, str(path), _mmdet_class_names(meta))


def _torch_load(path: Path, start: bytes) -> Any:
    """torch.load of ``path`` (whose first bytes are ``start``), with safe loading, on the CPU.

    A zip archive is mapped into memory (``mmap``), not read: its tensors are views of the file's
    pages, which :func:`~sparsercnn.torch_archive.damaged_record` (or, for a checksummed file,
    :func:`~sparsercnn.weights.download.fetch`) has just read to check them, so that its bytes
    are read once and never held twice (the model's copy is made from those
    pages). torch maps a file by path, and given a path it reads a ``.safetensors`` name as
    safetensors: such a file, and torch.save's legacy format (not mapped), are read from an
    open file.
    """
    if start.startswith(ZIP_MAGIC) and path.suffix.lower() != ".safetensors":
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    with open(path, "rb") as handle:
        return torch.load(handle, map_location="cpu", weights_only=True)


def _mmdet_class_names(meta: object) -> list[str] | None:
    """The class names of an mmdetection ``meta``: ``CLASSES`` (v2) or
    ``dataset_meta["classes"]`` (v3), or None."""
    if not isinstance(meta, Mapping):
        return None
    names = meta.get("CLASSES")
    dataset_meta = meta.get("dataset_meta")
    if names is None and isinstance(dataset_meta, Mapping):
        names = dataset_meta.get("classes")
    return None if names is None else [str(name) for name in names]


def _training_checkpoint_labels(
    obj: Mapping[str, Any], path: Path
) -> tuple[Config, CategoryMap] | None:
    """The config and label map of one of our training checkpoints (``checkpoint_*.pt``, whose
    ``model`` sits beside ``config`` and ``categories``), or None for any other container.

    Raises:
        ValueError: the stored config or label map is damaged (naming ``path``).
    """
    if not (isinstance(obj.get("config"), Mapping) and isinstance(obj.get("categories"), Mapping)):
        return None
    try:
        return Config.from_run_dict(dict(obj["config"])), CategoryMap.from_dict(obj["categories"])
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{path}: the training checkpoint's config or label map is damaged or from another "
            f"version of sparsercnn ({error}); convert another checkpoint of the run"
        ) from error


def _unreadable_message(path: Path, start: bytes, error: Exception) -> str:
    """Why ``torch.load`` could not read ``path`` (whose first bytes are ``start``) and what to
    do: an empty file, a text file (the web page of a failed download, say) or a damaged zip
    archive (what torch.save writes, e.g. a download cut short) is to be fetched again; a file
    that refers to Python objects is refused by safe loading."""
    url = recorded_url(path)
    if not start:
        return f"{path} is empty; {_fetch_again(url)}"
    text = _text_start(start)
    if text is not None:
        if url is None:
            again = "download it again if this is the web page a failed download saved"
        else:
            again = f"if this is the web page a failed download saved, {_fetch_again(url)}"
        return (
            f"{path} is a text file, not a checkpoint (it starts {text!r}); give the checkpoint "
            f"file, or {again}"
        )
    failure = _load_failure(error)
    if start.startswith(ZIP_MAGIC) and not _holds_pickle(path):
        return (
            f"{path} is a zip archive but not a PyTorch checkpoint (torch.save's archives hold a "
            "data.pkl); give the checkpoint itself, unpacked from the archive if it is in one"
        )
    if start.startswith(ZIP_MAGIC) and not failure.startswith("it refers to"):
        return (
            f"{path} is a damaged or truncated PyTorch checkpoint ({failure}); {_fetch_again(url)}"
        )
    return (
        f"{path} could not be read as a PyTorch checkpoint with safe loading ({failure}). It is "
        "either not a checkpoint, or it holds Python objects other than tensors, which are never "
        "unpickled here. If you trust the file, re-save only its state dict with torch.save and "
        "convert that."
    )


def _text_start(start: bytes) -> str | None:
    """The first line of ``start`` (a file's first bytes) if they are text, else None. A
    checkpoint is binary from its first bytes (a zip archive's ``PK\\x03\\x04``, a pickle's
    ``\\x80`` protocol mark)."""
    # A multi-byte character may be cut at the end of ``start``.
    text = start.decode("utf-8", errors="replace").rstrip("\ufffd")
    if "\ufffd" in text or not text.strip():
        return None
    if not all(char.isprintable() or char in "\t\r\n" for char in text):
        return None
    return text.strip().splitlines()[0][:40]


def _holds_pickle(path: Path) -> bool:
    """Whether the zip archive ``path`` is laid out as torch.save writes it (``<name>/data.pkl``),
    or is too damaged to tell (a truncated checkpoint)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("data.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return True


def _load_failure(error: Exception) -> str:
    """The informative part of torch.load's error (not its advice to allowlist globals, nor
    the sentences after the first)."""
    text = str(error)
    found = re.search(r"GLOBAL (\S+)", text)
    if found:
        return f"it refers to the Python object {found.group(1)}"
    detail = text.split("WeightsUnpickler error:")[-1].strip().splitlines()
    first = detail[0].split(". ")[0].rstrip(".") if detail else ""
    return f"{type(error).__name__}: {first}"[:200]


def _find_state_dict(obj: object, path: Path) -> tuple[dict[str, Tensor], object]:
    """The state dict inside a loaded container, and mmdetection's ``meta`` if any."""
    if not isinstance(obj, Mapping):
        raise ValueError(
            f"{path} holds a {type(obj).__name__}, not a state dict; expected a mapping of "
            "tensor names to tensors, {'model': ...} or {'state_dict': ..., 'meta': ...}"
        )
    for container_key in ("state_dict", "model"):
        if isinstance(obj.get(container_key), Mapping):
            return _as_tensors(obj[container_key], path), obj.get("meta")
    return _as_tensors(obj, path), None


def _as_tensors(state: Mapping[str, Any], path: Path) -> dict[str, Tensor]:
    tensors: dict[str, Tensor] = {}
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in "fiub":
                raise ValueError(f"{path}: {key!r} is a numpy array of dtype {value.dtype}")
            value = torch.from_numpy(np.ascontiguousarray(value))
        if not isinstance(value, Tensor):
            raise ValueError(
                f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor; the file "
                "does not hold a plain state dict"
            )
        tensors[str(key)] = value
    if not tensors:
        raise ValueError(f"{path} holds an empty state dict")
    return tensors


def _strip_prefix(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """Remove a wrapper prefix (DistributedDataParallel's ``module.``) carried by every key."""
    if all(key.startswith(prefix) for key in tensors):
        return {key[len(prefix) :]: value for key, value in tensors.items()}
    return tensors
