"""The predictor: batch-invariant detections, the same detections as evaluation, records with
class names, and drawings that never collide."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sparsercnn.cli.main import main
from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.image_io import ImageReadError, decode_image, load_image
from sparsercnn.drawing_writer import DrawingWriter
from sparsercnn.engine.model_evaluation import evaluate_model_file
from sparsercnn.image_inputs import DRAWINGS_MARKER
from sparsercnn.model import build_model, winograd
from sparsercnn.model.winograd import winograd_available
from sparsercnn.model_file import load_model_file, save_model_file
from sparsercnn.prediction import Prediction
from sparsercnn.predictor import Predictor
from sparsercnn.presets import get_preset
from sparsercnn.runtime import fast_bf16_supported, resolve_device
from tests import synthetic_coco
from tests.synthetic_coco import Box, SyntheticCoco, WriteCoco, truncate

CATEGORIES = [{"id": 4, "name": "cat"}, {"id": 9, "name": "dog"}]
# (h, w) of the test images: mixed sizes, two pairs sharing a padded size (after the tiny
# preset's test resize), so some batches hold several images and others one.
SIZES = [(96, 128), (70, 150), (96, 128), (120, 90), (64, 64), (95, 127)]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = get_preset("tiny")
    # The standard-width ResNet-18: the untrained eighth-width one ranks its detections too
    # closely for the bf16 and padded-batch comparisons below (ties, 3-5 px bf16 box moves).
    cfg.model.backbone_width = 64
    cfg.model.num_classes = len(CATEGORIES)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    return save_model_file(path, build_model(cfg), cfg, CategoryMap.from_coco(CATEGORIES))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> SyntheticCoco:
    """The images of :data:`SIZES` with one box each."""
    boxes = [
        [Box(CATEGORIES[index % 2]["id"], (4, 4, width // 2, height // 2))]
        for index, (height, width) in enumerate(SIZES)
    ]
    root = tmp_path_factory.mktemp("mixed")
    return synthetic_coco.write_coco(root, size=SIZES, categories=CATEGORIES, boxes=boxes)


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """Same detections up to float noise: oneDNN's convolutions round differently for other
    batch sizes (~1e-5 in the FPN features, ~1e-3 px in the boxes); the padding of mixed
    batches used to change scores by up to 0.4."""
    assert torch.equal(a["labels"], b["labels"])
    torch.testing.assert_close(a["scores"], b["scores"], rtol=0, atol=1e-5)
    torch.testing.assert_close(a["boxes"], b["boxes"], rtol=0, atol=2e-3)


def test_batch_size_does_not_change_detections(model_file: Path, dataset: SyntheticCoco) -> None:
    images = dataset.image_paths
    one = Predictor.from_file(model_file, batch_size=1)(images)
    four = Predictor.from_file(model_file, batch_size=4)(images)
    reversed_order = Predictor.from_file(model_file, batch_size=4)(images[::-1])[::-1]
    for a, b, c in zip(one, four, reversed_order, strict=True):
        assert a.source == b.source == c.source
        _assert_same(vars(a), vars(b))
        _assert_same(vars(a), vars(c))


def test_padded_batches_depend_on_the_batch(model_file: Path, dataset: SyntheticCoco) -> None:
    """The official batching (kept as an option) changes an image's detections: what the
    default batching prevents."""
    images = dataset.image_paths
    alone = Predictor.from_file(model_file, batch_size=1)(images)
    padded = Predictor.from_file(model_file, batch_size=4, batch_invariant=False)(images)
    assert any(
        not torch.allclose(a.scores, b.scores, atol=1e-4)
        for a, b in zip(alone, padded, strict=True)
    )


def test_predictor_and_evaluation_give_the_same_detections(
    model_file: Path, dataset: SyntheticCoco
) -> None:
    report = evaluate_model_file(
        model_file, dataset.json_path, dataset.image_dir, batch_size=3, num_workers=0
    )
    predictions = Predictor.from_file(model_file, batch_size=3)(dataset.image_paths)
    assert report.evaluation.image_ids == list(range(1, len(SIZES) + 1))
    for detections, prediction in zip(report.evaluation.detections, predictions, strict=True):
        for key in ("boxes", "scores", "labels"):  # same batches: bit for bit
            assert torch.equal(detections[key], getattr(prediction, key)), key


def test_large_jpegs_are_decoded_reduced_the_same_way_by_predictor_and_evaluation(
    model_file: Path, tmp_path: Path
) -> None:
    """640x800 JPEGs for a 128/160 test resize: both paths decode them at half size (at least
    twice the input), and the detections come back in the full image's pixels."""
    boxes = [
        [Box(CATEGORIES[0]["id"], (40, 60, 300, 400))],
        [Box(CATEGORIES[1]["id"], (8, 8, 90, 99))],
    ]
    data = synthetic_coco.write_coco(
        tmp_path, size=(640, 800), boxes=boxes, file_format="jpg", categories=CATEGORIES
    )
    report = evaluate_model_file(
        model_file, data.json_path, data.image_dir, batch_size=1, num_workers=0
    )
    predictor = Predictor.from_file(model_file, batch_size=1)
    predictions = predictor(data.image_paths)
    for detections, prediction in zip(report.evaluation.detections, predictions, strict=True):
        for key in ("boxes", "scores", "labels"):
            assert torch.equal(detections[key], getattr(prediction, key)), key

    half = decode_image(data.image_paths[0], predictor.transform.source_size).image
    assert half.size == (400, 320)
    in_half_pixels = predictor(half)[0]
    torch.testing.assert_close(predictions[0].scores, in_half_pixels.scores)
    torch.testing.assert_close(predictions[0].boxes, in_half_pixels.boxes * 2)
    full = predictor(load_image(data.image_paths[0]))[0]  # another input: other detections
    assert not torch.allclose(predictions[0].scores, full.scores)


