"""Inference over a loader and COCO evaluation of a (random) tiny model; boxes mapped back to
the files' pixels."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor

from sparsercnn.config import Config
from sparsercnn.data.coco import CocoDataset
from sparsercnn.data.loader import build_test_loader
from sparsercnn.data.transforms import build_test_transform
from sparsercnn.engine.inference import (
    EXPORTED_GRAPH,
    FORWARD_PASS,
    evaluate,
    evaluation_ground_truth,
    run_inference,
)
from sparsercnn.evaluation import CocoEvaluator
from sparsercnn.model import PostProcessor, SparseRCNN, build_model, build_postprocessor
from sparsercnn.model_file import load_model_file
from sparsercnn.predictor import Predictor
from sparsercnn.structures import Batch, Detections, ModelOutput, StageOutput
from tests.synthetic_coco import SyntheticCoco, WriteCoco, tiny_config


def _setup(data: SyntheticCoco) -> tuple[SparseRCNN, PostProcessor, CocoDataset]:
    cfg = tiny_config()
    cfg.model.clip_boxes = False  # keep every box: check the rescaling itself
    torch.manual_seed(0)
    dataset = CocoDataset(
        data.json_path, data.image_dir, build_test_transform(cfg.input), skip_unreadable=False
    )
    return build_model(cfg), build_postprocessor(cfg), dataset


def test_run_inference_returns_original_pixel_boxes(tiny_coco: SyntheticCoco) -> None:
    model, postprocessor, dataset = _setup(tiny_coco)
    model.train()
    loader = build_test_loader(dataset, batch_size=4, num_workers=0)
    image_ids, detections, timing = run_inference(model, postprocessor, loader)
    assert model.training  # mode restored
    assert image_ids == dataset.image_ids
    assert timing.num_images == tiny_coco.num_images
    assert 0 < timing.model_seconds <= timing.total_seconds
    assert timing.model_covers == FORWARD_PASS
    # Same as running the model by hand and rescaling to the original (not the input) size.
    sample = dataset[0]
    assert sample.image.shape[1:] != sample.original_size  # the transform resized it
    with torch.no_grad():
        expected = postprocessor(model.eval()([sample.image]), [sample.original_size])[0]
    # Padding to a batch changes the float rounding a little; rescaling errors are pixels.
    torch.testing.assert_close(detections[0]["boxes"], expected["boxes"], atol=0.05, rtol=1e-3)
    torch.testing.assert_close(detections[0]["scores"], expected["scores"], atol=1e-3, rtol=1e-3)
    assert all(d["boxes"].device.type == "cpu" for d in detections)


@pytest.mark.parametrize(
    ("device", "message"),
    [("gpu", "^device 'gpu' is not a device"), ("mps", "^device 'mps': sparsercnn runs on")],
)
def test_run_inference_refuses_a_bad_device_naming_the_argument(
    tiny_coco: SyntheticCoco, device: str, message: str
) -> None:
    """Was torch's raw error ("Expected one of cpu, cuda, ... device type") or, for "mps", a
    failure at the first image copy."""
    model, postprocessor, dataset = _setup(tiny_coco)
    loader = build_test_loader(dataset, batch_size=1, num_workers=0)
    with pytest.raises(ValueError, match=message):
        run_inference(model, postprocessor, loader, device=device)


class _ExportedStub:
    """An exported detector that finds nothing: its graph post-processes."""

    size_divisibility = 32
    clip_boxes = True

    def detect(
        self, images: Sequence[Tensor], original_sizes: Sequence[tuple[int, int]]
    ) -> list[Detections]:
        empty = Detections(
            boxes=torch.zeros(0, 4), scores=torch.zeros(0), labels=torch.zeros(0, dtype=torch.long)
        )
        return [empty for _ in images]


def test_the_time_of_an_exported_detector_says_it_includes_post_processing(
    tiny_coco: SyntheticCoco,
) -> None:
    _, _, dataset = _setup(tiny_coco)
    loader = build_test_loader(dataset, batch_size=2, num_workers=0)
    _, _, timing = run_inference(_ExportedStub(), None, loader)
    assert timing.num_images == tiny_coco.num_images
    assert timing.model_covers == EXPORTED_GRAPH and "post-processing" in EXPORTED_GRAPH


def test_evaluate_scores_and_writes_results(tiny_coco: SyntheticCoco, tmp_path: Path) -> None:
    model, postprocessor, dataset = _setup(tiny_coco)
    evaluation = evaluate(model, postprocessor, dataset, batch_size=3)
    assert evaluation is not None
    result = evaluation.result
    assert evaluation.timing.num_images == tiny_coco.num_images
    assert 0 < evaluation.timing.model_seconds <= evaluation.timing.total_seconds
    assert result.num_images == tiny_coco.num_images
    assert 0.0 <= result.AP <= 1.0
    assert evaluation is not None
    results_path = evaluation.write_results(dataset.category_map.category_ids, tmp_path / "r.json")
    records = json.loads(results_path.read_text())
    assert len(records) == result.num_detections
    assert {r["category_id"] for r in records} <= {1, 3}


def _exif_jpeg(path: Path, display: np.ndarray, orientation: int) -> None:
    """Save ``display`` (h, w, 3) as a JPEG stored rotated, with the EXIF tag that undoes it."""
    stored = Image.fromarray(display)
    if orientation == 6:  # the viewer turns the stored pixels 90 degrees clockwise
        stored = stored.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, quality=95, exif=exif.tobytes())


def test_boxes_found_in_the_input_map_back_to_the_file_pixels(tmp_path: Path) -> None:
    """A detector that finds every object exactly in the resized input image scores AP 1 after
    the post-processor maps its boxes back: through the test resize, an EXIF rotation (the JSON
    gives the displayed size) and a JPEG decoded at a reduced scale (by its pixel map: the
    ratio of sizes misses by 0.75 px on its odd side), with a box on the border (clipping
    leaves it whole)."""
    rng = np.random.default_rng(0)
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    # (height, width) as displayed, EXIF orientation
    specs = [((200, 120), 6), ((1001, 2000), 1), ((90, 130), 1)]
    images, annotations = [], []
    for index, ((height, width), orientation) in enumerate(specs):
        name = f"{index}.jpg"
        pixels = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
        _exif_jpeg(images_dir / name, pixels, orientation)
        images.append({"id": 10 + index, "file_name": name, "height": height, "width": width})
        boxes = [[3.0, 5.0, width / 3, height / 4], [width / 2, height / 2, width / 2, height / 2]]
        for number, bbox in enumerate(boxes):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": 10 + index,
                    "category_id": (3, 1)[number],
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                }
            )
    categories = [{"id": 1, "name": "red"}, {"id": 3, "name": "green"}]
    json_path = tmp_path / "instances.json"
    json_path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    transform = build_test_transform(tiny_config().input)
    dataset = CocoDataset(json_path, images_dir, transform, decode_size=transform.source_size)
    postprocessor = PostProcessor(clip_boxes=True)
    detections = []
    for index in range(len(dataset)):
        sample = dataset[index]
        assert sample.original_size == tuple(specs[index][0])
        assert tuple(sample.image.shape[1:]) != sample.original_size  # resized
        targets = sample.target
        logits = torch.full((1, len(targets), 2), -10.0)
        logits[0, torch.arange(len(targets)), targets.labels] = 10.0
        output = ModelOutput(
            stages=[StageOutput(logits=logits, boxes=targets.boxes[None])],
            image_sizes=torch.tensor([sample.image.shape[1:]]),
            proposal_boxes=targets.boxes[None],
        )
        # As run_inference: the 1001x2000 JPEG, decoded at half size, maps by its pixel map.
        batch = Batch.collate([sample])
        found = postprocessor(output, batch.rescale_sizes)
        detections.extend(batch.to_original(found, postprocessor.clip_boxes))
    assert dataset[1].pixel_map is not None and dataset[0].pixel_map is None
    evaluator = CocoEvaluator(dataset.gt_dict(), dataset.category_map.category_ids)
    evaluator.update(dataset.image_ids, detections)
    result = evaluator.evaluate()
    assert pytest.approx(1.0) == result.AP and pytest.approx(1.0) == result.AR100
    for record in evaluator.coco_results():
        (image,) = [i for i in images if i["id"] == record["image_id"]]
        (expected,) = [
            a["bbox"]
            for a in annotations
            if a["image_id"] == image["id"] and a["category_id"] == record["category_id"]
        ]
        assert record["bbox"] == pytest.approx(expected, abs=0.02)


# (h, w) as stored, EXIF orientation: JPEGs the tiny model's 128/160 resize lets decode at 1/8
# (mirrored on both axes) and 1/2 (transposed and mirrored; upright), no side a multiple of k.
REDUCED_JPEGS = [((1283, 2563), 3), ((1003, 517), 7), ((517, 1003), 1)]
# A JPEG too small to decode reduced (decoded in full, no pixel map), turned by its EXIF.
FULL_JPEG = ((150, 210), 6)


def _reduced_jpeg_coco(
    root: Path, jpegs: Sequence[tuple[tuple[int, int], int]] = REDUCED_JPEGS
) -> tuple[Path, Path, list[Path]]:
    """A COCO data set of ``jpegs`` (stored ``(h, w)``, EXIF orientation; one box each, sizes
    as displayed)."""
    images_dir = root / "images"
    images_dir.mkdir(parents=True)
    rng = np.random.default_rng(5)
    images, annotations, paths = [], [], []
    for index, ((height, width), orientation) in enumerate(jpegs):
        pixels = rng.integers(0, 90, (height, width, 3), dtype=np.uint8)
        pixels[height // 3 : height // 2, width // 2 : 3 * width // 4] = (220, 40, 40)
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = images_dir / f"{index}.jpg"
        Image.fromarray(pixels).save(path, quality=85, exif=exif)
        paths.append(path)
        shown = (width, height) if orientation >= 5 else (height, width)
        images.append(
            {"id": index + 1, "file_name": path.name, "height": shown[0], "width": shown[1]}
        )
        bbox = [shown[1] / 2, shown[0] / 3, shown[1] / 4, shown[0] / 6]
        annotations.append(
            {
                "id": index + 1,
                "image_id": index + 1,
                "category_id": 3,
                "bbox": bbox,
                "area": bbox[2] * bbox[3],
                "iscrowd": 0,
            }
        )
    categories = [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]
    json_path = root / "instances.json"
    json_path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return json_path, images_dir, paths


def _inference_dataset(json_path: Path, images_dir: Path, cfg: Config) -> CocoDataset:
    """The evaluation data set as ``sparsercnn eval`` builds it: decoded for the test resize."""
    transform = build_test_transform(cfg.input)
    return CocoDataset(json_path, images_dir, transform, decode_size=transform.source_size)


@pytest.mark.parametrize("clip", [True, False])
def test_evaluation_maps_a_reduced_jpeg_as_the_predictor_does(
    model_file: Path, tmp_path: Path, clip: bool
) -> None:
    """Large, EXIF-mirrored JPEGs decoded at 1/8 and 1/2, sides not multiples of k, and one
    decoded in full: evaluation gives the predictor's detections on the files bit for bit,
    clipped or not (both map the input's pixels to the file's by the decoded image's DCT
    grid, composed with the test resize, through the one
    :meth:`~sparsercnn.structures.PixelMap.detections_to_full_image`), not the ratio of sizes
    (off by up to k - 1 px)."""
    json_path, images_dir, paths = _reduced_jpeg_coco(
        tmp_path / "coco", [*REDUCED_JPEGS, FULL_JPEG]
    )
    loaded = load_model_file(model_file)
    loaded.config.model.clip_boxes = clip
    dataset = _inference_dataset(json_path, images_dir, loaded.config)
    maps = [dataset[i].pixel_map for i in range(len(dataset))]
    assert all(m is not None for m in maps[:-1]) and maps[-1] is None
    assert maps[0] is not None and maps[0].offset_x == maps[0].offset_y == -5.0  # 8 * 321 - 2563

    postprocessor = build_postprocessor(loaded.config)
    evaluation = evaluate(loaded.model, postprocessor, dataset, batch_size=2)
    predictor = Predictor(loaded.model, loaded.config, loaded.categories, batch_size=2)
    predictions = predictor(paths)

    assert evaluation is not None
    for detections, prediction in zip(evaluation.detections, predictions, strict=True):
        assert len(prediction.scores) > 0
        for key in ("boxes", "scores", "labels"):
            assert torch.equal(detections[key], getattr(prediction, key)), key
    assert [p.image_size for p in predictions] == [
        (int(i["height"]), int(i["width"])) for i in dataset.gt_dict()["images"]
    ]
    # Unclipped, some boxes reach past the files' edges; clipped, none does.
    beyond = [
        bool((p.boxes < 0).any() or (p.boxes > torch.tensor(p.image_size[::-1] * 2)).any())
        for p in predictions
    ]
    assert any(beyond) != clip
    # What the ratio of sizes gave: boxes off by most of a pixel or more somewhere.
    sample = dataset[0]
    batch = Batch.collate([sample])
    with torch.no_grad():
        output = loaded.model.eval()(batch.images)
    by_ratio = postprocessor(output, [sample.original_size])[0]
    assert (by_ratio["boxes"] - evaluation.detections[0]["boxes"]).abs().max() > 0.5


def test_the_ratio_of_sizes_still_maps_an_image_decoded_in_full(
    tiny_coco: SyntheticCoco,
) -> None:
    """PNGs (never decoded reduced) have no pixel map: run_inference gives the post-processor
    the original sizes and its detections as they are, bit for bit."""
    model, postprocessor, dataset = _setup(tiny_coco)
    postprocessor.clip_boxes = True
    loader = build_test_loader(dataset, batch_size=1, num_workers=0)
    batches = list(loader)
    assert all(b.pixel_maps == [None] and b.rescale_sizes == b.original_sizes for b in batches)

    _, detections, _ = run_inference(model, postprocessor, batches)

    with torch.no_grad():
        for batch, found in zip(batches, detections, strict=True):
            (expected,) = postprocessor(model.eval()(batch.images), batch.original_sizes)
            for key in ("boxes", "scores", "labels"):
                assert torch.equal(found[key], expected[key]), key


def test_exported_evaluation_maps_a_reduced_jpeg_as_its_predictor_does(
    model_file_onnx: Path, tmp_path: Path
) -> None:
    """The same through the exported detector (its graph clips as the model file says)."""
    from sparsercnn.export import OnnxPredictor

    json_path, images_dir, paths = _reduced_jpeg_coco(tmp_path / "coco")
    predictor = OnnxPredictor(model_file_onnx, batch_size=1)
    assert predictor.clip_boxes
    dataset = _inference_dataset(json_path, images_dir, predictor.config)
    evaluation = evaluate(predictor, None, dataset)
    predictions = predictor(paths)
    assert evaluation is not None
    for detections, prediction in zip(evaluation.detections, predictions, strict=True):
        assert len(prediction.scores) > 0
        for key in ("boxes", "scores", "labels"):
            assert torch.equal(detections[key], getattr(prediction, key)), key


def test_an_evaluation_reuses_the_ground_truth_an_earlier_one_prepared(
    tiny_coco: SyntheticCoco, write_coco: WriteCoco
) -> None:
    """Each evaluation of a data set prepared its ground truth anew (a deep copy and a COCO
    index); the next one takes the earlier one's, and scores exactly as with a new one."""
    model, postprocessor, dataset = _setup(tiny_coco)
    first = evaluate(model, postprocessor, dataset, batch_size=3)
    assert first is not None and first.ground_truth is not None
    again = evaluate(model, postprocessor, dataset, batch_size=3, ground_truth=first.ground_truth)
    assert again is not None and again.ground_truth is first.ground_truth
    assert again.result.to_dict() == first.result.to_dict()
    _, _, other = _setup(write_coco(num_images=2))
    with pytest.raises(ValueError, match="is of other images than the dataset's"):
        evaluate(model, postprocessor, other, ground_truth=first.ground_truth)


def test_the_ground_truth_of_a_dataset_takes_its_new_dict_uncopied(
    tiny_coco: SyntheticCoco, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every evaluation deep-copied the dict ``gt_dict()`` had just made for it."""
    from sparsercnn.evaluation import ground_truth

    def no_copy(data: object) -> object:
        raise AssertionError("copied a dict made for the evaluation alone")

    _, _, dataset = _setup(tiny_coco)
    monkeypatch.setattr(ground_truth.copy, "deepcopy", no_copy)
    prepared = evaluation_ground_truth(dataset)
    assert prepared.image_ids == frozenset(dataset.image_ids)
    # Was "the ground-truth dict": messages name the annotation file, as the user knows it.
    assert prepared.source == str(tiny_coco.json_path)
