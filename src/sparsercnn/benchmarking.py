"""Inference latency and throughput of one model, backend, device and input size.

:func:`run_benchmark` times the three parts of inference separately, each with a device
synchronisation around it: preprocessing (normalise + pad a batch of resized uint8 images),
the model, and post-processing (top-k, rescale, clip), plus backbone + FPN alone so that the
head's share is visible. Backends: ``eager`` PyTorch (channels-last), ``compile``
(``torch.compile`` at the fixed input size), ``onnx`` (an export run by onnxruntime, where
normalisation and post-processing are inside the graph: its preprocess is the host-side padding
and its postprocess the slicing of each image's ``num_detections`` entries) and ``onnx-int8``
(the same export with int8 convolutions, :mod:`sparsercnn.export.quantization`, calibrated on
the benchmark's random images: timing only); the onnx backends run on the device by
onnxruntime's execution provider, as :class:`~sparsercnn.export.onnx_runtime.OnnxPredictor`
does, and their results name it. Results carry the hardware, library versions and settings,
as JSON and as a ``BENCHMARKS.md`` table row, and notes where the timed runs were not in steady
state (page faults) or far apart (:data:`STEADY_SPREAD`). Running a benchmark configures the
process allocator with :func:`~sparsercnn.runtime.retain_freed_memory`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from sparsercnn.config import CompileMode, Config, Precision
from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.transforms import resized_shape
from sparsercnn.model import SparseRCNN, build_model, build_postprocessor
from sparsercnn.model.cuda_graphs import CudaGraphs
from sparsercnn.model.inference import check_precision, computing_in
from sparsercnn.model.int8_features import calibrate
from sparsercnn.model_file import LoadedModel, load_model_file
from sparsercnn.presets import get_preset
from sparsercnn.runtime import (
    check_device,
    fast_bf16_supported,
    minor_page_faults,
    parse_device,
    retain_freed_memory,
)
from sparsercnn.structures import ImageBatch

Backend = Literal["eager", "compile", "cuda-graphs", "onnx", "onnx-int8"]
ONNX_BACKENDS = ("onnx", "onnx-int8")
PARTS = ("preprocess", "model", "postprocess", "total", "backbone_fpn")
# Above this many minor page faults per timed run (4 MiB of fresh 4 KiB pages) memory was still
# being allocated afresh: each fault costs microseconds (~11 us in a KVM guest), so the timed
# runs were not in steady state.
STEADY_FAULTS_PER_RUN = 1024
# Above this ratio of the slowest timed run to the fastest, the machine's speed changed while the
# runs were timed (other work, or a virtual machine whose host drifts): the result may not
# compare with another run's.
STEADY_SPREAD = 1.3
# What settings compared in one process (:func:`run_benchmarks`) may differ in; they share
# everything else.
COMPARED_FIELDS = ("backend", "dtype", "compile_mode")


@dataclass
class BenchmarkSettings:
    """What to time.

    Attributes:
        checkpoint: a model file; None benchmarks ``preset`` with random weights.
        preset: preset name, the model when there is no checkpoint (None with one).
        device: ``cpu``, ``cuda`` or ``cuda:N``: for PyTorch's backends a device PyTorch has
            (:func:`~sparsercnn.runtime.check_device`), for the onnx ones one onnxruntime has
            an execution provider for (:func:`~sparsercnn.export.onnx_runtime.onnx_device`,
            :func:`~sparsercnn.export.onnx_runtime.session_providers`: ``cuda`` needs
            onnxruntime-gpu, not PyTorch's CUDA).
        backend: ``eager``, ``compile``, ``cuda-graphs`` (CUDA: the eager kernels replayed from
            CUDA graphs) or ``onnx`` / ``onnx-int8`` (fp32 inputs only).
        batch_size: images per run.
        image_size: ``(h, w)`` of the resized input images; None: the test resize of a 480x640
            (COCO-like) image.
        dtype: ``fp32``, ``bf16`` (autocast), ``winograd`` (fp32 with Winograd 3x3
            convolutions; CPU, eager backend) or ``int8`` (int8 backbone and FPN; CPU, eager
            backend; a model without int8 calibration is calibrated on the benchmark's random
            images, for timing only), the precisions of
            :data:`~sparsercnn.model.inference.PRECISIONS`.
        compile_mode: ``torch.compile`` mode of the ``compile`` backend on CUDA (``reduce-overhead``
            replays CUDA graphs); None is the default mode. On CPUs the backend always compiles
            with frozen weights, which excludes a mode.
        threads: intra-op CPU threads; None keeps the library default.
        warmup, iters: untimed and timed runs.
    """

    checkpoint: Path | None = None
    preset: str | None = "r50_100pro_3x"
    device: str = "cpu"
    backend: Backend = "eager"
    batch_size: int = 1
    image_size: tuple[int, int] | None = None
    dtype: Precision = "fp32"
    compile_mode: CompileMode | None = None
    threads: int | None = None
    warmup: int = 3
    iters: int = 20


@dataclass
class PartTiming:
    """Latency statistics of one part, in milliseconds per batch; throughput from the median.
    ``min_ms`` is the fastest run (other work on the machine only ever slows a run down) and
    ``max_ms`` the slowest."""

    p50_ms: float
    p95_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    images_per_s: float

    @staticmethod
    def from_seconds(seconds: list[float], batch_size: int) -> PartTiming:
        p50, p95 = np.percentile(np.asarray(seconds), [50, 95])
        return PartTiming(
            p50_ms=float(p50) * 1e3,
            p95_ms=float(p95) * 1e3,
            mean_ms=float(np.mean(seconds)) * 1e3,
            min_ms=min(seconds) * 1e3,
            max_ms=max(seconds) * 1e3,
            images_per_s=batch_size / max(float(p50), 1e-12),
        )


@dataclass
class BenchmarkResult:
    """Everything a benchmark row needs: settings, timings, hardware, versions.

    ``page_faults_per_run`` is the process's minor page faults per timed run (None where the OS
    does not count them); above :data:`STEADY_FAULTS_PER_RUN` a note says the runs were not in
    steady state. ``provider`` is the onnxruntime execution provider that ran an onnx backend
    (``CPUExecutionProvider``, ``CUDAExecutionProvider``), None for PyTorch's backends.
    """

    model: str
    settings: dict[str, Any]
    timings: dict[str, PartTiming]
    hardware: dict[str, Any]
    versions: dict[str, str]
    setup_seconds: float
    page_faults_per_run: float | None = None
    notes: list[str] = field(default_factory=list)
    provider: str | None = None

    @property
    def runs_on(self) -> str:
        """The device, and for an onnx backend its execution provider, as ``eval`` and
        ``predict`` name them: ``cpu``, ``cuda:0 (onnxruntime CUDAExecutionProvider)``."""
        device = self.settings["device"]
        return f"{device} (onnxruntime {self.provider})" if self.provider else device

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def markdown_header() -> str:
        columns = [
            "model", "backend", "device", "dtype", "batch", "input h x w", "threads",
            "preprocess ms", "model ms (p50 / p95)", "postprocess ms", "backbone+FPN ms",
            "images/s", "hardware", "torch",
        ]  # fmt: skip
        return "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)

    def markdown_row(self) -> str:
        """One ``BENCHMARKS.md`` row (p50 unless stated; images/s of the whole pipeline)."""
        s, t = self.settings, self.timings
        hardware = self.hardware.get("gpu") or self.hardware.get("machine") or self.hardware["cpu"]
        backend = s["backend"] + (f" ({s['compile_mode']})" if s.get("compile_mode") else "")
        cells = [
            self.model, backend, self.runs_on, s["dtype"], str(s["batch_size"]),
            f"{s['image_size'][0]} x {s['image_size'][1]}", str(s["threads"]),
            f"{t['preprocess'].p50_ms:.1f}",
            f"{t['model'].p50_ms:.1f} / {t['model'].p95_ms:.1f}",
            f"{t['postprocess'].p50_ms:.2f}", f"{t['backbone_fpn'].p50_ms:.1f}",
            f"{t['total'].images_per_s:.2f}", hardware, self.versions["torch"],
        ]  # fmt: skip
        return "| " + " | ".join(cells) + " |"


@dataclass
class _Parts:
    """The timed callables of one backend; ``model`` consumes what ``preprocess`` returns.
    ``sync`` waits for the device's work (a no-op where the calls return with it done);
    ``provider`` is the onnxruntime execution provider running them, None for PyTorch."""

    preprocess: Callable[[], Any]
    model: Callable[[Any], Any]
    postprocess: Callable[[Any], Any]
    backbone_fpn: Callable[[Any], Any]
    sync: Callable[[], None]
    provider: str | None = None


def run_benchmark(settings: BenchmarkSettings) -> BenchmarkResult:
    """Build the model and backend, warm up, then time ``settings.iters`` runs of every part.

    Raises:
        ValueError: an impossible combination (onnx in bf16, CUDA missing for PyTorch, or
            onnxruntime without a CUDA provider, ...).
        ImportError: an onnx backend without the ``export`` extra.
    """
    return run_benchmarks([settings])[0]


@dataclass
class _Run:
    """One setting of :func:`run_benchmarks`: its timed parts, and what its runs gave."""

    settings: BenchmarkSettings
    parts: _Parts
    notes: list[str]
    setup_seconds: float = 0.0
    seconds: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in PARTS})
    faults: int | None = 0


def run_benchmarks(settings: Sequence[BenchmarkSettings]) -> list[BenchmarkResult]:
    """Several settings of one model, compared in one process: each is built and warmed up,
    then their timed runs alternate (one run of each in turn, ``iters`` times), so that a
    machine whose speed drifts slows them alike. They may differ only in
    :data:`COMPARED_FIELDS` (they share the model, its random weights and the images).

    Raises:
        ValueError: no settings, settings that differ elsewhere, or an impossible combination
            (onnx in bf16, CUDA missing for PyTorch, or onnxruntime without a CUDA provider,
            ...).
        ImportError: an onnx backend without the ``export`` extra (one line with the install
            hint), before any model is built.
    """
    if not settings:
        raise ValueError("benchmark needs at least one setting")
    first = settings[0]
    for other in settings[1:]:
        differing = [
            name
            for name, value in asdict(other).items()
            if name not in COMPARED_FIELDS and value != getattr(first, name)
        ]
        if differing:
            raise ValueError(
                f"settings compared in one process may differ only in {', '.join(COMPARED_FIELDS)}"
                f", not in {', '.join(differing)}"
            )
    device = parse_device(first.device)
    for each in settings:
        try:
            _check_settings(each, device)
        except ValueError as error:
            if len(settings) == 1:
                raise
            raise ValueError(f"backend {each.backend} with dtype {each.dtype}: {error}") from None
    shared_notes = []
    if not retain_freed_memory():
        shared_notes.append(
            "glibc could not be told to reuse freed memory: large tensors page-fault"
        )
    loaded = _load(first)
    height, width = first.image_size or resized_shape(
        480, 640, loaded.config.input.test_min_size, loaded.config.input.test_max_size
    )
    generator = torch.Generator().manual_seed(0)
    images = [
        torch.randint(0, 256, (3, height, width), generator=generator, dtype=torch.uint8)
        for _ in range(first.batch_size)
    ]
    previous_threads = torch.get_num_threads()
    if first.threads is not None:
        torch.set_num_threads(first.threads)
    # The onnx backends first: they export the model from the CPU, where PyTorch's backends
    # move it to the device.
    order = sorted(range(len(settings)), key=lambda i: settings[i].backend not in ONNX_BACKENDS)
    try:
        with contextlib.ExitStack() as stack:
            prepared = {
                i: _prepare(settings[i], loaded, images, device, stack, shared_notes) for i in order
            }
            runs = [prepared[i] for i in range(len(settings))]
            for _ in range(first.iters):
                for run in runs:
                    faults_before = minor_page_faults()
                    with torch.no_grad(), computing_in(run.settings.dtype, device):
                        _time_run(run.parts, run.seconds)
                    faults_after = minor_page_faults()
                    if faults_before is None or faults_after is None or run.faults is None:
                        run.faults = None
                    else:
                        run.faults += faults_after - faults_before
    finally:
        torch.set_num_threads(previous_threads)
    return [_result(run, (height, width), previous_threads) for run in runs]


def _prepare(
    settings: BenchmarkSettings,
    loaded: LoadedModel,
    images: list[Tensor],
    device: torch.device,
    stack: contextlib.ExitStack,
    shared_notes: list[str],
) -> _Run:
    """Build one setting's backend (its temporary files live as long as ``stack``), run it once
    (compilation, session initialisation: the setup time) and warm it up."""
    notes = list(shared_notes)
    if settings.backend == "onnx-int8":
        notes.append(
            "int8 calibrated on the benchmark's random images: a timing-only graph (calibrate "
            "on real images with `sparsercnn export --int8 --calibration DIR --output "
            "model_int8.onnx` for accuracy)"
        )
    if settings.dtype == "int8" and loaded.model.int8_calibration is None:
        notes.append(
            "int8 calibrated on the benchmark's random images: timing only (calibrate on real "
            "images with `sparsercnn export --int8 --calibration DIR --output "
            "model_int8.safetensors` for accuracy)"
        )
    if settings.dtype == "bf16" and not fast_bf16_supported(device):
        notes.append(f"{device.type} has no native bf16: bf16 is emulated (slower than fp32)")
    start = time.perf_counter()
    if settings.backend in ONNX_BACKENDS:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        int8 = settings.backend == "onnx-int8"
        parts = _onnx_parts(loaded, images, settings.threads, folder, device, int8=int8)
    else:
        parts = _torch_parts(loaded, images, settings, device)
    with torch.no_grad(), computing_in(settings.dtype, device):
        _run_parts(parts)  # first run: compilation / session initialisation
        setup = time.perf_counter() - start
        for _ in range(settings.warmup):
            _run_parts(parts)
    return _Run(settings=settings, parts=parts, notes=notes, setup_seconds=setup)


def _result(run: _Run, image_size: tuple[int, int], default_threads: int) -> BenchmarkResult:
    """The :class:`BenchmarkResult` of one setting's timed runs."""
    settings, notes = run.settings, list(run.notes)
    notes.extend(spread_notes(run.seconds["total"]))
    faults_per_run = None if run.faults is None else run.faults / settings.iters
    if faults_per_run is not None and faults_per_run > STEADY_FAULTS_PER_RUN:
        notes.append(
            f"{faults_per_run:.0f} minor page faults per timed run: memory was still being "
            "allocated afresh, so the timed runs may be slower than steady state; use more "
            "--warmup runs"
        )
    resolved = {**asdict(settings), "image_size": list(image_size)}
    resolved["checkpoint"] = str(settings.checkpoint) if settings.checkpoint else None
    resolved["threads"] = settings.threads or default_threads
    return BenchmarkResult(
        model=settings.checkpoint.name if settings.checkpoint else str(settings.preset),
        settings=resolved,
        timings={
            k: PartTiming.from_seconds(v, settings.batch_size) for k, v in run.seconds.items()
        },
        hardware=hardware_info(torch.device(settings.device)),
        versions=library_versions(),
        setup_seconds=run.setup_seconds,
        page_faults_per_run=faults_per_run,
        notes=notes,
        provider=run.parts.provider,
    )


