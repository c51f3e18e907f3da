"""Starting training from published weights: backbone-only or whole-detector initialisation.

:func:`init_from_checkpoint` loads a detector checkpoint (any layout) into a model that may have
another class set: only the class logits of every stage are re-initialised (spec 5.2: Xavier
weight, focal prior bias), except the rows of classes the two sets both name; the learned
proposals, the stages and the backbone are kept.
:func:`load_backbone_weights` loads ImageNet (torchvision) or detector ResNet weights into the
backbone. The freezing helpers choose what the optimiser may change.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from sparsercnn.config import ModelConfig, override_arguments
from sparsercnn.data.categories import CategoryMap
from sparsercnn.model import SparseRCNN
from sparsercnn.model.backbone import NUM_FREEZABLE_PARTS
from sparsercnn.model_file import load_state_dict_strict
from sparsercnn.text import listing
from sparsercnn.weights.convert import (
    ConvertedCheckpoint,
    backbone_state_dict,
    convert_checkpoint,
    infer_depth,
    infer_model_config,
    reconcile_counters,
)
from sparsercnn.weights.download import fetch
from sparsercnn.weights.key_tables import Layout

logger = logging.getLogger(__name__)

CLASS_LOGIT_KEY = re.compile(r"head\.stages\.\d+\.class_logits\.(weight|bias)")
# The ModelConfig fields that tensor shapes tell (infer_model_config), but for num_classes.
ARCHITECTURE_FIELDS = (
    "backbone_depth",
    "backbone_width",
    "fpn_dim",
    "num_proposals",
    "num_stages",
    "hidden_dim",
    "ffn_dim",
    "dynamic_dim",
    "pooler_resolution",
    "num_cls_layers",
    "num_reg_layers",
    "use_self_attention",
    "use_dynamic_conv",
)


def init_from_checkpoint(
    model: SparseRCNN,
    src: str | Path,
    layout: Layout | None = None,
    prior_prob: float = 0.01,
    sha256: str | None = None,
    categories: CategoryMap | None = None,
) -> list[str]:
    """Initialise ``model`` from a detector checkpoint (published name, path or URL).

    Args:
        model: the model to train; its architecture must match the checkpoint's except for the
            number of classes (and the backbone norm type, whose counters are reconciled).
        src: anything :func:`~sparsercnn.weights.download.fetch` accepts.
        layout: force the checkpoint's key layout.
        prior_prob: foreground prior of re-initialised class logits (``cfg.model.prior_prob``).
        sha256: expected checksum of ``src``.
        categories: the classes ``model`` will learn; when given, class logits are matched to
            the checkpoint's classes by name (see :func:`load_for_finetuning`).

    Returns:
        The keys that were re-initialised instead of loaded (empty when the classes match).
    """
    path = fetch(src, sha256=sha256)
    return init_from_converted(
        model, convert_checkpoint(path, layout), str(path), prior_prob, categories
    )


def init_from_converted(
    model: SparseRCNN,
    converted: ConvertedCheckpoint,
    source: str,
    prior_prob: float = 0.01,
    categories: CategoryMap | None = None,
) -> list[str]:
    """:func:`init_from_checkpoint` from a checkpoint already read and converted
    (:func:`~sparsercnn.weights.convert.convert_checkpoint`) from the file ``source``.

    Raises:
        ValueError: the checkpoint's architecture differs from ``model``'s (other than in the
            number of classes): the message names the settings and the ``--set`` that fits.
    """
    classes = None if categories is None else (converted.categories, categories)
    try:
        return load_for_finetuning(model, converted.state_dict, source, prior_prob, classes)
    except ValueError as error:
        differences = architecture_differences(converted.config.model, model)
        if not differences:
            raise
        raise other_architecture_error(source, differences) from error


def other_architecture_error(
    source: str, differences: list[tuple[str, object, object]]
) -> ValueError:
    """The error for a checkpoint ``source`` whose architecture has the ``differences``
    (:func:`architecture_differences`) from the model's: the settings and the ``--set`` that
    fits."""
    shown = ", ".join(f"{name} {theirs} (the model: {ours})" for name, theirs, ours in differences)
    fix = override_arguments({f"model.{name}": theirs for name, theirs, _ in differences})
    return ValueError(
        f"{source} is a model of another architecture: {shown}; train with --set {fix}, or "
        "with --preset auto, which takes the checkpoint's architecture"
    )


def architecture_differences(
    checkpoint: ModelConfig, model: SparseRCNN | ModelConfig
) -> list[tuple[str, object, object]]:
    """``(field, checkpoint's value, model's value)`` for every architecture setting (other
    than the number of classes) in which ``model``'s tensor shapes (or the config of a model
    to be built) differ from ``checkpoint``."""
    own = (
        model
        if isinstance(model, ModelConfig)
        else infer_model_config(model.state_dict(), "the model")
    )
    return [
        (name, getattr(checkpoint, name), getattr(own, name))
        for name in ARCHITECTURE_FIELDS
        if getattr(checkpoint, name) != getattr(own, name)
    ]


def load_for_finetuning(
    model: SparseRCNN,
    tensors: Mapping[str, Tensor],
    source: str,
    prior_prob: float = 0.01,
    classes: tuple[CategoryMap, CategoryMap] | None = None,
) -> list[str]:
    """Load ``tensors`` (our names) strictly, except the class logits when the classes differ.

    The classes differ when the logits' shapes do, or when ``classes`` (the checkpoint's and the
    model's label maps) name other classes, or the same ones in another order. The logits are
    then re-initialised (spec 5.2), and the row of every model class whose name is that of
    exactly one checkpoint class is copied from it, so shared classes keep what they learned.

    Raises:
        ValueError: any other missing, unexpected or mis-shaped key (all listed).
    """
    own = model.state_dict()
    tensors = reconcile_counters(tensors, set(own))
    logit_keys = [key for key in own if CLASS_LOGIT_KEY.fullmatch(key)]
    differs = any(key in tensors and tensors[key].shape != own[key].shape for key in logit_keys)
    if classes is not None:
        differs = differs or classes[0].names != classes[1].names
    if not differs:
        load_state_dict_strict(model, tensors, source)
        return []
    # The model's own logits stand in for the source's, then are re-initialised.
    load_state_dict_strict(model, {**tensors, **{key: own[key] for key in logit_keys}}, source)
    reset_class_logits(model, prior_prob)
    kept = _copy_shared_class_rows(model, tensors, logit_keys, classes)
    source_classes = next(tensors[k].shape[0] for k in logit_keys if k in tensors)
    logger.info(
        "%s: class logits of all %d stages re-initialised for %d classes (the checkpoint has "
        "%d%s)%s; proposals, stages and backbone loaded",
        source,
        model.num_stages,
        own[logit_keys[0]].shape[0],
        source_classes,
        # Said where the counts alone would not tell why (the same number of classes).
        "" if classes is None else ": " + listing(classes[0].names, limit=5),
        f", those of {', '.join(kept)} kept from the checkpoint's class of that name"
        if kept
        else "",
    )
    return logit_keys


def _copy_shared_class_rows(
    model: SparseRCNN,
    tensors: Mapping[str, Tensor],
    logit_keys: list[str],
    classes: tuple[CategoryMap, CategoryMap] | None,
) -> list[str]:
    """Copy into ``model``'s class logits the checkpoint's rows of the classes both name once;
    returns those names."""
    if classes is None:
        return []
    source_names, target_names = classes[0].names, classes[1].names
    pairs = [
        (target_label, source_names.index(name))
        for target_label, name in enumerate(target_names)
        if source_names.count(name) == 1 and target_names.count(name) == 1
    ]
    if not pairs:
        return []
    rows = torch.tensor([target for target, _ in pairs])
    source_rows = torch.tensor([source for _, source in pairs])
    params = dict(model.named_parameters())
    with torch.no_grad():
        for key in (key for key in logit_keys if key in tensors):
            params[key][rows] = tensors[key][source_rows].to(params[key].dtype)
    return [target_names[target] for target, _ in pairs]


def reset_class_logits(model: SparseRCNN, prior_prob: float = 0.01) -> None:
    """Xavier-uniform weight and bias ``-log((1 - p) / p)`` for every stage (spec 5.2)."""
    bias = -math.log((1 - prior_prob) / prior_prob)
    for name, param in model.named_parameters():
        match = CLASS_LOGIT_KEY.fullmatch(name)
        if match is not None and match.group(1) == "weight":
            nn.init.xavier_uniform_(param)
        elif match is not None:
            nn.init.constant_(param, bias)


def load_backbone_weights(model: SparseRCNN, src: str | Path, layout: Layout | None = None) -> None:
    """Load ResNet weights into ``model.backbone`` strictly.

    Args:
        model: the detector.
        src: a torchvision ImageNet ResNet ``.pth`` (its ``fc`` is ignored), a backbone file from
            ``sparsercnn convert``, or any detector checkpoint (its backbone is taken); path or URL.
        layout: force the file's key layout.

    Raises:
        ValueError: the file's ResNet depth differs from the model's, or keys do not fit.
    """
    path = fetch(src)
    load_backbone_tensors(model, backbone_state_dict(path, layout), str(path))


def load_backbone_tensors(model: SparseRCNN, tensors: Mapping[str, Tensor], source: str) -> None:
    """:func:`load_backbone_weights` from ResNet tensors already read
    (:func:`~sparsercnn.weights.convert.backbone_state_dict`: ``backbone.*``, our names) from
    the file ``source``.

    Raises:
        ValueError: the ResNet's depth or width differs from the model's, or keys do not fit.
    """
    depth = check_backbone_fits(tensors, source, model.backbone.depth, model.backbone.width)
    own = model.backbone.state_dict()
    stripped = {key.removeprefix("backbone."): value for key, value in tensors.items()}
    load_state_dict_strict(model.backbone, reconcile_counters(stripped, set(own)), source)
    logger.info("loaded ResNet-%d backbone weights from %s", depth, source)


def check_backbone_fits(tensors: Mapping[str, Tensor], source: str, depth: int, width: int) -> int:
    """Raise unless the ResNet ``tensors`` (``backbone.*``) of the file ``source`` have the
    backbone's ``depth`` and (stem) ``width``; returns the depth.

    Raises:
        ValueError: another depth or width (the message gives the setting that fits).
    """
    found = infer_depth(tensors, source)
    if found != depth:
        raise ValueError(
            f"{source} holds a ResNet-{found} but the model's backbone is a ResNet-{depth}; set "
            f"model.backbone_depth={found} or use other weights"
        )
    stem = tensors.get("backbone.conv1.weight")
    if stem is not None and stem.shape[0] != width:
        raise ValueError(
            f"{source} holds a ResNet of width {stem.shape[0]} but the model's backbone has "
            f"width {width}; set model.backbone_width={stem.shape[0]} or train from scratch"
        )
    return found


def freeze_backbone(model: SparseRCNN) -> None:
    """Stop training the ResNet and the FPN: no gradients, BatchNorm statistics frozen.

    The backbone is marked fully frozen (``freeze_at`` = all parts), so a later
    ``model.train()`` keeps its BatchNorm layers in eval mode.
    """
    model.backbone.freeze_at = NUM_FREEZABLE_PARTS
    model.backbone.requires_grad_(False)
    model.fpn.requires_grad_(False)
    model.backbone.train(model.backbone.training)


def freeze_all_but_class_logits(model: SparseRCNN) -> list[str]:
    """Train only the class logits of every stage (a linear probe on a new class set).

    Returns:
        The names of the parameters left trainable.
    """
    freeze_backbone(model)
    model.proposals.requires_grad_(False)
    model.head.requires_grad_(False)
    for stage in model.head.stages:
        stage.class_logits.requires_grad_(True)
    return [name for name, param in model.named_parameters() if param.requires_grad]
