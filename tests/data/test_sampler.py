"""Tests for the training/inference samplers and the data loaders built on them."""

from __future__ import annotations

import itertools
import random
import signal
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from sparsercnn.data.loader import build_test_loader, build_train_loader
from sparsercnn.data.sampler import (
    AspectRatioGroupedBatchSampler,
    InferenceSampler,
    SizeGroupedBatchSampler,
    TrainingSampler,
    orientation_groups,
    training_batches,
)
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


def _grouped_by_hand(
    stream: TrainingSampler, groups: Sequence[int], batch_size: int
) -> Iterator[list[tuple[int, int]]]:
    """detectron2's AspectRatioGroupedDataset, sample by sample: the obviously right version."""
    buckets: dict[int, list[tuple[int, int]]] = {}
    for index, seed in stream:
        bucket = buckets.setdefault(groups[index], [])
        bucket.append((index, seed))
        if len(bucket) == batch_size:
            yield bucket[:]
            bucket.clear()


def _grouped(
    groups: Sequence[int], batch_size: int, count: int, start: int = 0, **shard: int
) -> list[list[tuple[int, int]]]:
    stream = TrainingSampler(len(groups), seed=9, **shard)
    sampler = AspectRatioGroupedBatchSampler(stream, groups, batch_size, start=start)
    return list(itertools.islice(sampler, count))


def test_orientation_groups_put_squares_with_portraits() -> None:
    sizes = [(480, 640), (640, 480), (500, 500), (1, 2), (2, 1)]
    assert orientation_groups(sizes).tolist() == [1, 0, 0, 1, 0]


@pytest.mark.parametrize(("world_size", "batch_size"), [(1, 3), (1, 1), (2, 4), (3, 2)])
def test_grouped_batches_hold_one_orientation_in_stream_order(
    world_size: int, batch_size: int
) -> None:
    groups = [1, 0, 0, 1, 1, 0, 1, 1, 0, 1, 1]
    for rank in range(world_size):
        shard = {"rank": rank, "world_size": world_size}
        batches = _grouped(groups, batch_size, 40, **shard)
        assert all(len(batch) == batch_size for batch in batches)
        assert all(len({groups[i] for i, _ in batch}) == 1 for batch in batches)
        assert {groups[batch[0][0]] for batch in batches} == {0, 1}
        expected = _grouped_by_hand(TrainingSampler(11, seed=9, **shard), groups, batch_size)
        assert batches == list(itertools.islice(expected, 40))


@pytest.mark.parametrize("start", [1, 2, 5, 17, 40])
@pytest.mark.parametrize(("size", "world_size", "rank"), [(11, 1, 0), (7, 2, 1), (3, 4, 2)])
def test_grouped_resume_continues_the_uninterrupted_batches(
    start: int, size: int, world_size: int, rank: int
) -> None:
    groups = [int(i % 3 == 0) for i in range(size)]
    shard = {"rank": rank, "world_size": world_size}
    uninterrupted = _grouped(groups, 4, start + 15, **shard)
    assert _grouped(groups, 4, 15, start=start, **shard) == uninterrupted[start:]


def test_one_orientation_groups_into_the_ungrouped_batches() -> None:
    for groups in ([0] * 7, [1] * 7):
        stream = list(itertools.islice(TrainingSampler(7, seed=9), 60))
        assert _grouped(groups, 3, 20) == [stream[i : i + 3] for i in range(0, 60, 3)]


