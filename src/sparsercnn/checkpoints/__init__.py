"""Loading the published Sparse R-CNN weights (spec 10-12) and starting training from them.

The official detectron2 and mmdetection checkpoints are read safely (:mod:`.readers`), renamed
through declarative key tables (:mod:`.key_tables`), checked strictly against the architecture
their tensor shapes describe (:mod:`.convert`), and fetched by name or URL with resumable,
checksummed downloads (:mod:`.download`). :mod:`.finetune` initialises a training run from them.
"""

from sparsercnn.checkpoints.convert import (
    COCO_CATEGORIES,
    ConvertedCheckpoint,
    backbone_state_dict,
    coco_categories,
    convert_checkpoint,
    export_state_dict,
    save_converted,
)
from sparsercnn.checkpoints.download import (
    PUBLISHED_CHECKPOINTS,
    PublishedCheckpoint,
    fetch,
    from_pretrained,
)
from sparsercnn.checkpoints.finetune import (
    freeze_all_but_class_logits,
    freeze_backbone,
    init_from_checkpoint,
    load_backbone_weights,
    load_for_finetuning,
    reset_class_logits,
)
from sparsercnn.checkpoints.key_tables import LAYOUTS, Layout
from sparsercnn.checkpoints.readers import RawCheckpoint, read_checkpoint

__all__ = [
    "COCO_CATEGORIES",
    "LAYOUTS",
    "PUBLISHED_CHECKPOINTS",
    "ConvertedCheckpoint",
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
