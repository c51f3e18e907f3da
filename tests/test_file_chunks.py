"""Reading a stream whole, a chunk at a time."""

from __future__ import annotations

import io

from sparsercnn.file_chunks import CHUNK_SIZE, chunks


def test_a_stream_comes_in_chunks_of_at_most_the_chunk_size() -> None:
    data = bytes(range(256)) * (CHUNK_SIZE * 5 // 2 // 256)
    parts = list(chunks(io.BytesIO(data)))
    assert [len(part) for part in parts] == [CHUNK_SIZE, CHUNK_SIZE, CHUNK_SIZE // 2]
    assert b"".join(parts) == data
    assert list(chunks(io.BytesIO(b""))) == []
