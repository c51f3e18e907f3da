"""Containers are read safely: tensors or numpy arrays in, pickles and code execution refused."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sparsercnn.model_file import BACKBONE_FORMAT_NAME
from sparsercnn.safetensors_file import write_safetensors
from sparsercnn.weights import readers
from sparsercnn.weights.download import fetch
from sparsercnn.weights.download_lock import recorded_url
from sparsercnn.weights.readers import detect_layout, read_checkpoint
from tests.damaged_archive import flip_a_byte_of_the_largest_record
from tests.damaged_safetensors import UnreadableTensorData, flip_a_tensor_byte
from tests.tiny_model import write_tiny_model_file
from tests.weights.reference_checkpoints import (
    COCO_CLASSES,
    ReferencePair,
    save_mmdet,
    save_official,
)
from tests.wrapped_safe_open import WrappedSafeOpen


@pytest.mark.parametrize(("wrap", "name"), [(True, "model.pth"), (False, "model.safetensors")])
def test_official_flat_or_wrapped(
    tmp_path: Path, tiny_pair: ReferencePair, wrap: bool, name: str
) -> None:
    """A torch.save file is read by its content, whatever its name says."""
    path = save_official(tmp_path / name, tiny_pair.official, wrap=wrap)
    checkpoint = read_checkpoint(path)
    assert checkpoint.layout == "official"
    assert checkpoint.class_names is None
    assert checkpoint.tensors.keys() == tiny_pair.official.keys()
    assert all(torch.equal(checkpoint.tensors[k], v) for k, v in tiny_pair.official.items())


def test_mmdet_container_with_meta(tmp_path: Path, tiny_pair: ReferencePair) -> None:
    checkpoint = read_checkpoint(save_mmdet(tmp_path / "mm.pth", tiny_pair.mmdet))
    assert checkpoint.layout == "mmdet"
    assert checkpoint.class_names == list(COCO_CLASSES)
    assert checkpoint.tensors["backbone.bn1.num_batches_tracked"].dtype == torch.int64


def test_numpy_scalars_in_mmdet_meta(tmp_path: Path, tiny_pair: ReferencePair) -> None:
    path = tmp_path / "mm.pth"
    meta = {"CLASSES": COCO_CLASSES, "hook_msgs": {"best_score": np.float64(0.428)}}
    torch.save({"meta": meta, "state_dict": tiny_pair.mmdet}, path)
    assert read_checkpoint(path).layout == "mmdet"


def test_numpy_arrays_become_tensors(tmp_path: Path, tiny_pair: ReferencePair) -> None:
    arrays = {k: v.numpy() for k, v in tiny_pair.official.items()}
    path = tmp_path / "from_pkl.pth"
    torch.save({"model": arrays, "__author__": "someone"}, path)
    checkpoint = read_checkpoint(path)
    assert all(torch.equal(checkpoint.tensors[k], v) for k, v in tiny_pair.official.items())


def test_numpy_1x_module_names_are_accepted(tmp_path: Path) -> None:
    """Files pickled under numpy 1.x name ``numpy.core.multiarray._reconstruct``."""
    arrays = {"init_proposal_boxes.weight": np.arange(8, dtype=np.float32).reshape(2, 4)}
    path = tmp_path / "legacy.pth"
    torch.save(arrays, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    assert b"numpy._core.multiarray" in data  # numpy 2 wrote it; rewrite as numpy 1 would
    path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    checkpoint = read_checkpoint(path)
    assert torch.equal(
        checkpoint.tensors["init_proposal_boxes.weight"], torch.arange(8.0).view(2, 4)
    )


def test_ddp_prefix_is_stripped(tmp_path: Path, tiny_pair: ReferencePair) -> None:
    path = tmp_path / "ddp.pth"
    torch.save({f"module.{k}": v for k, v in tiny_pair.official.items()}, path)
    assert read_checkpoint(path).tensors.keys() == tiny_pair.official.keys()


class _RunsCode:
    """Pickles as a call of ``exec``: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def test_a_checkpoint_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"conv1.weight": torch.zeros(1), "payload": _RunsCode(marker)}}, path)
    with pytest.raises(ValueError, match=r"evil\.pth.*safe loading.*Python object exec"):
        read_checkpoint(path)
    assert not marker.exists()


