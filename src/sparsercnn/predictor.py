"""End-user inference: a model file in, detections in original pixels out.

:class:`Predictor` takes image paths, folders, PIL images, numpy arrays or tensors, resizes them as
the model was evaluated (the test transform), batches them and returns one :class:`Prediction`
each. Only images with the same padded size share a forward pass, so an image's detections do not
depend on the batch it lands in (see :mod:`sparsercnn.model.inference`).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from sparsercnn.config import Config
from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.image_io import DecodedImage, decode_image, load_image, to_rgb
from sparsercnn.data.transforms import InferenceTransform, build_test_transform
from sparsercnn.evaluation.results import CocoResult, detections_to_coco_results
from sparsercnn.model import SparseRCNN, build_postprocessor
from sparsercnn.model.cuda_graphs import CudaGraphs
from sparsercnn.model.inference import (
    Precision,
    check_calibrated,
    check_precision,
    evaluating,
    group_by_padded_size,
    run_model,
)
from sparsercnn.model.postprocess import detections_to_cpu
from sparsercnn.model_file import load_model_file
from sparsercnn.paths import is_below
from sparsercnn.runtime import check_device, retain_freed_memory
from sparsercnn.structures import Detections, ModelOutput, PixelMap

logger = logging.getLogger(__name__)

# Batches of inputs read ahead to group images of the same padded size.
LOOKAHEAD_BATCHES = 8
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
# Marks a folder of drawings (:class:`~sparsercnn.drawing_writer.DrawingWriter`): a folder given
# to predict leaves out the marked folders below it, and a drawing replaces only files in or
# below a marked folder (:func:`~sparsercnn.drawing_writer.is_drawing`).
DRAWINGS_MARKER = ".sparsercnn-drawings"
ImageInput = str | Path | Image.Image | np.ndarray | Tensor | DecodedImage


@dataclass
class Prediction:
    """Detections of one image.

    Attributes:
        boxes: ``(K, 4)`` absolute xyxy pixels of the original image.
        scores: ``(K,)`` sigmoid scores, descending.
        labels: ``(K,)`` contiguous labels.
        class_names: name of every detection's class.
        category_ids: dataset category id of every detection's class.
        image_size: ``(h, w)`` of the original image.
        source: the file the image came from, or ``"<input i>"``.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    class_names: list[str]
    category_ids: list[int]
    image_size: tuple[int, int]
    source: str

    def above(self, score_threshold: float) -> Prediction:
        """Only the detections scoring at least ``score_threshold`` (for display)."""
        return self.subset((self.scores >= score_threshold).nonzero().flatten().tolist())

    def top(self, k: int) -> Prediction:
        """The first ``k`` detections (the ``k`` best: scores descend), all if fewer.

        Raises:
            ValueError: ``k`` is negative.
        """
        if k < 0:
            raise ValueError(f"top(k): k must be >= 0, got {k}")
        return self.subset(range(min(k, len(self.scores))))

    def subset(self, indices: Sequence[int]) -> Prediction:
        """The detections at ``indices``, in that order, of the same image."""
        keep = list(indices)
        return Prediction(
            boxes=self.boxes[keep],
            scores=self.scores[keep],
            labels=self.labels[keep],
            class_names=[self.class_names[i] for i in keep],
            category_ids=[self.category_ids[i] for i in keep],
            image_size=self.image_size,
            source=self.source,
        )

    def to_coco_results(
        self, categories: CategoryMap, image_id: int | None = None
    ) -> list[CocoResult]:
        """COCO result records (``bbox`` as ``[x, y, w, h]``) with the dataset's
        ``category_id``, its ``category_name`` and the source as ``file_name``.

        Args:
            categories: the model's label map.
            image_id: stored in the records when given.
        """
        detections = Detections(boxes=self.boxes, scores=self.scores, labels=self.labels)
        records = detections_to_coco_results(
            image_id if image_id is not None else -1,
            detections,
            categories.category_ids,
            file_name=self.source,
            label_names=categories.names,
        )
        if image_id is None:
            for record in records:
                del record["image_id"]  # type: ignore[misc]
        return records


