"""A torch.save archive damaged the way a bad copy or disk damages it, for the tests of the
readers that check its records' CRC-32 (:func:`flip_a_byte_of_the_largest_record`)."""

from __future__ import annotations

import zipfile
from pathlib import Path


def flip_a_byte_of_the_largest_record(path: Path, *, tensor: bool = False) -> str:
    """Change one byte in the middle of ``path``'s largest record (``tensor``: of the largest
    tensor's, ``ARCHIVE/data/N``, rather than the pickle's); return the record's name."""
    with zipfile.ZipFile(path) as archive:
        records = [info for info in archive.infolist() if not tensor or "/data/" in info.filename]
        record = max(records, key=lambda info: info.file_size)
    # Past the local header (30 bytes, the name and at most 64 bytes of alignment padding).
    offset = record.header_offset + 30 + len(record.filename) + 64 + record.file_size // 2
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return record.filename
