"""The request parameters and response bodies of the HTTP API (pydantic models, shown at
``/docs``), and the conversion of :class:`~sparsercnn.prediction.Prediction` into them.

An image's detections are :meth:`~sparsercnn.prediction.Prediction.to_dict`, validated: boxes in
pixels of the original image (after its EXIF orientation), ``bbox.xyxy`` ``[x1, y1, x2, y2]``
and ``bbox.xywh`` the COCO ``[x, y, width, height]`` of
:meth:`~sparsercnn.prediction.Prediction.to_coco_results` (rounded to 1/100 pixel), with
``x2 = x + width`` and ``y2 = y + height``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from sparsercnn.prediction import Prediction
from sparsercnn.scores import SCORE_DIGITS, SCORE_THRESHOLD_RULE, check_score_threshold


def _score_threshold(value: float) -> float:
    """The parsed ``score_threshold`` through :func:`~sparsercnn.scores.check_score_threshold`,
    the check of :meth:`~sparsercnn.prediction.Prediction.above` and the CLI's flags."""
    try:
        return check_score_threshold(value)
    except ValueError:
        # The request's parser names the parameter and the value as it was sent.
        raise ValueError(SCORE_THRESHOLD_RULE) from None


# A float checked as every score threshold is; the schema states the bounds for /docs.
ScoreThreshold = Annotated[
    float,
    AfterValidator(_score_threshold),
    WithJsonSchema({"type": "number", "minimum": 0.0, "maximum": 1.0}),
]


class DetectOptions(BaseModel):
    """Parameters of ``POST /v1/detect`` (query string, form fields or JSON keys); a JSON
    ``null`` is the default of each."""

    model_config = ConfigDict(extra="forbid")

    score_threshold: ScoreThreshold | None = Field(
        None,
        description="drop detections scoring below this, as their score is given "
        f"({SCORE_DIGITS} significant digits; default: keep all)",
    )
    max_detections: int | None = Field(
        None, ge=1, description="keep at most this many detections per image (highest scores)"
    )
    stages: int | None = Field(
        None, ge=1, description="run only the first k refinement stages (default: all)"
    )

    @field_validator("score_threshold", "max_detections", "stages", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: Any) -> Any:
        # pydantic reads true as 1 in a number field: {"stages": true} would run one stage.
        if isinstance(value, bool):
            raise ValueError("a number is wanted, not true/false")
        return value


class DetectJsonRequest(DetectOptions):
    """``POST /v1/detect`` as JSON: base64 image files (a ``data:`` URL prefix is allowed)."""

    images: list[str] = Field(description="base64-encoded image files (PNG, JPEG, ...)")


class StagesOptions(BaseModel):
    """``POST /v1/stages`` takes no parameter besides its one image."""

    model_config = ConfigDict(extra="forbid")


class StagesJsonRequest(StagesOptions):
    """``POST /v1/stages`` as JSON: one base64 image file."""

    images: list[str] = Field(description="exactly one base64-encoded image file")


class ErrorBody(BaseModel):
    """Every error answer (4xx and 5xx)."""

    error: str = Field(description="what is wrong and what to do")
    field: str | None = Field(
        description="the offending parameter or image (stages, images[1]), or null"
    )


class BBox(BaseModel):
    xyxy: list[float] = Field(
        min_length=4, max_length=4, description="[x1, y1, x2, y2], original pixels"
    )
    xywh: list[float] = Field(
        min_length=4, max_length=4, description="COCO [x, y, width, height], original pixels"
    )


class Detection(BaseModel):
    bbox: BBox
    score: float = Field(
        description=f"the class's sigmoid score, to {SCORE_DIGITS} significant digits"
    )
    category_id: int = Field(description="the dataset's category id")
    category_name: str


class Timing(BaseModel):
    decode_ms: float = Field(
        description="decoding this request's images and resizing them to the model's input size"
    )
    queue_ms: float = Field(description="waiting for a batch to start")
    inference_ms: float = Field(description="the batch's model run (all its images)")
    total_ms: float = Field(description="from receiving the request to answering it")
    batch_images: int = Field(
        description="images in the batch that served this request (run in forward passes of at "
        "most max_batch_images images of one padded size)"
    )


class ImageDetections(BaseModel):
    name: str = Field(description="the upload's file name, or images[i]")
    width: int
    height: int
    detections: list[Detection] = Field(description="by descending score")


class DetectResponse(BaseModel):
    images: list[ImageDetections]
    stages: int = Field(description="refinement stages run")
    timing: Timing


