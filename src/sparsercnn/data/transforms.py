"""Paired image + box augmentation (spec 1.2-1.3), applied by the dataset to each sample.

A transform is a callable ``(image, boxes, rng) -> (image, boxes, keep)``:

- ``image``: a ``PIL.Image.Image`` in RGB, as decoded from disk;
- ``boxes``: ``(M, 4)`` float32 absolute xyxy pixels of that image;
- ``rng``: the ``random.Random`` that is the only source of randomness, so a sample's
  augmentation is fixed by its seed;

and returns the ``(3, h, w)`` uint8 input image, its ``(M', 4)`` float32 xyxy boxes clipped to
it, and ``keep``: ``(M',)`` int64 indices of the input boxes that survived (boxes whose width or
height is not above 1e-5 after the transform are dropped, as detectron2's
``filter_empty_instances``). Images are kept even when no box survives.

The geometric pieces are plain functions of a PIL image and a box tensor; :class:`TrainTransform`
and :class:`InferenceTransform` chain them, and :func:`build_train_transform` /
:func:`build_test_transform` are the only readers of :class:`~sparsercnn.config.InputConfig`.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from sparsercnn.config import InputConfig
from sparsercnn.ops.boxes import clip_boxes

# detectron2's ``Boxes.nonempty(threshold=1e-5)``: a box must be wider and taller than this.
EMPTY_BOX_THRESHOLD = 1e-5


class Transform(Protocol):
    """What the dataset calls on every sample (see the module docstring)."""

    def __call__(
        self, image: Image.Image, boxes: Tensor, rng: random.Random
    ) -> tuple[Tensor, Tensor, Tensor]: ...


# Inference decodes a large JPEG at a reduced scale at least this many times the size the test
# resize makes of it (libjpeg's DCT scaling, 1/2 to 1/8). At twice, COCO AP of four models
# trained on 1000-2000 px photos matched full decoding within 0.002 either way (at once the
# size, 0.002-0.006 lower); a 4000x3000 JPEG for a 320-px model then loads in ~45 ms instead
# of ~120 (2-core AVX-512 machine; BENCHMARKS.md, session 15). Training keeps no margin (twice
# its size trained worse on two seeds).
INFERENCE_DECODE_MARGIN = 2


def resized_shape(height: int, width: int, short_edge: int, max_size: int) -> tuple[int, int]:
    """Output ``(h, w)`` of a shortest-edge resize with a long-edge cap (spec 1.2).

    ``scale = short_edge / min(h, w)``; if ``max(h, w) * scale > max_size`` then
    ``scale = max_size / max(h, w)``; the result is
    ``(int(h * scale + 0.5), int(w * scale + 0.5))``, each side at least 1 pixel (a 1x3000 strip
    would otherwise have none left, where the reference fails).
    """
    scale = short_edge / min(height, width)
    if max(height, width) * scale > max_size:
        scale = max_size / max(height, width)
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def hflip(image: Image.Image, boxes: Tensor) -> tuple[Image.Image, Tensor]:
    """Mirror the image left-right; xyxy boxes map to ``(W - x2, y1, W - x1, y2)``."""
    width = image.width
    flipped = torch.stack(
        (width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]), dim=1
    )
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), flipped


def resize_image(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize to ``size = (h, w)`` with PIL bilinear; antialiased when downscaling (detectron2)."""
    height, width = size
    if (height, width) == (image.height, image.width):
        return image
    return image.resize((width, height), Image.Resampling.BILINEAR)


def resize(image: Image.Image, boxes: Tensor, size: tuple[int, int]) -> tuple[Image.Image, Tensor]:
    """:func:`resize_image` plus its boxes: x coordinates scale by ``w / W``, y by ``h / H``."""
    height, width = size
    scale = boxes.new_tensor(
        [width / image.width, height / image.height, width / image.width, height / image.height]
    )
    return resize_image(image, size), boxes * scale


