"""Run plots: the saved figures show the metrics (panels, titles, plotted values), missing pieces
are noted in their panel, the PNGs are valid and the matplotlib backend is untouched."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.font_manager import fontManager
from matplotlib.text import Text
from PIL import Image

from sparsercnn.evaluation import PrecisionRecallCurve
from sparsercnn.text import counted
from sparsercnn.visualization import plot_precision_recall, plot_training_curves
from sparsercnn.visualization.draw import class_color
from sparsercnn.visualization.font import FONT_ENV
from sparsercnn.visualization.plots import MAX_PLOTTED_NAME, class_rgb, save_figure
from tests.visualization.figure_inspection import axis_texts, legend_labels, line_data


def _training_record(step: int) -> dict[str, Any]:
    record: dict[str, Any] = {"iter": step, "lr": 2.5e-5 * min(1.0, step / 100), "time": 0.5}
    total = 0.0
    for stage in range(6):
        for term, scale in (("loss_cls", 2.0), ("loss_bbox", 5.0), ("loss_giou", 2.0)):
            value = scale * math.exp(-step / 400) / (stage + 1) + 0.1
            record[f"{term}/stage{stage}"] = value
            total += value
    record["loss"] = total
    return record


def _write_jsonl(path: Path, records: list[dict[str, Any]], extra_lines: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + extra_lines)
    return path


def _assert_png(path: Path) -> None:
    assert path.stat().st_size > 1000
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100
        image.verify()
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_training_curves_count_the_skipped_steps(
    tmp_path: Path, saved_figures: list[Figure]
) -> None:
    """Steps skipped for a non-finite loss are in no record's mean: the title says so."""
    records = [{**_training_record(step), "skipped": 0} for step in (10, 20, 30)]
    records[1]["skipped"] = 3
    records.append({"iter": 40, "lr": 1e-4, "skipped": 10})  # every step of the window skipped
    plot_training_curves(_write_jsonl(tmp_path / "m.jsonl", records), tmp_path / "a.png")
    plot_training_curves(_write_jsonl(tmp_path / "n.jsonl", records[-1:]), tmp_path / "b.png")
    plot_training_curves(_write_jsonl(tmp_path / "o.jsonl", records[:1]), tmp_path / "c.png")
    with_loss, without_loss, none_skipped = (figure.axes[0] for figure in saved_figures)
    assert with_loss.get_title() == "total loss (13 steps skipped: non-finite loss)"
    assert axis_texts(without_loss) == ["no total loss (10 steps skipped: non-finite loss)"]
    assert none_skipped.get_title() == "total loss"


def test_training_curves_with_eval(tmp_path: Path, saved_figures: list[Figure]) -> None:
    records = [_training_record(step) for step in range(0, 1000, 10)]
    records += [
        {"iter": step, "eval": {"AP": step / 4000, "AP50": step / 2000}} for step in (250, 500, 750)
    ]
    jsonl = _write_jsonl(tmp_path / "metrics.jsonl", records, extra_lines='{"iter": 10, "lo')
    backend = matplotlib.get_backend()
    out = plot_training_curves(jsonl, tmp_path / "plots" / "training.png")
    assert out == tmp_path / "plots" / "training.png"
    _assert_png(out)
    assert matplotlib.get_backend() == backend

    (figure,) = saved_figures
    assert [text.get_text() for text in figure.texts] == ["metrics.jsonl"]  # the suptitle
    ax_loss, ax_terms, ax_lr, ax_ap = figure.axes
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["total loss", "loss terms", "learning rate", "COCO bbox AP"]
    for ax in figure.axes:
        assert ax.get_xlabel() == "iteration" and ax.get_xlim() == (0.0, 990.0)
    training = records[:100]
    # 100 points: drawn faint, with a moving average on top under the label.
    assert len(ax_loss.get_lines()) == 2
    iters, smoothed = line_data(ax_loss, "loss")
    assert iters.tolist() == [r["iter"] for r in training]
    assert smoothed[-1] == pytest.approx(np.mean([r["loss"] for r in training[-2:]]))
    # Per term: the sum over stages (raw + smoothed) and the last stage, dashed.
    assert len(ax_terms.get_lines()) == 3 * 3 and ax_terms.get_yscale() == "log"
    assert legend_labels(ax_terms) == [
        f"{term} ({which})"
        for term in ("loss_bbox", "loss_cls", "loss_giou")
        for which in ("all stages", "stage 6, the last")  # stages counted from 1, as elsewhere
    ]
    _, last_stage = line_data(ax_terms, "loss_giou (stage 6, the last)")
    assert last_stage.tolist() == [r["loss_giou/stage5"] for r in training]
    (lr_line,) = ax_lr.get_lines()
    assert list(lr_line.get_ydata()) == [r["lr"] for r in training]
    assert legend_labels(ax_ap) == ["AP", "AP50"] and ax_ap.get_ylim() == (0.0, 100.0)
    assert ax_ap.get_ylabel() == "AP (%)"  # the metrics.jsonl fractions, shown in percent
    ap_iters, ap = line_data(ax_ap, "AP")
    assert ap_iters.tolist() == [250, 500, 750] and ap.tolist() == [6.25, 12.5, 18.75]


