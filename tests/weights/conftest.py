"""Fixtures of the weights tests: the tiny reference-layout checkpoints of
:mod:`.reference_checkpoints`, built once per session, and the download tests' HTTP server
(:mod:`.weights_server`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.weights.reference_checkpoints import (
    TINY,
    ReferencePair,
    make_pair,
    save_mmdet,
    save_official,
)
from tests.weights.weights_server import WeightsServer, serving


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


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[WeightsServer]:
    """An HTTP server with Range support on 127.0.0.1, shut down after the test."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with serving() as state:
        yield state
