"""Data contracts shared by every layer of the package, written once.

Box formats (names carry the format wherever it is not absolute xyxy pixels):

- ``boxes`` (no qualifier): absolute ``(x1, y1, x2, y2)`` pixels of the image the tensor belongs
  to. Inside the model and the loss that is the *input image* (after resize/crop, before padding);
  in :class:`Detections` returned to users it is the *original image*.
- ``boxes_cxcywh_norm``: ``(cx, cy, w, h)`` divided by ``(W, H, W, H)`` of the unpadded input
  image (the learnable proposal parametrisation, spec 3).
- ``boxes_xyxy_norm``: ``(x1, y1, x2, y2)`` divided by ``(W, H, W, H)`` (matching L1 cost, spec 7).
- ``bbox_xywh``: COCO JSON ``[x, y, w, h]`` absolute pixels of the original image.

Sizes are always ``(h, w)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypedDict

import torch
from torch import Tensor

from sparsercnn.json_values import is_real
from sparsercnn.ops.boxes import clip_boxes, nonempty_boxes


def padded_size(height: int, width: int, size_divisibility: int) -> tuple[int, int]:
    """``(h, w)`` rounded up to multiples of ``size_divisibility`` (how far an image is padded)."""
    # -(-x // d) is x / d rounded up.
    return (
        -(-height // size_divisibility) * size_divisibility,
        -(-width // size_divisibility) * size_divisibility,
    )


class PixelMap(NamedTuple):
    """The affine map from an image's pixels to the full image's it shows (a JPEG decoded at a
    reduced scale, possibly resized after): per axis, ``full = scale * pixel + offset``
    (continuous pixel coordinates, 0 at the left/top edge).

    Attributes:
        scale_x, scale_y: full pixels per pixel.
        offset_x, offset_y: full-pixel coordinate of the image's left/top edge.
    """

    scale_x: float
    scale_y: float
    offset_x: float = 0.0
    offset_y: float = 0.0

    def boxes_to_full(self, boxes: Tensor) -> Tensor:
        """``(..., 4)`` xyxy boxes from the image's to full-image pixels (unclipped)."""
        scale = boxes.new_tensor([self.scale_x, self.scale_y] * 2)
        return boxes * scale + boxes.new_tensor([self.offset_x, self.offset_y] * 2)

    def boxes_to_decoded(self, boxes: Tensor) -> Tensor:
        """``(..., 4)`` xyxy boxes from full-image to the image's pixels (unclipped)."""
        offset = boxes.new_tensor([self.offset_x, self.offset_y] * 2)
        return (boxes - offset) / boxes.new_tensor([self.scale_x, self.scale_y] * 2)

    def after_resize(self, size: tuple[int, int], resized: tuple[int, int]) -> PixelMap:
        """The map of a plain resize of the image, from its ``size`` to ``resized`` (both
        ``(h, w)``): each scale times ``size / resized`` (exactly the same map when they are
        equal), the offsets kept."""
        return PixelMap(
            self.scale_x * (size[1] / resized[1]),
            self.scale_y * (size[0] / resized[0]),
            self.offset_x,
            self.offset_y,
        )

    def boxes_to_full_image(
        self, boxes: Tensor, full_size: tuple[int, int], clip: bool
    ) -> tuple[Tensor, Tensor]:
        """Post-processed ``(..., 4)`` xyxy boxes of the image (clipped to it, if at all) in the
        pixels of the full image ``full_size`` ``(h, w)``.

        Returns:
            The boxes, clipped to the full image with ``clip`` (the image's pixel grid can reach
            up to ``k - 1`` full pixels past it at a reduction of ``1 / k``), and ``(...,)``
            bool: False for a box that clipping emptied.
        """
        boxes = self.boxes_to_full(boxes)
        if not clip:
            return boxes, torch.ones(boxes.shape[:-1], dtype=torch.bool, device=boxes.device)
        boxes = clip_boxes(boxes, *full_size)
        return boxes, nonempty_boxes(boxes)

    def detections_to_full_image(
        self, detections: Detections, full_size: tuple[int, int], clip: bool
    ) -> Detections:
        """Post-processed ``detections`` of the image in the pixels of the full image
        ``full_size`` ``(h, w)`` (:meth:`boxes_to_full_image`), those clipping emptied
        dropped (as post-processing drops them), score order kept."""
        boxes, valid = self.boxes_to_full_image(detections["boxes"], full_size, clip)
        return Detections(
            boxes=boxes[valid],
            scores=detections["scores"][valid],
            labels=detections["labels"][valid],
        )


