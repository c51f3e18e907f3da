"""Arguments and steps shared by several subcommands.

Only light modules are imported here and at the top of every subcommand module, so that
``sparsercnn --help`` starts quickly; each handler imports the library when it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from sparsercnn.atomic_file import special_file_kind, write_target
from sparsercnn.config import DEFAULT_NUM_WORKERS, Precision
from sparsercnn.paths import check_file, is_below
from sparsercnn.presets import PRESETS

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)


class _ModelFileAction(argparse.Action):
    """Stores ``--model PATH``; ``--checkpoint PATH`` is accepted with a note that it is renamed."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        if option_string == "--checkpoint":
            print(
                "note: --checkpoint is now --model (the old name is accepted for one release)",
                file=sys.stderr,
            )
        setattr(namespace, self.dest, values)


def add_model_argument(
    parser: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup, *, required: bool = True
) -> None:
    """``--model PATH``: a model file (``--checkpoint`` is its former name, still accepted)."""
    parser.add_argument(
        "--model",
        "--checkpoint",
        dest="model",
        type=user_path,
        required=required,
        action=_ModelFileAction,
        metavar="PATH",
        help="model file (.safetensors, from `sparsercnn train` or `convert`)",
    )


def user_path(text: str) -> Path:
    """An argparse ``type`` for a file or folder flag: the path with ``~`` and ``~user``
    expanded, as a shell expands ``--flag ~/x`` but not ``--flag=~/x`` or a quoted ``"~/x"``
    (every such flag uses it, or :func:`output_file`, so that each form names the same file)."""
    return Path(os.path.expanduser(text))


def output_file(text: str) -> Path:
    """An argparse ``type`` for a flag that names a file to write: :func:`user_path`, refusing
    a name that ends in a separator (``--output newdir/``, a folder not there yet), which a
    ``Path`` drops: the file would be written as ``newdir``. (A file to read is checked when it
    is read: a folder named there is said to be one, with what to give in it.)

    A symbolic link is written through, as a shell's ``>`` writes through one: the path is the
    link's target (absolute, :func:`~sparsercnn.atomic_file.write_target`), which the command
    replaces, keeps the link, and names in its messages. A loop of links is refused."""
    if text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"{text} names a folder; give a file name")
    try:
        return write_target(user_path(text))
    except OSError as error:
        raise argparse.ArgumentTypeError(
            f"{text} is a symbolic link that leads to no file ({error.strerror}); give a file "
            "name, or fix the link"
        ) from None


