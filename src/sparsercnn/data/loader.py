"""Data loaders: a dataset plus a sampler, batched into :class:`~sparsercnn.structures.Batch`.

The training loader is an endless iterator for iteration-based training. Its order is fixed by
:class:`~sparsercnn.data.sampler.TrainingSampler` (and, with aspect-ratio grouping, by
:class:`~sparsercnn.data.sampler.AspectRatioGroupedBatchSampler`), which runs in the main
process, so the batches do not depend on the number of workers, and a run resumed at iteration
``k`` sees the same batches as an uninterrupted run from iteration ``k`` on.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sequence, Sized
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from sparsercnn.data.sampler import (
    InferenceSampler,
    SampleGroups,
    SizeGroupedBatchSampler,
    orientation_groups,
    training_batches,
)
from sparsercnn.structures import Batch, Sample


def _dataset_size(dataset: Dataset[Sample]) -> int:
    if not isinstance(dataset, Sized):
        raise TypeError(f"the dataset {type(dataset).__name__} must define __len__")
    return len(dataset)


def _image_sizes(dataset: Dataset[Sample]) -> Sequence[tuple[int, int]]:
    """The ``(h, w)`` of every image that ``dataset`` knows without decoding (``image_sizes``,
    as :class:`~sparsercnn.data.coco.CocoDataset` gives)."""
    sizes = getattr(dataset, "image_sizes", None)
    if sizes is None:
        raise TypeError(
            f"aspect-ratio grouping needs the (h, w) of every image, but the dataset "
            f"{type(dataset).__name__} has no image_sizes: add it, or turn grouping off "
            "(train.aspect_ratio_grouping=false)"
        )
    if len(sizes) != _dataset_size(dataset):
        raise ValueError(
            f"{type(dataset).__name__}.image_sizes gives {len(sizes)} sizes for "
            f"{_dataset_size(dataset)} images"
        )
    return sizes


def _orientation_groups(dataset: Dataset[Sample]) -> SampleGroups | np.ndarray:
    """The orientation group of each sample of ``dataset`` after augmentation: from its
    ``grouping_sizes(indices, seeds)`` where it has it, else from its ``image_sizes``."""
    grouping_sizes = getattr(dataset, "grouping_sizes", None)
    if grouping_sizes is None:
        return orientation_groups(_image_sizes(dataset))
    return lambda indices, seeds: orientation_groups(grouping_sizes(indices, seeds))


def build_train_loader(
    dataset: Dataset[Sample],
    batch_size: int,
    num_workers: int,
    seed: int,
    start_iter: int = 0,
    rank: int = 0,
    world_size: int = 1,
    *,
    aspect_ratio_grouping: bool = False,
) -> Iterator[Batch]:
    """Endless iterator of training batches.

    Args:
        dataset: map-style dataset whose ``__getitem__`` accepts ``(index, sample_seed)`` and
            returns a :class:`~sparsercnn.structures.Sample`.
        batch_size: images per batch on this rank.
        num_workers: loading processes (0: load in the main process). Workers persist across
            epochs.
        seed: the run's seed, the same on every rank.
        start_iter: iterations already done; the first batch is the one an uninterrupted run
            would see at this iteration.
        rank, world_size: this process's shard of the data.
        aspect_ratio_grouping: every batch holds only images wider than tall or only the others
            after augmentation (:class:`AspectRatioGroupedBatchSampler`, from the dataset's
            ``grouping_sizes`` or else its ``image_sizes``), so that it is not padded to both
            the largest height and the largest width. False: the stream's consecutive
            ``batch_size`` samples.

    Returns:
        An iterator of :class:`~sparsercnn.structures.Batch` that never ends.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if start_iter < 0:
        raise ValueError(f"start_iter must be >= 0, got {start_iter}")
    common: dict[str, Any] = {
        "num_workers": num_workers,
        "collate_fn": Batch.collate,
        "pin_memory": False,
        "persistent_workers": num_workers > 0,
        # Only seeds the workers' global RNGs; augmentation uses the per-sample seeds.
        "generator": torch.Generator().manual_seed(seed + rank),
        "worker_init_fn": ignore_interrupts,
    }
    batches = training_batches(
        _dataset_size(dataset),
        batch_size,
        seed=seed,
        groups=_orientation_groups(dataset) if aspect_ratio_grouping else None,
        start=start_iter,
        rank=rank,
        world_size=world_size,
    )
    return iter(DataLoader(dataset, batch_sampler=batches, **common))


def ignore_interrupts(worker_id: int) -> None:
    """``worker_init_fn`` of the loaders: the worker ignores SIGINT. A terminal's Ctrl-C
    reaches the whole process group; the main process decides what to do (training finishes
    its step and saves a checkpoint) and shuts its workers down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def build_test_loader(
    dataset: Dataset[Sample],
    batch_size: int,
    num_workers: int,
    rank: int = 0,
    world_size: int = 1,
    size_keys: Sequence[tuple[int, int]] | None = None,
) -> DataLoader[Sample]:
    """Loader for evaluation: this rank's contiguous shard, each image once.

    Args:
        dataset: map-style dataset whose ``__getitem__`` accepts an ``int`` index.
        batch_size: most images per batch.
        num_workers: loading processes (0: load in the main process).
        rank, world_size: this process's shard of the data.
        size_keys: the padded input size of every image: batches then hold one size each,
            in order of size (:class:`SizeGroupedBatchSampler`). ``None``: dataset order,
            ``batch_size`` consecutive images per batch.

    Returns:
        A re-iterable loader yielding :class:`~sparsercnn.structures.Batch`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    sampler = InferenceSampler(_dataset_size(dataset), rank=rank, world_size=world_size)
    common: dict[str, Any] = {
        "num_workers": num_workers,
        "collate_fn": Batch.collate,
        "pin_memory": False,
        "worker_init_fn": ignore_interrupts,
    }
    if size_keys is not None:
        batches = SizeGroupedBatchSampler(sampler, size_keys, batch_size)
        return DataLoader(dataset, batch_sampler=batches, **common)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=False, **common)
