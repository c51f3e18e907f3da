"""What the automatic recipe reads from the machine: the device, its threads, bf16, GPU memory."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparsercnn.runtime import fast_bf16_supported


@dataclass(frozen=True)
class Hardware:
    """The device training will run on.

    Attributes:
        device: ``"cpu"`` or ``"cuda"`` (``"cuda:N"``).
        cpu_threads: threads PyTorch computes with on the CPU.
        native_bf16: the device runs bf16 convolutions and matmuls natively (autocast pays).
        gpu_name: the GPU's name, ``None`` on the CPU.
        gpu_memory_gib: the GPU's memory, ``None`` on the CPU.
    """

    device: str
    cpu_threads: int
    native_bf16: bool
    gpu_name: str | None = None
    gpu_memory_gib: float | None = None

    @property
    def is_gpu(self) -> bool:
        return self.gpu_name is not None

    def describe(self) -> str:
        """One line, e.g. ``cpu, 2 threads, native bf16``."""
        bf16 = "native bf16" if self.native_bf16 else "no native bf16"
        if self.is_gpu:
            return f"{self.gpu_name} ({self.gpu_memory_gib:.0f} GiB), {bf16}"
        return f"cpu, {self.cpu_threads} threads, {bf16}"


def detect_hardware(device: torch.device) -> Hardware:
    """Describe ``device`` (a CPU or CUDA device)."""
    native_bf16 = fast_bf16_supported(device)
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        return Hardware(
            device=str(device),
            cpu_threads=torch.get_num_threads(),
            native_bf16=native_bf16,
            gpu_name=properties.name,
            gpu_memory_gib=properties.total_memory / 2**30,
        )
    return Hardware(
        device=str(device), cpu_threads=torch.get_num_threads(), native_bf16=native_bf16
    )
