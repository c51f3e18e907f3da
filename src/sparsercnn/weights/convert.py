"""Converting reference checkpoints to our model: rename, infer the architecture, check strictly.

:func:`convert_checkpoint` turns an official (detectron2) or mmdetection Sparse R-CNN checkpoint
into our state dict, a :class:`~sparsercnn.config.Config` whose architecture is read from the
tensor shapes and whose source-specific behaviour (spec 12: backbone norm, delta clamp, box
clipping) reproduces the code base that trained it, and the COCO label map. Nothing but key names
changes (spec 11.6). :func:`export_state_dict` goes back to a reference layout, for round trips.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from sparsercnn.config import Config, ModelConfig
from sparsercnn.data.categories import CategoryMap
from sparsercnn.fetched_file import FetchedFile
from sparsercnn.model import build_model
from sparsercnn.model.backbone import ARCHITECTURES, Bottleneck
from sparsercnn.model_file import (
    BACKBONE_FORMAT_NAME,
    CONFIG_DISAGREES,
    load_state_dict_strict,
    save_model_file,
)
from sparsercnn.safetensors_file import write_safetensors
from sparsercnn.text import counted, listing, verb
from sparsercnn.weights.key_tables import Layout, backbone_prefix, rename_keys
from sparsercnn.weights.readers import RawCheckpoint, detect_layout, read_checkpoint

logger = logging.getLogger(__name__)

COUNTER = "num_batches_tracked"
# What to do about a checkpoint whose tensors do not make the model their shapes describe.
NOT_AS_PUBLISHED = (
    "the checkpoint is incomplete or not as published (damaged, cut short, or saved by modified "
    "code): download or copy it again"
)

# The 80 COCO classes: (category id, name), in label order (spec 1.4, 11.6).
COCO_CATEGORIES: tuple[tuple[int, str], ...] = (
    (1, "person"), (2, "bicycle"), (3, "car"), (4, "motorcycle"), (5, "airplane"), (6, "bus"),
    (7, "train"), (8, "truck"), (9, "boat"), (10, "traffic light"), (11, "fire hydrant"),
    (13, "stop sign"), (14, "parking meter"), (15, "bench"), (16, "bird"), (17, "cat"),
    (18, "dog"), (19, "horse"), (20, "sheep"), (21, "cow"), (22, "elephant"), (23, "bear"),
    (24, "zebra"), (25, "giraffe"), (27, "backpack"), (28, "umbrella"), (31, "handbag"),
    (32, "tie"), (33, "suitcase"), (34, "frisbee"), (35, "skis"), (36, "snowboard"),
    (37, "sports ball"), (38, "kite"), (39, "baseball bat"), (40, "baseball glove"),
    (41, "skateboard"), (42, "surfboard"), (43, "tennis racket"), (44, "bottle"),
    (46, "wine glass"), (47, "cup"), (48, "fork"), (49, "knife"), (50, "spoon"), (51, "bowl"),
    (52, "banana"), (53, "apple"), (54, "sandwich"), (55, "orange"), (56, "broccoli"),
    (57, "carrot"), (58, "hot dog"), (59, "pizza"), (60, "donut"), (61, "cake"), (62, "chair"),
    (63, "couch"), (64, "potted plant"), (65, "bed"), (67, "dining table"), (70, "toilet"),
    (72, "tv"), (73, "laptop"), (74, "mouse"), (75, "remote"), (76, "keyboard"),
    (77, "cell phone"), (78, "microwave"), (79, "oven"), (80, "toaster"), (81, "sink"),
    (82, "refrigerator"), (84, "book"), (85, "clock"), (86, "vase"), (87, "scissors"),
    (88, "teddy bear"), (89, "hair drier"), (90, "toothbrush"),
)  # fmt: skip

# What each reference code base does where they differ (spec 12), recorded in the config so
# that evaluating a converted checkpoint reproduces its source.
SOURCE_BEHAVIOUR: dict[str, dict[str, Any]] = {
    "official": {"backbone_norm": "frozen_bn", "box_delta_clamp": "official", "clip_boxes": True},
    "mmdet": {"backbone_norm": "bn_eval", "box_delta_clamp": "mmdet", "clip_boxes": False},
}


class ConvertedCheckpoint(NamedTuple):
    """A checkpoint in our names with the config and label map that go with it."""

    state_dict: dict[str, Tensor]
    config: Config
    categories: CategoryMap


def coco_categories() -> CategoryMap:
    """The COCO 2017 label map (80 classes, ids 1..90 with gaps)."""
    return CategoryMap([i for i, _ in COCO_CATEGORIES], [name for _, name in COCO_CATEGORIES])


def convert_checkpoint(
    src: str | Path | FetchedFile, layout: Layout | None = None
) -> ConvertedCheckpoint:
    """Read a detector checkpoint of any supported layout and convert it to ours.

    Args:
        src: official ``.pth``, mmdetection ``.pth``, our ``.safetensors``, or a raw state dict
            in our names.
        layout: force ``"official"``, ``"mmdet"`` or ``"ours"`` instead of detecting it.

    Raises:
        FileNotFoundError, IsADirectoryError, PermissionError: as
            :func:`~sparsercnn.weights.readers.read_checkpoint`.
        ValueError: unreadable file, a backbone-only (torchvision) file, or tensors that do not
            make a consistent model (the message lists the offending keys).
    """
    return convert_raw(read_checkpoint(src, layout))


def convert_raw(checkpoint: RawCheckpoint, base: ModelConfig | None = None) -> ConvertedCheckpoint:
    """Convert what :func:`~sparsercnn.weights.readers.read_checkpoint` returned.

    Args:
        checkpoint: tensors in their own names, with layout and stored class names.
        base: values for what shapes cannot tell (``num_heads``, ``dropout``, pixel statistics,
            ...); defaults to :class:`ModelConfig`'s, which are the released models' (spec 5).
    """
    source, layout = checkpoint.source, checkpoint.layout
    if layout == "torchvision":
        raise ValueError(_backbone_only_message(source, "a torchvision ResNet"))
    check_finite(checkpoint.tensors, source)
    if checkpoint.config is not None and checkpoint.categories is not None:
        try:
            tensors = check_fits(checkpoint.tensors, checkpoint.config.model, source, layout)
        except ValueError as error:
            raise ValueError(f"{error}; {CONFIG_DISAGREES}") from None
        return ConvertedCheckpoint(tensors, checkpoint.config, checkpoint.categories)
    tensors = to_our_names(checkpoint.tensors, layout, source)
    if all(key.startswith("backbone.") for key in tensors):
        # A backbone file that `convert` made from a torchvision ResNet, or any ResNet alone.
        raise ValueError(_backbone_only_message(source, "a ResNet"))
    if layout == "ours":
        norm = "bn_eval" if any(k.endswith(COUNTER) for k in tensors) else "frozen_bn"
        behaviour: dict[str, Any] = {"backbone_norm": norm}
        logger.warning(
            "%s is a bare state dict without a config: settings that tensor shapes do not show "
            "(num_heads, dropout, box clamp, ...) take their default values, the released "
            "models'; for a model trained with others, use the model file `sparsercnn train` "
            "wrote (model_final.safetensors), which keeps them (in Python, save a model with "
            "sparsercnn.save_model_file)",
            source,
        )
    else:
        behaviour = SOURCE_BEHAVIOUR[layout]
    model_cfg = replace(infer_model_config(tensors, source, base, layout), **behaviour)
    try:
        tensors = check_fits(tensors, model_cfg, source, layout)
    except ValueError as error:
        raise ValueError(f"{error}; {NOT_AS_PUBLISHED}") from None
    categories = categories_for(model_cfg.num_classes, checkpoint.class_names, source)
    logger.info(
        "converted %s (%s layout): ResNet-%d, %d proposals, %d stages, %d classes, %s",
        source,
        layout,
        model_cfg.backbone_depth,
        model_cfg.num_proposals,
        model_cfg.num_stages,
        model_cfg.num_classes,
        ", ".join(f"{k}={v}" for k, v in behaviour.items()),
    )
    return ConvertedCheckpoint(tensors, Config(model=model_cfg), categories)


def check_finite(tensors: Mapping[str, Tensor], source: str) -> None:
    """Refuse weights with NaN or infinite values, which would give NaN detections or losses
    far from the file that holds them.

    Args:
        tensors: in the file's own key names, which the message gives; those on the ``meta``
            device (shapes without values) are not checked.

    Raises:
        ValueError: some tensor holds a NaN or an infinity; the message names them.
    """
    bad = [
        key
        for key, tensor in tensors.items()
        if tensor.is_floating_point()
        and not tensor.is_meta
        and not bool(torch.isfinite(tensor).all())
    ]
    if bad:
        raise ValueError(
            f"{source}: {counted(len(bad), 'tensor')} {verb(len(bad), 'holds', 'hold')} NaN or "
            f"infinite values ({listing(bad, limit=5)}): the file is damaged, or was saved from "
            "a training run that diverged; use a checkpoint saved before that, or download or "
            "copy it again"
        )


def _backbone_only_message(source: str, what: str) -> str:
    return (
        f"{source} holds only {what} (no FPN, proposals or head); use it as backbone weights "
        "(train --backbone-weights, load_backbone_weights) instead"
    )


def to_our_names(tensors: Mapping[str, Tensor], layout: Layout, source: str) -> dict[str, Tensor]:
    """Rename with the key table; a key the table does not know is an error that lists it."""
    renamed, dropped, unmatched = rename_keys(tensors, layout, "ours")
    if unmatched:
        # Keys outside the ResNet and no Sparse R-CNN head: the heads of another detector.
        other_heads = "head.stages.0.class_logits.weight" not in renamed and any(
            not key.startswith(backbone_prefix(layout)) for key in unmatched
        )
        hint = _other_layout_hint(tensors, layout, source)
        if not hint and other_heads and layout in ("official", "mmdet"):
            hint = (
                "; the file holds no Sparse R-CNN head: it is another detector's checkpoint "
                "(a Faster R-CNN?), whose ResNet alone can be used, as backbone weights (train "
                "--backbone-weights, load_backbone_weights)"
            )
        elif not hint:
            hint = (
                "; the layout has no such tensors (the model of modified code?): re-save the "
                "state dict without those keys and use that file"
            )
        raise ValueError(
            f"{source}: {counted(len(unmatched), 'key')} {verb(len(unmatched), 'is')} not part "
            f"of the {layout} layout: {listing(unmatched, limit=5)}{hint}"
        )
    if dropped:
        logger.info(
            "%s: dropped %s: %s", source, counted(len(dropped), "unused tensor"), listing(dropped)
        )
    return renamed


def _other_layout_hint(tensors: Mapping[str, Tensor], layout: Layout, source: str) -> str:
    """Where the keys are those of another layout than ``layout``, a hint that names it (for
    the end of a message); else ``""``."""
    try:
        detected = detect_layout(list(tensors), source)
    except ValueError:
        return ""
    if detected == layout:
        return ""
    return f"; the key names are those of the {detected} layout: drop --from (layout=) to detect it"


def infer_model_config(
    tensors: Mapping[str, Tensor],
    source: str,
    base: ModelConfig | None = None,
    layout: Layout = "ours",
) -> ModelConfig:
    """Read the architecture from the tensor shapes (spec 11.6), in our key names.

    Depth comes from the number of blocks per ResNet stage (res4/layer3: 6 -> 50, 23 -> 101),
    the ResNet's width from its stem, proposals and width from the embeddings, classes from
    the class logits (every stage's must agree), the remaining widths from the first head
    stage. Everything else comes from ``base``. Errors name keys as the file (of ``layout``)
    names them.
    """
    name = file_key_name(layout)

    def shape(key: str) -> tuple[int, ...]:
        if key not in tensors:
            raise ValueError(f"{source}: missing key {name(key)!r}; the checkpoint is incomplete")
        return tuple(tensors[key].shape)

    _check_stages_agree(tensors, source, name)
    stage = "head.stages.0."
    num_proposals, hidden_dim = shape("proposals.features.weight")
    flat_roi = shape(stage + "instance_interaction.out_layer.weight")[1]
    resolution = math.isqrt(flat_roi // hidden_dim)
    if resolution**2 * hidden_dim != flat_roi:
        raise ValueError(f"{source}: out_layer input {flat_roi} is not S*S*{hidden_dim}")
    towers = {name: _indices(tensors, f"{stage}{name}.") for name in ("cls_tower", "reg_tower")}
    return replace(
        base or ModelConfig(),
        backbone_depth=infer_depth(tensors, source, layout),
        backbone_width=shape("backbone.conv1.weight")[0],
        fpn_dim=shape("fpn.lateral_convs.0.weight")[0],
        num_proposals=num_proposals,
        num_stages=len(_indices(tensors, "head.stages.")),
        hidden_dim=hidden_dim,
        num_classes=shape(stage + "class_logits.weight")[0],
        ffn_dim=shape(stage + "ffn_linear1.weight")[0],
        dynamic_dim=shape(stage + "instance_interaction.norm_in.weight")[0],
        pooler_resolution=resolution,
        # Each tower layer is (Linear, LayerNorm, ReLU): Linear indices are multiples of 3.
        num_cls_layers=sum(1 for i in towers["cls_tower"] if i % 3 == 0),
        num_reg_layers=sum(1 for i in towers["reg_tower"] if i % 3 == 0),
        use_self_attention=_in_some_stage(tensors, ("self_attn.", "attn_norm.")),
        use_dynamic_conv=_in_some_stage(tensors, ("instance_interaction.dynamic_layer.",)),
    )


def _in_some_stage(tensors: Mapping[str, Tensor], parts: tuple[str, ...]) -> bool:
    """Whether a key of some head stage starts with one of ``parts`` (``"self_attn."``): a
    part the model has, so that a checkpoint lacking some of its tensors is refused for those
    (missing keys), not for the rest (unexpected keys, as if the part did not belong)."""
    return any(
        key.startswith("head.stages.") and key.split(".", 3)[3].startswith(parts)
        for key in tensors
        if key.count(".") >= 3
    )


def _check_stages_agree(
    tensors: Mapping[str, Tensor], source: str, name: Callable[[str], str]
) -> None:
    """Every head stage's class logits have the same number of rows: the classes are read
    from the first stage, so a file whose stages disagree would otherwise blame the others."""
    keys = [f"head.stages.{i}.class_logits.weight" for i in _indices(tensors, "head.stages.")]
    rows = {key: tensors[key].shape[0] for key in keys if key in tensors}
    if len(set(rows.values())) > 1:
        shown = ", ".join(f"{name(key)}: {count}" for key, count in rows.items())
        raise ValueError(
            f"{source}: the head stages' class logits disagree on the number of classes "
            f"({shown} rows); the checkpoint is inconsistent"
        )


def file_key_name(layout: Layout) -> Callable[[str], str]:
    """The name a ``layout`` file gives to one of our keys (the key itself where the layout
    has no name for it), for messages about the user's file."""
    if layout == "ours":
        return lambda key: key

    def name(key: str) -> str:
        renamed, _, _ = rename_keys({key: None}, "ours", layout)
        return next(iter(renamed), key)

    return name


def infer_depth(tensors: Mapping[str, Tensor], source: str, layout: Layout = "ours") -> int:
    """ResNet depth from the block count of each ``backbone.layer{1..4}`` and the block type.

    Raises:
        ValueError: not the block counts of a supported depth, or not a plain ResNet (a ResNeXt
            or a wide ResNet); keys are named as the file (of ``layout``) names them.
    """
    _check_plain_resnet(tensors, source, file_key_name(layout))
    blocks = tuple(len(_indices(tensors, f"backbone.layer{k}.")) for k in range(1, 5))
    bottleneck = "backbone.layer1.0.conv3.weight" in tensors
    for depth, (block, counts) in ARCHITECTURES.items():
        if counts == blocks and (block is Bottleneck) == bottleneck:
            return depth
    kind = "bottleneck" if bottleneck else "basic"
    known = ", ".join(
        f"ResNet-{depth} {counts}"
        for depth, (block, counts) in ARCHITECTURES.items()
        if (block is Bottleneck) == bottleneck
    )
    raise ValueError(
        f"{source}: a ResNet with {blocks} {kind} blocks per stage, which no supported depth "
        f"has ({known}): the file lacks blocks or has extra ones (cut short, edited, or another "
        f"network); use the complete weights of a ResNet-{'/'.join(map(str, ARCHITECTURES))}"
    )


def _check_plain_resnet(
    tensors: Mapping[str, Tensor], source: str, name: Callable[[str], str]
) -> None:
    """Refuse a ResNeXt (grouped 3x3 convolutions) or a wide ResNet (blocks wider than the
    stem): they have a ResNet's block counts and key names, so they would otherwise be refused
    key by key as mis-shaped. A plain ResNet's first block is as wide as its stem, ungrouped."""
    keys = (
        "backbone.conv1.weight",
        "backbone.layer1.0.conv1.weight",
        "backbone.layer1.0.conv2.weight",
    )
    if any(key not in tensors for key in keys):
        return
    stem, conv1, conv2 = (tensors[key].shape for key in keys)
    if conv2[1] != conv1[0]:
        found = f"{name(keys[2])} of shape {tuple(conv2)} is grouped: a ResNeXt"
    elif conv1[0] != stem[0]:
        found = f"{name(keys[1])} has {conv1[0]} channels for a stem of {stem[0]}: a wide ResNet"
    else:
        return
    raise ValueError(
        f"{source}: {found}, which sparsercnn does not build; use the weights of a plain "
        f"ResNet-{'/'.join(map(str, sorted(ARCHITECTURES)))} (torchvision's resnet50, say)"
    )


def _indices(tensors: Mapping[str, Tensor], prefix: str) -> list[int]:
    """Sorted distinct integers found right after ``prefix`` in the keys."""
    found = set()
    for key in tensors:
        if key.startswith(prefix):
            head = key[len(prefix) :].split(".", 1)[0]
            if head.isdigit():
                found.add(int(head))
    return sorted(found)


def check_fits(
    tensors: Mapping[str, Tensor], model_cfg: ModelConfig, source: str, layout: Layout = "ours"
) -> dict[str, Tensor]:
    """Check ``tensors`` (our names) against the model ``model_cfg`` builds, allocating no
    weights; errors name the keys as the file (of ``layout``) names them.

    Returns:
        ``tensors`` with BatchNorm counters reconciled (:func:`reconcile_counters`).

    Raises:
        ValueError: missing, unexpected or mis-shaped keys, all listed.
    """
    with torch.device("meta"):
        model = build_model(model_cfg)
    fitted = reconcile_counters(tensors, set(model.state_dict()))
    meta = {k: v.to("meta") for k, v in fitted.items()}
    load_state_dict_strict(model, meta, source, key_name=file_key_name(layout))
    return fitted


def check_backbone(tensors: Mapping[str, Tensor], source: str, layout: Layout = "ours") -> int:
    """Check ResNet weights (our names, ``backbone.*``) strictly against the ResNet of their
    depth and width, allocating no weights. Returns the depth.

    Raises:
        ValueError: not a plain ResNet of a supported depth, or missing, unexpected or
            mis-shaped keys (in the file's names).
    """
    depth = infer_depth(tensors, source, layout)
    stem = tensors.get("backbone.conv1.weight")
    width = ModelConfig.backbone_width if stem is None else int(stem.shape[0])
    with torch.device("meta"):
        backbone = build_model(ModelConfig(backbone_depth=depth, backbone_width=width)).backbone
    own = set(backbone.state_dict())
    stripped = {key.removeprefix("backbone."): value.to("meta") for key, value in tensors.items()}
    name = file_key_name(layout)
    load_state_dict_strict(
        backbone,
        reconcile_counters(stripped, own),
        source,
        key_name=lambda key: name(f"backbone.{key}"),
    )
    return depth


def reconcile_counters(
    tensors: Mapping[str, Tensor], expected: Collection[str]
) -> dict[str, Tensor]:
    """Drop BatchNorm ``num_batches_tracked`` counters the target lacks, add zeros it needs.

    FrozenBN (official) has no counter; BatchNorm (mmdetection, ``bn_eval``) has one per layer.
    The counter only matters for BatchNorm with ``momentum=None``, which is never used here.
    """
    out = {k: v for k, v in tensors.items() if not k.endswith(COUNTER) or k in expected}
    added = [k for k in expected if k.endswith(COUNTER) and k not in out]
    for key in added:
        out[key] = torch.zeros((), dtype=torch.int64)
    dropped = len(tensors) - (len(out) - len(added))
    if dropped or added:
        logger.debug("num_batches_tracked: dropped %d, added %d", dropped, len(added))
    return out


def categories_for(num_classes: int, class_names: list[str] | None, source: str) -> CategoryMap:
    """The label map of a converted checkpoint: COCO when it is COCO, else ids ``1..K``."""
    coco = coco_categories()
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(
            f"{source}: the file names {len(class_names)} classes but the class logits have "
            f"{num_classes} rows, so the names (its meta's CLASSES or dataset_meta) are not those "
            f"of these weights: re-save the checkpoint with its {num_classes} class names there, "
            "or without its meta, and convert that"
        )
    if num_classes == len(coco) and class_names in (None, coco.names):
        return coco
    names = class_names or [f"class_{i}" for i in range(1, num_classes + 1)]
    logger.warning(
        "%s: %d classes that are not COCO's; assigning category ids 1..%d in stored order%s",
        source,
        num_classes,
        num_classes,
        "" if class_names else f", named class_1..class_{num_classes} (the file names none)",
    )
    return CategoryMap(list(range(1, num_classes + 1)), names)


def export_state_dict(tensors: Mapping[str, Tensor], layout: Layout) -> dict[str, Tensor]:
    """Rename our state dict to a reference layout (the inverse of the conversion).

    The official layout has no ``num_batches_tracked``; mmdetection has one per BatchNorm
    (zeros are added where ours has none). ``"torchvision"`` exports the backbone only.
    """
    renamed, _, unmatched = rename_keys(tensors, "ours", layout)
    if unmatched:
        raise ValueError(f"keys without a {layout} name: {listing(unmatched)}")
    if layout == "official":
        return {k: v for k, v in renamed.items() if not k.endswith(COUNTER)}
    counters = {
        k.removesuffix("running_mean") + COUNTER for k in renamed if k.endswith("running_mean")
    }
    return reconcile_counters(renamed, counters | set(renamed))


def backbone_state_dict(
    src: str | Path | FetchedFile, layout: Layout | None = None
) -> dict[str, Tensor]:
    """The ResNet weights of any supported file, in our names (``backbone.*``).

    ``src`` may be a torchvision ImageNet ResNet (``fc.*`` is dropped), a backbone file written
    by :func:`save_converted`, or a whole detector checkpoint of any layout.
    """
    return _backbone_of(read_checkpoint(src, layout))


def _backbone_of(checkpoint: RawCheckpoint) -> dict[str, Tensor]:
    """The ResNet tensors (our names) of ``checkpoint``: those under its layout's backbone
    prefix, checked strictly; the rest (FPN, a head of any detector) is left out."""
    source, layout = checkpoint.source, checkpoint.layout
    prefix = backbone_prefix(layout)
    resnet = {k: v for k, v in checkpoint.tensors.items() if k.startswith(prefix)}
    if not resnet:
        hint = _other_layout_hint(checkpoint.tensors, layout, source)
        raise ValueError(f"{source} holds no ResNet weights (no key starts with {prefix!r}){hint}")
    check_finite(resnet, source)
    backbone = to_our_names(resnet, layout, source)
    if len(resnet) < len(checkpoint.tensors):
        logger.info(
            "%s: took the ResNet (%d tensors), leaving out the other %d",
            source,
            len(resnet),
            len(checkpoint.tensors) - len(resnet),
        )
    check_backbone(backbone, source, layout)
    return backbone


def save_converted(
    src: str | Path | FetchedFile, dst: str | Path, layout: Layout | None = None
) -> Path:
    """Convert ``src`` and write it to ``dst`` (``.safetensors``).

    A detector checkpoint becomes our model file (weights, config, label map) readable with
    :func:`~sparsercnn.model_file.load_model_file`; a torchvision ResNet becomes a backbone file
    (``backbone.*`` tensors) for ``train --backbone-weights``.
    """
    dst = Path(dst)
    checkpoint = read_checkpoint(src, layout)
    if checkpoint.layout == "torchvision":
        tensors = {k: v.contiguous() for k, v in _backbone_of(checkpoint).items()}
        metadata = {
            "format": BACKBONE_FORMAT_NAME,
            "depth": str(infer_depth(tensors, checkpoint.source)),
        }
        return write_safetensors(dst, tensors, metadata)
    converted = convert_raw(checkpoint)
    model = build_model(converted.config)
    load_state_dict_strict(model, converted.state_dict, checkpoint.source)
    return save_model_file(dst, model, converted.config, converted.categories)
