"""The request batcher: it forms batches within its image and time limits, keeps stage counts
apart, survives failures and cancelled callers; through the app, concurrent requests are
batched by padded size and get the detections they get one by one."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import torch
from PIL import Image

from sparsercnn.prediction import Prediction
from sparsercnn.serving import Limits
from sparsercnn.serving import app as app_module
from sparsercnn.serving.batching import RequestBatcher
from sparsercnn.serving.errors import BatcherClosed, BatcherFull
from sparsercnn.structures import padded_size
from tests.serving.conftest import MakeClient, encoded_image
from tests.serving.test_api import assert_same, files


class FakeModel:
    """A detect function recording every call's (image widths, num_stages); it can block on
    ``gate``, and sets ``entered`` once called (before blocking)."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[int], int | None]] = []
        self.thread_names: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, images: list[Image.Image], num_stages: int | None) -> list[Prediction]:
        self.entered.set()
        self.gate.wait(10)
        self.calls.append(([image.width for image in images], num_stages))
        self.thread_names.append(threading.current_thread().name)
        if any(image.width == 13 for image in images):
            raise RuntimeError("width 13 is unlucky")
        return [_prediction(image.width) for image in images]


def _prediction(width: int) -> Prediction:
    return Prediction(
        boxes=torch.zeros(0, 4),
        scores=torch.zeros(0),
        labels=torch.zeros(0, dtype=torch.int64),
        class_names=[],
        category_ids=[],
        image_size=(1, width),
        source=f"width {width}",
    )


def _images(*widths: int) -> list[Image.Image]:
    return [Image.new("RGB", (width, 4)) for width in widths]


def _wait_for_first_call(model: FakeModel) -> None:
    """Block until the batcher runs (and ``model`` holds) the first job, so that the jobs
    submitted next queue up behind it instead of joining its batch."""
    assert model.entered.wait(10), "the batcher never called the model"


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def test_jobs_queued_together_form_one_batch_up_to_the_image_limit() -> None:
    model = FakeModel()
    model.gate.clear()  # hold the first batch so that the others queue up behind it
    batcher = RequestBatcher(model, max_batch_images=4, max_wait_ms=0)
    try:
        first = batcher.submit(_images(1), None)
        _wait_for_first_call(model)
        futures = [batcher.submit(_images(10 + i, 20 + i), None) for i in range(3)]
        model.gate.set()
        results = [f.result(5) for f in [first, *futures]]
    finally:
        batcher.close()
    assert model.calls == [([1], None), ([10, 20, 11, 21], None), ([12, 22], None)]
    assert [[p.source for p in r.predictions] for r in results[1:]] == [
        ["width 10", "width 20"],
        ["width 11", "width 21"],
        ["width 12", "width 22"],
    ]
    assert [r.batch_images for r in results] == [1, 4, 4, 2]
    assert (batcher.stats.batches, batcher.stats.images, batcher.stats.largest) == (3, 7, 4)
    assert set(model.thread_names) == {"sparsercnn-batcher"}


def test_the_batcher_waits_for_more_jobs_up_to_max_wait() -> None:
    """Having taken a job, the batcher waits for more (here up to a minute) and runs the batch
    as soon as it is full; a batch that does not fill runs once ``max_wait_ms`` have passed."""
    model = FakeModel()
    batcher = RequestBatcher(model, max_batch_images=2, max_wait_ms=60_000)
    try:
        first = batcher.submit(_images(1), None)
        _wait_until(lambda: batcher.queued == 0, "the batcher never took the first job")
        assert not model.entered.is_set()  # taken, and waiting for a second job
        second = batcher.submit(_images(2), None)
        assert first.result(5).batch_images == second.result(5).batch_images == 2
    finally:
        batcher.close()
    assert model.calls == [([1, 2], None)]
    model = FakeModel()
    batcher = RequestBatcher(model, max_batch_images=8, max_wait_ms=50)
    try:
        assert batcher.submit(_images(3), None).result(5).batch_images == 1
    finally:
        batcher.close()
    assert model.calls == [([3], None)]