def crop(
    image: Image.Image, boxes: Tensor, window: tuple[int, int, int, int]
) -> tuple[Image.Image, Tensor]:
    """Cut ``window = (top, left, h, w)`` out of the image; boxes are shifted and clipped to it.

    Boxes falling outside the window become empty (zero width or height); :func:`drop_empty`
    removes them.
    """
    top, left, height, width = window
    shifted = boxes - boxes.new_tensor([left, top, left, top])
    cropped = image.crop((left, top, left + width, top + height))
    return cropped, clip_boxes(shifted, height, width)


def sample_crop_window(
    height: int, width: int, crop_range: tuple[int, int], rng: random.Random
) -> tuple[int, int, int, int]:
    """Draw an "absolute_range" crop (spec 1.3): ``(top, left, crop_h, crop_w)``.

    ``crop_h ~ U_int[min(H, lo), min(H, hi)]`` and ``crop_w ~ U_int[min(W, lo), min(W, hi)]``
    (inclusive), then the offset is uniform over all positions inside the image.
    """
    low, high = crop_range
    crop_h = rng.randint(min(height, low), min(height, high))
    crop_w = rng.randint(min(width, low), min(width, high))
    top = rng.randint(0, height - crop_h)
    left = rng.randint(0, width - crop_w)
    return top, left, crop_h, crop_w


