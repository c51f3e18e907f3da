"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint ``checkpoint_{iteration:07d}.pt`` in the run's output folder holds the model and
optimizer states, the gradient-scaler state (or ``None``), the iteration, the random number
generator states (torch CPU and CUDA, Python ``random``, NumPy), the resolved config and the label
map. Everything is stored as tensors, numbers, strings, lists and dicts, so that it loads with
``torch.load(weights_only=True)``: loading never unpickles arbitrary objects. Files are written
atomically, a ``last_checkpoint`` text file names the newest one, and only the newest ``keep``
are kept. Released models use :mod:`sparsercnn.model_file` instead.
"""

from __future__ import annotations

import logging
import pickle
import random
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from sparsercnn.atomic_file import atomic_write
from sparsercnn.config import Config
from sparsercnn.model_file import model_state_dict

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "sparsercnn-training-checkpoint"
CHECKPOINT_VERSION = 1
LAST_CHECKPOINT_FILE = "last_checkpoint"
REQUIRED_KEYS = ("iteration", "model", "optimizer", "scaler", "rng", "config", "categories")
_NAME_PATTERN = re.compile(r"^checkpoint_(\d+)\.pt$")


class SupportsToDict(Protocol):
    """A label map (``CategoryMap``): anything that serialises itself to a plain dict."""

    def to_dict(self) -> dict[str, Any]: ...


def checkpoint_name(iteration: int) -> str:
    """File name of the checkpoint taken after ``iteration`` optimiser steps."""
    return f"checkpoint_{iteration:07d}.pt"


def list_checkpoints(directory: str | Path) -> list[Path]:
    """The ``checkpoint_*.pt`` files of ``directory``, oldest (lowest iteration) first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _NAME_PATTERN.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def rng_states() -> dict[str, Any]:
    """The global RNG states as tensors and plain numbers (``weights_only``-loadable)."""
    version, python_state, gauss_next = random.getstate()
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": {"version": version, "state": list(python_state), "gauss_next": gauss_next},
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
    }


