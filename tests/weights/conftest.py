"""Fixtures of the weights tests: the tiny reference-layout checkpoints of
:mod:`.reference_checkpoints`, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.weights.reference_checkpoints import (
    TINY,
    ReferencePair,
    make_pair,
    save_mmdet,
    save_official,
)


@pytest.fixture(scope="session")
def tiny_pair() -> ReferencePair:
    return make_pair(TINY)


@pytest.fixture(scope="session")
def tiny_files(
    tmp_path_factory: pytest.TempPathFactory, tiny_pair: ReferencePair
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reference")
    return {
        "official": save_official(root / "r18_official.pth", tiny_pair.official),
        "mmdet": save_mmdet(root / "r18_mmdet.pth", tiny_pair.mmdet),
    }
