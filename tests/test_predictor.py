"""The predictor: batch-invariant detections, the same detections as evaluation, records with
class names, and drawings that never collide."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sparsercnn.cli.main import main
from sparsercnn.data.categories import CategoryMap
from sparsercnn.engine.pipeline import evaluate_model_file
from sparsercnn.model import build_model
from sparsercnn.model_file import save_model_file
from sparsercnn.predictor import DrawingWriter, Predictor
from sparsercnn.presets import get_preset

CATEGORIES = [{"id": 4, "name": "cat"}, {"id": 9, "name": "dog"}]
# (h, w) of the test images: mixed sizes, two pairs sharing a padded size (after the tiny
# preset's test resize), so some batches hold several images and others one.
SIZES = [(96, 128), (70, 150), (96, 128), (120, 90), (64, 64), (95, 127)]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = get_preset("tiny")
    cfg.model.num_classes = len(CATEGORIES)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    return save_model_file(path, build_model(cfg), cfg, CategoryMap.from_coco(CATEGORIES))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The images of :data:`SIZES` with one box each, as a COCO JSON and image folder."""
    root = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for index, (height, width) in enumerate(SIZES):
        name = f"{index}.png"
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(root / name)
        images.append({"id": index + 1, "file_name": name, "height": height, "width": width})
        annotations.append(
            {
                "id": index + 1,
                "image_id": index + 1,
                "category_id": CATEGORIES[index % 2]["id"],
                "bbox": [4, 4, width // 2, height // 2],
                "area": width * height / 4,
                "iscrowd": 0,
            }
        )
    json_path = root / "instances.json"
    coco = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    json_path.write_text(json.dumps(coco))
    return json_path, root


def _images(dataset: tuple[Path, Path]) -> list[Path]:
    return [dataset[1] / f"{i}.png" for i in range(len(SIZES))]


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """Same detections up to float noise: oneDNN's convolutions round differently for other
    batch sizes (~1e-5 in the FPN features, ~1e-3 px in the boxes); the padding of mixed
    batches used to change scores by up to 0.4."""
    assert torch.equal(a["labels"], b["labels"])
    torch.testing.assert_close(a["scores"], b["scores"], rtol=0, atol=1e-5)
    torch.testing.assert_close(a["boxes"], b["boxes"], rtol=0, atol=2e-3)


def test_batch_size_does_not_change_detections(
    model_file: Path, dataset: tuple[Path, Path]
) -> None:
    images = _images(dataset)
    one = Predictor.from_file(model_file, batch_size=1)(images)
    four = Predictor.from_file(model_file, batch_size=4)(images)
    reversed_order = Predictor.from_file(model_file, batch_size=4)(images[::-1])[::-1]
    for a, b, c in zip(one, four, reversed_order, strict=True):
        assert a.source == b.source == c.source
        _assert_same(vars(a), vars(b))
        _assert_same(vars(a), vars(c))


def test_padded_batches_depend_on_the_batch(model_file: Path, dataset: tuple[Path, Path]) -> None:
    """The official batching (kept as an option) changes an image's detections: what the
    default batching prevents."""
    images = _images(dataset)
    alone = Predictor.from_file(model_file, batch_size=1)(images)
    padded = Predictor.from_file(model_file, batch_size=4, batch_invariant=False)(images)
    assert any(
        not torch.allclose(a.scores, b.scores, atol=1e-4)
        for a, b in zip(alone, padded, strict=True)
    )


def test_predictor_and_evaluation_give_the_same_detections(
    model_file: Path, dataset: tuple[Path, Path]
) -> None:
    json_path, image_dir = dataset
    report = evaluate_model_file(model_file, json_path, image_dir, batch_size=3, num_workers=0)
    predictions = Predictor.from_file(model_file, batch_size=3)(_images(dataset))
    assert report.evaluation.image_ids == list(range(1, len(SIZES) + 1))
    for detections, prediction in zip(report.evaluation.detections, predictions, strict=True):
        for key in ("boxes", "scores", "labels"):  # same batches: bit for bit
            assert torch.equal(detections[key], getattr(prediction, key)), key


def test_records_carry_the_class_name(model_file: Path, dataset: tuple[Path, Path]) -> None:
    predictor = Predictor.from_file(model_file)
    (prediction,) = predictor(_images(dataset)[:1])
    records = prediction.to_coco_results(predictor.categories)
    assert len(records) == len(prediction.scores) > 0
    names = {4: "cat", 9: "dog"}
    assert all(r["category_name"] == names[r["category_id"]] for r in records)


def test_same_stem_inputs_get_separate_drawings(model_file: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    inputs = []
    for folder in ("a", "b", "a/c"):
        (tmp_path / "in" / folder).mkdir(parents=True, exist_ok=True)
        path = tmp_path / "in" / folder / "x.png"
        Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(path)
        inputs.append(path)
    jpeg = tmp_path / "in" / "a" / "x.jpg"  # same stem, other format, same folder
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(jpeg)
    drawn = tmp_path / "drawn"
    code = main(
        [
            "predict",
            "--model",
            str(model_file),
            "--output",
            str(tmp_path / "p.json"),
            "--save-images",
            str(drawn),
            str(inputs[0]),
            str(inputs[1]),
            str(tmp_path / "in/a"),
        ]
    )
    assert code == 0
    written = sorted(str(p.relative_to(drawn)) for p in drawn.rglob("*") if p.is_file())
    assert written == ["a/c/x.png", "a/x.jpg", "a/x.png", "b/x.png"]
    with Image.open(drawn / "a" / "x.jpg") as image:
        assert image.format == "JPEG" and image.size == (60, 40)
    records = json.loads((tmp_path / "p.json").read_text())
    assert {Path(r["file_name"]).name for r in records} <= {"x.png", "x.jpg"}


def test_a_second_run_replaces_drawings_with_a_warning(
    model_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((40, 60, 3), dtype=np.uint8)).save(image)
    predictor = Predictor.from_file(model_file)
    writer = DrawingWriter(tmp_path / "drawn", [image], score_threshold=0.3)
    (prediction,) = predictor(image)
    assert writer.write(prediction, predictor.categories.names) == tmp_path / "drawn" / "x.png"
    assert writer.overwritten == []
    writer.write(prediction, predictor.categories.names)
    assert writer.overwritten == [tmp_path / "drawn" / "x.png"]
    assert "replacing" in caplog.text
