"""Drawings of predictions written to a folder, all or nothing, never over the user's files.

:class:`DrawingWriter` puts each image's drawing below the output folder at its path below the
inputs' common folder, stages it until the run ends and marks the folder
(:mod:`~sparsercnn.drawings_marker`: it lists them with their inputs), so that later runs tell
its drawings (:func:`~sparsercnn.drawings_marker.is_drawing`), which they may replace, from the
user's images and videos, which they never replace, and remove those they no longer draw of the
inputs they are given (the folder never shows results a later run no longer has).
``predict --save-images`` and the demo write through it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from sparsercnn.data.image_io import load_image
from sparsercnn.drawings_marker import (
    earlier_drawings,
    is_drawing,
    is_marked,
    marker_lock,
    write_marker,
)
from sparsercnn.explained_failure import ExplainedFailure
from sparsercnn.image_inputs import is_hidden
from sparsercnn.paths import is_below, missing_folders, remove_empty_folders, same_file
from sparsercnn.prediction import Prediction
from sparsercnn.staged_drawings import StagingLock, staged_path
from sparsercnn.text import counted, listing
from sparsercnn.video.suffixes import IMAGE_AND_VIDEO_SUFFIXES
from sparsercnn.visualization.draw import draw_detections
from sparsercnn.visualization.drawing_file import drawing_format, save_drawing

logger = logging.getLogger(__name__)


class DrawingWriter:
    """Writes drawn predictions under ``output_dir``, keeping each input's path below the
    inputs' common folder: ``a/x.png`` and ``b/x.png`` become ``output_dir/a/x.png`` and
    ``output_dir/b/x.png``, so names cannot collide, and each drawing keeps its input's format.

    Used as a context manager, all or nothing: drawings are staged beside their targets
    (hidden files) and take their places when the block ends without an error; after an error
    they are deleted and the folder keeps what it held (drawings of an earlier run included).
    A drawing replaces a drawing of an earlier run (:func:`is_drawing`), never an input or
    another file of the user's (:meth:`check_target`). An earlier drawing (the marker lists
    each with its input) that this run does not draw is removed at the commit, with the folders
    it leaves empty, where this run covers its input (:meth:`_covers`): an image that can no
    longer be read, one deleted from a folder given, an image drawn where ``--fps`` now draws
    its folder as a video, or the other way round. The drawings of inputs not given this run
    stay (predicting images one at a time into the same folder keeps them all), and so do those
    of unknown inputs (an older run's, whose marker listed none). Of the files the marker does
    not list, a commit removes only the hidden ones a run killed before its end left
    (:class:`~sparsercnn.staged_drawings.StagingLock`): a staged drawing ``.NAME.partial.EXT``
    of an image's suffix or ``.mp4``, the temporary file of one (``..NAME.partial.EXT.*.tmp``)
    or of the marker, where no run living stages there, and none in hidden folders below
    ``output_dir``; it never removes any other.

    Args:
        output_dir: where drawings go.
        inputs: the paths the user gave (files or folders); their common folder is the root,
            and they are what this run covers.
        score_threshold: least score of a drawn detection.
        flag: the command-line flag that gave ``output_dir``, named in errors (None: none).
    """

    def __init__(
        self,
        output_dir: Path,
        inputs: Sequence[str | Path],
        score_threshold: float,
        *,
        flag: str | None = None,
    ) -> None:
        self.output_dir = output_dir
        self.score_threshold = score_threshold
        self.flag = flag
        # Absolute, as the marker names sources (_covers), and an input given inside the output
        # folder is never removed (_remove_earlier).
        self._inputs = [Path(os.path.abspath(p)) for p in inputs]
        self._resolved_inputs = [Path(os.path.realpath(p)) for p in inputs]
        folders = [_folder_of(Path(p)) for p in inputs]
        self.root = Path(os.path.commonpath(folders)) if folders else Path.cwd()
        self.overwritten: list[Path] = []
        self.removed: list[Path] = []
        self._staged: dict[Path, Path] = {}  # target -> staged file
        self._sources: dict[Path, str] = {}  # target -> its input, absolute
        self._new_folders: set[Path] = set()
        # Held from the first staged file to the commit or discard: it tells a later run that
        # this one's staged files are alive (those of a run killed are removed at a commit).
        self._staging = StagingLock(output_dir)

    def __enter__(self) -> DrawingWriter:
        return self

    def __exit__(self, error_type: type[BaseException] | None, *_: object) -> None:
        if error_type is None:
            self.commit()
        else:
            self.discard()

    def target(self, source: str | Path) -> Path:
        """Where the drawing of the image file ``source`` goes."""
        return self.output_dir / Path(os.path.abspath(source)).relative_to(self.root)

    def video_target(self, source: Path) -> Path:
        """Where the annotated video of the video file or frame folder ``source`` goes: its
        :meth:`target` with suffix ``.mp4`` (a folder ``f`` gives ``f.mp4``; the inputs' common
        folder itself, ``output_dir/<its name>.mp4``)."""
        target = self.target(source)
        if not source.is_dir():
            return target.with_suffix(".mp4")
        if target == self.output_dir:
            return target / f"{Path(os.path.abspath(source)).name}.mp4"
        return target.with_name(f"{target.name}.mp4")

    def check_target(self, target: Path, source: str | Path, drawing: str = "drawing") -> None:
        """Raise unless the ``drawing`` of ``source`` (a file or frame folder) may go to
        ``target``: nothing is there, or a drawing of an earlier run (:func:`is_drawing`),
        which :meth:`commit` replaces with a warning (or removes, if nothing is drawn to
        ``target`` this time and this run covers its input: :meth:`_covers`). Callers check
        every target before the model runs; :meth:`write` checks its own (:meth:`check_image`).

        Raises:
            ValueError: ``target`` is ``source`` itself, or a file no run drew (the user's
                photo or video of the same name, an input of this run): naming it, the folder
                (by :attr:`flag`) and what to do.
        """
        if not target.exists():
            return
        folder = self._named_folder()
        if target.samefile(source):
            raise ValueError(
                f"{folder} would replace the input {source} with its {drawing}; choose another "
                "folder"
            )
        if not is_drawing(target):
            raise ValueError(
                f"{folder} would replace {target}, which no earlier run drew, with the "
                f"{drawing} of {source}; choose another folder, or move that file away"
            )

    def check_image(self, source: str | Path) -> Path:
        """Where the drawing of the image file ``source`` goes (:meth:`target`), checked before
        any work: the place is free (:meth:`check_target`), and its suffix names a format a
        drawing can be saved in (:func:`~sparsercnn.visualization.drawing_file.drawing_format`;
        an image given by a name without a suffix, or in a format Pillow only reads, is not).

        Raises:
            ValueError: naming the image, its drawing and what to do.
        """
        target = self.target(source)
        self.check_target(target, source)
        advice = f"a drawing takes its image's name and format: save {source} as .png or .jpg"
        drawing_format(target, advice=advice + (f", or leave out {self.flag}" if self.flag else ""))
        return target

    def check_folder(self) -> None:
        """Raise unless :attr:`output_dir` may be marked as a folder of drawings at
        :meth:`commit`: it is new, marked already, or holds no image or video file but drawings
        (:func:`is_drawing`) and hidden ones (named ".*", or in a folder so named below it:
        never inputs, :func:`~sparsercnn.image_inputs.folder_files`, nor replaced, as no marker
        lists them). Marked, such a file would count as a drawing: left out of the inputs of a
        folder above, and replaced by a drawing of its name. Callers check before the model
        runs.

        Raises:
            ValueError: naming one such file, the folder (by :attr:`flag`) and what to do.
        """
        folder = self.output_dir
        if not folder.is_dir() or is_marked(folder):
            return
        found = (
            path
            for path in folder.rglob("*")
            if path.suffix.lower() in IMAGE_AND_VIDEO_SUFFIXES
            and not is_hidden(path, folder)
            and not is_drawing(path)
        )
        users = next(found, None)
        if users is not None:
            raise ValueError(
                f"{self._named_folder()} holds {users}, which no run drew: drawings there would "
                "make it count as one (left out of later inputs, replaced by a drawing of its "
                "name); choose a new or empty folder, or one an earlier run drew in"
            )

    def write(self, prediction: Prediction, class_names: Sequence[str]) -> Path:
        """Draw the prediction on its source image file and stage it for :meth:`commit`.

        Returns:
            The drawing's target path (where it will be after the commit).

        Raises:
            ValueError: the target is taken, or not an image format (:meth:`check_image`).
        """
        target = self.check_image(prediction.source)
        drawing = draw_detections(
            load_image(prediction.source),
            prediction.boxes,
            prediction.labels,
            prediction.scores,
            class_names,
            score_threshold=self.score_threshold,
            image_name=prediction.source,
        )
        save_drawing(drawing, self.stage(target, prediction.source))
        return target

    def stage(self, target: Path, source: str | Path) -> Path:
        """The hidden file beside ``target`` that the drawing (or annotated video) of ``source``
        (an image or video file, or a frame folder) is written to until :meth:`commit` moves it
        there."""
        staged = staged_path(target)
        # Folders the drawing will create, removed again if the run fails.
        self._new_folders.update(missing_folders(target.parent))
        self._staging.hold()
        # One a killed run left would count as drawn (commit) if this run draws nothing there.
        staged.unlink(missing_ok=True)
        self._staged[target] = staged
        self._sources[target] = os.path.abspath(source)
        return staged

    def commit(self) -> list[Path]:
        """Move every staged drawing to its target; a drawing an earlier run left there is
        replaced (listed in :attr:`overwritten`; the warning names both inputs where it was of
        another, an image of the same name in another folder). A target staged but never written
        (an annotated video none of whose frames could be read) is not drawn. The earlier drawings
        (the marker lists them with their inputs:
        :func:`~sparsercnn.drawings_marker.earlier_drawings`; those of an older marker that
        listed none are listed from now on, of unknown inputs) that this run did not draw and
        whose inputs it covers (:meth:`_covers`) are removed (listed in :attr:`removed`;
        :meth:`_remove_earlier`): they showed results this run no longer has. One warning names
        each kind. The output folder is marked, listing this run's drawings and the earlier ones
        kept, so that a later run over a folder above it does not read them as inputs, and a
        later run into it knows which files are drawings to replace and remove; a run committing
        into the same folder meanwhile waits
        (:func:`~sparsercnn.drawings_marker.marker_lock`). Still holding that lock, it removes
        the staged files of runs killed before their commit, where no run living stages there
        (:class:`~sparsercnn.staged_drawings.StagingLock`), and says how many. Returns the
        targets.

        Raises:
            ValueError: a file no run drew took a target's place while the drawings were made,
                or the folder holds images no run drew (:meth:`check_folder`); nothing is moved
                and the staged drawings are deleted (:meth:`discard`).
            DrawingsCommitError: moving the drawings into place or rewriting the marker failed
                (a full disk, a permission): the drawings not moved are deleted, and the marker
                lists what the folder holds (:meth:`_commit_failed`).
        """
        with marker_lock(self.output_dir):
            try:
                targets = self._commit_locked()
            except BaseException:
                self.discard()
                raise
            swept = self._staging.release(sweep=True)
        if swept:
            logger.info(
                "removed %s of runs killed before their end (drawings staged, files half "
                "written) in %s",
                counted(len(swept), "hidden file"),
                self.output_dir,
            )
        self._staged, self._sources, self._new_folders = {}, {}, set()
        return targets

    def _commit_locked(self) -> list[Path]:
        """:meth:`commit`, under the lock of the output folder's marker."""
        drawn = {target: staged for target, staged in self._staged.items() if staged.exists()}
        taken = [t for t in drawn if t.exists() and not is_drawing(t)]
        if taken:
            raise ValueError(
                f"{self._named_folder()}: {taken[0]} appeared during the run, and no run "
                "drew it: no drawing was moved; move that file away, or choose another "
                "folder, and run again"
            )
        if drawn:
            self.check_folder()
        earlier = earlier_drawings(self.output_dir, IMAGE_AND_VIDEO_SUFFIXES)
        listed = earlier | {target: self._sources[target] for target in drawn}
        moved: list[Path] = []
        try:
            self._move(drawn, earlier, listed, moved)
        except OSError as error:
            raise self._commit_failed(error, drawn, earlier, moved) from error
        return list(drawn)

    def _move(
        self,
        drawn: dict[Path, Path],
        earlier: dict[Path, str | None],
        listed: dict[Path, str | None],
        moved: list[Path],
    ) -> None:
        """Move the ``drawn`` staged files (target -> staged file) into place, adding each
        target to ``moved``; remove the ``earlier`` drawings this run covers and did not draw;
        mark the folder, listing ``listed`` (the earlier drawings and this run's) that are
        there; and warn of the drawings replaced and removed."""
        if listed:
            # Listing the earlier drawings too until they are removed: a run killed part-way
            # leaves none that a later run does not know as its to remove.
            write_marker(self.output_dir, listed)
        # A drawing replaced is of another input where the marker names another file (images
        # of one name in two folders, predicted one run each into this folder, share a target:
        # each run's root is its image's folder); one image given through a link is the same.
        self.overwritten = [target for target in drawn if target.exists()]
        # An earlier drawing of an unknown input (an older run's) counts as of the same input.
        of_other = {
            t
            for t in self.overwritten
            if (source := earlier.get(t)) is not None and not same_file(source, self._sources[t])
        }
        others = [t for t in self.overwritten if t in of_other]
        again = [t for t in self.overwritten if t not in of_other]
        for target, staged in drawn.items():
            os.replace(staged, target)
            moved.append(target)
        self._remove_earlier(
            [path for path, source in earlier.items() if path not in drawn and self._covers(source)]
        )
        if listed:
            write_marker(
                self.output_dir, {p: s for p, s in listed.items() if p in drawn or p.is_file()}
            )
        _warn_changed(again, "replacing {} that an earlier run drew: %s")
        _warn_changed(
            [
                f"{t}, the drawing of {earlier[t]}, replaced by that of {self._sources[t]}"
                for t in others
            ],
            "replacing {} of other inputs (give them in one run to keep each): %s",
        )
        _warn_changed(
            self.removed,
            "removing {} of inputs given this run (or below a folder given) that "
            "it did not draw again: %s",
        )

    def _commit_failed(
        self,
        error: OSError,
        drawn: dict[Path, Path],
        earlier: dict[Path, str | None],
        moved: list[Path],
    ) -> DrawingsCommitError:
        """The error of a commit that ``error`` stopped after ``moved`` of the ``drawn``
        targets (:meth:`commit` then deletes the staged drawings left: :meth:`discard`); the
        marker is rewritten (where it can be) to list what the folder holds: the drawings moved
        with this run's inputs, the earlier ones still there with theirs."""
        holds = {t: self._sources[t] for t in moved} | {
            p: s for p, s in earlier.items() if p not in moved and p.is_file()
        }
        self.overwritten = [t for t in self.overwritten if t in moved]
        with contextlib.suppress(OSError):  # the error said first is the one to act on
            write_marker(self.output_dir, holds)
        reason = error.strerror or str(error)
        reason = f"{error.filename}: {reason}" if error.filename else reason
        failed = DrawingsCommitError(
            f"{self._named_folder()}: could not put the drawings in place ({reason}); "
            f"{len(moved)} of {counted(len(drawn), 'drawing')} moved, the others deleted (the "
            "earlier drawings they would replace stay): free disk space or make the folder "
            "writable, and run again"
        )
        failed.errno = error.errno
        return failed

    def _covers(self, source: str | None) -> bool:
        """Whether this run reads the input ``source`` (absolute) of an earlier drawing, so that
        the drawing goes if this run does not draw it again: ``source`` was given, or lies below
        a folder given (an image since deleted or unreadable, a frame folder or video read in
        the other ``--fps`` mode). Paths are compared as written and with links resolved (as
        :func:`~sparsercnn.paths.same_file` compares a file since deleted): a folder given
        through a link covers the inputs drawn from the folder it links to, and the other way
        round. An unknown input (``None``: an older run's drawing) is never covered: the drawing
        is replaced where this run draws its name, never removed."""
        if source is None:
            return False
        resolved = Path(os.path.realpath(source))
        return any(
            is_below(Path(source), given) or is_below(resolved, given_resolved)
            for given, given_resolved in zip(self._inputs, self._resolved_inputs, strict=True)
        )

    def _remove_earlier(self, drawings: list[Path]) -> None:
        """Remove the earlier ``drawings`` (the marker lists them) that are no input of this run
        (a drawing given as an input, or one in a folder of them given), adding them to
        :attr:`removed`, and the folders below :attr:`output_dir` they leave empty."""
        emptied: set[Path] = set()
        for path in drawings:
            read = any(
                is_below(path, given) and is_below(given, self.output_dir) for given in self._inputs
            )
            if path.is_file() and not read:
                path.unlink()
                self.removed.append(path)
                emptied.update(
                    f for f in path.parents if is_below(f, self.output_dir, strictly=True)
                )
        remove_empty_folders(emptied)

    def _named_folder(self) -> str:
        """The output folder as errors name it: by its flag, where one gave it."""
        return f"{self.flag} {self.output_dir}" if self.flag else str(self.output_dir)

    def discard(self) -> None:
        """Delete the staged drawings, and the folders made for them; the targets stay as they
        were."""
        for staged in self._staged.values():
            staged.unlink(missing_ok=True)
        self._staged, self._sources = {}, {}
        self._staging.release()
        remove_empty_folders(self._new_folders)
        self._new_folders = set()


class DrawingsCommitError(ExplainedFailure, OSError):
    """Moving a run's drawings into place failed part-way (a full disk, a permission): the
    message names the folder, how many were moved and what to do (:meth:`DrawingWriter.commit`);
    ``errno`` is the failure's."""


def _warn_changed(drawings: Sequence[object], message: str) -> None:
    """One warning naming ``drawings``, the earlier drawings a commit replaced or removed (their
    paths, or lines about them): ``message`` with ``{}`` how many and ``%s`` their listing."""
    if drawings:
        logger.warning(
            message.format(counted(len(drawings), "drawing")), listing([str(d) for d in drawings])
        )


def _folder_of(path: Path) -> Path:
    # Absolute without resolving links: an image linked into an input folder stays below it.
    absolute = Path(os.path.abspath(path))
    return absolute if path.is_dir() else absolute.parent
