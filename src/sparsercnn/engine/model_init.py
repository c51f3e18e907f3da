"""Starting weights and frozen parts of a model about to be trained (``cfg.train`` fields)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from sparsercnn.config import Config
from sparsercnn.data.categories import CategoryMap
from sparsercnn.model import SparseRCNN
from sparsercnn.weights import (
    freeze_all_but_class_logits,
    freeze_backbone,
    init_from_checkpoint,
    load_backbone_weights,
)

logger = logging.getLogger(__name__)

# How errors name the options of the starting weights: the CLI flag and the config key it sets.
INIT_FROM = "--init-from (train.init_from)"
BACKBONE_WEIGHTS = "--backbone-weights (train.backbone_weights)"


@contextlib.contextmanager
def naming_option(option: str) -> Iterator[None]:
    """Prefix a missing file's error inside with the option that named the file.

    :func:`~sparsercnn.weights.download.fetch` says "checkpoint x.pth does not exist" (or is a
    folder) without knowing which option gave it; this makes it "--init-from
    (train.init_from): checkpoint x.pth does not exist".
    """
    try:
        yield
    except (FileNotFoundError, IsADirectoryError) as error:
        raise type(error)(f"{option}: {error}") from None


def prepare_model(
    model: SparseRCNN,
    cfg: Config,
    *,
    load_weights: bool = True,
    categories: CategoryMap | None = None,
) -> None:
    """Load ``train.backbone_weights`` then ``train.init_from`` and apply ``train.freeze``.

    ``categories`` (the classes to learn) match the class logits of ``train.init_from`` to its
    classes by name.

    Weights are skipped when ``load_weights`` is False (a resumed run restores its own); freezing
    is always applied, before the optimizer is built, so a resumed run trains the same tensors.
    """
    train = cfg.train
    if load_weights and train.backbone_weights:
        with naming_option(BACKBONE_WEIGHTS):
            load_backbone_weights(model, train.backbone_weights)
        logger.info("backbone initialised from %s", train.backbone_weights)
    if load_weights and train.init_from:
        # Which class logits were re-initialised is logged by init_from_checkpoint.
        with naming_option(INIT_FROM):
            init_from_checkpoint(
                model, train.init_from, prior_prob=cfg.model.prior_prob, categories=categories
            )
        logger.info("model initialised from %s", train.init_from)
    if train.freeze == "backbone":
        freeze_backbone(model)
        logger.info("backbone and FPN frozen: training the proposals and the dynamic head only")
    elif train.freeze == "all_but_class_logits":
        trainable = freeze_all_but_class_logits(model)
        logger.info("training only the class logits (%d tensors)", len(trainable))