def expand_inputs(inputs: ImageInput | Sequence[ImageInput]) -> list[tuple[ImageInput, str]]:
    """Flatten inputs into ``(image or path, source name)`` pairs; folders expand to their images.

    Raises:
        FileNotFoundError: a path does not exist, or a folder holds no image file.
    """
    # A DecodedImage is one input, although a tuple.
    many = isinstance(inputs, list | tuple) and not isinstance(inputs, DecodedImage)
    items: list[ImageInput] = list(inputs) if many else [inputs]  # type: ignore[list-item,arg-type]
    expanded: list[tuple[ImageInput, str]] = []
    for i, item in enumerate(items):
        if isinstance(item, str | Path):
            path = Path(item)
            if path.is_dir():
                files = folder_files(path, IMAGE_SUFFIXES)
                if not files:
                    raise FileNotFoundError(
                        f"folder {path} contains no image files ({', '.join(IMAGE_SUFFIXES)})"
                    )
                expanded.extend((f, str(f)) for f in files)
            elif path.is_file():
                expanded.append((path, str(path)))
            else:
                raise FileNotFoundError(f"input {path} does not exist")
        else:
            expanded.append((item, f"<input {i}>"))
    return expanded


def folder_files(folder: Path, suffixes: Sequence[str], skip: Path | None = None) -> list[Path]:
    """The files below ``folder`` with one of ``suffixes``, sorted by path, but for those in
    :func:`drawing_folders` (how many were left out is logged): what a folder given as input
    stands for, in Python and in ``predict``."""
    left_out = drawing_folders(folder, skip)
    candidates = [p for p in folder.rglob("*") if p.suffix.lower() in suffixes]
    found = sorted(p for p in candidates if not any(is_below(p, f) for f in left_out))
    if len(found) < len(candidates):
        logger.info(
            "%s: leaving out %d drawings of earlier runs (in %s)",
            folder,
            len(candidates) - len(found),
            ", ".join(sorted({str(f) for f in left_out})),
        )
    return found


def drawing_folders(folder: Path, skip: Path | None = None) -> list[Path]:
    """Folders strictly below ``folder`` whose files are drawings, not inputs: those a
    :class:`~sparsercnn.drawing_writer.DrawingWriter` marked (:data:`DRAWINGS_MARKER`), and
    ``skip`` (where this run draws)."""
    found = [marker.parent for marker in folder.rglob(DRAWINGS_MARKER)]
    if skip is not None:
        found.append(skip)
    return [path for path in found if is_below(path, folder, strictly=True)]


def decode_input(image: ImageInput, transform: InferenceTransform) -> DecodedImage:
    """One input, decoded for ``transform``: an image file at the reduced scale the resize
    allows (:func:`~sparsercnn.data.image_io.decode_image` with
    :meth:`~sparsercnn.data.transforms.InferenceTransform.source_size`: a large JPEG at 1/2 to
    1/8 of its size, as the evaluation dataset decodes it), a :class:`DecodedImage` as it is,
    any other input as :func:`to_pil` makes it. ``full_size`` is the ``(h, w)`` its detections
    are given in, and its :meth:`~sparsercnn.data.image_io.DecodedImage.input_map` takes them
    there from the model's input (or the ratio of sizes)."""
    if isinstance(image, DecodedImage):
        return image._replace(image=to_rgb(image.image))
    if isinstance(image, str | Path):
        return decode_image(image, transform.source_size)
    pil = to_pil(image)
    return DecodedImage(pil, (pil.height, pil.width))


def _decode_named(image: ImageInput, source: str, transform: InferenceTransform) -> DecodedImage:
    """:func:`decode_input`, an error about an image given decoded naming it by ``source``
    (``<input i>``; a file's errors name the file already)."""
    try:
        return decode_input(image, transform)
    except (ValueError, TypeError) as error:
        if isinstance(image, str | Path) or type(error) not in (ValueError, TypeError):
            raise
        raise type(error)(f"{source}: {error}") from None


