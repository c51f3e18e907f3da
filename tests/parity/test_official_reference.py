"""Parity with the official code: a converted checkpoint reproduces its outputs at float noise.

``../shared/reference/`` (next to the repository root) holds what the official Sparse R-CNN code
(PeizeSun/SparseR-CNN 0e5028da on detectron2 0.3) computed on CPU, in float32 and once in
float64, for the synthetic R-50 checkpoint its ``make_checkpoint.py`` builds, on two images: the
backbone input, FPN levels, every stage's inputs and outputs, final detections, per-stage losses,
Hungarian matchings and gradients. Its README says how the inputs were fed and which tolerances
to use. Here that checkpoint is saved in the official container, converted with
:func:`convert_checkpoint`, run through our model, post-processor and criterion the same way, and
every stored group is compared. The module is skipped, with the reason, where the folder is absent.
"""

from __future__ import annotations

import copy
import importlib.util
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from sparsercnn.loss import SetLoss, build_criterion
from sparsercnn.model import PostProcessor, SparseRCNN, build_model, build_postprocessor
from sparsercnn.model_file import load_state_dict_strict
from sparsercnn.ops.multilevel_roi_align import assign_levels
from sparsercnn.structures import Detections, ModelOutput, Target
from sparsercnn.weights.convert import ConvertedCheckpoint, convert_checkpoint
from sparsercnn.weights.key_tables import rename_keys

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"
ARRAYS = REFERENCE / "official_r50_synth.npz"
if not ARRAYS.is_file():
    pytest.skip(
        f"official reference outputs not found: {ARRAYS} is absent (they live in the shared "
        "folder ../shared next to the repository root)",
        allow_module_level=True,
    )

# The README's tolerances. Its noise floor (official code against itself, 1 vs 2 threads):
# stage-5 logits 2.1e-6, boxes 3e-4 px, losses 1e-7 relative, matchings identical,
# init_proposal_features gradients 1.3% of their max.
LOGIT_ATOL = 1e-4
BOX_ATOL = 1e-2  # pixels
SCORE_ATOL = LOGIT_ATOL / 4  # the sigmoid's slope is at most 1/4
LOSS_RTOL = 1e-5
GRAD_FRACTION = 0.02  # of the largest official |gradient| of that parameter
# Not in the README: ours, about ten times the worst difference measured here.
FEATURE_ATOL = 1e-4  # FPN levels and RoI features (worst 1e-5)
OBJECT_FEATURE_ATOL = 3e-4  # proposal features after k stages (worst 2.6e-5, stage 5)
STAT_ATOL, STAT_RTOL = 1e-6, 1e-5  # mean / std / min / max / abs-sum of a whole tensor
# float64: backbone and FPN agree to rounding (worst 2e-14 relative); the head less closely,
# because the official pooler still rounds boxes to float32 (worst 4.5e-7 logit, 1e-5 px, 3e-6
# object feature).
F64_LEVEL_ATOL = F64_LEVEL_RTOL = 1e-10
F64_LOGIT_ATOL = 1e-5
F64_BOX_ATOL = 1e-4
F64_OBJECT_FEATURE_ATOL = 5e-5
NUM_STAGES = 6
NUM_CLASSES = 80
LEVELS = (2, 3, 4, 5, 6)
BATCHED_RUNS = ("eval", "train", "single0", "single1")
GRADIENT_KEYS = sorted(k for k in np.load(ARRAYS).files if k.startswith("train_grad__"))


