"""The request batcher: concurrent requests gathered into batches on one model-owning thread.

Route handlers :meth:`~RequestBatcher.submit` their decoded images and await the returned
future; the event loop never runs the model. The worker thread takes the oldest job, then keeps
gathering jobs until it holds ``max_batch_images`` images or ``max_wait_ms`` have passed since
it took the first one, and hands each stage count's images to the ``detect`` function in one
call. ``detect`` is a :class:`~sparsercnn.predictor.Predictor` (or its ONNX twin), which forms
forward passes of at most ``max_batch_images`` images of one padded size, so an image's
detections do not depend on the requests it was batched with. When a batch of several jobs
fails, each job is run again alone, so that only the jobs that fail on their own get the error.
Other work that needs the model (the stage view) goes through :meth:`~RequestBatcher.call`, run
alone between batches. The queue holds at most ``max_queued_images`` images (a task's counted as
a job's): past it, a job is refused at once (:class:`~sparsercnn.serving.errors.BatcherFull`),
so that a burst of requests cannot hold the server's memory without bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sparsercnn.image_inputs import ImageInput
from sparsercnn.prediction import Prediction
from sparsercnn.serving.errors import BatcherClosed, BatcherFull

logger = logging.getLogger(__name__)

T = TypeVar("T")
# detect(images, num_stages): one Prediction per image, in order (num_stages None: all).
DetectFunction = Callable[[Sequence[ImageInput], int | None], list[Prediction]]


@dataclass
class BatchResult:
    """What one job gets back.

    Attributes:
        predictions: one per submitted image, in order.
        queue_ms: from submission to the start of its batch.
        inference_ms: the batch's run (every image of the batch, not this job's alone).
        batch_images: images in the batch that served this job.
    """

    predictions: list[Prediction]
    queue_ms: float
    inference_ms: float
    batch_images: int


@dataclass
class BatchStats:
    """Counts since the start: ``batches`` calls of ``detect``, ``images`` in them, ``jobs``
    served, and the ``largest`` batch (images)."""

    batches: int = 0
    images: int = 0
    jobs: int = 0
    largest: int = 0


@dataclass
class _Job:
    images: Sequence[ImageInput]
    num_stages: int | None
    future: Future[Any]
    submitted: float = field(default_factory=time.perf_counter)
    task: Callable[[], Any] | None = None


class RequestBatcher:
    """Gathers submitted images into batches for ``detect`` on one worker thread.

    Args:
        detect: runs the model on images (see :data:`DetectFunction`); only this thread calls it.
        max_batch_images: stop gathering at this many images (1 turns batching off: every job
            runs alone).
        max_wait_ms: stop gathering this long after taking the first job (0: take only what
            is already queued).
        max_queued_images: most images waiting in the queue (None: no limit); a job that would
            pass it is refused, unless the queue holds no image.
    """

    def __init__(
        self,
        detect: DetectFunction,
        *,
        max_batch_images: int,
        max_wait_ms: float,
        max_queued_images: int | None = None,
    ) -> None:
        if max_batch_images < 1:
            raise ValueError(f"max_batch_images must be >= 1, got {max_batch_images}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        if max_queued_images is not None and max_queued_images < 1:
            raise ValueError(f"max_queued_images must be >= 1, got {max_queued_images}")
        self.detect = detect
        self.max_batch_images = max_batch_images
        self.max_wait_ms = max_wait_ms
        self.max_queued_images = max_queued_images
        self.stats = BatchStats()
        self._jobs: deque[_Job] = deque()
        self._condition = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="sparsercnn-batcher", daemon=True)
        self._thread.start()

    def submit(self, images: Sequence[ImageInput], num_stages: int | None) -> Future[BatchResult]:
        """Queue ``images`` for detection with the first ``num_stages`` stages (None: all).

        Raises:
            BatcherClosed: the batcher is closed.
            BatcherFull: the queue has no room for ``images`` (see :meth:`check_room`).
        """
        return self._put(_Job(images=images, num_stages=num_stages, future=Future()))

    def check_room(self, count: int) -> None:
        """Raise :class:`BatcherFull` when ``count`` more images would pass
        ``max_queued_images`` (a route checks this before decoding, :meth:`submit` again)."""
        with self._condition:
            self._check_room(count)

    def call(self, task: Callable[[], T], images: Sequence[ImageInput] = ()) -> Future[T]:
        """Run ``task`` on the worker thread, alone, after the jobs queued before it.

        Args:
            task: the work.
            images: the images ``task`` holds, counted against ``max_queued_images`` while it
                waits as a job's are.

        Raises:
            BatcherClosed: the batcher is closed.
            BatcherFull: the queue has no room for ``images`` (see :meth:`check_room`).
        """
        return self._put(_Job(images=images, num_stages=None, future=Future(), task=task))

    @property
    def queued(self) -> int:
        """Jobs waiting for the worker."""
        with self._condition:
            return len(self._jobs)

    @property
    def queued_images(self) -> int:
        """Images of the jobs waiting for the worker (what ``max_queued_images`` bounds)."""
        with self._condition:
            return self._queued_images()

    def close(self) -> None:
        """Stop the worker after its current batch; queued jobs fail with
        :class:`BatcherClosed`."""
        with self._condition:
            self._closed = True
            left = list(self._jobs)
            self._jobs.clear()
            self._condition.notify_all()
        for job in left:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(BatcherClosed("the server is shutting down"))
        self._thread.join()

    def _check_room(self, count: int) -> None:
        if self.max_queued_images is None or count == 0:
            return
        queued = self._queued_images()
        if queued and queued + count > self.max_queued_images:
            raise BatcherFull(
                f"the server is busy: its queue holds {queued} of at most "
                f"{self.max_queued_images} images (--max-queued-images), too many for this "
                f"request's {count}"
            )

    def _queued_images(self) -> int:
        return sum(len(job.images) for job in self._jobs)

    def _put(self, job: _Job) -> Future[Any]:
        with self._condition:
            if self._closed:
                raise BatcherClosed("the batcher is closed: the server is shutting down")
            self._check_room(len(job.images))
            self._jobs.append(job)
            self._condition.notify_all()
        return job.future

    def _work(self) -> None:
        while True:
            jobs = self._gather()
            if jobs is None:
                return
            if jobs[0].task is not None:
                self._run_task(jobs[0])
            else:
                self._run_batch(jobs)

    def _gather(self) -> list[_Job] | None:
        """The next task alone, or detection jobs up to the image and time limits; None once
        closed."""
        with self._condition:
            first = None
            while first is None:
                while not self._jobs and not self._closed:
                    self._condition.wait()
                if self._closed:
                    return None
                first = self._take()
            if first.task is not None:
                return [first]
            jobs, count = [first], len(first.images)
            deadline = time.monotonic() + self.max_wait_ms / 1000
            while count < self.max_batch_images and not self._closed:
                if self._jobs:
                    if self._jobs[0].task is not None:
                        break
                    job = self._take()
                    if job is not None:
                        jobs.append(job)
                        count += len(job.images)
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            return jobs

    def _take(self) -> _Job | None:
        """Pop the oldest job and mark it running; None when its caller cancelled it (a client
        that went away), whose future then accepts no result."""
        job = self._jobs.popleft()
        return job if job.future.set_running_or_notify_cancel() else None

    def _run_batch(self, jobs: list[_Job]) -> None:
        by_stages: dict[int | None, list[_Job]] = {}
        for job in jobs:
            by_stages.setdefault(job.num_stages, []).append(job)
        for num_stages, group in by_stages.items():
            if not self._run_group(group, num_stages) and len(group) > 1:
                # One job's images may be what failed: the others must not share its error.
                for job in group:
                    self._run_group([job], num_stages)

    def _run_group(self, group: list[_Job], num_stages: int | None) -> bool:
        """Run ``group``'s images in one ``detect`` call and answer its jobs; on failure, answer
        them with the error only when the group is one job. Returns whether it succeeded."""
        images = [image for job in group for image in job.images]
        start = time.perf_counter()
        try:
            predictions = self.detect(images, num_stages)
        except Exception as error:
            logger.exception("a batch of %d images (%d requests) failed", len(images), len(group))
            if len(group) == 1:
                group[0].future.set_exception(error)
            return False
        inference_ms = (time.perf_counter() - start) * 1000
        self._count(len(group), len(images))
        begin = 0
        for job in group:
            end = begin + len(job.images)
            job.future.set_result(
                BatchResult(
                    predictions=predictions[begin:end],
                    queue_ms=(start - job.submitted) * 1000,
                    inference_ms=inference_ms,
                    batch_images=len(images),
                )
            )
            begin = end
        return True

    def _run_task(self, job: _Job) -> None:
        assert job.task is not None
        try:
            job.future.set_result(job.task())
        except Exception as error:
            job.future.set_exception(error)

    def _count(self, jobs: int, images: int) -> None:
        stats = self.stats
        stats.batches += 1
        stats.images += images
        stats.jobs += jobs
        stats.largest = max(stats.largest, images)
