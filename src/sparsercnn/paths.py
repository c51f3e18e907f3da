"""Where a path lies relative to a folder, as the user wrote them (no links resolved)."""

from __future__ import annotations

import os
from pathlib import Path


def is_below(path: Path, folder: Path, strictly: bool = False) -> bool:
    """Whether ``path`` is ``folder`` or inside it (``strictly``: inside only), by absolute
    path without resolving links."""
    path, folder = Path(os.path.abspath(path)), Path(os.path.abspath(folder))
    return path.is_relative_to(folder) and not (strictly and path == folder)