def checkpoint_source(text: str) -> str:
    """An argparse ``type`` for a flag that takes a path, a URL or a published name: a path
    with ``~`` expanded (as :func:`user_path` does), a URL or a name as given (a URL keeps its
    ``//``, which a ``Path`` would fold)."""
    return os.path.expanduser(text)


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer ``>= minimum`` (argparse names the flag on error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def positive_number(text: str) -> float:
    """An argparse ``type``: a finite number > 0 (a frame rate, a time budget)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def fraction(text: str) -> float:
    """An argparse ``type``: a number in [0, 1] (a score threshold,
    :func:`~sparsercnn.scores.check_score_threshold`). Imports torch, which only happens when
    the flag is given."""
    from sparsercnn.scores import check_score_threshold

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    try:
        return check_score_threshold(value, argument=None)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def device_name(text: str) -> str:
    """An argparse ``type``: a device name (:func:`~sparsercnn.runtime.parse_device`, whose
    message argparse prefixes with the flag), for a ``--device`` whose device may be
    onnxruntime's: whether it exists is checked by what runs there, PyTorch for a model file
    (:func:`resolve_device`), onnxruntime for an ONNX file
    (:func:`~sparsercnn.export.onnx_runtime.onnx_device`). Imports torch, which only happens
    when ``--device`` is given."""
    from sparsercnn.runtime import parse_device

    try:
        parse_device(text, argument=None)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def torch_device_name(text: str) -> str:
    """An argparse ``type``: a device name whose device PyTorch has here
    (:func:`~sparsercnn.runtime.check_device`), for a command that runs a model file only."""
    from sparsercnn.runtime import check_device

    try:
        check_device(text, argument=None)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_device_argument(parser: argparse.ArgumentParser, *, onnx: bool = False) -> None:
    """``--device``: where the command's model file runs, checked as it is parsed; with
    ``onnx`` (a command whose ``--onnx`` file may replace the model file) only its name is, and
    the device is then checked by PyTorch or onnxruntime, whichever runs it (:func:`device_name`):
    PyTorch without CUDA can run ``--onnx`` on a GPU by onnxruntime-gpu."""
    parser.add_argument(
        "--device",
        type=device_name if onnx else torch_device_name,
        default=None,
        help="cpu, cuda or cuda:N (default: cuda when available, else cpu)"
        + (
            "; an --onnx file runs there by onnxruntime's execution provider (cuda needs the "
            "onnxruntime-gpu package, not PyTorch's CUDA)"
            if onnx
            else ""
        ),
    )


# Where --precision int8 gets its activation ranges (the help text's words).
INT8_MODEL_FILE_HELP = (
    "a model file made by `export --int8 --calibration DIR --output M.safetensors`"
)


def add_precision_argument(
    parser: argparse.ArgumentParser,
    flag: str = "--precision",
    several: bool = False,
    int8_source: str = INT8_MODEL_FILE_HELP,
) -> None:
    """``--precision fp32|bf16|winograd|int8``: how the PyTorch model computes at inference
    (default None, not given: fp32, or with ``--onnx`` the graph's own, see
    :func:`~sparsercnn.export.onnx_runtime.check_graph_precision`); ``several``: one or more of
    them (a list, default ``["fp32"]``); ``int8_source``: where the int8 calibration comes from,
    as the help text says it."""
    parser.add_argument(
        flag,
        choices=list(get_args(Precision)),
        nargs="+" if several else None,
        default=["fp32"] if several else None,
        help=("one or more of: " if several else "")
        + "fp32 (the default); bf16 autocast on devices with native bf16 (AVX-512 BF16 or AMX "
        "CPUs, Ampere+ GPUs); winograd: fp32 with Winograd 3x3 convolutions (CPUs); or int8: "
        f"the backbone and FPN on int8 convolutions (CPUs; {int8_source}). The last three are "
        "faster and approximate: scores and boxes differ at bf16 rounding / ~1e-5 / int8 "
        "rounding"
        + (
            ""
            if several
            else ". An --onnx file computes in the precision it was exported in (int8 from "
            "`export --int8`, else fp32): another --precision is refused"
        ),
    )


def add_cuda_graphs_argument(parser: argparse.ArgumentParser) -> None:
    """``--cuda-graphs``: replay the PyTorch model's forward pass from CUDA graphs."""
    parser.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="on CUDA, replay the forward pass from CUDA graphs captured per input shape: the "
        "same detections without the kernel-launch overhead of eager GPU inference (the first "
        "batch of each new shape pays for a capture)",
    )


def refuse_flags(args: argparse.Namespace, flags: Sequence[str], reason: str) -> None:
    """Raise ``ValueError`` naming those of ``flags`` that were given (each with its value; not
    given: None or a switch's False), then ``reason``, and asking to drop them:
    ``"--stages 2, --cuda-graphs: <reason>; drop them"``."""
    named = []
    for flag in flags:
        value = getattr(args, flag.removeprefix("--").replace("-", "_"))
        if value is not None and value is not False:
            named.append(flag if value is True else f"{flag} {value}")
    if named:
        raise ValueError(f"{', '.join(named)}: {reason}; drop {'them' if len(named) > 1 else 'it'}")


