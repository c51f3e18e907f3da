"""Packages whose public names load on first use (PEP 562): ``import sparsercnn``, and the
command line's ``--help``, must not import torch, matplotlib or the model."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: Mapping[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of a package whose names are imported
    from their modules at first use.

    Args:
        package: the package's ``__name__``, named when an attribute does not exist.
        exports: each lazy name -> the module that defines it.
        namespace: the package's ``globals()`` (the live dict), whose names ``__dir__`` lists
            with the lazy ones (for ``dir()`` and tab completion).

    Returns:
        ``(__getattr__, __dir__)``, to assign at the package's top level.
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