def spread_notes(seconds: list[float]) -> list[str]:
    """A note when the slowest of the timed runs ``seconds`` took more than
    :data:`STEADY_SPREAD` times the fastest; else none."""
    fastest, slowest = min(seconds), max(seconds)
    if slowest <= STEADY_SPREAD * fastest:
        return []
    return [
        f"the timed runs took {fastest * 1e3:.1f} to {slowest * 1e3:.1f} ms "
        f"({slowest / fastest:.2f}x apart): the machine's speed changed while they ran, so this "
        "result may not compare with another run's; repeat it on an idle machine, or compare "
        "the fastest runs (min_ms in --output)"
    ]


def _check_settings(settings: BenchmarkSettings, device: torch.device) -> None:
    """Refuse an impossible setting before any model is built; the device as PyTorch's for its
    backends, as onnxruntime's for the onnx ones (:func:`_check_onnx_device`)."""
    if settings.batch_size < 1 or settings.iters < 1 or settings.warmup < 0:
        raise ValueError("batch_size and iters must be >= 1 and warmup >= 0")
    if settings.backend in ONNX_BACKENDS and settings.dtype != "fp32":
        graph = "int8 convolutions, the rest fp32" if settings.backend == "onnx-int8" else "fp32"
        raise ValueError(
            f"dtype {settings.dtype} sets how the PyTorch model computes; the {settings.backend} "
            f"backend runs its exported graph as it is ({graph}): give it dtype fp32 (the "
            "default)"
            + (
                ", or time int8 in PyTorch with the eager backend"
                if settings.dtype == "int8"
                else ""
            )
        )
    if settings.backend not in ("eager", "compile", "cuda-graphs", *ONNX_BACKENDS):
        raise ValueError(
            f"unknown backend {settings.backend!r}; use eager, compile, cuda-graphs, onnx or "
            "onnx-int8"
        )
    if settings.backend == "cuda-graphs" and device.type != "cuda":
        raise ValueError(f"the cuda-graphs backend needs a CUDA device, not {settings.device}")
    if settings.backend in ONNX_BACKENDS:
        _check_onnx_device(settings.device)
    else:
        check_device(settings.device)
    if settings.dtype in ("winograd", "int8"):
        if settings.backend != "eager":
            raise ValueError(
                f"dtype {settings.dtype} runs on the eager backend only (the {settings.backend} "
                "backend would keep the float convolutions)"
            )
        check_precision(settings.dtype, device)
    if settings.compile_mode is not None and (
        settings.backend != "compile" or device.type != "cuda"
    ):
        raise ValueError(
            f"compile_mode {settings.compile_mode!r} needs the compile backend on CUDA (on CPUs "
            "the compile backend freezes weights instead, which torch.compile cannot combine "
            "with a mode)"
        )