def refuse_model_flags_with_onnx(args: argparse.Namespace) -> None:
    """``--stages`` and ``--cuda-graphs`` configure a PyTorch model file; an ONNX file runs
    every stage, by onnxruntime on ``--device``. Raises ``ValueError`` naming the ones given
    (:func:`refuse_flags`). (A ``--precision`` is checked against the graph's once it is
    loaded: :func:`~sparsercnn.export.onnx_runtime.check_graph_precision`.)"""
    refuse_flags(
        args,
        ("--stages", "--cuda-graphs"),
        "--stages and --cuda-graphs apply to --model, not to --onnx, which runs every stage at "
        "the precision it was exported in",
    )


def add_model_dataset_arguments(
    parser: argparse.ArgumentParser,
    *,
    onnx: bool = False,
    batches: bool = True,
    detections: bool = False,
) -> None:
    """``--model``, ``--json``, ``--images``, ``--batch-size``, ``--workers``,
    ``--skip-invalid``, ``--device``:
    a model file run over a COCO-format dataset; with ``onnx``, ``--onnx FILE`` (an export)
    may replace ``--model``; with ``detections``, ``--detections FILE`` (a COCO results JSON,
    no model run) may, ``--images`` is then optional (the handler requires it for a model) and
    ``--workers`` None when not given (:data:`~sparsercnn.config.DEFAULT_NUM_WORKERS` for a
    model); without ``batches``, no batch arguments (one image at a time)."""
    if onnx or detections:
        model = parser.add_mutually_exclusive_group(required=True)
        add_model_argument(model, required=False)
    else:
        add_model_argument(parser)
    if onnx:
        model.add_argument(
            "--onnx", type=user_path, help="ONNX file from `sparsercnn export` (run by onnxruntime)"
        )
    if detections:
        model.add_argument(
            "--detections",
            type=user_path,
            metavar="FILE",
            help="score the detections of a COCO results JSON instead of running a model: "
            "`predict --output`'s, `eval --results`' or another tool's list of {image_id, "
            "category_id, bbox [x,y,w,h], score} records (predict's name their image by "
            "file_name); every image of --json is scored, one without records as nothing "
            "detected (a warning names such images, and those predict could not read); no "
            "images/s figures; --images is only needed for --report-dir",
        )
    parser.add_argument("--json", type=user_path, required=True, help="COCO instances JSON")
    parser.add_argument(
        "--images",
        type=user_path,
        required=not detections,
        help="image folder" + (" (needed with --model and --onnx)" if detections else ""),
    )
    if batches:
        add_batch_arguments(parser, default_batch_size=None)
    parser.add_argument(
        "--workers",
        type=int_at_least(0),
        # None where --detections may run no model: its handler then tells a flag given.
        default=None if detections else DEFAULT_NUM_WORKERS,
        help=f"data-loading processes (default {DEFAULT_NUM_WORKERS})",
    )
    parser.add_argument(
        "--skip-invalid",
        action="store_true",
        help="leave out the images and annotations `validate` calls errors (as `train "
        "--skip-invalid` did for its validation set) instead of refusing the dataset",
    )
    add_device_argument(parser, onnx=onnx)


def add_batch_arguments(parser: argparse.ArgumentParser, *, default_batch_size: int | None) -> None:
    """``--batch-size`` and ``--padded-batches``: how inference batches images.

    ``default_batch_size=None`` takes the model's ``input.test_batch_size``, the batch size of
    its evaluations during training, whose detections it then reproduces bit for bit.
    """
    default = (
        "the model's input.test_batch_size, as in training-time evaluation"
        if default_batch_size is None
        else str(default_batch_size)
    )
    parser.add_argument(
        "--batch-size",
        type=int_at_least(1),
        default=default_batch_size,
        help=f"most images per forward pass (default: {default}); only images of the same "
        "padded size share one, so other batch sizes change detections at float noise only",
    )
    parser.add_argument(
        "--padded-batches",
        action="store_true",
        help="batch images of different sizes, zero-padded to the largest, as the official code "
        "does (faster on mixed sizes, but an image's detections then depend on its batch)",
    )


