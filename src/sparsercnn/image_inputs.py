"""The images a predictor takes: paths, folders, PIL images, arrays and tensors.

:func:`expand_inputs` turns what a caller gives into ``(image, source name)`` pairs (a folder
into its image files, leaving out hidden files and drawings of earlier runs),
:func:`decode_input` reads one as evaluation does, and :func:`to_pil` checks and converts arrays
and tensors. The predictors (:class:`~sparsercnn.predictor.BatchPredictor`) resize and batch
what these give.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from torch import Tensor

from sparsercnn.data.image_io import DecodedImage, decode_image, load_image, to_rgb
from sparsercnn.data.image_suffixes import IMAGE_SUFFIXES
from sparsercnn.data.transforms import InferenceTransform
from sparsercnn.paths import is_below
from sparsercnn.text import counted, listing

logger = logging.getLogger(__name__)

# Marks a folder of drawings (:mod:`~sparsercnn.drawings_marker`, which writes and reads it): a
# folder given to predict leaves out the marked folders below it, and a drawing replaces only the
# files a marker lists, or any below the folder of an older marker that lists none
# (:func:`~sparsercnn.drawings_marker.is_drawing`).
DRAWINGS_MARKER = ".sparsercnn-drawings"
ImageInput = str | Path | Image.Image | np.ndarray | Tensor | DecodedImage


def expand_inputs(inputs: ImageInput | Sequence[ImageInput]) -> list[tuple[ImageInput, str]]:
    """Flatten inputs into ``(image or path, source name)`` pairs; folders expand to their images.

    Raises:
        FileNotFoundError: a path does not exist, or a folder holds no image file.
    """
    # A DecodedImage is one input, although a tuple.
    many = isinstance(inputs, list | tuple) and not isinstance(inputs, DecodedImage)
    items: list[ImageInput] = list(inputs) if many else [inputs]  # type: ignore[list-item,arg-type]
    expanded: list[tuple[ImageInput, str]] = []
    for i, item in enumerate(items):
        if isinstance(item, str | Path):
            path = Path(item)
            if path.is_dir():
                files = folder_files(path, IMAGE_SUFFIXES)
                if not files:
                    raise no_files_error(path, "image files", IMAGE_SUFFIXES)
                expanded.extend((f, str(f)) for f in files)
            elif path.is_file():
                expanded.append((path, str(path)))
            else:
                raise FileNotFoundError(f"input {path} does not exist")
        else:
            expanded.append((item, input_name(i)))
    return expanded


def input_name(index: int) -> str:
    """How :func:`expand_inputs` names the ``index``-th input when it is not a path (the source
    of its prediction and errors): ``<input i>``."""
    return f"<input {index}>"


def folder_files(folder: Path, suffixes: Sequence[str], skip: Path | None = None) -> list[Path]:
    """The files below ``folder`` with one of ``suffixes``, sorted by path: what a folder given
    as input stands for, in Python and in ``predict``. Left out, with a log line saying how many:
    those in :func:`drawing_folders`, the staged drawings a run killed before its end left
    (:func:`~sparsercnn.staged_drawings.is_staged`), and the other hidden files, whose name or
    that of a folder they are in below ``folder`` starts with "." (macOS's ``._NAME`` companions,
    which hold no image; a hidden file given by its own path is read)."""
    from sparsercnn.staged_drawings import is_staged  # it names files by the marker's name

    left_out = drawing_folders(folder, skip)
    candidates = [p for p in folder.rglob("*") if p.suffix.lower() in suffixes]
    hidden = {p for p in candidates if is_hidden(p, folder)}
    staged = {p for p in hidden if is_staged(p)}
    drawings = staged | {p for p in candidates if any(is_below(p, f) for f in left_out)}
    hidden -= drawings
    if drawings:
        marked = {str(f) for f in left_out if any(is_below(p, f) for p in drawings - staged)}
        places = [f"in {', '.join(sorted(marked))}"] if marked else []
        if staged:
            parents = sorted({str(p.parent) for p in staged})
            places.append(f"staged in {', '.join(parents)} by runs killed before their end")
        logger.info(
            "%s: leaving out %s of earlier runs (%s)",
            folder,
            counted(len(drawings), "drawing"),
            "; ".join(places),
        )
    if hidden:
        logger.info(
            "%s: leaving out %s (%s): a folder's files and folders named '.*' are no inputs; "
            "give such a file by its path to read it",
            folder,
            counted(len(hidden), "hidden file"),
            listing([str(p.relative_to(folder)) for p in sorted(hidden)], 3),
        )
    return sorted(p for p in candidates if p not in drawings and p not in hidden)


def is_hidden(path: Path, folder: Path) -> bool:
    """Whether ``path``, a file below ``folder``, or a folder it is in below ``folder``, has a
    name starting with "." (``folder`` itself may be hidden: a user gave it)."""
    return any(part.startswith(".") for part in path.relative_to(folder).parts)


def no_files_error(
    folder: Path, what: str, suffixes: Sequence[str], *, label: str = "folder"
) -> FileNotFoundError:
    """The error of a folder given as input that holds none of its inputs
    (:func:`folder_files` found none), naming the suffixes looked for.

    Args:
        folder: the folder, as given.
        what: what it should hold (``"image files"``, ``"image or video files"``).
        suffixes: the suffixes looked for.
        label: what the folder is (``"frame folder"``).
    """
    return FileNotFoundError(f"{label} {folder} contains no {what} ({', '.join(suffixes)})")


def drawing_folders(folder: Path, skip: Path | None = None) -> list[Path]:
    """Folders strictly below ``folder`` whose files are drawings, not inputs: those a
    :class:`~sparsercnn.drawing_writer.DrawingWriter` marked (:data:`DRAWINGS_MARKER`), and
    ``skip`` (where this run draws)."""
    found = [marker.parent for marker in folder.rglob(DRAWINGS_MARKER)]
    if skip is not None:
        found.append(skip)
    return [path for path in found if is_below(path, folder, strictly=True)]


def decode_input(image: ImageInput, transform: InferenceTransform) -> DecodedImage:
    """One input, decoded for ``transform``: an image file at the reduced scale the resize
    allows (:func:`~sparsercnn.data.image_io.decode_image` with
    :meth:`~sparsercnn.data.transforms.InferenceTransform.source_size`: a large JPEG at 1/2 to
    1/8 of its size, as the evaluation dataset decodes it), a :class:`DecodedImage` as it is,
    any other input as :func:`to_pil` makes it. ``full_size`` is the ``(h, w)`` its detections
    are given in, and its :meth:`~sparsercnn.data.image_io.DecodedImage.input_map` takes them
    there from the model's input (or the ratio of sizes)."""
    if isinstance(image, DecodedImage):
        return image._replace(image=to_rgb(image.image))
    if isinstance(image, str | Path):
        return decode_image(image, transform.source_size)
    pil = to_pil(image)
    return DecodedImage(pil, (pil.height, pil.width))