@pytest.mark.filterwarnings("error")
def test_a_plain_pickle_is_refused_without_being_opened(tmp_path: Path) -> None:
    """Refused with one message: torch's warning about the pickle protocol is not shown."""
    marker = tmp_path / "pwned"
    path = tmp_path / "model_final.pkl"
    path.write_bytes(pickle.dumps({"model": _RunsCode(marker)}))
    with pytest.raises(ValueError, match=r"model_final\.pkl is a plain Python pickle"):
        read_checkpoint(path)
    # Told by its content: under a .pth name it is no torch.save file either.
    renamed = path.rename(tmp_path / "model_final.pth")
    with pytest.raises(ValueError, match=r"model_final\.pth is a plain Python pickle .* not read"):
        read_checkpoint(renamed)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"model_final\.pkl is empty; download or copy it again$"),
        (
            b"<!DOCTYPE html>\n<title>404</title>",
            r"model_final\.pkl is a text file, not a checkpoint \(it starts '<!DOCTYPE html>'\)",
        ),
    ],
)
def test_a_pkl_name_alone_does_not_make_a_pickle(
    tmp_path: Path, content: bytes, message: str
) -> None:
    """An empty file or a saved web page under a .pkl name was refused as "a plain Python
    pickle", not told to be fetched again: a pickle is told by its content only."""
    path = tmp_path / "model_final.pkl"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_checkpoint(path)


