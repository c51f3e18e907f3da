"""The environment ``torchrun`` gives each process it starts, read and checked without torch.

:func:`env_world_size` (``WORLD_SIZE``), :func:`env_rank` (``RANK``) and :func:`env_local_rank`
(``LOCAL_RANK``) return integers in their ranges or raise a ``ValueError`` naming the variable
and its value. :func:`~sparsercnn.engine.distributed.init_distributed` joins the process group
with them; the command line reads them before any command imports torch (it refuses the commands
that do not share their work, and reports a stop from rank 0 only).
"""

from __future__ import annotations

import os


def env_world_size() -> int:
    """The number of processes ``torchrun`` started (``WORLD_SIZE``); 1 where it is not set.

    Raises:
        ValueError: ``WORLD_SIZE`` is set but is not a positive integer.
    """
    return _env_int("WORLD_SIZE", minimum=1) if "WORLD_SIZE" in os.environ else 1


def env_rank() -> int:
    """This process's rank among the :func:`env_world_size` processes ``torchrun`` started
    (``RANK``); 0 in a single process (``WORLD_SIZE`` unset or 1), whatever ``RANK`` says.

    Raises:
        ValueError: a multi-process run whose ``RANK`` is not an integer from 0 to
            ``WORLD_SIZE - 1``; the message names both variables.
    """
    world_size = env_world_size()
    if world_size == 1:
        return 0
    rank = _env_int("RANK", minimum=0)
    if rank >= world_size:
        raise ValueError(
            f"environment variable RANK={rank} is not below WORLD_SIZE={world_size}: torchrun "
            "numbers its processes 0 to WORLD_SIZE - 1; launch with torchrun, or unset WORLD_SIZE, "
            "RANK and LOCAL_RANK to run in one process"
        )
    return rank


def env_local_rank() -> int:
    """This process's rank among those ``torchrun`` started on this machine (``LOCAL_RANK``,
    the GPU it takes); 0 in a single process, whatever ``LOCAL_RANK`` says.

    Raises:
        ValueError: a multi-process run whose ``LOCAL_RANK`` is not an integer >= 0.
    """
    return 0 if env_world_size() == 1 else _env_int("LOCAL_RANK", minimum=0)


def _env_int(name: str, minimum: int) -> int:
    """The integer of environment variable ``name`` (which ``torchrun`` sets), at least
    ``minimum``; the error names the variable and its value."""
    value = os.environ.get(name, "")
    try:
        number = int(value)
    except ValueError:
        pass  # refused below, as a number below minimum is
    else:
        if number >= minimum:
            return number
    raise ValueError(
        f"environment variable {name}={value!r} is not an integer >= {minimum}: torchrun sets "
        "WORLD_SIZE, RANK and LOCAL_RANK; unset them to run in one process"
    )
