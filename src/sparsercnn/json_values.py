"""Type tests of values parsed from JSON (annotation files, results files, label maps): an
integer or a number, never a bool.

Exact types: JSON gives plain ``int`` and ``float``, and ``True`` (an ``int`` subclass to
Python) must not pass for ``1``.
"""

from __future__ import annotations

from typing import TypeGuard


def is_int(value: object) -> TypeGuard[int]:
    """Whether ``value`` is a JSON integer (``int``, not ``bool``)."""
    return type(value) is int


def is_number(value: object) -> TypeGuard[int | float]:
    """Whether ``value`` is a JSON number (``int`` or ``float``, not ``bool``)."""
    return type(value) is int or type(value) is float
