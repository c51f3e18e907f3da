"""Every stage's boxes on one image: the data behind the refinement figure (paper Fig. 5).

:func:`compute_stage_boxes` runs the model once on an image with the test transform and keeps
the learned proposals and every stage's boxes and scores in original-image pixels, plus each
stage post-processed into detections by the same post-processor as evaluation.
:func:`final_detection_tracks` follows every final detection back through the stages: a
detection is one proposal slot (the post-processor's top-k over the ``N x C`` scores), so its box
at stage ``s`` is that slot's box at ``s``.
:func:`write_stage_figure` draws it all with
:func:`~sparsercnn.visualization.stage_figure.draw_stage_figure`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import torch
from PIL import Image
from torch import Tensor

from sparsercnn.data.categories import CategoryMap
from sparsercnn.data.image_io import decode_image
from sparsercnn.data.transforms import InferenceTransform, build_test_transform
from sparsercnn.image_inputs import ImageInput, decode_input
from sparsercnn.model import PostProcessor, SparseRCNN, build_postprocessor
from sparsercnn.model.inference import Precision, evaluating, model_device, run_model
from sparsercnn.model.postprocess import TopKDetections, rescale_boxes
from sparsercnn.model_file import LoadedModel, load_model_file
from sparsercnn.ops.boxes import clip_boxes
from sparsercnn.prediction import DetectionDict, Prediction, prediction_from_detections
from sparsercnn.scores import passes_threshold
from sparsercnn.structures import Detections
from sparsercnn.text import counted
from sparsercnn.visualization.drawing_file import drawing_format, save_drawing
from sparsercnn.visualization.panel_size import MAX_PANEL_SIDE
from sparsercnn.visualization.stage_figure import StagePanel, Trajectories, draw_stage_figure

logger = logging.getLogger(__name__)

# The stages of the paper's figure (1-based), for a six-stage model.
PAPER_FIGURE_STAGES = (1, 3, 6)


@dataclass
class StageBoxes:
    """The model's view of one image, every box in absolute xyxy pixels of the original image.

    Attributes:
        image: the RGB image, decoded as the predictor decodes it: a large JPEG at a reduced
            scale (:func:`~sparsercnn.image_inputs.decode_input`).
        full_size: ``(h, w)`` of the original image, whose pixels the boxes are in.
        proposal_boxes: ``(N, 4)`` the learned proposals scaled to the image.
        boxes: ``(S, N, 4)`` the box of every slot after each stage (not clipped).
        scores: ``(S, N, C)`` sigmoid class scores of every slot after each stage.
        detections: per stage, the post-processed detections (as evaluation sees them).
        final: the last stage's post-processed top-k with the slot of every detection (on the
            CPU, boxes in original-image pixels).
    """

    image: Image.Image
    full_size: tuple[int, int]
    proposal_boxes: Tensor
    boxes: Tensor
    scores: Tensor
    detections: list[Detections]
    final: TopKDetections

    @property
    def num_stages(self) -> int:
        return int(self.boxes.shape[0])

    def predictions(self, categories: CategoryMap, source: str) -> list[Prediction]:
        """Every stage's :attr:`detections` as a prediction of ``source`` (stage ``s``, 1-based,
        is item ``s - 1``), named by the model's label map ``categories``.

        Raises:
            NonFiniteDetectionsError: a stage's score or box is NaN or infinite.
        """
        return [
            prediction_from_detections(stage, categories, self.full_size, source)
            for stage in self.detections
        ]

    def to_dict(self, categories: CategoryMap, name: str) -> StageViewDict:
        """The stage view as the server's ``POST /v1/stages`` answers it (which validates this
        dictionary, adding its timing), plain JSON values: ``name``, the original image's
        ``width`` and ``height``, ``num_stages``, the learned ``proposals`` (absolute xyxy
        pixels of the original image, rounded to 1/100 pixel) and the detections of every stage
        as :meth:`~sparsercnn.prediction.Prediction.to_dict` gives them (:meth:`predictions`).

        Raises:
            NonFiniteDetectionsError: a stage's score or box is NaN or infinite.
        """
        height, width = self.full_size
        return {
            "name": name,
            "width": width,
            "height": height,
            "num_stages": self.num_stages,
            "proposals": self.proposal_boxes.double().round(decimals=2).tolist(),
            "stages": [p.to_dict()["detections"] for p in self.predictions(categories, name)],
        }


class StageViewDict(TypedDict):
    """:meth:`StageBoxes.to_dict`: what ``POST /v1/stages`` answers for one image
    (:class:`~sparsercnn.serving.schemas.StageView` validates it and describes its fields)."""

    name: str
    width: int
    height: int
    num_stages: int
    proposals: list[list[float]]
    stages: list[list[DetectionDict]]


@dataclass
class DetectionTracks:
    """Final detections and their boxes through the refinement, one row per detection.

    Attributes:
        slots: ``(K,)`` int64 proposal slot of each detection.
        labels: ``(K,)`` int64 contiguous label.
        scores: ``(K,)`` final score, descending.
        boxes: ``(K, S + 1, 4)`` absolute xyxy pixels of the original image, clipped to it: the
            learned proposal, then the box after each stage.
    """

    slots: Tensor
    labels: Tensor
    scores: Tensor
    boxes: Tensor


def compute_stage_boxes(
    model: SparseRCNN,
    postprocessor: PostProcessor,
    transform: InferenceTransform,
    image: ImageInput,
    num_stages: int | None = None,
    precision: Precision = "fp32",
) -> StageBoxes:
    """Run ``model`` (eval mode, restored after) on one image and keep every stage's boxes.

    Args:
        model: the detector, on any device.
        postprocessor: turns each stage into detections.
        transform: the model's test transform (the resize evaluation uses).
        image: a path, PIL image, ``HxWx3`` uint8 array or ``(3, H, W)`` tensor.
        num_stages: run only the first k stages (default all).
        precision: ``fp32`` or ``bf16`` autocast (see :func:`evaluating`).

    Returns:
        The proposals, the ``S`` stages' boxes and scores and their detections.
    """
    decoded = decode_input(image, transform)
    with evaluating(model, precision):
        tensor = transform.image_tensor(decoded.image).to(model_device(model))
        output = run_model(model, [tensor], num_stages=num_stages)
    # For a reduced JPEG the input's own size, whose pixel map then takes boxes to the full
    # image (as the predictor and evaluation do).
    input_size = (int(tensor.shape[1]), int(tensor.shape[2]))
    pixel_map = decoded.input_map(input_size)
    original_size = torch.tensor(
        [decoded.rescale_size(input_size)], device=output.image_sizes.device
    )

    def in_original_pixels(boxes: Tensor) -> Tensor:  # (1, N, 4) input -> (N, 4) original
        rescaled = rescale_boxes(boxes, output.image_sizes, original_size)[0].float().cpu()
        return rescaled if pixel_map is None else pixel_map.boxes_to_full(rescaled)

    stages = range(len(output.stages))
    # On the CPU first, then to the full image: the predictor's and evaluation's order.
    top_k = [postprocessor.select(output, original_size, stage=s).to_cpu() for s in stages]
    if pixel_map is not None:
        clip = postprocessor.clip_boxes
        top_k = [t.to_full_image(pixel_map, decoded.full_size, clip) for t in top_k]
    return StageBoxes(
        image=decoded.image,
        full_size=decoded.full_size,
        proposal_boxes=in_original_pixels(output.proposal_boxes),
        boxes=torch.stack([in_original_pixels(output.stages[s].boxes) for s in stages]),
        scores=torch.stack([output.stages[s].logits[0].sigmoid() for s in stages]).float().cpu(),
        detections=[t.per_image()[0] for t in top_k],
        final=top_k[-1],
    )


def final_detection_tracks(
    stage_boxes: StageBoxes, score_threshold: float = 0.3
) -> DetectionTracks:
    """The final (last-stage) detections whose score as written is at or above
    ``score_threshold`` (:func:`~sparsercnn.scores.passes_threshold`, as the stage panels draw
    them) and their trajectories.

    Detections are the post-processor's (top-k over the flattened ``N x C`` last-stage scores,
    boxes clipping emptied dropped); a slot that scores for several classes appears once, with
    its best.
    """
    final = stage_boxes.final
    keep = final.valid[0] & passes_threshold(final.scores[0], score_threshold)
    slots = final.slots[0][keep].cpu()
    labels, scores = final.labels[0][keep].cpu(), final.scores[0][keep].float().cpu()
    first = _first_per_slot(slots)
    slots, labels, scores = slots[first], labels[first], scores[first]
    steps = torch.cat([stage_boxes.proposal_boxes[None], stage_boxes.boxes])  # (S + 1, N, 4)
    height, width = stage_boxes.full_size
    boxes = clip_boxes(steps[:, slots].permute(1, 0, 2), height, width)  # (K, S + 1, 4)
    return DetectionTracks(slots=slots, labels=labels, scores=scores, boxes=boxes)


def _first_per_slot(slots: Tensor) -> list[int]:
    """Positions of the first occurrence of every slot (scores descend: each slot's best)."""
    seen: set[int] = set()
    first = []
    for position, slot in enumerate(slots.tolist()):
        if slot not in seen:
            seen.add(slot)
            first.append(position)
    return first


def default_figure_stages(num_stages: int) -> list[int]:
    """1-based stages to show: the paper's 1, 3, 6 for six stages, else first, middle and last."""
    if num_stages == 6:
        return list(PAPER_FIGURE_STAGES)
    return sorted({1, (num_stages + 1) // 2, num_stages})


def check_figure_stages(stages: Sequence[int], num_stages: int) -> list[int]:
    """``stages`` (1-based) checked against the model's ``num_stages``.

    Raises:
        ValueError: a stage is outside ``1..num_stages``, or named twice.
    """
    wrong = [s for s in stages if not 1 <= s <= num_stages]
    if wrong or not stages:
        valid = f"stages from 1 to {num_stages}" if num_stages > 1 else "stage 1"
        raise ValueError(
            f"stages (--stages) {list(stages)} are not all in 1..{num_stages} (1-based; the "
            f"model has {counted(num_stages, 'stage')}): give {valid}"
        )
    twice = sorted({s for s in stages if list(stages).count(s) > 1})
    if twice:
        raise ValueError(
            f"stages (--stages) {list(stages)} name stage(s) {twice} more than once; give each "
            "stage once"
        )
    return list(stages)


def draw_model_stage_figure(
    loaded: LoadedModel,
    image: ImageInput,
    *,
    stages: Sequence[int] | None = None,
    score_threshold: float = 0.3,
    trajectories: bool = True,
    max_panel_side: int | None = MAX_PANEL_SIDE,
) -> Image.Image:
    """The refinement figure of one image: proposals, chosen stages, detection trajectories.

    Args:
        loaded: a model with its config and label map (:func:`load_model_file`).
        image: a path, PIL image, ``HxWx3`` uint8 array or ``(3, H, W)`` tensor.
        stages: 1-based stages to show (default :func:`default_figure_stages`).
        score_threshold: stage detections and trajectories below it are not drawn.
        trajectories: add the trajectory panel of the final detections.
        max_panel_side: longest side of each panel in pixels (``None``: original size).

    Returns:
        One RGB image, panels side by side.
    """
    num_stages = loaded.model.num_stages
    chosen = check_figure_stages(stages or default_figure_stages(num_stages), num_stages)
    result = compute_stage_boxes(
        loaded.model,
        build_postprocessor(loaded.config),
        build_test_transform(loaded.config.input),
        image,
    )
    panels = [
        StagePanel(
            title=f"stage {s}",
            boxes=result.detections[s - 1]["boxes"],
            labels=result.detections[s - 1]["labels"],
            scores=result.detections[s - 1]["scores"],
        )
        for s in chosen
    ]
    tracks = None
    if trajectories:
        final = final_detection_tracks(result, score_threshold)
        tracks = Trajectories(boxes=final.boxes, labels=final.labels)
    return draw_stage_figure(
        _drawing_image(image, result, max_panel_side),
        result.proposal_boxes,
        panels,
        loaded.categories.distinct_names,
        trajectories=tracks,
        score_threshold=score_threshold,
        max_panel_side=max_panel_side,
        image_size=result.full_size,
        image_name=str(image) if isinstance(image, str | Path) else None,
    )


def _drawing_image(
    image: ImageInput, result: StageBoxes, max_panel_side: int | None
) -> Image.Image:
    """The image to draw the figure on: what the model saw when it has the panels' resolution,
    else the file decoded again at that resolution (a large JPEG is decoded for the model at
    twice its input, which can be smaller than a panel)."""
    height, width = result.full_size
    scale = 1.0 if max_panel_side is None else min(1.0, max_panel_side / max(height, width))
    panel = (math.ceil(height * scale), math.ceil(width * scale))
    if result.image.height >= panel[0] or not isinstance(image, str | Path):
        return result.image
    return decode_image(image, panel).image


def write_stage_figure(
    model_file: str | Path,
    image: str | Path,
    output_png: str | Path,
    *,
    stages: Sequence[int] | None = None,
    score_threshold: float = 0.3,
    trajectories: bool = True,
    device: torch.device | str = "cpu",
    max_panel_side: int | None = MAX_PANEL_SIDE,
    on_accepted: Callable[[], None] | None = None,
) -> Path:
    """Draw :func:`draw_model_stage_figure` for a model file and an image file into a PNG (or
    the image format ``output_png``'s suffix names).

    Args:
        on_accepted: called once the model file is loaded and ``stages`` checked against it,
            before the model runs (the command warns there that ``output_png`` is replaced,
            so that a refused command warns of nothing).

    Returns:
        ``output_png``, written atomically.

    Raises:
        ValueError: ``output_png``'s suffix is not an image format Pillow can write, the model
            file is not readable, or ``stages`` are not the model's
            (:func:`check_figure_stages`).
    """
    drawing_format(output_png)  # an unknown suffix fails before the model loads
    loaded = load_model_file(model_file, device=device)
    num_stages = loaded.model.num_stages
    chosen = check_figure_stages(stages or default_figure_stages(num_stages), num_stages)
    if on_accepted is not None:
        on_accepted()
    figure = draw_model_stage_figure(
        loaded,
        image,
        stages=chosen,
        score_threshold=score_threshold,
        trajectories=trajectories,
        max_panel_side=max_panel_side,
    )
    path = save_drawing(figure, output_png)
    logger.info("wrote the stage figure of %s to %s", image, path)
    return path
