"""Another process that holds a lock file (:func:`~sparsercnn.file_lock.exclusive_lock`), for
the tests of what finds it held: a training run's folder, the download cache."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_HOLD = """
import sys
from pathlib import Path
from sparsercnn.file_lock import exclusive_lock

with exclusive_lock(Path(sys.argv[1]), lambda holder: None):
    print("locked", flush=True)
    sys.stdin.read()
"""


@contextmanager
def lock_held_elsewhere(path: Path) -> Iterator[subprocess.Popen[str]]:
    """A Python process holding the lock of ``path`` while the block runs (its ``pid`` is the
    holder's), then ended."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        said = process.stdout.readline()
        assert said == "locked\n", f"the process holding {path} did not start: {said!r}"
        yield process
    finally:
        process.kill()
        process.wait()
