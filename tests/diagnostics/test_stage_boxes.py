"""Stage boxes: shapes, original-pixel scale, parity with the predictor, stopping after k
stages, trajectories of the final detections, and the figure PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.transforms import build_test_transform
from sparsercnn.diagnostics import stage_boxes
from sparsercnn.diagnostics.stage_boxes import (
    StageBoxes,
    check_figure_stages,
    compute_stage_boxes,
    default_figure_stages,
    final_detection_tracks,
    write_stage_figure,
)
from sparsercnn.model import build_postprocessor
from sparsercnn.model_file import LoadedModel, load_model_file
from sparsercnn.predictor import Predictor
from sparsercnn.runtime import fast_bf16_supported
from sparsercnn.scores import written_score
from tests.diagnostics.diagnostics_data import NUM_PROPOSALS, DiagnosticsData
from tests.tiny_model import write_tiny_model_file


@pytest.fixture(scope="module")
def loaded(data: DiagnosticsData) -> LoadedModel:
    return load_model_file(data.model_file)


def _compute(
    loaded: LoadedModel, image: Path, num_stages: int | None = None, precision: str = "fp32"
) -> StageBoxes:
    return compute_stage_boxes(
        loaded.model,
        build_postprocessor(loaded.config),
        build_test_transform(loaded.config.input),
        image,
        num_stages=num_stages,
        precision=precision,  # type: ignore[arg-type]
    )


def test_shapes_and_original_pixels(loaded: LoadedModel, data: DiagnosticsData) -> None:
    result = _compute(loaded, data.image_dir / "000.png")
    num_stages, num_classes = loaded.model.num_stages, loaded.config.model.num_classes
    assert result.image.size == (128, 96)
    assert result.proposal_boxes.shape == (NUM_PROPOSALS, 4)
    assert result.boxes.shape == (num_stages, NUM_PROPOSALS, 4)
    assert result.scores.shape == (num_stages, NUM_PROPOSALS, num_classes)
    assert len(result.detections) == num_stages
    # Grid proposals: 4 x 4 cells of the *original* 128 x 96 image, row-major.
    assert torch.allclose(result.proposal_boxes[0], torch.tensor([0.0, 0.0, 32.0, 24.0]))
    assert torch.allclose(result.proposal_boxes[-1], torch.tensor([96.0, 72.0, 128.0, 96.0]))


def test_last_stage_matches_the_predictor(loaded: LoadedModel, data: DiagnosticsData) -> None:
    image = data.image_dir / "003.png"
    result = _compute(loaded, image)
    prediction = Predictor(loaded.model, loaded.config, loaded.categories)(image)[0]
    last = result.detections[-1]
    assert torch.equal(last["labels"], prediction.labels)
    assert torch.allclose(last["scores"], prediction.scores)
    assert torch.allclose(last["boxes"], prediction.boxes)


def test_stage_view_of_the_last_stage_is_the_predictor_s_answer(
    loaded: LoadedModel, data: DiagnosticsData
) -> None:
    """:meth:`StageBoxes.to_dict` (what ``POST /v1/stages`` answers) against the predictor's
    :meth:`~sparsercnn.prediction.Prediction.to_dict` (what ``POST /v1/detect`` answers)."""
    image = data.image_dir / "003.png"
    view = _compute(loaded, image).to_dict(loaded.categories, "003.png")
    prediction = Predictor(loaded.model, loaded.config, loaded.categories)(image)[0]
    answer = prediction.to_dict()
    assert (view["name"], view["width"], view["height"]) == ("003.png", 128, 96)
    assert view["num_stages"] == 2 and len(view["stages"]) == 2
    assert view["stages"][-1] == answer["detections"]
    assert view["proposals"][0] == [0.0, 0.0, 32.0, 24.0]


@pytest.mark.skipif(not fast_bf16_supported(torch.device("cpu")), reason="no native bf16 here")
def test_bf16_stages_match_the_bf16_predictor(loaded: LoadedModel, data: DiagnosticsData) -> None:
    image = data.image_dir / "003.png"
    last = _compute(loaded, image, precision="bf16").detections[-1]
    predictor = Predictor(loaded.model, loaded.config, loaded.categories, precision="bf16")
    prediction = predictor(image)[0]
    assert torch.equal(last["scores"], prediction.scores)
    assert torch.equal(last["boxes"], prediction.boxes)
    fp32 = _compute(loaded, image).detections[-1]
    assert not torch.equal(fp32["scores"], last["scores"])  # bf16 did run


def test_stopping_after_k_stages_gives_that_stages_boxes(
    loaded: LoadedModel, data: DiagnosticsData
) -> None:
    image = data.image_dir / "004.png"
    full = _compute(loaded, image)
    first = _compute(loaded, image, num_stages=1)
    assert full.num_stages == 2 and first.num_stages == 1
    assert torch.allclose(first.boxes[0], full.boxes[0], atol=1e-5)
    assert torch.allclose(first.scores[0], full.scores[0], atol=1e-6)
    assert not torch.allclose(full.boxes[0], full.boxes[1])  # the second stage moved the boxes


def test_tracks_follow_the_final_detections(loaded: LoadedModel, data: DiagnosticsData) -> None:
    result = _compute(loaded, data.image_dir / "000.png")
    tracks = final_detection_tracks(result, score_threshold=0.0)
    num = len(tracks.slots)
    assert num == len(set(tracks.slots.tolist())) > 0  # one track per slot
    assert tracks.boxes.shape == (num, result.num_stages + 1, 4)
    assert bool((tracks.scores[:-1] >= tracks.scores[1:]).all())
    assert torch.allclose(tracks.boxes[:, 0], result.proposal_boxes[tracks.slots])
    # Each track ends at the post-processed detection with the same score and label.
    final = result.detections[-1]
    for k in range(num):
        same = (final["scores"] == tracks.scores[k]) & (final["labels"] == tracks.labels[k])
        assert torch.allclose(final["boxes"][same][0], tracks.boxes[k, -1], atol=1e-4)
    assert len(final_detection_tracks(result, score_threshold=1.01).slots) == 0


def test_a_threshold_copied_from_a_written_score_keeps_its_track(
    loaded: LoadedModel, data: DiagnosticsData
) -> None:
    """The trajectories are those of the detections the last stage's panel draws: by their
    scores as written (compared unrounded, about half of them were dropped at their own)."""
    result = _compute(loaded, data.image_dir / "000.png")
    every = final_detection_tracks(result, score_threshold=0.0)
    for slot, score in zip(every.slots.tolist(), every.scores.tolist(), strict=True):
        kept = final_detection_tracks(result, score_threshold=written_score(score))
        assert slot in kept.slots.tolist()


def test_figure_stages() -> None:
    assert default_figure_stages(6) == [1, 3, 6]
    assert default_figure_stages(2) == [1, 2]
    assert default_figure_stages(1) == [1]
    assert check_figure_stages([2, 1], 2) == [2, 1]
    for wrong in ([0], [3], []):
        with pytest.raises(ValueError, match="1-based"):
            check_figure_stages(wrong, 2)
    with pytest.raises(ValueError, match=r"stage\(s\) \[2\] more than once"):
        check_figure_stages([2, 1, 2], 2)
    # A one-stage model is named in the singular ("has 1 stages ... from 1 to 1" before).
    with pytest.raises(ValueError, match=r"the model has 1 stage\): give stage 1$"):
        check_figure_stages([2], 1)


def test_write_stage_figure(data: DiagnosticsData, tmp_path: Path) -> None:
    image = data.image_dir / "000.png"
    with_tracks = write_stage_figure(
        data.model_file, image, tmp_path / "fig.png", stages=[1, 2], score_threshold=0.0
    )
    without = write_stage_figure(
        data.model_file, image, tmp_path / "plain.png", stages=[2], trajectories=False
    )
    with Image.open(with_tracks) as full, Image.open(without) as plain:
        assert full.format == "PNG" and plain.format == "PNG"
        # Panels: proposals, stage 1, stage 2, trajectories vs proposals, stage 2.
        assert full.width >= 4 * 128 and plain.width >= 2 * 128
        assert full.width > plain.width and full.height > 96
    with pytest.raises(ValueError, match="1-based"):
        write_stage_figure(data.model_file, image, tmp_path / "bad.png", stages=[3])
    # The suffix names the format: JPEG bytes in a .jpg, a clear error for an unknown suffix.
    with Image.open(write_stage_figure(data.model_file, image, tmp_path / "fig.jpg")) as jpeg:
        assert jpeg.format == "JPEG"
    with pytest.raises(ValueError, match=r"fig\.txt: \.txt is not an image format"):
        write_stage_figure(data.model_file, image, tmp_path / "fig.txt")
    assert not (tmp_path / "fig.txt").exists()


def test_a_large_jpeg_is_decoded_reduced_as_the_predictor_does(
    loaded: LoadedModel, data: DiagnosticsData, tmp_path: Path
) -> None:
    """Four times the test size: decoded at half (twice the input), boxes in the full image's
    pixels, the predictor's detections, and a figure drawn over the whole image."""
    path = tmp_path / "large.jpg"
    Image.open(data.image_dir / "000.png").convert("RGB").resize((1024, 768)).save(path)
    result = _compute(loaded, path)
    assert result.image.size == (512, 384) and result.full_size == (768, 1024)
    assert torch.allclose(result.proposal_boxes[-1], torch.tensor([768.0, 576.0, 1024.0, 768.0]))
    expected = Predictor(loaded.model, loaded.config, loaded.categories)(path)[0]
    assert torch.equal(result.detections[-1]["scores"], expected.scores)
    assert torch.equal(result.detections[-1]["boxes"], expected.boxes)
    tracks = final_detection_tracks(result, score_threshold=0.0)
    assert float(tracks.boxes[..., 2].max()) <= 1024 and float(tracks.boxes[..., 3].max()) <= 768
    output = write_stage_figure(data.model_file, path, tmp_path / "figure.png", max_panel_side=None)
    assert Image.open(output).height >= 768  # drawn at the full resolution asked for


