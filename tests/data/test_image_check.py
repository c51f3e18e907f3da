"""check_image_files: missing, zero-byte, not-an-image and truncated files, decoded sizes;
check_image_folder: a missing, file or empty image folder."""

from __future__ import annotations

import logging
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from sparsercnn.data import image_check
from sparsercnn.data.dataset_error import DatasetError
from sparsercnn.data.image_check import (
    IMAGE_FOLDER_FLAGS,
    ImageFolderError,
    check_image_files,
    check_image_folder,
)
from tests.synthetic_coco import WriteCoco, truncate


def entry(image_id: int, file_name: str, width: int = 64, height: int = 48) -> dict[str, Any]:
    return {"id": image_id, "file_name": file_name, "width": width, "height": height}


@pytest.fixture
def folder(write_coco: WriteCoco) -> Path:
    names = ["good.jpg", "truncated.jpg", "small.jpg"]
    data = write_coco(file_names=names, size=[(48, 64), (48, 64), (48, 32)], objects_per_image=0)
    truncate(data.image_dir / "truncated.jpg")
    (data.image_dir / "empty.jpg").write_bytes(b"")
    (data.image_dir / "text.jpg").write_text("this is not a JPEG")
    return data.image_dir


def test_decoding_finds_every_unreadable_file(folder: Path) -> None:
    images = [
        entry(1, "good.jpg"),
        entry(2, "truncated.jpg"),
        entry(3, "empty.jpg"),
        entry(4, "text.jpg"),
        entry(5, "gone.jpg"),
        entry(6, "small.jpg"),
    ]
    issues = check_image_files(images, folder, decode=True, num_threads=3).issues
    found = {(issue.image_id, issue.code, issue.severity) for issue in issues}
    assert found == {
        (2, "image_file_unreadable", "error"),
        (3, "image_file_unreadable", "error"),
        (4, "image_file_unreadable", "error"),
        (5, "image_file_missing", "error"),
        (6, "image_size_mismatch", "warning"),
    }
    by_id = {issue.image_id: issue for issue in issues}
    assert "truncated" in by_id[2].message and by_id[2].file == "truncated.jpg"
    assert "64x48" in by_id[6].message and "32x48" in by_id[6].message
    # Same findings, in the same order, whatever the number of threads.
    assert check_image_files(images, folder, decode=True, num_threads=1).issues == issues


def test_without_decoding_only_missing_files_are_found(folder: Path) -> None:
    images = [entry(1, "truncated.jpg"), entry(2, "empty.jpg"), entry(3, "gone.jpg")]
    issues = check_image_files(images, folder, decode=False).issues
    assert [(issue.image_id, issue.code) for issue in issues] == [(3, "image_file_missing")]


@pytest.mark.skipif(os.sep != "/", reason="a backslash separates folders where os.sep is one")
def test_a_file_name_with_windows_separators_says_how_to_write_it(folder: Path) -> None:
    (folder / "sub").mkdir()
    shutil.copy(folder / "good.jpg", folder / "sub" / "b.jpg")
    images = [entry(1, "sub\\b.jpg"), entry(2, "other\\c.jpg"), entry(3, "good.jpg")]
    issues = check_image_files(images, folder, decode=False).issues
    assert [(issue.image_id, issue.code) for issue in issues] == [
        (1, "image_file_missing"),
        (2, "image_file_missing"),
    ]
    assert issues[0].message.endswith(
        "(its 'file_name' has Windows separators: write it 'sub/b.jpg')"
    )
    assert "Windows" not in issues[1].message  # no such file either way: no guess


def test_a_file_name_in_another_case_than_its_file_says_how_to_write_it(tmp_path: Path) -> None:
    """A dataset made on macOS or Windows, checked on a case-sensitive file system."""
    (tmp_path / "sub").mkdir()
    for name in ("img_1.jpg", "img_3.jpg"):
        (tmp_path / "sub" / name).write_bytes(b"")
    if (tmp_path / "sub" / "IMG_1.JPG").exists():
        pytest.skip("a case-insensitive file system: the name resolves to the file")
    images = [entry(1, "sub/IMG_1.JPG"), entry(2, "sub/img_2.jpg"), entry(3, "sub/img_3.jpg")]
    issues = check_image_files(images, tmp_path, decode=False).issues
    assert [(issue.image_id, issue.code) for issue in issues] == [
        (1, "image_file_missing"),
        (2, "image_file_missing"),
    ]
    assert issues[0].message.endswith(
        ", but 'img_1.jpg' does, which differs only in case: file names are case-sensitive "
        "here; write it 'sub/img_1.jpg'"
    )
    assert "case" not in issues[1].message