def _check_onnx_device(device: str) -> None:
    """Refuse ``device`` where this onnxruntime has no execution provider for it (the modules
    the onnx backends need checked first), as :class:`~sparsercnn.export.onnx_runtime.
    OnnxPredictor` would once the model is exported."""
    from sparsercnn.export.onnx_export import require_modules

    require_modules("onnx", "onnxscript", "onnxruntime")
    import onnxruntime

    from sparsercnn.export.onnx_runtime import onnx_device, session_providers

    available = onnxruntime.get_available_providers()
    session_providers(onnx_device(device, available), available)


def _load(settings: BenchmarkSettings) -> LoadedModel:
    if settings.checkpoint is not None:
        return load_model_file(settings.checkpoint)
    if settings.preset is None:
        raise ValueError("benchmark needs a model file or a preset")
    config: Config = get_preset(settings.preset)
    num_classes = config.model.num_classes
    categories = CategoryMap(list(range(num_classes)), [str(i) for i in range(num_classes)])
    return LoadedModel(model=build_model(config).eval(), config=config, categories=categories)


def _torch_parts(
    loaded: LoadedModel, images: list[Tensor], settings: BenchmarkSettings, device: torch.device
) -> _Parts:
    model: SparseRCNN = loaded.model.eval().to(device)
    if settings.dtype == "int8" and model.int8_calibration is None:
        with torch.no_grad():
            batch = model.preprocess(images).tensor.contiguous(memory_format=torch.channels_last)
            model.set_int8_calibration(calibrate(model.backbone, model.fpn, [batch]))
    postprocessor = build_postprocessor(loaded.config)
    sizes = [(int(i.shape[1]), int(i.shape[2])) for i in images]
    forward: Callable[[ImageBatch], Any] = model
    features: Callable[[ImageBatch], Any] = model.extract_features
    if settings.backend == "compile":
        # Fixed input sizes: no dynamic shapes, so the compiled graphs are specialised to them.
        # On CPUs, inference "freezing" turns the weights into graph constants: Inductor then
        # prepacks them for oneDNN and fuses bias, ReLU and residual adds into the convolutions.
        # On CUDA, a mode may be chosen instead (reduce-overhead: CUDA graphs).
        options: dict[str, str | int | bool | Callable[..., Any]] | None = (
            {"freezing": True} if device.type == "cpu" else None
        )
        mode = settings.compile_mode
        forward = torch.compile(model, dynamic=False, mode=mode, options=options)
        features = torch.compile(model.extract_features, dynamic=False, mode=mode, options=options)
    elif settings.backend == "cuda-graphs":
        forward = CudaGraphs(model)
        features = CudaGraphs(model, lambda batch, _: model.extract_features(batch))
    return _Parts(
        preprocess=lambda: model.preprocess(images),
        model=forward,
        postprocess=lambda output: postprocessor(output, sizes),
        backbone_fpn=features,
        sync=_synchronizer(device),
    )


