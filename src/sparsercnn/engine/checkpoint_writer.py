"""The training checkpoints a run writes as it trains: each written by rank 0 with every rank's
random states, the newest one remembered (the one ``--resume`` continues from, which a run
stopped early names) with how long its write took (what the time budget plans for). The file
format is :mod:`sparsercnn.engine.checkpoint`'s; when a checkpoint is due is the trainer's."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparsercnn.config import Config
from sparsercnn.data.categories import CategoryMap
from sparsercnn.engine.checkpoint import save_training_checkpoint
from sparsercnn.engine.distributed import all_gather_object, computed_on_main
from sparsercnn.engine.rng_state import rng_states


class CheckpointWriter:
    """Writes the checkpoints of the run in ``output_dir`` and remembers the newest.

    Attributes:
        output_dir: the run folder.
        path: the newest checkpoint of the run (``None``: none written nor resumed from).
        iteration: the iteration ``path`` holds.
        seconds: how long the last write took (``0.0`` before the first).
    """

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        self.path: Path | None = None
        self.iteration: int | None = None
        self.seconds = 0.0

    def resumed_from(self, path: Path, iteration: int) -> None:
        """Remember the checkpoint a resumed run restored as its newest."""
        self.path, self.iteration = path, iteration

    def save(
        self,
        iteration: int,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler | None,
        config: Config,
        categories: CategoryMap,
        extra: Mapping[str, Any],
    ) -> None:
        """Checkpoint ``iteration`` on rank 0 with every rank's RNG states, keeping the newest
        ``config.train.keep_checkpoints`` (see
        :func:`~sparsercnn.engine.checkpoint.save_training_checkpoint`). All ranks must call
        this; all raise what stops rank 0's write (a full disk)."""
        start = time.perf_counter()
        states = all_gather_object(rng_states())
        self.path = computed_on_main(
            lambda: save_training_checkpoint(
                self.output_dir,
                iteration,
                model,
                optimizer,
                scaler,
                config,
                categories,
                extra=extra,
                keep=config.train.keep_checkpoints,
                rng=states,
            )
        )
        self.iteration = iteration
        self.seconds = time.perf_counter() - start