def test_max_batch_one_runs_every_job_alone_and_stage_counts_never_mix() -> None:
    model = FakeModel()
    model.gate.clear()
    alone = RequestBatcher(model, max_batch_images=1, max_wait_ms=100)
    try:
        futures = [alone.submit(_images(w), None) for w in (1, 2, 3)]
        model.gate.set()
        for future in futures:
            future.result(5)
    finally:
        alone.close()
    assert model.calls == [([1], None), ([2], None), ([3], None)]
    model = FakeModel()
    model.gate.clear()
    mixed = RequestBatcher(model, max_batch_images=8, max_wait_ms=0)
    try:
        futures = [mixed.submit(_images(0), None)]
        _wait_for_first_call(model)
        futures += [mixed.submit(_images(w), k) for w, k in ((1, 1), (2, None), (3, 1))]
        model.gate.set()
        for future in futures:
            future.result(5)
    finally:
        mixed.close()
    assert model.calls == [([0], None), ([1, 3], 1), ([2], None)]


def test_a_failing_batch_fails_its_jobs_only_and_cancelled_jobs_are_skipped() -> None:
    # One job per batch here: a failing batch fails every job in it.
    model = FakeModel()
    model.gate.clear()
    batcher = RequestBatcher(model, max_batch_images=1, max_wait_ms=0)
    try:
        blocker = batcher.submit(_images(1), None)
        _wait_for_first_call(model)
        unlucky = batcher.submit(_images(13), None)
        cancelled = batcher.submit(_images(99), None)
        assert cancelled.cancel()  # its client went away before the batch started
        later = batcher.submit(_images(5), None)
        model.gate.set()
        blocker.result(5)
        with pytest.raises(RuntimeError, match="unlucky"):
            unlucky.result(5)
        assert later.result(5).predictions[0].source == "width 5"
        assert batcher.call(lambda: threading.current_thread().name).result(5) == (
            "sparsercnn-batcher"
        )
    finally:
        batcher.close()
    assert all(99 not in widths for widths, _ in model.calls)


def test_close_fails_queued_jobs() -> None:
    model = FakeModel()
    model.gate.clear()
    batcher = RequestBatcher(model, max_batch_images=1, max_wait_ms=0)
    running = batcher.submit(_images(1), None)
    _wait_for_first_call(model)
    queued = batcher.submit(_images(2), None)
    closer = threading.Thread(target=batcher.close)
    closer.start()
    # Only close() can answer the queued job while the model holds the running one: once it
    # is answered, close() has begun, and the running job may finish.
    assert isinstance(queued.exception(10), BatcherClosed)
    model.gate.set()
    closer.join(5)
    assert not closer.is_alive()
    assert running.result(5).predictions[0].source == "width 1"
    with pytest.raises(BatcherClosed, match="shutting down"):
        queued.result(5)
    with pytest.raises(BatcherClosed, match="closed"):
        batcher.submit(_images(3), None)


def test_a_job_past_the_queue_limit_is_refused_at_once() -> None:
    """At most ``max_queued_images`` images wait (the running batch aside); a job larger than
    the limit still runs when nothing waits."""
    model = FakeModel()
    model.gate.clear()
    batcher = RequestBatcher(model, max_batch_images=1, max_wait_ms=0, max_queued_images=3)
    try:
        running = batcher.submit(_images(1), None)
        _wait_for_first_call(model)
        queued = [batcher.submit(_images(2, 3), None), batcher.submit(_images(4), None)]
        assert (batcher.queued, batcher.queued_images) == (2, 3)
        with pytest.raises(BatcherFull, match=r"holds 3 of at most 3 images .* request's 1$"):
            batcher.submit(_images(5), None)
        with pytest.raises(BatcherFull, match="--max-queued-images"):
            batcher.check_room(1)
        batcher.check_room(0)
        # A task (the stage view) holding an image waits as a job does: it was never refused.
        with pytest.raises(BatcherFull, match=r"request's 1$"):
            batcher.call(lambda: None, _images(11))
        model.gate.set()
        for future in (running, *queued):
            future.result(5)
        large = batcher.submit(_images(6, 7, 8, 9, 10), None)
        assert len(large.result(5).predictions) == 5
    finally:
        model.gate.set()
        batcher.close()