def test_a_file_name_as_annotation_tools_write_it_says_how_to_write_it(tmp_path: Path) -> None:
    """Label Studio's URL-encoded names, its 'images/' prefix with images/ given as the folder,
    and paths of the machine that exported the file: each missing, with where the file is."""
    root = tmp_path / "images"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    for name in ("my photo.jpg", "a/up.jpg", "a/twice.jpg", "b/twice.jpg"):
        (root / name).write_bytes(b"")
    images = [
        entry(1, "my%20photo.jpg"),
        entry(2, "images/a/up.jpg"),
        entry(3, "/home/alice/label-studio/media/upload/4/up.jpg"),
        entry(4, "..\\..\\upload\\twice.jpg"),
        entry(5, "/elsewhere/none.jpg"),
        entry(6, "b/twice.jpg"),
    ]
    messages = [issue.message for issue in check_image_files(images, root, decode=False).issues]
    assert len(messages) == 5
    assert messages[0].endswith(
        "(its 'file_name' is URL-encoded, '%20' for a space: write it 'my photo.jpg')"
    )
    assert messages[1].endswith(
        f", but {os.fspath(tmp_path / 'images/a/up.jpg')!r} does: the 'file_name' starts with "
        f"the image folder's own name 'images'; give the image folder as {os.fspath(tmp_path)!r}, "
        "the folder the names are relative to"
    )
    assert messages[2].endswith(
        ", but a file of that name is at 'a/up.jpg' under the image folder: if it is this "
        "image (a 'file_name' with the path of the machine that exported it), write it "
        "relative to the image folder, 'a/up.jpg'"
    )
    assert messages[3].endswith(
        "; files of that name are at 'a/twice.jpg', 'b/twice.jpg' under the image folder: write "
        "the 'file_name' relative to the image folder"
    )
    # No guess, but what to do (was "does not exist" and nothing more).
    assert messages[4] == (
        "image 5: file '/elsewhere/none.jpg' does not exist: restore the file, or correct the "
        f"'file_name' (relative to the image folder {os.fspath(root)!r})"
    )


