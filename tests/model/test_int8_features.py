"""int8 features: quantization arithmetic, calibration records, the int8 graph against the float
backbone and FPN (both block types), and the detector's ``precision="int8"``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sparsercnn.model import SparseRCNN, build_model, inference
from sparsercnn.model.inference import evaluating
from sparsercnn.model.int8_features import (
    PACKED_SHAPES,
    ActivationRange,
    Int8Calibration,
    Int8Convolution,
    Int8Features,
    calibrate,
    int8_available,
    int8_features,
    quantize,
)
from sparsercnn.presets import get_preset

needs_int8 = pytest.mark.skipif(
    not int8_available(), reason="no oneDNN int8 convolution in this build or on this CPU"
)


def _relative_error(actual: Tensor, expected: Tensor) -> float:
    return float((actual.float() - expected).norm() / expected.norm())


@pytest.fixture(autouse=True)
def _no_autograd() -> Iterator[None]:
    with torch.no_grad():
        yield


def _model(depth: int, width: int) -> SparseRCNN:
    """A small random model, with random norm statistics so that folding them matters."""
    config = get_preset("tiny")
    config.model.backbone_depth, config.model.backbone_width = depth, width
    torch.manual_seed(0)
    model = build_model(config).eval()
    for module in model.backbone.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.2, 0.2)
    return model


def _batch(model: SparseRCNN, num_images: int = 2, size: tuple[int, int] = (96, 128)) -> Tensor:
    generator = torch.Generator().manual_seed(1)
    images = [torch.randint(0, 256, (3, *size), generator=generator) for _ in range(num_images)]
    return model.preprocess(images).tensor.contiguous(memory_format=torch.channels_last)


def test_activation_ranges_cover_zero_and_quantize_to_their_ends() -> None:
    positive = ActivationRange()
    positive.observe(torch.tensor([0.5, 2.55]))
    assert positive.quantization() == pytest.approx((0.01, 0))
    signed = ActivationRange()
    signed.observe(torch.tensor([-1.0, 1.55]))
    scale, zero_point = signed.quantization()
    assert scale == pytest.approx(0.01) and zero_point == 100
    x = torch.tensor([-1.0, 0.0, 0.004, 0.006, 1.55, 9.0, -9.0])
    assert quantize(x, (scale, zero_point)).tolist() == [0, 100, 100, 101, 255, 255, 0]


def test_calibration_records_round_trip_and_refuse_damage() -> None:
    calibration = Int8Calibration({"stem": ActivationRange(0.0, 3.5)}, num_images=4)
    again = Int8Calibration.from_json(calibration.to_json())
    assert again == calibration
    with pytest.raises(ValueError, match=r"no range for 'layer1\.0'.*calibrate this model again"):
        again.quantization("layer1.0")
    with pytest.raises(ValueError, match="damaged int8 calibration record"):
        Int8Calibration.from_json('{"ranges": {"stem": [0.0]}, "num_images": 1}')


@needs_int8
@pytest.mark.parametrize("relu", [False, True])
def test_a_convolution_matches_its_float_version_within_quantization(relu: bool) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 32, 3, stride=2, padding=1)
    x = torch.rand(2, 16, 20, 24).contiguous(memory_format=torch.channels_last) * 3
    expected = F.conv2d(x, conv.weight, conv.bias, 2, 1)
    if relu:
        expected = F.relu(expected)
    int8 = Int8Convolution.from_layers(conv)
    output = ActivationRange()
    output.observe(expected)
    int8.prepare((3 / 255, 0), output.quantization())
    q = quantize(x, int8.input)
    as_uint8 = int8(q, relu=relu)
    as_float = int8(q, relu=relu, dtype=torch.float32)
    assert as_uint8.dtype == torch.uint8 and as_float.dtype == torch.float32
    scale, zero_point = int8.output
    assert _relative_error((as_uint8.float() - zero_point) * scale, expected) < 0.03
    assert _relative_error(as_float, expected) < 0.03


@needs_int8
def test_the_fused_sum_adds_the_accumulator() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 1)
    x = torch.rand(1, 8, 10, 12).contiguous(memory_format=torch.channels_last)
    shortcut = torch.randn(1, 8, 10, 12).contiguous(memory_format=torch.channels_last)
    expected = F.relu(conv(x) + shortcut)
    int8 = Int8Convolution.from_layers(conv)
    accumulator_range, output_range = ActivationRange(), ActivationRange()
    accumulator_range.observe(shortcut)
    output_range.observe(expected)
    int8.prepare((1 / 255, 0), output_range.quantization())
    accumulator = quantize(shortcut, accumulator_range.quantization())
    result = int8.add_into(
        quantize(x, int8.input), accumulator, accumulator_range.quantization(), True
    )
    scale, zero_point = int8.output
    assert _relative_error((result.float() - zero_point) * scale, expected) < 0.03


@needs_int8
def test_weights_are_packed_once_per_input_shape_and_give_the_same_outputs() -> None:
    torch.manual_seed(0)
    int8 = Int8Convolution.from_layers(nn.Conv2d(16, 32, 3, padding=1))
    with pytest.raises(RuntimeError, match="not prepared"):
        int8.packed(torch.zeros(1, 16, 8, 8, dtype=torch.uint8))
    int8.prepare((1 / 255, 3), (0.05, 0))
    shapes = [(1, 16, 8 + 4 * i, 12) for i in range(PACKED_SHAPES + 1)]
    inputs = [
        torch.randint(0, 256, shape, dtype=torch.uint8).contiguous(
            memory_format=torch.channels_last
        )
        for shape in shapes
    ]
    first = [int8(x, relu=True) for x in inputs]
    packed = int8.packed(inputs[-1])
    assert int8.packed(inputs[-1].clone()) is packed  # same shape: packed once
    assert int8.packed(inputs[-2]) is not packed
    # The first shape fell out of the last PACKED_SHAPES: packed again, same outputs.
    assert all(torch.equal(int8(x, relu=True), y) for x, y in zip(inputs, first, strict=True))


@pytest.mark.parametrize(("depth", "width"), [(18, 16), (50, 8)])
def test_calibration_runs_the_float_backbone_and_fpn(depth: int, width: int) -> None:
    model = _model(depth, width)
    batch = _batch(model)
    with torch.no_grad():
        expected = model.fpn(model.backbone(batch))
        calibration = Int8Calibration()
        observed = Int8Features(model.backbone, model.fpn, None).observe(batch, calibration)
    for a, b in zip(observed, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    blocks = {18: 8, 50: 16}[depth]
    inner = {18: 1, 50: 2}[depth]  # ReLU outputs inside a block
    projections = {18: 3, 50: 4}[depth]  # ResNet-18's layer1 keeps its width: no projection
    assert len(calibration.ranges) == 1 + blocks * (1 + inner) + projections + 4
    assert calibration.ranges["layer1.0.conv1"].low == 0  # after a ReLU
    assert calibration.ranges["fpn.merged2"].low < 0 < calibration.ranges["fpn.merged2"].high


@needs_int8
@pytest.mark.parametrize(("depth", "width"), [(18, 16), (50, 8)])
def test_int8_features_are_close_to_the_float_ones(depth: int, width: int) -> None:
    model = _model(depth, width)
    batch = _batch(model)
    with torch.no_grad():
        expected = model.fpn(model.backbone(batch))
        calibration = calibrate(model.backbone, model.fpn, [batch[:1], batch[1:]])
        features = Int8Features(model.backbone, model.fpn, calibration)(batch)
    assert calibration.num_images == 2
    for a, b in zip(features, expected, strict=True):
        assert a.dtype == torch.float32 and a.shape == b.shape
        assert a.is_contiguous(memory_format=torch.channels_last)
        assert 0 < _relative_error(a, b) < 0.08


def test_an_uncalibrated_graph_does_not_run_and_training_norms_are_refused() -> None:
    model = _model(18, 16)
    graph = Int8Features(model.backbone, model.fpn, None)
    with pytest.raises(RuntimeError, match="no calibration"):
        graph(_batch(model))
    with pytest.raises(ValueError, match=r"fixed norm statistics: call model\.eval"):
        Int8Features(model.backbone.train(), model.fpn, None)
    with pytest.raises(ValueError, match="at least one image"):
        calibrate(model.backbone.eval(), model.fpn, [])


@needs_int8
def test_the_detector_in_int8_precision_is_close_to_fp32() -> None:
    model = _model(18, 64)
    images = [torch.randint(0, 256, (3, 96, 128)).float() for _ in range(2)]
    with torch.no_grad():
        model.set_int8_calibration(
            calibrate(model.backbone, model.fpn, [model.preprocess(images).tensor])
        )
    with evaluating(model):
        exact = model(images)
    with evaluating(model, "int8"):
        fast = model(images)
    for a, b in zip(exact.stages, fast.stages, strict=True):
        assert not torch.equal(a.logits, b.logits)
        assert _relative_error(b.logits, a.logits) < 0.05
        # An untrained head amplifies the features' rounding (~3%) into its boxes.
        assert _relative_error(b.boxes, a.boxes) < 0.1
    # Outside the block, and wherever gradients flow, the features are the float ones.
    with torch.no_grad():
        assert torch.equal(model(images).stages[-1].logits, exact.stages[-1].logits)
    with torch.enable_grad(), int8_features():
        trained = model(images)
    torch.testing.assert_close(trained.stages[-1].logits, exact.stages[-1].logits)


@needs_int8
def test_a_new_calibration_rebuilds_the_int8_graph() -> None:
    model = _model(18, 16)
    images = [torch.randint(0, 256, (3, 64, 64)).float()]
    with torch.no_grad():
        calibration = calibrate(model.backbone, model.fpn, [model.preprocess(images).tensor])
    model.set_int8_calibration(calibration)
    with evaluating(model, "int8"):
        first = model(images).stages[-1].logits
    wider = Int8Calibration(
        {name: ActivationRange(r.low * 4, r.high * 4) for name, r in calibration.ranges.items()},
        calibration.num_images,
    )
    model.set_int8_calibration(wider)
    with evaluating(model, "int8"):
        assert not torch.equal(model(images).stages[-1].logits, first)


def test_int8_is_refused_without_calibration_off_the_cpu_and_without_the_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValueError, match=r"run on CPUs \(oneDNN\), not on cuda.*use fp32 or bf16"):
        inference.check_precision("int8", torch.device("cuda"))
    model = _model(18, 16)
    if int8_available():
        refused = pytest.raises(ValueError, match=r"needs a calibrated model file.*export --int8")
        with refused, evaluating(model, "int8"):
            pass
    monkeypatch.setattr(inference, "int8_available", lambda: False)
    with pytest.raises(ValueError, match="no oneDNN int8 convolution; use fp32"):
        inference.check_precision("int8", torch.device("cpu"))


@needs_int8
def test_a_calibrated_graph_keeps_no_float_weights_but_the_stems() -> None:
    model = _model(18, 16)
    batch = _batch(model)
    graph = Int8Features(model.backbone, model.fpn, calibrate(model.backbone, model.fpn, [batch]))
    convolutions = [conv for stage in graph.blocks for block in stage for conv in block.convs]
    assert all(conv.weight is None for conv in [*convolutions, *graph.laterals, *graph.outputs])
    assert graph.stem.weight is not None
    with pytest.raises(RuntimeError, match="prepared already"):
        graph.outputs[0].prepare((1.0, 0), (1.0, 0))
    with pytest.raises(RuntimeError, match="no float weight left"):
        graph.observe(batch, Int8Calibration())
    assert len(graph(batch)) == 4
