"""Decoded training images kept in memory, so each file is decoded once per process.

A from-scratch run on a few hundred photos sees every image dozens of times, and on a CPU
decoding a 2-megapixel JPEG takes about as long as the small model's step spends on it; the
augmentation (flip, resize, crop) still runs on every sample. The cache fills up to its byte
budget and then keeps what it has: with the uniform sampling of training, evicting one image for
another would not raise the share of samples served from memory. Each data-loading process
holds its own cache. An image is held with its version (the file's size and modification time,
and the resolution it was decoded for): a file changed on disk, or a request for another
resolution, is decoded again rather than served stale.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable

from sparsercnn.data.image_io import DecodedImage

logger = logging.getLogger(__name__)

# Pillow keeps an RGB pixel in 4 bytes.
_BYTES_PER_PIXEL = 4


def image_bytes(width: int, height: int) -> int:
    """Memory of a decoded RGB image of ``width x height`` as the cache counts it."""
    return width * height * _BYTES_PER_PIXEL


class ImageCache:
    """Decoded images by dataset index, up to ``max_bytes`` of their memory (0: keep none).

    Attributes:
        max_bytes: the budget.
        used_bytes: memory of the images held (:func:`image_bytes`).
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"an image cache needs a budget >= 0 bytes, got {max_bytes}")
        self.max_bytes = max_bytes
        self.used_bytes = 0
        self._images: dict[int, tuple[Hashable, DecodedImage]] = {}
        self._full = False

    def __len__(self) -> int:
        return len(self._images)

    def get(self, index: int, version: Hashable = None) -> DecodedImage | None:
        """The image of ``index``, if held at this ``version`` (see :meth:`put`)."""
        held = self._images.get(index)
        return held[1] if held is not None and held[0] == version else None

    def put(self, index: int, decoded: DecodedImage, version: Hashable = None) -> None:
        """Hold ``decoded`` if it fits in what is left of the budget, in place of an image of
        ``index`` held at another version.

        Args:
            index: the dataset index.
            decoded: the image.
            version: what must match for :meth:`get` to return it (e.g. the file's size and
                modification time and the decoded resolution).
        """
        held = self._images.get(index)
        if held is not None:
            if held[0] == version:
                return
            del self._images[index]
            self.used_bytes -= image_bytes(held[1].image.width, held[1].image.height)
        size = image_bytes(decoded.image.width, decoded.image.height)
        if self.used_bytes + size > self.max_bytes:
            if self.max_bytes and not self._full:
                self._full = True
                logger.info(
                    "the image cache is full at %d images (%.0f MB, train.image_cache_mb): "
                    "the others are decoded each time they are used",
                    len(self._images),
                    self.used_bytes / 2**20,
                )
            return
        self._images[index] = (version, decoded)
        self.used_bytes += size