def to_pil(image: ImageInput) -> Image.Image:
    """Load or convert one input to an RGB PIL image. Files are turned upright by their EXIF
    orientation; a PIL image, array or tensor is taken as it is (a caller's ``Image.open``
    result is not rotated: ``PIL.ImageOps.exif_transpose`` does that).

    Arrays are ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA, tensors
    ``(3, H, W)`` RGB or ``(1, H, W)``; both hold 0-255 pixel values: uint8, or integers or
    floats within 0-255 (floats are rounded; floats within [0, 1], NaN, and values outside
    0-255 are refused).

    Raises:
        ValueError: an array or tensor of another shape or range, an empty image, or a PIL
            image whose file cannot be read (truncated, or closed before its pixels were read).
        TypeError: an input of another type.
    """
    if isinstance(image, str | Path):
        return load_image(image)
    if isinstance(image, Image.Image):
        if 0 in image.size:
            raise ValueError(f"the image is empty: {image.width}x{image.height} pixels")
        _read_pixels(image)
        return to_rgb(image)
    if isinstance(image, Tensor):
        if image.dim() != 3 or image.shape[0] not in (1, 3):
            raise ValueError(
                f"tensor images must be (3, H, W) or (1, H, W), got {tuple(image.shape)}"
                + _layout_hint(tuple(image.shape), "permute(2, 0, 1)", "channels")
            )
        tensor = image.detach().cpu()
        if tensor.is_floating_point():
            tensor = tensor.float()  # numpy has no bf16
        image = _uint8_pixels(tensor.permute(1, 2, 0).numpy(), "tensor")
    if isinstance(image, np.ndarray):
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
            raise ValueError(
                f"array images must be HxW, HxWx3 or HxWx4, got shape {image.shape}"
                + _layout_hint(image.shape, "transpose(1, 2, 0)", "last")
            )
        if 0 in image.shape[:2]:
            raise ValueError(f"the image is empty: {image.shape[1]}x{image.shape[0]} pixels")
        return to_rgb(Image.fromarray(_uint8_pixels(image, "array")))
    raise TypeError(
        f"unsupported image input of type {type(image).__name__}; give a path, folder, PIL "
        "image, HxWx3 uint8 RGB array or (3, H, W) tensor, or a list or tuple of them"
    )


