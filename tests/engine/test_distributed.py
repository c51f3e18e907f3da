"""Two-process data-parallel training with gloo on the CPU, launched as subprocesses.

Each process runs this file as a module from the repository root (``python -m
tests.engine.test_distributed RANK ...``, so that ``tests.synthetic_coco`` imports) with the
environment torchrun would set, trains the tiny model for two steps on its shard of the data,
evaluates, and saves its first-step gradients and final weights for the test to compare.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sparsercnn.engine.distributed import (
    GROUP_DEFAULT_MODULES,
    DistInfo,
    all_gather_object,
    barrier,
    cleanup,
    computed_on_main,
    default_device,
    done_on_main,
    gathered_from_all,
    init_distributed,
    is_main_process,
    wrap_ddp,
)
from sparsercnn.engine.trainer import Trainer
from sparsercnn.runtime import resolve_device
from sparsercnn.text import counted
from tests.synthetic_coco import SyntheticCoco, tiny_config

TIMEOUT_S = 180
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
WORLD_SIZE = 2


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_single_process_without_torchrun_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = init_distributed(device="cpu")
    assert info == DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    assert info.is_main and not info.is_distributed
    assert is_main_process()
    assert all_gather_object({"a": 1}) == [{"a": 1}]
    barrier()
    cleanup()


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("gpu", "device 'gpu' is not a device; use 'cpu', 'cuda' or 'cuda:N'"),
        ("mps", "device 'mps': sparsercnn runs on 'cpu', 'cuda' or 'cuda:N' only"),
    ],
)
def test_a_device_that_is_not_one_here_is_refused(
    monkeypatch: pytest.MonkeyPatch, device: str, message: str
) -> None:
    """Was torch's "Expected one of cpu, cuda, ipu, ..." for "gpu", and a single-process run
    on "mps" (or "meta", or a GPU index that is not there) that failed later."""
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match=f"^{message}$"):
        init_distributed(device=device)


def test_the_default_device_is_the_runtime_s(monkeypatch: pytest.MonkeyPatch) -> None:
    """``default_device`` is ``runtime.resolve_device``'s default (``cuda``, as ``--device``
    gives), not ``cuda:0``: a run reports the same device whichever way it was started."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device() == resolve_device(None) == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == resolve_device(None) == torch.device("cpu")


def test_incomplete_torchrun_env_is_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``WORLD_SIZE`` without torchrun's other variables was a ``RuntimeError``, which the
    command line reports as a crash (``failed: RuntimeError``, the ``--debug`` hint): it is the
    environment, refused as a ``ValueError`` (exit 2) as a malformed ``WORLD_SIZE`` is."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    message = (
        "^environment variable WORLD_SIZE=2 but MASTER_ADDR, MASTER_PORT not set: launch "
        "multi-process training with `torchrun"
    )
    with pytest.raises(ValueError, match=message) as refused:
        init_distributed(device="cpu")
    assert "unset WORLD_SIZE" in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("value", ["abc", "0", "-2", "", "2.0"])
def test_a_world_size_that_is_no_number_of_processes_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """``WORLD_SIZE=0`` (or -2) ran one process as if unset (the variable itself:
    tests/test_torchrun_env.py)."""
    monkeypatch.setenv("WORLD_SIZE", value)
    message = f"^environment variable WORLD_SIZE={value!r} is not an integer >= 1: torchrun"
    with pytest.raises(ValueError, match=message):
        init_distributed(device="cpu")