class StageView(BaseModel):
    """Every stage of one image: the data of the paper's refinement figure."""

    name: str
    width: int
    height: int
    num_stages: int
    proposals: list[list[float]] = Field(
        description="the learned proposal boxes scaled to the image, xyxy original pixels"
    )
    stages: list[list[Detection]] = Field(
        description="stage s (1-based) is item s-1: its post-processed detections"
    )
    inference_ms: float = Field(
        description="the model's run on this image (not the wait for batches queued before it)"
    )


class CategoryInfo(BaseModel):
    id: int
    name: str


class EngineInfo(BaseModel):
    """What runs one kind of request."""

    engine: str = Field(
        description="'torch' (the --model file) or 'onnx' (the --onnx file, run by onnxruntime)"
    )
    device: str = Field(description="where it runs: 'cpu', 'cuda:0', ...")
    precision: str = Field(description="'fp32', 'bf16', 'winograd' or 'int8'")
    provider: str | None = Field(
        default=None,
        description="for 'onnx', the onnxruntime execution provider that runs it "
        "('CPUExecutionProvider', 'CUDAExecutionProvider'); null for 'torch'",
    )


class ModelInfo(BaseModel):
    name: str = Field(description="the model file's name")
    version: str = Field(description="sparsercnn version")
    engine: str = Field(
        description="what runs full-stage detections (POST /v1/detect without a `stages` below "
        "num_stages): 'torch', or 'onnx' with --onnx"
    )
    device: str = Field(
        description="where full-stage detections run: --device ('cpu', 'cuda:0', ...)"
    )
    provider: str | None = Field(
        default=None,
        description="with --onnx, the onnxruntime execution provider that runs full-stage "
        "detections ('CPUExecutionProvider', 'CUDAExecutionProvider'); else null",
    )
    precision: str = Field(description="the precision of full-stage detections")
    stage_limited: EngineInfo = Field(
        description="what runs POST /v1/detect with fewer `stages` and POST /v1/stages (the "
        "page's stage view): the --model file, on --device; without --onnx the same as "
        "engine, device and precision"
    )
    cuda_graphs: bool = Field(description="the PyTorch model replays CUDA graphs")
    classes: list[CategoryInfo]
    num_stages: int
    num_proposals: int
    input_min_size: int = Field(description="test resize: shorter side")
    input_max_size: int = Field(description="test resize: longest side at most")
    size_divisibility: int
    max_batch_images: int = Field(
        description="concurrent requests are gathered up to this many images; most images "
        "per forward pass"
    )
    max_wait_ms: float
    max_queued_images: int = Field(
        description="most images waiting for the model; a request past it gets 503"
    )
    max_connections: int | None = Field(
        description="most open client connections (`sparsercnn serve --max-connections`, idle "
        "keep-alive ones included); a request on one past it gets uvicorn's plain-text 503. "
        "null: the app runs under a server that sets its own limit"
    )
    max_images: int
    max_image_bytes: int
    max_image_pixels: int


class Health(BaseModel):
    status: str
    batches: int = Field(description="model calls of the batcher since the start")
    images: int = Field(description="images detected since the start")
    largest_batch: int = Field(
        description="most images in one batch (a request of more than max_batch_images images "
        "is one batch, run in forward passes of at most max_batch_images)"
    )
    queued: int = Field(description="requests waiting for the model")
    queued_images: int = Field(
        description="images of the requests waiting for the model (a request past "
        "max_queued_images gets 503)"
    )


def image_detections(prediction: Prediction, name: str) -> ImageDetections:
    """The prediction's response item (:meth:`~sparsercnn.prediction.Prediction.to_dict`),
    named ``name`` (the upload's)."""
    return ImageDetections.model_validate({**prediction.to_dict(), "name": name})


def detections_of(prediction: Prediction) -> list[Detection]:
    """The prediction's detections as response items, in its order (descending score)."""
    return [Detection.model_validate(d) for d in prediction.to_dict()["detections"]]


def limit_detections(prediction: Prediction, options: DetectOptions) -> Prediction:
    """The detections of ``prediction`` (by descending score) to answer: the first
    ``options.max_detections`` of them, those scoring at least ``options.score_threshold``.
    Either order keeps the same ones (the scores descend); the best few first, so that only they
    become response items (:func:`detections_of`).

    The threshold is compared with each score as the response gives it
    (:meth:`~sparsercnn.prediction.Prediction.above`), not with the unrounded one: a threshold
    copied from an answer keeps the detection it was copied from.
    """
    if options.max_detections is not None:
        prediction = prediction.top(options.max_detections)
    if options.score_threshold is not None:
        prediction = prediction.above(options.score_threshold)
    return prediction
