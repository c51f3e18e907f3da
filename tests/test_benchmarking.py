"""The benchmark library on a tiny preset: every field present and sane (speed is not asserted)."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sparsercnn import benchmarking
from sparsercnn.benchmarking import (
    PARTS,
    BenchmarkResult,
    BenchmarkSettings,
    PartTiming,
    run_benchmark,
)
from sparsercnn.cli import benchmark as benchmark_cli
from sparsercnn.cli.main import main
from sparsercnn.model import inference
from sparsercnn.model.int8_features import Int8Features, calibrate, int8_available
from sparsercnn.model_file import load_model_file, save_model_file

needs_int8 = pytest.mark.skipif(
    not int8_available(), reason="this CPU or PyTorch build has no oneDNN int8 convolution"
)
RANDOM_CALIBRATION_NOTE = "int8 calibrated on the benchmark's random images"


@pytest.fixture(scope="module")
def result() -> BenchmarkResult:
    settings = BenchmarkSettings(
        preset="tiny", batch_size=2, image_size=(64, 96), threads=1, warmup=1, iters=2
    )
    return run_benchmark(settings)


def test_every_part_is_timed(result: BenchmarkResult) -> None:
    assert set(result.timings) == set(PARTS)
    for name, timing in result.timings.items():
        values = (timing.p50_ms, timing.p95_ms, timing.mean_ms, timing.min_ms, timing.max_ms)
        assert all(math.isfinite(v) and v > 0 for v in (*values, timing.images_per_s)), name
        assert timing.max_ms >= timing.p95_ms >= timing.p50_ms >= timing.min_ms
    parts = sum(result.timings[name].p50_ms for name in ("preprocess", "model", "postprocess"))
    assert result.timings["total"].p50_ms == pytest.approx(parts, rel=0.5)
    assert result.setup_seconds > 0


def test_settings_hardware_and_versions_are_recorded(result: BenchmarkResult) -> None:
    assert result.model == "tiny"
    assert result.settings["image_size"] == [64, 96]
    assert result.settings["threads"] == 1 and result.settings["backend"] == "eager"
    assert result.hardware["cpu"] and result.hardware["cpu_count"] >= 1
    assert result.versions["torch"] == torch.__version__
    assert {"python", "numpy", "onnxruntime", "sparsercnn"} <= set(result.versions)
    assert json.loads(json.dumps(result.to_dict()))["timings"]["model"]["p50_ms"] > 0


def test_markdown_row_matches_header(result: BenchmarkResult) -> None:
    header = BenchmarkResult.markdown_header().splitlines()[0]
    row = result.markdown_row()
    assert row.count("|") == header.count("|")
    assert "| tiny | eager | cpu | fp32 | 2 | 64 x 96 |" in row


def test_markdown_row_names_the_compile_mode(result: BenchmarkResult) -> None:
    settings = {**result.settings, "backend": "compile", "compile_mode": "reduce-overhead"}
    row = dataclasses.replace(result, settings=settings).markdown_row()
    assert "| tiny | compile (reduce-overhead) | cpu |" in row


def test_page_faults_of_the_timed_runs_are_counted_and_unsteady_runs_noted(
    result: BenchmarkResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert result.page_faults_per_run is not None and result.page_faults_per_run >= 0
    counter = iter(range(0, 10**9, 10**6))  # every call: a million more faults
    monkeypatch.setattr(benchmarking, "minor_page_faults", lambda: next(counter))
    settings = BenchmarkSettings(preset="tiny", image_size=(64, 64), threads=1, warmup=0, iters=2)
    faulty = run_benchmark(settings)
    assert faulty.page_faults_per_run == 10**6  # counted around each timed run
    assert any("page faults per timed run" in note for note in faulty.notes)
    monkeypatch.setattr(benchmarking, "minor_page_faults", lambda: None)  # no OS counter
    assert run_benchmark(settings).page_faults_per_run is None


def test_each_timed_run_times_the_backbone_right_after_the_pipeline() -> None:
    calls: list[str] = []

    def preprocess() -> str:
        calls.append("preprocess")
        return "batch"

    parts = benchmarking._Parts(
        preprocess=preprocess,
        model=lambda batch: calls.append(f"model {batch}"),
        postprocess=lambda output: calls.append("postprocess"),
        backbone_fpn=lambda batch: calls.append(f"backbone {batch}"),
        sync=lambda: None,
    )
    seconds: dict[str, list[float]] = {part: [] for part in PARTS}
    for _ in range(2):
        benchmarking._time_run(parts, seconds)
    assert calls == ["preprocess", "model batch", "postprocess", "backbone batch"] * 2
    assert all(len(seconds[part]) == 2 for part in PARTS)


def _fake_timed_runs(
    monkeypatch: pytest.MonkeyPatch, seconds: list[float], log: list[str] | None = None
) -> None:
    """Timed runs that take ``seconds`` in turn, logging whether bf16 autocast was on."""
    durations = itertools.cycle(seconds)

    def time_run(parts: object, into: dict[str, list[float]]) -> None:
        if log is not None:
            log.append("bf16" if torch.is_autocast_enabled("cpu") else "fp32")
        duration = next(durations)
        for part in PARTS:
            into[part].append(duration)

    monkeypatch.setattr(benchmarking, "_time_run", time_run)


def test_runs_far_apart_are_noted(monkeypatch: pytest.MonkeyPatch) -> None:
    def timed(seconds: list[float]) -> BenchmarkResult:
        _fake_timed_runs(monkeypatch, seconds)
        settings = BenchmarkSettings(preset="tiny", image_size=(64, 64), threads=1, iters=3)
        return run_benchmark(settings)

    (note,) = [n for n in timed([0.1, 0.2, 0.12]).notes if "apart" in n]
    assert note.startswith("the timed runs took 100.0 to 200.0 ms (2.00x apart)")
    assert not any("apart" in n for n in timed([0.1, 0.125, 0.13]).notes)  # within 1.3x


def test_settings_compared_in_one_process_alternate_run_by_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log: list[str] = []
    _fake_timed_runs(monkeypatch, [0.2, 0.1], log)  # fp32 runs 0.2 s, bf16 runs 0.1 s
    fp32 = BenchmarkSettings(preset="tiny", image_size=(64, 64), threads=1, warmup=0, iters=3)
    bf16 = dataclasses.replace(fp32, dtype="bf16")
    results = benchmarking.run_benchmarks([fp32, bf16])
    assert log == ["fp32", "bf16"] * 3
    assert [r.settings["dtype"] for r in results] == ["fp32", "bf16"]
    assert [r.timings["model"].p50_ms for r in results] == pytest.approx([200.0, 100.0])
    with pytest.raises(ValueError, match="may differ only in backend, dtype, compile_mode, not"):
        benchmarking.run_benchmarks([fp32, dataclasses.replace(bf16, threads=2)])
    with pytest.raises(ValueError, match="at least one setting"):
        benchmarking.run_benchmarks([])
    # An impossible combination among several is named.
    onnx_bf16 = dataclasses.replace(bf16, backend="onnx")
    with pytest.raises(
        ValueError, match=r"^backend onnx with dtype bf16: dtype bf16 sets how the PyTorch"
    ):
        benchmarking.run_benchmarks([fp32, onnx_bf16])


def test_thread_count_is_restored() -> None:
    before = torch.get_num_threads()
    run_benchmark(
        BenchmarkSettings(preset="tiny", image_size=(64, 64), threads=1, warmup=0, iters=1)
    )
    assert torch.get_num_threads() == before


def test_emulated_bf16_is_noted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(benchmarking, "fast_bf16_supported", lambda device: False)
    settings = BenchmarkSettings(
        preset="tiny", image_size=(64, 64), dtype="bf16", threads=1, warmup=0, iters=1
    )
    result = run_benchmark(settings)
    assert any("no native bf16" in note for note in result.notes)
    assert "note: cpu has no native bf16" in benchmark_cli.format_result(result)


def test_fastest_seconds_warms_up_then_keeps_the_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 3.0, 10.0, 11.0, 20.0, 22.0])  # timed calls of 3, 1 and 2 s
    monkeypatch.setattr(benchmarking.time, "perf_counter", lambda: next(clock))
    calls: list[int] = []
    best = benchmarking.fastest_seconds(lambda: calls.append(1), repeats=3, warmup=2)
    assert best == 1.0 and len(calls) == 5


def test_percentiles_and_throughput() -> None:
    timing = PartTiming.from_seconds([0.1, 0.2, 0.3, 0.4, 1.0], batch_size=4)
    assert timing.p50_ms == pytest.approx(300.0)
    assert timing.p95_ms == pytest.approx(880.0)
    assert timing.min_ms == pytest.approx(100.0) and timing.max_ms == pytest.approx(1000.0)
    assert timing.images_per_s == pytest.approx(4 / 0.3)
    assert timing.mean_ms == pytest.approx(400.0)
    even = PartTiming.from_seconds([0.4, 0.1, 0.3, 0.2], batch_size=1)  # unsorted, even count
    assert (even.p50_ms, even.min_ms, even.max_ms) == pytest.approx((250.0, 100.0, 400.0))
    assert even.images_per_s == pytest.approx(4.0)


@pytest.mark.parametrize(
    "changes",
    [
        {"backend": "onnx", "dtype": "bf16"},
        {"backend": "tensorrt"},
        {"iters": 0},
        {"compile_mode": "reduce-overhead"},  # a mode without the compile backend
        {"backend": "compile", "compile_mode": "max-autotune"},  # a mode on CPU
        {"backend": "compile", "dtype": "winograd"},  # compiled graphs keep direct convolutions
        {"backend": "compile", "dtype": "int8"},  # ... and float ones
        {"backend": "onnx", "dtype": "int8"},
    ],
)
def test_impossible_settings_are_rejected(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        run_benchmark(BenchmarkSettings(preset="tiny", **changes))  # type: ignore[arg-type]


def _cli_args(command: str) -> argparse.Namespace:
    """``command`` (space-separated) parsed by the ``benchmark`` subcommand's parser."""
    parser = argparse.ArgumentParser()
    benchmark_cli.add_parser(parser.add_subparsers())
    return parser.parse_args(command.split())


