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


@pytest.mark.parametrize("value", ["abc", "0", "-2", "", "2.0"])
def test_a_world_size_that_is_no_number_of_processes_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """``WORLD_SIZE=0`` (or -2) ran one process as if unset, while the CLI, which parsed it on
    its own, refused ``validate`` as "one of 0 processes" and let "" through."""
    monkeypatch.setenv("WORLD_SIZE", value)
    message = f"^environment variable WORLD_SIZE={value!r} is not an integer >= 1: torchrun"
    with pytest.raises(ValueError, match=message):
        env_world_size()
    monkeypatch.delenv("WORLD_SIZE")
    assert env_world_size() == 1


@pytest.mark.parametrize("rank", ["2", "7"])
def test_a_rank_not_below_the_world_size_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, rank: str
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    message = f"^environment variable RANK={rank} is not below WORLD_SIZE=2: torchrun numbers"
    with pytest.raises(ValueError, match=message) as refused:
        env_rank()
    assert "\n" not in str(refused.value)
