"""Packages whose names load on first use: what a name resolves to, what dir() lists, and the
error for a name that does not exist."""

from __future__ import annotations

import subprocess
import sys

import pytest

import sparsercnn
from sparsercnn import video, visualization, weights
from sparsercnn.lazy_import import lazy_exports


def test_a_lazy_name_is_its_modules_and_dir_lists_it() -> None:
    getattr_, dir_ = lazy_exports("pkg", {"dumps": "json"}, {"version": 1})
    import json

    assert getattr_("dumps") is json.dumps
    assert dir_() == ["dumps", "version"]
    with pytest.raises(AttributeError, match="module 'pkg' has no attribute 'nope'"):
        getattr_("nope")


@pytest.mark.parametrize("package", [sparsercnn, weights, visualization, video])
def test_every_exported_name_of_the_packages_resolves(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert set(names) <= set(dir(package))
    assert all(getattr(package, name) is not None for name in names)
    with pytest.raises(AttributeError, match=f"module '{package.__name__}' has no attribute"):  # type: ignore[attr-defined]
        package.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def test_importing_the_packages_loads_no_torch() -> None:
    code = (
        "import sys, sparsercnn, sparsercnn.weights, sparsercnn.visualization, sparsercnn.video; "
        "print(sorted(m for m in ('torch', 'matplotlib', 'av') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