@pytest.mark.skipif(not fast_bf16_supported(torch.device("cpu")), reason="no native bf16 here")
def test_bf16_predictions_stay_close_to_fp32(model_file: Path, dataset: SyntheticCoco) -> None:
    fp32 = Predictor.from_file(model_file)(dataset.image_paths)
    bf16 = Predictor.from_file(model_file, precision="bf16")(dataset.image_paths)
    for exact, fast in zip(fp32, bf16, strict=True):
        assert fast.scores.dtype == torch.float32 and fast.boxes.dtype == torch.float32
        # The best detection is the same one, its score and box at bf16 rounding (8 bits).
        assert fast.labels[0] == exact.labels[0]
        torch.testing.assert_close(fast.scores[0], exact.scores[0], atol=0.02, rtol=0)
        torch.testing.assert_close(fast.boxes[0], exact.boxes[0], atol=3.0, rtol=0)


@pytest.mark.skipif(not winograd_available(), reason="no NNPACK in this build")
def test_winograd_predictions_stay_close_to_fp32(
    model_file: Path, dataset: SyntheticCoco, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test model's convolutions are all too small to pay: take the path for every size.
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)
    monkeypatch.setattr(winograd, "MIN_PIXELS", 1)
    fp32 = Predictor.from_file(model_file)(dataset.image_paths)
    fast = Predictor.from_file(model_file, precision="winograd")(dataset.image_paths)
    for exact, approximate in zip(fp32, fast, strict=True):
        # The Winograd path was taken: its rounding moves the outputs (on some CPUs only the
        # boxes of an image with one detection).
        assert not (
            torch.equal(approximate.scores, exact.scores)
            and torch.equal(approximate.boxes, exact.boxes)
        )
        assert torch.equal(approximate.labels[:3], exact.labels[:3])
        torch.testing.assert_close(approximate.scores[:3], exact.scores[:3], atol=1e-4, rtol=0)
        torch.testing.assert_close(approximate.boxes[:3], exact.boxes[:3], atol=0.01, rtol=0)