@dataclass
class ImageBatch:
    """A padded batch of images plus each image's unpadded size.

    Attributes:
        tensor: ``(B, 3, Hp, Wp)`` float, already normalised, zero-padded at the bottom/right so
            that ``Hp`` and ``Wp`` are multiples of the size divisibility (32 for ResNet-FPN).
        image_sizes: ``(B, 2)`` int64, ``(h, w)`` of every image before padding.
    """

    tensor: Tensor
    image_sizes: Tensor

    @staticmethod
    def from_tensors(
        images: Sequence[Tensor], size_divisibility: int = 32, pad_value: float = 0.0
    ) -> ImageBatch:
        """Pad ``images`` (each ``(3, h, w)``) to a common size divisible by ``size_divisibility``.

        The one collation of images into a padded batch (bottom/right). The model's
        normalisation and zero padding (spec 1.1) is
        :meth:`~sparsercnn.model.SparseRCNN.normalise_and_pad`.
        """
        if len(images) == 0:
            raise ValueError("ImageBatch.from_tensors needs at least one image, got an empty list")
        for i, image in enumerate(images):
            if image.dim() != 3 or image.shape[0] != 3:
                raise ValueError(
                    f"image {i} has shape {tuple(image.shape)}; expected (3, H, W) RGB. "
                    "Convert grayscale/RGBA images to RGB before batching."
                )
        max_h, max_w = padded_size(
            max(int(image.shape[1]) for image in images),
            max(int(image.shape[2]) for image in images),
            max(size_divisibility, 1),
        )
        first = images[0]
        tensor = first.new_full((len(images), 3, max_h, max_w), pad_value)
        for i, image in enumerate(images):
            tensor[i, :, : image.shape[1], : image.shape[2]].copy_(image)
        sizes = torch.tensor(
            [[int(image.shape[1]), int(image.shape[2])] for image in images],
            dtype=torch.int64,
            device=first.device,
        )
        return ImageBatch(tensor=tensor, image_sizes=sizes)

    def to(self, device: torch.device | str) -> ImageBatch:
        return ImageBatch(self.tensor.to(device), self.image_sizes.to(device))

    def __len__(self) -> int:
        return int(self.tensor.shape[0])


@dataclass
class Target:
    """Ground truth of one image, in input-image coordinates.

    Attributes:
        boxes: ``(M, 4)`` float32, absolute xyxy pixels of the input image (after transforms).
        labels: ``(M,)`` int64 contiguous labels in ``[0, num_classes)``.
    """

    boxes: Tensor
    labels: Tensor

    def to(self, device: torch.device | str) -> Target:
        return Target(self.boxes.to(device), self.labels.to(device))

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class StageOutput:
    """Predictions of one refinement stage for a batch.

    Attributes:
        logits: ``(B, N, C)`` class logits (sigmoid, no background class).
        boxes: ``(B, N, 4)`` absolute xyxy pixels of each input image.
    """

    logits: Tensor
    boxes: Tensor


@dataclass
class ModelOutput:
    """What :class:`~sparsercnn.model.detector.SparseRCNN` returns, in training and inference.

    Attributes:
        stages: one :class:`StageOutput` per stage run, first to last (deep supervision uses all,
            inference the last).
        image_sizes: ``(B, 2)`` int64 ``(h, w)`` of the unpadded input images.
        proposal_boxes: ``(B, N, 4)`` the learned proposals scaled to each input image (xyxy).
    """

    stages: list[StageOutput]
    image_sizes: Tensor
    proposal_boxes: Tensor

    @property
    def last(self) -> StageOutput:
        return self.stages[-1]


class Detections(TypedDict):
    """torchvision-style detections of one image.

    ``boxes``: ``(K, 4)`` absolute xyxy pixels of the *original* image; ``scores``: ``(K,)``;
    ``labels``: ``(K,)`` int64 contiguous labels.
    """

    boxes: Tensor
    scores: Tensor
    labels: Tensor


def detections_to_cpu(detections: Detections) -> Detections:
    """``detections`` on the CPU, boxes and scores as float32 (whatever the model's device and
    dtype), labels int64."""
    return Detections(
        boxes=detections["boxes"].float().cpu(),
        scores=detections["scores"].float().cpu(),
        labels=detections["labels"].cpu(),
    )