@pytest.mark.parametrize("rank", ["2", "7"])
def test_a_rank_not_below_the_world_size_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, rank: str
) -> None:
    """``RANK=2`` of ``WORLD_SIZE=2`` went to ``init_process_group``, which waits for a process
    that never joins (or fails in torch's words); the variable itself:
    tests/test_torchrun_env.py."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    message = f"^environment variable RANK={rank} is not below WORLD_SIZE=2: torchrun numbers"
    with pytest.raises(ValueError, match=message) as refused:
        init_distributed(device="cpu")
    assert "\n" not in str(refused.value)


def test_a_local_rank_without_its_gpu_or_negative_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``torchrun --nproc-per-node 4`` on a machine with 2 GPUs: ``LOCAL_RANK=3`` went to
    ``torch.cuda.set_device``, which failed with CUDA's "invalid device ordinal" traceback."""
    _torchrun_on_two_gpus(monkeypatch, world_size=4, rank=3)
    with pytest.raises(ValueError) as refused:
        init_distributed()
    assert str(refused.value) == (
        "environment variable LOCAL_RANK=3 is not below the number of CUDA devices visible here "
        "(2): start at most that many processes on this machine (torchrun --nproc-per-node), or "
        "train on the CPU (device='cpu')"
    )
    monkeypatch.setenv("LOCAL_RANK", "-1")
    with pytest.raises(ValueError, match=r"^environment variable LOCAL_RANK='-1' is not an int"):
        init_distributed()


@pytest.mark.parametrize("argument", ["device", "--device"])
def test_a_gpu_index_under_torchrun_is_refused_not_ignored(
    monkeypatch: pytest.MonkeyPatch, argument: str
) -> None:
    """``torchrun ... train --device cuda:1``: every process took the GPU of its LOCAL_RANK
    (GPU 0 for rank 0) without a word; a single process still runs on the GPU it names."""
    _torchrun_on_two_gpus(monkeypatch, world_size=2, rank=0)
    with pytest.raises(ValueError) as refused:
        init_distributed("cuda:1", argument=argument)
    cuda = "--device cuda" if argument == "--device" else "device='cuda'"
    assert str(refused.value) == (
        f"{argument} 'cuda:1': under torchrun each process uses the GPU of its LOCAL_RANK; give "
        f"{cuda} (CUDA_VISIBLE_DEVICES chooses the GPUs torchrun's processes see)"
    )
    monkeypatch.delenv("WORLD_SIZE")
    assert init_distributed("cuda:1", argument=argument).device == torch.device("cuda", 1)


