"""``--preset auto`` against the fixed presets: the same wall-clock budget on synthetic datasets of
different character, from scratch, no flags but the data.

For every dataset (:data:`sparsercnn.data.synthetic_styles.DATASET_STYLES`) and recipe, runs
``sparsercnn train --preset RECIPE --time-budget MINUTES`` in a fresh process on the dataset's
train split with its val split, and reads the final COCO evaluation from the run's
``metrics.jsonl``. Prints a markdown table of AP / APs per dataset and recipe, the input size and
steps each run got, and auto's gap to the best fixed preset (the issue's target: >= -0.02), and
appends it to BENCHMARKS.md with ``--write``. With ``--seeds``, every run is repeated with each
training seed (``--set train.seed=N``) and the summary compares mean APs (with their range): one run
per recipe cannot tell a better recipe from a luckier trajectory. With ``--reuse``, a run folder
already under ``--root`` (``runs/DATASET-RECIPE-MINUTESmin[-seedN]``) is read instead of trained,
so runs made by several invocations form one table. A dataset given as ``NAME=DIR`` is read from
``DIR`` (``train.json``, ``train/``, ``val.json``, ``val/``, as ``prepare_tree_crowns.py`` writes
real data) instead of generated. ``--set KEY=VALUE ...`` changes every run's config (after the
recipe, as ``sparsercnn train --set`` does) and needs ``--tag NAME``, which names the variant in
the table (``auto+NAME``) and in the run folders (``DATASET-RECIPE+NAME-...``).

Usage: python benchmarks/bench_recipes.py [--datasets small_objects crowded NAME=DIR ...]
       [--recipes auto small medium] [--minutes 10] [--seeds 1 2] [--root runs/bench_recipes]
       [--set KEY=VALUE ... --tag NAME] [--reuse] [--write]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sparsercnn.benchmarking import machine_kind
from sparsercnn.cli.common import int_at_least, positive_number, user_path
from sparsercnn.config import Config
from sparsercnn.data.demo_dataset import DemoDatasetPaths, generate_demo_dataset
from sparsercnn.data.synthetic_styles import DATASET_STYLES, generate_styled_dataset

REPO = Path(__file__).resolve().parents[1]


@dataclass
class RunResult:
    dataset: str
    recipe: str
    ap: float
    ap_small: float | None  # None (or -1) when the validation set has no small box
    ap50: float
    steps: int
    input_size: str  # short side / long-side cap
    num_proposals: int
    model: str
    train_images_per_s: float
    minutes: float | None  # None: read back with --reuse (not timed here)
    seed: int | None = None  # None: the config's own

    def row(self) -> str:
        small = "-" if self.ap_small is None or self.ap_small < 0 else f"{self.ap_small:.3f}"
        seed = "-" if self.seed is None else str(self.seed)
        minutes = "-" if self.minutes is None else f"{self.minutes:.1f}"
        return (
            f"| {self.dataset} | {self.recipe} | {seed} | {self.model} | {self.input_size} | "
            f"{self.num_proposals} | {self.steps} | {self.train_images_per_s:.1f} | "
            f"{self.ap:.3f} | {self.ap50:.3f} | {small} | {minutes} |"
        )


def train_once(
    data_root: Path,
    dataset: str,
    run: Path,
    recipe: str,
    minutes: float,
    seed: int | None = None,
    overrides: list[str] | None = None,
    label: str | None = None,
) -> RunResult:
    """One ``sparsercnn train`` run in a fresh process (``overrides`` as ``--set``); the final
    evaluation of its log, under ``label`` (default: the recipe)."""
    command = [
        sys.executable,
        "-m",
        "sparsercnn",
        "train",
        "--train-json",
        str(data_root / "train.json"),
        "--train-images",
        str(data_root / "train"),
        "--val-json",
        str(data_root / "val.json"),
        "--val-images",
        str(data_root / "val"),
        "--output-dir",
        str(run),
        "--preset",
        recipe,
        "--time-budget",
        str(minutes),
        *([] if seed is None else ["--set", f"train.seed={seed}"]),
        *(["--set", *overrides] if overrides else []),
    ]
    start = time.perf_counter()
    with open(run.parent / f"{run.name}.log", "w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    minutes_taken = (time.perf_counter() - start) / 60
    return read_result(run, dataset, label or recipe, seed, minutes_taken)


def read_result(
    run: Path, dataset: str, recipe: str, seed: int | None, minutes: float | None
) -> RunResult:
    """The final COCO evaluation and the settings of a finished run folder.

    Raises:
        SystemExit: the run has no final evaluation (it failed or is still training).
    """
    metrics = run / "metrics.jsonl"
    records = (
        [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.exists() else []
    )
    evaluations = [r for r in records if "eval" in r]
    if not evaluations:
        raise SystemExit(
            f"{run}: no final evaluation in {metrics.name}; remove the folder to train it again"
        )
    final = evaluations[-1]
    speeds = [r["images_per_s"] for r in records if r.get("images_per_s")]
    cfg = Config.load(run / "config.json")
    width = cfg.model.backbone_width
    return RunResult(
        dataset=dataset,
        recipe=recipe,
        ap=final["eval"]["AP"],
        ap_small=final["eval"]["APs"],
        ap50=final["eval"]["AP50"],
        steps=final["iter"],
        input_size=f"{cfg.input.test_min_size}/{cfg.input.test_max_size}",
        num_proposals=cfg.model.num_proposals,
        model=f"R{cfg.model.backbone_depth}/{width}, head {cfg.model.hidden_dim}",
        train_images_per_s=statistics.median(speeds) if speeds else 0.0,
        minutes=minutes,
        seed=seed,
    )


def table(results: list[RunResult], recipes: list[str], minutes: float, command: str) -> str:
    """The AP of every dataset and recipe (the mean over seeds, with the range where there are
    several) with auto's gap to the best fixed preset, then every run's details."""
    lines = [
        f"### Automatic recipe vs fixed presets, {minutes:g}-minute budget ({machine_kind()})",
        "",
        f"`{command}`; from scratch, synthetic data (`sparsercnn.data.synthetic_styles`) or the "
        "datasets given as NAME=DIR, COCO AP on the validation split.",
        "",
        "| dataset | " + " | ".join(f"AP {name}" for name in recipes) + " | auto - best fixed |",
        "|---" * (len(recipes) + 2) + "|",
    ]
    for dataset in dict.fromkeys(r.dataset for r in results):
        aps: dict[str, list[float]] = {}
        for r in results:
            if r.dataset == dataset:
                aps.setdefault(r.recipe, []).append(r.ap)
        mean = {name: statistics.mean(values) for name, values in aps.items()}
        cells = [_ap_cell(aps[name]) if name in aps else "-" for name in recipes]
        auto = next((name for name in mean if name.split("+")[0] == "auto"), None)
        fixed = [ap for name, ap in mean.items() if name != auto]
        gap = f"{mean[auto] - max(fixed):+.3f}" if auto is not None and fixed else "-"
        lines.append(f"| {dataset} | " + " | ".join(cells) + f" | {gap} |")
    lines += [
        "",
        "| dataset | recipe | seed | model | input | proposals | steps | train img/s | AP | AP50 "
        "| APs | minutes |",
        "|---" * 12 + "|",
        *[r.row() for r in results],
    ]
    return "\n".join(lines)


def _ap_cell(aps: list[float]) -> str:
    """``0.245``, or ``0.245 (0.243-0.247)`` over several seeds."""
    mean = f"{statistics.mean(aps):.3f}"
    return mean if len(aps) == 1 else f"{mean} ({min(aps):.3f}-{max(aps):.3f})"


def dataset_paths(entry: str, root: Path, max_images: int | None) -> tuple[str, DemoDatasetPaths]:
    """The name and files of one ``--datasets`` entry: ``NAME=DIR`` (a COCO dataset in ``DIR``)
    or the name of a synthetic style (generated under ``root``).

    Raises:
        SystemExit: ``DIR`` lacks a split, the name is not a style, or ``--max-images`` is given
            with a dataset on disk.
    """
    name, separator, folder = entry.partition("=")
    if not separator:
        if name not in DATASET_STYLES:
            raise SystemExit(
                f"--datasets {name}: not a synthetic style ({', '.join(DATASET_STYLES)}); "
                "give a COCO dataset on disk as NAME=DIR"
            )
        return name, styled_dataset(name, root, max_images)
    paths = DemoDatasetPaths.under(Path(folder))
    files = (paths.train_json, paths.train_images, paths.val_json, paths.val_images)
    missing = [str(path) for path in files if not path.exists()]
    if missing:
        raise SystemExit(f"--datasets {entry}: missing {', '.join(missing)}")
    if max_images is not None:
        raise SystemExit(f"--datasets {entry}: --max-images cuts synthetic sets only")
    return name, paths


def styled_dataset(name: str, root: Path, max_images: int | None) -> DemoDatasetPaths:
    """The named synthetic set under ``root / name``, cut to ``max_images`` training images."""
    if max_images is None:
        return generate_styled_dataset(name, root / name)
    spec = DATASET_STYLES[name]
    return generate_demo_dataset(
        root / f"{name}-{max_images}",
        num_train=min(spec.num_train, max_images),
        num_val=min(spec.num_val, max(1, max_images // 4)),
        image_size=spec.image_size,
        style=spec.style,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASET_STYLES))
    parser.add_argument("--recipes", nargs="+", default=["auto", "small", "medium"])
    parser.add_argument("--minutes", type=positive_number, default=10.0)
    parser.add_argument(
        "--seeds", type=int, nargs="+", help="train each recipe once per seed (default: once)"
    )
    parser.add_argument("--root", type=user_path, default=REPO / "runs" / "bench_recipes")
    parser.add_argument(
        "--max-images",
        type=int_at_least(1),
        help="at most this many train images (and a quarter for val)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="read the result of a run folder that exists under --root instead of training it",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides for every run (as sparsercnn train --set); needs --tag",
    )
    parser.add_argument("--tag", help="name of the --set variant in the table and run folders")
    parser.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    args = parser.parse_args()
    if bool(args.overrides) != bool(args.tag):
        raise SystemExit("--set and --tag go together: --tag names the variant --set makes")
    command = "python benchmarks/bench_recipes.py " + " ".join(sys.argv[1:])
    labels = [f"{recipe}+{args.tag}" if args.tag else recipe for recipe in args.recipes]
    results = []
    for entry in args.datasets:
        dataset, data = dataset_paths(entry, args.root / "data", args.max_images)
        for recipe, label in zip(args.recipes, labels, strict=True):
            for seed in args.seeds or [None]:
                name = f"{dataset}-{label}-{args.minutes:g}min"
                run = args.root / "runs" / (name if seed is None else f"{name}-seed{seed}")
                if run.exists() and args.reuse:
                    result = read_result(run, dataset, label, seed, minutes=None)
                elif run.exists():
                    raise SystemExit(
                        f"{run} exists: remove it, choose another --root, or --reuse its result"
                    )
                else:
                    run.parent.mkdir(parents=True, exist_ok=True)
                    result = train_once(
                        data.root, dataset, run, recipe, args.minutes, seed, args.overrides, label
                    )
                results.append(result)
                print(result.row(), flush=True)
    text = table(results, labels, args.minutes, command)
    print(text)
    if args.write:
        with open(REPO / "BENCHMARKS.md", "a") as handle:
            handle.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