def drop_empty(boxes: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    """Remove boxes whose width or height is not above :data:`EMPTY_BOX_THRESHOLD`."""
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    nonempty = (widths > EMPTY_BOX_THRESHOLD) & (heights > EMPTY_BOX_THRESHOLD)
    return boxes[nonempty], keep[nonempty]


def to_tensor(image: Image.Image) -> Tensor:
    """``(3, h, w)`` uint8 tensor of an RGB PIL image."""
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def _check_inputs(image: Image.Image, boxes: Tensor) -> tuple[Image.Image, Tensor]:
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(
            f"transform expects boxes of shape (M, 4) xyxy, got {tuple(boxes.shape)}; "
            "pass torch.zeros((0, 4)) for an image without boxes"
        )
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image, boxes.to(torch.float32)


def _finish(image: Image.Image, boxes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Clip to the final image, drop empty boxes and convert the image to a tensor."""
    boxes = clip_boxes(boxes, image.height, image.width)
    keep = torch.arange(boxes.shape[0], dtype=torch.int64)
    boxes, keep = drop_empty(boxes, keep)
    return to_tensor(image), boxes.contiguous(), keep


@dataclass(frozen=True)
class _TrainDraw:
    """One sample's draws in :class:`TrainTransform`: the flip; the pre-crop ``(h, w)`` and the
    ``(top, left, h, w)`` window, or None without a crop; the output ``(h, w)``."""

    flip: bool
    crop: tuple[tuple[int, int], tuple[int, int, int, int]] | None
    size: tuple[int, int]


@dataclass(frozen=True)
class TrainTransform:
    """Training augmentation: flip, then multi-scale resize, optionally the random-crop policy.

    Order of operations (spec 1.2-1.3, official implementation):

    1. horizontal flip with probability ``flip_prob``;
    2. if ``crop_pre_sizes`` is not empty, with probability ``crop_prob`` (policy B): resize the
       short side to a choice of ``crop_pre_sizes`` with no long-edge cap, then crop a window
       drawn by :func:`sample_crop_window` with ``crop_size``; otherwise (policy A) nothing;
    3. resize the short side to a uniform choice of ``min_sizes``, long side capped at
       ``max_size``.

    Attributes:
        min_sizes: candidate short-edge lengths of the final resize.
        max_size: long-edge cap of the final resize.
        flip_prob: probability of the horizontal flip.
        crop_pre_sizes: short-edge lengths before the crop; empty disables cropping.
        crop_size: ``(lo, hi)`` range of the crop height and width.
        crop_prob: probability of policy B (the official 0.5).
    """

    min_sizes: tuple[int, ...]
    max_size: int
    flip_prob: float = 0.5
    crop_pre_sizes: tuple[int, ...] = ()
    crop_size: tuple[int, int] = (384, 600)
    crop_prob: float = 0.5

    def __post_init__(self) -> None:
        if len(self.min_sizes) == 0:
            raise ValueError("TrainTransform needs at least one short-edge size in min_sizes")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {self.flip_prob}")
        if not 0.0 <= self.crop_prob <= 1.0:
            raise ValueError(f"crop_prob must be in [0, 1], got {self.crop_prob}")
        if not 0 < self.crop_size[0] <= self.crop_size[1]:
            raise ValueError(f"crop_size must be (lo, hi) with 0 < lo <= hi, got {self.crop_size}")

    def source_size(self, height: int, width: int) -> tuple[int, int]:
        """The resolution ``(h, w)`` this transform needs of an image of ``height x width``: the
        most any of its resizes makes of it (flipping changes no size), so an image decoded at
        any size from this up to the full one trains the same, up to resampling."""
        sizes = [resized_shape(height, width, side, self.max_size) for side in self.min_sizes]
        if self.crop_pre_sizes:
            pre_size = max(self.crop_pre_sizes)
            sizes.append(resized_shape(height, width, pre_size, max_size=sys.maxsize))
        return max(size[0] for size in sizes), max(size[1] for size in sizes)

    @property
    def changes_orientation(self) -> bool:
        """Whether an output can be wider than tall where its image is not, or the reverse: only
        a random crop can (resizing and flipping keep the orientation)."""
        return bool(self.crop_pre_sizes) and self.crop_prob > 0

    @property
    def draws_size(self) -> bool:
        """Whether a sample's output size depends on its draws (several short sides, or a random
        crop), and not on its image's size alone."""
        return len(set(self.min_sizes)) > 1 or self.changes_orientation

    def output_size(self, height: int, width: int, rng: random.Random) -> tuple[int, int]:
        """``(h, w)`` of the image :meth:`__call__` makes of a ``height x width`` image with
        ``rng`` in the same state, known without the image (the same draws, from ``rng``)."""
        return self._draw(height, width, rng).size

    def output_sizes(self, sizes: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """``(n, 2)`` int64 ``(h, w)`` of the samples of images of ``(n, 2)`` ``sizes`` ``(h, w)``
        with ``(n,)`` sample ``seeds``: :meth:`output_size` with ``random.Random(seed)``, as the
        dataset draws a sample's augmentation."""
        pairs = zip(
            np.asarray(sizes).reshape(-1, 2).tolist(), np.asarray(seeds).tolist(), strict=True
        )
        output = [self.output_size(h, w, random.Random(seed)) for (h, w), seed in pairs]
        return np.array(output, dtype=np.int64).reshape(-1, 2)

    def grouping_sizes(self, sizes: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """``(n, 2)`` int64 ``(h, w)`` by which samples of images of ``(n, 2)`` ``sizes`` with
        ``(n,)`` ``seeds`` are grouped into batches of one orientation: their
        :meth:`output_sizes` where a random crop can change the orientation, else the images'
        own sizes, whose orientation resizing and flipping keep (no draw needed)."""
        if not self.changes_orientation:
            return np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
        return self.output_sizes(sizes, seeds)

    def __call__(
        self, image: Image.Image, boxes: Tensor, rng: random.Random
    ) -> tuple[Tensor, Tensor, Tensor]:
        image, boxes = _check_inputs(image, boxes)
        draw = self._draw(image.height, image.width, rng)
        if draw.flip:
            image, boxes = hflip(image, boxes)
        if draw.crop is not None:
            pre_crop_size, window = draw.crop
            image, boxes = resize(image, boxes, pre_crop_size)
            image, boxes = crop(image, boxes, window)
        image, boxes = resize(image, boxes, draw.size)
        return _finish(image, boxes)

    def _draw(self, height: int, width: int, rng: random.Random) -> _TrainDraw:
        """Everything random about one sample, from the image's size alone, in the order the
        draws have always been made (a seed gives the same sample in every version)."""
        # The flip draw happens even when flip_prob is 0 or 1, so changing it does not shift the
        # random stream of the later draws.
        flip = rng.random() < self.flip_prob
        crop_draw = None
        if self.crop_pre_sizes and rng.random() < self.crop_prob:
            pre_size = rng.choice(self.crop_pre_sizes)
            # The official pre-crop resize has no long-edge cap (spec 1.3; mmdetection caps it).
            pre_crop_size = resized_shape(height, width, pre_size, max_size=sys.maxsize)
            window = sample_crop_window(*pre_crop_size, self.crop_size, rng)
            crop_draw = (pre_crop_size, window)
            height, width = window[2], window[3]
        short_edge = rng.choice(self.min_sizes)
        return _TrainDraw(flip, crop_draw, resized_shape(height, width, short_edge, self.max_size))


@dataclass(frozen=True)
class InferenceTransform:
    """Deterministic evaluation resize: short side ``min_size``, long side capped at ``max_size``.

    The one inference resize: the dataset calls it with boxes (``rng`` is accepted for the
    protocol and not used); predictors call :meth:`image_tensor` on images alone.
    """

    min_size: int
    max_size: int

    def __post_init__(self) -> None:
        if not 0 < self.min_size <= self.max_size:
            raise ValueError(
                f"need 0 < min_size <= max_size, got min_size={self.min_size}, "
                f"max_size={self.max_size}"
            )

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """``(h, w)`` of the resized image (:func:`resized_shape`)."""
        return resized_shape(height, width, self.min_size, self.max_size)

    def source_size(self, height: int, width: int) -> tuple[int, int]:
        """The resolution ``(h, w)`` to decode an image of ``height x width`` at for this resize
        (``decode_size`` of the dataset, ``at_least`` of
        :func:`~sparsercnn.data.image_io.decode_image`): :data:`INFERENCE_DECODE_MARGIN` times
        its output, so that the resize itself still averages the last factor of 2 or more, as
        it does from the full image."""
        out_height, out_width = self.output_size(height, width)
        return out_height * INFERENCE_DECODE_MARGIN, out_width * INFERENCE_DECODE_MARGIN

    def image_tensor(self, image: Image.Image) -> Tensor:
        """The ``(3, h, w)`` uint8 input image of an RGB (or convertible) PIL image."""
        image = image if image.mode == "RGB" else image.convert("RGB")
        return to_tensor(resize_image(image, self.output_size(image.height, image.width)))

    def __call__(
        self, image: Image.Image, boxes: Tensor, rng: random.Random
    ) -> tuple[Tensor, Tensor, Tensor]:
        image, boxes = _check_inputs(image, boxes)
        image, boxes = resize(image, boxes, self.output_size(image.height, image.width))
        return _finish(image, boxes)


def build_train_transform(cfg: InputConfig) -> TrainTransform:
    """Training transform of ``cfg``: flip + multi-scale resize, plus the crop policy if enabled."""
    return TrainTransform(
        min_sizes=tuple(cfg.train_min_sizes),
        max_size=cfg.train_max_size,
        flip_prob=cfg.flip_prob,
        crop_pre_sizes=tuple(cfg.crop_pre_sizes) if cfg.crop else (),
        crop_size=(cfg.crop_size[0], cfg.crop_size[1]),
        crop_prob=cfg.crop_prob,
    )


def build_test_transform(cfg: InputConfig) -> InferenceTransform:
    """Evaluation transform of ``cfg``: shortest-edge resize to ``test_min_size``."""
    return InferenceTransform(min_size=cfg.test_min_size, max_size=cfg.test_max_size)