def test_a_forward_that_raises_inside_ddp_does_not_keep_the_group(
    tiny_coco: SyntheticCoco, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error of a forward that raised inside the DDP wrapper no longer holds the wrapper
    (its frames' ``self``): cleanup(), which the CLI runs while that error propagates, ends the
    process group then, not when the error is dropped or at the interpreter's shutdown. A
    one-process gloo group stands for torchrun's."""
    from sparsercnn.data.coco import CocoDataset
    from sparsercnn.data.transforms import build_train_transform
    from sparsercnn.engine import trainer as trainer_module
    from sparsercnn.model import SparseRCNN

    wrappers: list[weakref.ref[nn.Module]] = []

    def wrap(model: nn.Module, info: DistInfo, find_unused_parameters: bool) -> nn.Module:
        wrapper = DistributedDataParallel(model, find_unused_parameters=find_unused_parameters)
        wrappers.append(weakref.ref(wrapper))
        return wrapper

    def fail(self: SparseRCNN, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("forward failed")

    monkeypatch.setattr(trainer_module, "wrap_ddp", wrap)
    monkeypatch.setattr(SparseRCNN, "forward", fail)
    for name in GROUP_DEFAULT_MODULES:
        importlib.import_module(name)
    cfg = tiny_config()
    train = CocoDataset(tiny_coco.json_path, tiny_coco.image_dir, build_train_transform(cfg.input))
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        trainer = Trainer(cfg, train, tmp_path / "run", device="cpu", progress=False)
        with pytest.raises(RuntimeError, match="forward failed") as caught:
            trainer.train()
        assert len(wrappers) == 1
    finally:
        cleanup()
    gc.collect()
    assert "_run_ddp_forward" in str(caught.getrepr())  # the error is still held, and printable
    assert wrappers[0]() is None
    if Path("/proc/self/task").is_dir():
        assert _c10d_threads() == []


def _worker(rank: int, config_json: Path, data_json: Path, image_dir: Path, out: Path) -> None:
    """One rank: train, evaluate, dump gradients of the first step and the final weights; then,
    the trainer still held, whether its DDP wrapper is gone and the group's threads after
    cleanup()."""
    from sparsercnn.config import Config
    from sparsercnn.data.coco import CocoDataset
    from sparsercnn.data.transforms import build_test_transform, build_train_transform
    from sparsercnn.engine.trainer import Trainer

    info = init_distributed(device="cpu", timeout_s=TIMEOUT_S / 2)
    try:
        cfg = Config.load(config_json)
        train = CocoDataset(data_json, image_dir, build_train_transform(cfg.input))
        val = CocoDataset(data_json, image_dir, build_test_transform(cfg.input))
        trainer = Trainer(cfg, train, out / "run", val_dataset=val, dist_info=info, progress=False)
        grads: dict[str, torch.Tensor] = {}
        parameters = dict(trainer.model.named_parameters())
        wrappers: list[weakref.ref[nn.Module]] = []

        def keep_first_gradients(optimizer: Any, args: Any, kwargs: Any) -> None:
            if not grads:
                wrappers.append(weakref.ref(trainer.step.model))
                for name, param in parameters.items():
                    if param.grad is not None:
                        grads[name] = param.grad.detach().clone()

        trainer.optimizer.register_step_pre_hook(keep_first_gradients)
        result = trainer.train()
        torch.save(
            {
                "grads": grads,
                "weights": {n: p.detach() for n, p in trainer.model.named_parameters()},
                # BatchNorm running statistics as the final evaluation used them.
                "buffers": {n: b.detach() for n, b in trainer.model.named_buffers()},
                "world_size": info.world_size,
                "final_metrics": result.final_metrics,
            },
            out / f"rank{rank}.pt",
        )
        gc.collect()
        wrapper = wrappers[0]()
        ddp = type(wrapper).__name__ if wrapper is not None else None
    finally:
        cleanup()
    report = {"ddp_after_training": ddp, "threads_after_cleanup": _c10d_threads()}
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    assert trainer.model is not None  # still held here


class _UnpicklableError(ValueError):
    def __init__(self, first: str, second: str) -> None:
        super().__init__(f"{first} and {second}")


def _caught(work: Any) -> str | None:
    """What ``work()`` raised, as ``Type: message``; None if nothing."""
    try:
        work()
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def _helpers_worker(
    rank: int, config_json: Path, data_json: Path, image_dir: Path, out: Path
) -> None:
    """One rank: the helpers' results and errors, then the data check and the datasets of a
    one-step training, counting the images this rank decoded."""
    from sparsercnn.cli.training_setup import check_training_data
    from sparsercnn.config import Config
    from sparsercnn.data import coco, image_check
    from sparsercnn.data.coco import CocoDataset
    from sparsercnn.engine import pipeline
    from sparsercnn.engine.pipeline import train_from_coco

    info = init_distributed(device="cpu", timeout_s=TIMEOUT_S / 2)
    decoded: list[str] = []
    findings = image_check._findings

    def counted(image: dict[str, Any], path: Path) -> Any:
        decoded.append(str(path))
        return findings(image, path)

    image_check._findings = counted  # type: ignore[assignment]
    # The sets the datasets inspect themselves (rank 0's check is given to them instead).
    inspected: list[str] = []
    inspect = coco.inspect_dataset

    def inspected_by_dataset(json_path: Path, *args: Any, **kwargs: Any) -> Any:
        inspected.append(str(json_path))
        return inspect(json_path, *args, **kwargs)

    coco.inspect_dataset = inspected_by_dataset  # type: ignore[assignment]
    calls: list[int] = []

    def refuse() -> None:
        raise ValueError(f"refused on rank {rank}")

    def unpicklable() -> None:
        raise _UnpicklableError("one", "two")

    def fail_on_rank_1() -> int:
        if rank == 1:
            raise FileNotFoundError("image 7 (007.png) changed on disk")
        return rank

    try:
        report = {
            "result": computed_on_main(lambda: calls.append(rank) or f"from rank {rank}"),
            "calls": calls,
            "refused": _caught(lambda: computed_on_main(refuse)),
            "unpicklable": _caught(lambda: computed_on_main(unpicklable)),
            "done": done_on_main(lambda: f"kept on rank {rank}"),
            "done_refused": _caught(lambda: done_on_main(refuse)),
            "gathered": gathered_from_all(lambda: rank * 10),
            "failed_shard": _caught(lambda: gathered_from_all(fail_on_rank_1)),
        }
        val = (data_json, image_dir)
        checked = check_training_data((data_json, image_dir), val, skip_invalid=False)
        # Rank 0's entries, for the recipe it chooses for all: no copy to the other ranks.
        report["checked"] = None if checked is None else len(checked.train.checked.images)
        result = train_from_coco(
            Config.load(config_json),
            train_json=data_json,
            train_images=image_dir,
            val_json=data_json,
            val_images=image_dir,
            output_dir=out / "run",
            dist_info=info,
            train_inspection=None if checked is None else checked.train,
            val_inspection=None if checked is None else checked.val,
        )
        report["decoded"] = decoded
        report["inspected"] = list(inspected)
        report["final_metrics"] = result.final_metrics
        if rank == 1:  # a machine without the image folder
            check = pipeline.check_image_files
            pipeline.check_image_files = lambda images, image_dir, **kwargs: check(  # type: ignore[assignment]
                images, Path(image_dir) / "elsewhere", **kwargs
            )
        report["missing_on_rank_1"] = _caught(
            lambda: pipeline._built_on_rank_0(lambda: CocoDataset(data_json, image_dir))
        )
        (out / f"rank{rank}.json").write_text(json.dumps(report))
    finally:
        cleanup()


SCORING_ERROR = "image id 7: 3 of its 5 detections have a NaN or infinite score"


def _failed_scoring_worker(
    rank: int, config_json: Path, data_json: Path, image_dir: Path, out: Path
) -> None:
    """One rank of a training whose periodic evaluation fails in rank 0's scoring (COCOeval,
    which runs on rank 0 alone): what each rank raised, and after how long; then it fails."""
    from sparsercnn.config import Config
    from sparsercnn.data.coco import CocoDataset
    from sparsercnn.data.transforms import build_test_transform, build_train_transform
    from sparsercnn.engine.trainer import Trainer
    from sparsercnn.evaluation import CocoEvaluator

    def refuse(self: CocoEvaluator) -> None:
        raise ValueError(SCORING_ERROR)

    if rank == 0:
        CocoEvaluator.evaluate = refuse  # type: ignore[assignment,method-assign]
    info = init_distributed(device="cpu", timeout_s=TIMEOUT_S / 2)
    try:
        cfg = Config.load(config_json)
        train = CocoDataset(data_json, image_dir, build_train_transform(cfg.input))
        val = CocoDataset(data_json, image_dir, build_test_transform(cfg.input))
        trainer = Trainer(cfg, train, out / "run", val_dataset=val, dist_info=info, progress=False)
        start = time.monotonic()
        try:
            trainer.train()
        except ValueError as error:
            report = {"error": str(error), "seconds": time.monotonic() - start}
            (out / f"rank{rank}.json").write_text(json.dumps(report))
            raise
    finally:
        cleanup()


# Name prefixes of the threads of a gloo process group and of rank 0's TCPStore server.
C10D_THREADS = ("pt_gloo", "gloo_", "pt_tcpstore")


def _c10d_threads() -> list[str]:
    """The names of this process's threads that belong to ``torch.distributed``."""
    names = []
    for task in Path("/proc/self/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        if name.startswith(C10D_THREADS):
            names.append(name)
    return names


def _teardown_worker(
    rank: int, config_json: Path, data_json: Path, image_dir: Path, out: Path
) -> None:
    """One rank: a step of a DDP model that only a reference cycle keeps, then cleanup(); the
    threads of ``torch.distributed`` running before and after it."""
    gc.disable()  # the cycle stays until cleanup() collects it
    info = init_distributed(device="cpu", timeout_s=TIMEOUT_S / 2)
    try:
        model = wrap_ddp(nn.Linear(3, 2), info, find_unused_parameters=False)
        model(torch.ones(4, 3)).sum().backward()
        cycle: list[Any] = [model]
        cycle.append(cycle)
        del model, cycle
        running = _c10d_threads()
    finally:
        cleanup()
    (out / f"rank{rank}.json").write_text(json.dumps({"before": running, "after": _c10d_threads()}))


def _launch(
    tmp_path: Path, data: SyntheticCoco, config_json: Path, mode: str = "train"
) -> list[subprocess.Popen[str]]:
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "WORLD_SIZE": str(WORLD_SIZE),
        "OMP_NUM_THREADS": "1",
    }
    args = [str(config_json), str(data.json_path), str(data.image_dir), str(tmp_path)]
    return [
        subprocess.Popen(
            [sys.executable, "-m", "tests.engine.test_distributed", mode, str(rank), *args],
            cwd=REPOSITORY_ROOT,
            env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # Ctrl-C acts in the ranks even where the tests were started with SIGINT ignored (a
            # background job): Python keeps an inherited SIG_IGN.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        for rank in range(WORLD_SIZE)
    ]


def _wait(processes: list[subprocess.Popen[str]]) -> list[str]:
    outputs = []
    try:
        for process in processes:
            output, _ = process.communicate(timeout=TIMEOUT_S)
            outputs.append(output)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return outputs


def _run_ranks(tmp_path: Path, data: SyntheticCoco, config_json: Path, mode: str = "train") -> None:
    """Launch the ranks and wait; one retry if the free port was taken in between, or if a rank
    was killed by a signal (once in three full CI runs, under load: SIGABRT, "terminate called
    without an active exception", after the one training step; not reproduced alone or under
    load in nine further runs, nor in 16 more of the helpers test under load). The process group
    then outlived cleanup() and was torn down at interpreter shutdown (now fixed, see
    test_cleanup_stops_the_threads_of_the_process_group), the suspected cause, unproven: the
    retry stays until the abort is reproduced or no longer seen."""
    for attempt in range(2):
        processes = _launch(tmp_path, data, config_json, mode)
        outputs = _wait(processes)
        if all(p.returncode == 0 for p in processes):
            return
        if attempt == 0 and any("address already in use" in o.lower() for o in outputs):
            continue
        if attempt == 0 and any(p.returncode < 0 for p in processes):
            shutil.rmtree(tmp_path / "run", ignore_errors=True)
            for written in tmp_path.glob("rank*.*"):
                written.unlink()
            continue
        for rank, (process, output) in enumerate(zip(processes, outputs, strict=True)):
            assert process.returncode == 0, f"rank {rank} failed:\n{output[-4000:]}"


def test_two_process_gloo_training_stays_in_sync(tiny_coco: SyntheticCoco, tmp_path: Path) -> None:
    cfg = tiny_config()
    cfg.train.max_iter = 2
    config_json = tmp_path / "config.json"
    config_json.write_text(cfg.to_json())
    _run_ranks(tmp_path, tiny_coco, config_json)

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]
    assert all(r["world_size"] == WORLD_SIZE for r in ranks)
    grads = [r["grads"] for r in ranks]
    assert grads[0] and grads[0].keys() == grads[1].keys()
    assert any(g.abs().sum() > 0 for g in grads[0].values())
    for name, grad in grads[0].items():
        assert torch.equal(grad, grads[1][name]), f"gradient of {name} differs between ranks"
    for name, weight in ranks[0]["weights"].items():
        assert torch.equal(weight, ranks[1]["weights"][name]), f"{name} differs between ranks"
    # Each rank's last step updated its own running statistics; both evaluated their shard with
    # rank 0's, those of the saved model.
    assert any("running_mean" in name for name in ranks[0]["buffers"])
    for name, buffer in ranks[0]["buffers"].items():
        assert torch.equal(buffer, ranks[1]["buffers"][name]), f"{name} differs between ranks"
    # Rank 0 evaluated the detections of both shards; rank 1 got nothing back.
    assert ranks[0]["final_metrics"]["num_images"] == tiny_coco.num_images
    assert ranks[1]["final_metrics"] is None
    assert (tmp_path / "run" / "checkpoint_0000002.pt").is_file()
    assert (tmp_path / "run" / "model_final.safetensors").is_file()
    # The trainer let its DDP wrapper go when training ended: cleanup() then stopped the
    # process group's threads though the trainer was still held.
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)]
    assert [r["ddp_after_training"] for r in reports] == [None] * WORLD_SIZE
    if Path("/proc/self/task").is_dir():
        assert [r["threads_after_cleanup"] for r in reports] == [[]] * WORLD_SIZE


def test_ctrl_c_on_one_rank_stops_every_rank_after_the_same_checkpointed_step(
    tiny_coco: SyntheticCoco, tmp_path: Path
) -> None:
    """A signal to one rank (or, under torchrun, to all, each at its own step) is agreed on
    after each step: every rank stops after the same one, which is checkpointed."""
    cfg = tiny_config()
    cfg.train.max_iter, cfg.train.checkpoint_period = 10_000, 0
    config_json = tmp_path / "config.json"
    config_json.write_text(cfg.to_json())
    processes = _launch(tmp_path, tiny_coco, config_json)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + TIMEOUT_S
    while not (metrics.is_file() and metrics.read_text().count('"loss"') >= 3):
        assert time.monotonic() < deadline and all(p.poll() is None for p in processes)
        time.sleep(0.05)
    processes[1].send_signal(signal.SIGINT)
    outputs = _wait(processes)
    for process, output in zip(processes, outputs, strict=True):
        # Stopped by the interrupt, not by a collective that lost its peer.
        assert process.returncode != 0 and "KeyboardInterrupt" in output, output[-3000:]
        assert "RuntimeError" not in output, output[-3000:]
    (checkpoint,) = (tmp_path / "run").glob("checkpoint_*.pt")
    iteration = int(checkpoint.stem.split("_")[1])
    assert 3 <= iteration < cfg.train.max_iter
    assert f"interrupted after iteration {iteration}" in outputs[0]
    assert "interrupted after iteration" not in outputs[1]  # rank 0 reports it, once


def test_rank_0_checks_the_data_and_errors_reach_every_rank(
    tiny_coco: SyntheticCoco, tmp_path: Path
) -> None:
    """Under torchrun rank 0 alone decodes the images (the data check and the datasets) and
    the other ranks get its datasets; what rank 0 refuses, or one rank fails on, every rank
    raises, with the same message, instead of losing its peer or waiting for it."""
    cfg = tiny_config()
    cfg.train.max_iter = 1
    config_json = tmp_path / "config.json"
    config_json.write_text(cfg.to_json())
    _run_ranks(tmp_path, tiny_coco, config_json, mode="helpers")

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)]
    assert [r["result"] for r in ranks] == ["from rank 0"] * 2
    assert [r["calls"] for r in ranks] == [[0], []]
    assert [r["refused"] for r in ranks] == ["ValueError: refused on rank 0"] * 2
    assert ranks[0]["unpicklable"] == "_UnpicklableError: one and two"
    # Its nearest base class that travels: still bad input, with the same message.
    assert ranks[1]["unpicklable"] == "ValueError: one and two"
    # Rank 0's result stays there; its error reaches every rank.
    assert [r["done"] for r in ranks] == ["kept on rank 0", None]
    assert [r["done_refused"] for r in ranks] == ["ValueError: refused on rank 0"] * 2
    assert [r["gathered"] for r in ranks] == [[0, 10]] * 2
    assert [r["failed_shard"] for r in ranks] == [
        "FileNotFoundError: image 7 (007.png) changed on disk"
    ] * 2
    assert [r["checked"] for r in ranks] == [tiny_coco.num_images, None]
    # Each image decoded once, by rank 0: the training and validation sets are one file here.
    assert len(ranks[0]["decoded"]) == tiny_coco.num_images
    assert ranks[1]["decoded"] == []
    # The datasets took rank 0's check (the other rank gets them): no set inspected again.
    assert [r["inspected"] for r in ranks] == [[], []]
    assert ranks[0]["final_metrics"]["num_images"] == tiny_coco.num_images
    # Rank 0's dataset, but files missing where rank 1 runs: every rank names that machine.
    missing = ranks[0]["missing_on_rank_1"]
    assert missing.startswith("DatasetError: ")
    count = tiny_coco.num_images
    expected = (
        f"{counted(count, 'image file')} that rank 0 read are missing on the machine of rank 1"
    )
    assert expected in missing
    assert ranks[1]["missing_on_rank_1"] == missing


