"""Export a trained model to ONNX, describe it in the file's metadata, and check the result.

:func:`export_onnx` traces :class:`~sparsercnn.export.onnx_wrapper.SparseRCNNOnnxModel` with
``torch.export`` (``torch.onnx.export(..., dynamo=True)``, which needs ``onnxscript``); the
TorchScript-based exporter cannot handle the multi-level RoIAlign's in-place level flattening.
The graph has dynamic batch (optional), height and width axes. The file's ``metadata_props``
carry the label map, the test resize and the source config (:data:`METADATA_FORMAT`), so that
:class:`~sparsercnn.export.onnx_runtime.OnnxPredictor` needs nothing else. Before the file
appears at its destination, onnxruntime runs it on sample images of two sizes and the outputs
are compared with PyTorch's.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.metadata
import importlib.util
import json
import logging
import math
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sparsercnn import __version__
from sparsercnn.atomic_file import atomic_write
from sparsercnn.config import Config
from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.transforms import resized_shape
from sparsercnn.export.onnx_wrapper import INPUT_NAMES, OUTPUT_NAMES, SparseRCNNOnnxModel
from sparsercnn.model import SparseRCNN
from sparsercnn.model.inference import evaluating
from sparsercnn.model_file import LoadedModel, load_model_file, model_state_dict
from sparsercnn.safetensors_file import file_tensors_crc32, tensors_crc32

logger = logging.getLogger(__name__)

METADATA_FORMAT = "sparsercnn-onnx"
# Version 2 added the ``num_detections`` output; version 1 graphs marked removed boxes by a score
# of 0 alone, which a real detection's score can also be.
METADATA_VERSION = "2"
# The metadata key of the CRC-32 of the weights the graph was exported from, as the model file's
# ``tensors_crc32`` (:func:`~sparsercnn.safetensors_file.file_tensors_crc32`): ``serve`` checks
# that its ``--onnx`` is an export of its ``--model``. Exports before it have none.
WEIGHTS_DIGEST_KEY = "weights_crc32"
DEFAULT_OPSET = 18
# The oldest opset the graph's operators exist in (LayerNormalization); which opsets the exporter
# writes is another matter (:func:`writable_opsets`).
MIN_OPSET = 17
# The range of heights and widths torch.export traces for: above one stride of P5 (32), as
# torch.export specialises a 1x1 P5 level. The graph itself runs smaller inputs too (a 1x1 P5
# level after its padding), which the check covers for a model resizing to under 33 px.
MIN_SIDE = 33
MAX_SIDE = 4096
# The tracing example's sides are multiples of this (the P5 stride; :func:`tracing_example`).
TRACED_MULTIPLE = 32
# Original (h, w) of the check images before the test resize: landscape and portrait COCO-like.
CHECK_ORIGINAL_SIZES = ((480, 640), (640, 427))
# How far onnxruntime's numbers may be from PyTorch's (float rounding, not the detections kept);
# the README's Deploy section and ``export --help`` state them.
BOX_TOLERANCE = 1e-3  # of the original image's longer side
SCORE_TOLERANCE = 1e-4
EXPORTER_LOGGERS = ("torch.onnx", "torch.export", "onnxscript", "onnx_ir")


class OnnxCheckError(RuntimeError):
    """onnxruntime's outputs differ from PyTorch's beyond the tolerances; nothing was written.

    The message is :attr:`finding` and what to do about it in the export functions' terms
    (``check=False``); the command line says it with its own flag after :attr:`finding`.

    Attributes:
        path: the file that was not written.
        parity: the failed comparison.
        finding: what was found, without the advice.
    """

    def __init__(self, path: str | Path, parity: ParityCheck, graph: str = "") -> None:
        """``graph``: which graph was compared, where it is not the file's own (``"its fp32
        graph"`` of an int8 export)."""
        super().__init__(path, parity, graph)  # the args a pickled copy is made of
        self.path = Path(path)
        self.parity = parity
        compared = f" on {graph}" if graph else ""
        self.finding = (
            f"{path}: onnxruntime disagrees with PyTorch{compared} ({parity}); "
            "the file was not written"
        )

    def __str__(self) -> str:
        return f"{self.finding}; export with check=False to write it anyway"


