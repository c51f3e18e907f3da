"""The released models' table: the advice for a missing file named as one of their downloads."""

from __future__ import annotations

from pathlib import Path

from sparsercnn.weights.published import PUBLISHED_CHECKPOINTS, published_download_advice


def test_a_missing_download_is_named_by_its_file_name(tmp_path: Path) -> None:
    """Was: the path was a string split by hand; a ``Path`` (what fetch has) was refused."""
    advice = published_download_advice(tmp_path / "downloads" / "r50_100pro_3x_model.pth")
    assert advice == (
        "; it is the download of the published checkpoint r50_100pro_3x: pass the name "
        "r50_100pro_3x instead (downloaded once, then cached), or download it from "
        f"{PUBLISHED_CHECKPOINTS['r50_100pro_3x'].url}"
    )
    assert published_download_advice(tmp_path / "r50_100pro_3x_model.pth.bak") == ""
