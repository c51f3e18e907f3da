"""Decoded uploads shrunk to the model's input size at upload: the model gets the same pixels,
and the detections reach the upload's pixels as from the file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sparsercnn.data.image_io import DecodedImage
from sparsercnn.data.transforms import InferenceTransform
from sparsercnn.predictor import Predictor
from sparsercnn.serving import Limits
from sparsercnn.serving.errors import ApiError
from sparsercnn.serving.schemas import detections_of
from sparsercnn.serving.uploads import at_input_size, decode_upload
from sparsercnn.structures import PixelMap
from tests.serving.conftest import MakeClient

TRANSFORM = InferenceTransform(min_size=128, max_size=160)


@pytest.mark.parametrize(
    ("width", "height"),
    [(1600, 1200), (1200, 1600), (3000, 1), (1, 2999), (997, 131), (161, 129), (640, 480)],
)
def test_the_shrunk_image_gives_the_model_the_same_tensor(width: int, height: int) -> None:
    rng = np.random.default_rng(width * height)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    shrunk = at_input_size(DecodedImage(image, (height, width)), TRANSFORM)
    assert shrunk.full_size == (height, width)
    assert shrunk.image.size == (
        TRANSFORM.output_size(height, width)[::-1] if shrunk.image is not image else (width, height)
    )
    assert shrunk.image.width * shrunk.image.height <= width * height
    torch.testing.assert_close(
        TRANSFORM.image_tensor(shrunk.image), TRANSFORM.image_tensor(image), rtol=0, atol=0
    )


@pytest.mark.parametrize(
    ("image_format", "words"),
    [
        ("GIF", "3 frames (an animated GIF)"),
        ("PNG", "3 frames (an animated PNG)"),
        ("WEBP", "3 frames (an animated WEBP)"),
        ("TIFF", "3 frames (pages of a TIFF)"),
    ],
)
def test_a_file_of_several_frames_is_refused_naming_them(image_format: str, words: str) -> None:
    """Its first frame's detections were answered 200, as the file's, with a warning in the
    server's log alone (naming the upload's temporary file)."""
    frames = [Image.new("RGB", (24, 16), color) for color in ("red", "green", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=image_format, save_all=True, append_images=frames[1:])
    with pytest.raises(ApiError) as refused:
        decode_upload(buffer.getvalue(), "images[1]", Limits(), "clip")
    assert (refused.value.status, refused.value.field) == (415, "images[1]")
    assert str(refused.value).startswith(f"images[1] (clip) has {words}; this API detects")
    still = io.BytesIO()
    frames[0].save(still, format=image_format)
    assert decode_upload(still.getvalue(), "images[1]", Limits()).image.size == (24, 16)


def test_an_image_over_the_limit_is_told_by_one_sentence_under_and_over_pillows_guard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A JPEG stored 100x40 and shown 40x100 (EXIF orientation 6) over the limit: under
    Pillow's decompression-bomb guard it is told its count and displayed size, over it its
    count alone. Was "is 100x40 = 4000 pixels" over the guard: its stored size, read through
    Pillow's private plugin registry; then "is 40x100 = 4000 pixels" under the guard and "has
    4000 pixels" over it, two wordings of one refusal."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.new("RGB", (100, 40)).save(buffer, format="JPEG", exif=exif)
    limits = Limits(max_image_pixels=500)
    with pytest.raises(ApiError) as refused:
        decode_upload(buffer.getvalue(), "images[0]", limits, "a.jpg")
    assert (refused.value.status, str(refused.value)) == (
        413,
        "images[0] (a.jpg) has 4000 pixels (40x100), more than the limit of 500; downscale it "
        "first",
    )
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the guard refuses 2001 pixels and up
    with pytest.raises(ApiError) as refused:
        decode_upload(buffer.getvalue(), "images[0]", limits, "a.jpg")
    assert (refused.value.status, str(refused.value)) == (
        413,
        "images[0] (a.jpg) has 4000 pixels, more than the limit of 500; downscale it first",
    )


def test_an_image_smaller_than_the_input_is_kept() -> None:
    small = DecodedImage(Image.new("RGB", (64, 48)), (48, 64))
    assert at_input_size(small, TRANSFORM) is small


def test_a_reduced_mirrored_jpeg_is_shrunk_and_answered_as_the_predictor_answers_the_file(
    make_client: MakeClient, model_file: Path, tmp_path: Path
) -> None:
    """A 2563x1283 JPEG mirrored by EXIF (orientation 3), decoded at 1/8 (321x161, its grid
    5 px past the image's on both axes): held at the model's input size, with its pixel map
    composed with that resize, so the model gets the same pixels and the response is the
    predictor's on the file, to the last digit."""
    exif = Image.Exif()
    exif[0x0112] = 3
    path = tmp_path / "mirrored.jpg"
    pixels = np.random.default_rng(7).integers(0, 120, (1283, 2563, 3), dtype=np.uint8)
    pixels[400:700, 1800:2500] = (230, 40, 40)
    Image.fromarray(pixels).save(path, quality=85, exif=exif)
    data = path.read_bytes()
    predictor = Predictor.from_file(model_file, batch_size=1)
    transform = predictor.transform
    decoded = decode_upload(data, "images[0]", Limits(), None, transform.source_size)
    assert decoded.pixel_map == PixelMap(8.0, 8.0, -5.0, -5.0)

    shrunk = at_input_size(decoded, transform)

    size = transform.output_size(decoded.image.height, decoded.image.width)
    assert (shrunk.image.height, shrunk.image.width) == size
    assert shrunk.full_size == (1283, 2563) and shrunk.pixel_map == decoded.input_map(size)
    torch.testing.assert_close(
        transform.image_tensor(shrunk.image), transform.image_tensor(decoded.image), rtol=0, atol=0
    )
    (from_file,) = predictor(path)
    (from_upload,) = predictor(shrunk)
    assert len(from_file.scores) > 0 and from_upload.image_size == (1283, 2563)
    for key in ("boxes", "scores", "labels"):
        assert torch.equal(getattr(from_upload, key), getattr(from_file, key)), key
    response = make_client().post(
        "/v1/detect", files=[("images", ("mirrored.jpg", data, "image/jpeg"))]
    )
    assert response.status_code == 200, response.text
    (image,) = response.json()["images"]
    assert (image["width"], image["height"]) == (2563, 1283)
    expected = [d.model_dump() for d in detections_of(from_file)]
    assert image["detections"] == expected