def test_training_curves_without_eval_or_stages(
    tmp_path: Path, saved_figures: list[Figure]
) -> None:
    records = [{"iter": i, "loss": 10.0 / (i + 1)} for i in range(5)]
    jsonl = _write_jsonl(tmp_path / "metrics.jsonl", records)
    _assert_png(plot_training_curves(jsonl, tmp_path / "training.png"))
    ax_loss, ax_terms, ax_lr, ax_ap = saved_figures[0].axes
    assert len(ax_loss.get_lines()) == 1  # few points: no smoothing
    assert line_data(ax_loss, "loss")[1].tolist() == [r["loss"] for r in records]
    for ax, note in (
        (ax_terms, "no per-term losses"),
        (ax_lr, "no learning rate"),
        (ax_ap, "no evaluation yet"),
    ):
        assert axis_texts(ax) == [note] and not ax.axison and not ax.get_lines()


def test_training_curves_from_empty_file(tmp_path: Path, saved_figures: list[Figure]) -> None:
    jsonl = _write_jsonl(tmp_path / "metrics.jsonl", [])
    _assert_png(plot_training_curves(jsonl, tmp_path / "training.png"))
    notes = [axis_texts(ax) for ax in saved_figures[0].axes]
    assert notes == [
        ["no total loss"],
        ["no per-term losses"],
        ["no learning rate"],
        ["no evaluation yet"],
    ]


@pytest.mark.parametrize("num_classes", [0, 1, 3, 30])
def test_precision_recall_plot(
    tmp_path: Path, num_classes: int, saved_figures: list[Figure]
) -> None:
    recall = np.linspace(0.0, 1.0, 101)
    curves = [
        PrecisionRecallCurve(
            name=f"class{k}",
            category_id=k + 1,
            recall=recall,
            precision_50=np.clip(1.0 - recall**4 * (k + 1) / num_classes, 0, 1),
            precision_50_95=np.clip(1.0 - recall**2 * (k + 1) / num_classes, 0, 1),
        )
        for k in range(num_classes)
    ]
    _assert_png(plot_precision_recall(curves, tmp_path / "pr.png"))
    axes = saved_figures[0].axes
    assert axes[0].get_ylabel() == "precision"
    if num_classes == 0:
        assert [axis_texts(ax) for ax in axes] == [["no classes with ground truth"]] * 2
        return
    for ax, iou, attribute in zip(
        axes, ("0.5", "0.5:0.95"), ("precision_50", "precision_50_95"), strict=True
    ):
        assert ax.get_title() == f"precision-recall, IoU {iou}" and ax.get_xlabel() == "recall"
        assert len(ax.get_lines()) == num_classes + 1
        expected = np.mean([getattr(c, attribute) for c in curves], axis=0)
        classes = counted(num_classes, "class", "classes")  # "mean of 1 classes" was written
        mean_label = f"mean of {classes} (AP {100 * expected.mean():.2f}%)"
        x, mean = line_data(ax, mean_label)
        np.testing.assert_allclose(x, recall)
        np.testing.assert_allclose(mean, expected)
        # Up to max_legend (20) classes are named; more would crowd the legend.
        named = [c.name for c in curves] if num_classes <= 20 else []
        assert legend_labels(ax) == [*named, mean_label]


