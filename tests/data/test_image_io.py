"""Image decoding: EXIF orientation, mode conversions to 8-bit RGB, header-only sizes, errors,
reduced-scale JPEG decoding."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import GifImagePlugin, Image

from sparsercnn.data import image_io
from sparsercnn.data.image_io import (
    DecodedImage,
    ImageReadError,
    PixelMap,
    decode_image,
    load_image,
    load_image_and_header,
    multi_frame_format,
    none_read_error,
    read_image_header,
    to_rgb,
    unreadable_listing,
    warn_multi_frame_files,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def _quadrants(height: int, width: int) -> np.ndarray:
    """(h, w, 3) uint8 in four quadrants: red, green (top row); blue, white (bottom row)."""
    array = np.zeros((height, width, 3), dtype=np.uint8)
    h2, w2 = height // 2, width // 2
    array[:h2, :w2], array[:h2, w2:] = RED, GREEN
    array[h2:, :w2], array[h2:, w2:] = BLUE, WHITE
    return array


def _quadrant_centres(array: np.ndarray) -> list[np.ndarray]:
    h, w = array.shape[:2]
    return [array[y, x].astype(int) for y in (h // 4, 3 * h // 4) for x in (w // 4, 3 * w // 4)]


def test_exif_orientation_6_rotates_pixels_and_swaps_size(tmp_path: Path) -> None:
    raw = _quadrants(20, 40)  # stored 40 wide, 20 tall
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(raw).save(path, quality=95, exif=exif)

    image = load_image(path)

    assert image.mode == "RGB"
    assert image.size == (20, 40)  # PIL size is (w, h): displayed 20 wide, 40 tall
    assert read_image_header(path).orientation == 6
    expected = np.rot90(raw, k=-1)  # clockwise
    got = np.asarray(image)
    assert got.shape == expected.shape
    # Clockwise: the stored bottom-left (blue) is displayed top-left, top-left (red) top-right.
    for got_pixel, expected_pixel in zip(
        _quadrant_centres(got), _quadrant_centres(expected), strict=True
    ):
        assert np.abs(got_pixel - expected_pixel).max() < 30
    assert np.abs(got[5, 5].astype(int) - BLUE).max() < 30


def test_rgb_png_is_returned_exactly(tmp_path: Path) -> None:
    raw = np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    path = tmp_path / "rgb.png"
    Image.fromarray(raw).save(path)
    image = load_image(path)
    assert image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image), raw)


def test_grayscale_becomes_three_equal_channels(tmp_path: Path) -> None:
    gray = np.arange(0, 240, 10, dtype=np.uint8).reshape(4, 6)
    path = tmp_path / "gray.png"
    Image.fromarray(gray).save(path)
    got = np.asarray(load_image(path))
    assert got.shape == (4, 6, 3) and got.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(got[..., channel], gray)


def test_palette_with_transparency_keeps_palette_colours(tmp_path: Path) -> None:
    image = Image.new("P", (4, 2))
    image.putpalette([*RED, *GREEN, *BLUE] + [0] * (256 * 3 - 9))
    image.putdata([0, 1, 2, 0, 1, 2, 0, 1])
    path = tmp_path / "palette.png"
    image.save(path, transparency=0)  # red is the transparent colour
    got = np.asarray(load_image(path))
    assert got.shape == (2, 4, 3)
    assert tuple(got[0, 0]) == RED  # alpha dropped, stored colour kept
    assert tuple(got[0, 1]) == GREEN and tuple(got[0, 2]) == BLUE


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_channel_is_dropped(tmp_path: Path, mode: str) -> None:
    rgba = np.zeros((3, 5, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 100, 50) if mode == "RGBA" else (120, 120, 120)
    rgba[..., 3] = 0  # fully transparent: an exporter bug that must not turn the image black
    image = Image.fromarray(rgba).convert(mode)
    path = tmp_path / f"{mode}.png"
    image.save(path)
    got = np.asarray(load_image(path))
    expected = (200, 100, 50) if mode == "RGBA" else (120, 120, 120)
    assert got.shape == (3, 5, 3)
    assert (got == np.array(expected, dtype=np.uint8)).all()


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257 * 100, 30000, 65535]], dtype=np.uint16)
    path = tmp_path / "depth16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    got = np.asarray(load_image(path))
    assert got.shape == (1, 4, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got[0, :, 0], [0, 100, round(30000 / 257), 255])


def test_int32_and_float_modes() -> None:
    in_16bit_range = Image.fromarray(np.array([[0, 65535]], dtype=np.int32))
    assert in_16bit_range.mode == "I"
    np.testing.assert_array_equal(np.asarray(to_rgb(in_16bit_range))[0, :, 0], [0, 255])
    wide = Image.fromarray(np.array([[-1000, 0, 1000]], dtype=np.int32))
    np.testing.assert_array_equal(np.asarray(to_rgb(wide))[0, :, 0], [0, 128, 255])
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert unit.mode == "F"
    np.testing.assert_array_equal(np.asarray(to_rgb(unit))[0, :, 0], [0, 128, 255])


@pytest.fixture
def fresh_notes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The once-per-process notes of :mod:`image_io` not yet given."""
    monkeypatch.setattr(image_io, "_NOTED", set())