def test_a_failure_of_rank_0s_scoring_stops_every_rank_with_its_error(
    tiny_coco: SyntheticCoco, tmp_path: Path
) -> None:
    """Rank 0 alone scores the gathered detections: what stops it there (here a non-finite
    detection) stops every rank at once with the same error, after the checkpoint due at that
    iteration, instead of the others training on to lose their peer or wait for it."""
    cfg = tiny_config()
    cfg.train.max_iter, cfg.train.eval_period, cfg.train.checkpoint_period = 4, 2, 2
    config_json = tmp_path / "config.json"
    config_json.write_text(cfg.to_json())
    processes = _launch(tmp_path, tiny_coco, config_json, mode="failed_scoring")
    outputs = _wait(processes)

    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode != 0, output[-3000:]
        assert "Connection closed by peer" not in output, output[-3000:]
    # Rank 0 says once which checkpoint continues the run.
    assert "holds iteration 2: continue with --resume once it is fixed" in outputs[0], outputs[0]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)]
    assert [r["error"] for r in reports] == [SCORING_ERROR] * WORLD_SIZE
    assert all(r["seconds"] < TIMEOUT_S / 4 for r in reports), reports
    assert [p.name for p in (tmp_path / "run").glob("checkpoint_*.pt")] == ["checkpoint_0000002.pt"]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="lists threads in /proc")