def test_precision_recall_curves_in_the_class_colours(
    tmp_path: Path, saved_figures: list[Figure]
) -> None:
    """With the label map, a class has the colour of its boxes in the drawings; a curve of an
    id the map lacks keeps matplotlib's colour."""
    recall = np.linspace(0.0, 1.0, 101)
    curves = [
        PrecisionRecallCurve(f"c{i}", i, recall, 1.0 - recall, 1.0 - recall) for i in (7, 3, 9)
    ]
    plot_precision_recall(curves, tmp_path / "pr.png", category_labels={3: 0, 7: 1})
    for ax in saved_figures[0].axes:
        colors = {line.get_label(): to_rgb(line.get_color()) for line in ax.get_lines()}
        assert colors["c7"] == pytest.approx(class_rgb(1))
        assert colors["c3"] == pytest.approx(class_rgb(0))
        assert colors["c9"] not in (pytest.approx(class_rgb(0)), pytest.approx(class_rgb(1)))
    assert class_rgb(1) == pytest.approx(tuple(c / 255 for c in class_color(1)))


def test_missing_glyphs_give_one_warning(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    recwarn: pytest.WarningsRecorder,
    monkeypatch: pytest.MonkeyPatch,
    fresh_warnings: None,
) -> None:
    """Class names in a script the plot font lacks: one logged line per command naming the
    characters and the remedy, not matplotlib's warning (with a source line) per character,
    nor one line per plot."""
    monkeypatch.delenv(FONT_ENV, raising=False)
    with caplog.at_level("WARNING"):
        for name in ("names", "again"):
            figure = Figure()
            figure.add_subplot().set_title("日本 très 日本")
            path = save_figure(figure, tmp_path / f"{name}.png")
            assert Image.open(path).size == (640, 480)
    assert [r.getMessage() for r in caplog.records] == [
        "the plot font DejaVu Sans has no glyph for 日 本: they are drawn as boxes; "
        f"set {FONT_ENV} to a font file that has them (.ttf, .otf or .ttc, such as Noto Sans "
        "CJK for Chinese or Japanese)"
    ]
    assert not [w for w in recwarn if "missing from font" in str(w.message)]


def _font_files(figure: Figure) -> set[str]:
    """The font file of every non-empty text of ``figure`` (titles, ticks, legends)."""
    texts = [text for text in figure.findobj(Text) if text.get_text()]
    return {Path(fontManager.findfont(text.get_fontproperties())).name for text in texts}


@pytest.mark.parametrize(
    ("font_file", "name"),
    [
        ("DejaVuSansMono.ttf", "arc \u2312"),  # DejaVu Sans lacks U+2312
        # A font with a glyph (a box naming the script) for every character, in matplotlib
        # 3.10 and later: the Chinese name is drawn with it, not with matplotlib's default.
        ("LastResortHE-Regular.ttf", "\u732b"),
    ],
)
def test_plots_are_drawn_in_the_font_the_environment_names(
    tmp_path: Path,
    saved_figures: list[Figure],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    fresh_warnings: None,
    font_file: str,
    name: str,
) -> None:
    """``$SPARSERCNN_FONT`` names the drawings' font: every text of a plot (title, tick labels,
    legend) is in it too, and a class name it has the glyphs of raises no warning."""
    path = Path(matplotlib.get_data_path(), "fonts/ttf", font_file)
    if not path.is_file():
        pytest.skip(f"matplotlib {matplotlib.__version__} has no {font_file}")
    monkeypatch.setenv(FONT_ENV, str(path))
    recall = np.linspace(0.0, 1.0, 101)
    curves = [PrecisionRecallCurve(name, 1, recall, 1.0 - recall, 1.0 - recall)]
    with caplog.at_level("WARNING"):
        _assert_png(plot_precision_recall(curves, tmp_path / "pr.png"))
    assert _font_files(saved_figures[0]) == {font_file}
    assert name in legend_labels(saved_figures[0].axes[0])
    assert not caplog.records


def test_precision_recall_legend_shortens_long_class_names(
    tmp_path: Path, saved_figures: list[Figure]
) -> None:
    recall = np.linspace(0.0, 1.0, 101)
    curve = PrecisionRecallCurve("y" * 200 + "z", 1, recall, 1.0 - recall, 1.0 - recall)
    plot_precision_recall([curve], tmp_path / "pr.png")
    name = legend_labels(saved_figures[0].axes[0])[0]
    assert len(name) == MAX_PLOTTED_NAME and name.endswith("\u2026" + "y" * 14 + "z")
