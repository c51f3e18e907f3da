"""Training from files on disk: train on COCO-format data, with an optional validation set.

What the CLI's ``train`` and ``demo`` call: builds the datasets with the config's transforms,
checks that their label maps agree, runs the :class:`~sparsercnn.engine.trainer.Trainer`, and
reports the evaluation of the model it names best. Evaluating a model file on its own is
:mod:`~sparsercnn.engine.model_evaluation`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from sparsercnn.config import Config, log_schedule_notes
from sparsercnn.data.categories import check_same_categories
from sparsercnn.data.coco import CocoDataset
from sparsercnn.data.dataset_error import DatasetError
from sparsercnn.data.image_check import check_image_files
from sparsercnn.data.policy import Inspection
from sparsercnn.data.split_overlap import split_overlap_warning
from sparsercnn.data.transforms import build_train_transform
from sparsercnn.engine.checkpoint import check_run_folder
from sparsercnn.engine.distributed import (
    DistInfo,
    computed_on_main,
    gathered_from_all,
    get_rank,
    is_main_process,
)
from sparsercnn.engine.evaluation_report import EvaluationReport
from sparsercnn.engine.inference import evaluate
from sparsercnn.engine.model_evaluation import evaluation_dataset
from sparsercnn.engine.model_init import StartingWeights
from sparsercnn.engine.resume import CheckedResume
from sparsercnn.engine.run_lock import run_folder_lock
from sparsercnn.engine.train_result import TrainResult
from sparsercnn.engine.trainer import Trainer
from sparsercnn.model import build_postprocessor
from sparsercnn.model_file import load_model_file
from sparsercnn.runtime import check_device
from sparsercnn.text import counted

logger = logging.getLogger(__name__)


def train_from_coco(
    cfg: Config,
    *,
    train_json: Path,
    train_images: Path,
    output_dir: str | Path,
    val_json: Path | None = None,
    val_images: Path | None = None,
    resume: bool | str | Path | CheckedResume = False,
    time_budget_minutes: float | None = None,
    skip_invalid: bool = False,
    dist_info: DistInfo | None = None,
    starting_weights: StartingWeights | None = None,
    train_inspection: Inspection | None = None,
    val_inspection: Inspection | None = None,
    budget_extends: bool = True,
    budget_spent_minutes: float = 0.0,
) -> TrainResult:
    """Train on a COCO-format dataset with ``cfg`` (a :class:`Config`, e.g.
    ``get_preset("small")``); ``model.num_classes`` is taken from the dataset.

    The data policy (:mod:`sparsercnn.data.policy`) runs before the model is built: data with
    errors is refused (:class:`~sparsercnn.data.policy.InvalidDataError`, every bad file named),
    or with ``skip_invalid`` its bad images and annotations are dropped up front, and an image
    that fails to load later is then replaced and counted (``skipped_images`` in
    ``metrics.jsonl``) instead of stopping the run. Training images are decoded at the
    resolution the augmentation needs (``TrainTransform.source_size``: large JPEGs at 1/2 to
    1/8 scale) and kept in memory up to ``train.image_cache_mb`` per loading process.

    ``val_json`` and ``val_images`` (both or neither): the validation set, evaluated during
    training and for the result's ``evaluation_report``.

    ``train_inspection``, ``val_inspection``: the data policy's finding for a set where the
    caller checked it already (:func:`~sparsercnn.data.policy.checked_for_training`, as
    ``train`` does before its budget starts), which its dataset then takes without parsing and
    checking the files again; the policy (what is refused, dropped, logged) is the same. Used
    by rank 0, which builds the datasets for every rank; ``None``: the set is checked here.
    They are taken over: once the datasets are built, their parsed entries are dropped
    (:meth:`~sparsercnn.data.policy.Inspection.drop_entries`), as a dataset built from paths
    keeps none for the run.

    ``resume``: ``True`` continues the run in ``output_dir``, a path from that checkpoint, a
    :class:`~sparsercnn.engine.resume.CheckedResume` (the resume as the caller checked it before
    the data) from the checkpoint it chose (see :class:`~sparsercnn.engine.trainer.Trainer`).
    The output folder is checked before the data are read, and held
    (:func:`~sparsercnn.engine.run_lock.run_folder_lock`) until the run ends: a second run into
    it is refused. ``starting_weights``: the files of ``cfg.train.init_from`` and
    ``backbone_weights`` already read (:func:`~sparsercnn.engine.model_init.read_starting_weights`),
    which are then not read again (their tensors are released once loaded).
    ``budget_extends``: whether a run resumed at the end of its schedule trains on for the time
    budget; ``budget_spent_minutes``: what of the command's budget was spent before
    ``time_budget_minutes`` (see :class:`~sparsercnn.engine.trainer.Trainer`).

    What of its learning-rate schedule a new run never reaches
    (:meth:`~sparsercnn.config.TrainConfig.schedule_notes`: a preset's decays kept with a
    smaller ``train.max_iter``) is warned of here, once the output folder is checked and before
    the data are read (on rank 0); a resumed run's is said by the resume's check
    (:func:`~sparsercnn.engine.resume.check_resume`), with what the resume changes.
    """
    if not isinstance(cfg, Config):
        raise TypeError(
            f"cfg must be a Config (get_preset(name) makes one from a preset), got "
            f"{type(cfg).__name__}"
        )
    if (val_json is None) != (val_images is None):
        given, missing = (
            ("val_json", "val_images") if val_images is None else ("val_images", "val_json")
        )
        raise ValueError(
            f"{given} is given without {missing}: give both to evaluate during training, or neither"
        )
    # Held from the folder's check to the report: another run into it is refused.
    with run_folder_lock(output_dir, make=resume is not True):  # no folder made to resume
        is_main = dist_info is None or dist_info.is_main
        check_run_folder(output_dir, bool(resume), is_main=is_main)
        if not resume and is_main:
            log_schedule_notes(cfg.train)
        cfg, train_set, val_set = _training_datasets(
            cfg,
            (train_json, train_images),
            None if val_json is None or val_images is None else (val_json, val_images),
            skip_invalid=skip_invalid,
            train_inspection=train_inspection,
            val_inspection=val_inspection,
        )
        trainer = Trainer(
            cfg,
            train_set,
            output_dir,
            val_dataset=val_set,
            resume=resume,
            time_budget_minutes=time_budget_minutes,
            dist_info=dist_info,
            starting_weights=starting_weights,
            budget_extends=budget_extends,
            budget_spent_minutes=budget_spent_minutes,
        )
        result = trainer.train()
        if val_set is not None:
            result.evaluation_report = _training_evaluation_report(
                result, val_set, cfg, trainer.device, distributed=trainer.dist.is_distributed
            )
        return result


def _training_datasets(
    cfg: Config,
    train: tuple[Path, Path],
    val: tuple[Path, Path] | None,
    *,
    skip_invalid: bool,
    train_inspection: Inspection | None,
    val_inspection: Inspection | None,
) -> tuple[Config, CocoDataset, CocoDataset | None]:
    """The training set and the validation set (``train``, ``val``: annotation file and image
    folder) of :func:`train_from_coco`, built on rank 0 for every rank, their label maps checked
    to agree, and ``cfg`` with the training set's ``model.num_classes``; the inspections are
    dropped once taken."""
    train_json, train_images = train
    transform = build_train_transform(cfg.input)
    train_set = _built_on_rank_0(
        lambda: CocoDataset(
            train_json,
            train_images,
            transform=transform,
            skip_invalid=skip_invalid,
            skip_unreadable=skip_invalid,
            num_proposals=cfg.model.num_proposals,
            decode_size=transform.source_size,
            cache_bytes=cfg.train.image_cache_mb * 2**20,
            keep_ground_truth=False,  # never evaluated
            inspection=train_inspection,
        )
    )
    num_classes = train_set.category_map.num_classes
    if cfg.model.num_classes != num_classes:
        logger.info(
            "model.num_classes set to %d from %s (was %d)",
            num_classes,
            train_json,
            cfg.model.num_classes,
        )
        cfg = replace(cfg, model=replace(cfg.model, num_classes=num_classes))
    val_set = None
    if val is not None:
        val_json, val_images = val
        val_set = _built_on_rank_0(
            lambda: evaluation_dataset(
                val_json, val_images, cfg, skip_invalid=skip_invalid, inspection=val_inspection
            )
        )
        check_same_categories(
            train_set.category_map, val_set.category_map, str(val_json), f"{train_json} has"
        )
        if (overlap := split_overlap_warning(train_set, val_set)) is not None:
            logger.warning("%s", overlap)
    for inspection in (train_inspection, val_inspection):
        if inspection is not None:
            inspection.drop_entries()
    return cfg, train_set, val_set


def _built_on_rank_0(build: Callable[[], CocoDataset]) -> CocoDataset:
    """The dataset ``build()`` makes on rank 0 (the data policy in full, every image decoded),
    given to every rank (compact arrays): N ranks neither decode the set N times nor drop
    different images. The other ranks check only that its files exist where they run (a
    machine of a multi-node run that lacks some is named); every rank raises what one finds."""
    dataset = computed_on_main(build)
    gathered_from_all(lambda: None if is_main_process() else _require_files(dataset))
    return dataset


def _require_files(dataset: CocoDataset) -> None:
    """Raise when image files of ``dataset`` are missing on this machine (one listing of each
    folder, nothing decoded)."""
    images = [dataset.image_info(index) for index in range(len(dataset))]
    issues = check_image_files(images, dataset.image_dir, decode=False).issues
    missing = [issue for issue in issues if issue.severity == "error"]
    if missing:
        count = sum(issue.image_id is not None for issue in missing)
        raise DatasetError(
            f"{dataset.coco_json}: {counted(count, 'image file')} that rank 0 read are missing on "
            f"the machine of rank {get_rank()} ({missing[0].message}): give every machine of "
            "the run the same image folder"
        )


def _training_evaluation_report(
    result: TrainResult,
    dataset: CocoDataset,
    cfg: Config,
    device: torch.device | str,
    *,
    distributed: bool = False,
) -> EvaluationReport | None:
    """The evaluation of ``model_best`` (else of ``model_final``) on the validation set, as a
    report: the one training ran, or where that predates this invocation (a resumed run whose
    best came before the resume, or that had already finished) a new pass of the model file, so
    that the report is of the model the run names best whether or not it was resumed.

    ``distributed``: a multi-process run, where rank 0 cannot evaluate alone (the evaluation
    gathers over every rank): it reports the last evaluation of this invocation instead, of
    ``model_final`` (the report names its file).

    Returns:
        ``None`` where training evaluated nothing in a multi-process run, or not on rank 0.
    """
    model_file = result.model_best_path or result.model_final_path
    if model_file is None:
        return None
    evaluation = result.best_evaluation if result.model_best_path else result.final_evaluation
    if evaluation is None and distributed:
        evaluation, model_file = result.final_evaluation, result.model_final_path
        if evaluation is None or model_file is None:
            return None
    if evaluation is None:
        logger.info(
            "evaluating %s for the report: its evaluation was before the resume", model_file
        )
        device = check_device(device)
        loaded = load_model_file(model_file, device=device)
        last = result.final_evaluation  # this invocation's, whose ground truth is prepared
        evaluation = evaluate(
            loaded.model,
            build_postprocessor(loaded.config),
            dataset,
            batch_size=loaded.config.input.test_batch_size,
            num_workers=cfg.train.num_workers,
            dist_info=DistInfo(device=device),
            ground_truth=None if last is None else last.ground_truth,
        )
        assert evaluation is not None  # one process
    return EvaluationReport(evaluation, dataset, model_file, str(device), cfg.model.num_proposals)