def test_cli_writes_json_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "result.json"
    args = _cli_args(
        "benchmark --preset tiny --image-size 64 64 --threads 1 --warmup 0 --iters 1 "
        f"--markdown --output {output}"
    )
    assert args.handler(args) == 0
    printed = capsys.readouterr().out
    assert "backbone_fpn" in printed and "| tiny | eager |" in printed
    assert json.loads(output.read_text())["settings"]["image_size"] == [64, 64]


def test_cli_compares_every_combination_in_one_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log: list[str] = []
    _fake_timed_runs(monkeypatch, [0.3, 0.1, 0.3, 0.1], log)  # fp32 0.3 s, bf16 0.1 s
    output = tmp_path / "results.json"
    args = _cli_args(
        "benchmark --preset tiny --image-size 64 64 --threads 1 --warmup 0 --iters 2 "
        f"--backend eager compile --dtype fp32 bf16 bf16 --markdown --output {output}"
    )
    monkeypatch.setattr(benchmarking, "_torch_parts", lambda *_: _no_parts())
    assert args.handler(args) == 0
    assert log == ["fp32", "bf16", "fp32", "bf16"] * 2  # each combination once, alternating
    printed = capsys.readouterr().out
    assert "compared in one process, timed runs alternating" in printed
    assert "  eager fp32            300.00 ms    1.00x" in printed
    assert "  compile bf16          100.00 ms    3.00x" in printed
    assert printed.count("| tiny | compile | cpu | bf16 |") == 1
    written = json.loads(output.read_text())
    assert [(r["settings"]["backend"], r["settings"]["dtype"]) for r in written] == [
        ("eager", "fp32"),
        ("eager", "bf16"),
        ("compile", "fp32"),
        ("compile", "bf16"),
    ]


