"""A stand-in for ``safe_open`` that opens the file with the real one and hands every call on to
it, for tests that watch or break what a reader does with the handle: subclass it, override
:meth:`WrappedSafeOpen.get_tensor` (or ``__init__``), and put the subclass in place of the
reader's ``safe_open`` with ``monkeypatch.setattr``."""

from __future__ import annotations

from typing import Any

import torch
from safetensors import safe_open


class WrappedSafeOpen:
    """``safe_open(path, framework=framework)``, each call handed on to the real handle."""

    def __init__(self, path: str, framework: str) -> None:
        self.inner = safe_open(path, framework=framework)

    def __enter__(self) -> WrappedSafeOpen:
        self.handle = self.inner.__enter__()
        return self

    def __exit__(self, *error: object) -> None:
        self.inner.__exit__(*error)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)

    def get_tensor(self, key: str) -> torch.Tensor:
        return self.handle.get_tensor(key)
