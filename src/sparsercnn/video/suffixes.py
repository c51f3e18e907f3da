"""The file suffixes read as videos, and those of images and videos together. Plain tuples,
importing nothing heavy: the command line's ``--help`` states them without loading torch or
PyAV."""

from __future__ import annotations

from sparsercnn.data.image_suffixes import IMAGE_SUFFIXES

# Camcorder and broadcast recordings (MPEG transport and program streams: .mts, .m2ts, .ts,
# .mpg) and older formats (.flv, .wmv, .3gp) decode with PyAV as the others do.
VIDEO_SUFFIXES = (
    ".mp4",
    ".mov",
    ".avi",
    ".mkv",
    ".webm",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".ts",
    ".mts",
    ".m2ts",
    ".flv",
    ".wmv",
    ".3gp",
)

# The files ``predict`` reads (a folder's inputs), and those a folder of drawings may hold.
IMAGE_AND_VIDEO_SUFFIXES = IMAGE_SUFFIXES + VIDEO_SUFFIXES
