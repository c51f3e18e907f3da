"""How long a failed download waits before its next attempt: doubling delays, or what the
server asks for. :func:`~sparsercnn.weights.http_download.download` sleeps them between attempts."""

from __future__ import annotations

import datetime
import email.utils
import math
import time

FIRST_RETRY_DELAY_S = 1.0
# Also the most a Retry-After header is obeyed: a server asking for an hour gets its retry
# sooner and, failing again, the error that says what happened.
MAX_RETRY_DELAY_S = 30.0


def retry_delay(failures: int, retry_after: str | None = None, now: float | None = None) -> float:
    """Seconds to wait after the ``failures``-th failed attempt (1-based): 1, 2, 4, ... up to
    :data:`MAX_RETRY_DELAY_S`, or the server's ``Retry-After`` header value (delay seconds or
    an HTTP date, RFC 9110 10.2.3) when it gives a usable one, capped the same way.

    ``now``: the current time (seconds since the epoch; default ``time.time()``), against which
    an HTTP date is read.
    """
    asked = _retry_after_seconds(retry_after, time.time() if now is None else now)
    if asked is not None:
        return min(asked, MAX_RETRY_DELAY_S)
    return min(FIRST_RETRY_DELAY_S * 2.0 ** (failures - 1), MAX_RETRY_DELAY_S)


def _retry_after_seconds(value: str | None, now: float) -> float | None:
    """A ``Retry-After`` value in seconds from ``now`` (>= 0); None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": a time in UTC with no zone said
        when = when.replace(tzinfo=datetime.timezone.utc)
    seconds = when.timestamp() - now
    return max(seconds, 0.0) if math.isfinite(seconds) else None
