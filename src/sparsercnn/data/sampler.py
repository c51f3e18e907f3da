"""Samplers: an infinite, resumable, sharded stream for iteration-based training, its batches
grouped by orientation, and an in-order sharded pass for evaluation.

:class:`TrainingSampler` yields ``(index, sample_seed)`` pairs that the dataset's
``__getitem__`` accepts; the seed fixes the sample's augmentation, so what a sample looks like
depends only on ``(seed, epoch, position)`` and not on the number of data-loading workers or on
where a run was interrupted. :class:`AspectRatioGroupedBatchSampler` deals that stream into
batches of one orientation each (spec 1.4); :func:`training_batches` deals a run's batches, one
way or the other, for the training loader and for the recipe's price of a batch. Samplers take
the rank and world size as arguments; they never ask ``torch.distributed``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Sampler

# Sample seeds are drawn in [0, 2**62): plenty for random.Random and safe in int64.
SAMPLE_SEED_BOUND = 2**62

SampleGroups = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(indices, seeds) -> groups``: the ``(n,)`` int64 group of each ``(index, seed)`` sample of a
stream, for samples whose group depends on their augmentation (a random crop)."""


def _check_shard(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(
            f"need world_size >= 1 and 0 <= rank < world_size, got {rank=}, {world_size=}"
        )


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The ``torch.Generator`` of one epoch: a well-mixed function of ``(seed, epoch)``."""
    entropy = [seed % 2**64, epoch]
    state = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


class TrainingSampler(Sampler[tuple[int, int]]):
    """Endless stream of ``(index, sample_seed)``, reshuffled every epoch, sharded over ranks.

    Epoch ``e`` is a permutation of ``range(size)`` drawn from :func:`epoch_generator`
    ``(seed, e)``, padded by repeating its head to a multiple of ``world_size``; rank ``r`` takes
    positions ``r, r + world_size, ...``, so the ranks' shards of an epoch are disjoint (up to the
    padding) and cover it. Each position also gets a sample seed drawn from the same generator.

    Args:
        size: number of samples in the dataset.
        seed: the run's seed; every rank must use the same one.
        rank: this process's rank in ``[0, world_size)``.
        world_size: number of processes sharing the data.
        start: samples this rank has already consumed (``iteration * batch_size`` when resuming);
            the stream continues exactly where an uninterrupted run would be.
        shuffle: ``False`` keeps every epoch in dataset order (seeds still vary per epoch).
    """

    def __init__(
        self,
        size: int,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
        shuffle: bool = True,
    ) -> None:
        if size < 1:
            raise ValueError(f"TrainingSampler needs a non-empty dataset, got size={size}")
        if start < 0:
            raise ValueError(f"start must be >= 0 samples, got {start}")
        _check_shard(rank, world_size)
        self.size = size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start = start
        self.shuffle = shuffle

    @property
    def samples_per_epoch(self) -> int:
        """Samples each rank sees per epoch: ``ceil(size / world_size)``."""
        return -(-self.size // self.world_size)

    def epoch_order(self, epoch: int) -> tuple[Tensor, Tensor]:
        """This rank's ``(indices, sample_seeds)`` in ``epoch``, each ``(samples_per_epoch,)``."""
        generator = epoch_generator(self.seed, epoch)
        if self.shuffle:
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.arange(self.size)
        total = self.samples_per_epoch * self.world_size
        seeds = torch.randint(0, SAMPLE_SEED_BOUND, (total,), generator=generator)
        if total > self.size:  # pad by repeating the permutation (several times if need be)
            order = order.repeat(-(-total // self.size))[:total]
        return order[self.rank :: self.world_size], seeds[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, offset = divmod(self.start, self.samples_per_epoch)
        while True:
            indices, seeds = self.epoch_order(epoch)
            yield from zip(indices[offset:].tolist(), seeds[offset:].tolist(), strict=True)
            epoch += 1
            offset = 0


def orientation_groups(image_sizes: Sequence[tuple[int, int]] | np.ndarray) -> np.ndarray:
    """``(I,)`` int64 group of every image for :class:`AspectRatioGroupedBatchSampler`: 1 where
    it is wider than tall (``w > h``), 0 otherwise (squares included), from ``(h, w)`` sizes."""
    sizes = np.asarray(image_sizes, dtype=np.int64).reshape(-1, 2)
    return (sizes[:, 1] > sizes[:, 0]).astype(np.int64)


class AspectRatioGroupedBatchSampler(Sampler[list[tuple[int, int]]]):
    """Endless batches of a :class:`TrainingSampler` stream, each of one group (orientation).

    detectron2's ``AspectRatioGroupedDataset`` (spec 1.4): the stream, from its beginning, is
    dealt into one bucket per group, and a bucket that reaches ``batch_size`` samples becomes
    the next batch. A batch of landscape images is then never padded to a portrait one's height.
    A sample's group is its orientation after augmentation, as detectron2 groups by the
    augmented size, known without decoding anything: from the sizes the annotation file gives
    (after EXIF orientation) where resizing and flipping keep an image's orientation, as
    mmdetection's ``GroupSampler`` does, or from each sample's seed where a random crop can
    change it (:meth:`~sparsercnn.data.coco.CocoDataset.grouping_sizes`).

    Resuming replays the stream's arithmetic from the beginning, whole epochs at a time and
    without loading any sample, and skips the batches already trained on: a resumed run sees
    exactly the batches of an uninterrupted one. Under DDP every rank groups its own shard.
    Groups that depend on the seed are computed for every sample replayed (random crops: some
    tens of microseconds each in Python, so a resume deep into a long schedule may take a
    minute).

    Args:
        sampler: this rank's stream; its ``start`` must be 0 (the batches to skip are
            ``start`` here).
        groups: ``(I,)`` group id ``>= 0`` of every dataset index (e.g.
            :func:`orientation_groups`), or a :data:`SampleGroups` function of each sample's
            index and seed.
        batch_size: samples per batch.
        start: batches already consumed (the iteration when resuming); the first batch is the
            one an uninterrupted run would see then.
    """

    def __init__(
        self,
        sampler: TrainingSampler,
        groups: Sequence[int] | np.ndarray | SampleGroups,
        batch_size: int,
        *,
        start: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if start < 0:
            raise ValueError(f"start must be >= 0 batches, got {start}")
        if sampler.start != 0:
            raise ValueError(
                "grouping replays the stream from its beginning: give a TrainingSampler with "
                f"start=0 and the batches to skip as start, got sampler.start={sampler.start}"
            )
        if not callable(groups):
            by_index = np.asarray(groups, dtype=np.int64).reshape(-1)
            if len(by_index) != sampler.size:
                raise ValueError(
                    f"need one group per dataset index: {len(by_index)} groups for "
                    f"{sampler.size} samples"
                )
            groups = _groups_of_indices(by_index)
        self.group_of = groups
        self.sampler = sampler
        self.batch_size = batch_size
        self.start = start

    def _epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(indices, seeds, groups)`` of this rank's samples in ``epoch``."""
        indices, seeds = (order.numpy() for order in self.sampler.epoch_order(epoch))
        groups = np.asarray(self.group_of(indices, seeds), dtype=np.int64).reshape(-1)
        if len(groups) != len(indices) or (len(groups) and groups.min() < 0):
            raise ValueError(
                f"the sample groups must be one id >= 0 per sample: got {len(groups)} "
                f"(least {groups.min() if len(groups) else None}) for {len(indices)} samples"
            )
        return indices, seeds, groups

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, buckets, skip = self._fast_forward()
        while True:
            indices, seeds, groups = self._epoch(epoch)
            for index, seed, group in zip(
                indices.tolist(), seeds.tolist(), groups.tolist(), strict=True
            ):
                bucket = buckets.setdefault(group, [])
                bucket.append((index, seed))
                if len(bucket) == self.batch_size:
                    buckets[group] = []
                    if skip:
                        skip -= 1
                    else:
                        yield bucket
            epoch += 1

    def _fast_forward(self) -> tuple[int, dict[int, list[tuple[int, int]]], int]:
        """``(epoch, buckets, batches left to skip)`` at the start of the first epoch that
        completes more batches than are left to skip. After an epoch, each bucket holds the
        last ``(held + count) % batch_size`` samples of its group, whichever epochs they came
        from, so whole epochs are skipped without a loop over their samples."""
        buckets: dict[int, list[tuple[int, int]]] = {}
        skip, epoch = self.start, 0
        while skip:
            indices, seeds, groups = self._epoch(epoch)
            ids, id_counts = np.unique(groups, return_counts=True)
            counts = dict(zip(ids.tolist(), id_counts.tolist(), strict=True))
            held = {group: len(bucket) for group, bucket in buckets.items()}
            completed = sum(
                (held.get(group, 0) + count) // self.batch_size for group, count in counts.items()
            )
            if completed > skip:
                break
            skip -= completed
            for group, count in counts.items():
                keep = (held.get(group, 0) + count) % self.batch_size
                # keep > count only when the group completed no batch: the bucket then stays.
                new = min(keep, count)
                old = buckets.get(group, []) if keep > new else []
                if new:
                    tail = np.flatnonzero(groups == group)[count - new :]
                    old = old + list(zip(indices[tail].tolist(), seeds[tail].tolist(), strict=True))
                buckets[group] = old
            epoch += 1
        return epoch, buckets, skip


def training_batches(
    size: int,
    batch_size: int,
    *,
    seed: int,
    groups: Sequence[int] | np.ndarray | SampleGroups | None = None,
    start: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> Iterable[list[tuple[int, int]]]:
    """The endless batches of ``(index, sample_seed)`` a training run deals from a dataset of
    ``size`` samples: the :class:`TrainingSampler` stream of ``seed``, grouped by
    :class:`AspectRatioGroupedBatchSampler` with ``groups`` (see there), else its consecutive
    ``batch_size`` samples; the first is the batch an uninterrupted run deals after ``start``
    batches, on ``rank`` of ``world_size``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if groups is None:
        stream = TrainingSampler(
            size, seed=seed, rank=rank, world_size=world_size, start=start * batch_size
        )
        return _consecutive_batches(stream, batch_size)
    stream = TrainingSampler(size, seed=seed, rank=rank, world_size=world_size)
    return AspectRatioGroupedBatchSampler(stream, groups, batch_size, start=start)


def _consecutive_batches(
    stream: TrainingSampler, batch_size: int
) -> Iterator[list[tuple[int, int]]]:
    """The endless ``stream`` in batches of ``batch_size`` consecutive samples."""
    samples = iter(stream)
    while True:
        yield list(itertools.islice(samples, batch_size))


def _groups_of_indices(groups: np.ndarray) -> SampleGroups:
    """The :data:`SampleGroups` of samples grouped by their index alone."""
    if len(groups) and groups.min() < 0:
        raise ValueError(f"group ids must be >= 0, got {int(groups.min())}")
    return lambda indices, seeds: groups[indices]


class InferenceSampler(Sampler[int]):
    """Each index once, in order, split into contiguous per-rank shards.

    Concatenating the shards of ranks ``0 .. world_size - 1`` gives ``range(size)``; the shards
    differ in length by at most one.
    """

    def __init__(self, size: int, *, rank: int = 0, world_size: int = 1) -> None:
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        _check_shard(rank, world_size)
        self.begin = rank * size // world_size
        self.end = (rank + 1) * size // world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.begin, self.end))

    def __len__(self) -> int:
        return self.end - self.begin


class SizeGroupedBatchSampler(Sampler[list[int]]):
    """Batches of an :class:`InferenceSampler` shard in which every image has the same key.

    With the padded input size as the key, no image of a batch is padded beyond its own size,
    so batching does not change its detections; sorting by key keeps batches full.

    Args:
        shard: the shard's indices.
        keys: a sortable key (e.g. the padded ``(h, w)``) of every index of the dataset.
        batch_size: most indices per batch.
    """

    def __init__(
        self, shard: InferenceSampler, keys: Sequence[tuple[int, int]], batch_size: int
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        groups: dict[tuple[int, int], list[int]] = {}
        for index in sorted(shard, key=lambda i: keys[i]):
            groups.setdefault(keys[index], []).append(index)
        self.batches = [
            group[start : start + batch_size]
            for group in groups.values()
            for start in range(0, len(group), batch_size)
        ]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
