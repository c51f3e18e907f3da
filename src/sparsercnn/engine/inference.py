"""Inference over a data loader and COCO evaluation of a model, single- or multi-process.

:func:`run_inference` runs the model and the post-processor over a loader of
:class:`~sparsercnn.structures.Batch` and returns per-image detections in original-image pixels
with timings; in place of the model and post-processor it also takes an
:class:`ExportedDetector` (an ONNX file run by onnxruntime). :func:`evaluate` does that on this
process's shard of a data set, gathers the detections on rank 0 and scores them with
:class:`~sparsercnn.evaluation.CocoEvaluator`: the one evaluation pass of the package. Its
:class:`Evaluation` keeps the detections, so reports, plots and the choice of the best model
reuse them instead of running the model again.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from sparsercnn.data.loader import build_test_loader
from sparsercnn.data.transforms import InferenceTransform
from sparsercnn.engine.distributed import DistInfo, done_on_main, gathered_from_all
from sparsercnn.evaluation import (
    CocoEvaluator,
    CocoGroundTruth,
    CocoResult,
    EvaluationResult,
    detections_to_coco_results,
    write_results_json,
)
from sparsercnn.model import PostProcessor, SparseRCNN
from sparsercnn.model.cuda_graphs import CudaGraphs
from sparsercnn.model.inference import (
    Precision,
    evaluating,
    model_device,
    run_model,
    synchronize,
)
from sparsercnn.runtime import check_device
from sparsercnn.structures import (
    Batch,
    Detections,
    ModelOutput,
    Sample,
    detections_to_cpu,
    padded_size,
)

logger = logging.getLogger(__name__)

# One batch's step: (images on the device, original sizes) -> (detections, model seconds).
BatchStep = Callable[[list[Tensor], list[tuple[int, int]]], tuple[list[Detections], float]]


class LabelMap(Protocol):
    """The part of :class:`~sparsercnn.data.categories.CategoryMap` evaluation needs."""

    @property
    def category_ids(self) -> list[int]: ...

    @property
    def names(self) -> list[str]: ...


class EvaluationDataset(Protocol):
    """A data set with COCO ground truth, like :class:`~sparsercnn.data.coco.CocoDataset`."""

    @property
    def category_map(self) -> LabelMap: ...

    @property
    def coco_json(self) -> Path:
        """The annotation file, which messages about the ground truth name."""

    @property
    def image_ids(self) -> list[int]: ...

    @property
    def transform(self) -> object:
        """The dataset's transform; an ``InferenceTransform`` lets batches be sorted by size."""

    def image_info(self, index: int) -> dict[str, Any]: ...

    def gt_dict(self) -> dict[str, Any]:
        """The COCO ground truth, made anew at every call: evaluation takes it over and
        modifies it (:func:`evaluation_ground_truth`)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


class ExportedDetector(Protocol):
    """A detector run outside PyTorch, like :class:`~sparsercnn.export.OnnxPredictor`:
    test-resized images in, post-processed detections out."""

    @property
    def size_divisibility(self) -> int: ...

    @property
    def clip_boxes(self) -> bool:
        """Whether its detections are clipped to their images (the model's ``clip_boxes``)."""
        ...

    def detect(
        self, images: Sequence[Tensor], original_sizes: Sequence[tuple[int, int]]
    ) -> list[Detections]:
        """Detections (absolute xyxy pixels of the original images) of ``(3, h, w)`` uint8
        test-resized images, one per image."""
        ...


# What :attr:`Timing.model_seconds` covers: a PyTorch model's forward pass, or an exported
# detector's whole run, whose graph also holds the post-processing (top-k, rescale, clip).
FORWARD_PASS = "forward pass"
EXPORTED_GRAPH = "exported graph: forward pass and post-processing"


@dataclass
class Timing:
    """Wall-clock seconds of an inference pass.

    Attributes:
        num_images: images processed.
        model_seconds: the model's forward pass only (the device is synchronised around it);
            excludes data loading and host-to-device copies, and post-processing except for
            an exported detector, whose graph holds it (:attr:`model_covers` says which).
        total_seconds: end to end, from asking the loader for the first batch to the last
            detections on the CPU: loading, transfer, forward and post-processing.
        model_covers: what ``model_seconds`` timed, in words (:data:`FORWARD_PASS` or
            :data:`EXPORTED_GRAPH`).
    """

    num_images: int = 0
    model_seconds: float = 0.0
    total_seconds: float = 0.0
    model_covers: str = FORWARD_PASS

    @property
    def model_seconds_per_image(self) -> float:
        return self.model_seconds / max(self.num_images, 1)

    @property
    def total_seconds_per_image(self) -> float:
        return self.total_seconds / max(self.num_images, 1)


@dataclass
class Evaluation:
    """What :func:`evaluate` returns on rank 0.

    Attributes:
        result: the COCO metrics.
        timing: the slowest rank's timing; None where no model ran (the detections of a
            COCO results file, :mod:`~sparsercnn.engine.detections_evaluation`).
        image_ids: every evaluated image, in dataset order.
        detections: their detections (CPU, absolute xyxy pixels of the original images).
        num_stages: the stages whose output was evaluated (``None``: all).
        ground_truth: the data set's ground truth it was scored against, prepared once: give
            it to the next evaluation of the same data set (``evaluate(..., ground_truth=)``).
    """

    result: EvaluationResult
    timing: Timing | None
    image_ids: list[int]
    detections: list[Detections]
    num_stages: int | None = None
    ground_truth: CocoGroundTruth | None = field(default=None, repr=False)

    def coco_results(self, category_ids: Sequence[int]) -> list[list[CocoResult]]:
        """The detections as COCO result records, one list per image."""
        return coco_results(self.image_ids, self.detections, category_ids)

    def write_results(self, category_ids: Sequence[int], path: str | Path) -> Path:
        """Write the detections as a COCO results JSON (atomically)."""
        flat = [r for image in self.coco_results(category_ids) for r in image]
        write_results_json(flat, path)
        logger.info("wrote %d COCO result records to %s", len(flat), path)
        return Path(path)


def coco_results(
    image_ids: Sequence[int], detections: Sequence[Detections], category_ids: Sequence[int]
) -> list[list[CocoResult]]:
    """COCO result records of every image's detections, one list per image."""
    return [
        detections_to_coco_results(image_id, image_detections, category_ids)
        for image_id, image_detections in zip(image_ids, detections, strict=True)
    ]


def run_inference(
    model: nn.Module | ExportedDetector,
    postprocessor: PostProcessor | None,
    loader: Iterable[Batch],
    num_stages: int | None = None,
    device: torch.device | str | None = None,
    batch_invariant: bool = True,
    precision: Precision = "fp32",
    cuda_graphs: bool = False,
) -> tuple[list[int], list[Detections], Timing]:
    """Detect objects in every batch of ``loader``.

    The model runs in eval mode under ``torch.no_grad`` (its previous mode is restored after).
    A DDP wrapper is unwrapped: inference needs no gradient synchronisation, and the ranks'
    shards may differ in length.

    Args:
        model: a :class:`~sparsercnn.model.SparseRCNN` (or a DDP wrapper of one), or an
            :class:`ExportedDetector` (on the CPU; its model time includes the post-processing
            inside its graph).
        postprocessor: turns the model output into detections; None for an exported detector.
        loader: batches of input images with their ``original_sizes`` and ``pixel_maps``: an
            image decoded at a reduced scale (a large JPEG) has its detections rescaled to its
            own size and then mapped to the original image by its pixel map, clipped as the
            post-processor clips (:meth:`~sparsercnn.structures.Batch.to_original`), as the
            predictor does.
        num_stages: run only the first k refinement stages (default all; PyTorch model only).
        device: where the images go (checked by :func:`~sparsercnn.runtime.check_device`);
            default the model's device.
        batch_invariant: only images of the same padded size share a forward pass
            (:func:`~sparsercnn.model.inference.run_model`), so an image's detections do not
            depend on the batch size or order; False pads each batch to its largest image.
        precision: ``fp32`` or ``bf16`` autocast (PyTorch model only; see
            :func:`~sparsercnn.model.inference.evaluating`).
        cuda_graphs: replay the forward pass from CUDA graphs, one per padded batch shape
            (:class:`~sparsercnn.model.cuda_graphs.CudaGraphs`; PyTorch model on CUDA only).

    Returns:
        ``(image_ids, detections, timing)``: one entry per image in loader order; detections
        on the CPU with boxes in absolute xyxy pixels of the *original* image.

    Raises:
        ValueError: ``device`` is not a device sparsercnn runs on here, or a PyTorch model
            comes without its postprocessor.
    """
    step: BatchStep
    if isinstance(model, nn.Module):
        module = _detector(model)
        if postprocessor is None:
            raise ValueError("inference with a PyTorch model needs its postprocessor")
        target = check_device(device) if device is not None else model_device(module)
        context: contextlib.AbstractContextManager[object] = evaluating(module, precision)
        graphs: CudaGraphs[ModelOutput] | None = CudaGraphs(module) if cuda_graphs else None
        step = functools.partial(
            _torch_step, module, postprocessor, num_stages, batch_invariant, graphs, target
        )
        clip = postprocessor.clip_boxes
    else:
        if cuda_graphs:
            raise ValueError("CUDA graphs replay a PyTorch model, not an exported detector")
        target, context = torch.device("cpu"), contextlib.nullcontext()
        step = functools.partial(_exported_step, model)
        clip = model.clip_boxes
    image_ids: list[int] = []
    detections: list[Detections] = []
    timing = Timing(model_covers=FORWARD_PASS if isinstance(model, nn.Module) else EXPORTED_GRAPH)
    start = time.perf_counter()
    with context:
        for batch in loader:
            images = [image.to(target, non_blocking=True) for image in batch.images]
            results, model_seconds = step(images, batch.rescale_sizes)
            timing.model_seconds += model_seconds
            detections.extend(batch.to_original([detections_to_cpu(r) for r in results], clip))
            image_ids.extend(int(i) for i in batch.image_ids)
            timing.num_images += len(batch)
    timing.total_seconds = time.perf_counter() - start
    return image_ids, detections, timing


def _torch_step(
    model: SparseRCNN,
    postprocessor: PostProcessor,
    num_stages: int | None,
    batch_invariant: bool,
    graphs: CudaGraphs[ModelOutput] | None,
    device: torch.device,
    images: list[Tensor],
    original_sizes: list[tuple[int, int]],
) -> tuple[list[Detections], float]:
    """One batch's detections and the seconds of its forward pass (device synchronised)."""
    synchronize(device)
    start = time.perf_counter()
    output = run_model(
        model, images, num_stages=num_stages, batch_invariant=batch_invariant, graphs=graphs
    )
    synchronize(device)
    seconds = time.perf_counter() - start
    return postprocessor(output, original_sizes), seconds


def _exported_step(
    detector: ExportedDetector, images: list[Tensor], original_sizes: list[tuple[int, int]]
) -> tuple[list[Detections], float]:
    """One batch's detections and the seconds of the whole run (post-processing included)."""
    start = time.perf_counter()
    detections = detector.detect(images, original_sizes)
    return detections, time.perf_counter() - start


def evaluate(
    model: nn.Module | ExportedDetector,
    postprocessor: PostProcessor | None,
    dataset: EvaluationDataset,
    *,
    batch_size: int = 1,
    num_workers: int = 0,
    dist_info: DistInfo | None = None,
    num_stages: int | None = None,
    batch_invariant: bool = True,
    precision: Precision = "fp32",
    cuda_graphs: bool = False,
    ground_truth: CocoGroundTruth | None = None,
) -> Evaluation | None:
    """COCO bbox evaluation of ``model`` on ``dataset`` (test transform already in the dataset).

    Every rank runs its contiguous shard of the data set (``InferenceSampler``); the detections
    are all-gathered to rank 0, which evaluates them. All ranks must call this function; what
    stops one rank's inference or rank 0's scoring is raised on every rank.

    Args:
        model: the detector (a DDP wrapper is unwrapped), or an :class:`ExportedDetector`.
        postprocessor: turns model outputs into detections; None for an exported detector.
        dataset: images with COCO ground truth (``gt_dict()``) and a label map (``category_map``).
        batch_size: most images per forward pass.
        num_workers: data-loading processes.
        dist_info: this process's place in the run (default: single process on the model's
            device).
        num_stages: evaluate the output of the first k stages (default all).
        batch_invariant, precision, cuda_graphs: see :func:`run_inference`.
        ground_truth: ``dataset``'s ground truth as an earlier evaluation of it prepared it
            (:attr:`Evaluation.ground_truth`), used on rank 0; ``None``: prepared from
            ``dataset.gt_dict()``.

    Returns:
        The metrics, timing and detections on rank 0, ``None`` on the other ranks.
    """
    rank, world_size = (dist_info.rank, dist_info.world_size) if dist_info else (0, 1)
    device = dist_info.device if dist_info else None
    divisor = (
        _detector(model).size_divisibility
        if isinstance(model, nn.Module)
        else model.size_divisibility
    )
    size_keys = _padded_input_sizes(dataset, divisor) if batch_invariant else None
    loader = build_test_loader(
        _as_dataset(dataset), batch_size, num_workers, rank, world_size, size_keys=size_keys
    )
    # A rank whose shard fails (an image changed on disk) makes every rank raise its error,
    # rather than rank 0 waiting for its detections.
    gathered = gathered_from_all(
        lambda: run_inference(
            model,
            postprocessor,
            loader,
            num_stages=num_stages,
            device=device,
            batch_invariant=batch_invariant,
            precision=precision,
            cuda_graphs=cuda_graphs,
        )
    )
    # Rank 0 scores them; what stops it (COCOeval, a non-finite detection) stops every rank with
    # its error, rather than the others going on to wait for it in the next collective.
    return done_on_main(lambda: _score(dataset, gathered, num_stages, ground_truth))


def evaluation_ground_truth(dataset: EvaluationDataset) -> CocoGroundTruth:
    """``dataset``'s ground truth prepared for its evaluations, with its label map."""
    categories = dataset.category_map
    # gt_dict() makes a new dict at every call: the ground truth takes it over, uncopied.
    return CocoGroundTruth(
        dataset.gt_dict(),
        categories.category_ids,
        categories.names,
        owned=True,
        source=str(dataset.coco_json),
    )


def _score(
    dataset: EvaluationDataset,
    gathered: list[tuple[list[int], list[Detections], Timing]],
    num_stages: int | None,
    ground_truth: CocoGroundTruth | None,
) -> Evaluation:
    """The COCO evaluation of every rank's ``(image_ids, detections, timing)``, against
    ``ground_truth`` (prepared here when ``None``)."""
    # Batches run in order of size: back to dataset order.
    position = {image_id: i for i, image_id in enumerate(dataset.image_ids)}
    pairs = sorted(
        ((i, d) for ids, dets, _ in gathered for i, d in zip(ids, dets, strict=True)),
        key=lambda pair: position[pair[0]],
    )
    all_ids = [i for i, _ in pairs]
    all_detections = [d for _, d in pairs]
    categories = dataset.category_map
    timing = _log_timing([t for _, _, t in gathered])
    records = coco_results(all_ids, all_detections, categories.category_ids)
    if ground_truth is None:
        ground_truth = evaluation_ground_truth(dataset)
    elif ground_truth.image_ids != frozenset(dataset.image_ids):
        raise ValueError(
            f"the ground truth given to evaluate() ({ground_truth.source}) is of other images than "
            "the dataset's: give the ground truth of an earlier evaluation of this dataset, or none"
        )
    evaluator = CocoEvaluator(ground_truth)
    evaluator.extend(all_ids, records)
    result = evaluator.evaluate()
    return Evaluation(result, timing, all_ids, all_detections, num_stages, ground_truth)


def _detector(model: nn.Module) -> SparseRCNN:
    """The detector itself (a DDP wrapper is unwrapped)."""
    module = getattr(model, "module", model)
    if not isinstance(module, SparseRCNN):
        raise TypeError(f"inference needs a SparseRCNN (or a DDP wrapper of one), got {module}")
    return module


def _padded_input_sizes(
    dataset: EvaluationDataset, size_divisibility: int
) -> list[tuple[int, int]] | None:
    """Padded size of every image after the dataset's test resize, from the annotation file's
    sizes; ``None`` when the dataset has no test resize to predict them with."""
    transform = dataset.transform
    if not isinstance(transform, InferenceTransform):
        return None
    sizes = []
    for index in range(len(dataset)):
        info = dataset.image_info(index)
        height, width = transform.output_size(int(info["height"]), int(info["width"]))
        sizes.append(padded_size(height, width, size_divisibility))
    return sizes


def _as_dataset(dataset: EvaluationDataset) -> Dataset[Sample]:
    if not isinstance(dataset, Dataset) or not isinstance(dataset, Sized):
        raise TypeError(
            f"{type(dataset).__name__} must be a torch Dataset with __len__ (e.g. CocoDataset)"
        )
    return dataset


def _log_timing(timings: list[Timing]) -> Timing:
    """Log and return the slowest rank's per-image times (what bounds the wall clock)."""
    slowest = max(timings, key=lambda t: t.total_seconds)
    logger.info(
        "inference on %d images: %.4f s/image end to end, %.4f s/image in the model "
        "(slowest of %d processes)",
        sum(t.num_images for t in timings),
        slowest.total_seconds_per_image,
        slowest.model_seconds_per_image,
        len(timings),
    )
    return slowest
