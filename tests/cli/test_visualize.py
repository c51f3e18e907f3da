"""``sparsercnn visualize``'s flags: its panel sizes are the drawing's, read without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from sparsercnn.cli.main import build_parser, main
from sparsercnn.visualization import panel_size


def test_the_panel_sizes_of_the_help_are_the_drawing_s(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = build_parser().parse_args(["visualize", "--model", "m.safetensors", "x.png"])
    assert args.max_panel_side == panel_size.MAX_PANEL_SIDE
    with pytest.raises(SystemExit):
        main(["visualize", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        f"under {panel_size.MIN_PANEL_SIDE} pixels enlarged to {panel_size.MIN_PANEL_SIDE} or to "
        f"it (default {panel_size.MAX_PANEL_SIDE})"
    ) in text


def test_the_command_reads_the_panel_sizes_without_torch_numpy_or_pillow() -> None:
    """The sizes were copies of the drawing module's (which loads torch), kept equal by a test."""
    code = (
        "import sys\n"
        "import sparsercnn.cli.visualize as visualize\n"
        "from sparsercnn.visualization import panel_size\n"
        "assert visualize.MAX_PANEL_SIDE is panel_size.MAX_PANEL_SIDE\n"
        "heavy = [m for m in ('torch', 'numpy', 'PIL', 'matplotlib') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_stages_the_model_lacks_are_refused_before_the_output_s_replace_warning(
    model_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The stage count is the model file's: the refusal came after "it will be replaced"."""
    image, output = tmp_path / "image.png", tmp_path / "stages.png"
    Image.new("RGB", (64, 48)).save(image)
    output.write_bytes(b"an earlier figure")
    command = ["visualize", "--model", str(model_file), str(image), "--output", str(output)]
    assert main([*command, "--stages", "9"]) != 0
    assert "replaced" not in caplog.text
    assert output.read_bytes() == b"an earlier figure"
    assert main(command) == 0  # accepted: then the warning comes
    assert "--output" in caplog.text and "will be replaced" in caplog.text
