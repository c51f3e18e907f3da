"""The global random number generators: seeding them, and their states as plain data.

Training seeds torch, Python ``random`` and NumPy (:func:`seed_everything`); a checkpoint stores
their states (:func:`rng_states`, tensors and numbers only, so that it loads with
``torch.load(weights_only=True)``) and a resumed run restores them (:func:`restore_rng_states`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), Python ``random`` and NumPy's global generator."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


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
