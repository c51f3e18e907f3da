"""JSON-lines files (one JSON object per line), read as a run killed mid-write leaves them."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def read_json_lines(path: str | Path) -> list[dict[str, Any]]:
    """The objects of ``path``, in file order. Blank lines are skipped; a line that is not a
    JSON object (the end of a run killed while writing it) is skipped with a warning naming
    ``file:line``."""
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if isinstance(record, dict):
                records.append(record)
            else:
                logger.warning("%s:%d is not a JSON record; skipped", path, number)
    return records