def test_grouped_ranks_take_disjoint_shards_of_each_epoch() -> None:
    size, world_size, batch_size = 12, 2, 2
    groups = [1, 0, 0, 0, 1, 0, 1, 1, 0, 0, 1, 0]
    per_epoch = size // world_size
    epochs: list[dict[int, list[int]]] = []
    for rank in range(world_size):
        shard = {"rank": rank, "world_size": world_size}
        stream = list(itertools.islice(TrainingSampler(size, seed=9, **shard), 10 * per_epoch))
        position = {pair: i for i, pair in enumerate(stream)}  # seeds make pairs unique
        emitted = [pair for batch in _grouped(groups, batch_size, 20, **shard) for pair in batch]
        assert len(set(emitted)) == len(emitted) and set(emitted) <= set(stream)
        by_epoch: dict[int, list[int]] = {}
        for pair in emitted:
            by_epoch.setdefault(position[pair] // per_epoch, []).append(pair[0])
        epochs.append(by_epoch)
    for epoch in range(5):
        assert not set(epochs[0][epoch]) & set(epochs[1][epoch])


def _seed_parity(indices: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """A group that depends on the sample's seed, as an augmented orientation does."""
    return seeds % 2


@pytest.mark.parametrize("start", [0, 3, 11, 30])
def test_groups_of_each_sample_seed_group_and_resume(start: int) -> None:
    stream = TrainingSampler(5, seed=9)
    sampler = AspectRatioGroupedBatchSampler(stream, _seed_parity, 3, start=start)
    batches = list(itertools.islice(sampler, 20))
    assert all(len({seed % 2 for _, seed in batch}) == 1 for batch in batches)
    buckets: dict[int, list[tuple[int, int]]] = {}
    expected = []
    for index, seed in TrainingSampler(5, seed=9):  # by hand, sample by sample
        bucket = buckets.setdefault(seed % 2, [])
        bucket.append((index, seed))
        if len(bucket) == 3:
            expected.append(bucket[:])
            bucket.clear()
        if len(expected) == start + 20:
            break
    assert batches == expected[start:]


def test_grouped_sampler_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="start=0"):
        AspectRatioGroupedBatchSampler(TrainingSampler(3, seed=0, start=2), [0, 1, 0], 2)
    with pytest.raises(ValueError, match="3 groups for 4 samples"):
        AspectRatioGroupedBatchSampler(TrainingSampler(4, seed=0), [0, 1, 0], 2)
    with pytest.raises(ValueError, match="batch_size"):
        AspectRatioGroupedBatchSampler(TrainingSampler(3, seed=0), [0, 1, 0], 0)
    with pytest.raises(ValueError, match="group ids must be >= 0, got -1"):
        AspectRatioGroupedBatchSampler(TrainingSampler(3, seed=0), [0, -1, 0], 2)
    sampler = AspectRatioGroupedBatchSampler(
        TrainingSampler(3, seed=0), lambda indices, seeds: indices[:2], 2
    )
    with pytest.raises(ValueError, match=r"one id >= 0 per sample: got 2 .* for 3 samples"):
        next(iter(sampler))


class SizedTinyDataset(TinyDataset):
    """A :class:`TinyDataset` whose images have the given ``(h, w)`` sizes."""

    def __init__(self, sizes: Sequence[tuple[int, int]]) -> None:
        super().__init__(len(sizes))
        self.image_sizes = list(sizes)


_MIXED = [(4, 5), (5, 4), (4, 4), (3, 6), (6, 3), (2, 9), (7, 7), (9, 2), (4, 5)]


def _loader_batches(
    dataset: TinyDataset, count: int, start_iter: int = 0, num_workers: int = 0, **kwargs: bool
) -> list[list[tuple[int, float]]]:
    loader = build_train_loader(
        dataset, batch_size=3, num_workers=num_workers, seed=2, start_iter=start_iter, **kwargs
    )
    return [_summary(batch) for batch in itertools.islice(loader, count)]


def test_train_loader_groups_by_orientation_whatever_the_workers_or_resume() -> None:
    dataset = SizedTinyDataset(_MIXED)
    landscape = orientation_groups(_MIXED).tolist()
    grouped = _loader_batches(dataset, 12, aspect_ratio_grouping=True)
    assert all(len({landscape[i] for i, _ in batch}) == 1 for batch in grouped)
    assert grouped != _loader_batches(dataset, 12)  # this data set has mixed batches otherwise
    two_workers = _loader_batches(dataset, 12, num_workers=2, aspect_ratio_grouping=True)
    assert two_workers == grouped
    resumed = _loader_batches(dataset, 7, start_iter=5, num_workers=2, aspect_ratio_grouping=True)
    assert resumed == grouped[5:]


def test_train_loader_without_grouping_gives_consecutive_samples() -> None:
    """Grouping off: the batches of the loader before grouping existed, ``batch_size``
    consecutive samples of the stream, whatever the images' sizes."""
    stream = list(itertools.islice(TrainingSampler(len(_MIXED), seed=2), 30))
    expected = [
        [(i, float(torch.tensor(random.Random(seed).random()))) for i, seed in stream[k : k + 3]]
        for k in range(0, 30, 3)
    ]
    assert _loader_batches(SizedTinyDataset(_MIXED), 10) == expected
    assert _loader_batches(SizedTinyDataset(_MIXED), 10, aspect_ratio_grouping=False) == expected


@pytest.mark.parametrize("grouped", [True, False])
def test_training_batches_resume_the_uninterrupted_batches(grouped: bool) -> None:
    """The batches the loader and the recipe's price of a batch share, grouped or not."""
    groups = orientation_groups(_MIXED) if grouped else None
    whole = list(itertools.islice(training_batches(len(_MIXED), 3, seed=4, groups=groups), 12))
    resumed = training_batches(len(_MIXED), 3, seed=4, groups=groups, start=5)
    assert list(itertools.islice(resumed, 7)) == whole[5:]
    if not grouped:
        assert list(itertools.chain(*whole)) == _take(TrainingSampler(len(_MIXED), seed=4), 36)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        training_batches(len(_MIXED), 0, seed=4, groups=groups)


def test_train_loader_grouping_needs_the_image_sizes() -> None:
    with pytest.raises(TypeError, match=r"TinyDataset has no image_sizes.*aspect_ratio_grouping"):
        build_train_loader(TinyDataset(4), 2, 0, seed=0, aspect_ratio_grouping=True)
    dataset = SizedTinyDataset([(4, 5)] * 4)
    dataset.image_sizes.pop()
    with pytest.raises(ValueError, match="gives 3 sizes for 4 images"):
        build_train_loader(dataset, 2, 0, seed=0, aspect_ratio_grouping=True)
