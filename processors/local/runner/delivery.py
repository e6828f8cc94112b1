"""Delivering records to a function: the one retry policy, batch retries with bisection, partial
batch responses, and the on-failure destination (SQS) once the retries are used up.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

import tenacity

from processors.local import events
from processors.local.runner.config import float_env
from processors.local.runner.sources.base import ShardPollingSource
from processors.local.runner.sources.shards import ShardCursor
from processors.local.template import EventSourceSettings

if TYPE_CHECKING:
    from processors.local.runner.windows import Window

logger = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024 - 64 * 1024  # synchronous invocation payload limit, with room for the envelope
T = TypeVar("T")


# --------------------------------------------------------------------------- the retry policy


class Stopped(Exception):
    """The runner is stopping: the record is left for the next run (its checkpoint is not moved)."""


def _backoff(scale: float = 1.0) -> tenacity.wait_exponential:
    # ``ALLEYCAT_RUNNER_RETRY_SECONDS`` is the first delay (read per use: tests set it), doubled per attempt up to 2 s.
    first = float_env("ALLEYCAT_RUNNER_RETRY_SECONDS", 0.1)
    return tenacity.wait_exponential(multiplier=first * scale, max=2.0 * scale)


def retry_delay(attempts: int) -> float:
    """The policy's delay before retry number ``attempts`` (for the batch loop, whose retries bisect)."""
    return _backoff()(SimpleNamespace(attempt_number=attempts))  # type: ignore[arg-type]


def retrying(attempts: int, stop: threading.Event, *, scale: float = 1.0) -> Iterator[tenacity.AttemptManager]:
    """Up to ``attempts`` tries with the policy's delays (times ``scale``); raises :class:`Stopped` when stopping.

    The last exception is re-raised once the attempts are used up.
    """

    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise Stopped

    return iter(
        tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=_backoff(scale),
            sleep=sleep,
            reraise=True,
        )
    )


def size_chunks(items: Sequence[T], size: Callable[[T], int], limit: int) -> list[list[T]]:
    """Consecutive chunks of ``items`` whose summed ``size`` stays within ``limit`` (one item may exceed it)."""
    chunks: list[list[T]] = [[]]
    total = 0
    for item in items:
        length = size(item)
        if chunks[-1] and total + length > limit:
            chunks.append([])
            total = 0
        chunks[-1].append(item)
        total += length
    return [chunk for chunk in chunks if chunk]


# --------------------------------------------------------------------------- the on-failure destination


class DeadLetters:
    """Sends on-failure records to SQS queues (by name, as the template's destinations name them)."""

    def __init__(self, sqs: Any) -> None:
        self.sqs = sqs
        self._urls: dict[str, str] = {}

    def url(self, queue: str) -> str:
        if queue not in self._urls:
            self._urls[queue] = self.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        return self._urls[queue]

    def send(self, queue: str | None, body: dict) -> bool:
        if not queue:
            logger.error("no on-failure destination, dropping: %s", json.dumps(body)[:500])
            return False
        self.sqs.send_message(QueueUrl=self.url(queue), MessageBody=json.dumps(body))
        return True


# --------------------------------------------------------------------------- a stream mapping's batches


