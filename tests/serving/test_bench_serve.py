"""benchmarks/bench_serve.py runs end to end on the tiny preset (speed is not asserted)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_serve.py"


@pytest.mark.slow
def test_bench_serve_prints_a_row_per_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(SCRIPT), "--preset", "tiny", "--clients", "1", "3", "--requests", "6"]
    monkeypatch.setattr(sys, "argv", [*argv, "--image-size", "128", "96", "--time-limit", "60"])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    printed = capsys.readouterr().out
    table = printed[printed.index("| batching |") :]
    rows = [line.split("|")[1:-1] for line in table.splitlines()[2:]]
    assert [(r[0].strip(), r[1].strip(), r[2].strip()) for r in rows] == [
        ("on", "1", "6"),
        ("on", "3", "6"),
        ("off", "1", "6"),
        ("off", "3", "6"),
    ]
    assert all(float(r[3]) > 0 and float(r[5]) >= float(r[4]) > 0 for r in rows)
    assert all(float(r[6]) == 1.0 for r in rows if r[0].strip() == "off")
    assert "bench_serve.py --preset tiny" in printed
