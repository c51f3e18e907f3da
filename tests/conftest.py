"""Fixtures shared by every test folder: synthetic COCO data sets made by
:func:`tests.synthetic_coco.write_coco`, the untrained tiny model file of
:mod:`tests.tiny_model`, and its ONNX export; the font warnings forgotten between tests."""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests import synthetic_coco
from tests.synthetic_coco import SyntheticCoco, WriteCoco
from tests.tiny_model import write_tiny_model_file

if TYPE_CHECKING:
    from sparsercnn.export import ExportReport


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``-n``, on by default in pyproject.toml) the workers share the CPUs:
    each worker, and every CLI process its tests start, runs torch on the worker's share of the
    cores, so that two workers on two cores do not each spin two threads."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers is None:
        return
    import torch

    threads = max(1, (os.cpu_count() or 1) // int(workers))
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


@pytest.fixture
def write_coco(tmp_path: Path) -> WriteCoco:
    """``write_coco(**options)`` writes a data set into ``tmp_path/coco`` (then ``coco1``, ...);
    the options are those of :func:`tests.synthetic_coco.write_coco`."""
    counter = itertools.count()

    def write(**options: Any) -> SyntheticCoco:
        index = next(counter)
        return synthetic_coco.write_coco(tmp_path / f"coco{index or ''}", **options)

    return write


@pytest.fixture(scope="session")
def tiny_coco(tmp_path_factory: pytest.TempPathFactory) -> SyntheticCoco:
    """The default data set, shared by the session (read it, never change it): six noisy
    96x128 PNGs with a red box (category 1) and a green box (category 3) each."""
    return synthetic_coco.write_coco(tmp_path_factory.mktemp("tiny_coco"))


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    """:func:`write_tiny_model_file` in the test's folder."""
    return write_tiny_model_file(tmp_path / "model.safetensors")


@pytest.fixture(scope="session")
def session_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`write_tiny_model_file` once per session, the model that :func:`onnx_export`
    exported; read it, never change it."""
    return write_tiny_model_file(tmp_path_factory.mktemp("session_model") / "model.safetensors")


@pytest.fixture(scope="session")
def onnx_export(session_model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportReport:
    """The ONNX export of :func:`session_model_file` with its self-check (``check=True``), once
    per session: the slow part of the ONNX tests (~30 s on two CPU cores). Its file is alone in
    its folder; read it, never change it, and write nothing next to it."""
    for module in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(module)
    from sparsercnn.export import export_onnx

    output = tmp_path_factory.mktemp("model_onnx") / "model.onnx"
    return export_onnx(session_model_file, output, check=True)


@pytest.fixture(scope="session")
def model_file_onnx(onnx_export: ExportReport) -> Path:
    """The file of :func:`onnx_export` (the weights of :func:`model_file`, too); read it, never
    change it."""
    return onnx_export.path


@pytest.fixture
def python_sigint() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt during the test, as in an interactive run, even where the
    tests were started with SIGINT ignored (a background job: Python keeps an inherited
    SIG_IGN)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def fresh_warnings() -> Iterator[None]:
    """The once-per-command font warnings (drawings and plots) forget what earlier tests were
    warned about."""
    from sparsercnn.visualization import font

    font._reported_glyphs.clear()
    yield
    font._reported_glyphs.clear()


@pytest.fixture
def coco_index_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one at every faster-coco-eval ``COCO`` index a
    :class:`~sparsercnn.evaluation.CocoGroundTruth` builds while the test runs."""
    import faster_coco_eval

    from sparsercnn.evaluation import ground_truth

    builds: list[int] = []

    class CountedCOCO(faster_coco_eval.COCO):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            builds.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(ground_truth, "COCO", CountedCOCO)
    return builds
