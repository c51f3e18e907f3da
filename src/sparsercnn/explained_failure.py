"""The failure whose message is complete for a user: what failed, and what to do about it.

Raised where a run fails for a reason outside its input (the network, a server, a training
that diverged), and the message already says what happened and what to do. The ``sparsercnn``
command prints it as it is (exit 1), without the exception type and the ``--debug`` hint of an
unexpected crash (:func:`sparsercnn.cli.main.report_error`). No imports: the CLI looks it up
before any command runs.
"""

from __future__ import annotations


class ExplainedFailure(Exception):
    """A failure whose message names what failed and says what to do; subclasses also derive
    from the built-in error they stand for (``ConnectionError``, ...), so that callers catching
    that one still do."""
