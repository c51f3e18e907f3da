"""The training images a checkpoint records, and the warning naming those a resumed run
changed."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch

from sparsercnn.engine.training_images import (
    DataChange,
    data_change,
    data_identity,
    log_data_change,
)


class _Images:
    """What :func:`data_identity` reads of a ``CocoDataset``."""

    def __init__(self, ids: list[int], sizes: list[tuple[int, int]] | None = None) -> None:
        self.image_ids = ids
        self.image_sizes = sizes if sizes is not None else [(64, 80)] * len(ids)


def _identity(ids: list[int], sizes: list[tuple[int, int]] | None = None) -> dict[str, Any]:
    identity = data_identity(_Images(ids, sizes))
    assert identity is not None
    return identity


def test_the_digest_is_that_of_older_checkpoints() -> None:
    """A checkpoint written before the ids were kept holds only this digest: the same images
    must give it still, or every such run would be warned about on resume."""
    assert _identity([1, 2, 3])["digest"] == "1f686f3c1e0b9f9b"


def test_a_dataset_without_ids_has_no_identity() -> None:
    assert data_identity(object()) is None


def test_added_removed_and_resized_images_are_named() -> None:
    before = _identity(list(range(1, 2001)))
    sizes = [(64, 80)] * 1980 + [(32, 40)] * 2 + [(64, 80)] * 18
    now = _identity([*range(11, 2001), *range(5000, 5020)], sizes)
    change = data_change(before, now)
    assert change == DataChange(
        added=list(range(5000, 5020)),
        removed=list(range(1, 11)),
        resized=[(1991, (64, 80), (32, 40)), (1992, (64, 80), (32, 40))],
    )
    assert change.describe() == (
        "20 added, e.g. ids 5000, 5001, 5002; 10 removed, e.g. ids 1, 2, 3; "
        "2 resized: ids 1991 64x80 -> 32x40, 1992 64x80 -> 32x40"
    )


def test_the_same_images_in_another_order_are_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Other indices give other batches, though no image changed."""
    with caplog.at_level("WARNING"):
        log_data_change(_identity([1, 2, 3]), _identity([3, 1, 2]))
    assert "trained on 3 images with 3 (the same images in another order)" in caplog.text


@pytest.mark.parametrize("saved", [None, {"num_images": 3, "digest": "1f686f3c1e0b9f9b"}])
def test_no_warning_for_the_same_or_unknown_images(
    caplog: pytest.LogCaptureFixture, saved: dict[str, Any] | None
) -> None:
    with caplog.at_level("WARNING"):
        log_data_change(saved, _identity([1, 2, 3]))
        log_data_change(_identity([1, 2, 3]), None)
        log_data_change(_identity([1, 2, 3]), _identity([1, 2, 3]))
    assert not caplog.records


def test_the_ids_and_sizes_of_100k_images_take_little_room() -> None:
    """Kept in every checkpoint: 16 bytes an image."""
    identity = _identity(list(range(100_000)), [(480, 640)] * 100_000)
    stored = {key: identity[key] for key in ("image_ids", "image_sizes")}
    assert sum(tensor.nbytes for tensor in stored.values()) == 1_600_000
    buffer = io.BytesIO()
    torch.save(identity, buffer)
    assert buffer.tell() < 1_700_000
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert torch.equal(loaded["image_sizes"], identity["image_sizes"])
