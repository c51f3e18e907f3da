"""The released COCO models (spec 10.1, 10.2): where to download them, their key layout and AP.

Plain data with no heavy imports, so that the CLI can list the names in its help text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

OFFICIAL_URL = "https://github.com/PeizeSun/SparseR-CNN/releases/download/v0.1/{}"
MMDET_URL = "https://download.openmmlab.com/mmdetection/v2.0/sparse_rcnn/{0}/{0}_{1}.pth"


@dataclass(frozen=True)
class PublishedCheckpoint:
    """A released COCO model (spec 10.1, 10.2).

    Attributes:
        url: where to download it.
        layout: its key layout.
        box_ap: COCO val2017 box AP its authors report.
        sha256: expected checksum or prefix, when published (mmdetection: in the file name).
    """

    url: str
    layout: Literal["official", "mmdet"]
    box_ap: float
    sha256: str | None = None


def _mmdet(config: str, stamp_and_hash: str, box_ap: float) -> PublishedCheckpoint:
    return PublishedCheckpoint(MMDET_URL.format(config, stamp_and_hash), "mmdet", box_ap)


PUBLISHED_CHECKPOINTS: dict[str, PublishedCheckpoint] = {
    "r50_100pro_3x": PublishedCheckpoint(
        OFFICIAL_URL.format("r50_100pro_3x_model.pth"), "official", 42.8
    ),
    "r50_300pro_3x": PublishedCheckpoint(
        OFFICIAL_URL.format("r50_300pro_3x_model.pth"), "official", 45.0
    ),
    "r101_100pro_3x": PublishedCheckpoint(
        OFFICIAL_URL.format("r101_100pro_3x_model.pth"), "official", 44.1
    ),
    # File name inferred from the pattern of the other three (spec 10.1).
    "r101_300pro_3x": PublishedCheckpoint(
        OFFICIAL_URL.format("r101_300pro_3x_model.pth"), "official", 46.4
    ),
    "mmdet_r50_100pro_1x": _mmdet("sparse_rcnn_r50_fpn_1x_coco", "20201222_214453-dc79b137", 37.9),
    "mmdet_r50_100pro_3x": _mmdet(
        "sparse_rcnn_r50_fpn_mstrain_480-800_3x_coco", "20201218_154234-7bc5c054", 42.8
    ),
    "mmdet_r50_300pro_3x": _mmdet(
        "sparse_rcnn_r50_fpn_300_proposals_crop_mstrain_480-800_3x_coco",
        "20201223_024605-9fe92701",
        45.0,
    ),
    "mmdet_r101_100pro_3x": _mmdet(
        "sparse_rcnn_r101_fpn_mstrain_480-800_3x_coco", "20201223_121552-6c46c9d6", 44.2
    ),
    "mmdet_r101_300pro_3x": _mmdet(
        "sparse_rcnn_r101_fpn_300_proposals_crop_mstrain_480-800_3x_coco",
        "20201223_023452-c23c3564",
        46.2,
    ),
}


def missing_checkpoint_advice(path: Path) -> str:
    """What to do about a checkpoint file ``path`` that is not there, to follow "... does not
    exist" (starting "; "): where its name is that of a published checkpoint's download
    (``r50_100pro_3x_model.pth``, as the README's table lists them), pass the published name or
    download it; a bare word is most likely a published name mistyped, so the names are listed;
    anything else is a path to check."""
    for key, published in PUBLISHED_CHECKPOINTS.items():
        if published.url.rsplit("/", 1)[-1] == path.name:
            return (
                f"; it is the download of the published checkpoint {key}: pass the name {key} "
                f"instead (downloaded once, then cached), or download it from {published.url}"
            )
    if not path.suffix and len(path.parts) == 1:
        return f"; nor is it a published name ({', '.join(PUBLISHED_CHECKPOINTS)})"
    return (
        "; check the path, or give a published name instead (`sparsercnn convert --help` "
        "lists them)"
    )
