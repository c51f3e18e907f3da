"""Running the detector for inference: eval mode without autograd, and batch-invariant batches.

Images of a batch are zero-padded to the largest one, the backbone sees that padding, and RoIs
that cross into it read it, so a batched image's detections depend on its companions (the
official code behaves the same way). :func:`run_model` avoids that by default: only images with
the same padded size share a forward pass, so every image is padded exactly as it would be
alone. Training keeps the official padded batching (:meth:`SparseRCNN.forward` on a list).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import get_args

import torch
from torch import Tensor, nn

from sparsercnn.config import Precision
from sparsercnn.model.cuda_graphs import CudaGraphs
from sparsercnn.model.detector import SparseRCNN
from sparsercnn.model.int8_features import UNCALIBRATED, int8_available, int8_features
from sparsercnn.model.winograd import winograd_available, winograd_convolutions
from sparsercnn.runtime import fast_bf16_supported
from sparsercnn.structures import ModelOutput, StageOutput, padded_size

PRECISIONS: tuple[Precision, ...] = get_args(Precision)


@contextmanager
def evaluating(model: nn.Module, precision: Precision = "fp32") -> Iterator[None]:
    """Eval mode and no autograd inside the block; the model's previous mode is restored after.

    ``precision="bf16"`` runs the model's convolutions and matrix products under bf16 autocast
    (the training's mixed precision); box decoding and post-processing stay in float32.
    ``precision="winograd"`` computes in float32 with Winograd 3x3 convolutions
    (:mod:`sparsercnn.model.winograd`; CPU only, outputs differ at ~1e-5 relative).
    ``precision="int8"`` computes the backbone and FPN in int8 and the head under bf16
    autocast where the device runs bf16 natively, else in float32
    (:mod:`sparsercnn.model.int8_features`; CPU only, needs the model's int8 calibration).

    Raises:
        ValueError: a precision the device cannot run fast (see :func:`check_precision`), or
            int8 for a model without int8 calibration.
    """
    device = model_device(model)
    check_precision(precision, device)
    check_calibrated(model, precision)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), computing_in(precision, device):
            yield
    finally:
        model.train(was_training)


@contextmanager
def computing_in(precision: Precision, device: torch.device) -> Iterator[None]:
    """The numeric mode of ``precision`` inside the block: bf16 autocast, Winograd
    convolutions, int8 features (of models with an int8 calibration), or plain fp32. No
    checks (benchmarks time emulated bf16 too); use :func:`evaluating` for inference."""
    if precision == "bf16":
        with torch.autocast(device.type, torch.bfloat16):
            yield
    elif precision == "winograd":
        with winograd_convolutions():
            yield
    elif precision == "int8":
        # The head's products (the dynamic layer reads a 33 MB weight per stage at d=256) in
        # bf16 where the device runs it natively; the features are int8 either way.
        head = torch.autocast(device.type, torch.bfloat16, enabled=fast_bf16_supported(device))
        with int8_features(), head:
            yield
    else:
        yield


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse an unknown precision, bf16 inference where ``device`` has no native bf16,
    Winograd convolutions off the CPU or without NNPACK, and int8 features off the CPU or
    without oneDNN's int8 convolution.

    Raises:
        ValueError: naming the precision or the device, and what to use instead.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bf16" and not fast_bf16_supported(device):
        raise ValueError(
            f"precision bf16: {device} has no native bf16 (CPUs need AVX-512 BF16 or AMX, GPUs "
            "Ampere or newer), so it would run many times slower than fp32; use fp32"
        )
    if precision == "winograd" and device.type != "cpu":
        raise ValueError(
            f"precision winograd: Winograd convolutions run on CPUs (NNPACK), not on {device}; "
            "use fp32 or bf16"
        )
    if precision == "winograd" and not winograd_available():
        raise ValueError("precision winograd: this PyTorch build or CPU has no NNPACK; use fp32")
    if precision == "int8" and device.type != "cpu":
        raise ValueError(
            f"precision int8: the int8 features run on CPUs (oneDNN), not on {device}; "
            "use fp32 or bf16"
        )
    if precision == "int8" and not int8_available():
        raise ValueError(
            "precision int8: this PyTorch build or CPU has no oneDNN int8 convolution; use fp32"
        )


def check_calibrated(model: nn.Module, precision: str) -> None:
    """Refuse int8 for a model without an int8 calibration (any other precision passes).

    Raises:
        ValueError: saying how to make a calibrated model file.
    """
    if precision == "int8" and getattr(model, "int8_calibration", None) is None:
        raise ValueError(UNCALIBRATED)


def unused_int8_calibration(model: nn.Module, precision: str, device: torch.device) -> str | None:
    """A note that ``model`` carries an int8 calibration which ``precision`` leaves unused and
    ``device`` could run (a CPU with oneDNN's int8 convolution), saying how to use it; None
    where there is nothing to say. For one INFO line when a model file is loaded."""
    if precision == "int8" or getattr(model, "int8_calibration", None) is None:
        return None
    if device.type != "cpu" or not int8_available():
        return None
    return (
        f"carries an int8 calibration, unused at precision {precision}: --precision int8 runs "
        "its backbone and FPN in int8, faster on this CPU and approximate"
    )


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on the CPU. For timing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def group_by_padded_size(
    sizes: Sequence[tuple[int, int]], size_divisibility: int
) -> list[list[int]]:
    """Indices of ``sizes`` grouped by padded size, groups in order of first appearance.

    Args:
        sizes: ``(h, w)`` of every image.
        size_divisibility: the model's padding multiple.

    Returns:
        Lists of indices into ``sizes``, ascending within each group.
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for index, (height, width) in enumerate(sizes):
        groups.setdefault(padded_size(height, width, size_divisibility), []).append(index)
    return list(groups.values())


def run_model(
    model: SparseRCNN,
    images: Sequence[Tensor],
    *,
    num_stages: int | None = None,
    batch_invariant: bool = True,
    graphs: CudaGraphs[ModelOutput] | None = None,
) -> ModelOutput:
    """The model's output for RGB 0-255 ``(3, h, w)`` images, in their order.

    Call it inside :func:`evaluating` (or under ``torch.no_grad``) for inference.

    Args:
        model: the detector, on the images' device or any (images are moved to it).
        images: input images (after the test resize), any sizes.
        num_stages: run only the first k stages (default all).
        batch_invariant: run each padded size as its own forward pass, so that every image's
            output is what it gives alone; False pads the whole batch to its largest image
            (the official batching, whose outputs depend on the batch).
        graphs: replay ``model``'s forward pass from these CUDA graphs (pre-processing stays
            eager); the same outputs, without the kernel-launch overhead.

    Returns:
        :class:`ModelOutput` with batch entries in the order of ``images``.
    """
    groups = [list(range(len(images)))]
    if batch_invariant:
        sizes = [(int(image.shape[-2]), int(image.shape[-1])) for image in images]
        groups = group_by_padded_size(sizes, model.size_divisibility)

    def forward(group: list[Tensor]) -> ModelOutput:
        if graphs is None:
            return model(group, num_stages=num_stages)
        return graphs(model.preprocess(group), num_stages=num_stages)

    if len(groups) == 1:
        return forward(list(images))
    outputs = [forward([images[i] for i in group]) for group in groups]
    order = torch.tensor([i for group in groups for i in group])
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(len(order))
    return _concat(outputs, inverse)


def _concat(outputs: list[ModelOutput], inverse: Tensor) -> ModelOutput:
    """Outputs of consecutive groups as one output; ``inverse[i]`` is image ``i``'s row."""

    def join(tensors: list[Tensor]) -> Tensor:
        joined = torch.cat(tensors)
        return joined.index_select(0, inverse.to(joined.device))

    num_stages = len(outputs[0].stages)
    return ModelOutput(
        stages=[
            StageOutput(
                logits=join([o.stages[s].logits for o in outputs]),
                boxes=join([o.stages[s].boxes for o in outputs]),
            )
            for s in range(num_stages)
        ],
        image_sizes=join([o.image_sizes for o in outputs]),
        proposal_boxes=join([o.proposal_boxes for o in outputs]),
    )
