"""Fixtures of the engine tests (the data itself is made by :mod:`synthetic_coco`)."""

from __future__ import annotations

import pytest
from synthetic_coco import TinyCoco, write_tiny_coco


@pytest.fixture(scope="session")
def tiny_coco(tmp_path_factory: pytest.TempPathFactory) -> TinyCoco:
    """Six 96x128 images with two boxes each (categories 1 and 3), shared by the session."""
    return write_tiny_coco(tmp_path_factory.mktemp("tiny_coco"))
