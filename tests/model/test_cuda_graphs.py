"""CUDA-graph replay: the same outputs as eager inference, per shape, precision and stage count.

The replay tests need a CUDA device and are skipped without one (CI has none; they ran on a lent
H200, BENCHMARKS.md); what can be checked on a CPU (refusals, output copies) runs everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

from sparsercnn.data.categories import CategoryMap
from sparsercnn.model import SparseRCNN, build_model
from sparsercnn.model.cuda_graphs import CudaGraphs, _copy
from sparsercnn.model.inference import Precision, evaluating, run_model
from sparsercnn.predictor import Predictor
from sparsercnn.presets import get_preset
from sparsercnn.runtime import fast_bf16_supported
from sparsercnn.structures import ImageBatch, ModelOutput

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def tiny_model(**model_options: int) -> SparseRCNN:
    cfg = get_preset("tiny")
    for key, value in model_options.items():
        setattr(cfg.model, key, value)
    torch.manual_seed(0)
    return build_model(cfg).eval()


def images(*sizes: tuple[int, int], seed: int = 0) -> list[Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (3, h, w), generator=generator).float() for h, w in sizes]


def assert_equal_outputs(actual: ModelOutput, expected: ModelOutput) -> None:
    assert len(actual.stages) == len(expected.stages)
    for got, want in zip(actual.stages, expected.stages, strict=True):
        assert torch.equal(got.logits, want.logits) and torch.equal(got.boxes, want.boxes)
    assert torch.equal(actual.image_sizes, expected.image_sizes)
    assert torch.equal(actual.proposal_boxes, expected.proposal_boxes)


def test_refuses_cpu_models_and_host_side_options() -> None:
    with pytest.raises(ValueError, match=r"--device cuda\); it is on cpu"):
        CudaGraphs(tiny_model())
    with pytest.raises(ValueError, match="on-demand FPN levels"):
        CudaGraphs(tiny_model(fpn_on_demand_levels=1))
    with pytest.raises(ValueError, match="adaptive sampling"):
        CudaGraphs(tiny_model(sampling_ratio=0))


class _HostTensors(TorchDispatchMode):
    """Counts tensors made from host values (``torch.tensor(...)``, ``new_tensor``): on a CUDA
    device each is a host-to-device copy, which a CUDA graph cannot capture."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.count += func is torch.ops.aten.lift_fresh.default
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("sampling_ratio", [1, 2])
def test_the_captured_forward_makes_no_tensor_from_host_values(sampling_ratio: int) -> None:
    """What a graph captures (the model's forward on an image batch), checked on the CPU."""
    model = tiny_model(sampling_ratio=sampling_ratio)
    batch = ImageBatch.from_tensors(images((96, 128), (128, 96)), 32)
    with torch.no_grad(), _HostTensors() as host:
        model(batch, num_stages=None)
    assert host.count == 0


def test_predictor_refuses_cuda_graphs_on_cpu() -> None:
    categories = CategoryMap(list(range(80)), [str(i) for i in range(80)])
    with pytest.raises(ValueError, match="--cuda-graphs"):
        Predictor(tiny_model(), get_preset("tiny"), categories, cuda_graphs=True)


def test_output_copy_is_deep_and_keeps_structure() -> None:
    @dataclass
    class Pair:
        left: Tensor
        right: list[Tensor]

    value = Pair(torch.zeros(2), [torch.ones(3), torch.ones(1)])
    copied = _copy((value, "kept"))
    value.left += 1
    value.right[0] += 1
    assert isinstance(copied, tuple) and copied[1] == "kept"
    assert isinstance(copied[0], Pair) and isinstance(copied[0].right, list)
    assert torch.equal(copied[0].left, torch.zeros(2))
    assert torch.equal(copied[0].right[0], torch.ones(3))


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_replay_equals_eager_per_shape_and_stage_count(precision: Precision) -> None:
    if precision == "bf16" and not fast_bf16_supported(torch.device("cuda")):
        pytest.skip("this GPU has no native bf16")
    model = tiny_model().cuda()
    graphs = CudaGraphs(model)
    batches = [images((96, 128), (96, 128)), images((64, 64)), images((96, 128), (90, 120), seed=1)]
    with evaluating(model, precision):
        for num_stages in (None, 2):
            for batch in batches:
                cuda = [image.cuda() for image in batch]
                eager = run_model(model, cuda, num_stages=num_stages)
                for _ in range(2):  # the capture's own output, then a replay
                    replayed = run_model(model, cuda, num_stages=num_stages, graphs=graphs)
                    assert_equal_outputs(replayed, eager)
    # One graph per (padded shape, stage count): (2, 96, 128) twice, (1, 64, 64).
    assert graphs.num_graphs == 4


@needs_cuda
def test_results_stay_valid_after_later_calls_and_old_graphs_are_dropped() -> None:
    model = tiny_model().cuda()
    graphs = CudaGraphs(model, max_graphs=1)
    first, second = images((96, 128)), images((96, 128), seed=1)
    with evaluating(model):
        kept = run_model(model, [first[0].cuda()], graphs=graphs)
        expected_first = run_model(model, [first[0].cuda()])
        run_model(model, [second[0].cuda()], graphs=graphs)  # same graph, new input
        small = [images((64, 64))[0].cuda()]
        other_shape = run_model(model, small)
        replayed = run_model(model, small, graphs=graphs)  # a new graph replaces the first
    assert_equal_outputs(kept, expected_first)
    assert_equal_outputs(replayed, other_shape)
    assert graphs.num_graphs == 1


@needs_cuda
def test_predictor_with_cuda_graphs_gives_the_eager_detections() -> None:
    cfg = get_preset("tiny")
    categories = CategoryMap(list(range(80)), [str(i) for i in range(80)])
    pictures = [image.to(torch.uint8) for image in images((96, 128), (70, 150), (96, 128))]
    eager = Predictor(tiny_model(), cfg, categories, device="cuda")(pictures)
    graphed = Predictor(tiny_model(), cfg, categories, device="cuda", cuda_graphs=True)
    for _ in range(2):
        for got, want in zip(graphed(pictures), eager, strict=True):
            assert torch.equal(got.boxes, want.boxes) and torch.equal(got.scores, want.scores)
            assert torch.equal(got.labels, want.labels)