@dataclass
class ParityCheck:
    """How closely onnxruntime reproduces PyTorch on the check images.

    Attributes:
        inputs: ``(batch, height, width)`` of each checked input tensor.
        max_box_diff: largest coordinate difference of matched detections, original pixels.
        max_box_rel_diff: the same divided by the image's longer side.
        max_score_diff: largest difference of the sorted scores.
        unmatched: detections without a counterpart (same label, score and box) in the other
            runtime's, counted both ways and the larger count taken, summed over the images;
            near-ties at the top-k boundary are not counted. A detection that one runtime keeps
            and the other removes (its ``num_detections``) is one.
    """

    inputs: list[tuple[int, int, int]]
    max_box_diff: float
    max_box_rel_diff: float
    max_score_diff: float
    unmatched: int

    @property
    def passed(self) -> bool:
        return (
            self.max_box_rel_diff <= BOX_TOLERANCE
            and self.max_score_diff <= SCORE_TOLERANCE
            and self.unmatched == 0
        )


@dataclass
class ExportReport:
    """What :func:`export_onnx` did.

    Attributes:
        path: the written ``.onnx`` file.
        opset: ONNX opset of the default domain.
        exporter: which torch exporter produced the graph.
        dynamic_batch: whether the batch axis is dynamic (else fixed at 1).
        num_bytes: file size.
        seconds: wall time of export, metadata and check.
        check: the onnxruntime-vs-PyTorch comparison, None when skipped.
        metadata: the ``metadata_props`` written into the file.
    """

    path: Path
    opset: int
    exporter: str
    dynamic_batch: bool
    num_bytes: int
    seconds: float
    check: ParityCheck | None
    metadata: dict[str, str] = field(repr=False)

    def summary(self) -> str:
        """A few human-readable lines for the CLI and logs."""
        lines = [
            f"wrote {self.path} in {self.seconds:.1f} s ({self.num_bytes / 2**20:.1f} MiB, "
            f"opset {self.opset}, {self.exporter}, batch "
            f"{'dynamic' if self.dynamic_batch else 'static (1)'})"
        ]
        if self.check is not None:
            c = self.check
            lines.append(
                f"onnxruntime vs PyTorch on inputs {c.inputs} (batch, h, w): max box difference "
                f"{c.max_box_diff:.2e} px ({c.max_box_rel_diff:.1e} of the image side), max score "
                f"difference {c.max_score_diff:.1e}, unmatched detections {c.unmatched}"
            )
        return "\n".join(lines)


