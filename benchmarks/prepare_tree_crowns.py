"""A real dataset for the recipe benchmark: tree crowns in aerial photos, from the DeepForest wheel.

The DeepForest package (Weinstein et al., MIT licence) ships four hand-annotated RGB images from
NEON's airborne surveys inside its wheel on PyPI: two crops of a Yellowstone survey
(2299x2472 px with 574 crowns, 1249x1035 px with 279) and two 400x400 plots (OSBS_029, Florida,
61 crowns; SOAP_061, California, 37 crowns labelled Alive or Dead). The annotations are Pascal
VOC XML files beside the images. This script reads both from the wheel (downloaded from PyPI by
``pip download`` and checked against its SHA-256, or given with ``--wheel``), cuts the two large
crops into a grid of tiles of about 400 px without overlap, and writes a COCO dataset that
``sparsercnn train`` and ``bench_recipes.py --datasets tree_crowns=DIR`` read:

- ``--split tiles`` (default, as one splits one's own annotated images at random): every fourth
  tile of each Yellowstone crop is a ``val`` image (13 of 54), the rest and the two plots are
  ``train`` images (43);
- ``--split area``: ``val`` is the smaller Yellowstone crop (12 tiles; a dense forest cut by a
  road) and ``train`` the larger one (42 tiles, trees scattered over meadows) and the two plots
  (44): a held-out area of another character than the training images.

One class, ``tree`` (SOAP's Alive and Dead are both trees). A crown cut by a tile edge keeps
its clipped box when at least half of its area lies in the tile; a smaller piece becomes an
``iscrowd`` region, which is neither a training target nor counted by the COCO evaluation.

Usage: python benchmarks/prepare_tree_crowns.py --output DIR [--split tiles|area] [--wheel PATH]
       [--tile 400]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import math
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from sparsercnn.cli.common import user_path

WHEEL_NAME = "deepforest-2.1.0-py3-none-any.whl"
WHEEL_SHA256 = "8c2798d8e9be7f0004b194fe207b76c1d9fff6e711b3db67b9508dcd5d00ae54"
DATA = "deepforest/data/"
# The annotation files (VOC XML, in the wheel's data folder): two large crops, two plots.
LARGE_CROPS = (
    "2019_YELL_2_528000_4978000_image_crop2.xml",
    "2019_YELL_2_541000_4977000_image_crop.xml",
)
PLOTS = ("OSBS_029.xml", "SOAP_061.xml")
SPLIT_CHOICES = ("tiles", "area")
# With --split tiles, every this many-th tile of a large crop (the last of each run) is a val image.
VAL_EVERY = 4
CATEGORY = {"id": 1, "name": "tree"}
# The least fraction of a crown's box inside a tile for it to stay a box there.
MIN_VISIBLE = 0.5
VOC_KEYS = ("xmin", "ymin", "xmax", "ymax")


@dataclass(frozen=True)
class Crown:
    """One annotated crown: ``box`` is ``(x0, y0, x1, y1)`` in pixels of the source image."""

    box: tuple[float, float, float, float]

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)


def fetch_wheel(cache: Path) -> Path:
    """DeepForest's wheel from PyPI (``pip download``) into ``cache``, once; its SHA-256 checked.

    Raises:
        SystemExit: pip could not download it, or the file is not the pinned one.
    """
    wheel = cache / WHEEL_NAME
    if not wheel.exists():
        version = WHEEL_NAME.split("-")[1]
        command = [sys.executable, "-m", "pip", "download", f"deepforest=={version}"]
        command += ["--no-deps", "--only-binary", ":all:", "--dest", str(cache)]
        if subprocess.run(command).returncode != 0 or not wheel.exists():
            raise SystemExit(
                f"could not download {WHEEL_NAME} from PyPI; download it elsewhere and pass --wheel"
            )
    return check_wheel(wheel)


def check_wheel(wheel: Path) -> Path:
    """``wheel`` if its SHA-256 is the pinned one.

    Raises:
        SystemExit: it is another file (another version, or damaged).
    """
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(
            f"{wheel}: SHA-256 {digest} is not that of {WHEEL_NAME} ({WHEEL_SHA256}); "
            "pass the wheel pip downloads for deepforest==2.1.0"
        )
    return wheel


def read_crowns(xml_text: str) -> tuple[str, tuple[int, int], list[Crown]]:
    """The image file name, its ``(width, height)`` and its crowns from one VOC annotation."""
    root = ET.fromstring(xml_text)
    filename = root.findtext("filename", "")
    width, height = (int(root.findtext(f"size/{key}", "0")) for key in ("width", "height"))
    crowns = []
    for obj in root.iter("object"):
        x0, y0, x1, y1 = (float(obj.findtext(f"bndbox/{key}", "nan")) for key in VOC_KEYS)
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise SystemExit(f"{filename}: a box {[x0, y0, x1, y1]} outside {width}x{height}")
        crowns.append(Crown((x0, y0, x1, y1)))
    return filename, (width, height), crowns


def tile_grid(width: int, height: int, tile: int) -> list[tuple[int, int, int, int]]:
    """``(x0, y0, x1, y1)`` of the tiles that cover the image without overlap, as many as a
    ``tile``-px grid needs, of equal size (to a pixel), row by row."""
    xs = _cuts(width, math.ceil(width / tile))
    ys = _cuts(height, math.ceil(height / tile))
    return [(x0, y0, x1, y1) for y0, y1 in ys for x0, x1 in xs]


def _cuts(length: int, parts: int) -> list[tuple[int, int]]:
    edges = [round(length * i / parts) for i in range(parts + 1)]
    return list(itertools.pairwise(edges))


def tile_annotations(
    crowns: list[Crown], tile: tuple[int, int, int, int]
) -> list[tuple[list[float], bool]]:
    """The crowns that reach into ``tile``: each as a COCO ``[x, y, w, h]`` in the tile's pixels
    (clipped to it) and whether it is a crowd region (less than :data:`MIN_VISIBLE` inside)."""
    tx0, ty0, tx1, ty1 = tile
    annotations = []
    for crown in crowns:
        x0, y0, x1, y1 = crown.box
        cx0, cy0, cx1, cy1 = max(x0, tx0), max(y0, ty0), min(x1, tx1), min(y1, ty1)
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        visible = (cx1 - cx0) * (cy1 - cy0) / crown.area
        bbox = [cx0 - tx0, cy0 - ty0, cx1 - cx0, cy1 - cy0]
        annotations.append((bbox, visible < MIN_VISIBLE))
    return annotations


def tile_split(xml_name: str, index: int, split: str) -> str:
    """``"train"`` or ``"val"``: where tile ``index`` of the image annotated in ``xml_name`` goes
    under the ``split`` rule (:data:`SPLIT_CHOICES`, see the module's docstring)."""
    if xml_name in PLOTS:
        return "train"
    if split == "area":
        return "val" if xml_name == LARGE_CROPS[1] else "train"
    return "val" if index % VAL_EVERY == VAL_EVERY - 1 else "train"


def write_dataset(
    wheel: Path, output: Path, tile: int, split: str = "tiles"
) -> dict[str, dict[str, int]]:
    """Tile the wheel's annotated images into a COCO dataset under ``output`` (written to a
    temporary folder beside it and renamed, so ``output`` is complete or absent).

    Returns:
        Per split: images, boxes and crowd regions written.

    Raises:
        SystemExit: ``output`` exists (nothing is overwritten).
    """
    if output.exists():
        raise SystemExit(f"{output} exists; choose a new --output (nothing was overwritten)")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    cocos = {name: _empty_coco() for name in ("train", "val")}
    try:
        with zipfile.ZipFile(wheel) as archive:
            for xml_name in (*LARGE_CROPS, *PLOTS):
                filename, size, crowns = read_crowns(archive.read(DATA + xml_name).decode())
                image = Image.open(io.BytesIO(archive.read(DATA + filename))).convert("RGB")
                if image.size != size:
                    raise SystemExit(f"{filename}: {image.size} pixels, its XML says {size}")
                for index, window in enumerate(tile_grid(*image.size, tile)):
                    name = tile_split(xml_name, index, split)
                    file_name = f"{Path(filename).stem}_{index:02d}.png"
                    (tmp / name).mkdir(exist_ok=True)
                    image.crop(window).save(tmp / name / file_name)
                    _add_tile(cocos[name], file_name, window, crowns)
        for name, coco in cocos.items():
            (tmp / f"{name}.json").write_text(json.dumps(coco))
        tmp.rename(output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {name: _counts(coco) for name, coco in cocos.items()}


def _empty_coco() -> dict[str, list[dict[str, object]]]:
    return {"images": [], "annotations": [], "categories": [CATEGORY]}


def _add_tile(
    coco: dict[str, list[dict[str, object]]],
    file_name: str,
    window: tuple[int, int, int, int],
    crowns: list[Crown],
) -> None:
    """Add the tile ``window`` (``x0, y0, x1, y1`` in its source image) and its boxes."""
    x0, y0, x1, y1 = window
    image_id = len(coco["images"]) + 1
    coco["images"].append(
        {"id": image_id, "file_name": file_name, "width": x1 - x0, "height": y1 - y0}
    )
    for bbox, crowd in tile_annotations(crowns, window):
        coco["annotations"].append(
            {
                "id": len(coco["annotations"]) + 1,
                "image_id": image_id,
                "category_id": CATEGORY["id"],
                "bbox": bbox,
                "area": bbox[2] * bbox[3],
                "iscrowd": int(crowd),
            }
        )


def _counts(coco: dict[str, list[dict[str, object]]]) -> dict[str, int]:
    crowd = sum(1 for ann in coco["annotations"] if ann["iscrowd"])
    return {
        "images": len(coco["images"]),
        "boxes": len(coco["annotations"]) - crowd,
        "crowd regions": crowd,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output", type=user_path, required=True, help="a new folder for the dataset"
    )
    parser.add_argument(
        "--wheel",
        type=user_path,
        help=f"{WHEEL_NAME} (default: download it from PyPI into --cache)",
    )
    parser.add_argument(
        "--cache", type=user_path, default=Path.home() / ".cache" / "sparsercnn" / "wheels"
    )
    parser.add_argument("--tile", type=int, default=400, help="the tile grid's pitch in pixels")
    parser.add_argument(
        "--split",
        choices=SPLIT_CHOICES,
        default="tiles",
        help="val: every fourth tile of the large crops, or the smaller crop (a held-out area)",
    )
    args = parser.parse_args()
    if args.tile < 32:
        raise SystemExit(f"--tile {args.tile}: use at least 32 px")
    if args.wheel is not None:
        wheel = check_wheel(args.wheel)
    else:
        args.cache.mkdir(parents=True, exist_ok=True)
        wheel = fetch_wheel(args.cache)
    for split, counts in write_dataset(wheel, args.output, args.tile, args.split).items():
        print(f"{split}: " + ", ".join(f"{value} {key}" for key, value in counts.items()))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