def restore_rng_states(states: Mapping[str, Any]) -> None:
    """Set the global RNGs to ``states`` as returned by :func:`rng_states`.

    CUDA states are restored only when CUDA is available and the device counts match (a warning
    is logged otherwise: the run continues, but not bit-identically on the GPU).
    """
    torch.set_rng_state(states["torch"])
    cuda_states = list(states.get("cuda", []))
    if cuda_states and torch.cuda.is_available():
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        else:
            logger.warning(
                "checkpoint has CUDA RNG states of %d devices, this machine has %d; not restored",
                len(cuda_states),
                torch.cuda.device_count(),
            )
    python = states["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss_next"]))
    numpy = states["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy["keys"].numpy().astype(np.uint32),
            numpy["position"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )


def save_training_checkpoint(
    directory: str | Path,
    iteration: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    config: Config,
    categories: SupportsToDict,
    extra: Mapping[str, Any] | None = None,
    keep: int = 0,
    rng: list[dict[str, Any]] | None = None,
) -> Path:
    """Write ``checkpoint_{iteration:07d}.pt`` atomically and point ``last_checkpoint`` to it.

    The file is first written to a temporary name in the same folder, flushed to disk and then
    renamed, so a crash never leaves a partial checkpoint under the final name.

    Args:
        directory: the run's output folder (created if needed).
        iteration: optimiser steps taken so far; training resumes at this iteration.
        model: the model (a DDP wrapper is unwrapped).
        optimizer: its state (moments, step counts) is saved.
        scaler: the fp16 gradient scaler, or ``None`` when not used.
        config: the resolved configuration of the run.
        categories: the label map (an object with ``to_dict()``).
        extra: more state of the caller (best metric so far, ...): tensors, numbers, strings,
            lists and dicts only.
        keep: keep the newest ``keep`` checkpoints and delete older ones; ``<= 0`` keeps all.
        rng: the RNG states of every rank (:func:`rng_states` gathered in rank order); default
            this process's only.

    Returns:
        The path written.
    """
    directory = Path(directory)
    path = directory / checkpoint_name(iteration)
    if rng is not None and not rng:
        raise ValueError("rng must hold the states of at least one rank")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "iteration": int(iteration),
        "model": model_state_dict(model),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "rng": list(rng) if rng is not None else [rng_states()],
        "config": config.to_dict(),
        "categories": categories.to_dict(),
        "extra": dict(extra or {}),
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    atomic_write(directory / LAST_CHECKPOINT_FILE, lambda tmp: tmp.write_text(path.name + "\n"))
    if keep > 0:
        prune_checkpoints(directory, keep)
    logger.info("saved training checkpoint %s", path)
    return path


def prune_checkpoints(directory: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints of ``directory``; return the deleted."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    old = list_checkpoints(directory)[:-keep]
    for path in old:
        path.unlink(missing_ok=True)
        logger.debug("deleted old checkpoint %s", path)
    return old


def find_last_checkpoint(directory: str | Path) -> Path | None:
    """The checkpoint ``last_checkpoint`` names, else the newest one present, else ``None``."""
    directory = Path(directory)
    pointer = directory / LAST_CHECKPOINT_FILE
    if pointer.is_file():
        named = directory / pointer.read_text().strip()
        if named.is_file():
            return named
        logger.warning("%s names %s, which does not exist; using the newest one", pointer, named)
    found = list_checkpoints(directory)
    return found[-1] if found else None


def resolve_checkpoint_path(path_or_dir: str | Path) -> Path:
    """A checkpoint file itself, or the last checkpoint of a run folder; clear error if none."""
    path = Path(path_or_dir)
    if path.is_dir():
        found = find_last_checkpoint(path)
        if found is None:
            raise FileNotFoundError(
                f"no training checkpoint (checkpoint_*.pt) in {path}; start a new run without "
                "resuming, or pass the folder of the run to continue"
            )
        return found
    if not path.is_file():
        raise FileNotFoundError(
            f"training checkpoint {path} does not exist; pass an existing checkpoint_*.pt file "
            "or the run's output folder"
        )
    return path


def load_training_checkpoint(path_or_dir: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_training_checkpoint`, safely.

    Args:
        path_or_dir: a ``checkpoint_*.pt`` file, or a run folder (its ``last_checkpoint``).

    Returns:
        The checkpoint dict (tensors on the CPU) with keys ``iteration``, ``model``,
        ``optimizer``, ``scaler``, ``rng`` (a list: one :func:`rng_states` dict per rank),
        ``config``, ``categories``, ``extra`` and ``path`` (the file read).

    Raises:
        FileNotFoundError: no such file, or no checkpoint in the folder.
        ValueError: the file is truncated or damaged, not a training checkpoint, or holds Python
            objects other than plain data (refused rather than unpickled). The message names the
            file and what to do.
    """
    path = resolve_checkpoint_path(path_or_dir)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path} holds Python objects other than tensors and plain data, so it was not "
            "loaded (loading it could run arbitrary code). It is not a sparsercnn training "
            f"checkpoint; use one written by `sparsercnn train`. Details: {error}"
        ) from error
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"training checkpoint {path} is damaged or truncated ({error}). Delete it and resume "
            "from an earlier checkpoint_*.pt in the same folder (pass that file explicitly)."
        ) from error
    return _validated(data, path)


def _validated(data: Any, path: Path) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} is not a sparsercnn training checkpoint (no format marker "
            f"{CHECKPOINT_FORMAT!r}); for model files use `sparsercnn evaluate --model`"
        )
    if data.get("format_version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"{path} has checkpoint format version {data.get('format_version')!r}; this "
            f"version of sparsercnn reads version {CHECKPOINT_VERSION}"
        )
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ValueError(f"training checkpoint {path} lacks {missing}; it is damaged")
    if not isinstance(data["rng"], list) or not data["rng"]:
        raise ValueError(f"training checkpoint {path} has no RNG states; it is damaged")
    data.setdefault("extra", {})
    data["path"] = str(path)
    return data