def test_cli_gives_the_compile_mode_to_the_compile_backend_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compared: list[BenchmarkSettings] = []

    def run_benchmarks(settings: list[BenchmarkSettings]) -> list[BenchmarkResult]:
        compared.extend(settings)
        raise SystemExit(0)

    monkeypatch.setattr(benchmarking, "run_benchmarks", run_benchmarks)
    args = _cli_args("benchmark --backend eager compile --compile-mode reduce-overhead")
    with pytest.raises(SystemExit):
        args.handler(args)
    assert [(s.backend, s.compile_mode) for s in compared] == [
        ("eager", None),
        ("compile", "reduce-overhead"),
    ]
    monkeypatch.undo()
    # Without a compile backend the mode is refused, not ignored.
    args = _cli_args("benchmark --preset tiny --backend eager --compile-mode reduce-overhead")
    with pytest.raises(ValueError, match="compile_mode 'reduce-overhead' needs the compile"):
        args.handler(args)


def _no_parts() -> benchmarking._Parts:
    """Parts that do nothing: the runs before the timed ones, without building a backend."""
    return benchmarking._Parts(
        preprocess=lambda: None,
        model=lambda batch: None,
        postprocess=lambda output: None,
        backbone_fpn=lambda batch: None,
        sync=lambda: None,
    )


