"""Multi-process training and evaluation glue around ``torch.distributed``.

:func:`init_distributed` reads the environment ``torchrun`` sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``; the first three checked by
:mod:`sparsercnn.torchrun_env`) and returns a :class:`DistInfo` that the engine passes around
explicitly. The helpers (:func:`is_main_process`,
:func:`all_gather_object`, :func:`computed_on_main`, :func:`done_on_main`,
:func:`gathered_from_all`, :func:`mean_over_ranks`, :func:`barrier`, :func:`wrap_ddp`,
:func:`release_from_traceback`, :func:`cleanup`) ask ``torch.distributed`` itself and are
no-ops in a single process, so the same code runs with and without ``torchrun``. This module
keeps no state of its own.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import importlib
import logging
import os
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sparsercnn.runtime import check_device, resolve_device
from sparsercnn.torchrun_env import env_local_rank, env_rank, env_world_size

logger = logging.getLogger(__name__)

REQUIRED_ENV = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

# Modules of torch whose functions default to ``group=dist.group.WORLD``, an argument Python
# evaluates once, at import. Imported after ``init_process_group`` (``DistributedDataParallel``
# imports this one), they would keep the default group alive past ``destroy_process_group``: its
# gloo threads and rank 0's TCPStore server would run on until the interpreter's own shutdown
# tore them down (the suspected cause of a rank's rare SIGABRT after its last step, "terminate
# called without an active exception"). Imported first, they hold ``None``.
GROUP_DEFAULT_MODULES = ("torch.distributed.nn.functional",)

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a (possibly single-process) run.

    Attributes:
        rank: global rank in ``[0, world_size)``.
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
        device: the device this process computes on.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Whether this process logs, writes files and evaluates (rank 0)."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def default_device() -> torch.device:
    """The device a run takes where none is named: CUDA where there is a GPU, else the CPU
    (:func:`~sparsercnn.runtime.resolve_device`'s default, which ``--device`` has too)."""
    return resolve_device(None)


def init_distributed(
    device: torch.device | str | None = None,
    timeout_s: float = 1800.0,
    *,
    argument: str = "device",
) -> DistInfo:
    """Join the process group described by torchrun's environment, or run single-process.

    Without ``WORLD_SIZE`` (or with ``WORLD_SIZE=1``) nothing is initialised and the returned
    :class:`DistInfo` describes a single process on ``device`` (default: CUDA if present).
    Otherwise the process group is initialised from the environment (``env://``) with NCCL when
    CUDA is used (the process takes GPU ``LOCAL_RANK``) and gloo on the CPU. An already
    initialised group is reused.

    Args:
        device: ``"cpu"`` forces gloo on the CPU even where GPUs exist; ``"cuda"`` or ``None``
            use GPU ``LOCAL_RANK`` when CUDA is available; ``"cuda:N"`` is that GPU in a single
            process, and refused under ``torchrun``. Checked first
            (:func:`~sparsercnn.runtime.check_device`).
        timeout_s: how long collective operations wait for the other processes before failing.
        argument: what the messages call ``device`` (``--device`` for the command line).

    Returns:
        This process's :class:`DistInfo`.

    Raises:
        ValueError: ``device`` names no device, a device type other than CPU and CUDA, or CUDA
            (or a GPU) that is not here, or a GPU index under ``torchrun``; or ``WORLD_SIZE``,
            ``RANK`` or ``LOCAL_RANK`` is not an integer in its range
            (:mod:`sparsercnn.torchrun_env`), or a multi-process run lacks one of
            :data:`REQUIRED_ENV`, or, on CUDA, ``LOCAL_RANK`` is not below the number of GPUs
            visible.
    """
    requested = check_device(device, argument=argument) if device is not None else None
    world_size = env_world_size()
    if world_size == 1:
        return DistInfo(device=requested or default_device())
    if requested is not None and requested.index is not None:
        # Each process takes GPU LOCAL_RANK: one index for all of them would be ignored.
        raise ValueError(
            f"{argument} {str(device)!r}: under torchrun each process uses the GPU of its "
            f"LOCAL_RANK; give {_given(argument, 'cuda')} (CUDA_VISIBLE_DEVICES chooses the GPUs "
            "torchrun's processes see)"
        )
    missing = [name for name in REQUIRED_ENV if name not in os.environ]
    if missing:
        # The environment is the input here: refused as torchrun_env refuses its variables.
        raise ValueError(
            f"environment variable WORLD_SIZE={world_size} but {', '.join(missing)} not set: "
            "launch multi-process training with `torchrun --nproc-per-node=N ...`, which sets "
            "them, or unset WORLD_SIZE to run in one process"
        )
    rank, local_rank = env_rank(), env_local_rank()
    use_cuda = torch.cuda.is_available() and (requested is None or requested.type == "cuda")
    if use_cuda and local_rank >= torch.cuda.device_count():
        raise ValueError(
            f"environment variable LOCAL_RANK={local_rank} is not below the number of CUDA "
            f"devices visible here ({torch.cuda.device_count()}): start at most that many "
            "processes on this machine (torchrun --nproc-per-node), or train on the CPU "
            f"({_given(argument, 'cpu')})"
        )
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device_used, backend = torch.device("cuda", local_rank), "nccl"
    else:
        device_used, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        _import_group_default_modules()
        dist.init_process_group(
            backend=backend,
            init_method="env://",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
        )
        logger.info("rank %d of %d joined the %s process group", rank, world_size, backend)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device_used)


