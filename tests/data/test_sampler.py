"""Tests for the training/inference samplers and the data loaders built on them."""

from __future__ import annotations

import itertools
import random
import signal

import pytest
import torch
from torch.utils.data import Dataset

from sparsercnn.data.loader import build_test_loader, build_train_loader
from sparsercnn.data.sampler import InferenceSampler, SizeGroupedBatchSampler, TrainingSampler
from sparsercnn.structures import Batch, Sample, Target


def _take(sampler: TrainingSampler, count: int) -> list[tuple[int, int]]:
    return list(itertools.islice(iter(sampler), count))


@pytest.mark.parametrize(("size", "world_size"), [(10, 2), (11, 2), (7, 3), (2, 4)])
def test_ranks_are_disjoint_and_cover_each_epoch(size: int, world_size: int) -> None:
    per_rank = -(-size // world_size)
    for epoch in range(3):
        shards = []
        for rank in range(world_size):
            sampler = TrainingSampler(size, seed=5, rank=rank, world_size=world_size)
            assert sampler.samples_per_epoch == per_rank
            stream = _take(sampler, per_rank * 3)
            shards.append([index for index, _ in stream[epoch * per_rank : (epoch + 1) * per_rank]])
        combined = [index for shard in shards for index in shard]
        assert set(combined) == set(range(size))
        # Only the padding repeats indices.
        assert len(combined) - len(set(combined)) == per_rank * world_size - size


def test_epochs_are_reshuffled_and_seeds_differ() -> None:
    stream = _take(TrainingSampler(50, seed=0), 150)
    epochs = [[index for index, _ in stream[e * 50 : (e + 1) * 50]] for e in range(3)]
    assert all(sorted(order) == list(range(50)) for order in epochs)
    assert epochs[0] != epochs[1] != epochs[2]
    seeds = [seed for _, seed in stream]
    assert len(set(seeds)) == len(seeds)


def test_same_arguments_same_stream_other_seed_other_stream() -> None:
    assert _take(TrainingSampler(20, seed=3), 60) == _take(TrainingSampler(20, seed=3), 60)
    assert _take(TrainingSampler(20, seed=3), 60) != _take(TrainingSampler(20, seed=4), 60)


@pytest.mark.parametrize("start", [0, 1, 6, 7, 13, 30])
def test_resume_continues_the_uninterrupted_stream(start: int) -> None:
    full = _take(TrainingSampler(7, seed=11, rank=1, world_size=2), 60)
    resumed = _take(TrainingSampler(7, seed=11, rank=1, world_size=2, start=start), 20)
    assert resumed == full[start : start + 20]


def test_unshuffled_order_and_invalid_arguments() -> None:
    stream = _take(TrainingSampler(4, seed=0, shuffle=False), 8)
    assert [index for index, _ in stream] == [0, 1, 2, 3, 0, 1, 2, 3]
    with pytest.raises(ValueError, match="rank"):
        TrainingSampler(4, seed=0, rank=2, world_size=2)
    with pytest.raises(ValueError, match="non-empty"):
        TrainingSampler(0, seed=0)


@pytest.mark.parametrize(("size", "world_size"), [(10, 3), (2, 4), (9, 1), (0, 2)])
def test_inference_sampler_shards_in_order(size: int, world_size: int) -> None:
    shards = [
        list(InferenceSampler(size, rank=r, world_size=world_size)) for r in range(world_size)
    ]
    assert [i for shard in shards for i in shard] == list(range(size))
    lengths = [
        len(InferenceSampler(size, rank=r, world_size=world_size)) for r in range(world_size)
    ]
    assert lengths == [len(shard) for shard in shards]
    assert max(lengths) - min(lengths) <= 1


class TinyDataset(Dataset[Sample]):
    """Samples whose content records the index and a draw from the per-sample seed."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: int | tuple[int, int]) -> Sample:
        index, seed = key if isinstance(key, tuple) else (key, 0)
        draw = random.Random(seed).random()
        image = torch.full((3, 4, 5), index, dtype=torch.uint8)
        target = Target(boxes=torch.tensor([[0.0, 0.0, 1.0, draw]]), labels=torch.tensor([index]))
        return Sample(image=image, target=target, image_id=index, original_size=(4, 5))


def _summary(batch: Batch) -> list[tuple[int, float]]:
    return [(i, float(t.boxes[0, 3])) for i, t in zip(batch.image_ids, batch.targets, strict=True)]


def _batches(
    num_workers: int, start_iter: int, count: int, **kwargs: int
) -> list[list[tuple[int, float]]]:
    loader = build_train_loader(
        TinyDataset(7),
        batch_size=3,
        num_workers=num_workers,
        seed=2,
        start_iter=start_iter,
        **kwargs,
    )
    return [_summary(batch) for batch in itertools.islice(loader, count)]


def test_train_loader_resume_and_worker_count_give_the_same_batches() -> None:
    uninterrupted = _batches(num_workers=2, start_iter=0, count=9)
    assert _batches(num_workers=2, start_iter=4, count=5) == uninterrupted[4:]
    assert _batches(num_workers=0, start_iter=0, count=9) == uninterrupted
    assert all(len(batch) == 3 for batch in uninterrupted)
    # 27 samples over epochs of 7: every index appears, and the augmentation seeds vary.
    assert {i for batch in uninterrupted for i, _ in batch} == set(range(7))
    assert len({d for batch in uninterrupted for _, d in batch}) == 27


def test_train_loader_ranks_see_disjoint_data() -> None:
    rank0 = _batches(num_workers=0, start_iter=0, count=1, rank=0, world_size=2)
    rank1 = _batches(num_workers=0, start_iter=0, count=1, rank=1, world_size=2)
    assert not {i for i, _ in rank0[0]} & {i for i, _ in rank1[0]}


def test_test_loader_yields_every_image_once_in_order() -> None:
    loader = build_test_loader(TinyDataset(7), batch_size=3, num_workers=2)
    batches = list(loader)
    assert [len(batch) for batch in batches] == [3, 3, 1]
    assert [i for batch in batches for i in batch.image_ids] == list(range(7))
    shard = build_test_loader(TinyDataset(7), batch_size=4, num_workers=0, rank=1, world_size=2)
    assert [i for batch in shard for i in batch.image_ids] == [3, 4, 5, 6]


def test_size_grouped_batches_hold_one_size_each() -> None:
    keys = [(96, 128), (64, 64), (96, 128), (128, 96), (64, 64), (96, 128), (96, 128)]
    shard = InferenceSampler(len(keys), rank=0, world_size=1)
    batches = list(SizeGroupedBatchSampler(shard, keys, batch_size=3))
    assert sorted(i for batch in batches for i in batch) == list(range(len(keys)))
    assert all(len({keys[i] for i in batch}) == 1 and len(batch) <= 3 for batch in batches)
    assert batches == [[1, 4], [0, 2, 5], [6], [3]]  # sorted by size, dataset order within
    second = SizeGroupedBatchSampler(InferenceSampler(len(keys), rank=1, world_size=2), keys, 2)
    assert sorted(i for batch in second for i in batch) == [3, 4, 5, 6]


class _SignalReportingDataset(TinyDataset):
    """Samples whose label says whether the loading process ignores SIGINT (1) or not (0)."""

    def __getitem__(self, key: int | tuple[int, int]) -> Sample:
        sample = super().__getitem__(key)
        ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        sample.target.labels[:] = int(ignored)
        return sample


@pytest.mark.usefixtures("python_sigint")
def test_loader_workers_ignore_ctrl_c() -> None:
    """A terminal's Ctrl-C reaches the workers too: they leave it to the main process (training
    finishes its step and saves a checkpoint), instead of dying under the step's batch."""
    train = build_train_loader(_SignalReportingDataset(4), batch_size=2, num_workers=1, seed=0)
    test = build_test_loader(_SignalReportingDataset(4), batch_size=2, num_workers=1)
    for batch in (next(train), next(iter(test))):
        assert [int(t.labels[0]) for t in batch.targets] == [1, 1]
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN  # the main process acts