def test_cli_with_a_model_file_records_no_preset(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "result.json"
    args = _cli_args(
        f"benchmark --model {model_file} --image-size 64 64 --threads 1 --warmup 0 --iters 1 "
        f"--output {output}"
    )
    assert args.handler(args) == 0
    settings = json.loads(output.read_text())["settings"]
    assert settings["preset"] is None and settings["checkpoint"] == str(model_file)


@pytest.mark.parametrize(
    ("family", "flags", "kind"),
    [
        ("6", "avx2 avx512f avx512_bf16 amx_bf16 amx_int8 amx_tile", "machine C"),
        ("25", "avx2 avx512f avx512_bf16", "machine A"),
        ("26", "avx2 avx512f avx512_bf16 avx512_vp2intersect", "machine D"),
        ("25", "sse4_2 avx2", "machine B"),
        ("8", "neon", "ARM"),
    ],
)
def test_machine_kind_names_the_development_machines(
    monkeypatch: pytest.MonkeyPatch, family: str, flags: str, kind: str
) -> None:
    listing = f"Model name: ARM\nCPU(s): 2\nCPU family: {family}\nFlags: {flags}\n"
    completed = subprocess.CompletedProcess(["lscpu"], 0, stdout=listing, stderr="")
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: completed)
    assert benchmarking.machine_kind().startswith(kind)


@pytest.mark.slow
def test_onnx_int8_backend_times_a_quantized_graph() -> None:
    pytest.importorskip("onnxruntime.quantization")
    pytest.importorskip("onnxscript")
    settings = BenchmarkSettings(
        preset="tiny", backend="onnx-int8", image_size=(64, 96), threads=1, warmup=0, iters=1
    )
    result = run_benchmark(settings)
    assert result.settings["backend"] == "onnx-int8"
    # The provider its onnxruntime session ran on, as eval's report names it.
    assert result.runs_on == "cpu (onnxruntime CPUExecutionProvider)"
    assert all(result.timings[name].p50_ms > 0 for name in PARTS)
    assert any("timing-only" in note for note in result.notes)
    with pytest.raises(ValueError, match="the onnx-int8 backend runs its exported graph as it is"):
        run_benchmark(dataclasses.replace(settings, dtype="bf16"))


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_onnx_backends_without_onnxruntime_give_the_install_hint(
    backend: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before any model is built: one line naming the extra, not a bare import error."""

    def load(settings: BenchmarkSettings) -> None:
        raise AssertionError("built the model before finding onnxruntime missing")

    monkeypatch.setattr(benchmarking, "_load", load)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # find_spec: not installed
    argv = ["benchmark", "--preset", "tiny", "--backend", "eager", backend, "--iters", "1"]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        "sparsercnn benchmark: error: ONNX export needs onnxruntime: pip install "
        "'sparsercnn[export]' (onnx, onnxscript, onnxruntime)"
    )


def test_cuda_graphs_backend_needs_cuda() -> None:
    settings = BenchmarkSettings(preset="tiny", backend="cuda-graphs", image_size=(64, 96))
    with pytest.raises(ValueError, match="cuda-graphs backend needs a CUDA device, not cpu"):
        run_benchmark(settings)
    if torch.cuda.is_available():  # where it can run, it times every part
        result = run_benchmark(dataclasses.replace(settings, device="cuda", iters=2))
        assert all(result.timings[name].p50_ms > 0 for name in PARTS)


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("gpu", "device 'gpu' is not a device; use 'cpu', 'cuda' or 'cuda:N'"),
        ("mps", "device 'mps': sparsercnn runs on 'cpu', 'cuda' or 'cuda:N' only"),
        ("meta", "device 'meta': sparsercnn runs on 'cpu', 'cuda' or 'cuda:N' only"),
    ],
)
def test_a_device_that_is_not_one_here_is_refused_before_the_model_is_built(
    monkeypatch: pytest.MonkeyPatch, device: str, message: str
) -> None:
    """Was torch's "Expected one of cpu, cuda, ipu, ..." for "gpu", "PyTorch is not linked with
    support for mps devices" for "mps", and a meta-tensor NotImplementedError for "meta"."""

    def load(settings: BenchmarkSettings) -> None:
        raise AssertionError("the model was built for a device that is not one")

    monkeypatch.setattr(benchmarking, "_load", load)
    with pytest.raises(ValueError, match=f"^{message}$"):
        run_benchmark(BenchmarkSettings(preset="tiny", device=device))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"^device 'cuda:1': no CUDA device is available here"):
        run_benchmark(BenchmarkSettings(preset="tiny", device="cuda:1"))