def test_in_memory_inputs_match_the_file_and_bad_values_are_refused(
    model_file: Path, dataset: SyntheticCoco
) -> None:
    path = dataset.image_paths[0]
    array = np.array(Image.open(path).convert("RGB"))
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    predictor = Predictor.from_file(model_file)
    by_file, by_array, by_tensor, by_float = predictor([path, array, tensor, tensor.float()])
    for other in (by_array, by_tensor, by_float):
        assert torch.equal(other.boxes, by_file.boxes) and torch.equal(other.scores, by_file.scores)
    # An integer tensor within 0-255 is read as uint8.
    by_file, by_int = predictor([path, tensor.int()])
    assert torch.equal(by_int.boxes, by_file.boxes) and torch.equal(by_int.scores, by_file.scores)
    with pytest.raises(ValueError, match=r"within \[0, 1\]: multiply it by 255"):
        predictor([tensor.float() / 255])
    # Beyond 0-255, a cast would wrap 1020 to 252.
    with pytest.raises(ValueError, match=r"this int32 one does not .* scale it to uint8"):
        predictor([tensor.int() * 4])
    with pytest.raises(ValueError, match="this bool one does not"):
        predictor([tensor > 128])
    # NaN would be cast to an arbitrary pixel value.
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="NaN or infinite values"):
            predictor([tensor.float().index_fill(1, torch.tensor([0]), bad)])
    for empty in (array[:0], tensor[:, :, :0], Image.new("RGB", (0, 5))):
        with pytest.raises(ValueError, match="the image is empty"):
            predictor([empty])


def test_arrays_take_the_same_values_as_tensors(model_file: Path, dataset: SyntheticCoco) -> None:
    """A float or int array of 0-255 pixels was refused ("must be uint8") where the same
    tensor was taken: one rule for both now, with the same refusals."""
    array = np.array(Image.open(dataset.image_paths[0]).convert("RGB"))
    predictor = Predictor.from_file(model_file)
    by_uint8, by_float, by_int = predictor([array, array.astype(np.float32), array.astype(int)])
    for other in (by_float, by_int):
        assert torch.equal(other.boxes, by_uint8.boxes)
        assert torch.equal(other.scores, by_uint8.scores)
    with pytest.raises(ValueError, match=r"float array images .* within \[0, 1\]: multiply"):
        predictor(array / 255.0)
    with pytest.raises(ValueError, match="NaN or infinite values"):
        predictor(np.full((8, 8, 3), np.nan, np.float32))
    # Clipped, a normalised image or 16-bit values as floats were other pixels, silently.
    for spread in (array - 128.0, array * 256.0):
        with pytest.raises(ValueError, match=r"this one spans .* scale it to 0-255 first"):
            predictor(spread)
        with pytest.raises(ValueError, match=r"float tensor images .* this one spans"):
            predictor(torch.from_numpy(spread).permute(2, 0, 1))
    with pytest.raises(ValueError, match=r"this uint16 one does not .* scale it to uint8"):
        predictor(array.astype(np.uint16) * 256)
    with pytest.raises(ValueError, match="this bool one does not"):
        predictor(array > 128)


@pytest.mark.parametrize(
    ("image", "hint"),
    [
        (np.zeros((3, 20, 30), np.uint8), r"channels-first \(C, H, W\): give image.transpose"),
        (torch.zeros(20, 30, 3), r"channels-last \(H, W, C\): give image.permute\(2, 0, 1\)"),
        (np.zeros((2, 20, 30, 3), np.uint8), "give a batch as a list of images"),
        (torch.zeros(2, 3, 20, 30), "give a batch as a list of images"),
    ],
)
def test_a_wrong_layout_says_how_to_fix_it(
    model_file: Path, image: np.ndarray | torch.Tensor, hint: str
) -> None:
    with pytest.raises(ValueError, match=f"^<input 0>: .*{hint}"):
        Predictor.from_file(model_file)(image)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"device": "gpu"}, "device 'gpu' is not a device; use 'cpu', 'cuda'"),
        ({"batch_size": "4"}, "batch_size must be an integer >= 1, got '4'"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"num_stages": 1.5}, r"num_stages \(--stages\) 1.5: the model has stages 1..2"),
    ],
)
def test_bad_settings_are_one_error_naming_the_argument(
    model_file: Path, settings: dict[str, object], message: str
) -> None:
    """These were torch's device list, "'<' not supported between 'str' and 'int'", or a
    slicing TypeError at the first image."""
    with pytest.raises(ValueError, match=message):
        Predictor.from_file(model_file, **settings)  # type: ignore[arg-type]


