"""The file suffixes read as videos. A plain tuple, importing nothing: the command line's
``--help`` states them without loading torch or PyAV."""

from __future__ import annotations

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