def test_an_unchanged_file_is_decoded_once_and_a_changed_one_again(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A training run checks its files before its recipe and again for its dataset."""
    decoded: list[str] = []
    real = image_check._findings

    def counting(image: dict[str, Any], path: Path) -> Any:
        decoded.append(path.name)
        return real(image, path)

    monkeypatch.setattr(image_check, "_findings", counting)
    images = [entry(11, "good.jpg"), entry(12, "small.jpg", width=32)]
    assert check_image_files(images, folder, decode=True).issues == []
    assert check_image_files(images, folder, decode=True).issues == []
    assert sorted(decoded) == ["good.jpg", "small.jpg"]
    truncate(folder / "small.jpg")  # changed on disk: decoded again, and now unreadable
    (issue,) = check_image_files(images, folder, decode=True).issues
    assert issue.code == "image_file_unreadable" and decoded[-1] == "small.jpg"


def test_the_decoded_line_counts_only_the_files_decoded_now(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A training run checks its sets up to three times (data check, recipe, dataset): the
    files are decoded once, and the log says so once, not "decoded N images" every time."""
    images = [entry(21, "good.jpg"), entry(22, "small.jpg", width=32)]
    with caplog.at_level(logging.INFO, logger="sparsercnn.data.image_check"):
        check_image_files(images, folder, decode=True, source="train.json")
        check_image_files(images, folder, decode=True, source="train.json")
        (folder / "small.jpg").write_bytes((folder / "good.jpg").read_bytes())  # changed
        check_image_files(images, folder, decode=True, source="train.json")
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(lines) == 2, lines
    assert lines[0].startswith("train.json: decoded 2 images in ")
    assert lines[1].startswith("train.json: decoded 1 image in ")
    assert lines[1].endswith("(1 other unchanged since its check)")


@pytest.mark.parametrize(
    ("kind", "problem"),
    [("missing", "does not exist"), ("file", "is a file, not a folder"), ("empty", "is empty")],
)
def test_a_wrong_image_folder_is_one_line_naming_it(
    tmp_path: Path, kind: str, problem: str
) -> None:
    root = tmp_path / "images"
    if kind == "file":
        root.write_text("not a folder")
    elif kind == "empty":
        root.mkdir()
    images = [entry(1, "a.jpg"), entry(2, "b.jpg")]
    with pytest.raises(DatasetError) as raised:
        check_image_folder(root, images, source="train.json")
    message = str(raised.value)
    assert "\n" not in message
    assert f"image folder {str(root)!r} of train.json" in message and problem in message
    assert "--images" in message and "'file_name' entries are relative to" in message
    # An entry point that knows the flag names it alone; a copy for another rank is the same.
    error = raised.value
    assert isinstance(error, ImageFolderError) and error.image_dir == root
    named = str(error.given_as("--val-images"))
    assert named == message.replace(f"(the {IMAGE_FOLDER_FLAGS} path)", "(the --val-images path)")
    copy = pickle.loads(pickle.dumps(error.given_as("--val-images")))
    assert type(copy) is ImageFolderError and str(copy) == named


def test_an_empty_folder_is_fine_when_no_name_points_into_it(tmp_path: Path) -> None:
    """Absolute and ``../`` names do not need the folder's content; nor does a file without
    images."""
    root = tmp_path / "empty"
    root.mkdir()
    outside = [entry(1, str(tmp_path / "a.jpg")), entry(2, "../b.jpg")]
    check_image_folder(root, outside, source="x.json")
    check_image_folder(root, [], source="x.json")


def test_a_multi_frame_file_is_a_warning_naming_its_frames(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (64, 48), colour) for colour in ("red", "blue", "green")]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:])
    (issue,) = check_image_files([entry(7, "clip.gif")], tmp_path, decode=True).issues
    assert (issue.code, issue.severity, issue.image_id) == ("image_multi_frame", "warning", 7)
    assert "'clip.gif'" in issue.message and "3 frames" in issue.message
    assert "only the first is read" in issue.message


def test_a_json_of_the_sideways_pixels_of_an_exif_turned_file_is_an_error(
    tmp_path: Path,
) -> None:
    """Boxes drawn on the stored pixels would land elsewhere on the upright image."""
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 64x48, read upright as 48x64
    Image.new("RGB", (64, 48)).save(tmp_path / "phone.jpg", exif=exif)
    (issue,) = check_image_files([entry(8, "phone.jpg")], tmp_path, decode=True).issues
    assert (issue.code, issue.severity, issue.image_id) == ("image_exif_turned", "error", 8)
    assert "EXIF orientation 6" in issue.message and "48x64" in issue.message
    assert "-Orientation=1" in issue.message and "swap the JSON's width and height" in issue.message
    # The JSON of the upright image is right.
    assert check_image_files([entry(9, "phone.jpg", 48, 64)], tmp_path, decode=True).issues == []


def test_a_swapped_json_size_of_a_file_turned_by_180_degrees_is_a_plain_mismatch(
    tmp_path: Path,
) -> None:
    """Orientation 3 turns the pixels upside down, not sideways: the stored size is the upright
    one, so a JSON with width and height swapped is no "stored size" of a turned file."""
    exif = Image.Exif()
    exif[0x0112] = 3
    Image.new("RGB", (64, 48)).save(tmp_path / "upside_down.jpg", exif=exif)
    images = [entry(8, "upside_down.jpg", 48, 64)]
    (issue,) = check_image_files(images, tmp_path, decode=True).issues
    assert (issue.code, issue.severity) == ("image_size_mismatch", "warning")
    assert "the file is 64x48 after EXIF orientation" in issue.message
    # Worded for every command that shows it: ``eval`` trains nothing. Was: only "correct the
    # JSON's 'width' and 'height'", which for a file enlarged after annotation (its boxes still
    # fit) hid the one warning while the boxes trained at the wrong scale.
    assert issue.message.endswith(
        "its boxes are checked against the file's size (and clipped to it for training): if they "
        "were drawn on the file as it is, correct the JSON's 'width' and 'height'; if the boxes "
        "were drawn on an image of the JSON's size, the file was resized since; rescale the "
        "boxes, or restore the file"
    )