def export_onnx(
    model_file_or_loaded: str | Path | LoadedModel,
    output_path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    check: bool = True,
    num_stages: int | None = None,
) -> ExportReport:
    """Export a model file (or a loaded model) to a self-describing, NMS-free ONNX file.

    The graph's inputs and outputs are those of :meth:`SparseRCNNOnnxModel.forward`: ``images``
    ``(B, 3, H, W)`` float32 RGB 0-255, ``image_sizes`` and ``original_sizes`` ``(B, 2)`` int64
    ``(h, w)``; ``boxes (B, N, 4)`` xyxy original pixels, ``scores (B, N)``, ``labels (B, N)``
    and ``num_detections (B,)`` int64: image ``i``'s detections are its first
    ``num_detections[i]`` entries, the boxes removed by the official clipping come after them
    (see the wrapper). ``H`` and ``W`` are dynamic, any size up to :data:`MAX_SIDE` (4096):
    torch.export traces sides from :data:`MIN_SIDE` (33) up, and the graph pads smaller ones to
    32 as it pads larger ones to multiples of 32 (a 1x1 P5 level; onnxruntime matches PyTorch
    there too, down to 1x1 inputs, and the check runs them for a model resizing to under 33 px).
    ``B`` is dynamic unless ``dynamic_batch`` is False (then 1). The metadata records the CRC-32
    of the weights (:data:`WEIGHTS_DIGEST_KEY`), which ``serve`` checks against its model file.

    Args:
        model_file_or_loaded: a model file path or a :class:`LoadedModel`.
        output_path: destination ``.onnx``; written atomically, weights inside the file.
        opset: ONNX opset (:func:`check_opset`: one this exporter writes, 17 or newer).
        dynamic_batch: dynamic batch axis (else fixed at 1).
        check: run the file with onnxruntime on two image sizes and compare with PyTorch
            (:class:`ParityCheck`: the same detections, scores within :data:`SCORE_TOLERANCE`
            and boxes within :data:`BOX_TOLERANCE` of the image's longer side).
        num_stages: export only the first k stages (default all).

    Raises:
        ImportError: ``onnx``, ``onnxscript`` or (with ``check``) ``onnxruntime`` is missing.
        ValueError: the model has no fixed-shape graph (:func:`check_exportable`), or the
            exporter cannot write ``opset`` (:func:`check_opset` before the export,
            :func:`check_graph_opset` after it).
        OnnxCheckError: the check found differences beyond the tolerances (nothing is written).
    """
    require_modules("onnx", "onnxscript", *(["onnxruntime"] if check else []))
    check_opset(opset)
    start = time.perf_counter()
    if isinstance(model_file_or_loaded, LoadedModel):
        loaded, source = model_file_or_loaded, "the model"
        weights_crc32 = None
    else:
        loaded, source = load_model_file(model_file_or_loaded), str(model_file_or_loaded)
        weights_crc32 = file_tensors_crc32(model_file_or_loaded)  # mostly read from its header
    check_exportable(loaded.config, source)
    if weights_crc32 is None:  # as if it were saved (for serve's check against its model file)
        weights_crc32 = tensors_crc32(model_state_dict(loaded.model))
    model = loaded.model
    if next(model.parameters()).device.type != "cpu" or model.pixel_mean.dtype != torch.float32:
        model = copy.deepcopy(model).to(device="cpu", dtype=torch.float32)
    wrapper = SparseRCNNOnnxModel(
        model, clip_boxes=loaded.config.model.clip_boxes, num_stages=num_stages
    )
    with evaluating(wrapper):
        sample = sample_inputs(loaded.config, batch_size=2 if dynamic_batch else 1)[0]
        example = tracing_example(sample, loaded.config.model.size_divisibility)
        program = _export_program(wrapper, example, opset=opset, dynamic_batch=dynamic_batch)
        check_graph_opset(program.model_proto, opset)
        metadata = build_metadata(
            loaded.config, loaded.categories, wrapper.num_stages, weights_crc32=weights_crc32
        )
        report = _write(
            program, wrapper, loaded, metadata, output_path, opset, dynamic_batch, check
        )
    report.seconds = time.perf_counter() - start
    logger.info("exported %s in %.1f s", report.path, report.seconds)
    return report


def _write(
    program: torch.onnx.ONNXProgram,
    wrapper: SparseRCNNOnnxModel,
    loaded: LoadedModel,
    metadata: dict[str, str],
    output_path: str | Path,
    opset: int,
    dynamic_batch: bool,
    check: bool,
) -> ExportReport:
    """Add the metadata, save to a temporary file, check it, then move it into place."""
    import onnx

    proto = program.model_proto
    onnx.helper.set_model_props(proto, metadata)
    parity: list[ParityCheck] = []

    def write(tmp: Path) -> None:
        onnx.save_model(proto, str(tmp))
        if check:
            parity.append(check_parity(wrapper, tmp, loaded.config, dynamic_batch))
            if not parity[0].passed:
                raise OnnxCheckError(output_path, parity[0])

    path = atomic_write(output_path, write)
    return ExportReport(
        path=path,
        opset=opset,
        exporter="torch.onnx.export(dynamo=True) via torch.export",
        dynamic_batch=dynamic_batch,
        num_bytes=path.stat().st_size,
        seconds=0.0,
        check=parity[0] if parity else None,
        metadata=metadata,
    )


def check_exportable(config: Config, source: str) -> None:
    """Refuse, before tracing, a model whose inference has no fixed-shape graph.

    RoIAlign's adaptive sampling (``model.sampling_ratio`` 0) takes as many samples as each box
    covers, counted from the boxes: ``torch.export`` fails on it with a long internal error.

    Raises:
        ValueError: naming ``source`` (the model file) and the config key.
    """
    ratio = config.model.sampling_ratio
    if ratio <= 0:
        raise ValueError(
            f"{source}: model.sampling_ratio={ratio} (RoIAlign's adaptive sampling, whose "
            "number of samples depends on each box) has no fixed-shape ONNX graph; run this "
            "model with `sparsercnn predict --model`, or export one trained with "
            "model.sampling_ratio >= 1"
        )


