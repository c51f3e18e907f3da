"""Winograd 3x3 convolutions: an opt-in, approximate fast mode for fp32 inference on CPUs.

A stride-1 3x3 convolution computed by Winograd's minimal filtering (NNPACK's F(6x6, 3x3)
transform, which PyTorch's CPU builds ship) needs about a fifth of the multiplications of the
direct algorithm. oneDNN's direct convolution already runs R50-FPN's 3x3 convolutions at the
CPU's fp32 peak, so fewer multiplications is what remains: the FPN's P2 output convolution at
800x1216 (72 GFLOP) takes 127 ms instead of 330 ms on a 2-core AVX-512 CPU. The price is
rounding: outputs differ from the direct convolution by ~1e-5 of their magnitude (the
transforms' rounding), so the mode is opt-in (``precision="winograd"``) and its AP is measured
beside fp32 (``benchmarks/bench_speed.py --check``).

Inside :func:`winograd_convolutions`, :func:`conv2d` takes the Winograd path for every eligible
call (CPU, float32, no autograd, 3x3, stride 1, no dilation or groups, and large enough to pay)
and ``torch.nn.functional.conv2d`` for the rest; tracing and compiling keep the direct
convolution. "Large enough": NNPACK wants contiguous (NCHW) tensors where the model keeps
channels-last ones, and the two layout changes plus NNPACK's fixed costs outweigh the saved
multiplications on small convolutions. Measured on a 2-core AVX-512 CPU
(``benchmarks/bench_winograd.py``: direct time over Winograd time, layout changes included):
0.3-0.45x with 32 channels and 0.4-1.0x with 64 at any size, 0.3-0.5x at 12x20 pixels whatever
the channels, 1.0-1.4x with 128 channels and 1.2-2.5x with 256-512 at 48x80 pixels or more. In
a whole model, 128 channels did not pay: the medium CPU preset (128-channel FPN) ran 3-9%
slower at 256-384 px, so the path starts at 256 channels, where R50-FPN gains 12%.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sparsercnn.runtime import is_exporting

_ACTIVE: ContextVar[bool] = ContextVar("winograd_convolutions", default=False)
# Smallest input and output channels, and input pixels, for which the Winograd path pays.
MIN_CHANNELS = 256
MIN_PIXELS = 48 * 80


@functools.cache
def winograd_available() -> bool:
    """Whether this PyTorch build has NNPACK and it initialises on this CPU (x86 with AVX2, or
    ARM with NEON); the check also initialises it, which NNPACK needs before its first call."""
    return bool(torch.backends.nnpack.is_available())


@contextmanager
def winograd_convolutions() -> Iterator[None]:
    """Route :func:`conv2d`'s eligible calls to Winograd convolutions inside the block.

    Raises:
        RuntimeError: NNPACK is not available in this PyTorch build or on this CPU.
    """
    if not winograd_available():
        raise RuntimeError(
            "Winograd convolutions need NNPACK, which this PyTorch build or CPU lacks; "
            "use precision fp32"
        )
    token = _ACTIVE.set(True)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    conv: nn.Conv2d,
) -> Tensor:
    """``F.conv2d(x, weight, bias)`` with ``conv``'s stride, padding, dilation and groups;
    Winograd inside :func:`winograd_convolutions` where the call is eligible.

    Args:
        x: ``(B, C_in, H, W)``, any memory format.
        weight: ``(C_out, C_in / groups, kh, kw)``, ``conv.weight`` or a folded copy of it.
        bias: ``(C_out,)`` or None.
        conv: the layer whose geometry applies.

    Returns:
        ``(B, C_out, H', W')``, in ``x``'s memory format (channels-last stays channels-last).
    """
    if not (_ACTIVE.get() and _eligible(x, weight, conv)):
        return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    padding = conv.padding
    assert not isinstance(padding, str)  # "same"/"valid" are not eligible
    if bias is None:
        bias = weight.new_zeros(weight.shape[0])
    out = torch._nnpack_spatial_convolution(
        x.contiguous(), weight.contiguous(), bias.contiguous(), list(padding), [1, 1]
    )
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def _eligible(x: Tensor, weight: Tensor, conv: nn.Conv2d) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not torch.is_grad_enabled()
        and tuple(conv.kernel_size) == (3, 3)
        and tuple(conv.stride) == (1, 1)
        and tuple(conv.dilation) == (1, 1)
        and conv.groups == 1
        and not isinstance(conv.padding, str)
        and min(weight.shape[0], weight.shape[1]) >= MIN_CHANNELS
        and x.shape[-2] * x.shape[-1] >= MIN_PIXELS
        and not torch.is_autocast_enabled("cpu")
        and not is_exporting()
        and not torch.compiler.is_compiling()
    )