def test_each_file_is_opened_once_and_its_decoded_size_returned(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The header (frames, EXIF) and the pixels come from one opening of the file."""
    opened: list[str] = []
    real_open = Image.open

    def counting_open(path: Any, *args: Any, **kwargs: Any) -> Image.Image:
        opened.append(Path(path).name)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    images = [entry(31, "good.jpg"), entry(32, "small.jpg"), entry(33, "truncated.jpg")]
    found = check_image_files(images, folder, decode=True, num_threads=1)
    assert sorted(opened) == ["good.jpg", "small.jpg", "truncated.jpg"]
    # Every check of before: the size mismatch and the truncated file.
    assert [(issue.image_id, issue.code) for issue in found.issues] == [
        (32, "image_size_mismatch"),
        (33, "image_file_unreadable"),
    ]
    assert found.sizes == {31: (64, 48), 32: (32, 48)}  # (width, height); none for 33
    assert check_image_files(images, folder, decode=False).sizes == {}


def test_image_files_the_json_does_not_name_are_one_info(tmp_path: Path) -> None:
    """Named: a listed file, one through a subfolder, a Windows-style name and a symlink to a
    listed file; passed over: non-images, hidden files and the files of hidden folders."""
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    (root / ".cache").mkdir()
    for name in (
        "a.jpg",
        "sub/b.jpg",
        "sub/c.png",
        "d.JPEG",
        "e.png",
        ".hidden.jpg",
        ".cache/f.jpg",
    ):
        Image.new("RGB", (8, 8)).save(root / name, format="PNG")
    (root / "notes.txt").write_text("x")
    (root / "g.jpg").write_bytes(b"")  # empty, but an image by its name
    (root / "link.jpg").symlink_to(root / "a.jpg")
    listed = ["a.jpg", "sub\\b.jpg", "./e.png", "link.jpg", 7, None]
    issue = image_check.find_unlisted_images(root, listed, source="train.json")
    assert issue is not None
    assert (issue.code, issue.severity, issue.image_id) == ("unlisted_image_files", "info", None)
    assert issue.message.startswith(
        f"3 image files under {str(root)!r} are not in train.json (e.g. 'd.JPEG', 'g.jpg', "
        "'sub/c.png'): "
    )
    every = ["a.jpg", "sub/b.jpg", "sub/c.png", "d.JPEG", "e.png", "g.jpg"]
    assert image_check.find_unlisted_images(root, every, source="train.json") is None
    # Names that do not point into the folder: it is not where the images are.
    outside = [str(tmp_path / "elsewhere.jpg"), "../x.jpg"]
    assert image_check.find_unlisted_images(root, outside, source="train.json") is None


def test_many_unlisted_image_files_are_named_capped_with_a_count(tmp_path: Path) -> None:
    root = tmp_path / "images"
    root.mkdir()
    for i in range(8):
        (root / f"{i}.jpg").write_bytes(b"")  # images by their names
    issue = image_check.find_unlisted_images(root, ["0.jpg"], source="train.json")
    assert issue is not None
    assert "(e.g. '1.jpg', '2.jpg', '3.jpg', '4.jpg', '5.jpg' ... (7 in all)): " in issue.message


def test_a_file_listed_through_a_folder_link_is_not_unlisted(tmp_path: Path) -> None:
    root = tmp_path / "images"
    (root / "real").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "real" / "a.png")
    (root / "linked").symlink_to(root / "real", target_is_directory=True)
    assert image_check.find_unlisted_images(root, ["linked/a.png"], source="x.json") is None


def _resolve_names_in_any_case(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Make the file system resolve names under ``root`` (whose files are named in lower case)
    in any case, as macOS and Windows do, whatever the host's file system."""
    real_stat = os.stat

    def stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if isinstance(path, str | os.PathLike):
            text, prefix = os.fspath(path), f"{root}{os.sep}"
            path = prefix + text[len(prefix) :].lower() if text.startswith(prefix) else text
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)


