"""The Sparse R-CNN detector: backbone + FPN + learned proposals + dynamic head.

The forward pass is the same in training and inference: it returns every stage's logits and
boxes (:class:`~sparsercnn.structures.ModelOutput`). :class:`~sparsercnn.loss.SetCriterion` turns
that into losses and :class:`~sparsercnn.model.postprocess.PostProcessor` into detections.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsercnn.model.backbone import ResNet
from sparsercnn.model.dynamic_head import DynamicHead
from sparsercnn.model.fpn import FPN
from sparsercnn.model.int8_features import (
    UNCALIBRATED,
    Int8Calibration,
    Int8Features,
    int8_features_active,
)
from sparsercnn.model.on_demand_level import OnDemandLevel
from sparsercnn.model.proposals import LearnedProposals
from sparsercnn.runtime import is_exporting
from sparsercnn.structures import ImageBatch, ModelOutput, StageOutput


class SparseRCNN(nn.Module):
    """End-to-end detector with learnable proposals (Sun et al., CVPR 2021).

    Args:
        backbone: ResNet returning C2-C5.
        fpn: FPN returning P2-P5 with ``hidden_dim`` channels.
        proposals: the N learned boxes and features.
        head: the refinement stages.
        pixel_mean, pixel_std: RGB normalisation on 0-255 values (spec 1.1).
        size_divisibility: padded sizes are multiples of this (32).
        fpn_on_demand_levels: in inference (no autograd, not exporting or compiling), the
            finest FPN levels whose output convolution runs only on the tiles RoIAlign reads
            (:class:`~sparsercnn.model.on_demand_level.OnDemandLevel`); 0: all dense.

    Attributes:
        int8_calibration: activation ranges for int8 features (None: the model has none);
            inside :func:`~sparsercnn.model.int8_features.int8_features`, inference computes
            the backbone and FPN as :class:`~sparsercnn.model.int8_features.Int8Features`,
            built from the weights at its first use after :meth:`set_int8_calibration`.
    """

    pixel_mean: Tensor
    pixel_std: Tensor

    def __init__(
        self,
        *,
        backbone: ResNet,
        fpn: FPN,
        proposals: LearnedProposals,
        head: DynamicHead,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        size_divisibility: int = 32,
        fpn_on_demand_levels: int = 0,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.fpn = fpn
        self.proposals = proposals
        self.head = head
        self.size_divisibility = size_divisibility
        self.fpn_on_demand_levels = fpn_on_demand_levels
        # Not persistent: the config records them, and the reference checkpoints have none.
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(3, 1, 1), persistent=False)
        self.int8_calibration: Int8Calibration | None = None
        self._int8_features: Int8Features | None = None

    @property
    def num_stages(self) -> int:
        return len(self.head.stages)

    @property
    def num_proposals(self) -> int:
        return self.proposals.boxes.num_embeddings

    def preprocess(self, images: Sequence[Tensor]) -> ImageBatch:
        """Normalise RGB 0-255 images (uint8 or float, each ``(3, h, w)``) and pad them to /32.

        The images are zero-padded to the largest of the batch (the official batching: every
        image sees the batch's padding in the backbone), then :meth:`normalise_and_pad`.
        """
        if isinstance(images, Tensor) and images.dim() == 3:
            images = [images]
        device, dtype = self.pixel_mean.device, self.pixel_mean.dtype
        for i, image in enumerate(images):
            if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != 3:
                shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
                raise ValueError(
                    f"image {i}: expected a (3, H, W) RGB tensor with values 0-255, got {shape}"
                )
        batch = ImageBatch.from_tensors(
            [image.to(device=device, dtype=dtype, non_blocking=True) for image in images],
            self.size_divisibility,
        )
        return self.normalise_and_pad(batch.tensor, batch.image_sizes)

    def normalise_and_pad(self, images: Tensor, image_sizes: Tensor) -> ImageBatch:
        """``(B, 3, H, W)`` RGB 0-255 -> normalised, zero outside each image, padded to /32.

        The one normalisation of the package (spec 1.1: ``(x - mean) / std``, then zero padding
        bottom/right), with data-independent shapes so that the ONNX graph runs it too.

        Args:
            images: ``(B, 3, H, W)`` float RGB 0-255, image ``i`` in the top-left
                ``image_sizes[i]`` corner; whatever lies outside it is ignored.
            image_sizes: ``(B, 2)`` int64 ``(h, w)`` of each unpadded image.

        Returns:
            An :class:`ImageBatch` whose tensor is ``(B, 3, Hp, Wp)``, ``Hp, Wp`` = ``H, W``
            rounded up to ``size_divisibility``.
        """
        divisor = self.size_divisibility
        height, width = images.shape[-2:]
        # (-x) % d pads x up to a multiple of d; F.pad's order is (left, right, top, bottom).
        images = F.pad(images, (0, (-width) % divisor, 0, (-height) % divisor))
        normalised = (images - self.pixel_mean) / self.pixel_std
        rows = torch.arange(images.shape[-2], device=images.device)
        cols = torch.arange(images.shape[-1], device=images.device)
        inside_h = rows[None, :] < image_sizes[:, 0:1]  # (B, Hp)
        inside_w = cols[None, :] < image_sizes[:, 1:2]  # (B, Wp)
        inside = inside_h[:, None, :, None] & inside_w[:, None, None, :]  # (B, 1, Hp, Wp)
        return ImageBatch(
            torch.where(inside, normalised, torch.zeros_like(normalised)), image_sizes
        )

    def extract_features(self, images: ImageBatch) -> list[Tensor]:
        """P2-P5 of the padded batch, each ``(B, d, H/s, W/s)``, channels-last; computed in
        int8 inside :func:`~sparsercnn.model.int8_features.int8_features` (inference only)."""
        x = images.tensor.contiguous(memory_format=torch.channels_last)
        if self._computes_int8():
            return self._int8_graph()(x)
        return self.fpn(self.backbone(x))

    def set_int8_calibration(self, calibration: Int8Calibration | None) -> None:
        """Use ``calibration`` for int8 features from now on (None: the model has none)."""
        self.int8_calibration = calibration
        self._int8_features = None

    def _int8_graph(self) -> Int8Features:
        if self.int8_calibration is None:
            raise ValueError(UNCALIBRATED)
        if self._int8_features is None:
            self._int8_features = Int8Features(self.backbone, self.fpn, self.int8_calibration)
        return self._int8_features

    def _computes_int8(self) -> bool:
        """int8 features: asked for, in eager inference (no gradient, no graph capture)."""
        return (
            int8_features_active()
            and not torch.is_grad_enabled()
            and not is_exporting()
            and not torch.compiler.is_compiling()
        )

    def _computes_on_demand(self) -> bool:
        """On-demand FPN levels need eager inference: no gradient to carry (training keeps
        the dense levels) and no graph capture (data-dependent tile sets); int8 features
        compute every level densely."""
        return (
            self.fpn_on_demand_levels > 0
            and not self._computes_int8()
            and not torch.is_grad_enabled()
            and not is_exporting()
            and not torch.compiler.is_compiling()
        )

    def forward(
        self, images: ImageBatch | Sequence[Tensor], num_stages: int | None = None
    ) -> ModelOutput:
        """Run the detector.

        Args:
            images: an :class:`ImageBatch` (normalised, padded) or a list of ``(3, h, w)`` RGB
                0-255 images of any sizes.
            num_stages: run only the first k stages (default: all). Each stage is a full
                detector thanks to deep supervision, so fewer stages trade accuracy for speed.

        Returns:
            :class:`ModelOutput` with one :class:`StageOutput` per stage run; boxes are absolute
            xyxy pixels of each (unpadded) input image.
        """
        batch = images if isinstance(images, ImageBatch) else self.preprocess(images)
        on_demand: list[OnDemandLevel] = []
        if self._computes_on_demand():
            x = batch.tensor.contiguous(memory_format=torch.channels_last)
            features, on_demand = self.fpn.pyramid(self.backbone(x), self.fpn_on_demand_levels)
        else:
            features = self.extract_features(batch)
        proposal_boxes, proposal_features = self.proposals(batch.image_sizes)
        stages = self.head(
            features,
            proposal_boxes,
            proposal_features,
            batch.image_sizes,
            num_stages=num_stages,
            on_demand=on_demand,
        )
        return ModelOutput(
            stages=[StageOutput(logits=logits, boxes=boxes) for logits, boxes in stages],
            image_sizes=batch.image_sizes,
            proposal_boxes=proposal_boxes,
        )