def writable_opsets() -> range | None:
    """The opsets this exporter writes: from the one torch's ONNX functions are written in
    (:func:`torchlib_opset`, 18 for torch 2.13) to the newest onnxscript's version converter,
    which torch runs on the graph, reaches (:func:`newest_convertible_opset`, 25 for onnxscript
    0.7). None where torch does not say the first, or onnx or onnxscript is missing: the written
    graph is still checked (:func:`check_graph_opset`)."""
    oldest = torchlib_opset()
    if oldest is None or importlib.util.find_spec("onnxscript") is None:
        return None
    return range(oldest, newest_convertible_opset(oldest) + 1)


def torchlib_opset() -> int | None:
    """The opset torch's ONNX functions are written in: its exporter builds the graph in it and
    converts from it to the opset asked for (older ones are not reached). torch has no public
    name for it (2.13), so this reads its private constant; None where that is gone (a test
    fails then, to find its new name)."""
    try:
        from torch.onnx._internal.exporter import _constants
    except ImportError:
        return None
    opset = getattr(_constants, "TORCHLIB_OPSET", None)
    return opset if isinstance(opset, int) else None


def newest_convertible_opset(oldest: int) -> int:
    """The newest opset onnxscript's public version converter takes an opset-``oldest`` graph
    to, at most the newest the installed onnx knows: each newer opset is tried in turn on an
    empty graph (about 0.1 ms each); the converter refuses one beyond its range
    (``ValueError``) or leaves the graph at its opset."""
    import onnx
    from onnxscript import ir
    from onnxscript.version_converter import convert_version

    newest = oldest
    for target in range(oldest + 1, onnx.defs.onnx_opset_version() + 1):
        graph = ir.Graph([], [], nodes=[], opset_imports={"": oldest})
        model = ir.Model(graph, ir_version=onnx.IR_VERSION)
        try:
            with quiet_exporter():  # each conversion logs its graph passes
                convert_version(model, target, fallback=False)
        except ValueError:
            break
        if model.graph.opset_imports.get("") != target:
            break
        newest = target
    return newest


def check_opset(opset: int) -> None:
    """Refuse, before any work, an ``opset`` the graph or this exporter cannot have.

    Raises:
        ValueError: ``opset`` is older than the graph's operators (:data:`MIN_OPSET`) or outside
            :func:`writable_opsets` (names ``--opset`` and the opsets that work).
    """
    opsets = writable_opsets()
    # Both reasons where both apply: named the graph's minimum alone, 16 led to 17, refused next.
    reasons = []
    if opset < MIN_OPSET:
        reasons.append(f"the graph needs opset {MIN_OPSET} or newer, for LayerNormalization")
    if opsets is not None and opset not in opsets:
        reasons.append(
            f"this exporter (torch {torch.__version__}, onnxscript "
            f"{importlib.metadata.version('onnxscript')}) writes opsets {opsets.start} to "
            f"{opsets.stop - 1}; choose one of them"
        )
    if reasons:
        raise ValueError(
            f"opset (--opset) {opset}: {', and '.join(reasons)} (the default is {DEFAULT_OPSET})"
        )


def check_graph_opset(proto: Any, opset: int) -> None:
    """Raise when the exported graph ``proto`` (an ``onnx.ModelProto``) is not of ``opset``.

    The exporter writes its own opset (18 for torch 2.13) where it cannot convert to the one
    asked for: below it, a newer file than asked; beyond its version converter, an opset-18
    graph with operators of the newer opset (Attention), which onnxruntime refuses to load.

    Raises:
        ValueError: the graph's default-domain opset is not ``opset`` (names ``--opset``).
    """
    written = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    if written == [opset]:
        return
    reached = written[0] if written else None
    advice = (
        f"it writes opset {reached} and newer"
        if reached is not None and reached > opset
        else f"choose an older one (the default is {DEFAULT_OPSET})"
    )
    raise ValueError(
        f"opset (--opset) {opset}: this exporter (torch {torch.__version__}) cannot write opset "
        f"{opset} (it wrote opset {reached}); {advice}"
    )


def require_modules(*modules: str) -> None:
    """Raise, before any work, when a module of the ``export`` extra is not installed.

    Raises:
        ImportError: one line naming the missing modules and the extra to install.
    """
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(
            f"ONNX export needs {', '.join(missing)}: pip install 'sparsercnn[export]' "
            "(onnx, onnxscript, onnxruntime)"
        )


