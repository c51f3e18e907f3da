"""The file suffixes read as videos. A plain tuple, importing nothing: the command line's
``--help`` states them without loading torch or PyAV."""

from __future__ import annotations

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