def _given(argument: str, device: str) -> str:
    """``device`` given as ``argument``: ``--device cpu`` for a flag, ``device='cpu'`` else."""
    return f"{argument} {device}" if argument.startswith("-") else f"{argument}={device!r}"


def _import_group_default_modules() -> None:
    """Import :data:`GROUP_DEFAULT_MODULES` (before the process group exists)."""
    for name in GROUP_DEFAULT_MODULES:
        importlib.import_module(name)


def is_initialized() -> bool:
    """Whether a ``torch.distributed`` process group exists."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def is_main_process() -> bool:
    """True on rank 0 and in a single-process run."""
    return get_rank() == 0


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` in a single process.

    All ranks must call it. Objects travel pickled, so keep them to plain data (lists of
    numbers and strings, CPU tensors).
    """
    world_size = get_world_size()
    if world_size == 1:
        return [obj]
    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def computed_on_main(work: Callable[[], T]) -> T:
    """``work()`` run on rank 0 alone and its result (picklable) given to every rank, which all
    must call this; ``work()`` itself in a single process.

    What ``work`` raises is raised on every rank (the other ranks get a copy), so that they stop
    with rank 0's error, not with a lost peer's (``Connection closed by peer``) or after the
    collective timeout.
    """
    result: T = _on_main(work, share_result=True)
    return result


def done_on_main(work: Callable[[], T]) -> T | None:
    """``work()`` run on rank 0 alone, its result returned there and ``None`` on the other ranks,
    which all must call this and wait for it; ``work()`` itself in a single process.

    As :func:`computed_on_main`, what ``work`` raises is raised on every rank; its result, which
    need not be picklable, stays on rank 0 (rank 0's evaluation with every image's detections).
    """
    result: T | None = _on_main(work, share_result=False)
    return result


def _on_main(work: Callable[[], T], share_result: bool) -> Any:
    """``work()`` on rank 0; its error, and its result if ``share_result``, broadcast."""
    if get_world_size() == 1:
        return work()
    outcome: list[Any] = [None, None]  # [result, error]
    caught: Exception | None = None
    result: Any = None
    if get_rank() == 0:
        try:
            result = work()
        except Exception as error:
            caught = error
            outcome[1] = _portable(error)
        if share_result:
            outcome[0] = result
    dist.broadcast_object_list(outcome, src=0)
    if caught is not None:
        raise caught
    if outcome[1] is not None:
        raise outcome[1]
    return result if get_rank() == 0 else outcome[0]


