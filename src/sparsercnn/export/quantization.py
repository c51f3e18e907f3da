"""Post-training int8 quantization of an exported ONNX file (onnxruntime static quantization).

:func:`quantize_onnx` takes an fp32 file written by :func:`~sparsercnn.export.export_onnx`,
calibrates it on the user's images (read and test-resized exactly as
:class:`~sparsercnn.export.onnx_runtime.OnnxPredictor` prepares its inputs) and writes an int8
file that ``OnnxPredictor`` runs unchanged. Only the operators in :data:`QUANTIZED_OP_TYPES`
(the backbone's and FPN's convolutions, where nearly all the time goes) get int8 weights (per
output channel) and uint8 activations (MinMax ranges), as QuantizeLinear/DequantizeLinear pairs
that onnxruntime fuses into integer kernels (uint8 x int8 is the VNNI fast path: int8
activations measured about half as fast); the refinement head and the post-processing stay
fp32. The file keeps the export's metadata and adds a ``quantization`` record. Int8 is
approximate, so instead of the export's parity check an :class:`Int8Comparison` reports how far
its detections are from fp32's on a few calibration images.
"""

from __future__ import annotations

import functools
import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import torch

from sparsercnn.atomic_file import atomic_write
from sparsercnn.data.image_io import ImageReadError
from sparsercnn.export.onnx_export import (
    DEFAULT_OPSET,
    OnnxCheckError,
    ParityCheck,
    export_onnx,
    require_modules,
)
from sparsercnn.export.onnx_runtime import QUANTIZATION_KEY, OnnxPredictor
from sparsercnn.export.onnx_wrapper import INPUT_NAMES
from sparsercnn.image_inputs import ImageInput, decode_input, expand_inputs
from sparsercnn.model_file import LoadedModel
from sparsercnn.ops.boxes import box_iou
from sparsercnn.prediction import Prediction
from sparsercnn.predictor import BatchPredictor
from sparsercnn.text import counted

logger = logging.getLogger(__name__)

Item = TypeVar("Item")

DEFAULT_CALIBRATION_IMAGES = 64
QUANTIZED_OP_TYPES = ("Conv",)
# Images of the calibration set on which int8 detections are compared with fp32 ones.
COMPARISON_IMAGES = 4
# fp32 detections at least this confident are looked for among the int8 ones.
COMPARISON_SCORE = 0.3
QUANTIZATION_METHOD = "onnxruntime static quantization, QDQ format"


@dataclass
class Int8Comparison:
    """How far int8 detections are from fp32 ones on the same images (information, not a check).

    Attributes:
        num_images: compared images.
        num_compared: fp32 detections scoring at least :data:`COMPARISON_SCORE` (or each image's
            best when none does).
        mean_iou: their mean IoU with the best int8 box of the same label.
        num_lost: how many of them have no int8 box of the same label at IoU >= 0.5.
        max_score_diff: largest difference of the two sorted score lists.
        num_best_only: images with no fp32 detection at :data:`COMPARISON_SCORE`, whose best
            detection was compared instead.
    """

    num_images: int
    num_compared: int
    mean_iou: float
    num_lost: int
    max_score_diff: float
    num_best_only: int = 0

    def summary(self) -> str:
        compared = f"score >= {COMPARISON_SCORE}"
        if self.num_best_only == 1:
            compared += ", or the best of the 1 image without one"
        elif self.num_best_only:
            compared += f", or the best of each of the {self.num_best_only} images without one"
        return (
            f"int8 vs fp32 on {counted(self.num_images, 'calibration image')} (information; "
            f"int8 is approximate): {counted(self.num_compared, 'fp32 detection')} ({compared}), "
            f"mean IoU with int8 {self.mean_iou:.3f}, {self.num_lost} without an int8 match "
            f"(IoU >= 0.5), max score difference {self.max_score_diff:.3f}"
        )


@dataclass
class QuantizationReport:
    """What :func:`quantize_onnx` did.

    Attributes:
        path: the written int8 file.
        num_bytes: its size.
        seconds: wall time of calibration, quantization and comparison.
        record: the ``quantization`` metadata record (method, calibration images, op types...).
        comparison: int8 vs fp32 detections, None when skipped.
        fp32_check: the export's onnxruntime-vs-PyTorch check of the fp32 graph that was
            quantized (:func:`export_int8_onnx`), None when skipped or not exported here.
    """

    path: Path
    num_bytes: int
    seconds: float
    record: dict[str, object] = field(repr=False)
    comparison: Int8Comparison | None
    fp32_check: ParityCheck | None = None

    def summary(self) -> str:
        """A few human-readable lines for the CLI and logs."""
        ops = ", ".join(str(op) for op in self.record["op_types"])  # type: ignore[attr-defined]
        num_images = self.record["num_calibration_images"]
        assert isinstance(num_images, int)
        lines = [
            f"wrote {self.path} in {self.seconds:.1f} s ({self.num_bytes / 2**20:.1f} MiB, int8 "
            f"{ops}, calibrated on {counted(num_images, 'image')})"
        ]
        if "run" in self.record:
            lines.append(f"run it with {self.record['run']}; without, it computes in fp32")
        if self.fp32_check is not None:
            c = self.fp32_check
            lines.append(
                f"fp32 graph before quantization: onnxruntime vs PyTorch max box difference "
                f"{c.max_box_diff:.2e} px, max score difference {c.max_score_diff:.1e}"
            )
        if self.comparison is not None:
            lines.append(self.comparison.summary())
        return "\n".join(lines)


