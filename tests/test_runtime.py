"""Process-level runtime settings: the glibc allocator policy, page-fault counts and the
native-bf16 check."""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys

import pytest
import torch

from sparsercnn import runtime
from sparsercnn.cli import main as cli_main


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt is a glibc function",
)
def test_retain_freed_memory_configures_glibc_once() -> None:
    assert runtime.retain_freed_memory() is True
    assert runtime.retain_freed_memory() is True  # cached: glibc is told once


_MALLINFO2_FIELDS = (
    "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
    "keepcost",
)  # fmt: skip


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (glibc >= 2.33)."""

    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2_FIELDS]


def test_freed_large_tensors_stay_in_the_heap_for_reuse() -> None:
    if not runtime.retain_freed_memory():
        pytest.skip("the allocator could not be configured on this platform")
    mallinfo2 = getattr(ctypes.CDLL("libc.so.6"), "mallinfo2", None)
    if mallinfo2 is None:
        pytest.skip("glibc older than 2.33 has no mallinfo2")
    mallinfo2.restype = _MallInfo2
    size = 64 * 2**20  # above glibc's largest automatic mmap threshold (32 MiB)
    before = mallinfo2()
    block = torch.ones(size // 4)
    during = mallinfo2()
    del block
    after = mallinfo2()
    # Served from the heap (not a private mapping) and kept there once freed.
    assert during.hblkhd - before.hblkhd < size
    assert during.uordblks - before.uordblks >= size
    assert after.fordblks + after.keepcost >= size


# A child process: allocate and free a 64 MiB block, then report whether glibc served it from
# the heap (no private mapping) and kept it there.
_HEAP_PROBE = f"""
import ctypes
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in {_MALLINFO2_FIELDS}]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 64 * 2**20
block = libc.malloc(size)
mapped = libc.mallinfo2().hblkhd >= size
libc.free(block)
after = libc.mallinfo2()
print(int(not mapped and after.fordblks + after.keepcost >= size))
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="GLIBC_TUNABLES is glibc's",
)
def test_retained_memory_tunables_give_another_process_the_same_policy() -> None:
    # bench_speed.py starts the official code with them, so both sides allocate alike.
    if getattr(ctypes.CDLL("libc.so.6"), "mallinfo2", None) is None:
        pytest.skip("glibc older than 2.33 has no mallinfo2")
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    probe = [sys.executable, "-c", _HEAP_PROBE]
    default = subprocess.run(probe, env=env, capture_output=True, text=True, check=True)
    env["GLIBC_TUNABLES"] = runtime.RETAINED_MEMORY_TUNABLES
    tuned = subprocess.run(probe, env=env, capture_output=True, text=True, check=True)
    assert (default.stdout.strip(), tuned.stdout.strip()) == ("0", "1")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux counts minor faults")
def test_minor_page_faults_count_first_touches_of_fresh_memory() -> None:
    import mmap

    before = runtime.minor_page_faults()
    assert before is not None
    pages = 256
    with mmap.mmap(-1, pages * mmap.PAGESIZE) as fresh:  # anonymous: no page mapped yet
        for page in range(pages):
            fresh[page * mmap.PAGESIZE] = 1
    after = runtime.minor_page_faults()
    assert after is not None and after - before >= pages // 2  # the kernel may fault around


def test_fast_bf16_supported() -> None:
    assert runtime.fast_bf16_supported(torch.device("meta")) is False
    expected = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert runtime.fast_bf16_supported(torch.device("cpu")) is expected
    if not torch.cuda.is_available():
        assert runtime.fast_bf16_supported(torch.device("cuda")) is False


def test_cli_configures_the_allocator(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(cli_main, "retain_freed_memory", lambda: calls.append(1) or True)
    with pytest.raises(SystemExit):
        cli_main.main(["--version"])
    assert calls == []  # nothing runs for --version
    assert cli_main.main(["validate", "--json", "missing.json", "--images", "."]) == 2
    assert calls == [1]


@pytest.mark.parametrize("name", ["mps", "meta", "xpu"])
def test_a_device_type_sparsercnn_does_not_run_on_is_refused(name: str) -> None:
    """Was accepted, then a traceback-like failure deep in the model ("PyTorch is not linked
    with support for mps devices", a meta-tensor NotImplementedError)."""
    with pytest.raises(ValueError, match=rf"^device '{name}': sparsercnn runs on 'cpu', 'cuda'"):
        runtime.check_device(name)
    with pytest.raises(ValueError, match=rf"^--device '{name}': sparsercnn runs on"):
        runtime.resolve_device(name, argument="--device")
    assert runtime.check_device("cpu:0") == torch.device("cpu:0")


def test_a_gpu_index_beyond_the_gpus_here_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert runtime.check_device("cuda:1") == torch.device("cuda:1")
    assert runtime.resolve_device(None) == torch.device("cuda")
    with pytest.raises(
        ValueError, match=r"^device 'cuda:2': there is no GPU 2 here; use 'cuda:0' to 'cuda:1'$"
    ):
        runtime.check_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(
        ValueError, match=r"^--device 'cuda:1': there is no GPU 1 here; use 'cuda:0'$"
    ):
        runtime.resolve_device("cuda:1", argument="--device")


def test_no_cuda_is_refused_naming_the_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.resolve_device(None) == torch.device("cpu")
    with pytest.raises(ValueError, match=r"^device 'cuda': no CUDA device is available here"):
        runtime.check_device("cuda")
    with pytest.raises(ValueError, match=r"^'cuda:0': no CUDA device is available here"):
        runtime.check_device("cuda:0", argument=None)


def test_a_device_name_is_checked_apart_from_pytorch_having_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """parse_device is the name rule alone, which onnxruntime's check follows too: a GPU that a
    CPU-only PyTorch does not have is still a device name (onnxruntime-gpu may run on it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.parse_device("cuda:1") == torch.device("cuda", 1)
    assert runtime.parse_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match=r"^--device 'gpu' is not a device; use 'cpu'"):
        runtime.parse_device("gpu", argument="--device")
    with pytest.raises(ValueError, match=r"^device 'mps': sparsercnn runs on 'cpu', 'cuda'"):
        runtime.parse_device("mps")