def test_cleanup_stops_the_threads_of_the_process_group(
    tiny_coco: SyntheticCoco, tmp_path: Path
) -> None:
    """After cleanup() no thread of the group is left for the interpreter's shutdown to tear
    down: not after a DDP wrap (which imports torch functions that take the group as a default
    argument), nor with the DDP model left in a reference cycle."""
    config_json = tmp_path / "config.json"
    config_json.write_text(tiny_config().to_json())
    _run_ranks(tmp_path, tiny_coco, config_json, mode="teardown")

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)]
    assert all(any(n.startswith("pt_gloo") for n in r["before"]) for r in ranks), ranks
    assert any(n.startswith("pt_tcpstore") for n in ranks[0]["before"]), ranks
    assert [r["after"] for r in ranks] == [[]] * WORLD_SIZE


if __name__ == "__main__":
    workers = {
        "train": _worker,
        "helpers": _helpers_worker,
        "teardown": _teardown_worker,
        "failed_scoring": _failed_scoring_worker,
    }
    worker = workers[sys.argv[1]]
    worker(int(sys.argv[2]), *(Path(arg) for arg in sys.argv[3:7]))


def _torchrun_on_two_gpus(monkeypatch: pytest.MonkeyPatch, *, world_size: int, rank: int) -> None:
    """The environment torchrun gives process ``rank`` (its LOCAL_RANK too) of ``world_size`` on
    a machine that shows 2 GPUs; selecting a GPU fails the test (it should be refused first)."""
    for name, value in (("WORLD_SIZE", world_size), ("RANK", rank), ("LOCAL_RANK", rank)):
        monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: pytest.fail("not refused"))