def _export_program(
    wrapper: SparseRCNNOnnxModel,
    example: tuple[Tensor, Tensor, Tensor],
    *,
    opset: int,
    dynamic_batch: bool,
) -> torch.onnx.ONNXProgram:
    batch = torch.export.Dim("batch", min=1, max=1024) if dynamic_batch else None
    height = torch.export.Dim("height", min=MIN_SIDE, max=MAX_SIDE)
    width = torch.export.Dim("width", min=MIN_SIDE, max=MAX_SIDE)
    batch_axis = {0: batch} if batch is not None else {}
    dynamic_shapes = {
        "images": {**batch_axis, 2: height, 3: width},
        "image_sizes": batch_axis,
        "original_sizes": batch_axis,
    }
    return onnx_program(wrapper, example, INPUT_NAMES, OUTPUT_NAMES, opset, dynamic_shapes)


def onnx_program(
    module: nn.Module,
    example: tuple[Tensor, ...],
    input_names: Sequence[str],
    output_names: Sequence[str],
    opset: int,
    dynamic_shapes: dict[str, Any] | None = None,
) -> torch.onnx.ONNXProgram:
    """``torch.onnx.export(dynamo=True)`` of ``module`` on ``example`` with weights inside the
    model and a quiet console; ``.save(path)`` writes one self-contained file."""
    with quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            module,
            example,
            dynamo=True,
            external_data=False,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_shapes=dynamic_shapes,
            opset_version=opset,
            optimize=True,
            verbose=False,
        )
    assert program is not None  # dynamo=True always returns the program
    return program


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence the exporter's loggers (:data:`EXPORTER_LOGGERS`) below errors, and its warnings,
    while inside: it logs every graph pass and the absence of torchvision, and warns about axis
    renaming and deprecated pytree internals, nothing actionable for our users."""
    loggers = [logging.getLogger(name) for name in EXPORTER_LOGGERS]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (UserWarning, FutureWarning, DeprecationWarning))
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class _BackboneFPN(nn.Module):
    """Backbone + FPN of a detector, for timing the head's share (normalised input)."""

    def __init__(self, model: SparseRCNN) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.fpn = model.fpn

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.fpn(self.backbone(images)))


def export_backbone_fpn(
    model: SparseRCNN, example: Tensor, output_path: str | Path, opset: int = DEFAULT_OPSET
) -> Path:
    """Export backbone + FPN alone with static shapes (benchmarks time it separately).

    Args:
        model: the detector (CPU, float32, eval mode).
        example: ``(B, 3, H, W)`` normalised, padded images; the graph's fixed input shape.
        output_path: destination; input ``images``, outputs ``p2`` ... ``p5``.
    """
    require_modules("onnx", "onnxscript")
    names = ("p2", "p3", "p4", "p5")
    program = onnx_program(_BackboneFPN(model), (example,), ["images"], names, opset)
    return atomic_write(output_path, lambda tmp: program.save(str(tmp), external_data=False))


def build_metadata(
    config: Config,
    categories: CategoryMap,
    num_stages: int | None = None,
    *,
    weights_crc32: str,
) -> dict[str, str]:
    """The ``metadata_props`` of an exported file: label map, preprocessing, source config and
    the CRC-32 of the weights (:data:`WEIGHTS_DIGEST_KEY`)."""
    model_cfg = config.model
    return {
        "format": METADATA_FORMAT,
        "format_version": METADATA_VERSION,
        "producer": f"sparsercnn {__version__}, torch {torch.__version__}",
        WEIGHTS_DIGEST_KEY: weights_crc32,
        "class_names": json.dumps(categories.names),
        "category_ids": json.dumps(categories.category_ids),
        "num_classes": str(model_cfg.num_classes),
        "num_proposals": str(model_cfg.num_proposals),
        "num_stages": str(num_stages or model_cfg.num_stages),
        "test_min_size": str(config.input.test_min_size),
        "test_max_size": str(config.input.test_max_size),
        "size_divisibility": str(model_cfg.size_divisibility),
        "pixel_mean": json.dumps(list(model_cfg.pixel_mean)),
        "pixel_std": json.dumps(list(model_cfg.pixel_std)),
        "preprocessing": (
            "resize RGB so the short side is test_min_size and the long side at most "
            "test_max_size (bilinear); feed float32 0-255 (B, 3, H, W) with each image in the "
            "top-left corner; the graph normalises with pixel_mean/pixel_std and pads to "
            "size_divisibility itself"
        ),
        "clip_boxes": json.dumps(model_cfg.clip_boxes),
        "removed_boxes": (
            "sorted after the first num_detections entries (with score 0)"
            if model_cfg.clip_boxes
            else "none (boxes are not clipped; num_detections is the number of proposals)"
        ),
        "config": config.to_json(),
    }


