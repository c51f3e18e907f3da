"""CUDA-graph replay of the detector's forward pass, one graph per input shape.

In eager mode on a GPU, inference is bound by the CPU launching the forward pass's few thousand
small kernels (the six stages' attention, dynamic convolutions and RoIAlign gathers), not by the
GPU computing them. A CUDA graph records those launches once and replays them with one call.
:class:`CudaGraphs` captures the forward pass (after pre-processing: from the padded
:class:`~sparsercnn.structures.ImageBatch` to the :class:`~sparsercnn.structures.ModelOutput`)
the first time it sees an input shape, precision and stage count, and replays it afterwards. The
replayed kernels are the eager ones, so outputs equal eager inference's; no compiler is
involved, and a capture costs about three forward passes.

The forward pass qualifies because it has no data-dependent shape and no host synchronisation:
every tensor's shape follows from the batch's. Two options break that and are refused here:
on-demand FPN levels (``model.fpn_on_demand_levels``) choose tiles on the host, and RoIAlign's
adaptive sampling (``model.sampling_ratio <= 0``) counts its samples on the host.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

import torch
from torch import Tensor

from sparsercnn.model.detector import SparseRCNN
from sparsercnn.structures import ImageBatch

# Graphs kept before the least recently used one is dropped. All graphs share one memory pool
# for their intermediate tensors, so each more graph costs its input and output buffers and a
# capture.
MAX_GRAPHS = 32
# Forward passes on a side stream before a capture: cuDNN's algorithm search, lazy
# initialisation and the allocator's first blocks must not happen inside the graph.
WARMUP_RUNS = 2

T = TypeVar("T")
GraphKey = tuple[tuple[int, ...], int | None, bool, torch.dtype]


@dataclasses.dataclass
class _Graph(Generic[T]):
    """One captured forward pass: its graph, static input buffers and static output."""

    graph: torch.cuda.CUDAGraph
    images: Tensor
    image_sizes: Tensor
    output: T


class CudaGraphs(Generic[T]):
    """Runs a detector's forward pass by replaying CUDA graphs, captured per input shape.

    Use it in place of ``model(batch)`` for inference, inside
    :func:`~sparsercnn.model.inference.evaluating` (graphs record no autograd): the precision
    (bf16 autocast or fp32) in effect at the call is part of what a graph records, as are the
    batch's ``(B, 3, Hp, Wp)`` shape and ``num_stages``. Each call copies the batch into the
    graph's input buffers, replays the graph and returns a copy of its output, so a result stays
    valid after later calls. Calls are serialised (the graphs share one memory pool and must not
    run concurrently).

    Args:
        model: the detector, on a CUDA device; its weights may change between calls (the graphs
            read them in place) but must not be replaced or moved.
        function: what is recorded, ``function(batch, num_stages)``; default the model's forward
            pass (e.g. ``lambda batch, _: model.extract_features(batch)`` records the
            backbone+FPN alone). Its output: tensors in lists, tuples and dataclasses.
        max_graphs: graphs kept; the least recently used one is dropped beyond this.

    Raises:
        ValueError: the model is not on a CUDA device, computes FPN levels on demand or samples
            RoIs adaptively.
    """

    def __init__(
        self,
        model: SparseRCNN,
        function: Callable[[ImageBatch, int | None], T] | None = None,
        max_graphs: int = MAX_GRAPHS,
    ) -> None:
        if model.fpn_on_demand_levels > 0:
            raise ValueError(
                "CUDA graphs cannot record on-demand FPN levels (their tiles are chosen on the "
                "host): set model.fpn_on_demand_levels=0 or run without CUDA graphs"
            )
        if model.head.sampling_ratio <= 0:
            raise ValueError(
                "CUDA graphs cannot record RoIAlign's adaptive sampling (model.sampling_ratio "
                f"{model.head.sampling_ratio}): run without CUDA graphs"
            )
        if max_graphs < 1:
            raise ValueError(f"max_graphs must be >= 1, got {max_graphs}")
        device = next(model.parameters()).device
        if device.type != "cuda":
            raise ValueError(
                f"CUDA graphs (--cuda-graphs) need the model on a CUDA device (--device cuda); "
                f"it is on {device}"
            )
        self.function = function or cast(
            Callable[[ImageBatch, int | None], T],
            lambda batch, num_stages: model(batch, num_stages=num_stages),
        )
        self.device = device
        self.max_graphs = max_graphs
        self._graphs: OrderedDict[GraphKey, _Graph[T]] = OrderedDict()
        self._pool = torch.cuda.graph_pool_handle()
        self._lock = threading.Lock()

    @property
    def num_graphs(self) -> int:
        """Graphs captured and kept."""
        return len(self._graphs)

    def __call__(self, batch: ImageBatch, num_stages: int | None = None) -> T:
        """The function's output for ``batch`` (normalised, padded, on the model's device)."""
        autocast = torch.is_autocast_enabled(self.device.type)
        dtype = torch.get_autocast_dtype(self.device.type)
        key: GraphKey = (tuple(batch.tensor.shape), num_stages, autocast, dtype)
        with self._lock:
            entry = self._graphs.get(key)
            if entry is None:
                entry = self._capture(batch, num_stages, autocast, dtype)
                self._graphs[key] = entry
                if len(self._graphs) > self.max_graphs:
                    self._graphs.popitem(last=False)
            self._graphs.move_to_end(key)
            entry.images.copy_(batch.tensor)
            entry.image_sizes.copy_(batch.image_sizes)
            entry.graph.replay()
            return _copy(entry.output)

    def _capture(
        self, batch: ImageBatch, num_stages: int | None, autocast: bool, dtype: torch.dtype
    ) -> _Graph[T]:
        images = batch.tensor.to(self.device, copy=True)
        image_sizes = batch.image_sizes.to(self.device, copy=True)
        static = ImageBatch(images, image_sizes)
        # The autocast cache would keep casts made during capture in memory the graph frees.
        precision = torch.autocast(
            self.device.type, dtype=dtype, enabled=autocast, cache_enabled=False
        )
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), torch.no_grad(), precision:
            for _ in range(WARMUP_RUNS):
                self.function(static, num_stages)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool), torch.no_grad(), precision:
            output = self.function(static, num_stages)
        return _Graph(graph, images, image_sizes, output)


def _copy(value: T) -> T:
    """A copy of every tensor in ``value`` (tensors, lists, tuples and dataclasses of them)."""
    if isinstance(value, Tensor):
        return value.clone()  # type: ignore[return-value]
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields: dict[str, Any] = {
            field.name: _copy(getattr(value, field.name)) for field in dataclasses.fields(value)
        }
        return dataclasses.replace(value, **fields)
    return value
