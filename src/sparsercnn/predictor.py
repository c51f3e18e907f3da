"""End-user inference: a model file in, detections in original pixels out.

:class:`Predictor` takes image paths, folders, PIL images, numpy arrays or tensors
(:mod:`sparsercnn.image_inputs`), resizes them as the model was evaluated (the test transform),
batches them and returns one :class:`~sparsercnn.prediction.Prediction` each. Only images with
the same padded size share a forward pass, so an image's detections do not depend on the batch
it lands in (see :mod:`sparsercnn.model.inference`). :class:`BatchPredictor`, the reading and
batching, is shared with the ONNX predictor.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sparsercnn.config import Config
from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.image_io import DecodedImage, ImageReadError
from sparsercnn.data.transforms import InferenceTransform, build_test_transform
from sparsercnn.image_inputs import ImageInput, decode_input, expand_inputs
from sparsercnn.model import SparseRCNN, build_postprocessor
from sparsercnn.model.cuda_graphs import CudaGraphs
from sparsercnn.model.inference import (
    Precision,
    check_calibrated,
    check_precision,
    evaluating,
    group_by_padded_size,
    run_model,
    unused_int8_calibration,
)
from sparsercnn.model_file import load_model_file
from sparsercnn.prediction import Prediction, prediction_from_detections
from sparsercnn.runtime import resolve_device, retain_freed_memory
from sparsercnn.structures import Detections, ModelOutput, PixelMap, detections_to_cpu

logger = logging.getLogger(__name__)

# Batches of inputs read ahead to group images of the same padded size.
LOOKAHEAD_BATCHES = 8


def _decode_named(image: ImageInput, source: str, transform: InferenceTransform) -> DecodedImage:
    """:func:`~sparsercnn.image_inputs.decode_input`, an error about an image given decoded
    naming it by ``source`` (``<input i>``; a file's errors name the file already)."""
    try:
        return decode_input(image, transform)
    except (ValueError, TypeError) as error:
        if isinstance(image, str | Path) or type(error) not in (ValueError, TypeError):
            raise
        raise type(error)(f"{source}: {error}") from None


class BatchPredictor:
    """Shared front end of the predictors: expand inputs, test-resize them, batch them.

    A batch holds inputs of one padded size, taken from a window of :data:`LOOKAHEAD_BATCHES`
    batches (``batch_invariant``), or any ``batch_size`` consecutive inputs; predictions come
    back in input order either way.
    Subclasses set the attributes below and implement :meth:`detect`.

    Attributes:
        config: the model's configuration.
        categories: the model's label map (class names and dataset category ids).
        batch_size: most images per forward pass.
        transform: the model's test resize.
        size_divisibility: the model's padding multiple.
        batch_invariant: batch only images with the same padded size, so an image's detections
            do not depend on its batch companions.
    """

    config: Config
    categories: CategoryMap
    batch_size: int
    transform: InferenceTransform
    size_divisibility: int
    batch_invariant: bool = True

    def __call__(self, inputs: ImageInput | Sequence[ImageInput]) -> list[Prediction]:
        """Detect objects in ``inputs`` (a path, folder, PIL image, HxWx3 uint8 RGB array,
        (3, H, W) RGB tensor, :class:`~sparsercnn.data.image_io.DecodedImage`, or a list or
        tuple of these; :func:`~sparsercnn.image_inputs.to_pil` lists the arrays and tensors
        taken). Arrays are read as RGB: flip an OpenCV (BGR) image with ``image[:, :, ::-1]``.
        Returns one :class:`~sparsercnn.prediction.Prediction` per image (a folder: one per
        image file in it), in input order, boxes absolute xyxy in the pixels of the full image,
        every detection of the model (``num_proposals`` at most, scores descending;
        :meth:`~sparsercnn.prediction.Prediction.above` keeps those over a threshold).

        Image files are decoded as evaluation decodes them
        (:func:`~sparsercnn.image_inputs.decode_input`: a JPEG of at least twice the model's
        input in both sides at a reduced scale), so a file gets the same detections here as in
        ``sparsercnn eval``; an image given decoded is used as it is.

        Raises:
            FileNotFoundError: a path does not exist, or a folder holds no image file.
            ImageReadError: an image file (given, or found in a folder) cannot be read, naming
                it: the call returns nothing, the predictions of the other images included;
                :meth:`iter_predictions` with ``on_unreadable`` leaves such files out instead.
            ValueError, TypeError: an image given decoded is unusable (naming it
                ``<input i>``).
        """
        return list(self.iter_predictions(inputs))

    def iter_predictions(
        self,
        inputs: ImageInput | Sequence[ImageInput],
        *,
        on_unreadable: Callable[[ImageReadError], None] | None = None,
    ) -> Iterator[Prediction]:
        """Like :meth:`__call__`, but yields predictions as they come (for large folders).

        Lazy: nothing is read before the first prediction is asked for. Inputs are read
        ``LOOKAHEAD_BATCHES * batch_size`` at a time; within that window, batches are formed of
        images of the same padded size (when ``batch_invariant``). Each image is decoded and
        resized in turn, so memory holds one decoded image and the window's resized ones (at
        most the test resize's size each), however large the files. Predictions come in input
        order.

        Args:
            inputs: as :meth:`__call__` takes them.
            on_unreadable: called with the error of each image file that cannot be read (a
                truncated JPEG, an empty PNG; :attr:`ImageReadError.path
                <sparsercnn.data.image_io.ImageReadError.path>` names it), which then has no
                prediction: the others are predicted. ``None``: such a file raises.

        Raises:
            FileNotFoundError: a path does not exist, or a folder holds no image file.
            ImageReadError: an image file cannot be read (naming it), without
                ``on_unreadable``; the predictions of its window of inputs, and of those after
                it, are not made.
            ValueError, TypeError: an image given decoded is unusable (naming it
                ``<input i>``).
        """
        items = expand_inputs(inputs)
        window = self.batch_size * LOOKAHEAD_BATCHES
        for start in range(0, len(items), window):
            yield from self._predict_window(items[start : start + window], on_unreadable)

    def _predict_window(
        self,
        window: list[tuple[ImageInput, str]],
        on_unreadable: Callable[[ImageReadError], None] | None,
    ) -> list[Prediction]:
        resized: list[Tensor] = []
        rescale_sizes: list[tuple[int, int]] = []
        # Each image's pixel map (None: by the ratio of sizes) and full size: its detections
        # reach the full image as evaluation's do (Batch.rescale_sizes, Batch.to_original).
        to_full: list[tuple[PixelMap | None, tuple[int, int]]] = []
        sources: list[str] = []  # of the images read
        for image, source in window:
            try:
                decoded = _decode_named(image, source, self.transform)
            except ImageReadError as error:
                if on_unreadable is None:
                    raise
                on_unreadable(error)
                continue
            sources.append(source)
            tensor = self.transform.image_tensor(decoded.image)
            input_size = (int(tensor.shape[1]), int(tensor.shape[2]))
            resized.append(tensor)
            rescale_sizes.append(decoded.rescale_size(input_size))
            to_full.append((decoded.input_map(input_size), decoded.full_size))
        groups = [list(range(len(sources)))]
        if self.batch_invariant:
            sizes = [(int(t.shape[1]), int(t.shape[2])) for t in resized]
            groups = group_by_padded_size(sizes, self.size_divisibility)
        detections: dict[int, Detections] = {}
        for group in groups:
            for begin in range(0, len(group), self.batch_size):
                batch = group[begin : begin + self.batch_size]
                results = self.detect(
                    [resized[i] for i in batch], [rescale_sizes[i] for i in batch]
                )
                detections.update(zip(batch, results, strict=True))
        predictions = []
        for i, ((pixel_map, full_size), source) in enumerate(zip(to_full, sources, strict=True)):
            found = detections_to_cpu(detections[i])
            if pixel_map is not None:
                found = pixel_map.detections_to_full_image(found, full_size, self.clip_boxes)
            predictions.append(
                prediction_from_detections(found, self.categories, full_size, source)
            )
        return predictions

    @property
    def clip_boxes(self) -> bool:
        """Whether detections are clipped to their image (the model's ``clip_boxes``)."""
        return self.config.model.clip_boxes

    @property
    def runs_on(self) -> str:
        """Where the predictions run, as reports name it (``eval``'s device, ``predict``'s
        summary, ``benchmark``'s device): ``cpu``, ``cuda:0``, or for an ONNX file its device
        and execution provider."""
        raise NotImplementedError

    def detect(
        self, images: Sequence[Tensor], original_sizes: Sequence[tuple[int, int]]
    ) -> list[Detections]:
        """Post-processed detections of test-resized ``(3, h, w)`` uint8 images (one forward
        pass, or session run), one per image, in order, on any device: boxes absolute xyxy,
        rescaled by the ratio of sizes to ``original_sizes`` ``(h, w)``. :meth:`__call__` gives
        each image's :meth:`~sparsercnn.data.image_io.DecodedImage.rescale_size` (for a reduced
        JPEG its input size) and then maps the boxes to the full image by its pixel map
        (:meth:`~sparsercnn.structures.PixelMap.detections_to_full_image`)."""
        raise NotImplementedError


class Predictor(BatchPredictor):
    """Run a trained model on images.

    Args:
        model: the detector (moved to ``device`` and put in eval mode).
        config: its resolved config (test resize and post-processing come from it).
        categories: label map (names and dataset category ids).
        device: where to run (None: CUDA where a GPU is available, else the CPU;
            :func:`~sparsercnn.runtime.resolve_device`).
        batch_size: most images per forward pass.
        num_stages: run only the first k stages (default all).
        batch_invariant: batch only images with the same padded size (default); False pads
            mixed sizes together as the official code does, which changes their detections.
        precision: ``fp32``; ``bf16`` autocast on devices with native bf16 (R50: 1.5-1.9x
            fp32's speed on an AVX-512 BF16 CPU; scores and boxes differ at bf16 rounding); or
            ``winograd``, fp32 with Winograd 3x3 convolutions on CPUs
            (:mod:`sparsercnn.model.winograd`; outputs differ at ~1e-5 relative); or ``int8``,
            the backbone and FPN on int8 convolutions on CPUs, for a model with an int8
            calibration (:mod:`sparsercnn.model.int8_features`; ``export --int8`` to a
            ``.safetensors`` file makes one; approximate, its AP measured beside fp32).
        cuda_graphs: on CUDA, replay the forward pass from CUDA graphs captured per input
            shape (:class:`~sparsercnn.model.cuda_graphs.CudaGraphs`): the same detections
            without the kernel-launch overhead that bounds eager GPU inference; the first image
            of each new shape pays for a capture (about three forward passes).

    On the CPU, constructing a predictor configures the process allocator to reuse freed memory
    (:func:`~sparsercnn.runtime.retain_freed_memory`), which makes inference much faster.
    """

    def __init__(
        self,
        model: SparseRCNN,
        config: Config,
        categories: CategoryMap,
        *,
        device: torch.device | str | None = "cpu",
        batch_size: int = 4,
        num_stages: int | None = None,
        batch_invariant: bool = True,
        precision: Precision = "fp32",
        cuda_graphs: bool = False,
    ) -> None:
        if not _is_count(batch_size):
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        _check_num_stages(num_stages, model)
        _check_label_map(model, config, categories)
        self.device = resolve_device(device)
        check_precision(precision, self.device)
        check_calibrated(model, precision)
        self.precision = precision
        if self.device.type == "cpu":
            retain_freed_memory()
        self.model = model.to(self.device).eval()
        self.graphs: CudaGraphs[ModelOutput] | None = (
            CudaGraphs(self.model) if cuda_graphs else None
        )
        self.config = config
        self.categories = categories
        self.batch_size = batch_size
        self.num_stages = num_stages
        self.batch_invariant = batch_invariant
        self.transform = build_test_transform(config.input)
        self.size_divisibility = model.size_divisibility
        self.postprocessor = build_postprocessor(config)

    @property
    def runs_on(self) -> str:
        """The device, ``cpu`` or ``cuda:0``."""
        return str(self.device)

    def with_stages(self, num_stages: int | None) -> Predictor:
        """A predictor sharing this one's model and settings that runs only the first
        ``num_stages`` stages (``None``: all); ``self`` is returned when nothing changes.

        Raises:
            ValueError: ``num_stages`` is outside ``1..model.num_stages``.
        """
        if num_stages == self.num_stages:
            return self
        _check_num_stages(num_stages, self.model)
        other = copy.copy(self)
        other.num_stages = num_stages
        return other

    @staticmethod
    def from_file(path: str | Path, **kwargs: Any) -> Predictor:
        """Build a predictor from a model file (see :mod:`sparsercnn.model_file`); an INFO line
        says when the file's int8 calibration could make it faster
        (:func:`~sparsercnn.model.inference.unused_int8_calibration`).

        Args:
            path: the ``.safetensors`` model file.
            kwargs: the keyword arguments of :class:`Predictor`: ``device``, ``batch_size``,
                ``num_stages``, ``batch_invariant``, ``precision``, ``cuda_graphs``.
        """
        loaded = load_model_file(path)
        predictor = Predictor(loaded.model, loaded.config, loaded.categories, **kwargs)
        note = unused_int8_calibration(predictor.model, predictor.precision, predictor.device)
        if note is not None:
            logger.info("%s %s", path, note)
        return predictor

    def detect(
        self, images: Sequence[Tensor], original_sizes: Sequence[tuple[int, int]]
    ) -> list[Detections]:
        with evaluating(self.model, self.precision):
            output = run_model(
                self.model,
                [image.to(self.device) for image in images],
                num_stages=self.num_stages,
                batch_invariant=self.batch_invariant,
                graphs=self.graphs,
            )
            return self.postprocessor(output, original_sizes)


def _is_count(value: object) -> bool:
    """``value`` is an integer >= 1 (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_num_stages(num_stages: int | None, model: SparseRCNN) -> None:
    """Raise unless ``num_stages`` is None or one of the model's stages ``1..num_stages``."""
    if num_stages is not None and not (_is_count(num_stages) and num_stages <= model.num_stages):
        raise ValueError(
            f"num_stages (--stages) {num_stages!r}: the model has stages 1..{model.num_stages}"
        )


def _check_label_map(model: SparseRCNN, config: Config, categories: CategoryMap) -> None:
    """Raise unless the model, its config and the label map have the same number of classes
    (else detections would be named after other classes, or not at all)."""
    logits = model.head.stages[0].class_logits
    assert isinstance(logits, torch.nn.Linear)
    model_classes = logits.out_features
    if not len(categories) == config.model.num_classes == model_classes:
        raise ValueError(
            f"the model has {model_classes} classes, its config model.num_classes="
            f"{config.model.num_classes} and the label map (categories) {len(categories)}: "
            "give the config and label map the model was trained with (Predictor.from_file "
            "reads all three from a model file)"
        )