def _read_pixels(image: Image.Image) -> None:
    """Read the pixels of a PIL image now: ``Image.open`` reads them at their first use, where a
    file that cannot be read failed without a word of which input it was.

    Raises:
        ValueError: its file is truncated or damaged, or was closed before its pixels were read.
    """
    fp = getattr(image, "fp", None)
    # An image opened from a file object has no filename, but its file has a name.
    filename = getattr(image, "filename", "") or getattr(fp, "name", "")
    named = isinstance(filename, str) and filename
    file = f"the PIL image's file {filename}" if named else "the PIL image's file"
    if fp is None:
        when = "inside the `with Image.open(...)` block"
    elif named:
        when = "inside the `with open(...)` block"
    else:  # an io.BytesIO, a socket's file, ...: the `with` block may be any
        when = "before the file object given to Image.open is closed"
    closed = ValueError(
        f"{file} was closed before its pixels were read: call image.load() {when} (or before "
        f"image.close()){', or give the path' if named else ''}"
    )
    # The end of its `with Image.open(...)` block, or image.close(), drops the file of an image
    # whose pixels are still to be read (Pillow would fail with a bare assertion); the end of a
    # `with open(...)` block whose file object Image.open was given closes that file object
    # (Pillow would fail with "seek of closed file", as if the file were damaged).
    if getattr(image, "tile", None) and (fp is None or getattr(fp, "closed", False)):
        raise closed
    try:
        image.load()
    except (OSError, ValueError) as error:
        # Pillow raises ValueError for an image closed after its pixels were read, and for some
        # damaged files too ("Tile offset cannot be negative").
        if str(error) == "Operation on closed image":
            raise closed from None
        raise ValueError(f"{file} cannot be read ({error}): it is truncated or damaged") from None


def _layout_hint(shape: tuple[int, ...], fix: str, where: str) -> str:
    """What to do with an image of ``shape`` in the other layout, or a batch of images."""
    if len(shape) == 4:
        return "; give a batch as a list of images"
    if len(shape) == 3 and where == "channels" and shape[2] in (1, 3):
        return f"; this looks channels-last (H, W, C): give image.{fix}"
    if len(shape) == 3 and where == "last" and shape[0] in (1, 3, 4):
        return f"; this looks channels-first (C, H, W): give image.{fix}"
    return ""


def _uint8_pixels(pixels: np.ndarray, kind: str) -> np.ndarray:
    """``pixels`` (an image array of any real dtype holding 0-255 values) as uint8.

    Args:
        pixels: the image's values, any shape.
        kind: ``"array"`` or ``"tensor"``, for the message.

    Raises:
        ValueError: floats within [0, 1] or not finite, values outside 0-255, booleans or
            other dtypes (a cast would wrap 16-bit values around, 1020 -> 252, or read a mask
            as pixels; NaN would become an arbitrary value; a clip would change the image).
    """
    dtype = str(pixels.dtype)
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype.kind == "f":
        if not bool(np.isfinite(pixels).all()):
            raise ValueError(
                f"this float {kind} image holds NaN or infinite values; give 0-255 pixels"
            )
        low, high = (float(pixels.min()), float(pixels.max())) if pixels.size else (0.0, 0.0)
        if 0 < high <= 1.0:
            raise ValueError(
                f"float {kind} images hold 0-255 values (as uint8 images do); this one is "
                "within [0, 1]: multiply it by 255"
            )
        if low < -0.5 or high >= 255.5:
            # Clipping would silently change the image (a normalised or 16-bit one).
            raise ValueError(
                f"float {kind} images hold 0-255 values; this one spans [{low:g}, {high:g}] "
                "(normalised, or 16-bit?): scale it to 0-255 first"
            )
        return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    if pixels.dtype.kind in "iu" and (
        not pixels.size or (int(pixels.min()) >= 0 and int(pixels.max()) <= 255)
    ):
        return pixels.astype(np.uint8)
    raise ValueError(
        f"{kind} images hold 0-255 values; this {dtype} one does not (a 16-bit image or a "
        "mask?): scale it to uint8 first"
    )