def to_pil(image: ImageInput) -> Image.Image:
    """Load or convert one input to an RGB PIL image. Files are turned upright by their EXIF
    orientation; a PIL image, array or tensor is taken as it is (a caller's ``Image.open``
    result is not rotated: ``PIL.ImageOps.exif_transpose`` does that).

    Arrays are ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA, tensors
    ``(3, H, W)`` RGB or ``(1, H, W)``; both hold 0-255 pixel values: uint8, or integers or
    floats within 0-255 (floats are rounded; floats within [0, 1], NaN, and values outside
    0-255 are refused).

    Raises:
        ValueError: an array or tensor of another shape or range, or an empty image.
        TypeError: an input of another type.
    """
    if isinstance(image, str | Path):
        return load_image(image)
    if isinstance(image, Image.Image):
        if 0 in image.size:
            raise ValueError(f"the image is empty: {image.width}x{image.height} pixels")
        return to_rgb(image)
    if isinstance(image, Tensor):
        if image.dim() != 3 or image.shape[0] not in (1, 3):
            raise ValueError(
                f"tensor images must be (3, H, W) or (1, H, W), got {tuple(image.shape)}"
                + _layout_hint(tuple(image.shape), "permute(2, 0, 1)", "channels")
            )
        tensor = image.detach().cpu()
        if tensor.is_floating_point():
            tensor = tensor.float()  # numpy has no bf16
        image = _uint8_pixels(tensor.permute(1, 2, 0).numpy(), "tensor")
    if isinstance(image, np.ndarray):
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
            raise ValueError(
                f"array images must be HxW, HxWx3 or HxWx4, got shape {image.shape}"
                + _layout_hint(image.shape, "transpose(1, 2, 0)", "last")
            )
        if 0 in image.shape[:2]:
            raise ValueError(f"the image is empty: {image.shape[1]}x{image.shape[0]} pixels")
        return to_rgb(Image.fromarray(_uint8_pixels(image, "array")))
    raise TypeError(
        f"unsupported image input of type {type(image).__name__}; give a path, folder, PIL "
        "image, HxWx3 uint8 RGB array or (3, H, W) tensor, or a list or tuple of them"
    )


def _layout_hint(shape: tuple[int, ...], fix: str, where: str) -> str:
    """What to do with an image of ``shape`` in the other layout, or a batch of images."""
    if len(shape) == 4:
        return "; give a batch as a list of images"
    if len(shape) == 3 and where == "channels" and shape[2] in (1, 3):
        return f"; this looks channels-last (H, W, C): give image.{fix}"
    if len(shape) == 3 and where == "last" and shape[0] in (1, 3, 4):
        return f"; this looks channels-first (C, H, W): give image.{fix}"
    return ""