def calibration_images(folder: str | Path, num_images: int) -> list[Path]:
    """Up to ``num_images`` image files of ``folder`` (recursively), spread evenly over its
    sorted list, so that a folder sorted by scene or class is sampled throughout.

    Raises:
        ValueError: ``num_images < 1``.
        NotADirectoryError: ``folder`` is not a folder.
        FileNotFoundError: ``folder`` does not exist or holds no image file.
    """
    folder = Path(folder)
    if num_images < 1:
        raise ValueError(f"need at least 1 calibration image, got {num_images}")
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file; calibration needs a folder of images")
    if not folder.exists():
        raise FileNotFoundError(f"calibration folder {folder} does not exist")
    paths = [Path(source) for _, source in expand_inputs(folder)]
    if len(paths) <= num_images:
        return paths
    chosen = np.linspace(0, len(paths) - 1, num_images).round().astype(int)
    return [paths[i] for i in chosen]


class _CalibrationReader(Generic[Item]):
    """onnxruntime's ``CalibrationDataReader``: the feeds of ``items[start:end]``, prepared one
    at a time (``set_range`` lets the calibrator merge the ranges of each slice and free its
    activations before the next)."""

    def __init__(
        self, items: Sequence[Item], prepare: Callable[[Item], dict[str, np.ndarray]]
    ) -> None:
        self.items = items
        self.prepare = prepare
        self.pending: Iterator[Item] = iter(items)

    def __len__(self) -> int:
        return len(self.items)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.pending = iter(self.items[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        item = next(self.pending, None)
        return None if item is None else self.prepare(item)


def calibration_feed(predictor: OnnxPredictor, image: ImageInput) -> dict[str, np.ndarray]:
    """The inputs of ``predictor``'s graph for one image alone, prepared as for inference
    (decoded, test-resized, padded).

    Raises:
        ValueError: an image file cannot be read (a bad input, not a failure to write the
            quantized file, which is what an ``OSError`` here would be reported as).
    """
    try:
        decoded = decode_input(image, predictor.transform)
    except ImageReadError as error:
        raise ValueError(
            f"calibration {error}; remove it from the calibration images or choose others"
        ) from error
    resized = predictor.transform.image_tensor(decoded.image)
    input_size = (int(resized.shape[1]), int(resized.shape[2]))
    inputs = predictor.prepare([resized], [decoded.rescale_size(input_size)])
    return dict(zip(INPUT_NAMES, inputs, strict=True))


def quantize_graph(
    fp32_path: str | Path,
    output_path: str | Path,
    items: Sequence[Item],
    prepare: Callable[[Item], dict[str, np.ndarray]],
    op_types: Sequence[str] = QUANTIZED_OP_TYPES,
) -> None:
    """Static QDQ quantization of any fp32 ONNX graph, calibrated (MinMax) on the feeds
    ``prepare(item)`` of ``items``.

    Weights of ``op_types`` become int8 per output channel, their activations uint8; other
    operators stay fp32. ``output_path`` is written in place (callers make it atomic).
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="sparsercnn-int8-") as folder:
        prepared = Path(folder) / "prepared.onnx"
        # Shape inference and graph optimisation give the quantizer exact tensor types;
        # symbolic shape inference cannot follow the RoIAlign's data-dependent shapes.
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(output_path),
            _CalibrationReader(items, prepare),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(op_types),
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            # Ranges merged image by image: the same result as all at once, with one image's
            # activations in memory (CalibMaxIntermediateOutputs drops data in onnxruntime
            # 1.32 instead).
            extra_options={"CalibStridedMinMax": 1},
        )


def export_int8_onnx(
    model_file_or_loaded: str | Path | LoadedModel,
    output_path: str | Path,
    calibration: Sequence[ImageInput],
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    check: bool = True,
    compare: bool = True,
) -> QuantizationReport:
    """Export a model to a temporary fp32 file (:func:`export_onnx`, whose ``check`` applies
    to that graph), then quantize it into ``output_path`` (:func:`quantize_onnx`).

    Raises:
        OnnxCheckError: the fp32 graph failed its check (nothing is written; the error names
            ``output_path``).
        ValueError, ImportError: see :func:`quantize_onnx`.
    """
    # The quantizer's onnxruntime is needed even without the fp32 graph's check: say so now,
    # not after the export.
    require_modules("onnx", "onnxscript", "onnxruntime")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sparsercnn-export-") as folder:
        try:
            fp32 = export_onnx(
                model_file_or_loaded,
                Path(folder) / "fp32.onnx",
                opset=opset,
                dynamic_batch=dynamic_batch,
                check=check,
            )
        except OnnxCheckError as error:
            # Named by the temporary file, which the user never sees.
            raise OnnxCheckError(output_path, error.parity, graph="its fp32 graph") from None
        report = quantize_onnx(fp32.path, output_path, calibration, compare=compare)
    report.fp32_check = fp32.check
    report.seconds = time.perf_counter() - start
    return report


def quantize_onnx(
    fp32_path: str | Path,
    output_path: str | Path,
    calibration: Sequence[ImageInput],
    *,
    op_types: Sequence[str] = QUANTIZED_OP_TYPES,
    compare: bool = True,
) -> QuantizationReport:
    """Quantize an exported fp32 file to int8, calibrated on ``calibration``.

    Args:
        fp32_path: a file from :func:`~sparsercnn.export.export_onnx` (its metadata gives the
            test resize and padding the calibration images get).
        output_path: destination ``.onnx``; written atomically (nothing appears on failure).
        calibration: image paths, PIL images or arrays, as :class:`OnnxPredictor` takes them
            (see :func:`calibration_images` for a folder); each is test-resized and run alone.
        op_types: ONNX operator types to quantize; all others stay fp32.
        compare: run fp32 and int8 on the first :data:`COMPARISON_IMAGES` calibration images
            and report the difference (:class:`Int8Comparison`).

    Raises:
        ValueError: ``calibration`` is empty, or ``fp32_path`` is not a sparsercnn export.
        ImportError: onnxruntime (or onnx) is missing.
    """
    require_modules("onnx", "onnxruntime")
    import onnx
    from onnxruntime import __version__ as ort_version

    if len(calibration) == 0:
        raise ValueError("int8 calibration needs at least one image")
    start = time.perf_counter()
    fp32 = OnnxPredictor(fp32_path, batch_size=1)
    record: dict[str, object] = {
        "method": QUANTIZATION_METHOD,
        "calibration": "MinMax",
        "num_calibration_images": len(calibration),
        "op_types": list(op_types),
        "weights": "int8, symmetric, per output channel",
        "activations": "uint8, asymmetric, per tensor",
        "onnxruntime": ort_version,
    }
    comparison: list[Int8Comparison] = []

    def write(tmp: Path) -> None:
        prepare = functools.partial(calibration_feed, fp32)
        quantize_graph(fp32.path, tmp, calibration, prepare, op_types)
        model = onnx.load(str(tmp))
        metadata = fp32.session.get_modelmeta().custom_metadata_map
        onnx.helper.set_model_props(model, {**metadata, QUANTIZATION_KEY: json.dumps(record)})
        onnx.save_model(model, str(tmp))
        if compare:
            int8 = OnnxPredictor(tmp, batch_size=1)
            comparison.append(compare_predictions(fp32, int8, calibration[:COMPARISON_IMAGES]))

    path = atomic_write(output_path, write)
    report = QuantizationReport(
        path=path,
        num_bytes=path.stat().st_size,
        seconds=time.perf_counter() - start,
        record=record,
        comparison=comparison[0] if comparison else None,
    )
    logger.info("quantized %s to int8 in %.1f s", path, report.seconds)
    return report


def quantization_record(path: str | Path) -> dict[str, object] | None:
    """The ``quantization`` metadata record of an ONNX file, None for an fp32 export."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    return json.loads(props[QUANTIZATION_KEY]) if QUANTIZATION_KEY in props else None


def compare_predictions(
    fp32: BatchPredictor, int8: BatchPredictor, images: Sequence[ImageInput]
) -> Int8Comparison:
    """Run both predictors (ONNX files, or a model file in two precisions) on ``images``
    and compare their detections (:class:`Int8Comparison`)."""
    ious: list[float] = []
    score_diff = 0.0
    best_only = 0
    for expected, actual in zip(fp32(list(images)), int8(list(images)), strict=True):
        ious.extend(_best_ious(expected, actual))
        scores = expected.scores
        best_only += int(len(scores) > 0 and not bool((scores >= COMPARISON_SCORE).any()))
        k = min(len(expected.scores), len(actual.scores))
        if k:
            diff = (expected.scores[:k] - actual.scores[:k]).abs().max()
            score_diff = max(score_diff, float(diff))
    return Int8Comparison(
        num_images=len(images),
        num_compared=len(ious),
        mean_iou=float(np.mean(ious)) if ious else 0.0,
        num_lost=sum(iou < 0.5 for iou in ious),
        max_score_diff=score_diff,
        num_best_only=best_only,
    )


def _best_ious(expected: Prediction, actual: Prediction) -> list[float]:
    """For each confident ``expected`` detection, the best IoU with an ``actual`` one of the
    same label (0 when there is none)."""
    confident = expected.scores >= COMPARISON_SCORE
    if not confident.any():
        confident = torch.zeros_like(confident)
        confident[:1] = True  # the best detection (scores are sorted)
    boxes, labels = expected.boxes[confident], expected.labels[confident]
    if len(actual.boxes) == 0:
        return [0.0] * len(boxes)
    iou, _ = box_iou(boxes, actual.boxes)  # (k, m)
    same = labels[:, None] == actual.labels[None, :]
    return torch.where(same, iou, torch.zeros_like(iou)).max(1).values.tolist()
