"""Inference with an exported ``.onnx`` file and onnxruntime, without the PyTorch model.

:class:`OnnxPredictor` mirrors :class:`~sparsercnn.predictor.Predictor`: the same inputs (paths,
folders, PIL images, arrays, tensors), the same test resize and padding (rebuilt from the file's
metadata), the same batching, and the same :class:`~sparsercnn.prediction.Prediction` outputs.
Its session runs on the device asked for, by the onnxruntime execution provider of that device
(:func:`session_providers`).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sparsercnn.data.transforms import build_test_transform
from sparsercnn.export.onnx_export import WEIGHTS_DIGEST_KEY, detections_of, parse_metadata
from sparsercnn.export.onnx_wrapper import INPUT_NAMES, OUTPUT_NAMES
from sparsercnn.paths import check_file
from sparsercnn.predictor import BatchPredictor
from sparsercnn.runtime import parse_device
from sparsercnn.structures import Detections, ImageBatch

# The session option that lets onnxruntime's idle intra-op threads spin-wait for work.
SPINNING_KEY = "session.intra_op.allow_spinning"
# The metadata key of an int8 file's quantization record (written by ``export --int8``).
QUANTIZATION_KEY = "quantization"
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


class OnnxPredictor(BatchPredictor):
    """Run a file written by :func:`~sparsercnn.export.export_onnx` with onnxruntime.

    Args:
        path: the ``.onnx`` file.
        batch_size: most images per session run (a file exported with a static batch forces 1).
        num_threads: onnxruntime intra-op threads (default: onnxruntime's choice).
        device: where the session runs (``cpu``, ``cuda``, ``cuda:N``), by onnxruntime's CPU
            or CUDA execution provider (:func:`session_providers`); None: CUDA where a GPU is
            available and onnxruntime offers its CUDA provider, else the CPU.
        allow_spinning: let onnxruntime's idle threads spin-wait for work (its default); off
            where other work shares the cores, which spinning threads would take.
        batch_invariant: batch only images with the same padded size (see
            :class:`~sparsercnn.predictor.BatchPredictor`).

    Attributes:
        precision: ``int8`` for a file quantized by ``sparsercnn export --int8``, else ``fp32``.
        weights_crc32: the CRC-32 of the weights it was exported from, as their model file's
            ``tensors_crc32`` (:data:`~sparsercnn.export.onnx_export.WEIGHTS_DIGEST_KEY`);
            None for a file exported before sparsercnn recorded it.
        device: where the session runs, as a torch device name (``cpu``, ``cuda:0``).
        provider: the execution provider that runs it (``CPUExecutionProvider``,
            ``CUDAExecutionProvider``), as onnxruntime reports it.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IsADirectoryError: ``path`` is a folder.
        ValueError: ``path`` is not a readable ONNX model or not a sparsercnn export, or
            ``device`` is not one here or has no execution provider in this onnxruntime.
        ImportError: onnxruntime is not installed.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        batch_size: int = 4,
        num_threads: int | None = None,
        device: torch.device | str | None = "cpu",
        allow_spinning: bool = True,
        batch_invariant: bool = True,
    ) -> None:
        try:
            import onnxruntime
        except ImportError as error:
            raise ImportError(
                "OnnxPredictor needs onnxruntime: pip install 'sparsercnn[export]'"
            ) from error
        self.path = Path(path)
        check_file(self.path, "ONNX model", "the .onnx file")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        options = onnxruntime.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = num_threads
        if not allow_spinning:
            options.add_session_config_entry(SPINNING_KEY, "0")
        self.session, checked = open_session(self.path, device, options)
        self.provider: str = self.session.get_providers()[0]
        self.device = str(checked)
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.config, self.categories = parse_metadata(metadata, str(self.path))
        self.precision = "int8" if QUANTIZATION_KEY in metadata else "fp32"
        self.weights_crc32: str | None = metadata.get(WEIGHTS_DIGEST_KEY)
        # The stages the graph runs: a stage-limited export keeps the full model's config.
        self.num_stages = int(metadata.get("num_stages", self.config.model.num_stages))
        inputs = self.session.get_inputs()
        names = tuple(i.name for i in inputs)
        if names != INPUT_NAMES:
            raise ValueError(f"{self.path}: graph inputs are {names}, expected {INPUT_NAMES}")
        outputs = tuple(o.name for o in self.session.get_outputs())
        if outputs != OUTPUT_NAMES:
            raise ValueError(
                f"{self.path}: graph outputs are {outputs}, expected {OUTPUT_NAMES}; re-export "
                "it with `sparsercnn export`"
            )
        batch_axis = inputs[0].shape[0]
        # The batch size of a file exported with a static batch, else None.
        self.fixed_batch: int | None = batch_axis if isinstance(batch_axis, int) else None
        self.batch_size = self.fixed_batch or batch_size
        self.transform = build_test_transform(self.config.input)
        self.size_divisibility = self.config.model.size_divisibility
        self.batch_invariant = batch_invariant

    @property
    def runs_on(self) -> str:
        """Where the session runs and by which execution provider, as reports name it
        (``eval``'s device, ``predict``'s summary, ``benchmark``'s device): ``cpu (onnxruntime
        CPUExecutionProvider)``, ``cuda:0 (onnxruntime CUDAExecutionProvider)``."""
        return f"{self.device} (onnxruntime {self.provider})"

    def run(
        self, images: np.ndarray, image_sizes: np.ndarray, original_sizes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One session run on prepared inputs (shapes as in the exported graph).

        Args:
            images: ``(B, 3, H, W)`` float32 RGB 0-255, already resized, image ``i`` in the
                top-left ``image_sizes[i]`` corner.
            image_sizes, original_sizes: ``(B, 2)`` int64 ``(h, w)``.

        Returns:
            ``boxes (B, N, 4)`` xyxy original pixels, ``scores (B, N)``, ``labels (B, N)``,
            ``num_detections (B,)``: image ``i``'s detections are its first
            ``num_detections[i]`` entries (see
            :class:`~sparsercnn.export.onnx_wrapper.SparseRCNNOnnxModel`).
        """
        feeds = dict(zip(INPUT_NAMES, (images, image_sizes, original_sizes), strict=True))
        boxes, scores, labels, num_detections = self.session.run(list(OUTPUT_NAMES), feeds)
        return boxes, scores, labels, num_detections

    def prepare(
        self, images: Sequence[Tensor], original_sizes: Sequence[tuple[int, int]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The inputs of :meth:`run` for test-resized ``(3, h, w)`` uint8 images: zero-padded
        into one float32 batch, with their sizes and ``(h, w)`` before resizing."""
        batch = ImageBatch.from_tensors(list(images), self.size_divisibility)
        return (
            batch.tensor.float().numpy(),
            batch.image_sizes.numpy(),
            np.array(original_sizes, dtype=np.int64),
        )

    def detect(
        self, images: Sequence[Tensor], original_sizes: Sequence[tuple[int, int]]
    ) -> list[Detections]:
        """Detections (absolute xyxy pixels of the original images, CPU) of test-resized
        ``(3, h, w)`` uint8 images in one session run, one per image."""
        outputs = self.run(*self.prepare(images, original_sizes))
        detections = []
        for i in range(len(images)):
            boxes, scores, labels = detections_of(outputs, i)
            detections.append(
                Detections(
                    boxes=torch.from_numpy(boxes),
                    scores=torch.from_numpy(scores),
                    labels=torch.from_numpy(labels),
                )
            )
        return detections


def open_session(
    path: Path, device: torch.device | str | None, options: Any
) -> tuple[Any, torch.device]:
    """An onnxruntime ``InferenceSession`` of ``path`` with ``options`` on ``device``
    (:func:`onnx_device`), by that device's execution provider (:func:`session_providers`).

    Returns:
        The session and the device it runs on.

    Raises:
        ValueError: ``device`` is not one, this onnxruntime has no provider for it, onnxruntime
            cannot load ``path`` (:func:`unloadable_onnx_message`), or it fell back to the CPU
            (:func:`check_provider_started`).
    """
    import onnxruntime

    available = onnxruntime.get_available_providers()
    checked = onnx_device(device, available)
    providers = session_providers(checked, available)
    try:
        session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as error:  # onnxruntime's errors share no base class but Exception
        raise ValueError(unloadable_onnx_message(path, error, checked)) from error
    check_provider_started(checked, session.get_providers()[0])
    return session, checked


def onnx_device(device: torch.device | str | None, available: Sequence[str]) -> torch.device:
    """The device an onnxruntime session runs on for ``device`` (``--device``).

    Args:
        device: a device or its name (:func:`~sparsercnn.runtime.parse_device`): whether
            onnxruntime can run on it is its provider's question (:func:`session_providers`,
            :func:`check_provider_started`), not PyTorch's, so that a CPU-only PyTorch beside
            onnxruntime-gpu runs on the GPU; None: the default, CUDA where PyTorch sees a GPU
            and onnxruntime offers its CUDA provider (which it lists whether or not there is a
            GPU), else the CPU.
        available: ``onnxruntime.get_available_providers()``.

    Returns:
        ``cpu`` or ``cuda:N`` (``cuda`` as ``cuda:0``, onnxruntime's default GPU).

    Raises:
        ValueError: ``device`` names no device, or a device type other than CPU and CUDA.
    """
    if device is None:
        gpu = CUDA_PROVIDER in available and torch.cuda.is_available()
        return torch.device("cuda:0" if gpu else "cpu")
    checked = parse_device(device, argument="device")
    if checked.type == "cuda" and checked.index is None:
        return torch.device("cuda", 0)
    return checked


def session_providers(
    device: torch.device, available: Sequence[str]
) -> list[str | tuple[str, dict[str, Any]]]:
    """The ``providers`` of an onnxruntime session on ``device``: the CPU provider, or the CUDA
    provider on GPU ``device.index`` (the CPU one after it runs the few nodes CUDA has no
    kernel for, as onnxruntime assigns them).

    Args:
        device: ``cpu`` or ``cuda:N`` (:func:`onnx_device`).
        available: ``onnxruntime.get_available_providers()``.

    Raises:
        ValueError: ``device`` is a GPU and this onnxruntime has no CUDA provider (the
            ``onnxruntime`` package is CPU-only): it names ``--device`` and the installed
            package; nothing falls back to the CPU.
    """
    if device.type == "cpu":
        return [CPU_PROVIDER]
    if CUDA_PROVIDER not in available:
        raise ValueError(
            f"device {str(device)!r} (--device): the installed {installed_onnxruntime()} has no "
            f"{CUDA_PROVIDER} (it offers {', '.join(available)}); install onnxruntime-gpu in its "
            "place (pip uninstall onnxruntime; pip install onnxruntime-gpu), or use --device cpu"
        )
    return [(CUDA_PROVIDER, {"device_id": device.index or 0}), CPU_PROVIDER]


def check_provider_started(device: torch.device, provider: str) -> None:
    """Raise when a session asked to run on ``device`` runs on another ``provider``:
    onnxruntime falls back to the CPU, with only a logged error, when its CUDA provider cannot
    start (CUDA or cuDNN libraries missing or of another version)."""
    if device.type == "cuda" and provider != CUDA_PROVIDER:
        raise ValueError(
            f"device {str(device)!r} (--device): {installed_onnxruntime()} could not start its "
            f"{CUDA_PROVIDER} (its logged error says why, often a missing CUDA or cuDNN "
            "library) and would run on the CPU; install the CUDA libraries it needs, or use "
            "--device cpu"
        )


def installed_onnxruntime() -> str:
    """The onnxruntime package installed here, with its version (``onnxruntime-gpu 1.20.1``): a
    CPU-only ``onnxruntime`` and ``onnxruntime-gpu`` install the same module."""
    names = package_metadata.packages_distributions().get("onnxruntime", [])
    found = [f"{name} {package_metadata.version(name)}" for name in sorted(set(names))]
    return " and ".join(found) or "onnxruntime package"


def unloadable_onnx_message(path: Path, error: Exception, device: torch.device) -> str:
    """One line saying what ``path`` (``--onnx``), which onnxruntime could not load on
    ``device``, is and what to do: a model file given as an export, a GPU that onnxruntime
    could not open (a GPU index that is not here), or a file that is no ONNX model."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    # A safetensors file: an 8-byte little-endian header length, then its JSON header.
    if path.suffix.lower() == ".safetensors" or (len(head) == 9 and head[8:] == b"{"):
        return (
            f"--onnx {path} is a model file (.safetensors), not an ONNX export: give it with "
            f"--model in place of --onnx, or export it (`sparsercnn export --model {path} "
            "--output FILE.onnx`) and give that file with --onnx"
        )
    if device.type == "cuda":
        return (
            f"onnxruntime could not load --onnx {path} on device '{device}' (--device: {error}); "
            f"check that GPU {device.index} is here (nvidia-smi), or try --device cpu, and "
            "re-export the file with `sparsercnn export` if it fails there too"
        )
    return (
        f"--onnx {path} is not a valid ONNX model (onnxruntime could not load it: {error}); "
        "re-export it with `sparsercnn export`"
    )


def check_graph_precision(onnx: OnnxPredictor, precision: str | None) -> None:
    """The rule of a precision asked beside an ONNX file (``--precision`` with ``--onnx``, in
    ``predict``, ``eval`` and ``serve``): the graph computes in the precision it was exported
    in (:attr:`OnnxPredictor.precision`, ``int8`` or ``fp32``), so ``precision`` must be that
    one, or None (not asked).

    Raises:
        ValueError: ``precision`` is another one, naming both flags and what to do.
    """
    if precision is None or precision == onnx.precision:
        return
    export = ""
    if precision == "int8":
        export = ", or export an int8 graph (`sparsercnn export --int8 --calibration DIR`)"
    raise ValueError(
        f"--precision {precision}: --onnx {onnx.path} computes in {onnx.precision}, the precision "
        f"it was exported in; leave out --precision, or run a model file at {precision} without "
        f"--onnx (--model FILE --precision {precision}){export}"
    )
