"""``sparsercnn benchmark`` as a command: its output file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparsercnn.cli.main import main


def test_an_existing_output_is_replaced_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As every other command's --output: a file already there is not replaced silently."""
    output = tmp_path / "bench.json"
    output.write_text("{}\n")
    argv = ["benchmark", "--preset", "tiny", "--image-size", "64", "96", "--warmup", "0"]
    assert main([*argv, "--iters", "1", "--output", str(output)]) == 0
    assert f"--output {output} exists: it will be replaced" in caplog.text
    assert json.loads(output.read_text())["settings"]["preset"] == "tiny"
