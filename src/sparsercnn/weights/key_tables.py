"""Declarative state-dict key tables between the reference layouts and ours (spec 11.2-11.5).

Each :class:`KeyRow` names one family of tensors in every layout: ours, the official detectron2
code, mmdetection v2/v3 (identical key names) and torchvision's ResNet. Patterns contain
placeholders (``{block}``, ``{stage}``, ``{param}``, ...) that match one key component each and
are copied verbatim; where a number changes between layouts (``res{k}`` vs ``layer{k-1}``,
``fpn_lateral{2..5}`` vs ``lateral_convs.{0..3}``) the rows are generated explicitly instead.
:func:`rename_keys` applies a table in either direction. Renaming is all a conversion does: no
transposes or reshapes are ever needed (spec 11.6).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

Layout = Literal["official", "mmdet", "torchvision", "ours"]
LAYOUTS: tuple[Layout, ...] = ("official", "mmdet", "torchvision", "ours")
T = TypeVar("T")

# What each placeholder may match: one key component, restricted to what the layouts contain.
PLACEHOLDERS: dict[str, str] = {
    "block": r"\d+",
    "stage": r"\d+",
    "layer": r"\d+",
    "conv": r"\d+",
    "norm": r"weight|bias|running_mean|running_var|num_batches_tracked",
    "param": r"weight|bias",
}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class KeyRow:
    """One tensor family in every layout; ``None`` means the layout does not have it.

    A row whose ``ours`` is ``None`` lists source keys that are deliberately dropped.
    """

    ours: str | None
    official: str | None
    mmdet: str | None
    torchvision: str | None = None

    def pattern(self, layout: Layout) -> str | None:
        return self.ours if layout == "ours" else getattr(self, layout)


# Inside one residual block: (ours = mmdetection = torchvision, official).
BLOCK_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("conv{conv}.weight", "conv{conv}.weight"),
    ("bn{conv}.{norm}", "conv{conv}.norm.{norm}"),
    ("downsample.0.weight", "shortcut.weight"),
    ("downsample.1.{norm}", "shortcut.norm.{norm}"),
)


def _backbone_rows() -> list[KeyRow]:
    """ResNet (spec 11.2): ours = mmdetection's ``backbone.*`` = torchvision's keys."""
    rows = [
        KeyRow(
            "backbone.conv1.weight",
            "backbone.bottom_up.stem.conv1.weight",
            "backbone.conv1.weight",
            "conv1.weight",
        ),
        KeyRow(
            "backbone.bn1.{norm}",
            "backbone.bottom_up.stem.conv1.norm.{norm}",
            "backbone.bn1.{norm}",
            "bn1.{norm}",
        ),
    ]
    for layer in range(1, 5):
        block = f"layer{layer}.{{block}}."
        # detectron2 names the stages after their C level: res2..res5 = layer1..layer4.
        official = f"backbone.bottom_up.res{layer + 1}.{{block}}."
        for ours, theirs in BLOCK_SUFFIXES:
            name = "backbone." + block + ours
            rows.append(KeyRow(name, official + theirs, name, block + ours))
    rows.append(KeyRow(None, None, None, "fc.{param}"))  # the ImageNet classifier
    return rows


def _fpn_rows() -> list[KeyRow]:
    """FPN (spec 11.3); index 0 is level 2 (stride 4) in ours and mmdetection."""
    rows = []
    for index in range(4):
        level = index + 2
        rows += [
            KeyRow(
                f"fpn.lateral_convs.{index}.{{param}}",
                f"backbone.fpn_lateral{level}.{{param}}",
                f"neck.lateral_convs.{index}.conv.{{param}}",
            ),
            KeyRow(
                f"fpn.output_convs.{index}.{{param}}",
                f"backbone.fpn_output{level}.{{param}}",
                f"neck.fpn_convs.{index}.conv.{{param}}",
            ),
        ]
    return rows


PROPOSAL_ROWS: tuple[KeyRow, ...] = (
    KeyRow(
        "proposals.boxes.weight",
        "init_proposal_boxes.weight",
        "rpn_head.init_proposal_bboxes.weight",
    ),
    KeyRow(
        "proposals.features.weight",
        "init_proposal_features.weight",
        "rpn_head.init_proposal_features.weight",
    ),
)

# Suffixes of one head stage (spec 11.5): (ours, official, mmdetection).
HEAD_SUFFIXES: tuple[tuple[str, str, str], ...] = (
    ("self_attn.in_proj_{param}", "self_attn.in_proj_{param}", "attention.attn.in_proj_{param}"),
    ("self_attn.out_proj.{param}", "self_attn.out_proj.{param}", "attention.attn.out_proj.{param}"),
    ("attn_norm.{param}", "norm1.{param}", "attention_norm.{param}"),
    (
        "instance_interaction.dynamic_layer.{param}",
        "inst_interact.dynamic_layer.{param}",
        "instance_interactive_conv.dynamic_layer.{param}",
    ),
    (
        "instance_interaction.norm_in.{param}",
        "inst_interact.norm1.{param}",
        "instance_interactive_conv.norm_in.{param}",
    ),
    (
        "instance_interaction.norm_out.{param}",
        "inst_interact.norm2.{param}",
        "instance_interactive_conv.norm_out.{param}",
    ),
    (
        "instance_interaction.out_layer.{param}",
        "inst_interact.out_layer.{param}",
        "instance_interactive_conv.fc_layer.{param}",
    ),
    (
        "instance_interaction.out_norm.{param}",
        "inst_interact.norm3.{param}",
        "instance_interactive_conv.fc_norm.{param}",
    ),
    ("interaction_norm.{param}", "norm2.{param}", "instance_interactive_conv_norm.{param}"),
    ("ffn_linear1.{param}", "linear1.{param}", "ffn.layers.0.0.{param}"),
    ("ffn_linear2.{param}", "linear2.{param}", "ffn.layers.1.{param}"),
    ("ffn_norm.{param}", "norm3.{param}", "ffn_norm.{param}"),
    ("cls_tower.{layer}.{param}", "cls_module.{layer}.{param}", "cls_fcs.{layer}.{param}"),
    ("reg_tower.{layer}.{param}", "reg_module.{layer}.{param}", "reg_fcs.{layer}.{param}"),
    ("class_logits.{param}", "class_logits.{param}", "fc_cls.{param}"),
    ("box_deltas.{param}", "bboxes_delta.{param}", "fc_reg.{param}"),
)
HEAD_PREFIXES = ("head.stages.{stage}.", "head.head_series.{stage}.", "roi_head.bbox_head.{stage}.")


def _head_rows() -> list[KeyRow]:
    ours, official, mmdet = HEAD_PREFIXES
    return [KeyRow(ours + a, official + b, mmdet + c) for a, b, c in HEAD_SUFFIXES]


KEY_TABLE: tuple[KeyRow, ...] = (*_backbone_rows(), *_fpn_rows(), *PROPOSAL_ROWS, *_head_rows())


def backbone_prefix(layout: Layout) -> str:
    """What every ResNet key of ``layout`` starts with: ``backbone.bottom_up.`` (official),
    ``backbone.`` (mmdetection, ours), nothing (torchvision, whose file is the ResNet alone)."""
    patterns = [row.pattern(layout) for row in _backbone_rows()]
    # A prefix of characters, not of path components: the keys are dotted names.
    return os.path.commonprefix([p for p in patterns if p is not None])  # noqa: RUF071


@dataclass(frozen=True)
class KeyRule:
    """One compiled row: a source-key regex and the target pattern (``None``: drop the key)."""

    source: re.Pattern[str]
    target: str | None


def _compile(pattern: str) -> re.Pattern[str]:
    parts = _PLACEHOLDER.split(pattern)
    # split() alternates literal text and placeholder names.
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>{PLACEHOLDERS[part]})"
        for i, part in enumerate(parts)
    )
    return re.compile(regex)


def rules(source: Layout, target: Layout) -> list[KeyRule]:
    """The compiled table from layout ``source`` to layout ``target``.

    Rows the source layout lacks are skipped; rows the target lacks map to ``None`` (dropped).
    """
    compiled = []
    for row in KEY_TABLE:
        pattern = row.pattern(source)
        if pattern is not None:
            compiled.append(KeyRule(_compile(pattern), row.pattern(target)))
    return compiled


def rename_keys(
    tensors: Mapping[str, T], source: Layout, target: Layout
) -> tuple[dict[str, T], list[str], list[str]]:
    """Rename every key of ``tensors`` from layout ``source`` to layout ``target``.

    Returns:
        ``(renamed, dropped, unmatched)``: the renamed mapping (insertion order kept), the source
        keys the table drops on purpose (e.g. torchvision's ``fc.*``, or tensors the target
        layout has no place for) and the keys no row matches (the caller decides whether that is
        an error).

    Raises:
        ValueError: two source keys map to the same target key.
    """
    if source == target:
        return dict(tensors), [], []
    table = rules(source, target)
    renamed: dict[str, T] = {}
    origin: dict[str, str] = {}
    dropped: list[str] = []
    unmatched: list[str] = []
    for key, value in tensors.items():
        for rule in table:
            match = rule.source.fullmatch(key)
            if match is None:
                continue
            if rule.target is None:
                dropped.append(key)
            else:
                new_key = rule.target.format(**match.groupdict())
                if new_key in renamed:
                    raise ValueError(
                        f"keys {origin[new_key]!r} and {key!r} both map to {new_key!r}"
                    )
                renamed[new_key] = value
                origin[new_key] = key
            break
        else:
            unmatched.append(key)
    return renamed, dropped, unmatched