def parse_metadata(metadata: Mapping[str, str], source: str) -> tuple[Config, CategoryMap]:
    """Config and label map from an exported file's metadata (inverse of :func:`build_metadata`).

    Raises:
        ValueError: the metadata is not that of a sparsercnn export (message names ``source``).
    """
    if metadata.get("format") != METADATA_FORMAT:
        raise ValueError(
            f"{source} is an ONNX model but not a sparsercnn export (metadata format="
            f"{metadata.get('format')!r}); export one with `sparsercnn export`"
        )
    if metadata.get("format_version") == "1":
        raise ValueError(
            f"{source} was exported by an older sparsercnn (export format version 1, without "
            "the num_detections output that tells real detections from removed boxes); "
            "re-export it from its model file with `sparsercnn export`"
        )
    version = metadata.get("format_version")
    if version != METADATA_VERSION:
        newer = version is not None and version.isdigit() and int(version) > int(METADATA_VERSION)
        advice = (
            "it was written by a newer sparsercnn: upgrade sparsercnn to run it, or re-export "
            "its model file with this one"
            if newer
            else "re-export the model"
        )
        raise ValueError(
            f"{source} has export format version {version!r}; this sparsercnn "
            f"({__version__}) reads version {METADATA_VERSION}: {advice}"
        )
    try:
        config = Config.from_run_dict(json.loads(metadata["config"]))
        categories = CategoryMap(
            json.loads(metadata["category_ids"]), json.loads(metadata["class_names"])
        )
        config.input.test_min_size = int(metadata["test_min_size"])
        config.input.test_max_size = int(metadata["test_max_size"])
    except (KeyError, ValueError, TypeError) as error:
        raise ValueError(f"{source}: damaged sparsercnn metadata ({error}); re-export") from error
    return config, categories


