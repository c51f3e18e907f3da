"""The errors of a dataset that is not usable as given: :class:`DatasetError`, and
:class:`AnnotationFileError` for a COCO file that cannot be read at all.
"""

from __future__ import annotations

import os

# The flags a COCO file can come from, named where the one given is not known.
ANNOTATION_FILE_FLAGS = "--json, --train-json or --val-json"


class DatasetError(ValueError):
    """A dataset is not usable as given; the message names the file/ids and says what to do."""


class AnnotationFileError(DatasetError):
    """A COCO file that cannot be read (:func:`~sparsercnn.data.coco_file.load_coco_json`):
    missing, a folder, not JSON.

    The loader does not know which flag gave the file; an entry point that does names it with
    :meth:`given_as`.

    Attributes:
        path: the file.
        problem: what is wrong with it and what to do.
        flag: the flag(s) the message names as the file's.
    """

    def __init__(
        self, path: str | os.PathLike[str], problem: str, flag: str = ANNOTATION_FILE_FLAGS
    ) -> None:
        super().__init__(path, problem, flag)  # the args a pickled copy is made of
        self.path = os.fspath(path)
        self.problem = problem
        self.flag = flag

    def __str__(self) -> str:
        return f"annotation file {self.path} (the {self.flag} path) {self.problem}"

    def given_as(self, flag: str) -> AnnotationFileError:
        """The same error, naming ``flag`` as the file's flag."""
        return AnnotationFileError(self.path, self.problem, flag)