def test_a_file_is_opened_once_for_its_first_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its first bytes tell its kind and, if torch.load fails, why: they were read anew by each
    test (four opens of a text file); its download record was read twice for one message."""
    path = tmp_path / "model.pth"
    path.write_text("<html><body>Sign in to continue</body></html>")
    path.with_name("model.pth.url").write_text("https://example.org/model.pth\n")
    opened: list[object] = []
    records: list[Path] = []

    def counted_open(file: Path, *args: Any, **kwargs: Any) -> IO[Any]:
        opened.append(file)
        return open(file, *args, **kwargs)

    def counted_record(dst: Path) -> str | None:
        records.append(dst)
        return recorded_url(dst)

    monkeypatch.setattr(readers, "open", counted_open, raising=False)
    monkeypatch.setattr(readers, "recorded_url", counted_record)
    with pytest.raises(ValueError, match=r"is a text file.*delete it"):
        read_checkpoint(path)
    assert opened == [path, path]  # its first bytes, then torch.load
    assert records == [path]


def test_a_checkpoint_is_told_by_its_content_not_its_name(
    tmp_path: Path, tiny_pair: ReferencePair
) -> None:
    """A torch.save file named .pkl is read (was refused as a pickle), and so is one in
    torch's legacy format, a pickle that starts with torch's magic number."""
    named_pkl = save_official(tmp_path / "model_final.pkl", tiny_pair.official)
    assert read_checkpoint(named_pkl).layout == "official"
    legacy = tmp_path / "legacy.pth"
    torch.save({"conv1.weight": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    assert read_checkpoint(legacy, layout="torchvision").tensors["conv1.weight"].tolist() == [1, 1]


def test_a_zip_archive_of_something_else_is_not_called_damaged(
    tmp_path: Path, tiny_files: dict[str, Path]
) -> None:
    """A whole zip that torch.save did not write (e.g. a checkpoint zipped for mailing)."""
    path = tmp_path / "model.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(tiny_files["official"], "weights/r18_official.pth")
    with pytest.raises(ValueError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"{path} is a zip archive but not a PyTorch checkpoint")
    assert "damaged" not in message and "give the checkpoint itself" in message


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "notes.pth"
    path.write_bytes(b"\x01\x02 binary, neither a zip archive nor a pickle")
    with pytest.raises(ValueError, match=r"notes\.pth could not be read"):
        read_checkpoint(path)
    with pytest.raises(FileNotFoundError, match=r"missing\.pth"):
        read_checkpoint(tmp_path / "missing.pth")
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match=r"list\.pth holds a list"):
        read_checkpoint(path)
    path = tmp_path / "mixed.pth"
    torch.save({"conv1.weight": torch.zeros(1), "epoch": 3}, path)
    with pytest.raises(ValueError, match=r"'epoch' is a int, not a tensor"):
        read_checkpoint(path)


def test_a_text_file_is_named_as_text(tmp_path: Path) -> None:
    """The web page a failed download saves (or a JSON given by mistake) is not blamed on safe
    loading; a multi-byte character cut by the bytes looked at is still text."""
    path = tmp_path / "model.pth"
    path.write_text("<!DOCTYPE html>\n<html><title>404 Not Found</title>")
    with pytest.raises(
        ValueError,
        match=r"model\.pth is a text file, not a checkpoint \(it starts "
        r"'<!DOCTYPE html>'\); give the checkpoint file, or download it again",
    ):
        read_checkpoint(path)
    path.write_text("é" * 100)
    with pytest.raises(ValueError, match="is a text file"):
        read_checkpoint(path)


def test_safetensors_state_dict_and_layout_detection(
    tmp_path: Path, tiny_pair: ReferencePair
) -> None:
    path = tmp_path / "mm.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_pair.mmdet.items()}, str(path))
    assert read_checkpoint(path).layout == "mmdet"
    assert detect_layout(["conv1.weight", "layer1.0.conv1.weight", "fc.weight"], "x") == (
        "torchvision"
    )
    with pytest.raises(ValueError, match=r"match no known layout: it is no Sparse R-CNN") as info:
        detect_layout(["foo.weight"], "x")
    # Was: "name its layout with `sparsercnn convert SRC --from LAYOUT`", which cannot help.
    assert "--from" not in str(info.value) and "wrapper" not in str(info.value)
    with pytest.raises(ValueError, match=r"several layouts.*sparsercnn convert SRC --from"):
        detect_layout(["backbone.bottom_up.stem.conv1.weight", "neck.x"], "x")


def test_keys_under_a_wrapper_s_prefix_are_named_with_the_fix() -> None:
    """A Lightning module's state dict (``model.head.stages...``) fits ours under ``model.``."""
    keys = ["model.head.stages.0.cls.weight", "model.fpn.inner.0.weight"]
    with pytest.raises(ValueError, match="no known layout") as info:
        detect_layout(keys, "x")
    assert "every key starts with 'model.', as a training wrapper's do" in str(info.value)
    assert "its keys without 'model.'" in str(info.value)


def test_a_safetensors_file_without_tensors_is_refused_with_a_value_error(
    tmp_path: Path,
) -> None:
    """Was: IndexError from the wrapper hint (``keys[0]`` of no keys), a traceback instead of
    the message naming the file; then "the key names () match no known layout", and with a
    forced layout no error here (``convert --from official``: "holds only a ResNet"). Now it
    says the file holds no tensors, as a .pth's "holds an empty state dict"."""
    path = tmp_path / "empty.safetensors"
    save_file({}, str(path), metadata={"note": "no tensors"})
    for layout in (None, "official"):
        with pytest.raises(ValueError) as info:
            read_checkpoint(path, layout=layout)
        assert str(info.value) == f"{path} holds no tensors"


def test_forced_layout_skips_detection(tmp_path: Path) -> None:
    path = tmp_path / "odd.pth"
    torch.save({"foo.weight": torch.zeros(1)}, path)
    assert read_checkpoint(path, layout="official").layout == "official"
    with pytest.raises(ValueError, match="unknown checkpoint layout"):
        read_checkpoint(path, layout="detectron")


def test_a_damaged_file_says_so(tmp_path: Path, tiny_files: dict[str, Path]) -> None:
    """A download cut short or an empty file is to be fetched again: not a safety refusal, and
    no sentence of torch's message cut in the middle."""
    data = tiny_files["official"].read_bytes()
    path = tmp_path / "cut.pth"
    for end in (len(data) // 2, len(data) - 100):
        path.write_bytes(data[:end])
        with pytest.raises(ValueError) as info:
            read_checkpoint(path)
        message = str(info.value)
        assert message.startswith(f"{path} is a damaged or truncated PyTorch checkpoint (")
        assert message.endswith("); download or copy it again")
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"cut\.pth is empty; download or copy"):
        read_checkpoint(path)


