"""The plots of an evaluation run, written into a run folder.

Precision-recall curves per class, a confusion matrix (:mod:`~sparsercnn.diagnostics.confusion`),
a few images with ground truth and predictions side by side, and the dataset's label summary,
all from detections already computed (:func:`write_detection_plots`, or
:func:`write_evaluation_report` for an
:class:`~sparsercnn.engine.evaluation_report.EvaluationReport`): the model is never run again
for its plots.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from sparsercnn.atomic_file import atomic_write, atomic_write_text
from sparsercnn.data.coco import CocoDataset
from sparsercnn.data.image_io import load_image
from sparsercnn.diagnostics.confusion import BACKGROUND, MISSED, confusion_matrix
from sparsercnn.diagnostics.ground_truth import (
    ImageGroundTruth,
    LabelSummary,
    ground_truth_by_image,
)
from sparsercnn.engine.evaluation_report import EvaluationReport
from sparsercnn.engine.inference import evaluation_ground_truth
from sparsercnn.evaluation import CocoEvaluator, EvaluationResult
from sparsercnn.structures import Detections
from sparsercnn.visualization.diagnostic_plots import plot_confusion_matrix
from sparsercnn.visualization.draw import draw_ground_truth_and_predictions
from sparsercnn.visualization.plots import plot_precision_recall

logger = logging.getLogger(__name__)

# The sample drawings a report wrote, by file name, in its samples/ folder: the next report
# into that folder deletes those it does not write again, and nothing else.
SAMPLES_RECORD = ".sparsercnn-samples.json"


def write_detection_plots(
    dataset: CocoDataset,
    image_ids: Sequence[int],
    detections: Sequence[Detections],
    output_dir: str | Path,
    *,
    result: EvaluationResult | None = None,
    score_threshold: float = 0.3,
    iou_threshold: float = 0.5,
    num_samples: int = 4,
    num_proposals: int | None = None,
) -> dict[str, Path]:
    """Write the evaluation plots of detections on ``dataset`` into ``output_dir``.

    Files: ``precision_recall.png``, ``confusion_matrix.png`` and ``.json``,
    ``dataset_labels.png`` and ``samples/<image id>.png``.

    Args:
        dataset: the evaluated dataset (ground truth, label map, image folder).
        image_ids: the image of every entry of ``detections``.
        detections: boxes in absolute xyxy pixels of the original images.
        output_dir: the folder to write into (created if needed).
        result: the COCO evaluation of these detections; computed when not given.
        score_threshold: least score of a detection in the confusion matrix and the samples.
        iou_threshold: least IoU of a match in the confusion matrix.
        num_samples: images drawn with ground truth and predictions, in dataset order.
        num_proposals: N of the model, marked on the objects-per-image histogram.

    Returns:
        Name -> path of every file written: ``precision_recall``, ``confusion_matrix``,
        ``confusion_matrix_json``, ``dataset_labels`` and ``sample_<image id>``.

    Raises:
        ValueError: a sample drawing would replace a file no report drew
            (:func:`check_sample_targets`); nothing is written.
    """
    output_dir = Path(output_dir)
    samples = list(zip(image_ids, detections, strict=True))[:num_samples]
    check_sample_targets(output_dir / "samples", [image_id for image_id, _ in samples])
    categories = dataset.category_map
    ground_truth = dataset.gt_dict()
    if result is None:
        evaluator = CocoEvaluator(evaluation_ground_truth(dataset))
        evaluator.update(image_ids, detections)
        result = evaluator.evaluate()
    by_image = ground_truth_by_image(ground_truth, categories)
    paths = {
        "precision_recall": plot_precision_recall(
            result.precision_recall,
            output_dir / "precision_recall.png",
            # Each class in its colour of the samples and the label summary.
            category_labels={c: categories.to_label(c) for c in categories.category_ids},
        )
    }
    paths.update(
        _write_confusion(
            [by_image[i] for i in image_ids],
            detections,
            categories.distinct_names,
            output_dir,
            score_threshold,
            iou_threshold,
        )
    )
    paths["dataset_labels"] = LabelSummary.from_ground_truth(by_image, categories).plot(
        output_dir / "dataset_labels.png", num_proposals=num_proposals
    )
    if samples:
        # Recorded before they are drawn: a run killed while drawing leaves drawings that the
        # next report knows as its own, to replace or delete.
        folder = output_dir / "samples"
        drawn = {sample_name(image_id) for image_id, _ in samples}
        atomic_write_text(
            folder / SAMPLES_RECORD, json.dumps(sorted(_recorded_samples(folder) | drawn))
        )
    for image_id, image_detections in samples:
        paths[f"sample_{image_id}"] = _write_sample(
            dataset, image_id, by_image[image_id], image_detections, output_dir, score_threshold
        )
    _remove_stale_samples(
        output_dir / "samples",
        {path.name for name, path in paths.items() if name.startswith("sample_")},
    )
    logger.info("wrote %d evaluation plots to %s", len(paths), output_dir)
    return paths


def sample_name(image_id: int) -> str:
    """The file name of the sample drawing of ``image_id`` in the report's ``samples/``."""
    return f"{image_id}.png"


def _recorded_samples(folder: Path) -> set[str]:
    """The names of the sample drawings the last report into ``folder`` recorded
    (:data:`SAMPLES_RECORD`); none when there is no record, or it cannot be read (logged)."""
    record = folder / SAMPLES_RECORD
    if not record.is_file():
        return set()
    try:
        return {str(name) for name in json.loads(record.read_text())}
    except (ValueError, TypeError) as error:
        logger.warning("%s is unreadable (%s): earlier samples are left in place", record, error)
        return set()