def sample_inputs(
    config: Config, batch_size: int, seed: int = 0
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Random inputs of the export's signature at the two :data:`CHECK_ORIGINAL_SIZES`.

    Each is ``(images (B, 3, H, W) float32 0-255, image_sizes (B, 2), original_sizes (B, 2))``
    with ``(H, W)`` the test-resized size; with ``B > 1`` the other images are smaller than
    the tensor, so padding is exercised.
    """
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for original in CHECK_ORIGINAL_SIZES:
        size = resized_shape(*original, config.input.test_min_size, config.input.test_max_size)
        images = torch.randint(0, 256, (batch_size, 3, *size), generator=generator).float()
        sizes = torch.tensor([size] * batch_size, dtype=torch.int64)
        originals = torch.tensor([original] * batch_size, dtype=torch.int64)
        for i in range(1, batch_size):
            # Smaller images (zero outside) of proportionally smaller originals.
            sizes[i] = (sizes[0] * (1.0 - 0.15 * i)).to(torch.int64)
            originals[i] = (originals[0] * (1.0 - 0.15 * i)).to(torch.int64)
            images[i, :, sizes[i, 0] :, :] = 0
            images[i, :, :, sizes[i, 1] :] = 0
        samples.append((images, sizes, originals))
    return samples


def tracing_example(
    sample: tuple[Tensor, Tensor, Tensor], size_divisibility: int
) -> tuple[Tensor, Tensor, Tensor]:
    """``sample`` (as :func:`sample_inputs` makes it) with its images tensor zero-padded at the
    bottom and right as the graph pads it (to a multiple of ``size_divisibility`` and of the
    P5 stride, :data:`TRACED_MULTIPLE`), and to at least :data:`MIN_SIDE`; the images' sizes
    are unchanged.

    torch.export fails on an example outside the traced range (a model whose test resize gives
    a side under 33 px, as the recipe's 32 px short side for small images does) and on one whose
    width is no multiple of 32 (torch 2.13: a 256x341 example, the check image of a model
    resizing to a 256 px short side, fails on a guard of the padding).
    """
    images, image_sizes, original_sizes = sample
    multiple = math.lcm(TRACED_MULTIPLE, size_divisibility)
    pad_h, pad_w = (
        -(-max(side, MIN_SIDE) // multiple) * multiple - side for side in images.shape[2:]
    )
    images = torch.nn.functional.pad(images, (0, pad_w, 0, pad_h))
    return images, image_sizes, original_sizes


def check_parity(
    wrapper: SparseRCNNOnnxModel, onnx_path: Path, config: Config, dynamic_batch: bool
) -> ParityCheck:
    """Run ``onnx_path`` with onnxruntime and ``wrapper`` in PyTorch on :func:`sample_inputs`."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    batch_sizes = (2, 1) if dynamic_batch else (1, 1)
    inputs: list[tuple[int, int, int]] = []
    box_diff = box_rel_diff = score_diff = 0.0
    unmatched = 0
    samples = sample_inputs(config, max(batch_sizes))
    for batch_size, full_sample in zip(batch_sizes, samples, strict=True):
        sample = [t[:batch_size] for t in full_sample]
        images, _, originals = sample
        inputs.append((batch_size, int(images.shape[2]), int(images.shape[3])))
        with evaluating(wrapper):
            expected = [t.numpy() for t in wrapper(*sample)]
        feeds = {name: t.numpy() for name, t in zip(INPUT_NAMES, sample, strict=True)}
        actual = session.run(list(OUTPUT_NAMES), feeds)
        for i in range(batch_size):
            found, wanted = detections_of(actual, i), detections_of(expected, i)
            diff, missing = match_detections(found, wanted, SCORE_TOLERANCE)
            _, left_out = match_detections(wanted, found, SCORE_TOLERANCE)
            box_diff = max(box_diff, diff)
            box_rel_diff = max(box_rel_diff, diff / float(originals[i].max()))
            unmatched += max(missing, left_out)
        score_diff = max(score_diff, float(np.abs(actual[1] - expected[1]).max()))
    return ParityCheck(inputs, box_diff, box_rel_diff, score_diff, unmatched)


def detections_of(outputs: Sequence[np.ndarray[Any, Any]], i: int) -> list[np.ndarray[Any, Any]]:
    """Image ``i``'s ``(boxes (n, 4), scores (n,), labels (n,))`` of the graph's outputs
    (:data:`OUTPUT_NAMES`): its first ``num_detections[i]`` entries."""
    boxes, scores, labels, num_detections = outputs
    n = int(num_detections[i])
    return [boxes[i][:n], scores[i][:n], labels[i][:n]]


def match_detections(
    actual: list[np.ndarray[Any, Any]], expected: list[np.ndarray[Any, Any]], score_tol: float
) -> tuple[float, int]:
    """Compare one image's ``(boxes (k, 4), scores (k,), labels (k,))`` from two runtimes.

    Near-equal scores may be ordered differently by the two top-k implementations, so every
    actual detection is matched to the expected one with the same label, a score within
    ``score_tol`` and the closest box.

    Returns:
        ``(largest box coordinate difference of a matched detection, number of actual
        detections without a match)``; detections within ``score_tol`` of the lowest score may
        have been cut by the other top-k (which breaks ties as it likes: a tie group there, such
        as scores that are all 0, may hold other proposals in each runtime), so they count
        neither as unmatched nor in the box difference.
    """
    boxes_a, scores_a, labels_a = actual
    boxes_e, scores_e, labels_e = expected
    if len(scores_a) == 0 or len(scores_e) == 0:
        return 0.0, len(scores_a)
    box_diff = np.abs(boxes_a[:, None, :] - boxes_e[None, :, :]).max(-1)  # (k, k)
    candidate = (labels_a[:, None] == labels_e[None, :]) & (
        np.abs(scores_a[:, None] - scores_e[None, :]) <= score_tol
    )
    best = np.where(candidate, box_diff, np.inf).min(1)  # (k,)
    at_boundary = scores_a <= min(scores_a.min(), scores_e.min()) + score_tol
    matched = np.isfinite(best)
    compared = matched & ~at_boundary
    largest = float(best[compared].max()) if compared.any() else 0.0
    return largest, int((~matched & ~at_boundary).sum())
