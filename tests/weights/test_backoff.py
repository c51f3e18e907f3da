"""retry_delay: doubling waits between download attempts, or the server's Retry-After."""

from __future__ import annotations

import email.utils

import pytest

from sparsercnn.weights.backoff import MAX_RETRY_DELAY_S, retry_delay


def test_waits_double_up_to_the_cap() -> None:
    assert [retry_delay(failures) for failures in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert retry_delay(20) == MAX_RETRY_DELAY_S


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        ("7", 7.0),
        (" 0 ", 0.0),
        ("86400", MAX_RETRY_DELAY_S),  # a day: retried sooner, then the error is reported
        (email.utils.formatdate(1_000_012.0, usegmt=True), 12.0),  # an HTTP date
        ("Thu, 01 Jan 1970 00:00:00 -0000", 0.0),  # a date already past
        ("soon", 4.0),  # unreadable: the doubling wait
        ("-3", 4.0),
        ("", 4.0),
    ],
)
def test_the_server_s_retry_after_is_obeyed_within_the_cap(
    retry_after: str, expected: float
) -> None:
    assert retry_delay(3, retry_after, now=1_000_000.0) == expected