def gathered_from_all(work: Callable[[], T]) -> list[T]:
    """Every rank's ``work()`` (picklable) in rank order, which all ranks must call;
    ``[work()]`` in a single process.

    When ``work`` raises on some rank, every rank raises: that rank its own error, the others a
    copy of the first failing rank's, so that no rank waits for one that has stopped.
    """
    if get_world_size() == 1:
        return [work()]
    caught: Exception | None = None
    try:
        outcome: tuple[Any, Exception | None] = (work(), None)
    except Exception as error:
        caught = error
        outcome = (None, _portable(error))
    gathered = all_gather_object(outcome)
    if caught is not None:
        raise caught
    for _, failure in gathered:
        if failure is not None:
            raise failure
    return [result for result, _ in gathered]


def _portable(error: Exception) -> Exception:
    """``error``, or where it does not survive pickling (an ``__init__`` that takes other
    arguments than the message) its nearest base class that does, with the same message: the
    other ranks report it as rank 0 does (a ``ValueError`` stays bad input)."""
    for kind in type(error).__mro__:
        if not issubclass(kind, Exception):
            continue
        try:
            copy = error if kind is type(error) else kind(str(error))
            back = pickle.loads(pickle.dumps(copy))
        except Exception:
            continue
        if type(back) is kind and str(back) == str(error):
            return copy
    return RuntimeError(str(error))


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Each value averaged over the ranks (all must call it with the same keys); as is in a
    single process. ``device``: where the collective runs (this rank's GPU with NCCL)."""
    world_size = get_world_size()
    if world_size == 1 or not values:
        return values
    stacked = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(stacked)
    return dict(zip(values, (stacked / world_size).tolist(), strict=True))


def any_rank(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is True on some rank (all must call it); ``flag`` in a single process.
    ``device``: where the collective runs (this rank's GPU with NCCL)."""
    if get_world_size() == 1:
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def broadcast_buffers(model: nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics, which each rank updates
    on its own batches); a no-op in a single process. Every rank must call it."""
    if get_world_size() == 1:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def wrap_ddp(model: nn.Module, info: DistInfo, find_unused_parameters: bool) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` on ``info.device``; itself in a single process.

    ``find_unused_parameters`` must be True when some parameters get no gradient in a step.
    """
    if not info.is_distributed:
        return model
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(
        model, device_ids=device_ids, find_unused_parameters=find_unused_parameters
    )


def release_from_traceback(error: BaseException, held: object) -> None:
    """Clear the finished frames of ``error``'s traceback, and of the errors it chains to, that
    refer to ``held`` (a ``DistributedDataParallel`` wrapper: its own ``forward`` and hooks).

    A traceback keeps its frames and their locals alive as long as the error is held: a forward
    that raises inside the wrapper would keep it, and with it the process group, past
    :func:`cleanup` (which runs while the error propagates) until the error is dropped, or until
    the interpreter's shutdown for an error that ends the program. The traceback still prints
    the same lines; only those frames' locals are gone (frames still running are left alone).
    """
    running: set[int] = set()
    caller: FrameType | None = sys._getframe(1)
    while caller is not None:
        running.add(id(caller))
        caller = caller.f_back
    pending: list[BaseException | None] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        trace = current.__traceback__
        while trace is not None:
            frame = trace.tb_frame
            # The frames still running are left untouched: reading f_locals would store a copy
            # of their locals in them (Python < 3.13).
            if id(frame) not in running and any(v is held for v in frame.f_locals.values()):
                with contextlib.suppress(RuntimeError):  # suspended (Python >= 3.13 refuses)
                    frame.clear()
                # Python < 3.13 keeps the copy read above; reading again empties it.
                _ = frame.f_locals
            trace = trace.tb_next
        pending += [current.__cause__, current.__context__]


def barrier() -> None:
    """Wait for every rank; a no-op in a single process."""
    if not is_initialized():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def cleanup() -> None:
    """Leave and destroy the process group, if any, and collect what still holds it.

    ``destroy_process_group`` drops torch's own references to the group; a finished run's
    ``DistributedDataParallel`` model that only a reference cycle still keeps (rank 0's is kept
    so after plotting the curves) is collected here, so that the gloo threads and rank 0's
    TCPStore server stop now, not during the interpreter's shutdown. A wrapped model the caller
    still holds keeps the group alive: release it first (a ``Trainer`` lets its own go when
    ``train()`` ends, also on failure).
    """
    if is_initialized():
        dist.destroy_process_group()
        gc.collect()
