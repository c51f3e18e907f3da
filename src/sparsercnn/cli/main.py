"""Entry point of the ``sparsercnn`` command: subcommand registry, logging and error reporting.

Every fault ends in one or two lines on stderr and an exit code: 2 when the input is wrong (a
path, a flag, a config key, a file's content; the message names it and says what to do), 1 when
the run failed for another reason (a full disk, out of memory, a bug; a failure whose message
says what to do, such as a download that failed after its retries, without the exception type
and the ``--debug`` hint of a crash), 130 when interrupted
(Ctrl-C), 143 when terminated (SIGTERM, handled as Ctrl-C is: what the command staged is
cleaned up).
``--debug`` re-raises instead, with the full traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sparsercnn import __version__
from sparsercnn.cli import (
    benchmark,
    convert,
    demo,
    diagnose,
    evaluate,
    export,
    predict,
    serve,
    train,
    validate,
    visualize,
)
from sparsercnn.explained_failure import ExplainedFailure
from sparsercnn.torchrun_env import env_rank, env_world_size

COMMANDS = (
    demo,
    train,
    evaluate,
    predict,
    validate,
    convert,
    export,
    benchmark,
    visualize,
    diagnose,
    serve,
)
# Exceptions that mean the input is wrong. ValueError covers json.JSONDecodeError and
# UnicodeDecodeError (unreadable files); ImportError is a missing optional extra (onnx, ...).
BAD_INPUT_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    FileExistsError,
    PermissionError,
    ImportError,
)
# Commands that share their work among torchrun's processes; the others would each do it whole.
DISTRIBUTED_COMMANDS = ("train",)
# Commands that draw matplotlib plots (evaluate with --report-dir; train at the end of its run).
PLOTTING_COMMANDS = (
    "demo",
    "train",
    "evaluate",
    "diagnose stages",
    "diagnose slots",
    "diagnose report",
)
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
DEBUG_HINT = "run again with --debug for the full traceback"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sparsercnn",
        description="Sparse R-CNN: train, evaluate and run end-to-end object detectors.",
    )
    parser.add_argument("--version", action="version", version=f"sparsercnn {__version__}")
    add_global_flags(parser, default=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    for subparser in subcommand_parsers(parser):
        add_global_flags(subparser, default=argparse.SUPPRESS)
    return parser


def add_global_flags(parser: argparse.ArgumentParser, default: object) -> None:
    """``-v`` and ``--debug``, accepted before and after the command name (a subcommand's
    ``SUPPRESS`` default leaves the value given before the command alone)."""
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="debug logging"
    )
    parser.add_argument(
        "--debug", action="store_true", default=default, help="show full tracebacks on errors"
    )


def subcommand_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser below ``parser`` (commands, and kinds such as ``diagnose stages``)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += [child, *subcommand_parsers(child)]
    return found


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, ``timeout``, ``kill``), raised like Ctrl-C so that every
    ``finally`` and context manager cleans up: staged drawings and temporary files go."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM raises :class:`Terminated` in the main thread (where
    another handler than the default is set, by a program calling :func:`main`, it is kept)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # torch keeps its own loggers at WARNING once its import ends; an import that Ctrl-C stops
    # leaves them on the root level above, and its exit logs INFO lines after "interrupted".
    # TORCH_LOGS still sets the levels it names, on torch's import.
    logging.getLogger("torch").setLevel(logging.WARNING)
    command = " ".join(
        name for name in (args.command, getattr(args, "diagnosis", None)) if name is not None
    )
    try:
        with sigterm_as_interrupt():
            check_single_process(args.command)
            retain_freed_memory()
            check_drawing_font(command)
            return int(args.handler(args))
    except Terminated:
        report_stop(f"sparsercnn {command}: terminated (SIGTERM)")
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        report_stop(f"sparsercnn {command}: interrupted")
        return EXIT_INTERRUPTED
    except Exception as error:
        if args.debug:
            raise
        print(report_error(command, error), file=sys.stderr)
        return EXIT_BAD_INPUT if is_bad_input(error) else EXIT_FAILED


def report_stop(line: str) -> None:
    """Print why the command stopped, once per job: under ``torchrun`` every rank stops together
    (the trainer agrees on it), so only rank 0 prints (:func:`~sparsercnn.torchrun_env.env_rank`:
    a single process is rank 0 whatever ``RANK`` says). A process whose environment that refuses
    prints: the stop is said at least once."""
    try:
        rank = env_rank()
    except ValueError:
        rank = 0
    if rank == 0:
        print(line, file=sys.stderr)


def check_single_process(command: str) -> None:
    """Refuse a command that does not share its work when launched as one of several processes
    (``torchrun`` sets ``WORLD_SIZE``): each would run it whole and write the same files.
    ``WORLD_SIZE`` that is no number of processes is refused for every command."""
    world_size = env_world_size()
    if command in DISTRIBUTED_COMMANDS or world_size == 1:
        return
    raise ValueError(
        f"sparsercnn {command} runs in one process, but WORLD_SIZE={world_size} (torchrun): "
        f"each process would do the whole work and write the same files; run it without "
        f"torchrun (only {', '.join(DISTRIBUTED_COMMANDS)} is shared among processes)"
    )


def retain_freed_memory() -> bool:
    """Every command runs models on large tensors: reuse their memory instead of re-mapping it
    (:func:`sparsercnn.runtime.retain_freed_memory`, imported here so ``--help`` skips torch)."""
    from sparsercnn import runtime

    return runtime.retain_freed_memory()


def check_drawing_font(command: str) -> None:
    """Refuse a ``$SPARSERCNN_FONT`` that names no readable font before any work: most commands
    draw (predictions, reports, the demo, and ``train``'s report after the whole run), and the
    first drawing is where it would fail otherwise. For the :data:`PLOTTING_COMMANDS`,
    matplotlib must read it too (``train`` would otherwise fail at its plots after the whole
    run); the others skip importing matplotlib's font manager (about 0.2 s)."""
    from sparsercnn.visualization.font import FONT_ENV, label_font, plot_font_families

    if os.environ.get(FONT_ENV):
        label_font(16)
        if command in PLOTTING_COMMANDS:
            plot_font_families()


def is_bad_input(error: Exception) -> bool:
    """Whether ``error`` means the input is wrong (exit 2) rather than the run failing (exit 1).

    An unreadable image is bad input though it is an OSError; its module is only looked up
    when already imported (it raised, so it was), which keeps ``--help`` free of PIL.
    """
    image_io = sys.modules.get("sparsercnn.data.image_io")
    if image_io is not None and isinstance(error, image_io.ImageReadError):
        return True
    return isinstance(error, BAD_INPUT_ERRORS)


def report_error(command: str, error: Exception) -> str:
    """What stderr shows for ``error``: at most two lines, without a traceback.

    Bad input: ``sparsercnn COMMAND: error: MESSAGE`` (a second message line is kept).
    An :class:`~sparsercnn.explained_failure.ExplainedFailure` (its message says what to do):
    ``sparsercnn COMMAND: failed: MESSAGE``, likewise.
    Anything else: ``sparsercnn COMMAND: failed: TYPE: MESSAGE`` and the ``--debug`` hint.
    """
    bad_input = is_bad_input(error)
    if bad_input or isinstance(error, ExplainedFailure):
        lines = message_lines(error, max_lines=2)
        outcome = "error" if bad_input else "failed"
        return "\n".join([f"sparsercnn {command}: {outcome}: {lines[0]}", *lines[1:]])
    (line,) = message_lines(error, max_lines=1)
    hint = failure_hint(error)
    line = f"{line} ({hint})" if hint else line
    return f"sparsercnn {command}: failed: {type(error).__name__}: {line}\n{DEBUG_HINT}"


def message_lines(error: Exception, max_lines: int) -> list[str]:
    """The error's message as at most ``max_lines`` non-empty lines; ``[...]`` marks a cut.

    An OS error with a file name reads ``PATH: reason`` rather than ``[Errno N] reason: 'PATH'``.
    """
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        target = f" -> {error.filename2}" if error.filename2 is not None else ""
        message = f"{error.filename}{target}: {error.strerror}"
    else:
        message = str(error)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return ["(no message)"]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] += " [...]"
    return lines


# What gloo (and NCCL's TCP store) say where another rank of the job has exited.
LOST_PEER_MESSAGES = ("Connection closed by peer", "Connection reset by peer")


def failure_hint(error: Exception) -> str:
    """What to do about common runtime failures, or ``""``."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return "free disk space, or write to another --output/--output-dir"
    if type(error).__name__ == "OutOfMemoryError":
        return "lower the batch size (--batch-size or --set train.batch_size=N) or the image sizes"
    if isinstance(error, RuntimeError) and any(lost in str(error) for lost in LOST_PEER_MESSAGES):
        return "another process of this torchrun job stopped first: its own error is the cause"
    return ""
