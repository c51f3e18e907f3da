"""Training and evaluation engine: the top layer of the library, below only the CLI.

- :mod:`~sparsercnn.engine.trainer`: :class:`Trainer` (the iteration-based training loop), and
  :class:`TrainResult` (:mod:`~sparsercnn.engine.train_result`), what it returns;
- :mod:`~sparsercnn.engine.inference`: :func:`run_inference` and :func:`evaluate`;
- :mod:`~sparsercnn.engine.pipeline`: ``train_from_coco``, training from files on disk, and
  :mod:`~sparsercnn.engine.model_evaluation`: ``evaluate_model_file`` and ``evaluate_onnx_file``,
  which return an :mod:`~sparsercnn.engine.evaluation_report` (metrics, speed, detections);
- :mod:`~sparsercnn.engine.checkpoint`: resumable training checkpoints,
  :mod:`~sparsercnn.engine.rng_state` the random number generator states they hold, and
  :mod:`~sparsercnn.engine.resume` continuing a run from one;
- :mod:`~sparsercnn.engine.lr_schedule`: the learning-rate schedule as pure functions;
- :mod:`~sparsercnn.engine.distributed`: ``torchrun`` process-group set-up and helpers;
- :mod:`~sparsercnn.engine.time_budget` and :mod:`~sparsercnn.engine.metrics_log`: the
  trainer's wall-clock budget and ``metrics.jsonl``.

The trainer and inference names load lazily, so importing the schedule or the distributed
helpers does not build the model stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sparsercnn.engine.distributed import DistInfo, init_distributed, is_main_process
from sparsercnn.engine.lr_schedule import fit_schedule_to_budget, lr_factor, scaled_lr

_LAZY = {
    "Trainer": "sparsercnn.engine.trainer",
    "TrainResult": "sparsercnn.engine.train_result",
    "run_inference": "sparsercnn.engine.inference",
    "evaluate": "sparsercnn.engine.inference",
    "Timing": "sparsercnn.engine.inference",
    "load_training_checkpoint": "sparsercnn.engine.checkpoint",
    "NonFiniteLossError": "sparsercnn.engine.train_step",
}

if TYPE_CHECKING:
    from sparsercnn.engine.checkpoint import load_training_checkpoint
    from sparsercnn.engine.inference import Timing, evaluate, run_inference
    from sparsercnn.engine.train_result import TrainResult
    from sparsercnn.engine.train_step import NonFiniteLossError
    from sparsercnn.engine.trainer import Trainer


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sparsercnn.engine' has no attribute {name!r}")


__all__ = [
    "DistInfo",
    "NonFiniteLossError",
    "Timing",
    "TrainResult",
    "Trainer",
    "evaluate",
    "fit_schedule_to_budget",
    "init_distributed",
    "is_main_process",
    "load_training_checkpoint",
    "lr_factor",
    "run_inference",
    "scaled_lr",
]
