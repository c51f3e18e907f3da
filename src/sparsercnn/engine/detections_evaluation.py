"""COCO evaluation of a detections file: a COCO results JSON that ``predict``, ``eval
--results`` or another tool wrote, scored on a data set without running a model.

What ``sparsercnn eval --detections`` calls: the data set under the same data policy as
:func:`~sparsercnn.engine.model_evaluation.evaluate_model_file`'s (so ``skip_invalid`` scores
the same images), the records read and given their images
(:mod:`~sparsercnn.evaluation.results_file`), one :class:`~sparsercnn.evaluation.CocoEvaluator`
pass, and an :class:`~sparsercnn.engine.evaluation_report.EvaluationReport` without speed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from sparsercnn.data.coco import CocoDataset
from sparsercnn.data.policy import ImageCheck, inspect_dataset
from sparsercnn.engine.evaluation_report import EvaluationReport
from sparsercnn.engine.inference import Evaluation, evaluation_ground_truth
from sparsercnn.engine.model_evaluation import check_output_paths
from sparsercnn.evaluation import CocoEvaluator
from sparsercnn.evaluation.results import coco_results_to_detections
from sparsercnn.evaluation.results_file import (
    images_of_files,
    listed_unreadable_images,
    read_results_file,
    records_by_image,
    warn_box_format,
)
from sparsercnn.text import counted, listing

logger = logging.getLogger(__name__)


def evaluate_detections_file(
    detections_path: str | Path,
    json_path: str | Path,
    image_dir: str | Path | None = None,
    *,
    skip_invalid: bool = False,
    metrics_path: Path | None = None,
    on_accepted: Callable[[], None] | None = None,
) -> EvaluationReport:
    """COCO evaluation of the detections in ``detections_path`` on the data set of
    ``json_path``, optionally writing the metrics (:meth:`EvaluationReport.write_files`).

    Every image of the data set is scored, as a model's evaluation and pycocotools score them:
    an image without records is one where nothing was detected, its objects missed. A warning
    says how many of the images have no records and names a few, and another those of them that
    ``predict`` could not read (listed in its frame list beside the results,
    :func:`~sparsercnn.evaluation.results_file.listed_unreadable_images`). With
    ``image_dir`` the image files are checked as a model's evaluation checks them (needed for
    the report's sample drawings); without, only the annotation file is, and ``skip_invalid``
    leaves out the entries it calls errors, with their records.

    Args:
        detections_path: a COCO results JSON
            (:func:`~sparsercnn.evaluation.results_file.read_results_file`).
        json_path: the COCO instances file the detections are of.
        image_dir: the image folder of ``json_path``, or None.
        skip_invalid: score the entries the data policy keeps instead of refusing a data set
            with errors.
        metrics_path: where to write the metrics as JSON.
        on_accepted: called once the files are read and checked, before the evaluation.

    Raises:
        ValueError: the detections file is not a results file, or its records name images or
            categories that ``json_path`` lacks, or cannot be scored (non-finite, negative
            size), each naming the file; ``metrics_path`` is a folder.
    """
    check_output_paths(None, metrics_path)
    records = read_results_file(detections_path)
    image_check: ImageCheck = "decode" if image_dir is not None else "none"
    inspection = inspect_dataset(json_path, image_dir, image_check=image_check)
    # The dataset wants a folder; without one its images are never read.
    folder = Path(image_dir) if image_dir is not None else Path(json_path).parent
    dataset = CocoDataset(
        json_path, folder, skip_invalid=skip_invalid, image_check=image_check, inspection=inspection
    )
    image_ids = dataset.image_ids
    infos = [dataset.image_info(i) for i in range(len(image_ids))]
    images = {info["id"]: info["file_name"] for info in infos}
    left_out = {
        issue.image_id: issue.file or ""
        for issue in inspection.errors
        if issue.image_id is not None and issue.image_id not in images
    }
    source = str(detections_path)
    grouped, num_left_out = records_by_image(
        records, images, left_out=left_out, source=source, ground_truth=str(json_path)
    )
    results = [grouped.get(image_id, []) for image_id in image_ids]
    evaluator = CocoEvaluator(evaluation_ground_truth(dataset))
    try:
        # Checks every record's category and values: before on_accepted, which warns that
        # outputs will be replaced.
        evaluator.extend(image_ids, results)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    sizes = {info["id"]: (info["width"], info["height"]) for info in infos}
    warn_box_format(grouped, sizes, tolerance=inspection.clip_tolerance, source=source)
    without = {image_id: name for image_id, name in images.items() if image_id not in grouped}
    _warn_incomplete(source, len(records), num_left_out, without, len(image_ids), str(json_path))
    if on_accepted is not None:
        on_accepted()
    categories = dataset.category_map
    labels = {
        category_id: categories.to_label(category_id) for category_id in categories.category_ids
    }
    evaluation = Evaluation(
        evaluator.evaluate(),
        None,
        image_ids,
        [coco_results_to_detections(image_results, labels) for image_results in results],
        ground_truth=evaluator.ground_truth,
    )
    report = EvaluationReport(
        evaluation, dataset, None, None, None, detections_file=Path(detections_path)
    )
    report.write_files(metrics_path=metrics_path)
    return report


def _warn_incomplete(
    source: str,
    num_records: int,
    num_left_out: int,
    without: dict[int, str],
    num_images: int,
    ground_truth: str,
) -> None:
    """Say what of the file is not scored, and which of the ``num_images`` scored images are
    scored without detections (``without``: their ``file_name`` by image id), telling apart
    those ``predict`` could not read."""
    if num_left_out:
        logger.warning(
            "%s: %s of images that skip_invalid (--skip-invalid) left out are not scored",
            source,
            counted(num_left_out, "record"),
        )
    if num_records == 0:
        logger.warning("%s holds no detection: every AP and AR is 0", source)
        return
    unread: dict[int, str] = {}
    listed = listed_unreadable_images(source)
    if listed is not None:
        frame_list, names = listed
        unread = images_of_files(names, without)
        _warn_unread(source, unread, num_images, ground_truth, frame_list)
    others = sorted(name for image_id, name in without.items() if image_id not in unread)
    if others:
        logger.warning(
            "%s has no detection of %d of the %d images of %s (%s): scored as nothing "
            "detected there (their objects count as missed; for the AP of part of the images, "
            "give an annotation file of those images only)",
            source,
            len(others),
            num_images,
            ground_truth,
            listing(others, 3),
        )


def _warn_unread(
    source: str, unread: dict[int, str], num_images: int, ground_truth: str, frame_list: Path
) -> None:
    """Say which images of the data set ``predict`` could not read (``unread``: their path in
    ``frame_list`` by image id), which are scored without detections."""
    if not unread:
        return
    logger.warning(
        "%s: %d of the %d images of %s could not be read by predict (%s lists %s: %s): scored "
        "as nothing detected there (their objects count as missed); predict them again once "
        "they read",
        source,
        len(unread),
        num_images,
        ground_truth,
        frame_list,
        "it" if len(unread) == 1 else "them",
        listing(sorted(unread.values()), 3),
    )