def test_through_the_app_a_request_past_the_queue_limit_gets_503(
    make_client: MakeClient,
) -> None:
    client = make_client(max_batch_images=1, max_wait_ms=0, max_queued_images=1)
    assert client.get("/v1/model").json()["max_queued_images"] == 1
    batcher = client.app.state.service.batcher  # type: ignore[attr-defined]
    detect, gate, running = batcher.detect, threading.Event(), threading.Event()

    def blocked(images: Any, num_stages: int | None) -> Any:
        running.set()
        gate.wait(10)
        return detect(images, num_stages)

    batcher.detect = blocked
    image = files(encoded_image(64, 48))
    with ThreadPoolExecutor(3) as pool:
        # One request runs (blocked), then the other waits: the queue holds one image. (Sent
        # together, the second could find the first still queued and be refused.)
        first = [pool.submit(client.post, "/v1/detect", files=image)]
        if not running.wait(10):
            gate.set()
            pytest.fail("the first request never ran")
        first.append(pool.submit(client.post, "/v1/detect", files=image))
        deadline = time.monotonic() + 10
        while client.get("/health").json()["queued_images"] != 1:
            time.sleep(0.02)
            if time.monotonic() > deadline:
                gate.set()
                pytest.fail("no request queued")
        busy = client.post("/v1/detect", files=image)
        # The stage view was never refused: it waited for the model, past the limit.
        busy_stages = pool.submit(client.post, "/v1/stages", files=image)
        try:
            busy_stages.result(5)
        finally:
            gate.set()
        assert [f.result(10).status_code for f in first] == [200, 200]
    assert busy.status_code == 503, busy.text
    assert "the server is busy: its queue holds 1 of at most 1 images" in busy.json()["error"]
    assert busy_stages.result().status_code == 503, busy_stages.result().text
    assert client.post("/v1/detect", files=image).status_code == 200


def test_concurrent_requests_decode_one_image_per_core_at_a_time(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each decode holds a full-size image (120 MB at the default pixel limit): at most one per
    core at once, whatever the number of requests (Starlette's pool has 40 threads). The decodes
    meet in pairs (a barrier), so that two always run together, and a third would be counted."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    client = make_client(max_wait_ms=0)
    running, most, lock = 0, 0, threading.Lock()
    pair = threading.Barrier(2, timeout=10)
    decode = app_module.decode_upload

    def counting(*args: Any) -> Any:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        pair.wait()
        time.sleep(0.05)  # time for a third decode to start, were the limit broken
        with lock:
            running -= 1
        return decode(*args)

    monkeypatch.setattr(app_module, "decode_upload", counting)
    image = files(encoded_image(64, 48))
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: client.post("/v1/detect", files=image), range(6)))
    assert [a.status_code for a in answers] == [200] * 6
    assert most == 2


def test_a_failing_job_does_not_fail_the_other_jobs_of_its_batch() -> None:
    """The batch of three jobs fails for one image; each job is run again alone, and only the
    job holding it gets the error."""
    model = FakeModel()
    model.gate.clear()
    batcher = RequestBatcher(model, max_batch_images=8, max_wait_ms=0)
    try:
        blocker = batcher.submit(_images(1), None)
        _wait_for_first_call(model)
        futures = [batcher.submit(_images(*w), None) for w in ((5,), (6, 13), (7,))]
        model.gate.set()
        blocker.result(5)
        with pytest.raises(RuntimeError, match="unlucky"):
            futures[1].result(5)
        results = [futures[0].result(5), futures[2].result(5)]
    finally:
        batcher.close()
    assert [[p.source for p in r.predictions] for r in results] == [["width 5"], ["width 7"]]
    alone = [([5], None), ([6, 13], None), ([7], None)]
    assert model.calls == [([1], None), ([5, 6, 13, 7], None), *alone]
    assert (batcher.stats.batches, batcher.stats.jobs) == (3, 3)


