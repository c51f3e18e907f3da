"""The file suffixes read as images. A plain tuple, importing nothing: the command line states
and checks them without loading torch or Pillow (:mod:`sparsercnn.data.image_io` decodes them)."""

from __future__ import annotations

# The suffixes (lower case) of the files taken for images where a folder is read or looked over.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