def _onnx_parts(
    loaded: LoadedModel,
    images: list[Tensor],
    threads: int | None,
    folder: Path,
    device: torch.device,
    *,
    int8: bool = False,
) -> _Parts:
    """The parts of the onnx backends: the model's export and its backbone + FPN alone (both
    written to ``folder``), run by onnxruntime sessions on ``device`` with the execution
    provider :class:`~sparsercnn.export.onnx_runtime.OnnxPredictor` chooses (its outputs come
    back to the host: a run returns with its work done)."""
    import onnxruntime

    from sparsercnn.export.onnx_export import detections_of, export_backbone_fpn, export_onnx
    from sparsercnn.export.onnx_runtime import SPINNING_KEY, OnnxPredictor, open_session
    from sparsercnn.export.quantization import export_int8_onnx, quantize_graph

    example = loaded.model.preprocess(images).tensor
    backbone_path = export_backbone_fpn(loaded.model, example, folder / "backbone_fpn.onnx")
    if int8:
        export_int8_onnx(loaded, folder / "model.onnx", images, check=False, compare=False)
        feeds = [{"images": example.numpy()}]
        quantize_graph(backbone_path, folder / "backbone_fpn_int8.onnx", feeds, lambda x: x)
        backbone_path = folder / "backbone_fpn_int8.onnx"
    else:
        export_onnx(loaded, folder / "model.onnx", check=False)
    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    # onnxruntime's threads spin-wait after each run by default, taking the cores from what
    # runs next: the other session's part, or another setting's run (on 2 cores both ran 2-3x
    # slower, an eager run after an onnx one 10x). Without spinning each part is timed alone.
    options.add_session_config_entry(SPINNING_KEY, "0")
    predictor = OnnxPredictor(
        folder / "model.onnx", num_threads=threads, device=device, allow_spinning=False
    )
    backbone, _ = open_session(backbone_path, predictor.device, options)
    originals = [(int(i.shape[1]), int(i.shape[2])) for i in images]

    def postprocess(outputs: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        return [detections_of(outputs, i)[0] for i in range(len(outputs[0]))]

    return _Parts(
        preprocess=lambda: predictor.prepare(images, originals),
        model=lambda inputs: predictor.run(*inputs),
        postprocess=postprocess,
        backbone_fpn=lambda inputs: backbone.run(None, {"images": example.numpy()}),
        sync=lambda: None,
        provider=predictor.provider,
    )


def _synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _run_parts(parts: _Parts) -> None:
    batch = parts.preprocess()
    parts.postprocess(parts.model(batch))
    parts.backbone_fpn(batch)
    parts.sync()


def _time_run(parts: _Parts, seconds: dict[str, list[float]]) -> None:
    """One timed run of every part, appended to ``seconds`` (by :data:`PARTS`). The
    backbone+FPN is timed right after the whole pipeline, so a machine whose speed drifts slows
    both alike and their difference (the head and the rest) stays meaningful."""
    sync = parts.sync
    ticks = [time.perf_counter()]
    batch = parts.preprocess()
    sync()
    ticks.append(time.perf_counter())
    output = parts.model(batch)
    sync()
    ticks.append(time.perf_counter())
    parts.postprocess(output)
    sync()
    ticks.append(time.perf_counter())
    for name, begin, end in zip(PARTS[:3], ticks[:-1], ticks[1:], strict=True):
        seconds[name].append(end - begin)
    seconds["total"].append(ticks[-1] - ticks[0])
    with _stopwatch(seconds["backbone_fpn"], sync):
        parts.backbone_fpn(batch)


def fastest_seconds(run: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """The fastest of ``repeats`` timed calls of ``run`` (CPU work; synchronise inside ``run``
    for a GPU), after ``warmup`` untimed ones: for kernel probes, where the minimum is the
    steadiest estimate of what the kernel can do."""
    for _ in range(warmup):
        run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


@contextlib.contextmanager
def _stopwatch(into: list[float], sync: Callable[[], None]) -> Iterator[None]:
    start = time.perf_counter()
    yield
    sync()
    into.append(time.perf_counter() - start)


def hardware_info(device: torch.device) -> dict[str, Any]:
    """The machine kind (:func:`machine_kind`, which names the development machine that a CPU
    model name alone does not), CPU model and core count, and the GPU's name when ``device``
    is CUDA."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    kind = machine_kind()
    info: dict[str, Any] = {
        "machine": cpu if kind.startswith("unknown machine") else kind,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "gpu": None,
    }
    if device.type == "cuda":
        # An onnx backend runs on a GPU that a CPU-only PyTorch cannot name.
        available = torch.cuda.is_available()
        named = torch.cuda.get_device_name(device) if available else None
        index = device.index or 0
        info["gpu"] = named or f"unknown GPU cuda:{index} (a CPU-only PyTorch cannot name it)"
    return info


def machine_kind() -> str:
    """The development machine kind for benchmark tables: ``machine C`` (AVX-512 with AMX
    tiles for bf16 and int8), ``machine D`` (AMD CPU family 26, Zen 5: AVX-512 with
    avx512_bf16 on full-width units), ``machine A`` (AVX-512 with avx512_bf16, AMD family 25),
    ``machine B`` (AVX2 only), or the CPU model (from ``lscpu``)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown machine (no lscpu)"
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    name = fields.get("Model name", "unknown CPU").strip()
    cores = fields.get("CPU(s)", "?").strip()
    family = fields.get("CPU family", "").strip()
    if "amx_bf16" in flags:
        return f"machine C ({name}, {cores} CPUs, AVX-512 with AMX bf16 and int8)"
    if "avx512_bf16" in flags and family == "26":
        return f"machine D ({name} family 26, {cores} CPUs, AVX-512 with avx512_bf16, Zen 5)"
    if "avx512_bf16" in flags:
        return f"machine A ({name}, {cores} CPUs, AVX-512 with avx512_bf16)"
    if "avx2" in flags:
        return f"machine B ({name}, {cores} CPUs, AVX2 only)"
    return f"{name}, {cores} CPUs"


def library_versions() -> dict[str, str]:
    """Versions of Python, torch, numpy, onnxruntime and sparsercnn."""
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for package in ("numpy", "onnxruntime", "sparsercnn"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