def test_a_reduced_mirrored_jpeg_maps_by_its_pixel_map_as_the_predictor_does(
    loaded: LoadedModel, tmp_path: Path
) -> None:
    """2563x1283 mirrored by EXIF (orientation 3), decoded at 1/8: its grid starts 5 px before
    the image on both axes; every stage's boxes go through the same map as the predictor's."""
    exif = Image.Exif()
    exif[0x0112] = 3
    path = tmp_path / "mirrored.jpg"
    Image.new("RGB", (2563, 1283), (90, 120, 30)).save(path, exif=exif)
    result = _compute(loaded, path)
    assert result.image.size == (321, 161) and result.full_size == (1283, 2563)
    expected = Predictor(loaded.model, loaded.config, loaded.categories)(path)[0]
    assert len(expected.scores) > 0
    assert torch.equal(result.detections[-1]["scores"], expected.scores)
    assert torch.equal(result.detections[-1]["boxes"], expected.boxes)
    # The proposals tile the whole input, so the decoded grid: from 5 px before each edge.
    proposals = result.proposal_boxes
    spanned = torch.cat([proposals[:, :2].min(dim=0).values, proposals[:, 2:].max(dim=0).values])
    torch.testing.assert_close(
        spanned, torch.tensor([-5.0, -5.0, 2563.0, 1283.0]), atol=1e-3, rtol=0
    )


def test_classes_sharing_a_name_are_captioned_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two classes named "circle" were both captioned "circle" (the report's samples and
    confusion matrix name them "circle (3)" and "circle (7)")."""
    captured: list[list[str]] = []
    draw = stage_boxes.draw_stage_figure

    def capture(*args: Any, **kwargs: Any) -> Image.Image:
        captured.append(list(args[3]))  # the class names
        return draw(*args, **kwargs)

    monkeypatch.setattr(stage_boxes, "draw_stage_figure", capture)
    model = write_tiny_model_file(
        tmp_path / "model.safetensors", CategoryMap([3, 7], ["circle", "circle"])
    )
    Image.new("RGB", (64, 48)).save(tmp_path / "image.png")
    write_stage_figure(model, tmp_path / "image.png", tmp_path / "figure.png")
    assert captured == [["circle (3)", "circle (7)"]]