def _uint8_pixels(pixels: np.ndarray, kind: str) -> np.ndarray:
    """``pixels`` (an image array of any real dtype holding 0-255 values) as uint8.

    Args:
        pixels: the image's values, any shape.
        kind: ``"array"`` or ``"tensor"``, for the message.

    Raises:
        ValueError: floats within [0, 1] or not finite, values outside 0-255, booleans or
            other dtypes (a cast would wrap 16-bit values around, 1020 -> 252, or read a mask
            as pixels; NaN would become an arbitrary value; a clip would change the image).
    """
    dtype = str(pixels.dtype)
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype.kind == "f":
        if not bool(np.isfinite(pixels).all()):
            raise ValueError(
                f"this float {kind} image holds NaN or infinite values; give 0-255 pixels"
            )
        low, high = (float(pixels.min()), float(pixels.max())) if pixels.size else (0.0, 0.0)
        if 0 < high <= 1.0:
            raise ValueError(
                f"float {kind} images hold 0-255 values (as uint8 images do); this one is "
                "within [0, 1]: multiply it by 255"
            )
        if low < -0.5 or high >= 255.5:
            # Clipping would silently change the image (a normalised or 16-bit one).
            raise ValueError(
                f"float {kind} images hold 0-255 values; this one spans [{low:g}, {high:g}] "
                "(normalised, or 16-bit?): scale it to 0-255 first"
            )
        return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    if pixels.dtype.kind in "iu" and (
        not pixels.size or (int(pixels.min()) >= 0 and int(pixels.max()) <= 255)
    ):
        return pixels.astype(np.uint8)
    raise ValueError(
        f"{kind} images hold 0-255 values; this {dtype} one does not (a 16-bit image or a "
        "mask?): scale it to uint8 first"
    )


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
        tuple of these; :func:`to_pil` lists the arrays and tensors taken). Arrays are read as
        RGB: flip an OpenCV (BGR) image with ``image[:, :, ::-1]``. Returns one
        :class:`Prediction` per image (a folder: one per image file in it), in input order,
        boxes absolute xyxy in the pixels of the full image, every detection of the model
        (``num_proposals`` at most, scores descending; :meth:`Prediction.above` keeps those
        over a threshold).

        Image files are decoded as evaluation decodes them (:func:`decode_input`: a JPEG of at
        least twice the model's input in both sides at a reduced scale), so a file gets
        the same detections here as in ``sparsercnn eval``; an image given decoded is used as
        it is."""
        return list(self.iter_predictions(inputs))

    def iter_predictions(self, inputs: ImageInput | Sequence[ImageInput]) -> Iterator[Prediction]:
        """Like :meth:`__call__`, but yields predictions as they come (for large folders).

        Lazy: nothing is read before the first prediction is asked for. Inputs are read
        ``LOOKAHEAD_BATCHES * batch_size`` at a time; within that window, batches are formed of
        images of the same padded size (when ``batch_invariant``). Each image is decoded and
        resized in turn, so memory holds one decoded image and the window's resized ones (at
        most the test resize's size each), however large the files. Predictions come in input
        order.

        Raises:
            FileNotFoundError: a path does not exist, or a folder holds no image file.
            ImageReadError: an image file cannot be read (naming it).
            ValueError, TypeError: an image given decoded is unusable (naming it
                ``<input i>``).
        """
        items = expand_inputs(inputs)
        window = self.batch_size * LOOKAHEAD_BATCHES
        for start in range(0, len(items), window):
            yield from self._predict_window(items[start : start + window])

    def _predict_window(self, items: list[tuple[ImageInput, str]]) -> list[Prediction]:
        resized: list[Tensor] = []
        rescale_sizes: list[tuple[int, int]] = []
        # Each image's pixel map (None: by the ratio of sizes) and full size: its detections
        # reach the full image as evaluation's do (Batch.rescale_sizes, Batch.to_original).
        to_full: list[tuple[PixelMap | None, tuple[int, int]]] = []
        for image, source in items:
            decoded = _decode_named(image, source, self.transform)
            tensor = self.transform.image_tensor(decoded.image)
            input_size = (int(tensor.shape[1]), int(tensor.shape[2]))
            resized.append(tensor)
            rescale_sizes.append(decoded.rescale_size(input_size))
            to_full.append((decoded.input_map(input_size), decoded.full_size))
        groups = [list(range(len(items)))]
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
        for i, ((pixel_map, full_size), (_, source)) in enumerate(zip(to_full, items, strict=True)):
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
        device: where to run.
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
        device: torch.device | str = "cpu",
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
        self.device = check_device(device)
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
        """Build a predictor from a model file (see :mod:`sparsercnn.model_file`)."""
        loaded = load_model_file(path)
        return Predictor(loaded.model, loaded.config, loaded.categories, **kwargs)

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


def prediction_from_detections(
    detections: Detections, categories: CategoryMap, image_size: tuple[int, int], source: str
) -> Prediction:
    """A :class:`Prediction` of detections (any device and float dtype) with their class names.

    Raises:
        ValueError: a score or box is NaN or infinite (a diverged or damaged model's), naming
            ``source``: such detections can be neither ranked, drawn nor written as JSON.
    """
    detections = detections_to_cpu(detections)
    finite = torch.isfinite(detections["scores"]) & torch.isfinite(detections["boxes"]).all(-1)
    if not bool(finite.all()):
        raise ValueError(
            f"{source}: {int((~finite).sum())} of its {len(finite)} detections have a NaN or "
            "infinite score or box; the model's outputs are not finite (diverged training or "
            "damaged weights): use a model whose outputs are finite"
        )
    labels = detections["labels"]
    return Prediction(
        boxes=detections["boxes"],
        scores=detections["scores"],
        labels=labels,
        class_names=[categories.names[i] for i in labels.tolist()],
        category_ids=[categories.category_ids[i] for i in labels.tolist()],
        image_size=image_size,
        source=source,
    )