def test_a_name_the_file_system_resolves_in_another_case_names_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'IMG_1.JPG' in the JSON is the file img_1.jpg on a case-insensitive file system: it is
    neither missing nor unlisted; a file no name resolves to still is."""
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    for name in ("img_1.jpg", "sub/img_2.jpg", "img_3.jpg"):
        (root / name).write_bytes(b"")  # images by their names
    _resolve_names_in_any_case(monkeypatch, root)
    images = [entry(1, "IMG_1.JPG"), entry(2, "Sub/Img_2.jpg")]
    assert check_image_files(images, root, decode=False).issues == []
    names = [image["file_name"] for image in images]
    issue = image_check.find_unlisted_images(root, names, source="train.json")
    assert issue is not None
    assert issue.message.startswith(
        f"1 image file under {str(root)!r} is not in train.json (e.g. 'img_3.jpg'): "
    )
    every = [*names, "img_3.JPG"]
    assert image_check.find_unlisted_images(root, every, source="train.json") is None


def test_names_that_resolve_to_one_file_are_a_duplicate_file_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'a.jpg' and 'A.jpg' (or './a.jpg') in the JSON are one file on macOS and Windows, trained
    as two images: warned about as the JSON check warns about equal names, naming both ids and
    names. Equal names are left to the JSON check; names of two files are no duplicate."""
    root = tmp_path / "images"
    root.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (root / name).write_bytes(b"")  # images by their names
    images = [entry(1, "a.jpg"), entry(2, "b.jpg"), entry(3, "A.jpg"), entry(4, "./a.jpg")]
    images.append(entry(5, "a.jpg"))
    if (root / "A.jpg").is_file():
        pytest.skip("a case-insensitive file system: os.stat is not the one to patch")
    _resolve_names_in_any_case(monkeypatch, root)
    issues = check_image_files(images, root, decode=False).issues
    assert [(i.severity, i.code, i.image_id, i.file) for i in issues] == [
        ("warning", "duplicate_file_name", 3, "A.jpg"),
        ("warning", "duplicate_file_name", 4, "./a.jpg"),
    ]
    assert issues[0].message.startswith(
        "images 1 ('a.jpg') and 3 ('A.jpg') name one file, as the file system resolves them: "
    )
    assert "trained and evaluated as two images; remove one entry" in issues[0].message
    monkeypatch.undo()  # a case-sensitive file system: 'A.jpg' is a file of its own
    (root / "A.jpg").write_bytes(b"")
    assert [i.image_id for i in check_image_files(images, root, decode=False).issues] == [4]


def test_an_entry_without_a_size_gets_its_file_s_after_exif_orientation(tmp_path: Path) -> None:
    """Missing, 0 or null: nothing to compare with, so no issue, even for an EXIF-turned file;
    its size is returned (upright) for the boxes, and a check again is remembered."""
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 64x48, read upright as 48x64
    Image.new("RGB", (64, 48)).save(tmp_path / "phone.jpg", exif=exif)
    Image.new("RGB", (32, 48)).save(tmp_path / "small.jpg")
    images = [
        {"id": 1, "file_name": "phone.jpg"},
        {"id": 2, "file_name": "small.jpg", "width": 0, "height": 0},
        {"id": 3, "file_name": "phone.jpg", "width": None, "height": 64},
    ]
    found = check_image_files(images, tmp_path, decode=True)
    assert found.issues == [] and found.sizes == {1: (48, 64), 2: (32, 48), 3: (48, 64)}
    assert check_image_files(images, tmp_path, decode=True) == found


