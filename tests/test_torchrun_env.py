"""torchrun's environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), read without torch."""

from __future__ import annotations

import pytest

from sparsercnn.torchrun_env import env_local_rank, env_rank, env_world_size


def test_a_single_process_is_rank_0_whatever_rank_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "not a number")
    for world_size in (None, "1"):
        if world_size is None:
            monkeypatch.delenv("WORLD_SIZE", raising=False)
        else:
            monkeypatch.setenv("WORLD_SIZE", world_size)
        assert env_world_size() == 1
        assert env_rank() == 0 and env_local_rank() == 0
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert (env_world_size(), env_rank(), env_local_rank()) == (4, 3, 1)


@pytest.mark.parametrize("value", ["-1", "", "x"])
def test_a_local_rank_that_is_no_process_number_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", value)
    with pytest.raises(ValueError, match=f"^environment variable LOCAL_RANK={value!r} is not an"):
        env_local_rank()
