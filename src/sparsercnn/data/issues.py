"""The problems found in a dataset (:class:`Issue`, each naming the image id, annotation id
or file) and their listings: one line per issue, or one per code for a log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sparsercnn.text import agreeing_noun, listing

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Issue:
    """One problem found in a dataset (the codes: :mod:`~sparsercnn.data.validation`)."""

    severity: Severity
    code: str
    message: str
    image_id: int | None = None
    annotation_id: int | None = None
    file: str | None = None

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


def issues_by_code(issues: Iterable[Issue]) -> dict[str, list[Issue]]:
    """``issues`` grouped by code: the codes in the order they first come, each code's issues in
    theirs."""
    by_code: dict[str, list[Issue]] = {}
    for issue in issues:
        by_code.setdefault(issue.code, []).append(issue)
    return by_code


def issue_subjects(issues: Iterable[Issue], limit: int) -> str:
    """What ``issues`` are of, each named once, for a one-line summary: their annotations
    ("annotations 4, 9 ... (12 in all)"), the files of the others ("000.jpg, 003.jpg"), the
    images of the rest ("image 7"); the first ``limit`` of each kind, "" where none names one."""
    annotations: list[str] = []
    files: list[str] = []
    images: list[str] = []
    for issue in issues:
        if issue.annotation_id is not None:
            annotations.append(str(issue.annotation_id))
        elif issue.file is not None:
            files.append(issue.file)
        elif issue.image_id is not None:
            images.append(str(issue.image_id))
    parts = []
    for noun, names in (("annotation", annotations), ("", files), ("image", images)):
        distinct = list(dict.fromkeys(names))
        if distinct:
            named = f"{agreeing_noun(len(distinct), noun)} " if noun else ""
            parts.append(named + listing(distinct, limit))
    return ", ".join(parts)


def format_issues(issues: Iterable[Issue], max_per_code: int | None = 10) -> list[str]:
    """One line per issue, at most ``max_per_code`` per code (``None``: every one), then a
    count of the rest."""
    lines: list[str] = []
    for code, found in issues_by_code(issues).items():
        lines.extend(f"  {issue}" for issue in found[:max_per_code])
        if max_per_code is not None and len(found) > max_per_code:
            lines.append(f"  ... and {len(found) - max_per_code} more [{code}]")
    return lines


def summarize_issues(issues: Iterable[Issue]) -> list[str]:
    """One line per code, for a log: its one issue, or how many there are, the first in full
    and what the others are of (:func:`issue_subjects`: a few, then how many), so that ten
    thousand clipped boxes take one line; :func:`format_issues` lists them one per line."""
    lines = []
    for code, (first, *others) in issues_by_code(issues).items():
        if not others:
            lines.append(f"  {first}")
            continue
        line = f"  [{code}] {len(others) + 1} issues, the first: {first.message}"
        subjects = issue_subjects(others, limit=5)
        lines.append(f"{line}; the others: {subjects}" if subjects else line)
    return lines
