"""Whether a tensor's memory is a view of a file's pages (``torch.load(mmap=True)``) or its own,
read off Linux's ``/proc/self/maps``, for the tests of readers that map what they read once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

MAPS = Path("/proc/self/maps")
needs_proc_maps = pytest.mark.skipif(not MAPS.is_file(), reason="reads Linux's /proc/self/maps")


def mapped_from(tensor: torch.Tensor, path: Path) -> bool:
    """Whether ``tensor``'s data lies in a mapping of the file ``path``."""
    address = tensor.data_ptr()
    for line in MAPS.read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5] == str(path.resolve()):
            low, high = (int(bound, 16) for bound in fields[0].split("-"))
            if low <= address < high:
                return True
    return False
