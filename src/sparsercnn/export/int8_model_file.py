"""A model file with an int8 calibration: the eager PyTorch int8 path (``--precision int8``).

:func:`export_int8_model_file` runs a model's backbone and FPN in float on the user's images
(read and test-resized as :class:`~sparsercnn.predictor.Predictor` prepares them), records the
range of every activation the int8 graph quantizes
(:func:`~sparsercnn.model.int8_features.calibrate`), and writes the same weights, config and
label map with those ranges into a new model file. ``predict``, ``eval``, ``serve`` and
``benchmark`` run that file in int8 with ``--precision int8``, and in fp32 as before without it.
Weights are quantized when the file is loaded, so the file stays a float model file that any
precision can use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor

from sparsercnn.atomic_file import atomic_write
from sparsercnn.data.image_io import ImageReadError
from sparsercnn.export.quantization import (
    COMPARISON_IMAGES,
    Int8Comparison,
    QuantizationReport,
    compare_predictions,
)
from sparsercnn.image_inputs import ImageInput, decode_input
from sparsercnn.model.inference import check_precision, evaluating
from sparsercnn.model.int8_features import Int8Calibration, calibrate
from sparsercnn.model_file import LoadedModel, load_model_file, save_model_file
from sparsercnn.predictor import Predictor

logger = logging.getLogger(__name__)

QUANTIZATION_METHOD = "oneDNN int8 convolutions in PyTorch (eager), MinMax calibration"


def calibration_batches(predictor: Predictor, images: Sequence[ImageInput]) -> Iterator[Tensor]:
    """Each image alone as the model's normalised, padded ``(1, 3, H, W)`` input, decoded and
    test-resized as ``predictor`` does for inference.

    Raises:
        ValueError: an image file cannot be read.
    """
    model = predictor.model
    for image in images:
        try:
            decoded = decode_input(image, predictor.transform)
        except ImageReadError as error:
            raise ValueError(
                f"calibration {error}; remove it from the calibration images or choose others"
            ) from error
        resized = predictor.transform.image_tensor(decoded.image).to(predictor.device)
        yield model.preprocess([resized]).tensor.contiguous(memory_format=torch.channels_last)


def export_int8_model_file(
    model_file_or_loaded: str | Path | LoadedModel,
    output_path: str | Path,
    calibration: Sequence[ImageInput],
    *,
    compare: bool = True,
) -> QuantizationReport:
    """Calibrate a model's int8 features on ``calibration`` and write it with them.

    Args:
        model_file_or_loaded: a model file, or one already loaded.
        output_path: destination ``.safetensors``; written atomically.
        calibration: image paths, PIL images or arrays, as :class:`Predictor` takes them (see
            :func:`~sparsercnn.export.quantization.calibration_images` for a folder).
        compare: run fp32 and int8 on the first :data:`COMPARISON_IMAGES` calibration images
            and report the difference (:class:`Int8Comparison`).

    Raises:
        ValueError: ``calibration`` is empty or holds an unreadable image, or (with
            ``compare``) this CPU cannot run int8 (see
            :func:`~sparsercnn.model.inference.check_precision`); nothing is written.
    """
    if len(calibration) == 0:
        raise ValueError("int8 calibration needs at least one image")
    start = time.perf_counter()
    loaded = (
        model_file_or_loaded
        if isinstance(model_file_or_loaded, LoadedModel)
        else load_model_file(model_file_or_loaded)
    )
    fp32 = Predictor(loaded.model, loaded.config, loaded.categories, batch_size=1)
    if compare:
        try:
            check_precision("int8", fp32.device)
        except ValueError:
            raise ValueError(
                f"{output_path}: this PyTorch build or CPU has no oneDNN int8 convolution, so "
                "the int8 model cannot be compared with fp32 here; export with --no-check "
                "(compare=False) to calibrate without the comparison, and run the file with "
                "--precision int8 on a CPU that has int8 convolutions"
            ) from None
    with evaluating(loaded.model):
        ranges = calibrate(
            loaded.model.backbone, loaded.model.fpn, calibration_batches(fp32, calibration)
        )
    comparisons: list[Int8Comparison] = []

    def write(tmp: Path) -> None:
        save_model_file(tmp, loaded.model, loaded.config, loaded.categories, ranges)
        if compare:
            int8 = Predictor.from_file(tmp, batch_size=1, precision="int8")
            comparisons.append(compare_predictions(fp32, int8, calibration[:COMPARISON_IMAGES]))

    path = atomic_write(output_path, write)
    report = QuantizationReport(
        path=path,
        num_bytes=path.stat().st_size,
        seconds=time.perf_counter() - start,
        record=quantization_record(ranges),
        comparison=comparisons[0] if comparisons else None,
    )
    logger.info("calibrated %s for int8 in %.1f s", path, report.seconds)
    return report


def quantization_record(calibration: Int8Calibration) -> dict[str, object]:
    """What :class:`QuantizationReport` says of an int8 model file."""
    return {
        "method": QUANTIZATION_METHOD,
        "calibration": "MinMax",
        "num_calibration_images": calibration.num_images,
        "op_types": ["backbone and FPN convolutions"],
        "weights": "int8, symmetric, per output channel",
        "activations": "uint8, asymmetric, per tensor",
        "run": "--precision int8",
    }
