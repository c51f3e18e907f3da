"""Fixtures of the diagnostics tests (the data is made by :mod:`.diagnostics_data`)."""

from __future__ import annotations

import pytest

from tests.diagnostics.diagnostics_data import DiagnosticsData, write_diagnostics_data


@pytest.fixture(scope="session")
def data(tmp_path_factory: pytest.TempPathFactory) -> DiagnosticsData:
    """Five 96x128 images (one with 20 objects) and the tiny model file, shared by the session."""
    return write_diagnostics_data(tmp_path_factory.mktemp("diagnostics"))
