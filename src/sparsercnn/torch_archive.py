"""The checksums of the zip archives torch.save writes (``.pth`` weights, training checkpoints).

torch.save stores a CRC-32 with every record of its archive, but torch.load never checks them: a
file damaged inside a tensor's data (a bad copy or disk) loads, with wrong numbers.
:func:`damaged_record` checks them before :mod:`sparsercnn.weights.readers` and
:mod:`sparsercnn.engine.checkpoint` load a file: it reads the whole file, in less time than
torch.load takes. (The readers then map the file rather than read it again: the check is their
one read of its bytes. A file whose SHA-256 :func:`~sparsercnn.weights.download.fetch` has
matched is not read again: fetch's read was that one, see :mod:`sparsercnn.fetched_file`.)
"""

from __future__ import annotations

import os
import zipfile

from sparsercnn.fetched_file import checksum_verified
from sparsercnn.file_chunks import chunks

# How a zip archive (what torch.save writes) starts: a local file header's signature.
ZIP_MAGIC = b"PK\x03\x04"


def damaged_record(path: str | os.PathLike[str]) -> str | None:
    """The name of the first record of the zip archive ``path`` (what torch.save writes) whose
    bytes do not match the CRC-32 stored with them, or None.

    Records stored without a sum (torch.save after ``set_crc32_options(False)`` stores 0) are
    not checked; a file that is no zip archive, or one too damaged to list, is left to
    torch.load, which reports it. A file whose SHA-256 matched (:func:`checksum_verified`) is
    not read: None.
    """
    if checksum_verified(path):
        return None
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return None
    with archive:
        for info in archive.infolist():
            if info.CRC == 0:
                continue
            try:
                # zipfile compares the sum once the record is read to its end.
                with archive.open(info) as record:
                    for _ in chunks(record):
                        pass
            except (zipfile.BadZipFile, OSError, EOFError):
                return info.filename
    return None