@dataclass
class Sample:
    """One item produced by a dataset: a transformed image and its ground truth.

    Attributes:
        image: ``(3, h, w)`` uint8 RGB input image (after resize/flip/crop).
        target: ground truth in input-image coordinates.
        image_id: the dataset's image id (COCO ``images[].id``).
        original_size: ``(h, w)`` of the image as stored on disk (after EXIF orientation).
        file_name: path of the image relative to the image folder.
        replaced_files: files that failed to load and were replaced by this sample (training
            with ``--skip-invalid`` only; carried in the data so that the count reaches the
            metrics from data-loading worker processes).
        pixel_map: the map from ``image``'s pixels to the original image's when the file was
            decoded at a reduced scale (a large JPEG), whose pixels are not a plain resize of
            it; ``None``: by the ratio of ``image``'s size to ``original_size``. Either assumes
            ``image`` shows the whole image resized (the test transform, or none).
    """

    image: Tensor
    target: Target
    image_id: int
    original_size: tuple[int, int]
    file_name: str = ""
    replaced_files: tuple[str, ...] = ()
    pixel_map: PixelMap | None = None


@dataclass
class Batch:
    """A collated list of samples (images stay unpadded; the model pads them).

    ``replaced_files`` lists the files that failed to load and were replaced, over all samples.
    ``pixel_maps`` holds every sample's :attr:`Sample.pixel_map` (empty: all ``None``).
    """

    images: list[Tensor]
    targets: list[Target]
    image_ids: list[int]
    original_sizes: list[tuple[int, int]]
    file_names: list[str] = field(default_factory=list)
    replaced_files: list[str] = field(default_factory=list)
    pixel_maps: list[PixelMap | None] = field(default_factory=list)

    @staticmethod
    def collate(samples: Sequence[Sample]) -> Batch:
        return Batch(
            images=[s.image for s in samples],
            targets=[s.target for s in samples],
            image_ids=[s.image_id for s in samples],
            original_sizes=[s.original_size for s in samples],
            file_names=[s.file_name for s in samples],
            replaced_files=[file for s in samples for file in s.replaced_files],
            pixel_maps=[s.pixel_map for s in samples],
        )

    @property
    def rescale_sizes(self) -> list[tuple[int, int]]:
        """``(h, w)`` a post-processor rescales each image's detections to by the ratio of
        sizes: its ``original_size``, or for an image with a pixel map its own size (the
        identity), which :meth:`to_original` then maps to the original image."""
        return [
            size if pixel_map is None else (int(image.shape[-2]), int(image.shape[-1]))
            for image, size, pixel_map in zip(
                self.images, self.original_sizes, self._pixel_maps(), strict=True
            )
        ]

    def to_original(self, detections: Sequence[Detections], clip: bool) -> list[Detections]:
        """Post-processed ``detections`` of every image, rescaled to :attr:`rescale_sizes`, in
        original-image pixels: those of an image with a pixel map mapped by it (clipped to the
        original image with ``clip``, the post-processor's, and those clipping emptied
        dropped), the others as they are."""
        return [
            d if pixel_map is None else pixel_map.detections_to_full_image(d, size, clip)
            for d, size, pixel_map in zip(
                detections, self.original_sizes, self._pixel_maps(), strict=True
            )
        ]

    def _pixel_maps(self) -> list[PixelMap | None]:
        return self.pixel_maps or [None] * len(self.images)

    def __len__(self) -> int:
        return len(self.images)


def distinct_names(category_ids: Sequence[int], names: Sequence[str]) -> list[str]:
    """``names`` with the category id added to every name that several categories share
    (``circle (3)``, ``circle (1000)``), so per-class tables and keys keep every class apart."""
    return [
        f"{name} ({cat_id})" if names.count(name) > 1 else name
        for cat_id, name in zip(category_ids, names, strict=True)
    ]


def coco_area(annotation: Mapping[str, Any]) -> float:
    """The area COCO evaluation sorts an annotation by (small < 32², large >= 96²): its
    ``area`` field (a segment's area in COCO's own files), else its box's ``w * h``."""
    area = annotation.get("area")
    if is_real(area):  # numpy scalars too: a ground-truth dict may be built in memory
        return float(area)
    return float(annotation["bbox"][2]) * float(annotation["bbox"][3])