def test_concurrent_requests_are_batched_by_padded_size_and_match_one_by_one(
    make_client: MakeClient,
) -> None:
    # Two padded sizes after the tiny preset's resize (128x96 -> 160x128 padded, 150x70 ->
    # 160x96 padded), four images each, sent as 32 requests from 8 threads.
    sizes = [(128, 96), (150, 70)]
    images = [encoded_image(*sizes[i % 2], seed=i) for i in range(8)]
    one_by_one_client = make_client(max_batch_images=1, max_wait_ms=0)
    one_by_one = [
        one_by_one_client.post("/v1/detect", files=files(image)).json()["images"][0]
        for image in images
    ]
    client = make_client(max_batch_images=8, max_wait_ms=100)
    model = client.app.state.service.predictor.model  # type: ignore[attr-defined]
    forwards: list[list[tuple[int, int]]] = []

    def record(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        forwards.append([(int(t.shape[-2]), int(t.shape[-1])) for t in args[0]])

    handle = model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        with ThreadPoolExecutor(8) as pool:
            responses = list(
                pool.map(lambda i: client.post("/v1/detect", files=files(images[i % 8])), range(32))
            )
    finally:
        handle.remove()
    for index, response in enumerate(responses):
        assert response.status_code == 200, response.text
        got = response.json()["images"][0]
        assert (got["width"], got["height"]) == sizes[index % 2]
        assert_same(got["detections"], one_by_one[index % 8]["detections"])
    assert sum(len(f) for f in forwards) == 32
    assert max(len(f) for f in forwards) > 1, f"no batch formed: {forwards}"
    for forward in forwards:
        assert len({padded_size(h, w, model.size_divisibility) for h, w in forward}) == 1
    health = client.get("/health").json()
    assert health["images"] == 32 and health["batches"] < 32 and health["largest_batch"] > 1
    assert max(r.json()["timing"]["batch_images"] for r in responses) > 1


def test_through_the_app_a_failing_image_fails_only_its_own_request(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent requests batched together: the one whose image makes the model fail gets a
    500, the others their detections."""
    client = make_client(raise_server_exceptions=False, max_batch_images=8, max_wait_ms=300)
    service = client.app.state.service  # type: ignore[attr-defined]
    original = service.predictor.with_stages
    batch_sizes: list[int] = []

    def poisoned(num_stages: int | None) -> Any:
        predictor = original(num_stages)

        def detect(images: list[Any]) -> list[Prediction]:
            batch_sizes.append(len(images))
            if any(image.full_size == (77, 77) for image in images):
                raise RuntimeError("simulated failure on a 77x77 image")
            return predictor(images)

        return detect

    monkeypatch.setattr(service.predictor, "with_stages", poisoned)
    images = [encoded_image(128, 96, seed=1), encoded_image(77, 77), encoded_image(150, 70)]
    with ThreadPoolExecutor(3) as pool:
        responses = list(pool.map(lambda i: client.post("/v1/detect", files=files(i)), images))
    assert [r.status_code for r in responses] == [200, 500, 200], [r.text for r in responses]
    assert "77x77" in responses[1].json()["error"]
    assert max(batch_sizes) > 1, f"no batch formed: {batch_sizes}"
    for response in (responses[0], responses[2]):
        assert response.json()["images"][0]["detections"]


def test_through_the_app_all_stages_by_default_or_by_count_share_a_batch(
    make_client: MakeClient,
) -> None:
    """A request giving stages=2 (the model's count) and one giving none ran in two batches:
    the batcher grouped jobs by the stages value as sent."""
    client = make_client(max_batch_images=8, max_wait_ms=1000)
    requests = [{"files": files(encoded_image(128, 96))}] * 2
    requests[1] = {**requests[1], "data": {"stages": "2"}}
    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(lambda r: client.post("/v1/detect", **r), requests))
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    assert [r.json()["stages"] for r in responses] == [2, 2]
    health = client.get("/health").json()
    assert (health["batches"], health["images"]) == (1, 2)


def test_a_request_after_shutdown_gets_503(make_client: MakeClient) -> None:
    client = make_client()
    client.app.state.service.batcher.close()  # type: ignore[attr-defined]
    response = client.post("/v1/detect", files=files(encoded_image(64, 48)))
    assert response.status_code == 503, response.text
    assert "shutting down" in response.json()["error"]


def test_a_request_larger_than_max_batch_runs_in_forward_passes_of_max_batch(
    make_client: MakeClient,
) -> None:
    limits = Limits(max_images=5)
    client = make_client(limits=limits, max_batch_images=2, max_wait_ms=0)
    model = client.app.state.service.predictor.model  # type: ignore[attr-defined]
    forwards: list[int] = []
    handle = model.register_forward_pre_hook(
        lambda module, args, kwargs: forwards.append(len(args[0])), with_kwargs=True
    )
    images = [encoded_image(128, 96, seed=i) for i in range(5)]
    try:
        body = client.post("/v1/detect", files=files(*images)).json()
    finally:
        handle.remove()
    assert forwards == [2, 2, 1]
    assert body["timing"]["batch_images"] == 5 and len(body["images"]) == 5
    health = client.get("/health").json()
    assert (health["batches"], health["images"], health["largest_batch"]) == (1, 5, 5)
    alone = make_client(max_batch_images=1, max_wait_ms=0)
    for image, got in zip(images, body["images"], strict=True):
        expected = alone.post("/v1/detect", files=files(image)).json()["images"][0]
        assert_same(got["detections"], expected["detections"])
