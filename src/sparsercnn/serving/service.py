"""The model side of the server: the predictor(s), the batcher in front of them, and what
``GET /v1/model`` reports.

Detection requests go through :class:`~sparsercnn.predictor.Predictor` (or, with an ONNX file,
:class:`~sparsercnn.export.onnx_runtime.OnnxPredictor` for requests running every stage), the
package's one inference path: same resize, size-grouped batches, post-processing and label map
as ``predict`` and ``eval``. The stage view runs
:func:`~sparsercnn.diagnostics.stage_boxes.compute_stage_boxes` with the predictor's own model,
transform and post-processor.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image

from sparsercnn import __version__
from sparsercnn.config import Config
from sparsercnn.diagnostics.stage_boxes import StageBoxes, compute_stage_boxes
from sparsercnn.image_inputs import ImageInput
from sparsercnn.model.inference import Precision
from sparsercnn.prediction import Prediction
from sparsercnn.predictor import Predictor
from sparsercnn.safetensors_file import file_tensors_crc32
from sparsercnn.serving.batching import RequestBatcher
from sparsercnn.serving.limits import Limits
from sparsercnn.serving.schemas import CategoryInfo, EngineInfo, ModelInfo

if TYPE_CHECKING:
    from sparsercnn.export.onnx_runtime import OnnxPredictor

logger = logging.getLogger(__name__)

# Images waiting for the model at most: 16 batches of the default 8. Each is held at the model's
# input size (an 800x1333 model: at most 3.2 MB, 410 MB in all), except a JPEG decoded at a
# reduced scale, held at that scale (1/2 to 1/8 of the file's size, at least twice the input's).
DEFAULT_MAX_QUEUED_IMAGES = 128


class DetectionService:
    """A loaded model behind a request batcher.

    Args:
        model_file: the ``.safetensors`` model file.
        onnx_file: an export of the same model; requests running every stage use it.
        device: where the PyTorch model and the ONNX file's onnxruntime session run (None:
            each one's default, CUDA where it can, see
            :func:`~sparsercnn.runtime.resolve_device` and
            :class:`~sparsercnn.export.onnx_runtime.OnnxPredictor`).
        precision: ``fp32``, ``bf16`` autocast where the device runs it natively,
            ``winograd`` (fp32 with Winograd 3x3 convolutions, CPUs) or ``int8`` (int8
            backbone and FPN, CPUs; a model file calibrated by ``export --int8``); None: fp32.
            With ``onnx_file``, one given must be the graph's (full-stage requests run it:
            :func:`~sparsercnn.export.onnx_runtime.check_graph_precision`).
        cuda_graphs: replay the PyTorch model from CUDA graphs (see
            :class:`~sparsercnn.predictor.Predictor`).
        limits: per-request limits (reported by :meth:`info`).
        max_batch_images: most images per batch (1: no batching).
        max_wait_ms: how long the batcher waits for more requests after the first.
        max_queued_images: most images waiting for the model (see
            :class:`~sparsercnn.serving.batching.RequestBatcher`).
        max_connections: most open client connections, which the HTTP server (uvicorn, as
            ``sparsercnn serve`` runs it) enforces; only reported here (None: not known).

    Raises:
        FileNotFoundError, ValueError: a file is missing or not a model of this package, the
            ONNX file is no export of the model file (other classes, config or weights), or it
            computes in another ``precision`` than the one given.
    """

    def __init__(
        self,
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
    ) -> None:
        if max_queued_images < 1:
            raise ValueError(f"max_queued_images must be >= 1, got {max_queued_images}")
        if max_connections is not None and max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        self.model_file = Path(model_file)
        self.limits = limits or Limits()
        # Pillow refuses to open images of over twice its MAX_IMAGE_PIXELS (~179 M pixels) as
        # decompression bombs: a larger --max-image-pixels raises it, so that the limit, read
        # from the header, is what decides (a process-wide setting; the server owns its process).
        if (
            Image.MAX_IMAGE_PIXELS is not None
            and self.limits.max_image_pixels > Image.MAX_IMAGE_PIXELS
        ):
            Image.MAX_IMAGE_PIXELS = self.limits.max_image_pixels
        self.onnx: OnnxPredictor | None = None
        if onnx_file is not None:
            # Before the model file: its int8 calibration matters only if the graph is int8.
            self.onnx = _load_onnx(Path(onnx_file), device, max_batch_images, precision)
        self.predictor = Predictor.from_file(
            model_file,
            device=device,
            batch_size=max_batch_images,
            precision=precision or "fp32",
            cuda_graphs=cuda_graphs,
        )
        if self.onnx is not None:
            _check_same_model(self.onnx, self.predictor, self.model_file)
            full_stage, stage_limited = self.engines()
            logger.info(
                "full-stage requests run %s on %s (%s, %s); stage-limited ones and the stage "
                "view run %s on %s (%s, %s)",
                self.onnx.path,
                full_stage.device,
                full_stage.engine,
                full_stage.precision,
                self.model_file,
                stage_limited.device,
                stage_limited.engine,
                stage_limited.precision,
            )
        self.categories = self.predictor.categories
        self.max_batch_images = max_batch_images
        self.max_wait_ms = max_wait_ms
        self.max_queued_images = max_queued_images
        self.max_connections = max_connections
        self.batcher: RequestBatcher | None = None

    @property
    def num_stages(self) -> int:
        return self.predictor.model.num_stages

    def start(self) -> RequestBatcher:
        """Start the batcher's worker thread (the one thread that runs the model)."""
        if self.batcher is None:
            self.batcher = RequestBatcher(
                self.detect,
                max_batch_images=self.max_batch_images,
                max_wait_ms=self.max_wait_ms,
                max_queued_images=self.max_queued_images,
            )
        return self.batcher

    def stop(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
            self.batcher = None

    def stages_to_run(self, num_stages: int | None) -> int | None:
        """A request's ``stages`` as the batcher groups requests by it and :meth:`detect` runs
        it: None for every stage (None, or the model's count), so that both share batches and
        run the ONNX file where there is one."""
        return None if num_stages == self.num_stages else num_stages

    def detect(self, images: Sequence[ImageInput], num_stages: int | None) -> list[Prediction]:
        """Detections of ``images`` (decoded uploads) with the first ``num_stages`` stages
        (None: all), as :meth:`stages_to_run` gives it.

        Called by the batcher's worker thread only.
        """
        if num_stages is None and self.onnx is not None:
            return self.onnx(images)
        return self.predictor.with_stages(num_stages)(images)

    def stage_boxes(self, image: ImageInput) -> StageBoxes:
        """Proposals and every stage's boxes and detections of one image (one forward pass).

        Called by the batcher's worker thread only (:meth:`RequestBatcher.call`).
        """
        predictor = self.predictor
        return compute_stage_boxes(
            predictor.model,
            predictor.postprocessor,
            predictor.transform,
            image,
            precision=predictor.precision,
        )

    def engines(self) -> tuple[EngineInfo, EngineInfo]:
        """What runs full-stage detections (the ONNX file when there is one, on onnxruntime's
        device) and what runs stage-limited ones and the stage view (the model file, always)."""
        predictor = self.predictor
        model = EngineInfo(
            engine="torch", device=str(predictor.device), precision=predictor.precision
        )
        if self.onnx is None:
            return model, model
        onnx = EngineInfo(
            engine="onnx",
            device=self.onnx.device,
            precision=self.onnx.precision,
            provider=self.onnx.provider,
        )
        return onnx, model

    def info(self) -> ModelInfo:
        """What ``GET /v1/model`` answers."""
        config = self.predictor.config
        full_stage, stage_limited = self.engines()
        return ModelInfo(
            name=self.model_file.name,
            version=__version__,
            engine=full_stage.engine,
            device=full_stage.device,
            provider=full_stage.provider,
            precision=full_stage.precision,
            stage_limited=stage_limited,
            cuda_graphs=self.predictor.graphs is not None,
            classes=[
                CategoryInfo(id=i, name=n)
                for i, n in zip(self.categories.category_ids, self.categories.names, strict=True)
            ],
            num_stages=self.num_stages,
            num_proposals=config.model.num_proposals,
            input_min_size=config.input.test_min_size,
            input_max_size=config.input.test_max_size,
            size_divisibility=self.predictor.size_divisibility,
            max_batch_images=self.max_batch_images,
            max_wait_ms=self.max_wait_ms,
            max_queued_images=self.max_queued_images,
            max_connections=self.max_connections,
            max_images=self.limits.max_images,
            max_image_bytes=self.limits.max_image_bytes,
            max_image_pixels=self.limits.max_image_pixels,
        )


def _load_onnx(
    path: Path, device: torch.device | str | None, batch_size: int, precision: Precision | None
) -> OnnxPredictor:
    """The ONNX predictor of ``path`` on ``device``, checked to compute in ``precision`` where
    one is asked (:func:`~sparsercnn.export.onnx_runtime.check_graph_precision`)."""
    from sparsercnn.export.onnx_runtime import OnnxPredictor, check_graph_precision

    onnx = OnnxPredictor(path, device=device, batch_size=batch_size)
    check_graph_precision(onnx, precision)
    return onnx


def _check_same_model(onnx: OnnxPredictor, predictor: Predictor, model_file: Path) -> None:
    """Raise unless ``onnx`` is an export of ``predictor``'s ``model_file``: the same classes,
    stages, architecture, test resize and weights (warns where ``onnx`` records no digest of
    its weights, as files exported before it was recorded)."""
    path = onnx.path
    ours, theirs = predictor.categories, onnx.categories
    if (ours.category_ids, ours.names) != (theirs.category_ids, theirs.names):
        raise ValueError(
            f"--onnx {path} has classes {theirs.names} (ids {theirs.category_ids}) but --model "
            f"has {ours.names} (ids {ours.category_ids}); export the ONNX file from that model"
        )
    if onnx.num_stages != predictor.model.num_stages:
        raise ValueError(
            f"--onnx {path} runs {onnx.num_stages} stages but --model has "
            f"{predictor.model.num_stages}; export it with every stage"
        )
    # Another model with the same classes (another run's recipe) would answer full-stage
    # requests differently from the stage view and stage-limited requests.
    expected, exported = _inference_settings(predictor.config), _inference_settings(onnx.config)
    differences = [
        f"{key} {exported[key]!r} (--model: {value!r})"
        for key, value in expected.items()
        if exported[key] != value
    ]
    if differences:
        raise ValueError(
            f"--onnx {path} is not an export of --model: it has {', '.join(differences)}; "
            "export the ONNX file from that model"
        )
    _check_same_weights(onnx, model_file)


def _check_same_weights(onnx: OnnxPredictor, model_file: Path) -> None:
    """Raise unless ``onnx`` records the CRC-32 of ``model_file``'s weights; another model of
    the same run (``model_best`` and ``model_final``) has the same classes and config."""
    if onnx.weights_crc32 is None:
        logger.warning(
            "--onnx %s does not record which weights it was exported from (an export of an "
            "older sparsercnn): that it is an export of --model %s cannot be checked; "
            "re-export it with `sparsercnn export --model %s` to have it checked",
            onnx.path,
            model_file,
            model_file,
        )
        return
    weights = file_tensors_crc32(model_file)
    if onnx.weights_crc32 != weights:
        raise ValueError(
            f"--onnx {onnx.path} was exported from other weights than --model {model_file} "
            f"(weights CRC-32 {onnx.weights_crc32}, --model's {weights}), such as another "
            f"checkpoint of the same run; export one from --model (`sparsercnn export --model "
            f"{model_file} --output model.onnx`), or serve the model file it was exported from"
        )


def _inference_settings(config: Config) -> dict[str, object]:
    """What decides a model's detections besides its weights: the model section and the test
    resize, by ``section.key``."""
    settings: dict[str, object] = {f"model.{k}": v for k, v in asdict(config.model).items()}
    settings["input.test_min_size"] = config.input.test_min_size
    settings["input.test_max_size"] = config.input.test_max_size
    return settings