def test_a_label_map_that_does_not_fit_the_model_is_refused(model_file: Path) -> None:
    """Fewer names than classes was an IndexError at the first detection of the last class;
    more names were silently taken."""
    loaded = load_model_file(model_file)
    for categories in (CategoryMap([1], ["cat"]), CategoryMap([1, 2, 3], ["a", "b", "c"])):
        with pytest.raises(ValueError, match=r"the model has 2 classes, .* label map"):
            Predictor(loaded.model, loaded.config, categories)


def test_top_and_above_select_by_rank_and_score(model_file: Path) -> None:
    (prediction,) = Predictor.from_file(model_file)(np.zeros((40, 60, 3), np.uint8))
    assert len(prediction.top(2).scores) == 2 and len(prediction.top(0).scores) == 0
    assert torch.equal(prediction.top(2).scores, prediction.scores[:2])
    threshold = float(prediction.scores[1])
    assert torch.equal(prediction.above(threshold).scores, prediction.scores[:2])
    with pytest.raises(ValueError, match="k must be >= 0, got -1"):
        prediction.top(-1)  # was no detection, where a slice [:-1] gives all but the last


def test_records_carry_the_class_name(model_file: Path, dataset: SyntheticCoco) -> None:
    predictor = Predictor.from_file(model_file)
    (prediction,) = predictor(dataset.image_paths[:1])
    records = prediction.to_coco_results()
    assert len(records) == len(prediction.scores) > 0
    names = {4: "cat", 9: "dog"}
    assert all(r["category_name"] == names[r["category_id"]] for r in records)


def test_same_stem_inputs_get_separate_drawings(
    model_file: Path, write_coco: WriteCoco, tmp_path: Path
) -> None:
    # Same stem in several folders, and in one folder the same stem in another format.
    names = ["a/x.png", "b/x.png", "a/c/x.png", "a/x.jpg"]
    images = write_coco(file_names=names, size=(40, 60), objects_per_image=0)
    inputs = images.image_paths
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
            str(inputs[1]),
            str(images.image_dir / "a"),  # a/x.png, a/c/x.png and a/x.jpg
        ]
    )
    assert code == 0
    written = sorted(str(p.relative_to(drawn)) for p in drawn.rglob("*") if p.is_file())
    assert written == [DRAWINGS_MARKER, "a/c/x.png", "a/x.jpg", "a/x.png", "b/x.png"]
    with Image.open(drawn / "a" / "x.jpg") as image:
        assert image.format == "JPEG" and image.size == (60, 40)
    records = json.loads((tmp_path / "p.json").read_text())
    assert {Path(r["file_name"]).name for r in records} <= {"x.png", "x.jpg"}


def test_drawings_are_all_or_nothing_and_replace_earlier_ones_with_a_warning(
    model_file: Path, write_coco: WriteCoco, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (image,) = write_coco(file_names=["x.png"], size=(40, 60), objects_per_image=0).image_paths
    predictor = Predictor.from_file(model_file)
    (prediction,) = predictor(image)
    drawn = tmp_path / "drawn"
    with DrawingWriter(drawn, [image], score_threshold=0.3) as writer:
        assert writer.write(prediction, predictor.categories.names) == drawn / "x.png"
        assert not (drawn / "x.png").exists()  # staged until the block ends
    assert writer.overwritten == [] and (drawn / "x.png").is_file()
    first = (drawn / "x.png").read_bytes()
    # An error in the block: nothing staged takes a place, and the earlier drawing stays.
    with pytest.raises(RuntimeError), DrawingWriter(drawn, [image], 0.0) as writer:
        writer.write(prediction, predictor.categories.names)
        raise RuntimeError("a later image failed")
    assert sorted(p.name for p in drawn.iterdir()) == [DRAWINGS_MARKER, "x.png"]
    assert (drawn / "x.png").read_bytes() == first
    with DrawingWriter(drawn, [image], score_threshold=0.3) as writer:
        writer.write(prediction, predictor.categories.names)
    assert writer.overwritten == [drawn / "x.png"]
    assert "replacing" in caplog.text


def test_a_model_with_non_finite_outputs_is_refused_naming_the_image(
    model_file: Path, tmp_path: Path
) -> None:
    """Its NaN boxes were dropped as empty after clipping: no detections, and no word."""
    predictor = Predictor.from_file(model_file)
    last = predictor.model.head.stages[-1]
    with torch.no_grad():
        last.box_deltas.bias.fill_(float("nan"))
    image = tmp_path / "broken.png"
    Image.new("RGB", (64, 48)).save(image)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(image))}: all 16 detections have"):
        predictor(image)