def test_a_checkpoint_damaged_inside_a_tensor_is_refused(
    tmp_path: Path, tiny_files: dict[str, Path]
) -> None:
    """torch.load does not check the CRC-32 of the archive's records: a byte changed in a
    tensor's data was loaded as a weight (and converted without a word)."""
    path = tmp_path / "bad_copy.pth"
    shutil.copyfile(tiny_files["official"], path)
    record = flip_a_byte_of_the_largest_record(path)
    with pytest.raises(
        ValueError,
        match=rf"bad_copy\.pth is a damaged PyTorch checkpoint: its record {record} "
        "does not match the checksum stored with it; download or copy it again",
    ):
        read_checkpoint(path)


def test_a_checkpoint_saved_without_checksums_is_read(tmp_path: Path) -> None:
    """torch.save stores 0 for every record after set_crc32_options(False): nothing to check."""
    path = tmp_path / "no_sums.pth"
    torch.serialization.set_crc32_options(False)
    try:
        torch.save({"conv1.weight": torch.ones(3)}, path)
    finally:
        torch.serialization.set_crc32_options(True)
    with zipfile.ZipFile(path) as archive:
        assert {info.CRC for info in archive.infolist()} == {0}
    assert read_checkpoint(path, layout="torchvision").tensors["conv1.weight"].sum() == 3


def test_a_damaged_download_in_the_cache_is_to_be_deleted(
    tmp_path: Path, tiny_files: dict[str, Path]
) -> None:
    """A cached download is used again by the next run: "download it again" cannot help, deleting
    it does."""
    url = "https://example.org/model.pth"
    path = tmp_path / "model.pth"
    path.with_name("model.pth.url").write_text(url + "\n")
    advice = f"it was downloaded from {url}: delete it, and the next run downloads it again"
    path.write_bytes(tiny_files["official"].read_bytes()[:1000])
    with pytest.raises(ValueError, match=rf"damaged or truncated PyTorch checkpoint .*; {advice}$"):
        read_checkpoint(path)
    path.write_text("<html><body>Sign in to continue</body></html>")
    with pytest.raises(ValueError, match=rf"the web page a failed download saved, {advice}$"):
        read_checkpoint(path)


def test_a_safetensors_file_cut_in_its_header_is_damaged(
    tmp_path: Path, tiny_pair: ReferencePair
) -> None:
    """Cut inside the JSON header, the file is still told to be a safetensors file."""
    whole = tmp_path / "whole.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_pair.mmdet.items()}, str(whole))
    path = tmp_path / "cut.safetensors"
    path.write_bytes(whole.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"cut\.safetensors: damaged or truncated safetensors"):
        read_checkpoint(path)


def test_a_model_file_damaged_inside_a_tensor_is_refused(tmp_path: Path) -> None:
    """What `convert` and --init-from read: our model file, checked by its CRC-32."""
    path = write_tiny_model_file(tmp_path / "model.safetensors")
    assert read_checkpoint(path).layout == "ours"
    flip_a_tensor_byte(path)
    with pytest.raises(ValueError, match=r"model\.safetensors is damaged: its tensor data do not"):
        read_checkpoint(path)


def test_a_damaged_model_file_in_the_cache_is_to_be_deleted(tmp_path: Path) -> None:
    """Was: "copy, download or save it again" for a model file downloaded into the cache (by
    convert or --init-from URL), which the next run takes from the cache again, damaged."""
    url = "https://example.org/model.safetensors"
    path = write_tiny_model_file(tmp_path / "model.safetensors")
    path.with_name("model.safetensors.url").write_text(url + "\n")
    flip_a_tensor_byte(path)
    with pytest.raises(ValueError) as info:
        read_checkpoint(path)
    assert f"; it was downloaded from {url}: delete it, and the next run downloads it again. " in (
        str(info.value)
    )