@pytest.mark.parametrize(
    ("suffix", "dtype", "mode"),
    [
        ("png", np.uint16, "I;16"),
        ("tif", np.uint16, "I;16"),
        ("tif", ">u2", "I;16B"),
        ("tif", np.int32, "I"),
        ("tif", np.float32, "F"),
    ],
)
def test_high_depth_images_are_stretched_by_their_own_range(
    tmp_path: Path, suffix: str, dtype: str, mode: str
) -> None:
    """A 12-bit camera image in a 16-bit file keeps 256 grey levels, not 16, in every mode."""
    values = np.array([[100, 1432, 2764, 4096]]).astype(dtype)
    path = tmp_path / f"twelve_bit.{suffix}"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == mode
    got = np.asarray(load_image(path))
    assert got.shape == (1, 4, 3)
    np.testing.assert_array_equal(got[0, :, 0], [0, 85, 170, 255])


def test_non_finite_float_pixels_are_black_and_outside_the_range() -> None:
    image = Image.fromarray(np.array([[np.nan, 100.0, 151.0, 355.0, np.inf]], dtype=np.float32))
    np.testing.assert_array_equal(np.asarray(to_rgb(image))[0, :, 0], [0, 0, 51, 255, 0])
    assert not np.asarray(to_rgb(Image.fromarray(np.full((2, 2), np.nan, np.float32)))).any()


@pytest.mark.parametrize(
    "mode", ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "I", "I;16", "F"]
)
def test_every_pil_mode_becomes_rgb(mode: str) -> None:
    image = Image.new(mode, (3, 2))
    got = to_rgb(image)
    assert got.mode == "RGB" and got.size == (3, 2)