def int8_feature_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one at every run of the int8 backbone and FPN."""
    calls: list[int] = []
    call = Int8Features.__call__

    def counted(self: Int8Features, x: torch.Tensor) -> list[torch.Tensor]:
        calls.append(1)
        return call(self, x)

    monkeypatch.setattr(Int8Features, "__call__", counted)
    return calls


@needs_int8
def test_int8_calibrates_a_preset_on_the_random_images(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = int8_feature_calls(monkeypatch)
    settings = BenchmarkSettings(
        preset="tiny", dtype="int8", image_size=(64, 96), threads=1, warmup=0, iters=1
    )
    result = run_benchmark(settings)
    assert result.settings["dtype"] == "int8" and result.settings["backend"] == "eager"
    assert all(math.isfinite(t.p50_ms) and t.p50_ms > 0 for t in result.timings.values())
    assert set(result.timings) == set(PARTS)
    # The first run and the timed one, each through the model and through backbone_fpn.
    assert len(calls) == 4
    (note,) = [n for n in result.notes if n.startswith(RANDOM_CALIBRATION_NOTE)]
    assert "sparsercnn export --int8" in note
    assert f"note: {RANDOM_CALIBRATION_NOTE}" in benchmark_cli.format_result(result)
    assert "| tiny | eager | cpu | int8 | 1 | 64 x 96 |" in result.markdown_row()


@needs_int8
def test_int8_uses_the_calibration_of_a_model_file(
    model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = load_model_file(model_file)
    model = loaded.model.eval()
    with torch.no_grad():
        image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
        ranges = calibrate(model.backbone, model.fpn, [model.preprocess([image]).tensor])
    path = save_model_file(
        tmp_path / "int8.safetensors", model, loaded.config, loaded.categories, ranges
    )

    def no_calibration(*args: object) -> None:
        raise AssertionError("the benchmark calibrated a model file that has a calibration")

    monkeypatch.setattr(benchmarking, "calibrate", no_calibration)
    calls = int8_feature_calls(monkeypatch)
    settings = BenchmarkSettings(
        checkpoint=path, dtype="int8", image_size=(64, 64), threads=1, warmup=0, iters=1
    )
    result = run_benchmark(settings)
    assert not any(note.startswith(RANDOM_CALIBRATION_NOTE) for note in result.notes)
    assert len(calls) == 4 and result.timings["model"].p50_ms > 0


def test_int8_needs_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inference, "int8_available", lambda: False)
    settings = BenchmarkSettings(preset="tiny", dtype="int8", image_size=(64, 64), iters=1)
    with pytest.raises(ValueError, match="no oneDNN int8 convolution"):
        run_benchmark(settings)


def test_int8_runs_on_the_eager_backend_only() -> None:
    settings = BenchmarkSettings(preset="tiny", dtype="int8", backend="compile", iters=1)
    with pytest.raises(ValueError, match="dtype int8 runs on the eager backend only"):
        run_benchmark(settings)


def test_the_onnx_int8_backend_is_not_given_the_int8_dtype() -> None:
    """The onnx-int8 backend is int8 already; --dtype int8 (PyTorch's int8) was refused as if
    the backend took "fp32 inputs only", which read as a contradiction."""
    settings = BenchmarkSettings(preset="tiny", dtype="int8", backend="onnx-int8", iters=1)
    with pytest.raises(ValueError, match="dtype int8 sets how the PyTorch model computes") as info:
        run_benchmark(settings)
    assert "int8 convolutions" in str(info.value) and "the eager backend" in str(info.value)


@pytest.mark.parametrize("backend", ["eager", "onnx"])
def test_the_printed_table_says_what_each_figure_measures(
    result: BenchmarkResult, backend: str
) -> None:
    """Units, statistics and parts are named under the table, per backend (onnx's parts are
    not eager's)."""
    shown = dataclasses.replace(result, settings={**result.settings, "backend": backend})
    printed = benchmark_cli.format_result(shown)
    assert "ms per batch of 2 (p50: median, p95: 95th percentile" in printed
    assert "images/s: batch / p50" in printed and "total: these three in one run" in printed
    assert "backbone_fpn: backbone and FPN alone (a part of model)" in printed
    onnx_parts = "postprocess: keeping each image's num_detections entries"
    assert (onnx_parts in printed) == (backend == "onnx")


def test_the_machine_kind_is_named_with_each_figure(
    result: BenchmarkResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CPU model name ("Intel(R) Xeon(R) Processor") does not tell machine C from another Xeon.
    assert result.hardware["machine"]
    kind = "machine C (Intel Xeon, 2 CPUs, AVX-512 with AMX bf16 and int8)"
    named = dataclasses.replace(result, hardware={**result.hardware, "machine": kind})
    assert f"| {kind} | {torch.__version__} |" in named.markdown_row()
    assert f"hardware: {kind}, cpu " in benchmark_cli.format_result(named)
    on_gpu = dataclasses.replace(named, hardware={**named.hardware, "gpu": "NVIDIA H200"})
    assert "| NVIDIA H200 |" in on_gpu.markdown_row()
    # Without lscpu, the CPU model stands for the kind.
    monkeypatch.setattr(benchmarking, "machine_kind", lambda: "unknown machine (no lscpu)")
    info = benchmarking.hardware_info(torch.device("cpu"))
    assert info["machine"] == info["cpu"]


def _fake_onnx_sessions(
    monkeypatch: pytest.MonkeyPatch, provider: str
) -> dict[str, tuple[object, object]]:
    """The onnx backend's two sessions, faked (no export): by file name, the model's
    ``(threads, device, spinning)`` and the backbone+FPN's ``(options, providers)``; both
    started on ``provider``."""
    onnxruntime = pytest.importorskip("onnxruntime")
    from sparsercnn.export import onnx_export, onnx_runtime

    sessions: dict[str, tuple[object, object]] = {}

    class Session:
        def __init__(self, path: str, sess_options: object, providers: list[object]) -> None:
            sessions[Path(path).name] = (sess_options, providers)

        def get_providers(self) -> list[str]:
            return [provider, onnx_runtime.CPU_PROVIDER]

    class Predictor:
        def __init__(
            self, path: Path, num_threads: int | None, device: torch.device, allow_spinning: bool
        ) -> None:
            sessions[path.name] = (num_threads, device, allow_spinning)  # type: ignore[assignment]
            self.device = str(onnx_runtime.onnx_device(device, [provider]))
            self.provider = provider

    monkeypatch.setattr(onnxruntime, "InferenceSession", Session)
    monkeypatch.setattr(onnx_runtime, "OnnxPredictor", Predictor)
    monkeypatch.setattr(onnx_export, "export_onnx", lambda loaded, path, check: path)
    monkeypatch.setattr(onnx_export, "export_backbone_fpn", lambda model, example, path: path)
    return sessions


def test_onnx_sessions_do_not_spin_between_the_timed_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnxruntime's idle threads spin by default, taking the cores from the next timed part
    (the other session's, or another setting's run): both sessions are made without."""
    onnxruntime = pytest.importorskip("onnxruntime")
    from sparsercnn.export import onnx_runtime

    sessions = _fake_onnx_sessions(monkeypatch, onnx_runtime.CPU_PROVIDER)
    loaded = benchmarking._load(BenchmarkSettings(preset="tiny"))
    images = [torch.zeros(3, 64, 64, dtype=torch.uint8)]
    benchmarking._onnx_parts(loaded, images, 1, tmp_path, torch.device("cpu"))
    assert sessions.pop("model.onnx") == (1, torch.device("cpu"), False)
    ((options, providers),) = sessions.values()  # the backbone+FPN's
    assert isinstance(options, onnxruntime.SessionOptions)
    assert options.get_session_config_entry(onnx_runtime.SPINNING_KEY) == "0"
    assert options.intra_op_num_threads == 1
    assert providers == [onnx_runtime.CPU_PROVIDER]


def test_onnx_backends_run_on_the_device_by_onnxruntime_s_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both sessions were CPU-only whatever the device; they follow it now as OnnxPredictor
    does (a CPU-only PyTorch beside onnxruntime-gpu included) and wait for no PyTorch stream."""
    from sparsercnn.export import onnx_runtime

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def no_torch_cuda(*args: object) -> None:
        raise AssertionError("synchronised a CUDA stream PyTorch does not have")

    monkeypatch.setattr(torch.cuda, "synchronize", no_torch_cuda)
    sessions = _fake_onnx_sessions(monkeypatch, onnx_runtime.CUDA_PROVIDER)
    monkeypatch.setattr(
        "onnxruntime.get_available_providers",
        lambda: [onnx_runtime.CUDA_PROVIDER, onnx_runtime.CPU_PROVIDER],
    )
    loaded = benchmarking._load(BenchmarkSettings(preset="tiny"))
    images = [torch.zeros(3, 64, 64, dtype=torch.uint8)]
    parts = benchmarking._onnx_parts(loaded, images, None, tmp_path, torch.device("cuda", 1))
    assert sessions.pop("model.onnx") == (None, torch.device("cuda", 1), False)
    ((_, providers),) = sessions.values()
    assert providers == [(onnx_runtime.CUDA_PROVIDER, {"device_id": 1}), onnx_runtime.CPU_PROVIDER]
    parts.sync()


def test_an_onnx_backend_s_gpu_is_checked_by_onnxruntime_before_the_model_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--backend onnx --device cuda`` was refused ("the onnx backend runs onnxruntime's CPU
    provider"); it is onnxruntime's CUDA provider that must be there, not PyTorch's CUDA."""
    onnxruntime = pytest.importorskip("onnxruntime")
    from sparsercnn.export import onnx_runtime

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def load(settings: BenchmarkSettings) -> None:
        raise RuntimeError("the model is built: the device was accepted")

    monkeypatch.setattr(benchmarking, "_load", load)
    settings = BenchmarkSettings(preset="tiny", backend="onnx", device="cuda")
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [onnx_runtime.CPU_PROVIDER])
    with pytest.raises(ValueError, match=r"^device 'cuda:0' \(--device\): the installed onnx"):
        run_benchmark(settings)
    with_cuda = [onnx_runtime.CUDA_PROVIDER, onnx_runtime.CPU_PROVIDER]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: with_cuda)
    with pytest.raises(RuntimeError, match="the device was accepted"):
        run_benchmark(settings)
    # Beside a PyTorch backend, that one still needs PyTorch's CUDA.
    eager = dataclasses.replace(settings, backend="eager")
    with pytest.raises(ValueError, match=r"^backend eager with dtype fp32: device 'cuda': no CUDA"):
        benchmarking.run_benchmarks([settings, eager])


def test_the_result_names_the_execution_provider_that_ran(result: BenchmarkResult) -> None:
    """An onnx result said ``device cuda`` only; it names the provider as eval's report does
    (``cuda:0 (onnxruntime CUDAExecutionProvider)``), in the table, the row and the JSON."""
    assert result.provider is None and result.runs_on == "cpu"
    onnx = dataclasses.replace(
        result,
        settings={**result.settings, "backend": "onnx", "device": "cuda:0"},
        provider="CUDAExecutionProvider",
    )
    named = "cuda:0 (onnxruntime CUDAExecutionProvider)"
    assert onnx.runs_on == named
    assert f"backend onnx, device {named}, dtype fp32" in benchmark_cli.format_result(onnx)
    assert f"| onnx | {named} | fp32 |" in onnx.markdown_row()
    assert onnx.to_dict()["provider"] == "CUDAExecutionProvider"


def test_a_gpu_that_pytorch_cannot_name_is_recorded_as_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An onnx backend on a GPU beside a CPU-only PyTorch: torch.cuda.get_device_name raised."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    info = benchmarking.hardware_info(torch.device("cuda"))
    assert info["gpu"] == "unknown GPU cuda:0 (a CPU-only PyTorch cannot name it)"