def assert_close(name: str, actual: Any, expected: Any, atol: float, rtol: float = 0.0) -> None:
    """Elementwise ``|actual - expected| <= atol + rtol |expected|``; the message gives the
    worst difference, where it is and how many elements fail. NaN fails."""
    actual = np.asarray(numpy(actual) if isinstance(actual, Tensor) else actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (
        f"{name}: shape {actual.shape}, official {expected.shape}"
    )
    diff = np.abs(actual - expected)
    ok = diff <= atol + rtol * np.abs(expected)
    if not ok.all():
        badness = np.where(ok, -1.0, np.where(np.isnan(diff), np.inf, diff))
        worst = np.unravel_index(np.argmax(badness), diff.shape)
        pytest.fail(
            f"{name}: max abs diff {np.nanmax(diff):.3g} "
            f"(tolerance {atol:g} + {rtol:g} * |official|); {int((~ok).sum())} of {ok.size} "
            f"elements beyond it, e.g. at {tuple(map(int, worst))}: ours {actual[worst]:.7g}, "
            f"official {expected[worst]:.7g}"
        )


def assert_equal(name: str, actual: Any, expected: Any) -> None:
    actual = np.asarray(numpy(actual) if isinstance(actual, Tensor) else actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (
        f"{name}: shape {actual.shape}, official {expected.shape}"
    )
    differ = actual != expected
    assert not differ.any(), (
        f"{name}: {int(differ.sum())} of {differ.size} entries differ, first at "
        f"{tuple(map(int, np.argwhere(differ)[0]))}: ours {actual[differ][0]}, "
        f"official {expected[differ][0]}"
    )


def assert_stats(
    name: str,
    tensor: Tensor,
    expected: np.ndarray,
    atol: float = STAT_ATOL,
    rtol: float = STAT_RTOL,
) -> None:
    """``expected`` is (mean, std, [min, max,] abs-sum) of the whole tensor."""
    x = tensor.double()
    stats = [x.mean(), x.std()] + ([x.min(), x.max()] if len(expected) == 5 else [])
    assert_close(name, [*map(float, stats), float(x.abs().sum())], expected, atol, rtol)


def numpy(tensor: Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


@dataclass
class StageRecord:
    """What one refinement stage received and returned, as the official arrays store it."""

    roi_features: Tensor  # (B*N, d, S, S)
    in_features: Tensor  # (B, N, d)
    in_boxes: Tensor  # (B, N, 4)
    logits: Tensor  # (B, N, C)
    boxes: Tensor  # (B, N, 4)
    out_features: Tensor  # (B, N, d)


@dataclass
class Run:
    """One forward pass seen through hooks: the padded input, P2-P6 and every stage."""

    backbone_input: Tensor | None = None
    levels: list[Tensor] = field(default_factory=list)
    stages: list[StageRecord] = field(default_factory=list)
    output: ModelOutput | None = None


@contextmanager
def recording(model: SparseRCNN) -> Iterator[Run]:
    """Record the backbone input, FPN output and every stage's inputs/outputs into a :class:`Run`.

    P6 is detectron2's ``LastLevelMaxPool`` (a stride-2 subsampling of P5), which the official
    FPN returns and ours omits because no RoI is pooled from it; it is made here from P5.
    """
    run = Run()

    def on_backbone(module: Any, inputs: tuple[Tensor, ...], output: Any) -> None:
        run.backbone_input = inputs[0].detach()

    def on_fpn(module: Any, inputs: Any, output: list[Tensor]) -> None:
        levels = [level.detach() for level in output]
        run.levels = [*levels, F.max_pool2d(levels[-1], kernel_size=1, stride=2)]

    def on_stage(module: Any, inputs: tuple[Tensor, ...], outputs: tuple[Tensor, ...]) -> None:
        roi, q, boxes = (t.detach() for t in inputs)
        side = math.isqrt(roi.shape[1])  # (B*N, S*S, d) -> (B*N, d, S, S), the official layout
        roi = roi.transpose(1, 2).reshape(roi.shape[0], roi.shape[2], side, side)
        run.stages.append(StageRecord(roi, q, boxes, *(t.detach() for t in outputs)))

    handles = [
        model.backbone.register_forward_hook(on_backbone),
        model.fpn.register_forward_hook(on_fpn),
        *(stage.register_forward_hook(on_stage) for stage in model.head.stages),
    ]
    try:
        yield run
    finally:
        for handle in handles:
            handle.remove()


def official_checkpoint(path: Path) -> Path:
    """The reference's synthetic checkpoint, saved like a released one (``{"model": ...}``).

    Built by the reference's own ``make_checkpoint.py`` from ``torch.manual_seed(0)`` (the global
    RNG state is restored afterwards); skipped where this torch draws another random stream.
    """
    spec = importlib.util.spec_from_file_location(
        "make_checkpoint", REFERENCE / "make_checkpoint.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        state_dict = module.official_r50()
    if module.fingerprint(state_dict) != module.FINGERPRINT:
        pytest.skip(
            "the synthetic checkpoint of make_checkpoint.py does not match its fingerprint: this "
            f"torch ({torch.__version__}) draws another random stream than the reference's"
        )
    torch.save({"model": state_dict}, path)
    return path


def gradient_names(model: SparseRCNN) -> dict[str, str]:
    """Our parameter name for each stored gradient (``train_grad__`` + official name, dots as
    underscores), through the converter's key table."""
    ours = [name for name, _ in model.named_parameters()]
    official, _, unmatched = rename_keys(dict(zip(ours, ours, strict=True)), "ours", "official")
    assert not unmatched, f"parameters without an official name: {unmatched}"
    by_key = {"train_grad__" + key.replace(".", "_"): name for key, name in official.items()}
    assert len(by_key) == len(official), "official names collide once dots become underscores"
    return {key: by_key[key] for key in GRADIENT_KEYS}


class ReferenceRuns:
    """Our converted model on the reference's inputs; each pass runs once, on first use.

    Args:
        converted: the converted synthetic checkpoint.
        reference: the official arrays.
    """

    def __init__(self, converted: ConvertedCheckpoint, reference: dict[str, np.ndarray]) -> None:
        self.config = converted.config
        self.reference = reference
        model = build_model(converted.config)
        load_state_dict_strict(model, converted.state_dict, "official_r50_synth.pth")
        self.model = model.eval()
        # uint8 HWC RGB -> (3, h, w) 0-255, fed at native size: the model normalises and pads.
        self.images = [
            torch.from_numpy(reference[f"input_image{b}_uint8_HWC_RGB"]).permute(2, 0, 1)
            for b in range(2)
        ]
        self._runs: dict[str, Run] = {}

    def run(self, name: str) -> Run:
        """``eval``, ``train``, ``single0``, ``single1``, ``custom`` or ``float64``."""
        if name == "train":
            return self.train[0]
        if name not in self._runs:
            if name.startswith("single"):
                self._runs[name] = self._infer(self.model, [self.images[int(name[-1])]])
            elif name == "eval":
                self._runs[name] = self._infer(self.model, self.images)
            elif name == "float64":
                self._runs[name] = self._infer(copy.deepcopy(self.model).double(), self.images)
            elif name == "custom":
                self._runs[name] = self._custom()
            else:
                raise KeyError(f"no run named {name!r}")
        return self._runs[name]

    @staticmethod
    def _infer(model: SparseRCNN, images: list[Tensor]) -> Run:
        with torch.no_grad(), recording(model) as run:
            run.output = model(images)
        return run

    def _custom(self) -> Run:
        """The head alone on the batch's P2-P5 from fixed boxes (every level, crossing the
        borders, one sub-pixel box) and the learned proposal features."""
        batch = self.run("eval")
        assert batch.output is not None
        boxes = torch.from_numpy(self.reference["custom_input_boxes_xyxy"])
        features = self.model.proposals.features.weight.detach()
        with torch.no_grad(), recording(self.model) as run:
            self.model.head(
                batch.levels[:4],
                boxes,
                features.expand(len(boxes), -1, -1),
                batch.output.image_sizes,
            )
        return run

    @cached_property
    def train(self) -> tuple[Run, SetLoss, dict[str, Tensor | None]]:
        """Train mode on the reference targets: the run, our criterion's losses and matchings,
        and the gradients the reference stores (keyed like it).

        Only the parameters whose gradients are compared require one: autograd then skips most
        of the backbone's backward, and their gradients are the same.
        """
        model = copy.deepcopy(self.model).train()
        names = gradient_names(model)
        wanted = set(names.values())
        for name, param in model.named_parameters():
            param.requires_grad_(name in wanted)
        targets = [
            Target(
                torch.from_numpy(self.reference[f"train_gt{b}_boxes_xyxy"]),
                torch.from_numpy(self.reference[f"train_gt{b}_classes"]),
            )
            for b in range(2)
        ]
        with recording(model) as run:
            run.output = model(self.images)
        loss = build_criterion(self.config)(run.output, targets)
        loss.total.backward()
        params = dict(model.named_parameters())
        return run, loss, {key: params[name].grad for key, name in names.items()}


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(ARRAYS) as arrays:
        return {key: arrays[key] for key in arrays.files}


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, reference: dict[str, np.ndarray]
) -> ReferenceRuns:
    path = official_checkpoint(tmp_path_factory.mktemp("official") / "official_r50_synth.pth")
    converted = convert_checkpoint(path)
    path.unlink()  # 420 MB
    assert converted.config.model.backbone_depth == 50 and converted.config.model.clip_boxes
    return ReferenceRuns(converted, reference)


@pytest.mark.parametrize("name", BATCHED_RUNS)
def test_backbone_input(runs: ReferenceRuns, reference: dict[str, np.ndarray], name: str) -> None:
    """Normalised, then zero-padded bottom/right to the batch maximum rounded up to 32."""
    x = runs.run(name).backbone_input
    assert x is not None
    assert_equal(f"{name}_backbone_input_shape", x.shape, reference[f"{name}_backbone_input_shape"])
    key = f"{name}_backbone_input_normalized_padded_summary"  # mean, std
    x = x.double()
    assert_close(key, [float(x.mean()), float(x.std())], reference[key], STAT_ATOL, STAT_RTOL)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("name", BATCHED_RUNS)
def test_fpn_level(
    runs: ReferenceRuns, reference: dict[str, np.ndarray], name: str, level: int
) -> None:
    p = runs.run(name).levels[level - 2]
    key = f"{name}_p{level}"
    assert_equal(f"{key}_shape", p.shape, reference[f"{key}_shape"])
    assert_stats(
        f"{key}_stats_mean_std_min_max_abssum", p, reference[f"{key}_stats_mean_std_min_max_abssum"]
    )
    assert_close(
        f"{key}_channel_mean", p.mean((2, 3)), reference[f"{key}_channel_mean"], FEATURE_ATOL
    )
    h, w = p.shape[-2:]
    corner, centre = p[:, :8, :8, :8], p[:, :8, h // 2 - 4 : h // 2 + 4, w // 2 - 4 : w // 2 + 4]
    assert_close(
        f"{key}_slice_c0to8_y0to8_x0to8",
        corner,
        reference[f"{key}_slice_c0to8_y0to8_x0to8"],
        FEATURE_ATOL,
    )
    assert_close(
        f"{key}_slice_c0to8_center8x8",
        centre,
        reference[f"{key}_slice_c0to8_center8x8"],
        FEATURE_ATOL,
    )
    if f"{key}_full" in reference:
        assert_close(f"{key}_full", p, reference[f"{key}_full"], FEATURE_ATOL)


@pytest.mark.parametrize("name", [*BATCHED_RUNS, "custom"])
def test_head_init(runs: ReferenceRuns, reference: dict[str, np.ndarray], name: str) -> None:
    """What the head starts from: the learned proposal boxes scaled to each unpadded image (the
    fixed boxes for ``custom``) and the learned proposal features."""
    first = runs.run(name).stages[0]
    key = f"{name}_head_init"
    assert_close(f"{key}_boxes_xyxy", first.in_boxes, reference[f"{key}_boxes_xyxy"], BOX_ATOL)
    for b, features in enumerate(first.in_features):
        assert_close(f"{key}_features (image {b})", features, reference[f"{key}_features"], 0.0)


@pytest.mark.parametrize("stage", range(NUM_STAGES))
@pytest.mark.parametrize("name", [*BATCHED_RUNS, "custom"])
def test_stage(
    runs: ReferenceRuns, reference: dict[str, np.ndarray], name: str, stage: int
) -> None:
    """A stage's inputs, RoI levels and features, logits, boxes and object features."""
    record = runs.run(name).stages[stage]
    key = f"{name}_stage{stage}"
    assert_close(
        f"{key}_in_boxes_xyxy", record.in_boxes, reference[f"{key}_in_boxes_xyxy"], BOX_ATOL
    )
    assert_close(
        f"{key}_in_proposal_features",
        record.in_features,
        reference[f"{key}_in_proposal_features"],
        OBJECT_FEATURE_ATOL,
    )
    levels = assign_levels(record.in_boxes) + 2  # FPN level of each RoI, P2 = 2
    assert_equal(f"{key}_roi_level", levels, reference[f"{key}_roi_level"])
    roi_stats = f"{key}_roi_feat_stats_mean_std_abssum"
    assert_stats(roi_stats, record.roi_features, reference[roi_stats])
    if f"{key}_roi_feat_rows" in reference:
        rows = torch.from_numpy(reference[f"{key}_roi_feat_rows"])
        assert_close(
            f"{key}_roi_feat_slice",
            record.roi_features[rows],
            reference[f"{key}_roi_feat_slice"],
            FEATURE_ATOL,
        )
    assert_close(f"{key}_out_logits", record.logits, reference[f"{key}_out_logits"], LOGIT_ATOL)
    assert_close(
        f"{key}_out_boxes_xyxy", record.boxes, reference[f"{key}_out_boxes_xyxy"], BOX_ATOL
    )
    if f"{key}_out_proposal_features" in reference:
        assert_close(
            f"{key}_out_proposal_features",
            record.out_features,
            reference[f"{key}_out_proposal_features"],
            OBJECT_FEATURE_ATOL,
        )


@dataclass
class Ranked:
    """One image's detections, each identified by its flat index ``proposal * C + class``."""

    flat: np.ndarray  # (K,) int64
    scores: np.ndarray  # (K,)
    boxes: np.ndarray  # (K, 4) xyxy


def flat_index(scores: np.ndarray, labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``proposal * C + class`` of each detection of one image: the proposal whose score for the
    detection's class is closest to the detection's score.

    Args:
        scores, labels: ``(K,)`` detections.
        probs: ``(N, C)`` sigmoid scores of the last stage they were taken from.
    """
    proposals = np.abs(probs[:, labels] - scores[None, :]).argmin(axis=0)
    return proposals * probs.shape[1] + labels


def ours_ranked(detections: Detections, output: ModelOutput, image: int) -> Ranked:
    """Our detections by flat index. The post-processor's scores are this very sigmoid of the
    logits, so each is found exactly."""
    scores = numpy(detections["scores"])
    probs = numpy(output.last.logits[image].sigmoid())
    flat = flat_index(scores, numpy(detections["labels"]), probs)
    return Ranked(flat, scores, numpy(detections["boxes"]))


def official_ranked(
    key: str, reference: dict[str, np.ndarray], image: int, clip_hw: tuple[int, int] | None
) -> Ranked:
    """Official detections ``{key}_{scores,classes,boxes_xyxy}`` of ``image``, which the arrays
    store without their flat index, identified in the official last stage of the same run
    (``{run}_stage5_out_*``) and checked against its (clipped) boxes."""
    run = key.split("_det")[0]
    scores, boxes = reference[f"{key}_scores"], reference[f"{key}_boxes_xyxy"]
    logits = reference[f"{run}_stage{NUM_STAGES - 1}_out_logits"][image].astype(np.float64)
    flat = flat_index(scores, reference[f"{key}_classes"], 1.0 / (1.0 + np.exp(-logits)))
    found = reference[f"{run}_stage{NUM_STAGES - 1}_out_boxes_xyxy"][image][flat // logits.shape[1]]
    if clip_hw is not None:
        found = np.clip(found, 0, np.array(clip_hw)[[1, 0, 1, 0]])
    assert_close(f"{key}: official boxes vs those of the proposals identified", found, boxes, 1e-3)
    return Ranked(flat, scores, boxes)


def compare_detections(
    name: str, ours: Ranked, official: Ranked, score_atol: float, box_atol: float
) -> None:
    """Same detections (by flat index) with the same scores and boxes, in the canonical order
    (score descending, ties by flat index) wherever a score is not within noise of a neighbour's;
    ours come sorted by descending score, as the official top-k returns them.
    """
    rises = np.flatnonzero(np.diff(ours.scores) > 0)
    assert not len(rises), f"{name}: our scores are not in descending order at {rises[:10]}"

    def described(flat: np.ndarray) -> list[str]:
        return [f"proposal {f // NUM_CLASSES} class {f % NUM_CLASSES}" for f in flat[:10]]

    only_official = np.setdiff1d(official.flat, ours.flat)
    only_ours = np.setdiff1d(ours.flat, official.flat)
    assert len(ours.flat) == len(official.flat) and not len(only_official) and not len(only_ours), (
        f"{name}: {len(ours.flat)} detections, official {len(official.flat)}; official only: "
        f"{described(only_official)}; ours only: {described(only_ours)}"
    )
    official_order = np.lexsort((official.flat, -official.scores))
    our_order = np.lexsort((ours.flat, -ours.scores))
    position = {int(f): i for i, f in enumerate(ours.flat)}
    aligned = np.array([position[int(f)] for f in official.flat[official_order]])
    assert_close(
        f"{name} scores", ours.scores[aligned], official.scores[official_order], score_atol
    )
    assert_close(f"{name} boxes", ours.boxes[aligned], official.boxes[official_order], box_atol)
    close = np.abs(np.diff(official.scores[official_order])) < 2 * score_atol
    tied = np.zeros(len(close) + 1, dtype=bool)
    tied[:-1] |= close
    tied[1:] |= close
    assert_equal(
        f"{name} canonical order (flat index, -1 where within noise of a neighbour)",
        np.where(tied, -1, ours.flat[our_order]),
        np.where(tied, -1, official.flat[official_order]),
    )


@pytest.mark.parametrize("image", [0, 1])
def test_detections(runs: ReferenceRuns, reference: dict[str, np.ndarray], image: int) -> None:
    """Post-processing of the batch: top-100 sigmoid scores, clipping, empty boxes dropped;
    against the canonical arrays, the official output as it came and its top-k before clipping.
    (``_sorted_boxes_xyxy_unclipped`` is not used: it equals ``_sorted_boxes_xyxy_clipped`` bit
    for bit, so was evidently clipped after it was taken.)"""
    output = runs.run("eval").output
    assert output is not None
    sizes = [tuple(int(v) for v in reference[f"eval_det{b}_image_size_hw"]) for b in range(2)]
    ours = ours_ranked(build_postprocessor(runs.config)(output, sizes)[image], output, image)
    key = f"eval_det{image}"
    keep = reference[f"{key}_sorted_keep_nonempty"]
    canonical = Ranked(
        reference[f"{key}_sorted_flat_index"][keep],
        reference[f"{key}_sorted_scores"][keep],
        reference[f"{key}_sorted_boxes_xyxy_clipped"][keep],
    )
    compare_detections(f"{key}_sorted", ours, canonical, SCORE_ATOL, BOX_ATOL)
    as_output = official_ranked(key, reference, image, sizes[image])
    compare_detections(key, ours, as_output, SCORE_ATOL, BOX_ATOL)
    unclipped = PostProcessor(clip_boxes=False, top_k=runs.config.model.num_proposals)
    ours_raw = ours_ranked(unclipped(output, sizes)[image], output, image)
    raw = Ranked(
        reference[f"{key}_raw_flat_index"],
        reference[f"{key}_raw_scores"],
        reference[f"{key}_raw_boxes_xyxy"],
    )
    compare_detections(f"{key}_raw", ours_raw, raw, SCORE_ATOL, BOX_ATOL)


@pytest.mark.parametrize("image", [0, 1])
def test_single_image_detections(
    runs: ReferenceRuns, reference: dict[str, np.ndarray], image: int
) -> None:
    key = f"single{image}"
    output = runs.run(key).output
    assert output is not None
    size = (int(output.image_sizes[0, 0]), int(output.image_sizes[0, 1]))
    (detections,) = build_postprocessor(runs.config)(output, [size])
    official = official_ranked(f"{key}_det", reference, 0, size)
    compare_detections(
        f"{key}_det", ours_ranked(detections, output, 0), official, SCORE_ATOL, BOX_ATOL
    )


LOSS_NAMES = {"ce": "loss_cls", "bbox": "loss_l1", "giou": "loss_giou"}  # official -> ours


@pytest.mark.parametrize("stage", range(NUM_STAGES))
def test_stage_losses(runs: ReferenceRuns, reference: dict[str, np.ndarray], stage: int) -> None:
    """Official keys: ``loss_ce`` ... for the last stage, ``loss_ce_{s}`` ... for stages 0-4; the
    arrays hold them in stage order, weighted (2, 5, 2) and unweighted."""
    _, loss, _ = runs.train
    weights = {
        "ce": runs.config.loss.class_weight,
        "bbox": runs.config.loss.l1_weight,
        "giou": runs.config.loss.giou_weight,
    }
    for official, ours in LOSS_NAMES.items():
        value = loss.terms[f"{ours}/stage{stage}"].item()
        key = f"train_loss_{official}"
        assert_close(
            f"{key}_weighted_per_stage[{stage}]",
            value,
            reference[f"{key}_weighted_per_stage"][stage],
            0.0,
            LOSS_RTOL,
        )
        assert_close(
            f"{key}_unweighted_per_stage[{stage}]",
            value / weights[official],
            reference[f"{key}_unweighted_per_stage"][stage],
            0.0,
            LOSS_RTOL,
        )


def test_total_loss(runs: ReferenceRuns, reference: dict[str, np.ndarray]) -> None:
    _, loss, _ = runs.train
    assert_close(
        "train_total_weighted_loss",
        loss.total.item(),
        reference["train_total_weighted_loss"],
        0.0,
        LOSS_RTOL,
    )


@pytest.mark.parametrize("image", [0, 1])
@pytest.mark.parametrize("stage", range(NUM_STAGES))
def test_matching(
    runs: ReferenceRuns, reference: dict[str, np.ndarray], stage: int, image: int
) -> None:
    _, loss, _ = runs.train
    pred, gt = loss.indices[stage][image]
    key = f"train_stage{stage}_match{image}"
    assert_equal(f"{key}_pred_idx", numpy(pred), reference[f"{key}_pred_idx"])
    assert_equal(f"{key}_gt_idx", numpy(gt), reference[f"{key}_gt_idx"])


@pytest.mark.parametrize("key", GRADIENT_KEYS)
def test_gradient(runs: ReferenceRuns, reference: dict[str, np.ndarray], key: str) -> None:
    """Within 2% of the parameter's largest official gradient. A (4096,) array of a larger
    tensor holds the first elements of its flattened gradient. No RoI of this run falls on P2
    or P5, so ``fpn_lateral2.bias`` and ``fpn_output5.bias`` get exactly zero in both."""
    grad = runs.train[2][key]
    assert grad is not None, f"{key}: our parameter received no gradient"
    expected = reference[key]
    actual = numpy(grad).reshape(-1)[: expected.size].reshape(expected.shape)
    assert_close(key, actual, expected, GRAD_FRACTION * float(np.abs(expected).max()))


@pytest.mark.slow  # a float64 copy of the model: about a third of this file's time
@pytest.mark.parametrize("level", (2, 3, 4, 5))
def test_float64_fpn_level(
    runs: ReferenceRuns, reference: dict[str, np.ndarray], level: int
) -> None:
    p = runs.run("float64").levels[level - 2]
    assert p.dtype == torch.float64
    key = f"f64_eval_p{level}"
    stats = f"{key}_stats_mean_std_min_max_abssum"
    assert_stats(stats, p, reference[stats], F64_LEVEL_ATOL, F64_LEVEL_RTOL)
    assert_close(
        f"{key}_channel_mean", p.mean((2, 3)), reference[f"{key}_channel_mean"], F64_LEVEL_ATOL
    )


@pytest.mark.slow  # a float64 copy of the model: about a third of this file's time
@pytest.mark.parametrize("stage", range(NUM_STAGES))
def test_float64_stage(runs: ReferenceRuns, reference: dict[str, np.ndarray], stage: int) -> None:
    record = runs.run("float64").stages[stage]
    assert record.logits.dtype == torch.float64
    key = f"f64_eval_stage{stage}"
    assert_close(
        f"{key}_in_boxes_xyxy", record.in_boxes, reference[f"{key}_in_boxes_xyxy"], F64_BOX_ATOL
    )
    assert_close(f"{key}_out_logits", record.logits, reference[f"{key}_out_logits"], F64_LOGIT_ATOL)
    assert_close(
        f"{key}_out_boxes_xyxy", record.boxes, reference[f"{key}_out_boxes_xyxy"], F64_BOX_ATOL
    )
    if f"{key}_out_proposal_features" in reference:
        assert_close(
            f"{key}_out_proposal_features",
            record.out_features,
            reference[f"{key}_out_proposal_features"],
            F64_OBJECT_FEATURE_ATOL,
        )


@pytest.mark.slow  # a float64 copy of the model: about a third of this file's time
@pytest.mark.parametrize("image", [0, 1])
def test_float64_detections(
    runs: ReferenceRuns, reference: dict[str, np.ndarray], image: int
) -> None:
    """The raw top-100 (before clipping) of the float64 model."""
    output = runs.run("float64").output
    assert output is not None
    post = PostProcessor(clip_boxes=False, top_k=runs.config.model.num_proposals)
    sizes = output.image_sizes.tolist()
    detections = post(output, sizes)[image]
    key = f"f64_eval_det{image}_raw"
    official = official_ranked(key, reference, image, None)
    ours = ours_ranked(detections, output, image)
    compare_detections(key, ours, official, F64_LOGIT_ATOL / 4, F64_BOX_ATOL)