def test_a_cached_model_file_whose_tensor_data_cannot_be_read_is_to_be_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: "damaged or not a model file ...; copy it again, or convert official/mmdetection
    checkpoints with `sparsercnn convert`" (the model file's own advice, given inside the
    readers) for a model file downloaded into the cache whose tensor data safetensors could not
    read (a disk error), which the next run takes from the cache again."""
    url = "https://example.org/model.safetensors"
    path = write_tiny_model_file(tmp_path / "model.safetensors")
    path.with_name("model.safetensors.url").write_text(url + "\n")

    monkeypatch.setattr(readers, "safe_open", UnreadableTensorData)
    with pytest.raises(ValueError) as info:
        read_checkpoint(path)
    assert str(info.value) == (
        f"{path}: damaged or truncated safetensors file ([Errno 5] Input/output error); it was "
        f"downloaded from {url}: delete it, and the next run downloads it again"
    )


def test_a_backbone_file_damaged_inside_a_tensor_is_refused(
    tmp_path: Path, tiny_pair: ReferencePair
) -> None:
    """What --backbone-weights reads: a backbone file `convert` wrote, with its CRC-32; a cached
    download of one is to be deleted."""
    resnet = {k: v.contiguous() for k, v in tiny_pair.mmdet.items() if k.startswith("backbone.")}
    path = tmp_path / "resnet.safetensors"
    write_safetensors(path, resnet, {"format": BACKBONE_FORMAT_NAME})
    assert read_checkpoint(path).layout == "ours"
    flip_a_tensor_byte(path, 0.0)
    with pytest.raises(ValueError, match=r"resnet\.safetensors is damaged: .*; download or copy"):
        read_checkpoint(path)
    url = "https://example.org/resnet.safetensors"
    path.with_name("resnet.safetensors.url").write_text(url + "\n")
    with pytest.raises(ValueError, match=rf"is damaged: .*; it was downloaded from {url}: delete"):
        read_checkpoint(path)


def test_a_folder_is_named_as_a_folder(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match="is a folder; give the checkpoint file in it"):
        read_checkpoint(tmp_path)


def test_mmdet_v3_class_names(tmp_path: Path, tiny_pair: ReferencePair) -> None:
    """mmdetection 3.x keeps the class names in ``meta["dataset_meta"]["classes"]``."""
    path = tmp_path / "mm3.pth"
    meta = {"dataset_meta": {"classes": COCO_CLASSES, "palette": [(220, 20, 60)] * 80}}
    torch.save({"meta": meta, "state_dict": tiny_pair.mmdet}, path)
    assert read_checkpoint(path).class_names == list(COCO_CLASSES)


def test_an_intact_backbone_file_looks_up_no_download_record(
    tmp_path: Path, tiny_pair: ReferencePair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: the advice for a damaged download (which reads the file's ``.url`` record) was built
    for every backbone file read, damaged or not."""
    resnet = {k: v.contiguous() for k, v in tiny_pair.mmdet.items() if k.startswith("backbone.")}
    path = write_safetensors(tmp_path / "resnet.safetensors", resnet, {})
    looked_up: list[Path] = []
    monkeypatch.setattr(readers, "recorded_url", lambda path: looked_up.append(path))
    assert read_checkpoint(path, layout="ours").layout == "ours"
    assert looked_up == []


def _count_reads(monkeypatch: pytest.MonkeyPatch, path: Path) -> Callable[[], float]:
    """Count what Python's ``open`` reads of ``path`` from now on: the function returns it,
    in multiples of the file's size (torch.load's and safetensors' maps of a file are no reads:
    their pages are those a check read before)."""
    read_bytes = 0
    real_open = open

    def counting_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        if isinstance(file, (str, os.PathLike)) and Path(file) == path:
            read, readinto = handle.read, handle.readinto

            def counted_read(*size: int) -> bytes:
                nonlocal read_bytes
                data = read(*size)
                read_bytes += len(data)
                return data

            def counted_readinto(buffer: Any) -> int:
                nonlocal read_bytes
                count = readinto(buffer)
                read_bytes += count
                return count

            handle.read, handle.readinto = counted_read, counted_readinto
        return handle

    monkeypatch.setattr("builtins.open", counting_open)
    monkeypatch.setattr("io.open", counting_open)
    return lambda: read_bytes / path.stat().st_size


