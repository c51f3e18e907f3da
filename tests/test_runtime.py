"""Process-level runtime settings: the glibc allocator policy and the native-bf16 check."""

from __future__ import annotations

import platform
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
    assert runtime.retain_freed_memory.cache_info().misses <= 1


def test_freed_large_tensors_are_reused_without_new_page_faults() -> None:
    if not runtime.retain_freed_memory():
        pytest.skip("the allocator could not be configured on this platform")
    resource = pytest.importorskip("resource")

    def fill_and_free() -> None:
        torch.ones(64 * 2**20 // 4)  # 64 MiB, above glibc's largest mmap threshold

    fill_and_free()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        fill_and_free()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    # Re-mapping 64 MiB costs 16384 page faults each time; reused memory costs none.
    assert faults < 4096


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
