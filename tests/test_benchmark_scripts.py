"""The comparison script of benchmarks/ runs end to end on a tiny preset on the CPU.

Its real use is on a GPU machine that CI never has: this keeps the script from rotting between
the sessions that get one. Speed is not asserted.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_vs_torchvision.py"


def test_bench_vs_torchvision_reports_rows_ratios_and_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "rows.json"
    argv = [str(SCRIPT), "--device", "cpu", "--preset", "tiny", "--image-size", "64", "96"]
    argv += ["--warmup", "0", "--iters", "2", "--json", str(output)]
    argv += ["--variants", "eager:fp32,cudagraphs:fp32,torchvision:fp32"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(SCRIPT), run_name="__main__")
    printed = capsys.readouterr().out
    rows = json.loads(output.read_text())["rows"]
    assert [(r["backend"], r["dtype"]) for r in rows] == [
        ("eager", "fp32"),
        ("cudagraphs", "fp32"),
        ("eager", "fp32"),
    ]
    ours, graphs, torchvision = rows
    assert ours["error"] is None and ours["backbone_fpn_ms"] > 0 and ours["model_ms"] > 0
    assert "needs the compile backend on CUDA" in graphs["error"]  # CUDA graphs need CUDA
    # torchvision cannot run on the CPU-only development machines; where it can, it is timed.
    assert torchvision["error"] is not None or torchvision["model_ms"] > 0
    assert "| sparsercnn tiny | eager | fp32 |" in printed
    assert "fastest sparsercnn variant eager:fp32" in printed
    assert "--preset tiny --image-size 64 96" in printed


def test_bench_batching_prints_both_batchings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = SCRIPT.parent / "bench_batching.py"
    argv = [str(script), "--preset", "tiny", "--images", "8", "--batch-size", "4"]
    monkeypatch.setattr(sys, "argv", [*argv, "--repeats", "1", "--threads", "1"])
    runpy.run_path(str(script), run_name="__main__")
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny")]
    assert len(rows) == 2
    grouped, padded = (float(row.split("|")[-2]) for row in rows)
    assert grouped < 1e-3 < padded  # the padded batches change the logits, grouped ones do not


@pytest.mark.slow
def test_bench_recipes_trains_each_recipe_and_tabulates_the_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = SCRIPT.parent / "bench_recipes.py"
    argv = [str(script), "--datasets", "shapes", "--recipes", "auto", "tiny", "--minutes", "0.5"]
    argv += ["--max-images", "8", "--root", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(script), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if "auto - best fixed" in line)
    summary = lines[header + 2]  # below the header's separator row
    assert summary.startswith("| shapes |")
    auto_ap, tiny_ap, gap = (float(cell) for cell in summary.split("|")[2:5])
    assert gap == pytest.approx(auto_ap - tiny_ap, abs=1e-3)
    details = [line for line in lines[header + 3 :] if line.startswith("| shapes |")]
    assert [line.split("|")[2].strip() for line in details] == ["auto", "tiny"]
    assert (tmp_path / "runs" / "shapes-auto-0.5min" / "recipe.json").is_file()
