"""ONNX export: onnxruntime parity with the eager model + PostProcessor, metadata, OnnxPredictor.

The tiny model of tests/conftest.py is exported once per session (``onnx_export``, the slow
part: ~20-40 s on two CPU cores).
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from sparsercnn.cli import predict as predict_cli
from sparsercnn.config import Config
from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.image_io import decode_image
from sparsercnn.engine.model_evaluation import evaluate_model_file, evaluate_onnx_file
from sparsercnn.export import OnnxPredictor, export_onnx, onnx_export
from sparsercnn.export.onnx_export import (
    ExportReport,
    OnnxCheckError,
    check_graph_opset,
    match_detections,
)
from sparsercnn.export.onnx_wrapper import drop_invalid_last
from sparsercnn.model import PostProcessor, build_model
from sparsercnn.model.postprocess import select_top_k
from sparsercnn.model_file import LoadedModel, load_model_file, save_model_file
from sparsercnn.predictor import Predictor
from sparsercnn.presets import get_preset
from sparsercnn.safetensors_file import stored_tensors_crc32
from sparsercnn.structures import ImageBatch
from tests.export.failed_check import FAILED_PARITY
from tests.synthetic_coco import WriteCoco
from tests.tiny_model import write_tiny_model_file

onnxruntime = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def loaded(session_model_file: Path) -> LoadedModel:
    """The model of ``exported``: two classes with gapped category ids (3 and 7), so that label
    -> id mapping errors would show."""
    return load_model_file(session_model_file)


@pytest.fixture(scope="module")
def exported(onnx_export: ExportReport) -> ExportReport:
    """The session's export of ``loaded``'s file, with its self-check; read it, never change
    it."""
    return onnx_export


@pytest.mark.slow
def test_export_checks_itself(exported: ExportReport) -> None:
    assert exported.path.is_file() and exported.num_bytes == exported.path.stat().st_size
    assert exported.dynamic_batch
    check = exported.check
    assert check is not None and check.passed
    assert [b for b, _, _ in check.inputs] == [2, 1]
    assert check.max_box_rel_diff <= 1e-3 and check.unmatched == 0
    # Only the final file remains in the folder: the atomic write cleaned up.
    assert [p.name for p in exported.path.parent.iterdir()] == ["model.onnx"]


@pytest.mark.slow
def test_a_failed_check_says_how_to_write_the_file_anyway(tmp_path: Path) -> None:
    """The error said what failed but not what to do (only the command line added
    ``--no-check``): a caller of :func:`export_onnx` learns the parameter."""
    parity = FAILED_PARITY
    error = OnnxCheckError(tmp_path / "model.onnx", parity)
    assert str(error) == f"{error.finding}; export with check=False to write it anyway"
    assert error.finding.startswith(f"{tmp_path / 'model.onnx'}: onnxruntime disagrees with ")
    assert error.finding.endswith("unmatched=1)); the file was not written")
    assert error.path == tmp_path / "model.onnx" and error.parity is parity


def test_a_failed_check_pickles_as_itself(tmp_path: Path) -> None:
    """Was: ``pickle.loads`` raised TypeError (the args held the message alone), so the error
    could not cross to another process (a DataLoader worker, a multiprocessing pool)."""
    error = OnnxCheckError(tmp_path / "model.onnx", FAILED_PARITY, graph="its fp32 graph")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is OnnxCheckError and str(copy) == str(error)
    assert (copy.path, copy.parity, copy.finding) == (error.path, error.parity, error.finding)
    assert "PyTorch on its fp32 graph (" in copy.finding


def test_graph_has_no_scatter_or_loop(exported: ExportReport) -> None:
    """The head's level table is one Concat and every stage is unrolled: no ScatterND (a zeroed
    table written slice by slice, ~4x slower in onnxruntime) and no data-dependent control flow."""
    import onnx

    op_types = {node.op_type for node in onnx.load(str(exported.path)).graph.node}
    assert "Concat" in op_types
    assert not op_types & {"ScatterND", "ScatterElements", "Loop", "If", "NonZero"}


@pytest.mark.slow
def test_metadata_describes_the_model(
    exported: ExportReport, loaded: LoadedModel, session_model_file: Path
) -> None:
    session = onnxruntime.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    metadata = session.get_modelmeta().custom_metadata_map
    assert metadata["format"] == "sparsercnn-onnx"
    assert json.loads(metadata["class_names"]) == loaded.categories.names
    assert json.loads(metadata["category_ids"]) == loaded.categories.category_ids
    assert int(metadata["test_min_size"]) == loaded.config.input.test_min_size
    assert int(metadata["test_max_size"]) == loaded.config.input.test_max_size
    assert int(metadata["size_divisibility"]) == 32
    assert int(metadata["num_proposals"]) == loaded.config.model.num_proposals
    assert Config.from_dict(json.loads(metadata["config"])) == loaded.config
    assert "pixel_mean" in metadata and "preprocessing" in metadata
    # What serve checks its --onnx against: the model file's own CRC-32, not computed again.
    assert metadata["weights_crc32"] == stored_tensors_crc32(session_model_file) is not None
    # Dynamic batch, height and width axes.
    assert [i.name for i in session.get_inputs()] == ["images", "image_sizes", "original_sizes"]
    batch, _, height, width = session.get_inputs()[0].shape
    assert all(isinstance(axis, str) for axis in (batch, height, width))
    assert [o.name for o in session.get_outputs()] == [
        "boxes",
        "scores",
        "labels",
        "num_detections",
    ]
    assert metadata["format_version"] == "2"


def _inputs(
    batch_size: int, size: tuple[int, int], seed: int
) -> tuple[list[torch.Tensor], list[tuple[int, int]]]:
    """uint8 resized images (the first ``size``, the others smaller) and their original sizes."""
    generator = torch.Generator().manual_seed(seed)
    images, originals = [], []
    for i in range(batch_size):
        h, w = size[0] - 9 * i, size[1] - 13 * i
        images.append(torch.randint(0, 256, (3, h, w), generator=generator, dtype=torch.uint8))
        originals.append((int(h * 2.5), int(w * 2.5)))
    return images, originals


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("size", [(128, 171), (160, 107)])
def test_onnxruntime_matches_pytorch(
    exported: ExportReport,
    loaded: LoadedModel,
    batch_size: int,
    size: tuple[int, int],
) -> None:
    images, originals = _inputs(batch_size, size, seed=batch_size * 1000 + size[0])
    with torch.no_grad():
        output = loaded.model.eval()([image.float() for image in images])
    expected = PostProcessor(clip_boxes=True)(output, originals)

    session = onnxruntime.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    batch = ImageBatch.from_tensors(images, 32)
    boxes, scores, labels, num_detections = session.run(
        None,
        {
            "images": batch.tensor.float().numpy(),
            "image_sizes": batch.image_sizes.numpy(),
            "original_sizes": np.array(originals, dtype=np.int64),
        },
    )
    assert boxes.shape == (batch_size, loaded.config.model.num_proposals, 4)
    assert labels.dtype == np.int64 and num_detections.dtype == np.int64
    assert num_detections.shape == (batch_size,)
    for i, detections in enumerate(expected):
        num_kept = int(num_detections[i])
        keep = np.arange(len(scores[i])) < num_kept
        # Removed (empty after clipping) boxes come after the num_detections real ones.
        assert (scores[i][~keep] == 0).all()
        assert num_kept == len(detections["scores"])
        np.testing.assert_array_equal(labels[i][keep], detections["labels"].numpy())
        torch.testing.assert_close(
            torch.from_numpy(boxes[i][keep]), detections["boxes"], rtol=1e-3, atol=1e-2
        )
        torch.testing.assert_close(
            torch.from_numpy(scores[i][keep]), detections["scores"], rtol=0, atol=1e-5
        )


def test_removed_boxes_are_counted_out_and_go_last() -> None:
    logits = torch.tensor([[[4.0, -9.0], [3.0, -9.0], [2.0, -9.0]]])  # (1, N=3, C=2)
    boxes = torch.tensor([[[10.0, 10, 50, 50], [-40, 5, -10, 30], [20, 20, 60, 90]]])
    sizes = torch.tensor([[100, 100]])
    top = select_top_k(logits, boxes, sizes, sizes * 2, clip=True)
    out_boxes, scores, labels, num_detections = drop_invalid_last(top)
    assert num_detections.tolist() == [2]
    # Proposal 1 lies left of the image: clipped to zero width, counted out, moved last.
    torch.testing.assert_close(scores[0, :2], torch.sigmoid(torch.tensor([4.0, 2.0])))
    assert (scores[0, 2:] == 0).all()
    torch.testing.assert_close(out_boxes[0, 0], torch.tensor([20.0, 20, 100, 100]))
    torch.testing.assert_close(out_boxes[0, 1], torch.tensor([40.0, 40, 120, 180]))
    assert out_boxes[0, 2, 2] <= out_boxes[0, 2, 0]
    assert labels[0, :2].tolist() == [0, 0]

    unclipped = select_top_k(logits, boxes, sizes, sizes * 2, clip=False)
    assert (unclipped.scores > 0).all() and unclipped.valid.all()
    assert drop_invalid_last(unclipped)[3].tolist() == [3]


def test_a_real_detection_scoring_zero_is_not_removed() -> None:
    """A logit below about -104 gives a float32 sigmoid score of exactly 0: the detection is
    still real (PostProcessor keeps it), so the count, not the score, tells it from a removed
    box."""
    logits = torch.tensor([[[4.0], [-300.0], [2.0]]])  # (1, N=3, C=1)
    boxes = torch.tensor([[[10.0, 10, 50, 50], [20, 20, 60, 90], [-40, 5, -10, 30]]])
    sizes = torch.tensor([[100, 100]])
    top = select_top_k(logits, boxes, sizes, sizes, clip=True)
    out_boxes, scores, _, num_detections = drop_invalid_last(top)
    assert num_detections.tolist() == [2] and scores[0, 1] == 0
    torch.testing.assert_close(out_boxes[0, 1], boxes[0, 1])
    assert len(top.per_image()[0]["scores"]) == 2  # what PostProcessor returns


def _write_images(write_coco: WriteCoco) -> Path:
    """A folder of three images of mixed sizes and formats."""
    names = ["a.png", "b.png", "c.jpg"]
    return write_coco(file_names=names, size=[(300, 400), (420, 280), (250, 250)]).image_dir


@pytest.mark.slow
def test_onnx_predictor_matches_predictor(
    exported: ExportReport, loaded: LoadedModel, write_coco: WriteCoco
) -> None:
    folder = _write_images(write_coco)
    expected = Predictor(loaded.model, loaded.config, loaded.categories, batch_size=2)(folder)
    actual = OnnxPredictor(exported.path, batch_size=2)(folder)
    assert [p.source for p in actual] == [p.source for p in expected]
    for a, e in zip(actual, expected, strict=True):
        assert a.image_size == e.image_size
        assert a.labels.tolist() == e.labels.tolist()
        assert a.class_names == e.class_names and a.category_ids == e.category_ids
        torch.testing.assert_close(a.boxes, e.boxes, rtol=1e-3, atol=1e-2)
        torch.testing.assert_close(a.scores, e.scores, rtol=0, atol=1e-5)
    # Without spinning threads (beside other work on the cores), the same detections.
    quiet = OnnxPredictor(exported.path, batch_size=2, allow_spinning=False)
    options = quiet.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    for a, q in zip(actual, quiet(folder), strict=True):
        assert torch.equal(a.boxes, q.boxes) and torch.equal(a.scores, q.scores)


@pytest.mark.slow
def test_predict_cli_with_onnx(
    exported: ExportReport,
    write_coco: WriteCoco,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser()
    predict_cli.add_parser(parser.add_subparsers())
    folder = _write_images(write_coco)
    output = tmp_path / "predictions.json"
    args = parser.parse_args(
        ["predict", "--onnx", str(exported.path), str(folder), "--output", str(output)]
    )
    assert args.handler(args) == 0
    # Where it ran, in eval's words.
    assert "; run on cpu (onnxruntime CPUExecutionProvider)\n" in capsys.readouterr().out
    records = json.loads(output.read_text())
    assert {r["file_name"] for r in records} == {str(p) for p in folder.iterdir()}
    assert {r["category_id"] for r in records} == {3, 7}
    with pytest.raises(SystemExit):  # --model and --onnx are mutually exclusive
        parser.parse_args(["predict", "--onnx", "a.onnx", "--model", "b", str(folder)])


def test_corrupt_onnx_file_gives_a_clear_error(tmp_path: Path) -> None:
    corrupt = tmp_path / "broken.onnx"
    corrupt.write_bytes(b"\x08\x07this is not a protobuf" * 10)
    with pytest.raises(ValueError, match=r"broken\.onnx is not a valid ONNX model"):
        OnnxPredictor(corrupt)
    with pytest.raises(FileNotFoundError, match=r"missing\.onnx"):
        OnnxPredictor(tmp_path / "missing.onnx")


def test_a_model_file_given_as_onnx_is_named_as_one(tmp_path: Path) -> None:
    """``predict --onnx model.safetensors`` (whatever its name) says to give it with --model,
    not to re-export it."""
    model = write_tiny_model_file(tmp_path / "model.safetensors")
    renamed = tmp_path / "model.onnx"
    renamed.write_bytes(model.read_bytes())
    for path in (model, renamed):
        with pytest.raises(
            ValueError, match=r"is a model file \(\.safetensors\), not an ONNX"
        ) as info:
            OnnxPredictor(path)
        message = str(info.value)
        assert message.startswith(f"--onnx {path} is a model file")  # the flag that gave it
        assert "give it with --model in place of --onnx" in message


def test_an_opset_the_exporter_could_not_write_is_refused() -> None:
    """Asked for opset 26, torch 2.13's exporter writes an opset-18 graph holding opset-23
    operators (Attention), which onnxruntime refuses; asked for 17, an opset-18 graph: the
    export fails, naming --opset, instead of writing a file its report calls opset 26 or 17."""
    onnx = pytest.importorskip("onnx")
    helper = onnx.helper
    graph = helper.make_graph([], "empty", [], [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    check_graph_opset(model, 18)
    with pytest.raises(ValueError, match=r"opset \(--opset\) 26: .* cannot write opset 26 "):
        check_graph_opset(model, 26)
    with pytest.raises(ValueError, match=r"opset \(--opset\) 17: .* it writes opset 18 and newer"):
        check_graph_opset(model, 17)


def test_an_opset_outside_the_exporters_range_is_refused_before_tracing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asked for opset 17, torch 2.13's exporter traced for a minute before
    :func:`check_graph_opset` refused the opset-18 graph it wrote."""
    monkeypatch.setattr(onnx_export, "writable_opsets", lambda: range(18, 26))
    monkeypatch.setattr(onnx_export, "load_model_file", lambda _: pytest.fail("loaded the model"))
    for opset in (16, 17, 26):
        with pytest.raises(ValueError, match=rf"^opset \(--opset\) {opset}: ") as info:
            export_onnx(tmp_path / "model.safetensors", tmp_path / "model.onnx", opset=opset)
        # 16 named the graph's minimum (17) alone, which was refused next.
        assert "writes opsets 18 to 25" in str(info.value)
        assert "the default is 18" in str(info.value)
    assert not (tmp_path / "model.onnx").exists()