def warn_replacing(path: Path | None, flag: str, *, files: Sequence[str] = ()) -> None:
    """Say, before the work, that the file ``path`` given by ``flag`` exists and will be replaced
    (atomically, once the command succeeds: a failed run leaves it as it was); nothing where it
    does not exist. Called once the command's flags are accepted: a refused command replaces
    nothing.

    With ``files``, ``path`` is the command's output folder and ``files`` the names of the files
    the command writes into it: the warning lists those already there (an earlier run's, say),
    which the run replaces one by one as it writes them."""
    if path is None:
        return
    if files:
        existing = [_replaced(path / name, name) for name in files if (path / name).is_file()]
        if existing:
            logger.warning(
                "%s %s holds %s: this run replaces them", flag, path, ", ".join(existing)
            )
    elif path.is_file():
        logger.warning(
            "%s %s exists: it will be replaced once this run succeeds", flag, _replaced(path)
        )


def _replaced(path: Path, name: str | None = None) -> str:
    """``path`` (shown as ``name``) as a warning names the file a write replaces: a symbolic
    link's target, whose content is replaced (the link kept: :func:`output_file`)."""
    target = write_target(path)
    shown = str(path) if name is None else name
    return shown if target == path else f"{shown} (a link: its target {target})"


def check_model_paths(args: argparse.Namespace) -> None:
    """Fail first when ``--model``, ``--onnx`` or ``--detections`` (those the command has and
    was given) names no file, naming the flag: before an output path is checked against it, so
    that ``--model .`` is said to be a folder, not an input folder that an output would write
    into."""
    for flag, wanted in (
        ("--model", "the .safetensors file"),
        ("--onnx", "the .onnx file"),
        ("--detections", "the results .json file"),
    ):
        path = getattr(args, flag.removeprefix("--"), None)
        if path is not None:
            check_file(Path(path), flag, wanted)


