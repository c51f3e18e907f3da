"""Published weights: loading the official and mmdetection detectors (spec 10-12), ImageNet
backbones, and starting training from them. (Training state is :mod:`sparsercnn.engine.checkpoint`;
a model file is :mod:`sparsercnn.model_file`.)

The official detectron2 and mmdetection checkpoints are read safely (:mod:`.readers`), renamed
through declarative key tables (:mod:`.key_tables`), checked strictly against the architecture
their tensor shapes describe (:mod:`.convert`), and fetched by name or URL with resumable,
checksummed downloads (:mod:`.download`). :mod:`.finetune` initialises a training run from them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sparsercnn.lazy_import import lazy_exports as _lazy_exports

# Resolved on first use, so that listing the published names does not import torch.
_EXPORTS = {
    "COCO_CATEGORIES": "sparsercnn.weights.convert",
    "ConvertedCheckpoint": "sparsercnn.weights.convert",
    "FetchedFile": "sparsercnn.fetched_file",
    "LAYOUTS": "sparsercnn.weights.key_tables",
    "Layout": "sparsercnn.weights.key_tables",
    "PUBLISHED_CHECKPOINTS": "sparsercnn.weights.published",
    "PublishedCheckpoint": "sparsercnn.weights.published",
    "RawCheckpoint": "sparsercnn.weights.readers",
    "backbone_state_dict": "sparsercnn.weights.convert",
    "coco_categories": "sparsercnn.weights.convert",
    "convert_checkpoint": "sparsercnn.weights.convert",
    "export_state_dict": "sparsercnn.weights.convert",
    "fetch": "sparsercnn.weights.download",
    "freeze_all_but_class_logits": "sparsercnn.weights.finetune",
    "freeze_backbone": "sparsercnn.weights.finetune",
    "from_pretrained": "sparsercnn.weights.download",
    "init_from_checkpoint": "sparsercnn.weights.finetune",
    "load_backbone_weights": "sparsercnn.weights.finetune",
    "load_for_finetuning": "sparsercnn.weights.finetune",
    "read_checkpoint": "sparsercnn.weights.readers",
    "reset_class_logits": "sparsercnn.weights.finetune",
    "save_converted": "sparsercnn.weights.convert",
}

if TYPE_CHECKING:
    from sparsercnn.fetched_file import FetchedFile
    from sparsercnn.weights.convert import (
        COCO_CATEGORIES,
        ConvertedCheckpoint,
        backbone_state_dict,
        coco_categories,
        convert_checkpoint,
        export_state_dict,
        save_converted,
    )
    from sparsercnn.weights.download import fetch, from_pretrained
    from sparsercnn.weights.finetune import (
        freeze_all_but_class_logits,
        freeze_backbone,
        init_from_checkpoint,
        load_backbone_weights,
        load_for_finetuning,
        reset_class_logits,
    )
    from sparsercnn.weights.key_tables import LAYOUTS, Layout
    from sparsercnn.weights.published import PUBLISHED_CHECKPOINTS, PublishedCheckpoint
    from sparsercnn.weights.readers import RawCheckpoint, read_checkpoint


__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, globals())


__all__ = [
    "COCO_CATEGORIES",
    "LAYOUTS",
    "PUBLISHED_CHECKPOINTS",
    "ConvertedCheckpoint",
    "FetchedFile",
    "Layout",
    "PublishedCheckpoint",
    "RawCheckpoint",
    "backbone_state_dict",
    "coco_categories",
    "convert_checkpoint",
    "export_state_dict",
    "fetch",
    "freeze_all_but_class_logits",
    "freeze_backbone",
    "from_pretrained",
    "init_from_checkpoint",
    "load_backbone_weights",
    "load_for_finetuning",
    "read_checkpoint",
    "reset_class_logits",
    "save_converted",
]
