"""A file the user may not read, for the tests of the message that says so: ``chmod`` has no
effect as root (which the tests may run as), so ``open`` is made to refuse it instead."""

from __future__ import annotations

import builtins
import errno
from pathlib import Path
from typing import Any

import pytest


def deny_reading(monkeypatch: pytest.MonkeyPatch, module: str, path: Path) -> None:
    """Make ``open`` in ``module`` (a dotted name) raise PermissionError for ``path``, as the
    system does for a file without read permission."""
    real_open = builtins.open

    def denied_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, str | Path) and Path(file) == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(f"{module}.open", denied_open, raising=False)
