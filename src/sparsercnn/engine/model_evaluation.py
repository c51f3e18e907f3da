"""COCO evaluation of a model file or an exported ONNX file.

What the CLI's ``eval`` calls (and training's final report reuses): the dataset with the
config's test transform, the label-map check, one evaluation pass
(:func:`~sparsercnn.engine.inference.evaluate`), and its metrics and speed as an
:class:`~sparsercnn.engine.evaluation_report.EvaluationReport`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch

from sparsercnn.config import DEFAULT_NUM_WORKERS, Config
from sparsercnn.data.categories import CategoryMap, check_same_categories
from sparsercnn.data.coco import CocoDataset
from sparsercnn.data.policy import Inspection, inspect_dataset
from sparsercnn.data.transforms import build_test_transform
from sparsercnn.engine.distributed import DistInfo
from sparsercnn.engine.evaluation_report import EvaluationReport
from sparsercnn.engine.inference import evaluate
from sparsercnn.model import build_postprocessor
from sparsercnn.model.inference import (
    Precision,
    check_calibrated,
    check_precision,
    unused_int8_calibration,
)
from sparsercnn.model_file import LoadedModel, load_model_file
from sparsercnn.runtime import check_device

logger = logging.getLogger(__name__)


def evaluation_dataset(
    json_path: str | Path,
    image_dir: str | Path,
    cfg: Config,
    *,
    skip_invalid: bool = False,
    require_boxes: bool = True,
    inspection: Inspection | None = None,
) -> CocoDataset:
    """A COCO dataset with ``cfg``'s test transform: what evaluation and its plots see.

    Its images are checked up front (the data policy, :mod:`sparsercnn.data.policy`): invalid
    ones are an error naming them, or dropped with ``skip_invalid``; none is swapped later.
    ``inspection``: the policy's finding for these files where the caller has it (see
    :class:`~sparsercnn.data.coco.CocoDataset`), which is then not made again.
    Large JPEGs are decoded at the reduced scale the test resize allows, as predictors decode
    them (:func:`~sparsercnn.image_inputs.decode_input`), so both see the same input.
    """
    transform = build_test_transform(cfg.input)
    return CocoDataset(
        json_path,
        image_dir,
        transform=transform,
        skip_invalid=skip_invalid,
        decode_size=transform.source_size,
        require_boxes=require_boxes,
        inspection=inspection,
    )


# The errors of a COCO file's category list (:mod:`sparsercnn.data.validation`).
_CATEGORY_ERRORS = frozenset({"bad_category", "duplicate_category_id", "no_categories"})


def check_categories_first(expected: CategoryMap, json_path: str | Path) -> None:
    """Refuse a COCO file whose categories differ from ``expected`` (a model's label map) from
    its entries alone, before :func:`evaluation_dataset` decodes its images (minutes for a large
    set). A category list with errors is left to the data policy, which names them.

    Raises:
        ValueError: the categories differ (:func:`check_same_categories`); DatasetError: the
            file is missing or no COCO instances file.
    """
    entries = inspect_dataset(json_path, None, image_check="none")
    if any(issue.code in _CATEGORY_ERRORS for issue in entries.errors):
        return
    found = CategoryMap.from_coco(entries.checked.categories)
    check_same_categories(expected, found, str(json_path))


def load_model_and_dataset(
    model_file: str | Path,
    json_path: str | Path,
    image_dir: str | Path,
    device: torch.device | str = "cpu",
    *,
    skip_invalid: bool = False,
    require_boxes: bool = True,
    labelled: bool = True,
) -> tuple[LoadedModel, CocoDataset]:
    """The model of ``model_file`` (eval mode, on ``device``) and the dataset it is run on
    (:func:`evaluation_dataset`; ``skip_invalid`` leaves out the entries with errors,
    ``require_boxes=False`` accepts a file without boxes, and ``labelled=False`` any
    categories, for a use that reads only the images).

    Raises:
        ValueError: ``labelled`` and the dataset's categories differ from the model's label map.
    """
    loaded = load_model_file(model_file, device=device)
    loaded.model.eval()
    if labelled:
        check_categories_first(loaded.categories, json_path)
    dataset = evaluation_dataset(
        json_path, image_dir, loaded.config, skip_invalid=skip_invalid, require_boxes=require_boxes
    )
    if labelled:
        check_same_categories(loaded.categories, dataset.category_map, str(json_path))
    return loaded, dataset


def evaluate_model_file(
    model_file: str | Path,
    json_path: str | Path,
    image_dir: str | Path,
    *,
    device: torch.device | str = "cpu",
    num_stages: int | None = None,
    batch_size: int | None = None,
    num_workers: int = DEFAULT_NUM_WORKERS,
    batch_invariant: bool = True,
    precision: Precision = "fp32",
    cuda_graphs: bool = False,
    skip_invalid: bool = False,
    results_path: Path | None = None,
    metrics_path: Path | None = None,
    on_accepted: Callable[[], None] | None = None,
) -> EvaluationReport:
    """COCO evaluation of a model file on a dataset, optionally writing results and metrics.

    ``batch_size=None`` uses the model's ``input.test_batch_size`` (what its training-time
    evaluations used, so their detections are reproduced exactly). ``skip_invalid`` scores the
    entries the data policy keeps (what ``train --skip-invalid`` evaluated) instead of refusing
    a dataset with errors; the report counts what was left out. ``on_accepted`` is called once
    everything below is checked, before the evaluation pass (``sparsercnn eval`` says there
    which files the run replaces: a refused command says nothing of replacing).

    Raises:
        ValueError: ``num_stages`` is not in ``1..`` the model's stages, ``batch_size`` is not
            None or >= 1, ``device`` is not one, the dataset's categories differ from the
            model's, or ``results_path`` / ``metrics_path`` is a folder or both are one file
            (checked before the evaluation).
    """
    device = check_device(device)
    check_batch_size(batch_size)
    check_output_paths(results_path, metrics_path)
    loaded = load_model_file(model_file, device=device)
    if num_stages is not None and not (
        isinstance(num_stages, int) and 1 <= num_stages <= loaded.model.num_stages
    ):
        raise ValueError(
            f"num_stages (--stages) {num_stages!r}: {model_file} has stages "
            f"1..{loaded.model.num_stages}"
        )
    check_precision(precision, device)
    check_calibrated(loaded.model, precision)
    note = unused_int8_calibration(loaded.model, precision, device)
    if note is not None:
        logger.info("%s %s", model_file, note)
    check_categories_first(loaded.categories, json_path)
    dataset = evaluation_dataset(json_path, image_dir, loaded.config, skip_invalid=skip_invalid)
    check_same_categories(loaded.categories, dataset.category_map, str(json_path))
    if on_accepted is not None:
        on_accepted()
    evaluation = evaluate(
        loaded.model,
        build_postprocessor(loaded.config),
        dataset,
        batch_size=batch_size if batch_size is not None else loaded.config.input.test_batch_size,
        num_workers=num_workers,
        dist_info=DistInfo(device=device),
        num_stages=num_stages,
        batch_invariant=batch_invariant,
        precision=precision,
        cuda_graphs=cuda_graphs,
    )
    assert evaluation is not None  # single process: rank 0
    report = EvaluationReport(
        evaluation,
        dataset,
        Path(model_file),
        str(device),
        loaded.model.num_proposals,
        precision=precision,
        cuda_graphs=cuda_graphs,
    )
    report.write_files(results_path=results_path, metrics_path=metrics_path)
    return report


def evaluate_onnx_file(
    onnx_path: str | Path,
    json_path: str | Path,
    image_dir: str | Path,
    *,
    device: torch.device | str | None = "cpu",
    batch_size: int | None = None,
    num_workers: int = DEFAULT_NUM_WORKERS,
    num_threads: int | None = None,
    batch_invariant: bool = True,
    precision: Precision | None = None,
    skip_invalid: bool = False,
    results_path: Path | None = None,
    metrics_path: Path | None = None,
    on_accepted: Callable[[], None] | None = None,
) -> EvaluationReport:
    """COCO evaluation of an exported ``.onnx`` file (fp32 or int8) run by onnxruntime on
    ``device`` (None: CUDA where onnxruntime can, else the CPU; see
    :class:`~sparsercnn.export.onnx_runtime.OnnxPredictor`): the same dataset, test resize,
    evaluation pass, report and ``on_accepted`` as :func:`evaluate_model_file`. The report's
    device names the execution provider that ran it (``cuda:0 (onnxruntime
    CUDAExecutionProvider)``).

    ``batch_size=None`` uses the exported config's ``input.test_batch_size`` (a file exported
    with a static batch runs one image at a time). ``precision``, when given, must be the one
    the graph computes in (:func:`~sparsercnn.export.onnx_runtime.check_graph_precision`).

    Raises:
        ValueError: the file is not a sparsercnn export, computes in another ``precision``,
            ``device`` is not one or this onnxruntime has no provider for it, or the dataset's
            categories differ.
        ImportError: onnxruntime is not installed.
    """
    from sparsercnn.export.onnx_runtime import OnnxPredictor, check_graph_precision

    check_batch_size(batch_size)
    check_output_paths(results_path, metrics_path)
    predictor = OnnxPredictor(
        onnx_path, device=device, num_threads=num_threads, batch_invariant=batch_invariant
    )
    check_graph_precision(predictor, precision)
    config = predictor.config
    check_categories_first(predictor.categories, json_path)
    dataset = evaluation_dataset(json_path, image_dir, config, skip_invalid=skip_invalid)
    check_same_categories(predictor.categories, dataset.category_map, str(json_path))
    if on_accepted is not None:
        on_accepted()
    evaluation = evaluate(
        predictor,
        None,
        dataset,
        batch_size=predictor.fixed_batch or batch_size or config.input.test_batch_size,
        num_workers=num_workers,
        batch_invariant=batch_invariant,
    )
    assert evaluation is not None  # single process: rank 0
    report = EvaluationReport(
        evaluation,
        dataset,
        Path(onnx_path),
        predictor.runs_on,
        config.model.num_proposals,
        precision=predictor.precision,
    )
    report.write_files(results_path=results_path, metrics_path=metrics_path)
    return report


def check_batch_size(batch_size: int | None) -> None:
    """Refuse a ``batch_size`` that is neither None (the model's own) nor an integer >= 1."""
    if batch_size is not None and not (
        isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size >= 1
    ):
        raise ValueError(
            f"batch_size must be an integer >= 1, or None for the model's "
            f"input.test_batch_size; got {batch_size!r}"
        )


def check_output_paths(results_path: Path | None, metrics_path: Path | None) -> None:
    """Refuse, before the evaluation runs, output paths its files cannot be written to: an
    existing folder, or one path for both files (the metrics would replace the results)."""
    for name, path in (("results_path", results_path), ("metrics_path", metrics_path)):
        if path is not None and Path(path).is_dir():
            raise ValueError(f"{name} {path} is a folder; give a file path (.json)")
    if (
        results_path is not None
        and metrics_path is not None
        and Path(results_path).absolute() == Path(metrics_path).absolute()
    ):
        raise ValueError(
            f"results_path and metrics_path both name {results_path}; give each its own file"
        )