def test_the_writable_opsets_run_from_torchs_to_the_converters_newest() -> None:
    """torch has no public name for the opset its ONNX functions are written in: when an upgrade
    moves the private one, this fails (the opset check would otherwise silently stop). The
    newest comes from onnxscript's public converter, and agrees with its private constant."""
    pytest.importorskip("onnxscript")
    from onnxscript.version_converter import _version_converter

    oldest = onnx_export.torchlib_opset()
    assert oldest is not None, "torch moved TORCHLIB_OPSET: find where it names it now"
    newest = getattr(_version_converter, "SUPPORTED_MAX_ONNX_OPSET", None)
    assert onnx_export.writable_opsets() == range(oldest, (newest or oldest) + 1)


def test_without_torchs_opset_only_the_graphs_minimum_is_checked_before_the_export(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(onnx_export, "torchlib_opset", lambda: None)
    assert onnx_export.writable_opsets() is None
    onnx_export.check_opset(99)  # left to the check of the written graph
    with pytest.raises(ValueError, match=r"^opset \(--opset\) 16: the graph needs opset 17"):
        onnx_export.check_opset(16)


def test_a_converter_that_leaves_the_graph_as_it_is_reaches_no_newer_opset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The probe reads what the converter did, not only whether it raised."""
    version_converter = pytest.importorskip("onnxscript.version_converter")
    monkeypatch.setattr(version_converter, "convert_version", lambda *_, **__: None)
    assert onnx_export.newest_convertible_opset(18) == 18


def test_finding_the_writable_opsets_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """onnxscript's converter logs its graph passes at INFO: probing the opsets before an
    export put 15 lines of "No unused functions to remove" on the console, twice."""
    pytest.importorskip("onnxscript")
    with caplog.at_level(logging.INFO):
        assert onnx_export.writable_opsets() is not None
    assert [record.getMessage() for record in caplog.records] == []


def test_the_summary_says_what_its_time_measures(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    report = ExportReport(path, 18, "torch.export", True, 2**20, 2.0, None, metadata={})
    assert (
        report.summary()
        == f"wrote {path} in 2.0 s (1.0 MiB, opset 18, torch.export, batch dynamic)"
    )


def test_foreign_onnx_file_is_rejected(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "identity.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.save(model, str(path))
    with pytest.raises(ValueError, match=r"identity\.onnx is an ONNX model but not a sparsercnn"):
        OnnxPredictor(path)


def test_match_detections_tolerates_swapped_near_ties() -> None:
    boxes = np.array([[0.0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 2, 2]], dtype=np.float32)
    scores = np.array([0.9, 0.5, 0.1], dtype=np.float32)
    labels = np.array([1, 2, 3])
    swapped = [1, 0, 2]
    expected = [boxes[swapped], scores[swapped] + 1e-6, labels[swapped]]
    assert match_detections([boxes + 0.01, scores, labels], expected, 1e-4) == (
        pytest.approx(0.01, abs=1e-6),
        0,
    )
    wrong_labels = [boxes, scores, labels + 1]
    assert match_detections(wrong_labels, [boxes, scores, labels], 1e-4)[1] == 2


def test_match_detections_ignores_which_tied_proposals_fill_the_top_k() -> None:
    """Scores tied at the top-k boundary (here all 0: logits below -104) may be filled from
    other proposals by each runtime's top-k: that is no disagreement (it failed the export's
    check with a box difference of 168 px)."""
    boxes = np.array([[0.0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 2, 2]], dtype=np.float32)
    scores = np.array([0.9, 0.0, 0.0], dtype=np.float32)
    labels = np.array([1, 1, 1])
    found = [boxes, scores, labels]
    other = boxes.copy()
    other[1:] = [[30, 30, 90, 90], [40, 40, 80, 80]]
    assert match_detections(found, [other, scores, labels], 1e-4) == (0.0, 0)
    other[0] += 2
    assert match_detections(found, [other, scores, labels], 1e-4)[0] == 2
    nothing = [boxes[:0], scores[:0], labels[:0]]
    assert match_detections(nothing, found, 1e-4) == (0.0, 0)
    assert match_detections(found, nothing, 1e-4) == (0.0, 3)


@pytest.mark.slow
def test_reduced_and_rotated_jpegs_give_the_eager_detections(
    exported: ExportReport, session_model_file: Path, tmp_path: Path
) -> None:
    """Large JPEGs, decoded at a reduced scale and turned upright or mirrored by EXIF: predict
    --onnx and eval --onnx give the eager detections in the file's pixels (the same pixel map),
    and eval's results are predict's."""
    rng = np.random.default_rng(5)
    folder = tmp_path / "images"
    folder.mkdir()
    for name, orientation, size in [("rotated", 6, (603, 801)), ("mirrored", 2, (517, 1003))]:
        exif = PIL.Image.Exif()
        exif[0x0112] = orientation
        array = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        PIL.Image.fromarray(array).save(folder / f"{name}.jpg", quality=90, exif=exif)
    paths = sorted(folder.iterdir())
    eager = Predictor.from_file(session_model_file, batch_size=1)
    onnx_predictor = OnnxPredictor(exported.path, batch_size=1)
    decoded = [decode_image(path, onnx_predictor.transform.source_size) for path in paths]
    assert all(d.pixel_map is not None for d in decoded)  # the reduced-JPEG path
    expected, actual = eager(paths), onnx_predictor(paths)
    for a, e in zip(actual, expected, strict=True):
        assert a.image_size == e.image_size and len(a.scores) == len(e.scores) > 0
        assert a.labels.tolist() == e.labels.tolist()
        torch.testing.assert_close(a.boxes, e.boxes, rtol=0, atol=1e-2)
    assert expected[0].image_size == (517, 1003) and expected[1].image_size == (801, 603)

    coco = {
        "images": [
            {"id": i + 1, "file_name": p.name, "height": e.image_size[0], "width": e.image_size[1]}
            for i, (p, e) in enumerate(zip(paths, expected, strict=True))
        ],
        "annotations": [
            {"id": i + 1, "image_id": i + 1, "category_id": 3, "bbox": [10, 10, 200, 100],
             "area": 20000, "iscrowd": 0}
            for i in range(len(paths))
        ],
        "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
    }  # fmt: skip
    json_path = tmp_path / "eval.json"
    json_path.write_text(json.dumps(coco))
    options = {"batch_size": 1, "num_workers": 0}
    by_model = evaluate_model_file(session_model_file, json_path, folder, **options)
    by_onnx = evaluate_onnx_file(exported.path, json_path, folder, **options)
    for m, o, e in zip(
        by_model.evaluation.detections, by_onnx.evaluation.detections, expected, strict=True
    ):
        torch.testing.assert_close(o["boxes"], m["boxes"], rtol=0, atol=1e-2)
        torch.testing.assert_close(o["boxes"], e.boxes, rtol=0, atol=1e-2)


def _write_hopeless_model_file(path: Path) -> Path:
    """A one-class tiny model whose class logit is -1000 everywhere: every float32 score is
    exactly 0, yet every box is a detection that PostProcessor keeps (one class: top-k takes
    every proposal, so no tie decides which)."""
    cfg = get_preset("tiny")
    cfg.model.num_classes = 1
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("class_logits.weight"):
                parameter.zero_()
            elif name.endswith("class_logits.bias"):
                parameter.fill_(-1000.0)
    return save_model_file(path, model, cfg, CategoryMap([5], ["thing"]))


@pytest.mark.slow
def test_detections_scoring_zero_are_kept_as_pytorch_keeps_them(
    write_coco: WriteCoco, tmp_path: Path
) -> None:
    model_file = _write_hopeless_model_file(tmp_path / "hopeless.safetensors")
    exported = export_onnx(model_file, tmp_path / "hopeless.onnx")
    assert exported.check is not None and exported.check.passed
    folder = _write_images(write_coco)
    expected = Predictor.from_file(model_file, batch_size=1)(folder)
    actual = OnnxPredictor(exported.path, batch_size=1)(folder)
    for a, e in zip(actual, expected, strict=True):
        assert len(e.scores) > 0 and (e.scores == 0).all()
        assert len(a.scores) == len(e.scores) and (a.scores == 0).all()
        assert a.category_ids == e.category_ids
        # Tied scores: the two runtimes may order them differently, so compare the box sets.
        torch.testing.assert_close(_sorted_rows(a.boxes), _sorted_rows(e.boxes), atol=1e-2, rtol=0)


def _sorted_rows(boxes: torch.Tensor) -> torch.Tensor:
    order = np.lexsort(boxes.numpy().T[::-1])
    return boxes[torch.from_numpy(order)]


@pytest.mark.slow
def test_a_graph_of_export_format_1_is_refused_clearly(
    exported: ExportReport, tmp_path: Path
) -> None:
    """Version 1 graphs had no num_detections output (removed boxes were told by a score of 0):
    loading one says it is old and to re-export, before any inference."""
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(exported.path))
    for prop in model.metadata_props:
        if prop.key == "format_version":
            prop.value = "1"
    old = tmp_path / "old.onnx"
    onnx.save(model, str(old))
    with pytest.raises(ValueError, match=r"old\.onnx was exported by an older sparsercnn") as info:
        OnnxPredictor(old)
    assert "num_detections" in str(info.value) and "sparsercnn export" in str(info.value)


def test_a_graph_of_a_newer_export_format_says_to_upgrade() -> None:
    """Re-exporting (the only advice) cannot help the user of an older sparsercnn given a newer
    file; an unknown version still says to re-export."""
    metadata = {"format": onnx_export.METADATA_FORMAT, "format_version": "3"}
    with pytest.raises(ValueError, match=r"^new\.onnx has export format version '3'; ") as info:
        onnx_export.parse_metadata(metadata, "new.onnx")
    assert "reads version 2: it was written by a newer sparsercnn: upgrade" in str(info.value)
    with pytest.raises(ValueError, match=r"reads version 2: re-export the model$"):
        onnx_export.parse_metadata({**metadata, "format_version": "2b"}, "odd.onnx")


def test_adaptive_roi_sampling_is_refused_before_tracing(tmp_path: Path) -> None:
    """model.sampling_ratio=0 used to fail inside torch.export with a long TorchExportError."""
    pytest.importorskip("onnxscript")
    cfg = get_preset("tiny")
    cfg.model.num_classes = 1
    cfg.model.sampling_ratio = 0
    model_file = save_model_file(
        tmp_path / "adaptive.safetensors", build_model(cfg), cfg, CategoryMap([1], ["thing"])
    )
    with pytest.raises(ValueError, match=r"adaptive\.safetensors: model\.sampling_ratio=0 \("):
        export_onnx(model_file, tmp_path / "adaptive.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adaptive.safetensors"]


@pytest.mark.slow
@pytest.mark.parametrize(("test_min_size", "test_max_size"), [(24, 32), (36, 64)])
def test_a_model_resizing_to_small_or_unpadded_sides_exports_and_checks(
    tmp_path: Path, test_min_size: int, test_max_size: int
) -> None:
    """The tracing example was the check image at the test size: 24x32 failed in torch.export
    ("24 not in range [33, 4096]"; the recipe sets a 32 px short side for small images), and
    36x48 (a width that is no multiple of 32, as a 256 px short side's 256x341 is) on a guard
    of its padding."""
    cfg = get_preset("tiny")
    cfg.model.num_classes = 2
    cfg.input.test_min_size, cfg.input.test_max_size = test_min_size, test_max_size
    torch.manual_seed(0)
    model_file = save_model_file(
        tmp_path / "small.safetensors", build_model(cfg), cfg, CategoryMap([3, 7], ["a", "b"])
    )
    report = export_onnx(model_file, tmp_path / "small.onnx")
    assert report.check is not None and report.check.passed, report.check
    assert report.check.inputs[0] == (2, test_min_size, test_min_size * 4 // 3)
    # OnnxPredictor pads to 32: a 32x32 input (a 1x1 P5 level) for the 24 px model.
    image = np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    expected = Predictor.from_file(model_file)([image])[0]
    actual = OnnxPredictor(report.path)([image])[0]
    assert actual.category_ids == expected.category_ids
    torch.testing.assert_close(actual.boxes, expected.boxes, atol=1e-2, rtol=0)
    torch.testing.assert_close(actual.scores, expected.scores, atol=1e-4, rtol=0)


def test_the_readme_and_export_help_state_the_checks_tolerances() -> None:
    """The README said the ONNX predictor "reproduces the PyTorch post-processing exactly":
    true of which detections it keeps, not of their numbers, which agree within the check's
    tolerances."""
    from sparsercnn.cli import export as export_cli

    def power(value: float) -> str:
        return f"{value:.0e}".replace("e-0", "e-")

    stated = (
        f"a score within {power(onnx_export.SCORE_TOLERANCE)} and box coordinates within "
        f"{power(onnx_export.BOX_TOLERANCE)} of the image's longer side"
    )
    parser = argparse.ArgumentParser()
    export_cli.add_parser(parser.add_subparsers())
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    help_text = " ".join(subparsers.choices["export"].description.split())
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    deploy = " ".join(readme.split("## Deploy")[1].split("\n## ")[0].split())
    for text in (help_text, deploy):
        assert stated in text and "up to float rounding, not to the bit" in text
    assert "exactly" not in deploy