def check_output_path(
    path: Path,
    flag: str,
    *,
    folder: bool = False,
    inputs: Mapping[str, Path | str | None] | None = None,
) -> None:
    """Fail before any work when ``path`` (a file, or with ``folder`` a folder) cannot be written:
    it is a folder where a file is wanted (or the reverse), a device, named pipe or socket
    (:func:`refuse_special_file`), it would sit inside a file, or the nearest existing folder
    on its way takes no new file (tried with a temporary file); or when the file would replace
    one of ``inputs`` (the command's input files and folders, by flag): one of those files, or
    an existing file inside one of those folders."""
    # A folder first: inside an input folder (the image folder itself) it is no file to replace.
    if not folder and path.is_dir():
        raise IsADirectoryError(f"{flag} {path} is a folder; give a file name")
    if not folder:
        refuse_special_file(path, flag)
        refuse_overwriting(path, flag, inputs or {})
    if folder and path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{flag} {path} is a file; give a folder")
    start = [path] if folder else []
    for parent in (*start, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(
                    f"{flag} {path}: {parent} is a file, not a folder; choose another path"
                )
            try:
                with tempfile.TemporaryFile(dir=parent):
                    pass
            except OSError as error:
                raise PermissionError(
                    f"{flag} {path}: cannot write in {parent} ({error.strerror or error}); "
                    "choose another path"
                ) from None
            return


def refuse_special_file(path: Path, flag: str, *, folder: Path | None = None) -> None:
    """Raise when the file ``path`` (given as ``flag``, or written into the ``folder`` given as
    ``flag``) is a device, a named pipe or a socket: writing it would put a regular file in its
    place (as root, ``/dev/null`` itself), never write into it."""
    kind = special_file_kind(path)
    if kind is None:
        return
    subject = f"{flag} {path}" if folder is None else f"{flag} {folder}: {path}"
    raise ValueError(
        f"{subject} is {kind}, not a regular file, and a command writes its files whole "
        "(replacing what is there); give the path of a regular file"
    )


def refuse_overwriting(path: Path, flag: str, inputs: Mapping[str, Path | str | None]) -> None:
    """Raise when writing the file ``path`` would replace one of ``inputs`` (see
    :func:`check_output_path`): a model, an annotations file or an image costs the user's work."""
    if not path.exists():
        return
    for input_flag, given in inputs.items():
        source = Path(given) if given is not None else None
        if source is None or not source.exists():
            continue
        if source.is_dir():
            if is_below(path, source):
                raise ValueError(
                    f"{flag} {path} would replace a file in the {input_flag} folder {source}; "
                    "give another file name"
                )
        elif path.samefile(source):
            raise ValueError(
                f"{flag} {path} is the file {input_flag} names; writing it would destroy that "
                "input: give another file name"
            )


def resolve_device(name: str | None) -> torch.device:
    """``--device`` as a torch device (:func:`~sparsercnn.runtime.resolve_device`: default CUDA
    when available, else the CPU; errors name ``--device``)."""
    from sparsercnn import runtime

    return runtime.resolve_device(name, argument="--device")


AUTO_PRESET = "auto"


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``--preset NAME`` (default ``auto``: chosen from the data) or ``--config FILE``, and
    ``--set KEY=VALUE...``."""
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--preset",
        default=AUTO_PRESET,
        choices=[AUTO_PRESET, *sorted(PRESETS)],
        help="named configuration to start from; 'auto' (the default) chooses the model size, "
        "input size, proposals, schedule and precision from the training set, the device and "
        "--time-budget, prints each choice with its reason and saves them in config.json. The "
        "fixed presets are described in the README ('Fixed presets') and defined in the module "
        "sparsercnn.presets; a run's config.json lists every value it used",
    )
    start.add_argument(
        "--config",
        type=user_path,
        help="a config.json (e.g. a run's) to start from instead; keys it leaves out take the "
        "defaults (the r50_100pro_3x preset's values), unknown keys are refused",
    )
    add_overrides_argument(parser)


def add_overrides_argument(parser: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE...`` into ``args.overrides``; a repeated ``--set`` adds to the earlier
    ones (applied in order, so the last value of a key wins)."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override config values, e.g. --set model.num_proposals=300 train.max_iter=5000 "
        "(repeatable)",
    )


@contextlib.contextmanager
def naming_input_flags(
    image_folders: Mapping[str, Path | None],
    *,
    annotation_files: Mapping[str, Path | None] | None = None,
) -> Iterator[None]:
    """Name the flag that gave an image folder the data check refuses inside, or an annotation
    file that cannot be read.

    The check (:func:`~sparsercnn.data.image_check.check_image_folder`) and the loader
    (:func:`~sparsercnn.data.coco_file.load_coco_json`) do not know the flag and name every
    flag a folder or file can come from; ``image_folders`` maps this command's image folder
    flags to their values, ``annotation_files`` its COCO file flags (None: not given).
    """
    from sparsercnn.data.dataset_error import AnnotationFileError
    from sparsercnn.data.image_check import ImageFolderError

    try:
        yield
    except ImageFolderError as error:
        given = _flags_giving(error.image_dir, image_folders)
        if not given:
            raise
        raise error.given_as(given) from None
    except AnnotationFileError as error:
        given = _flags_giving(error.path, annotation_files or {})
        if not given:
            raise
        raise error.given_as(given) from None


def _flags_giving(path: str | os.PathLike[str], flags: Mapping[str, Path | None]) -> str:
    """The flags of ``flags`` whose value is ``path`` (``"--a and --b"``; empty: none)."""
    target = os.path.abspath(path)
    return " and ".join(
        flag
        for flag, value in flags.items()
        if value is not None and os.path.abspath(value) == target
    )
