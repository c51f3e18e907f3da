"""Process-level facts and settings that decide how fast PyTorch runs on this host.

Two things matter on CPUs and are invisible from the model code:

- **The allocator.** glibc serves every allocation above 32 MiB (a stride-4 FPN level of an
  800x1216 image is 62 MB) with a fresh ``mmap`` and returns it with ``munmap`` when the tensor
  dies, so every large activation costs a page fault per 4 KiB page on first touch. On a 2-core
  machine that was a third of R50-FPN inference (3.3 s -> 2.2 s at 800x1216).
  :func:`retain_freed_memory` tells glibc to keep freed memory for reuse instead; the CLI calls
  it at start-up, library users may call it once themselves. The price: the process keeps its
  peak memory until it exits. The heap still grows (and faults) until it reaches its peak, in
  the first runs; :func:`minor_page_faults` counts the faults so a benchmark can tell.
- **The device.** :func:`parse_device` checks a device name (one clear error for a name that
  is none or a device type sparsercnn does not run on); :func:`check_device` adds that PyTorch
  has the device here (one error for CUDA without a GPU, or without that GPU), and
  :func:`resolve_device` the default (CUDA where there is a GPU). Every device a user names for
  PyTorch, as a Python argument or as ``--device``, goes through them; one for onnxruntime goes
  through :func:`parse_device` and onnxruntime's own check of its provider.
- **bf16.** CPUs without AVX-512 (or ARM's BF16 extension) run bf16 convolutions and matmuls
  through slow emulation, ten times slower than fp32 on an AVX2 EPYC; autocast must not pick it
  there. :func:`fast_bf16_supported` says whether the device runs bf16 natively.

:func:`is_exporting` tells the few places whose fastest eager kernel does not trace (in-place
view updates, ``embedding_bag``) to take their portable form under ``torch.export``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import sys

import torch

logger = logging.getLogger(__name__)

# mallopt(3) parameter numbers (glibc malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Allocations below this come from the heap and are reused after free; 1 GiB covers every
# activation of a detector at COCO sizes. The heap top is returned to the OS only above 2 GiB
# (the largest value mallopt's int takes).
_MMAP_THRESHOLD_BYTES = 1 << 30
_TRIM_THRESHOLD_BYTES = (1 << 31) - 1
# The same settings as a GLIBC_TUNABLES value, for another process that glibc should configure
# so from its start (e.g. a peer timed beside us: the official code gains as much as we do).
RETAINED_MEMORY_TUNABLES = (
    f"glibc.malloc.mmap_threshold={_MMAP_THRESHOLD_BYTES}:"
    f"glibc.malloc.trim_threshold={_TRIM_THRESHOLD_BYTES}"
)


@functools.cache
def retain_freed_memory() -> bool:
    """Keep freed large blocks in the process for reuse (glibc only; idempotent).

    Returns:
        True when the allocator was configured, False where it could not be (not glibc, or
        glibc refused the setting); the process then runs as before, only slower.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        logger.debug("no glibc mallopt: large tensors keep being mapped and unmapped")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES)
    )
    logger.debug("glibc keeps freed memory for reuse: %s", applied)
    return applied


def minor_page_faults() -> int | None:
    """Minor page faults of this process so far (first touches of fresh memory pages); None
    where the OS does not count them (no ``resource`` module, e.g. Windows)."""
    try:
        import resource
    except ImportError:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def fast_bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 convolutions and matmuls natively (not emulated).

    CPU: oneDNN's own test (AVX-512 with BW/VL/DQ on x86, the BF16 extension on ARM). CUDA:
    ``torch.cuda.is_bf16_supported`` (Ampere and newer). Other devices: False.
    """
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # a build without oneDNN
            return False
    return False


def is_exporting() -> bool:
    """Whether ``torch.export`` is tracing (``torch.compile`` alone keeps the eager kernels).

    Torch releases without ``torch.compiler.is_exporting`` report any compilation instead.
    """
    check = getattr(torch.compiler, "is_exporting", torch.compiler.is_compiling)
    return bool(check())


# The device types sparsercnn runs on (its ops and tests cover these only).
DEVICE_TYPES = ("cpu", "cuda")


def parse_device(device: torch.device | str, *, argument: str | None = "device") -> torch.device:
    """``device`` as a torch device of a type sparsercnn runs on, whether or not it exists here:
    the rule for a device's name, which PyTorch (:func:`check_device`) and onnxruntime
    (:func:`~sparsercnn.export.onnx_runtime.onnx_device`) each follow with their own check of
    the device being there.

    Args:
        device: a device or its name (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        argument: what the message calls ``device`` (as in :func:`check_device`).

    Raises:
        ValueError: ``device`` names no device (``"gpu"``) or a device type other than CPU
            and CUDA (``"mps"``).
    """
    named = f"{argument} {device!r}" if argument else repr(device)
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{named} is not a device; use 'cpu', 'cuda' or 'cuda:N'") from None
    if parsed.type not in DEVICE_TYPES:
        raise ValueError(f"{named}: sparsercnn runs on 'cpu', 'cuda' or 'cuda:N' only")
    return parsed


def check_device(device: torch.device | str, *, argument: str | None = "device") -> torch.device:
    """``device`` as a torch device that exists here for PyTorch, where a model file's model can
    run (its name checked by :func:`parse_device`).

    Args:
        device: a device or its name (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        argument: what the message calls ``device``: the Python argument (``device``), a CLI
            flag (``--device``), or None where the caller names it (argparse's ``argument
            --device:`` prefix).

    Raises:
        ValueError: ``device`` names no device (``"gpu"``), a device type other than CPU and
            CUDA (``"mps"``), CUDA where PyTorch has none, or a GPU index beyond the GPUs here.
    """
    named = f"{argument} {device!r}" if argument else repr(device)
    checked = parse_device(device, argument=argument)
    if checked.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{named}: no CUDA device is available here; use 'cpu'")
    count = torch.cuda.device_count() if checked.type == "cuda" else 0
    if checked.index is not None and checked.type == "cuda" and checked.index >= count:
        choice = "'cuda:0'" + (f" to 'cuda:{count - 1}'" if count > 1 else "")
        raise ValueError(f"{named}: there is no GPU {checked.index} here; use {choice}")
    return checked


def resolve_device(
    device: torch.device | str | None, *, argument: str | None = "device"
) -> torch.device:
    """``device`` checked by :func:`check_device` (``argument`` as there), or for None the
    default: CUDA where a GPU is available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return check_device(device, argument=argument)
