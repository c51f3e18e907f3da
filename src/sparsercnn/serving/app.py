"""The HTTP routes and :func:`create_app`.

Routes: ``POST /v1/detect`` (detections of one or several images, batched with concurrent
requests), ``POST /v1/stages`` (the proposals and every stage's detections of one image, for the
page), ``GET /v1/model``, ``GET /health``, the page at ``/`` with its files under ``/static``,
and the API docs at ``/docs`` (:mod:`~sparsercnn.serving.docs`, offline); every ``GET`` route
also answers ``HEAD`` (:class:`~sparsercnn.serving.head_requests.HeadAsGet`).
Decoding runs in worker threads (one per core) and the model on the batcher's thread, so the
event loop only parses and answers.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import torch
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from sparsercnn import __version__
from sparsercnn.data.image_io import DecodedImage
from sparsercnn.diagnostics.stage_boxes import StageBoxes
from sparsercnn.image_inputs import input_name
from sparsercnn.model.inference import Precision
from sparsercnn.prediction import NonFiniteDetectionsError
from sparsercnn.serving.batching import RequestBatcher
from sparsercnn.serving.docs import add_docs
from sparsercnn.serving.errors import ApiError, install_error_handlers
from sparsercnn.serving.head_requests import HeadAsGet
from sparsercnn.serving.limits import BodySizeLimit, Limits
from sparsercnn.serving.request_parsing import (
    IMAGES_FIELD,
    UploadedImage,
    read_image_request,
)
from sparsercnn.serving.schemas import (
    DetectJsonRequest,
    DetectOptions,
    DetectResponse,
    ErrorBody,
    Health,
    ModelInfo,
    StagesJsonRequest,
    StagesOptions,
    StageView,
    Timing,
    image_detections,
    limit_detections,
)
from sparsercnn.serving.service import DEFAULT_MAX_QUEUED_IMAGES, DetectionService
from sparsercnn.serving.uploads import at_input_size, decode_upload

STATIC_PACKAGE = ("sparsercnn.serving", "static")
# The error answers of the image endpoints, in the OpenAPI schema.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "a bad image, parameter or body; the message names the field"),
        (413, "over --max-images, --max-image-bytes, --max-image-pixels or the body size"),
        (
            415,
            "neither multipart/form-data nor application/json, or an image of several frames "
            "(an animation, a multi-page TIFF)",
        ),
        (500, "the model failed on this request"),
        (
            503,
            "the server is shutting down, or busy: over --max-queued-images images wait (or "
            "over --max-connections connections are open: uvicorn's plain-text answer)",
        ),
    )
}


def create_app(
    model_file: str | Path,
    *,
    onnx_file: str | Path | None = None,
    device: torch.device | str | None = "cpu",
    precision: Precision | None = None,
    cuda_graphs: bool = False,
    limits: Limits | None = None,
    max_batch_images: int = 8,
    max_wait_ms: float = 10.0,
    max_queued_images: int = DEFAULT_MAX_QUEUED_IMAGES,
    max_connections: int | None = None,
) -> FastAPI:
    """The detection server of a model file (loaded now; the batcher starts with the app).

    Args:
        model_file: the ``.safetensors`` model file.
        onnx_file: its ONNX export, used for requests that run every stage.
        device: where the PyTorch model and the ONNX file's onnxruntime session run (None: each
            one's default, see :class:`~sparsercnn.serving.service.DetectionService`).
        precision: ``fp32``, ``bf16`` autocast where the device runs it natively,
            ``winograd`` (fp32 with Winograd 3x3 convolutions, CPUs) or ``int8`` (int8
            backbone and FPN, CPUs; a model file calibrated by ``export --int8``); None: fp32.
            With ``onnx_file``, one given must be the graph's (full-stage requests run it:
            :func:`~sparsercnn.export.onnx_runtime.check_graph_precision`).
        cuda_graphs: replay the PyTorch model from CUDA graphs, one per batch shape.
        limits: per-request limits (default :class:`Limits`).
        max_batch_images: most images per batch (1 turns batching off).
        max_wait_ms: how long a batch waits for more requests after its first.
        max_queued_images: most images waiting for the model; a request past it is answered
            503 at once.
        max_connections: most open client connections, as the server running the app
            enforces them (``sparsercnn serve --max-connections``); reported by
            ``GET /v1/model`` (None: not known).

    Raises:
        FileNotFoundError, ValueError: a model file is missing or unreadable.
    """
    service = DetectionService(
        model_file,
        onnx_file=onnx_file,
        device=device,
        precision=precision,
        cuda_graphs=cuda_graphs,
        limits=limits,
        max_batch_images=max_batch_images,
        max_wait_ms=max_wait_ms,
        max_queued_images=max_queued_images,
        max_connections=max_connections,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Decoding is CPU-bound and holds a full-size image until it is shrunk: one decode per
        # core at a time, not one per thread of Starlette's pool (40 of 120 MB at the default
        # --max-image-pixels).
        app.state.decode_limiter = anyio.CapacityLimiter(os.cpu_count() or 1)
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="sparsercnn",
        version=__version__,
        description="Sparse R-CNN object detection: detections, every refinement stage, and a "
        "page at / that draws them.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    add_docs(app)
    app.state.service = service
    app.add_middleware(BodySizeLimit, max_bytes=service.limits.max_body_bytes)
    app.add_middleware(HeadAsGet)
    install_error_handlers(app)
    app.mount("/static", StaticFiles(packages=[STATIC_PACKAGE]), name="static")
    _add_routes(app, service)
    return app


def _add_routes(app: FastAPI, service: DetectionService) -> None:
    limits = service.limits

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        html = resources.files(STATIC_PACKAGE[0]).joinpath("static/index.html").read_text()
        return HTMLResponse(html)

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        batcher = _batcher(service)
        stats = batcher.stats
        return Health(
            status="ok",
            batches=stats.batches,
            images=stats.images,
            largest_batch=stats.largest,
            queued=batcher.queued,
            queued_images=batcher.queued_images,
        )

    @app.get("/v1/model", response_model=ModelInfo)
    async def model_info() -> ModelInfo:
        return service.info()

    @app.post(
        "/v1/detect",
        response_model=DetectResponse,
        responses=ERROR_RESPONSES,
        openapi_extra=_request_body(DetectJsonRequest, DetectOptions, limits.max_images),
    )
    async def detect(request: Request) -> DetectResponse:
        """Detect objects in one or several images (at most the server's ``--max-images``)."""
        start = time.perf_counter()
        uploads, options = await read_image_request(
            request, DetectOptions, limits.max_images, limits.max_image_bytes
        )
        _check_stages(options.stages, service.num_stages)
        read = time.perf_counter()
        _batcher(service).check_room(len(uploads))  # before decoding: submit checks it again
        names = [upload.name for upload in uploads]
        # The predictor names the request's i-th image by input_name(i) in its errors.
        named = {input_name(i): (upload.label, upload.field) for i, upload in enumerate(uploads)}
        images = await _decode(uploads, limits, service, app.state.decode_limiter)
        del uploads  # the encoded files: a queued request holds its images at input size alone
        decoded = time.perf_counter()
        future = _batcher(service).submit(images, service.stages_to_run(options.stages))
        try:
            result = await asyncio.wrap_future(future)
        except NonFiniteDetectionsError as error:
            raise _non_finite_error(error, named) from None
        return DetectResponse(
            images=[
                image_detections(limit_detections(prediction, options), name)
                for name, prediction in zip(names, result.predictions, strict=True)
            ],
            stages=options.stages or service.num_stages,
            timing=Timing(
                decode_ms=_ms(decoded - read),
                queue_ms=round(result.queue_ms, 3),
                inference_ms=round(result.inference_ms, 3),
                total_ms=_ms(time.perf_counter() - start),
                batch_images=result.batch_images,
            ),
        )

    @app.post(
        "/v1/stages",
        response_model=StageView,
        responses=ERROR_RESPONSES,
        openapi_extra=_request_body(StagesJsonRequest, StagesOptions, max_images=1),
    )
    async def stages(request: Request) -> StageView:
        """The learned proposals and every stage's detections of one image (one forward pass):
        the refinement figure of the paper, drawn by the page at ``/``."""
        uploads, _ = await read_image_request(request, StagesOptions, 1, limits.max_image_bytes)
        name, label, field = uploads[0].name, uploads[0].label, uploads[0].field
        _batcher(service).check_room(1)  # before decoding: call checks it again
        (image,) = await _decode(uploads, limits, service, app.state.decode_limiter)
        del uploads  # as in /v1/detect

        def run() -> tuple[StageBoxes, float]:
            # Timed on the worker: the wait for batches queued before it is not inference.
            start = time.perf_counter()
            return service.stage_boxes(image), _ms(time.perf_counter() - start)

        result, inference_ms = await asyncio.wrap_future(_batcher(service).call(run, [image]))
        try:
            view = result.to_dict(service.categories, name)
        except NonFiniteDetectionsError as error:
            raise _non_finite_error(error, {name: (label, field)}) from None
        return StageView.model_validate({**view, "inference_ms": inference_ms})


def _batcher(service: DetectionService) -> RequestBatcher:
    if service.batcher is None:
        raise RuntimeError("the batcher is not running: serve the app with its lifespan")
    return service.batcher


def _non_finite_error(
    error: NonFiniteDetectionsError, named: dict[str, tuple[str, str]]
) -> ApiError:
    """The 500 answering a model's NaN or infinite detections of one of the request's images,
    named as the request names it (``images[1] (photo.jpg)``, field ``images[1]``): ``named``
    maps the predictor's name of each image (:attr:`NonFiniteDetectionsError.source`) to its
    label and field."""
    label, field = named.get(error.source, (error.source, None))
    return ApiError(500, f"{label}: {error.reason}", field)


def _check_stages(stages: int | None, num_stages: int) -> None:
    if stages is not None and stages > num_stages:
        raise ApiError(
            400,
            f"parameter stages: {stages} is out of range; the model has stages 1..{num_stages}",
            "stages",
        )


async def _decode(
    uploads: list[UploadedImage],
    limits: Limits,
    service: DetectionService,
    limiter: anyio.CapacityLimiter,
) -> list[DecodedImage]:
    """Decode every upload in a worker thread, at most one per core across requests (``limiter``;
    Pillow releases the GIL while decoding), a large
    JPEG at the reduced scale the model's resize allows, as ``predict`` decodes a file, and
    shrink it to the model's input size (:func:`at_input_size`: the same pixels reach the
    model, and a queued request holds no more than them)."""
    transform = service.predictor.transform

    def decode(upload: UploadedImage) -> DecodedImage:
        decoded = decode_upload(
            upload.data, upload.field, limits, upload.file_name, transform.source_size
        )
        return at_input_size(decoded, transform)

    return [await anyio.to_thread.run_sync(decode, upload, limiter=limiter) for upload in uploads]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _request_body(json_model: Any, options_model: Any, max_images: int) -> dict[str, Any]:
    """The OpenAPI request body and query parameters of an image endpoint: multipart files or
    JSON, with the options also accepted in the query string (FastAPI cannot infer them, since
    the route reads the request itself to refuse unknown names)."""
    options = options_model.model_json_schema().get("properties", {})
    count = {"minItems": 1, "maxItems": max_images}
    images = {"type": "string", "format": "binary"}
    multipart = {
        "type": "object",
        "properties": {
            IMAGES_FIELD: {"type": "array", "items": images, **count} if max_images > 1 else images,
            **options,
        },
        "required": [IMAGES_FIELD],
        "additionalProperties": False,
    }
    json_schema = json_model.model_json_schema()
    json_schema["properties"][IMAGES_FIELD].update(count)
    return {
        "parameters": [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": f"{schema.get('description', name)} (or a form field or JSON key)",
                "schema": schema,
            }
            for name, schema in options.items()
        ],
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": multipart},
                "application/json": {"schema": json_schema},
            },
        },
    }
