"""Reference-layout checkpoints written from the spec's key tables (spec 11.2-11.5), not from ours.

The key names and shapes below are typed from the spec, independently of the package's
``key_tables``, so a wrong mapping there makes the tests fail. ``ReferenceArch`` describes the
architecture; ``reference_entries`` lists ``(official key, mmdetection key, shape)`` for every
tensor; ``make_pair`` builds state dicts from it (``meta`` tensors for full-size key checks, small
random tensors for numeric tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

COCO_NAMES = (
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant "
    "stop_sign parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe "
    "backpack umbrella handbag tie suitcase frisbee skis snowboard sports_ball kite baseball_bat "
    "baseball_glove skateboard surfboard tennis_racket bottle wine_glass cup fork knife spoon "
    "bowl banana apple sandwich orange broccoli carrot hot_dog pizza donut cake chair couch "
    "potted_plant bed dining_table toilet tv laptop mouse remote keyboard cell_phone microwave "
    "oven toaster sink refrigerator book clock vase scissors teddy_bear hair_drier toothbrush"
)
COCO_CLASSES = tuple(name.replace("_", " ") for name in COCO_NAMES.split())


@dataclass(frozen=True)
class ReferenceArch:
    blocks: tuple[int, int, int, int] = (3, 4, 6, 3)
    bottleneck: bool = True
    num_proposals: int = 100
    hidden: int = 256
    num_classes: int = 80
    ffn: int = 2048
    dynamic: int = 64
    resolution: int = 7
    num_stages: int = 6


R50_100 = ReferenceArch()
R101_300 = ReferenceArch(blocks=(3, 4, 23, 3), num_proposals=300)
# Smallest architecture our model can express: ResNet-18 and a narrow 2-stage head.
TINY = ReferenceArch(
    blocks=(2, 2, 2, 2),
    bottleneck=False,
    num_proposals=8,
    hidden=32,
    ffn=64,
    dynamic=8,
    num_stages=2,
)

Entry = tuple[str, str, tuple[int, ...]]


def backbone_entries(arch: ReferenceArch) -> list[Entry]:
    """Spec 11.2: official ``backbone.bottom_up.*`` vs mmdetection ``backbone.*`` keys."""
    norms = ("weight", "bias", "running_mean", "running_var")
    entries: list[Entry] = [
        ("backbone.bottom_up.stem.conv1.weight", "backbone.conv1.weight", (64, 3, 7, 7))
    ]
    entries += [
        (f"backbone.bottom_up.stem.conv1.norm.{n}", f"backbone.bn1.{n}", (64,)) for n in norms
    ]
    in_ch = 64
    for k in range(2, 6):
        mid = 64 * 2 ** (k - 2)
        out = 4 * mid if arch.bottleneck else mid
        for i in range(arch.blocks[k - 2]):
            off, mm = f"backbone.bottom_up.res{k}.{i}", f"backbone.layer{k - 1}.{i}"
            if arch.bottleneck:
                convs = [(mid, in_ch, 1), (mid, mid, 3), (out, mid, 1)]
            else:
                convs = [(mid, in_ch, 3), (mid, mid, 3)]
            for j, (o, c, s) in enumerate(convs, start=1):
                entries.append((f"{off}.conv{j}.weight", f"{mm}.conv{j}.weight", (o, c, s, s)))
                entries += [(f"{off}.conv{j}.norm.{n}", f"{mm}.bn{j}.{n}", (o,)) for n in norms]
            stride = 2 if k > 2 and i == 0 else 1
            if in_ch != out or stride != 1:
                entries.append(
                    (f"{off}.shortcut.weight", f"{mm}.downsample.0.weight", (out, in_ch, 1, 1))
                )
                entries += [
                    (f"{off}.shortcut.norm.{n}", f"{mm}.downsample.1.{n}", (out,)) for n in norms
                ]
            in_ch = out
    return entries


def reference_entries(arch: ReferenceArch) -> list[Entry]:
    """Every tensor of a Sparse R-CNN checkpoint: ``(official key, mmdetection key, shape)``."""
    d, n = arch.hidden, arch.num_proposals
    entries = backbone_entries(arch)
    c2 = 256 if arch.bottleneck else 64
    for level, index in zip(range(2, 6), range(4), strict=True):
        cin = c2 * 2**index
        for p, shape in (("weight", (d, cin, 1, 1)), ("bias", (d,))):
            entries.append(
                (f"backbone.fpn_lateral{level}.{p}", f"neck.lateral_convs.{index}.conv.{p}", shape)
            )
        for p, shape in (("weight", (d, d, 3, 3)), ("bias", (d,))):
            entries.append(
                (f"backbone.fpn_output{level}.{p}", f"neck.fpn_convs.{index}.conv.{p}", shape)
            )
    entries += [
        ("init_proposal_boxes.weight", "rpn_head.init_proposal_bboxes.weight", (n, 4)),
        ("init_proposal_features.weight", "rpn_head.init_proposal_features.weight", (n, d)),
    ]
    dyn, dd, flat = 2 * d * arch.dynamic, arch.dynamic, d * arch.resolution**2
    ii, ic = "inst_interact", "instance_interactive_conv"
    head: list[Entry] = [
        ("self_attn.in_proj_weight", "attention.attn.in_proj_weight", (3 * d, d)),
        ("self_attn.in_proj_bias", "attention.attn.in_proj_bias", (3 * d,)),
        ("self_attn.out_proj.weight", "attention.attn.out_proj.weight", (d, d)),
        ("self_attn.out_proj.bias", "attention.attn.out_proj.bias", (d,)),
        ("norm1.weight", "attention_norm.weight", (d,)),
        ("norm1.bias", "attention_norm.bias", (d,)),
        (f"{ii}.dynamic_layer.weight", f"{ic}.dynamic_layer.weight", (dyn, d)),
        (f"{ii}.dynamic_layer.bias", f"{ic}.dynamic_layer.bias", (dyn,)),
        (f"{ii}.norm1.weight", f"{ic}.norm_in.weight", (dd,)),
        (f"{ii}.norm1.bias", f"{ic}.norm_in.bias", (dd,)),
        (f"{ii}.norm2.weight", f"{ic}.norm_out.weight", (d,)),
        (f"{ii}.norm2.bias", f"{ic}.norm_out.bias", (d,)),
        (f"{ii}.out_layer.weight", f"{ic}.fc_layer.weight", (d, flat)),
        (f"{ii}.out_layer.bias", f"{ic}.fc_layer.bias", (d,)),
        (f"{ii}.norm3.weight", f"{ic}.fc_norm.weight", (d,)),
        (f"{ii}.norm3.bias", f"{ic}.fc_norm.bias", (d,)),
        ("norm2.weight", "instance_interactive_conv_norm.weight", (d,)),
        ("norm2.bias", "instance_interactive_conv_norm.bias", (d,)),
        ("linear1.weight", "ffn.layers.0.0.weight", (arch.ffn, d)),
        ("linear1.bias", "ffn.layers.0.0.bias", (arch.ffn,)),
        ("linear2.weight", "ffn.layers.1.weight", (d, arch.ffn)),
        ("linear2.bias", "ffn.layers.1.bias", (d,)),
        ("norm3.weight", "ffn_norm.weight", (d,)),
        ("norm3.bias", "ffn_norm.bias", (d,)),
        ("cls_module.0.weight", "cls_fcs.0.weight", (d, d)),
        ("cls_module.1.weight", "cls_fcs.1.weight", (d,)),
        ("cls_module.1.bias", "cls_fcs.1.bias", (d,)),
        ("class_logits.weight", "fc_cls.weight", (arch.num_classes, d)),
        ("class_logits.bias", "fc_cls.bias", (arch.num_classes,)),
        ("bboxes_delta.weight", "fc_reg.weight", (4, d)),
        ("bboxes_delta.bias", "fc_reg.bias", (4,)),
    ]  # fmt: skip
    for t in (0, 3, 6):
        head.append((f"reg_module.{t}.weight", f"reg_fcs.{t}.weight", (d, d)))
        for p in ("weight", "bias"):
            head.append((f"reg_module.{t + 1}.{p}", f"reg_fcs.{t + 1}.{p}", (d,)))
    for s in range(arch.num_stages):
        entries += [
            (f"head.head_series.{s}.{a}", f"roi_head.bbox_head.{s}.{b}", shape)
            for a, b, shape in head
        ]
    return entries


def random_tensor(key: str, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """Plausible values, so that a forward pass stays numerically tame."""
    if "init_proposal_boxes" in key:
        centre = torch.tensor([0.5, 0.5, 1.0, 1.0]).expand(shape[0], 4)
        return centre + 0.05 * torch.randn(shape, generator=generator)
    if key.endswith("running_var"):
        return 0.5 + torch.rand(shape, generator=generator)
    if len(shape) == 1 and key.endswith("weight"):
        return 1.0 + 0.1 * torch.randn(shape, generator=generator)
    if len(shape) == 1:
        return 0.1 * torch.randn(shape, generator=generator)
    if len(shape) == 4:  # He init keeps the ResNet's activations bounded
        return torch.randn(shape, generator=generator) * math.sqrt(2.0 / math.prod(shape[1:]))
    if "init_proposal_features" in key:
        return torch.randn(shape, generator=generator)
    return torch.randn(shape, generator=generator) / math.sqrt(shape[1])


@dataclass
class ReferencePair:
    """The same tensors under official and mmdetection names."""

    official: dict[str, Tensor]
    mmdet: dict[str, Tensor]


def make_pair(arch: ReferenceArch, device: str = "cpu", seed: int = 0) -> ReferencePair:
    generator = torch.Generator().manual_seed(seed)
    official: dict[str, Tensor] = {}
    mmdet: dict[str, Tensor] = {}
    for off, mm, shape in reference_entries(arch):
        if device == "meta":
            tensor = torch.empty(shape, device="meta")
        else:
            tensor = random_tensor(off, shape, generator)
        official[off] = tensor
        mmdet[mm] = tensor
        if mm.endswith("running_var"):
            # mmdetection's BatchNorm counters: 53 of them in an R50 (spec 11.1).
            counter = torch.tensor(1000 + len(mmdet), dtype=torch.int64)
            mmdet[mm.removesuffix("running_var") + "num_batches_tracked"] = counter
    return ReferencePair(official, mmdet)


def save_official(path: Path, tensors: dict[str, Tensor], wrap: bool = True) -> Path:
    torch.save({"model": tensors} if wrap else tensors, path)
    return path


def save_mmdet(path: Path, tensors: dict[str, Tensor], classes: Any = COCO_CLASSES) -> Path:
    meta = {"CLASSES": classes, "mmdet_version": "2.9.0", "config": "model = dict(...)"}
    torch.save({"meta": meta, "state_dict": tensors}, path)
    return path