def test_the_first_high_depth_file_is_named_once(
    tmp_path: Path, fresh_notes: None, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("a.png", "b.png"):
        Image.fromarray(np.array([[0, 4095]], dtype=np.uint16)).save(tmp_path / name)
    with caplog.at_level(logging.INFO, logger=image_io.__name__):
        load_image(tmp_path / "a.png")
        load_image(tmp_path / "b.png")
    (note,) = [record for record in caplog.records if record.levelno >= logging.INFO]
    assert "a.png" in note.getMessage() and "its own minimum and maximum" in note.getMessage()


def _save_frames(
    path: Path, sizes: list[tuple[int, int]], colours: list[tuple[int, ...]], **options: str
) -> None:
    frames = [Image.new("RGB", size, colour) for size, colour in zip(sizes, colours, strict=True)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, **options)


@pytest.mark.parametrize("suffix", ["gif", "png", "tif", "webp"])
def test_a_multi_frame_file_is_its_first_frame_named_once(
    tmp_path: Path, suffix: str, fresh_notes: None, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = tmp_path / f"first.{suffix}", tmp_path / f"second.{suffix}"
    for path in (first, second):
        _save_frames(path, [(8, 6), (8, 6), (8, 6)], [RED, BLUE, GREEN])
    assert read_image_header(first).num_frames == 3
    with caplog.at_level(logging.DEBUG, logger=image_io.__name__):
        image = load_image(first)
        decode_image(second, (2, 2))
    assert image.size == (8, 6) and np.abs(np.asarray(image).astype(int) - RED).max() <= 8
    (warning,) = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert "first." in warning.getMessage() and "3 frames" in warning.getMessage()
    assert "second." in caplog.records[-1].getMessage()  # the others at DEBUG


def test_the_multi_frame_files_of_a_run_are_named_in_one_warning(
    tmp_path: Path, fresh_notes: None, caplog: pytest.LogCaptureFixture
) -> None:
    """The images a run reads, known beforehand: only the first multi-frame file read was
    named, the others at DEBUG. Stills, unreadable files and JPEGs (whose headers are not read)
    are left out of it, and reading the files warns no more."""
    files = [tmp_path / name for name in ("a.webp", "b.tif", "c.png", "still.png", "bad.gif")]
    _save_frames(files[0], [(8, 6)] * 3, [RED, BLUE, GREEN])
    _save_frames(files[1], [(8, 6)] * 2, [RED, BLUE])
    _save_frames(files[2], [(8, 6)] * 2, [RED, BLUE])
    Image.new("RGB", (8, 6), RED).save(files[3])
    files[4].write_bytes(b"not a gif")
    with caplog.at_level(logging.DEBUG, logger=image_io.__name__):
        warn_multi_frame_files(files)
        for file in files[:3]:
            load_image(file)
    (warning,) = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert warning.getMessage() == (
        "3 images have several frames or pages, of which only the first is read, as for every "
        f"such file: {files[0]}: 3 frames (an animated WEBP), {files[1]}: 2 frames (pages of a "
        f"TIFF), {files[2]}: 2 frames (an animated PNG)"
    )


def test_an_mpo_jpeg_s_preview_is_not_a_frame(tmp_path: Path) -> None:
    path = tmp_path / "camera.jpg"
    _save_frames(path, [(8, 6), (4, 3)], [RED, BLUE], format="MPO")
    with Image.open(path) as opened:
        assert opened.format == "MPO" and opened.n_frames == 2
    assert read_image_header(path).num_frames == 1
    assert multi_frame_format(path) is None


@pytest.mark.parametrize(
    ("suffix", "image_format"), [("gif", "GIF"), ("png", "PNG"), ("tif", "TIFF"), ("webp", "WEBP")]
)
def test_multi_frame_format_names_a_file_of_several_frames(
    tmp_path: Path, suffix: str, image_format: str
) -> None:
    animated, still = tmp_path / f"animated.{suffix}", tmp_path / f"still.{suffix}"
    _save_frames(animated, [(8, 6)] * 3, [RED, BLUE, GREEN])
    Image.new("RGB", (8, 6), RED).save(still)
    assert multi_frame_format(animated) == image_format
    assert multi_frame_format(still) is None
    with pytest.raises(ImageReadError, match="was not found"):
        multi_frame_format(tmp_path / f"missing.{suffix}")


def test_a_gif_is_told_animated_without_counting_its_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several frames or not stops at the second frame (Pillow's is_animated): counting them
    (n_frames) reads a GIF to its end. A count that fails on a damaged later frame leaves the
    file of several frames (2 at least), as multi_frame_format says: one decision."""
    path = tmp_path / "long.gif"
    _save_frames(path, [(8, 6)] * 3, [RED, BLUE, GREEN])

    def damaged(image: Image.Image) -> int:
        raise OSError("frame 3 is damaged")

    monkeypatch.setattr(GifImagePlugin.GifImageFile, "n_frames", property(damaged))
    assert multi_frame_format(path) == "GIF"
    assert read_image_header(path).num_frames == 2


def test_cmyk_becomes_rgb(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (2, 1))
    cmyk.putdata([(0, 0, 0, 0), (255, 0, 0, 0)])  # white paper, pure cyan ink
    path = tmp_path / "cmyk.tif"
    cmyk.save(path)
    got = np.asarray(load_image(path))
    assert got.shape == (1, 2, 3)
    assert tuple(got[0, 0]) == WHITE
    assert tuple(got[0, 1]) == (0, 255, 255)


def test_missing_file_raises_image_read_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.jpg"
    for read in (load_image, read_image_header):
        with pytest.raises(
            ImageReadError, match=r"nope\.jpg' was not found: check the path$"
        ) as info:
            read(path)
        assert isinstance(info.value, OSError)
        assert info.value.path == str(path)
    with pytest.raises(ImageReadError, match=r"cannot read image .*: it is a folder, not a file$"):
        load_image(tmp_path)
    link = tmp_path / "link.jpg"
    link.symlink_to("moved.jpg")  # the file it points to was moved or never copied
    for read in (load_image, read_image_header, load_image_and_header):
        with pytest.raises(
            ImageReadError, match=r"link\.jpg': it is a link to 'moved\.jpg', which does not exist"
        ):
            read(link)


def test_non_image_and_truncated_files_raise_image_read_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("this is not an image")
    # Pillow's "cannot identify image file" in words, without repeating the path.
    not_an_image = r"notes\.jpg': not an image, or a damaged one \(Pillow cannot identify its"
    with pytest.raises(ImageReadError, match=not_an_image):
        load_image(text)
    with pytest.raises(ImageReadError, match=not_an_image):
        read_image_header(text)

    full = tmp_path / "full.jpg"
    Image.fromarray(_quadrants(64, 64)).save(full)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(full.read_bytes()[:300])
    with pytest.raises(ImageReadError, match=r"truncated\.jpg"):
        load_image(truncated)


def test_every_reader_opens_a_file_through_one_place_that_names_it(tmp_path: Path) -> None:
    """The four readers share one opening (``_opened_image``): a bad file gives each the same
    error, and a Pillow error raised while the file is open (decoding) names it too."""
    full = tmp_path / "full.png"
    Image.fromarray(_quadrants(64, 64)).save(full)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(full.read_bytes()[:-100])
    damaged = r"cut\.png': the file is truncated or damaged \("
    with pytest.raises(ImageReadError, match=damaged), image_io._opened_image(str(truncated)) as im:
        im.load()
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    readers = (read_image_header, decode_image, load_image_and_header, multi_frame_format)
    for path in (text, tmp_path / "missing.png", tmp_path):
        messages = set()
        for read in readers:
            with pytest.raises(ImageReadError) as info:
                read(path)
            assert info.value.path == str(path)
            messages.add(str(info.value))
        assert len(messages) == 1, messages


def test_an_empty_file_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    for read in (load_image, read_image_header):
        with pytest.raises(ImageReadError, match=r"empty\.jpg': the file is empty \(0 bytes\)"):
            read(empty)


def test_a_read_error_gives_its_reason_apart_from_the_file_name(tmp_path: Path) -> None:
    """What a list of unreadable files (predict's warning and frame list) gives beside each
    name, without repeating it."""
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    for path, reason in [
        (empty, "the file is empty (0 bytes): copy or export it again"),
        (tmp_path / "missing.jpg", "not found: check the path"),
        (tmp_path, "it is a folder, not a file"),
    ]:
        with pytest.raises(ImageReadError) as info:
            load_image(path)
        assert (info.value.path, info.value.reason) == (str(path), reason)
        assert str(info.value).endswith(reason)


def test_a_truncated_file_says_what_to_do(tmp_path: Path) -> None:
    full = tmp_path / "full.png"
    Image.fromarray(_quadrants(64, 64)).save(full)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(full.read_bytes()[:-100])
    with pytest.raises(ImageReadError, match=r"cut\.png': the file is truncated or damaged \("):
        load_image(truncated)


def test_an_image_over_pillow_s_pixel_limit_says_how_to_read_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.png"
    Image.new("RGB", (64, 64)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # refused over twice this
    for read in (load_image, read_image_header):
        with pytest.raises(ImageReadError, match=r"huge\.png': .*MAX_IMAGE_PIXELS") as info:
            read(path)
        assert isinstance(info.value.__cause__, Image.DecompressionBombError)


def test_image_read_error_survives_pickling() -> None:
    error = ImageReadError("cannot read image 'a.jpg': broken", "a.jpg")
    restored = pickle.loads(pickle.dumps(error))
    assert isinstance(restored, ImageReadError)
    assert restored.path == "a.jpg" and str(restored) == str(error)
    # The DataLoader re-raises worker errors as type(exc)(message).
    assert str(ImageReadError(str(error))) == str(error)


@pytest.mark.parametrize(
    ("at_least", "expected_size"),
    [
        ((100, 150), (100, 150)),  # 1/4 of 400x600; 1/8 would be under 100 rows
        ((99, 40), (100, 150)),
        ((50, 75), (50, 75)),  # 1/8
        ((201, 300), (400, 600)),  # not halvable: in full
        ((1000, 1000), (400, 600)),  # never upscaled
    ],
)
def test_decode_image_reduces_a_jpeg_to_the_smallest_scale_at_least_the_size(
    tmp_path: Path, at_least: tuple[int, int], expected_size: tuple[int, int]
) -> None:
    path = tmp_path / "photo.jpg"
    Image.fromarray(_quadrants(400, 600)).save(path, quality=95)

    decoded = decode_image(path, at_least=at_least)

    assert (decoded.image.height, decoded.image.width) == expected_size
    assert decoded.full_size == (400, 600)
    assert decoded.image.mode == "RGB"
    # The whole scene at a smaller scale: the quadrants keep their colours.
    got = _quadrant_centres(np.asarray(decoded.image))
    for got_pixel, colour in zip(got, (RED, GREEN, BLUE, WHITE), strict=True):
        assert np.abs(got_pixel - colour).max() < 30


def test_decode_image_reduced_jpeg_matches_a_full_decode_resized(tmp_path: Path) -> None:
    """DCT scaling is a block average: resized to the same output, the reduced and the full
    decode of a textured photo differ by a few grey levels on average."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (75, 100, 3), dtype=np.uint8)
    texture = np.asarray(Image.fromarray(noise).resize((800, 600), Image.Resampling.BICUBIC))
    path = tmp_path / "texture.jpg"
    Image.fromarray(texture).save(path, quality=92)

    reduced = decode_image(path, at_least=(120, 160)).image
    full = load_image(path)

    assert reduced.size == (200, 150)
    output = (160, 120)
    a = np.asarray(reduced.resize(output, Image.Resampling.BILINEAR), dtype=float)
    b = np.asarray(full.resize(output, Image.Resampling.BILINEAR), dtype=float)
    assert np.abs(a - b).mean() < 3.0


def test_decode_image_sizes_follow_the_exif_orientation(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed turned by 90 degrees: 400 wide, 600 tall
    path = tmp_path / "rotated.jpg"
    Image.fromarray(_quadrants(400, 600)).save(path, quality=95, exif=exif)

    decoded = decode_image(path, at_least=(150, 100))  # display (h, w)

    assert decoded.full_size == (600, 400)
    assert (decoded.image.height, decoded.image.width) == (150, 100)
    expected = np.rot90(_quadrants(100, 150), k=-1)
    got, want = _quadrant_centres(np.asarray(decoded.image)), _quadrant_centres(expected)
    for got_pixel, expected_pixel in zip(got, want, strict=True):
        assert np.abs(got_pixel - expected_pixel).max() < 30


def test_decode_image_asks_a_size_function_with_the_display_size(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed 400 wide, 600 tall
    path = tmp_path / "rotated.jpg"
    Image.fromarray(_quadrants(400, 600)).save(path, quality=95, exif=exif)
    asked: list[tuple[int, int]] = []

    def half(height: int, width: int) -> tuple[int, int]:
        asked.append((height, width))
        return height // 2, width // 2

    decoded = decode_image(path, at_least=half)

    assert asked == [(600, 400)]
    assert decoded.full_size == (600, 400)
    assert (decoded.image.height, decoded.image.width) == (300, 200)


def test_decode_image_keeps_other_formats_and_none_in_full(tmp_path: Path) -> None:
    raw = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    png, jpeg = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.fromarray(raw).save(png)
    Image.fromarray(raw).save(jpeg, quality=95)

    reduced_png = decode_image(png, at_least=(8, 12))
    np.testing.assert_array_equal(np.asarray(reduced_png.image), raw)
    assert reduced_png.full_size == (64, 96)
    full = decode_image(jpeg)
    assert full.full_size == (64, 96)
    # Boxes map by the (unit) ratio of sizes, as before pixel maps existed.
    for decoded in (reduced_png, full, decode_image(jpeg, at_least=(64, 96))):
        assert decoded.pixel_map is None
        assert decoded.rescale_size((32, 48)) == decoded.full_size == (64, 96)
        assert decoded.input_map((32, 48)) is None
    np.testing.assert_array_equal(np.asarray(full.image), np.asarray(load_image(jpeg)))


# A stored 1003 x 403 JPEG (neither side a multiple of 8 k) with a bright rectangle near its far
# corner, clear of the last, partial DCT block.
_STORED_SIZE = (403, 1003)
_RECTANGLE = (869, 300, 930, 351)  # stored xyxy


def _centroid(image: Image.Image) -> tuple[float, float]:
    """Brightness-weighted centre ``(x, y)`` of an image, in continuous pixel coordinates."""
    grey = np.asarray(image.convert("L"), dtype=float)
    grey = np.clip(grey - 16, 0, None)  # JPEG noise of the black background
    ys, xs = np.mgrid[: grey.shape[0], : grey.shape[1]] + 0.5
    return float((xs * grey).sum() / grey.sum()), float((ys * grey).sum() / grey.sum())


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("reduction", [2, 4, 8])
def test_reduced_jpeg_pixel_map_is_the_dct_grid(
    tmp_path: Path, orientation: int, reduction: int
) -> None:
    """libjpeg's pixel i at 1/k covers full pixels [k i, k (i + 1)), so the map is k x, less
    the partial last pixel's overhang on an axis the EXIF orientation mirrors, not the ratio
    of sizes (off by up to k - 1 px at the far edge). Located by a rectangle's centre to a
    fraction of a pixel."""
    array = np.zeros((*_STORED_SIZE, 3), dtype=np.uint8)
    x0, y0, x1, y1 = _RECTANGLE
    array[y0:y1, x0:x1] = WHITE
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.jpg"
    Image.fromarray(array).save(path, quality=100, subsampling=0, exif=exif)
    full = decode_image(path)
    height, width = full.full_size

    decoded = decode_image(path, at_least=(height // reduction, width // reduction))

    assert decoded.full_size == full.full_size
    assert decoded.image.size == (-(-width // reduction), -(-height // reduction))
    pixel_map = decoded.pixel_map
    assert pixel_map is not None
    assert decoded.rescale_size((40, 99)) == (40, 99)  # the input's own: the map goes on
    x, y = _centroid(decoded.image)
    centre = pixel_map.boxes_to_full(torch.tensor([x, y, x, y], dtype=torch.float64))
    expected = torch.tensor(_centroid(full.image) * 2, dtype=torch.float64)
    torch.testing.assert_close(centre, expected, rtol=0, atol=0.25)
    # The ratio of sizes misses by most of a pixel or more; the map is exact and invertible.
    ratio = PixelMap(width / decoded.image.width, height / decoded.image.height)
    assert (ratio.boxes_to_full(torch.tensor([x, y, x, y])) - expected).abs().max() > 0.5
    whole = torch.tensor([0.0, 0.0, decoded.image.width, decoded.image.height])
    covered = pixel_map.boxes_to_full(whole)
    assert covered[0] <= 0 and covered[1] <= 0  # the grid covers the image, and at most k - 1
    assert width <= covered[2] and height <= covered[3]  # pixels more on each axis
    assert (covered[2:] - covered[:2] - torch.tensor([width, height])).max() < reduction
    torch.testing.assert_close(pixel_map.boxes_to_decoded(covered), whole)


def test_decoded_image_without_a_pixel_map_maps_by_the_ratio_of_sizes() -> None:
    """A DecodedImage made by hand (a plain resize of the full image) keeps the ratio map."""
    decoded = DecodedImage(Image.new("RGB", (50, 20)), (40, 100))
    assert decoded.rescale_size((10, 25)) == (40, 100)
    assert decoded.input_map((10, 25)) is None


def test_a_resized_decoded_image_carries_its_map_to_the_full_image(tmp_path: Path) -> None:
    """A reduced, mirrored JPEG resized: its pixels reach the full image by the decoded grid
    composed with the resize (:meth:`DecodedImage.input_map`); a plain image keeps the ratio."""
    exif = Image.Exif()
    exif[0x0112] = 2
    path = tmp_path / "mirrored.jpg"
    Image.new("RGB", (1003, 403), (10, 200, 30)).save(path, exif=exif)
    decoded = decode_image(path, at_least=(100, 250))  # 1/4: 251x101, 1 px past on the left
    assert decoded.pixel_map == PixelMap(4.0, 4.0, -1.0, 0.0)

    resized = decoded.resized((40, 100))

    assert resized.image.size == (100, 40) and resized.full_size == (403, 1003)
    assert resized.pixel_map == decoded.input_map((40, 100))
    corners = torch.tensor([0.0, 0.0, 100.0, 40.0], dtype=torch.float64)
    full = torch.tensor([-1.0, 0.0, 1003.0, 404.0], dtype=torch.float64)  # 4 * 251 - 1, 4 * 101
    assert resized.pixel_map is not None
    torch.testing.assert_close(resized.pixel_map.boxes_to_full(corners), full)
    plain = DecodedImage(Image.new("RGB", (100, 40)), (403, 1003)).resized((20, 50))
    assert plain.pixel_map is None and plain.rescale_size((20, 50)) == (403, 1003)


def test_load_image_and_header_is_both_from_one_opening(tmp_path: Path) -> None:
    """What the data check reads: the same pixels and header as the two readers give."""
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 4x3, upright 3x4
    frames = [Image.new("RGB", (4, 3), colour) for colour in ("red", "blue")]
    frames[0].save(tmp_path / "turned.jpg", exif=exif)
    frames[0].save(tmp_path / "two.gif", save_all=True, append_images=frames[1:])
    for path in (tmp_path / "turned.jpg", tmp_path / "two.gif"):
        image, header = load_image_and_header(path)
        assert header == read_image_header(path)
        assert np.array_equal(np.asarray(image), np.asarray(load_image(path)))
        assert (header.width, header.height) == image.size


def test_unreadable_files_are_listed_with_their_reasons_and_a_run_reading_none_says_so(
    tmp_path: Path,
) -> None:
    """One wording for predict's unreadable images and a frame folder's unreadable frames."""
    errors = []
    for name in ("a.jpg", "b.png"):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(ImageReadError) as info:
            load_image(tmp_path / name)
        errors.append(info.value)
    empty = "the file is empty (0 bytes): copy or export it again"
    listed = f"{tmp_path / 'a.jpg'} ({empty}), {tmp_path / 'b.png'} ({empty})"
    assert unreadable_listing(errors) == listed
    assert (
        unreadable_listing(errors, before=["frame folder f (...)"])
        == f"frame folder f (...), {listed}"
    )
    error = none_read_error("2 images", errors)
    assert isinstance(error, ImageReadError)
    assert str(error) == f"none of the 2 images could be read: {listed}"
    # predict's inputs: the frame folders and videos lost first, as unreadable_listing gives.
    error = none_read_error("inputs", errors, before=["frame folder f (...)"])
    assert str(error) == f"none of the inputs could be read: frame folder f (...), {listed}"