def test_a_non_finite_detection_is_refused_naming_its_image(tmp_path: Path) -> None:
    """Was refused as "draw_detections: ...", naming no file."""
    image = tmp_path / "x.png"
    Image.new("RGB", (20, 10)).save(image)
    prediction = Prediction(
        boxes=torch.tensor([[1.0, 1.0, float("nan"), 5.0]]),
        scores=torch.tensor([0.9]),
        labels=torch.tensor([0]),
        class_names=["cat"],
        category_ids=[3],
        image_size=(10, 20),
        source=str(image),
    )
    with (
        pytest.raises(ValueError, match=rf"^{re.escape(str(image))}: its only detection has"),
        DrawingWriter(tmp_path / "drawn", [image], score_threshold=0.3) as writer,
    ):
        writer.write(prediction, ["cat"])
    assert not any(p.is_file() for p in (tmp_path / "drawn").rglob("*"))


def test_a_folder_in_python_leaves_out_drawings_as_predict_does(
    model_file: Path, write_coco: WriteCoco, tmp_path: Path
) -> None:
    """`predict --save-images` below an input folder: the Python API then reads the folder as
    the CLI does, without those drawings."""
    folder = write_coco(file_names=["x.png", "y.png"], size=(40, 60), objects_per_image=0)
    argv = ["predict", "--model", str(model_file), str(folder.image_dir)]
    argv += ["--output", str(tmp_path / "p.json"), "--save-images", str(folder.image_dir / "d")]
    assert main(argv) == 0
    assert (folder.image_dir / "d" / "x.png").is_file()
    sources = [p.source for p in Predictor.from_file(model_file)(folder.image_dir)]
    assert sources == [str(folder.image_dir / "x.png"), str(folder.image_dir / "y.png")]


def test_with_stages_shares_the_model_and_matches_a_stage_limited_predictor(
    model_file: Path, dataset: SyntheticCoco
) -> None:
    full = Predictor.from_file(model_file)
    first = full.with_stages(1)
    assert first.model is full.model and first.num_stages == 1 and full.num_stages is None
    assert full.with_stages(None) is full
    expected = Predictor.from_file(model_file, num_stages=1)(dataset.image_paths[:2])
    got = first(dataset.image_paths[:2])
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a.scores, b.scores) and torch.equal(a.boxes, b.boxes)
    assert not torch.equal(got[0].scores, full(dataset.image_paths[:1])[0].scores)
    with pytest.raises(ValueError, match=r"stages 1\.\.2"):
        full.with_stages(3)


def test_no_device_is_the_default_device_as_the_server_takes_it(model_file: Path) -> None:
    """device=None was refused ("device None is not a device") where create_app and
    DetectionService take it for the default device."""
    predictor = Predictor.from_file(model_file, device=None)
    assert predictor.device == resolve_device(None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_one_clear_error(model_file: Path) -> None:
    with pytest.raises(ValueError, match="device 'cuda': no CUDA device is available here"):
        Predictor.from_file(model_file, device="cuda")


def test_errors_about_decoded_inputs_name_the_input(model_file: Path) -> None:
    predictor = Predictor.from_file(model_file)
    good = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match=r"^<input 2>: float array images hold 0-255 values"):
        predictor([good, good, good.astype(np.float32) + 0.5])
    with pytest.raises(ValueError, match=r"^<input 1>: tensor images must be \(3, H, W\)"):
        predictor([good, torch.zeros(4, 4)])
    # A generator is not a list of inputs: the message says what is accepted.
    with pytest.raises(TypeError, match="type generator; give a path, folder, PIL image"):
        predictor(image for image in [good])  # type: ignore[arg-type]