class BatchDelivery(ShardPollingSource):
    """Retries, bisection, partial failures and dead letters of a stream mapping's batches."""

    mapping: EventSourceSettings
    dead_letters: DeadLetters
    region: str

    def _invoke(self, cursor: ShardCursor, batch: list[dict], window: Window | None, *, final: bool) -> Any:
        """One invocation with these records (and the window's state)."""
        raise NotImplementedError

    def record_size(self, raw: dict) -> int:
        """About the bytes the record takes in an invocation payload."""
        raise NotImplementedError

    def _deliver(self, cursor: ShardCursor, records: list[dict], window: Window | None) -> bool:
        """Deliver (retry, bisect, dead-letter) every record; False when stopped before the end."""
        chunks = size_chunks(records, self.record_size, MAX_PAYLOAD_BYTES)  # no payload over Lambda's 6 MB
        queue: deque[tuple[list[dict], int]] = deque((chunk, 0) for chunk in chunks)
        while queue:
            if self.stop.is_set():
                return False
            batch, attempts = queue.popleft()
            error = ""
            try:
                response = self._invoke(cursor, batch, window, final=False)
                failed_at = self._first_failure(batch, response)
                if failed_at is not None:
                    error = "batchItemFailures"
            except Exception as exc:
                self._function_error(exc)
                failed_at, error = 0, f"{type(exc).__name__}: {exc}"
            if failed_at is None:
                self._done(cursor, batch, window)
                continue
            if failed_at > 0:
                self._done(cursor, batch[:failed_at], window)
            rest = batch[failed_at:]
            if error == "batchItemFailures":
                self.stats.error(f"partial batch failure at {self.stream.sequence(rest[0])}")
            if self.mapping.bisect_batch_on_function_error and len(rest) > 1:
                # Splitting does not count against the retry quota (as on AWS).
                middle = len(rest) // 2
                queue.appendleft((rest[middle:], attempts))
                queue.appendleft((rest[:middle], attempts))
                continue
            attempts += 1
            if 0 <= self.mapping.maximum_retry_attempts < attempts:
                self._dead_letter(cursor, rest, attempts, "RetryAttemptsExhausted", error)
                self._advance(cursor, rest, window)
                continue
            queue.appendleft((rest, attempts))
            self.stop.wait(retry_delay(attempts))
        return True

    def _first_failure(self, batch: list[dict], response: Any) -> int | None:
        if not self.mapping.report_batch_item_failures or not isinstance(response, dict):
            return None
        failures = response.get("batchItemFailures") or []
        if not failures:
            return None
        index = {self.stream.sequence(raw): position for position, raw in enumerate(batch)}
        positions = [index.get(str((failure or {}).get("itemIdentifier"))) for failure in failures]
        if any(position is None for position in positions):
            return 0  # an identifier that is not in the batch fails the whole batch, as on AWS
        return min(position for position in positions if position is not None)

    def _done(self, cursor: ShardCursor, batch: list[dict], window: Window | None) -> None:
        self.stats.records += len(batch)
        self._advance(cursor, batch, window)

    def _advance(self, cursor: ShardCursor, batch: list[dict], window: Window | None) -> None:
        last = self.stream.sequence(batch[-1])
        if window is None:
            self.processed[cursor.shard_id] = last
            self._save()
            return
        if window.first is None:
            window.first = self._meta(batch[0])
        window.last = self._meta(batch[-1])
        window.last_sequence = last
        window.count += len(batch)

    def _meta(self, raw: dict) -> dict:
        return {"sequence": self.stream.sequence(raw), "arrival": self.stream.arrival(raw)}

    def _function_error(self, exc: BaseException) -> None:
        self.stats.error(exc)
        logger.warning("%s: function error: %s: %s", self.name, type(exc).__name__, str(exc)[:300])

    def _dead_letter(self, cursor: ShardCursor, batch: list[dict], attempts: int, condition: str, error: str) -> None:
        self._dead_letter_range(
            cursor, self._meta(batch[0]), self._meta(batch[-1]), len(batch), attempts, error, condition=condition
        )

    def _dead_letter_range(
        self,
        cursor: ShardCursor,
        first: dict,
        last: dict,
        count: int,
        attempts: int,
        error: str,
        *,
        condition: str = "RetryAttemptsExhausted",
    ) -> None:
        body = events.stream_failure_record(
            kind=self.stream.kind,
            region=self.region,
            function=self.mapping.function,
            shard_id=cursor.shard_id,
            stream_arn=self.stream.arn,
            first=first,
            last=last,
            batch_size=count,
            invoke_count=attempts + 1 if condition == "RetryAttemptsExhausted" else attempts,
            condition=condition,
            error="Unhandled" if error else "",
        )
        self.dead_letters.send(self.mapping.on_failure, body)
        self.stats.dead_letters += count
        logger.error(
            "%s: %d records of %s (%s..%s) sent to %s: %s",
            self.name,
            count,
            cursor.shard_id,
            first["sequence"],
            last["sequence"],
            self.mapping.on_failure,
            condition,
        )
