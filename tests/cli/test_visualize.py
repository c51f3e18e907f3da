"""``sparsercnn visualize``'s flags: its panel sizes are the drawing module's."""

from __future__ import annotations

import pytest

from sparsercnn.cli import visualize
from sparsercnn.cli.main import build_parser, main
from sparsercnn.visualization import draw


def test_the_panel_sizes_of_the_help_are_the_drawing_s(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The CLI writes them out (``--help`` must not load torch); they must not drift apart."""
    assert (visualize.MAX_PANEL_SIDE, visualize.MIN_PANEL_SIDE) == (
        draw.MAX_PANEL_SIDE,
        draw.MIN_PANEL_SIDE,
    )
    args = build_parser().parse_args(["visualize", "--model", "m.safetensors", "x.png"])
    assert args.max_panel_side == draw.MAX_PANEL_SIDE
    with pytest.raises(SystemExit):
        main(["visualize", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        f"under {draw.MIN_PANEL_SIDE} pixels enlarged to {draw.MIN_PANEL_SIDE} or to it "
        f"(default {draw.MAX_PANEL_SIDE})"
    ) in text
