"""The processors' one retry policy for contended writes and partial batches (tenacity).

A conditional write that lost a race to another writer (DynamoDB ``ConditionalCheckFailed`` on the
live item, S3 412/409 on a history object) and a batch call that left items unprocessed are tried
again after a full-jitter exponential wait: uniform(0, 25 ms x 2^(n-1)), capped at 1 s, so that
writers that collided spread out. What counts as "try again" is the caller's: it raises
``TryAgain`` inside the attempt. botocore's own retries (throttling, 5xx, connection errors: the
``standard`` mode in ``processors.clients``) sit below this and are not repeated here.
"""

from __future__ import annotations

from collections.abc import Iterator

import tenacity

FIRST_WAIT_SECONDS = 0.025
MAX_WAIT_SECONDS = 1.0


class TryAgain(Exception):
    """Raised inside an attempt: the write lost to another writer (or left work undone); try once more."""


class GaveUp(Exception):
    """Every attempt had to be tried again."""


def attempts(limit: int) -> Iterator[tenacity.AttemptManager]:
    """Up to ``limit`` attempts (``for attempt in attempts(n): with attempt: ...``); after the last one
    raises ``TryAgain``, ``GaveUp`` is raised. Any other exception ends the loop at once."""
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(limit),
        wait=tenacity.wait_random_exponential(multiplier=FIRST_WAIT_SECONDS, max=MAX_WAIT_SECONDS),
        retry=tenacity.retry_if_exception_type(TryAgain),
        retry_error_callback=_gave_up,
    )
    return iter(retrying)


def _gave_up(state: tenacity.RetryCallState) -> None:
    raise GaveUp(f"gave up after {state.attempt_number} attempts") from (
        state.outcome.exception() if state.outcome else None
    )