def test_half_a_size_is_checked_against_the_file_as_a_whole_one_is(tmp_path: Path) -> None:
    """The half given is compared (a mismatch warning; an EXIF-turned file's stored half, an
    error); the file's whole size is returned. Was: the file's size taken silently."""
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 64x48, read upright as 48x64
    Image.new("RGB", (64, 48)).save(tmp_path / "phone.jpg", exif=exif)
    Image.new("RGB", (32, 48)).save(tmp_path / "small.jpg")
    agrees = {"id": 1, "file_name": "small.jpg", "width": None, "height": 48}
    assert check_image_files([agrees], tmp_path, decode=True).issues == []
    # The same file and id with another half: checked anew, not remembered from the above.
    wide = {"id": 1, "file_name": "small.jpg", "width": 40, "height": None}
    turned = {"id": 2, "file_name": "phone.jpg", "width": 64}
    found = check_image_files([wide, turned], tmp_path, decode=True)
    assert found.sizes == {1: (32, 48), 2: (48, 64)}
    assert [(i.code, i.image_id) for i in found.issues] == [
        ("image_size_mismatch", 1),
        ("image_exif_turned", 2),
    ]
    mismatch, sideways = (issue.message for issue in found.issues)
    assert "the JSON gives width 40 and no height but the file is 32x48 after EXIF" in mismatch
    assert "the JSON gives width 64 and no height, the stored size" in sideways
    assert sideways.endswith("if on the upright image, write its 'width' 48 and 'height' 64")


def test_a_folder_whose_files_are_mostly_of_other_sizes_is_called_the_wrong_one(
    tmp_path: Path,
) -> None:
    """The folder of another split whose exporter numbers its files alike (``000000.jpg``...):
    every file is found, of another size; one error first says the folder may be the wrong one.
    Was: only a size warning per file, advising to correct the JSON or rescale the boxes."""
    for index in range(4):
        Image.new("RGB", (32, 24)).save(tmp_path / f"{index:06d}.jpg")
    images = [entry(index + 1, f"{index:06d}.jpg") for index in range(4)]  # 64x48
    issues = check_image_files(images, tmp_path, decode=True, source="val.json").issues
    assert [(issue.code, issue.severity) for issue in issues] == [
        ("wrong_image_folder", "error"),
        *[("image_size_mismatch", "warning")] * 4,
    ]
    assert issues[0].image_id is None and issues[0].file is None
    assert issues[0].message.startswith(
        f"image folder {str(tmp_path)!r} may be the wrong one for val.json: 4 of the 4 image "
        "files differ in size from its 'width' and 'height' (e.g. '000000.jpg': JSON 64x48, "
        f"file 32x24): give the folder of its images ({IMAGE_FOLDER_FLAGS}); if this is it, "
    )
    # A few resized files among many, or too few files to tell, leave the folder be.
    Image.new("RGB", (64, 48)).save(tmp_path / "000002.jpg")
    Image.new("RGB", (64, 48)).save(tmp_path / "000003.jpg")
    for few in (images, images[:2]):
        codes = [issue.code for issue in check_image_files(few, tmp_path, decode=True).issues]
        assert codes == ["image_size_mismatch"] * 2


def test_a_folder_that_lacks_most_of_the_files_is_called_the_wrong_one(tmp_path: Path) -> None:
    """Was: an error per missing file and "pass --skip-invalid", the folder named only where
    none of the files is there. Files there under another spelling do not count."""
    Image.new("RGB", (64, 48)).save(tmp_path / "a.jpg")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.jpg").write_bytes(b"")
    images = [entry(1, "a.jpg"), entry(2, "b.jpg"), entry(3, "c.jpg"), entry(4, "/x/d.jpg")]
    issues = check_image_files(images, tmp_path, decode=False).issues
    assert [issue.code for issue in issues] == ["image_file_missing"] * 3  # 2 of 4, one hinted
    images.append(entry(5, "e.jpg"))
    issues = check_image_files(images, tmp_path, decode=True, source="train.json").issues
    assert [issue.code for issue in issues] == ["wrong_image_folder", *["image_file_missing"] * 4]
    assert issues[0].message == (
        f"image folder {str(tmp_path)!r} may be the wrong one for train.json: 3 of its 5 image "
        "files do not exist in it (e.g. 'b.jpg'): give the folder that its 'file_name' entries "
        f"are relative to ({IMAGE_FOLDER_FLAGS})"
    )