def unrecorded_samples(folder: Path, image_ids: Sequence[int] | None = None) -> list[Path]:
    """The files of ``folder`` (a report's ``samples/``) that a sample drawing would replace
    although no report recorded drawing them: the user's. ``image_ids``: those of the samples
    to draw; None: any image id (every ``<integer>.png``), to check before the dataset loads."""
    if not folder.is_dir():
        return []
    recorded = _recorded_samples(folder)
    if image_ids is not None:
        candidates = [folder / sample_name(i) for i in image_ids]
    else:
        candidates = sorted(p for p in folder.glob("*.png") if _is_sample_name(p.name))
    return [path for path in candidates if path.exists() and path.name not in recorded]


def _is_sample_name(name: str) -> bool:
    """Whether ``name`` is :func:`sample_name` of some image id (``7.png``, not ``007.png``)."""
    try:
        return sample_name(int(name.removesuffix(".png"))) == name
    except ValueError:
        return False


def check_sample_targets(
    folder: Path, image_ids: Sequence[int] | None = None, *, flag: str | None = None
) -> None:
    """Raise when a sample drawing would replace a file of ``folder`` that no report drew
    (:func:`unrecorded_samples`: a user's ``7.png``). ``flag`` names the report's folder in
    the error, as the command line gave it.

    Raises:
        ValueError: naming the file and what to do.
    """
    found = unrecorded_samples(folder, image_ids)
    if found:
        given = f"{flag} {folder.parent}" if flag else str(folder.parent)
        raise ValueError(
            f"{given}: {found[0]} is no drawing of an earlier report, and the report draws its "
            f"samples there as <image id>.png, replacing such files; move it away, or choose "
            "another folder"
        )


def _remove_stale_samples(folder: Path, written: set[str]) -> None:
    """Delete the sample drawings an earlier report wrote into ``folder`` and this one did not
    (they would show another model's or dataset's detections beside this report's), then
    record this report's (:data:`SAMPLES_RECORD`).

    Only files an earlier report listed in its record are deleted: any other file, such as a
    user's ``000001.png`` in a folder given as the report's, stays.
    """
    if not folder.is_dir():
        return
    previous = _recorded_samples(folder)
    stale = [folder / name for name in sorted(previous - written) if Path(name).name == name]
    removed = [path for path in stale if path.is_file()]
    for path in removed:
        path.unlink()
    if removed:
        logger.info("removed %d sample drawings of an earlier report from %s", len(removed), folder)
    atomic_write_text(folder / SAMPLES_RECORD, json.dumps(sorted(written)))


def _write_confusion(
    ground_truths: list[ImageGroundTruth],
    detections: Sequence[Detections],
    class_names: list[str],
    output_dir: Path,
    score_threshold: float,
    iou_threshold: float,
) -> dict[str, Path]:
    matrix = confusion_matrix(
        [(d["boxes"], d["labels"], d["scores"]) for d in detections],
        [(g.boxes, g.labels) for g in ground_truths],
        len(class_names),
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
    )
    rows, columns = [*class_names, BACKGROUND], [*class_names, MISSED]
    record = {
        "rows (ground truth)": rows,
        "columns (predicted)": columns,
        "score_threshold": score_threshold,
        "iou_threshold": iou_threshold,
        "matrix": matrix.tolist(),
    }
    title = f"confusion matrix (score >= {score_threshold}, IoU >= {iou_threshold})"
    return {
        "confusion_matrix": plot_confusion_matrix(
            matrix, rows, columns, output_dir / "confusion_matrix.png", title=title
        ),
        "confusion_matrix_json": atomic_write_text(
            output_dir / "confusion_matrix.json", json.dumps(record, indent=2)
        ),
    }


def _write_sample(
    dataset: CocoDataset,
    image_id: int,
    ground_truth: ImageGroundTruth,
    detections: Detections,
    output_dir: Path,
    score_threshold: float,
) -> Path:
    """Draw one original image with its ground truth (left) and detections (right), in
    panels sized as the stage figure's (a small image enlarged, a large one scaled down)."""
    info = dataset.image_info(dataset.image_ids.index(image_id))
    image_path = dataset.image_dir / info["file_name"]
    drawing = draw_ground_truth_and_predictions(
        load_image(image_path),
        ground_truth.boxes,
        ground_truth.labels,
        detections["boxes"],
        detections["labels"],
        detections["scores"],
        dataset.category_map.distinct_names,  # as the confusion matrix names them
        score_threshold=score_threshold,
        image_name=f"image id {image_id} ({image_path})",
    )
    path = output_dir / "samples" / sample_name(image_id)
    return atomic_write(path, lambda tmp: drawing.save(tmp, format="PNG"))


def write_evaluation_report(
    report: EvaluationReport,
    output_dir: str | Path,
    *,
    score_threshold: float = 0.3,
    iou_threshold: float = 0.5,
    num_samples: int = 4,
) -> dict[str, Path]:
    """:func:`write_detection_plots` of an evaluation that has run (the model is not run again).

    Returns:
        Name -> path of every file written (see :func:`write_detection_plots`).
    """
    evaluation = report.evaluation
    return write_detection_plots(
        report.dataset,
        evaluation.image_ids,
        evaluation.detections,
        output_dir,
        result=evaluation.result,
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
        num_samples=num_samples,
        num_proposals=report.num_proposals,
    )
