"""The released models' table: the advice for a missing checkpoint file (one of their downloads,
a mistyped name, any other path)."""

from __future__ import annotations

from pathlib import Path

from sparsercnn.weights.published import PUBLISHED_CHECKPOINTS, missing_checkpoint_advice


def test_a_missing_download_is_named_by_its_file_name(tmp_path: Path) -> None:
    """Was: the path was a string split by hand; a ``Path`` (what fetch has) was refused."""
    advice = missing_checkpoint_advice(tmp_path / "downloads" / "r50_100pro_3x_model.pth")
    assert advice == (
        "; it is the download of the published checkpoint r50_100pro_3x: pass the name "
        "r50_100pro_3x instead (downloaded once, then cached), or download it from "
        f"{PUBLISHED_CHECKPOINTS['r50_100pro_3x'].url}"
    )


def test_any_missing_checkpoint_is_told_what_to_do(tmp_path: Path) -> None:
    """Was: "checkpoint x.pth does not exist" and nothing more, unless the name was that of a
    published download: a path is to be checked, a word is a published name mistyped."""
    for path in (tmp_path / "r50_100pro_3x_model.pth.bak", Path("weights/model.pth")):
        assert missing_checkpoint_advice(path) == (
            "; check the path, or give a published name instead (`sparsercnn convert --help` "
            "lists them)"
        )
    assert missing_checkpoint_advice(Path("r50_100pro")) == (
        f"; nor is it a published name ({', '.join(PUBLISHED_CHECKPOINTS)})"
    )