def test_a_lazily_opened_pil_image_that_cannot_be_read_is_named(
    model_file: Path, tmp_path: Path
) -> None:
    # Image.open reads pixels only when they are used: a truncated file, or one closed by its
    # `with` block (Pillow raised a bare AssertionError), failed in the resize, naming nothing.
    predictor = Predictor.from_file(model_file)
    good = np.zeros((8, 8, 3), np.uint8)
    path = tmp_path / "photo.jpg"
    noise = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"^<input 1>: .*cut\.jpg.*truncated"):
        predictor([good, Image.open(truncated)])
    with Image.open(path) as closed:
        pass
    with pytest.raises(ValueError, match=r"^<input 1>: .*photo\.jpg.*inside the `with Image"):
        predictor([good, closed])
    opened = Image.open(path)
    opened.close()
    with pytest.raises(ValueError, match=r"^<input 0>: .*photo\.jpg.*closed"):
        predictor(opened)


def test_an_unreadable_file_raises_naming_it_or_is_left_out_when_asked(
    model_file: Path, dataset: SyntheticCoco, tmp_path: Path
) -> None:
    """A truncated image among the files: the call raises naming it; iter_predictions with
    on_unreadable predicts every other file, in order, and hands over the bad file's error."""
    truncated = tmp_path / "cut.jpg"
    shutil.copyfile(dataset.image_paths[0], truncated)
    truncate(truncated)
    predictor = Predictor.from_file(model_file, batch_size=2)
    good = dataset.image_paths[:3]
    inputs = [good[0], truncated, *good[1:]]
    with pytest.raises(ImageReadError, match=r"cut\.jpg'"):
        predictor(inputs)
    errors: list[ImageReadError] = []
    predictions = list(predictor.iter_predictions(inputs, on_unreadable=errors.append))
    assert [p.source for p in predictions] == [str(path) for path in good]
    assert [error.path for error in errors] == [str(truncated)]
    alone = predictor(good)
    assert all(torch.equal(a.boxes, b.boxes) for a, b in zip(alone, predictions, strict=True))


