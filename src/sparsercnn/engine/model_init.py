"""Starting weights and frozen parts of a model about to be trained (``cfg.train`` fields).

:func:`read_starting_weights` reads and converts the files of ``train.init_from`` and
``train.backbone_weights`` once (their conversion notes logged then): the automatic recipe reads
the architecture off the result, and :func:`prepare_model` loads it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from torch import Tensor

from sparsercnn.config import Config, ModelConfig, TrainConfig
from sparsercnn.data.categories import CategoryMap
from sparsercnn.model import SparseRCNN
from sparsercnn.weights import freeze_all_but_class_logits, freeze_backbone
from sparsercnn.weights.convert import (
    ConvertedCheckpoint,
    backbone_state_dict,
    convert_checkpoint,
    infer_depth,
)
from sparsercnn.weights.download import fetch
from sparsercnn.weights.finetune import (
    architecture_differences,
    check_backbone_fits,
    init_from_converted,
    load_backbone_tensors,
    other_architecture_error,
)

logger = logging.getLogger(__name__)

# How errors name the options of the starting weights: the CLI flag and the config key it sets.
INIT_FROM = "--init-from (train.init_from)"
BACKBONE_WEIGHTS = "--backbone-weights (train.backbone_weights)"


@contextlib.contextmanager
def naming_option(option: str) -> Iterator[None]:
    """Prefix the error of a missing or unusable file inside with the option that named it.

    :func:`~sparsercnn.weights.download.fetch` says "checkpoint x.pth does not exist" (or is a
    folder, or cannot be read), and the conversion "x.json is a text file, not a checkpoint ..."
    (any ValueError: not a checkpoint, damaged, no known layout), without knowing which option
    gave the file; this makes it "--init-from (train.init_from): checkpoint x.pth does not
    exist".
    A message that already starts with the option is left as it is.
    """
    try:
        yield
    except (FileNotFoundError, IsADirectoryError, PermissionError) as error:
        raise type(error)(f"{option}: {error}") from None
    except ValueError as error:
        if str(error).startswith(option):
            raise
        # A plain ValueError whatever the subclass (their constructors differ); the
        # conversion's own error stays its cause, for --debug.
        raise ValueError(f"{option}: {error}") from error


@dataclass
class StartingWeights:
    """The starting weights of a run, read and converted once (:func:`read_starting_weights`).

    A :class:`~sparsercnn.engine.trainer.Trainer` given them releases their tensors
    (:meth:`release`) once its model is built: its callers (the CLI, ``train_from_coco``) hold
    them through the training, which reads them no more.

    Attributes:
        init_from: the ``train.init_from`` they were read for (``""``: none).
        backbone_weights: the ``train.backbone_weights`` they were read for (``""``: none).
        checkpoint: the detector checkpoint of ``init_from``, in our names.
        checkpoint_file: the local file it was read from (downloaded for a URL or a name).
        backbone: the ResNet tensors of ``backbone_weights`` (``backbone.*``, our names).
        backbone_file: the local file they were read from.
        released: :meth:`release` dropped ``checkpoint`` and ``backbone``.
    """

    init_from: str = ""
    backbone_weights: str = ""
    checkpoint: ConvertedCheckpoint | None = None
    checkpoint_file: str = ""
    backbone: Mapping[str, Tensor] | None = None
    backbone_file: str = ""
    released: bool = field(default=False, init=False)

    def release(self) -> None:
        """Drop the tensors (a whole detector checkpoint for ``init_from``: about 0.4 GB for
        an R50 model in fp32) once loaded into the model; these weights are then for no file
        (:meth:`is_for`), so that :func:`prepare_model` would read the files again."""
        self.checkpoint, self.backbone, self.released = None, None, True

    @property
    def backbone_depth(self) -> int | None:
        """The ResNet depth of ``backbone`` (None without)."""
        if self.backbone is None:
            return None
        return infer_depth(self.backbone, self.backbone_file)

    def check_fits(self, model: ModelConfig) -> None:
        """Raise, before any model is built, what loading into a model of ``model`` would raise:
        a checkpoint of another architecture (but for the number of classes), a ResNet of
        another depth or width.

        Raises:
            ValueError: the message names the option, the file, the settings that differ and
                those that fit.
        """
        if self.checkpoint is not None:
            differences = architecture_differences(self.checkpoint.config.model, model)
            if differences:
                error = other_architecture_error(self.checkpoint_file, differences)
                raise ValueError(f"{INIT_FROM}: {error}")
        if self.backbone is not None:
            with naming_option(BACKBONE_WEIGHTS):
                check_backbone_fits(
                    self.backbone, self.backbone_file, model.backbone_depth, model.backbone_width
                )

    def is_for(self, train: TrainConfig) -> bool:
        """Whether these are the files ``train`` names, and still hold their tensors."""
        files = (self.init_from, self.backbone_weights)
        return not self.released and files == (train.init_from, train.backbone_weights)


def read_starting_weights(init_from: str = "", backbone_weights: str = "") -> StartingWeights:
    """Fetch, read and convert the files of ``train.init_from`` (a detector checkpoint) and
    ``train.backbone_weights`` (ResNet weights): published name, path or URL each, ``""`` for
    none. What the conversion assumed is logged here, once.

    Raises:
        FileNotFoundError, IsADirectoryError, PermissionError: no such file, or one the user
            may not read; the message names the option.
        ValueError: both are given (the detector checkpoint holds a backbone of its own, which
            would replace the other weights), or a file is not a checkpoint or not one of the
            supported layouts (the message names the option and the file).
    """
    if init_from and backbone_weights:
        raise ValueError(
            f"{INIT_FROM} {init_from} and {BACKBONE_WEIGHTS} {backbone_weights} are both given, "
            "but the detector checkpoint holds a backbone of its own, which would replace the "
            "other weights: give only one of them"
        )
    checkpoint, checkpoint_file, backbone, backbone_file = None, "", None, ""
    if init_from:
        with naming_option(INIT_FROM):
            path = fetch(init_from)
            checkpoint, checkpoint_file = convert_checkpoint(path), str(path)
    if backbone_weights:
        with naming_option(BACKBONE_WEIGHTS):
            path = fetch(backbone_weights)
            backbone, backbone_file = backbone_state_dict(path), str(path)
    return StartingWeights(
        init_from, backbone_weights, checkpoint, checkpoint_file, backbone, backbone_file
    )


def prepare_model(
    model: SparseRCNN,
    cfg: Config,
    *,
    load_weights: bool = True,
    categories: CategoryMap | None = None,
    weights: StartingWeights | None = None,
) -> None:
    """Load ``train.backbone_weights`` or ``train.init_from`` and apply ``train.freeze``.

    ``categories`` (the classes to learn) match the class logits of ``train.init_from`` to its
    classes by name. ``weights`` are those files already read (:func:`read_starting_weights`),
    so that they are not read again; without them (or if they are of other files, or released)
    the files are read here.

    Weights are skipped when ``load_weights`` is False (a resumed run restores its own); freezing
    is always applied, before the optimizer is built, so a resumed run trains the same tensors.
    """
    train = cfg.train
    if load_weights and (train.init_from or train.backbone_weights):
        if weights is None or not weights.is_for(train):
            weights = read_starting_weights(train.init_from, train.backbone_weights)
        _load(model, weights, cfg.model.prior_prob, categories)
    if train.freeze == "backbone":
        freeze_backbone(model)
        logger.info("backbone and FPN frozen: training the proposals and the dynamic head only")
    elif train.freeze == "all_but_class_logits":
        trainable = freeze_all_but_class_logits(model)
        logger.info("training only the class logits (%d tensors)", len(trainable))


def _load(
    model: SparseRCNN,
    weights: StartingWeights,
    prior_prob: float,
    categories: CategoryMap | None,
) -> None:
    """Load ``weights`` into ``model`` (see :func:`prepare_model`)."""
    if weights.backbone is not None:
        load_backbone_tensors(model, weights.backbone, weights.backbone_file)
        logger.info("backbone initialised from %s", weights.backbone_weights)
    if weights.checkpoint is not None:
        # Which class logits were re-initialised is logged by init_from_converted.
        init_from_converted(
            model, weights.checkpoint, weights.checkpoint_file, prior_prob, categories
        )
        logger.info("model initialised from %s", weights.init_from)