@pytest.mark.parametrize("layout", ["official", "mmdet"])
def test_a_checkpoint_is_read_once(
    tiny_files: dict[str, Path],
    tiny_pair: ReferencePair,
    monkeypatch: pytest.MonkeyPatch,
    layout: str,
) -> None:
    """Was: read whole twice, for the records' CRC-32 and by torch.load (then a third time to
    copy the tensors into a model). The check reads it; torch.load maps the pages it read."""
    path, tensors = tiny_files[layout], getattr(tiny_pair, layout)
    reads = _count_reads(monkeypatch, path)
    checkpoint = read_checkpoint(path)
    assert all(torch.equal(checkpoint.tensors[key], value) for key, value in tensors.items())
    assert 0.9 < reads() < 1.1


def test_a_checksummed_checkpoint_is_read_once(
    tmp_path: Path,
    tiny_files: dict[str, Path],
    tiny_pair: ReferencePair,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Was: read whole twice, by fetch for the SHA-256 its mmdetection name carries, then for
    the records' CRC-32, which a matched SHA-256 makes redundant."""
    digest = hashlib.sha256(tiny_files["mmdet"].read_bytes()).hexdigest()
    path = Path(shutil.copy(tiny_files["mmdet"], tmp_path / f"sparse_rcnn_r50-{digest[:8]}.pth"))
    reads = _count_reads(monkeypatch, path)
    checkpoint = read_checkpoint(fetch(path))
    assert all(torch.equal(checkpoint.tensors[k], v) for k, v in tiny_pair.mmdet.items())
    assert 0.9 < reads() < 1.1


def _count_safe_opens(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    """Count what the readers' and the model file's ``safe_open`` open from now on: the lists
    returned get each file opened, and each tensor fetched."""
    opened: list[str] = []
    fetched: list[str] = []

    class CountingSafeOpen(WrappedSafeOpen):
        def __init__(self, path: str, framework: str) -> None:
            opened.append(path)
            super().__init__(path, framework)

        def get_tensor(self, key: str) -> torch.Tensor:
            fetched.append(key)
            return super().get_tensor(key)

    monkeypatch.setattr("sparsercnn.model_file.safe_open", CountingSafeOpen)
    monkeypatch.setattr("sparsercnn.weights.readers.safe_open", CountingSafeOpen)
    return opened, fetched


def test_a_checksummed_model_file_is_read_once_for_its_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model file given to --init-from with its SHA-256: read once, for the SHA-256 (not a
    second time for its CRC-32), then mapped by safetensors, each tensor fetched once."""
    path = write_tiny_model_file(tmp_path / "model.safetensors")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    reads = _count_reads(monkeypatch, path)
    opened, fetched = _count_safe_opens(monkeypatch)
    checkpoint = read_checkpoint(fetch(path, sha256=digest))
    assert 0.9 < reads() < 1.1
    assert opened == [str(path)] and sorted(fetched) == sorted(checkpoint.tensors)


def test_a_model_file_is_opened_once_and_its_header_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: a model file given to convert or --init-from opened by safetensors to tell it from
    other safetensors files, closed, and opened again to be read as a model file, whose header
    was then read again for its CRC-32 and a third time for the tensors' order. Now one handle
    reads it all; ``open`` reads its first bytes (to tell its kind) and its header, once."""
    path = write_tiny_model_file(tmp_path / "model.safetensors")
    header_size = 8 + int.from_bytes(path.read_bytes()[:8], "little")
    reads = _count_reads(monkeypatch, path)
    opened, fetched = _count_safe_opens(monkeypatch)
    checkpoint = read_checkpoint(path)
    assert checkpoint.layout == "ours" and checkpoint.config is not None
    assert opened == [str(path)] and sorted(fetched) == sorted(checkpoint.tensors)
    assert round(reads() * path.stat().st_size) == readers.START_SIZE + header_size