def test_iteration_is_lazy_ordered_and_holds_one_decoded_image_at_a_time(
    model_file: Path, dataset: SyntheticCoco, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window of ``LOOKAHEAD_BATCHES * batch_size`` inputs is resized ahead, but each decoded
    image is freed once resized: large photos do not pile up in memory."""
    import weakref

    from sparsercnn import predictor as predictor_module

    predictor = Predictor.from_file(model_file, batch_size=2)
    missing = dataset.image_dir / "missing.png"
    iterator = predictor.iter_predictions([*dataset.image_paths, missing])  # nothing read yet
    with pytest.raises(FileNotFoundError, match=f"input {missing} does not exist"):
        next(iterator)

    decoded: list[weakref.ref[Image.Image]] = []
    alive: list[int] = []
    original_decode = predictor_module.decode_input
    transform_type = type(predictor.transform)  # a frozen dataclass: patch its class
    original_resize = transform_type.image_tensor

    def decode(image: object, transform: object) -> object:
        result = original_decode(image, transform)  # type: ignore[arg-type]
        decoded.append(weakref.ref(result.image))
        return result

    def resize(self: object, image: Image.Image) -> torch.Tensor:
        alive.append(sum(ref() is not None for ref in decoded))
        return original_resize(self, image)  # type: ignore[arg-type]

    monkeypatch.setattr(predictor_module, "decode_input", decode)
    monkeypatch.setattr(transform_type, "image_tensor", resize)
    sources = [p.source for p in predictor.iter_predictions(dataset.image_paths)]
    assert sources == [str(p) for p in dataset.image_paths]
    assert len(alive) == len(dataset.image_paths) and max(alive) == 1, alive


def test_a_reduced_mirrored_jpeg_maps_detections_by_the_dct_grid(
    model_file: Path, tmp_path: Path
) -> None:
    """A 1003-px-wide JPEG mirrored by EXIF (orientation 2), decoded reduced: its detections
    are those of the decoded image mapped by the DCT grid (k x - overhang), not by the ratio
    of sizes (see tests/data/test_image_io.py)."""
    exif = Image.Exif()
    exif[0x0112] = 2
    path = tmp_path / "mirrored.jpg"
    array = np.random.default_rng(3).integers(0, 256, (517, 1003, 3), dtype=np.uint8)
    Image.fromarray(array).save(path, quality=90, exif=exif)
    predictor = Predictor.from_file(model_file, batch_size=1)
    decoded = decode_image(path, predictor.transform.source_size)
    assert decoded.pixel_map is not None and decoded.pixel_map.offset_x < 0

    (prediction,) = predictor(path)
    (in_decoded_pixels,) = predictor(decoded.image)  # the same model input, its own pixels

    assert prediction.image_size == (517, 1003)
    scale, offset = decoded.pixel_map.scale_x, decoded.pixel_map.offset_x
    expected = in_decoded_pixels.boxes * scale + torch.tensor([offset, 0.0, offset, 0.0])
    expected = torch.minimum(expected.clamp(min=0), torch.tensor([1003.0, 517.0] * 2))
    keep = (expected[:, 2] > expected[:, 0]) & (expected[:, 3] > expected[:, 1])
    torch.testing.assert_close(prediction.boxes, expected[keep], rtol=0, atol=1e-3)
    torch.testing.assert_close(prediction.scores, in_decoded_pixels.scores[keep])


def test_prediction_subsets_keep_every_field_in_step() -> None:
    """:meth:`Prediction.above`, :meth:`Prediction.top` (the server's ``max_detections``) and
    :meth:`Prediction.subset` pick the same detections from every field."""
    prediction = Prediction(
        boxes=torch.arange(12, dtype=torch.float32).reshape(3, 4),
        scores=torch.tensor([0.8, 0.4, 0.2]),
        labels=torch.tensor([1, 0, 1]),
        class_names=["dog", "cat", "dog"],
        category_ids=[9, 4, 9],
        image_size=(10, 20),
        source="a.jpg",
    )
    picked = prediction.subset([2, 0])
    assert picked.scores.tolist() == pytest.approx([0.2, 0.8])
    assert picked.labels.tolist() == [1, 1] and picked.category_ids == [9, 9]
    assert picked.class_names == ["dog", "dog"]
    assert torch.equal(picked.boxes[1], prediction.boxes[0])
    assert (picked.image_size, picked.source) == ((10, 20), "a.jpg")
    assert prediction.top(2).class_names == ["dog", "cat"]
    assert prediction.top(5).scores.shape == (3,)
    assert prediction.above(0.3).category_ids == [9, 4]
    assert prediction.above(0.9).boxes.shape == (0, 4)


def test_a_model_file_with_an_int8_calibration_says_it_can_run_int8(
    model_file: Path, dataset: SyntheticCoco, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """predict, serve and eval of a file from ``export --int8`` ran fp32 without a word
    about ``--precision int8``: now one INFO line, and none where it runs int8 or has no
    calibration."""
    from sparsercnn.model.int8_features import int8_available
    from tests.tiny_model import write_int8_calibrated_copy

    if not int8_available():
        pytest.skip("this CPU or PyTorch build has no oneDNN int8 convolution")
    calibrated = write_int8_calibrated_copy(model_file, tmp_path / "int8.safetensors")
    note = f"{calibrated} carries an int8 calibration, unused at precision fp32: --precision int8"
    with caplog.at_level(logging.INFO):
        Predictor.from_file(calibrated)
        assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
            note + " runs its backbone and FPN in int8, faster on this CPU and approximate"
        ]
        caplog.clear()
        evaluate_model_file(calibrated, dataset.json_path, dataset.image_dir, num_workers=0)
        assert note in caplog.text
        caplog.clear()
        Predictor.from_file(calibrated, precision="int8")
        Predictor.from_file(model_file)
        assert "int8 calibration" not in caplog.text
