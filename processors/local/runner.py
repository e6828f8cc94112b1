"""The local event-source runner: invokes the real handlers as Lambda would, on one machine.

``python -m processors.local.runner`` reads ``infra/template.yaml`` (through
:mod:`processors.local.template`), makes sure the stream, table, buckets and queue exist
(:mod:`processors.local.bootstrap`, idempotent), starts each handler in its own process on first
use (:mod:`processors.local.sandbox`, like a Lambda execution environment) and then runs these
event sources, each in its own thread:

- every Kinesis and DynamoDB-stream mapping of the template (aggregator ← bike stream;
  finals and publisher ← the table's stream): every shard, including shards created by
  resharding (children after their parents), polled about once a second, batches of up to
  BatchSize, a durable checkpoint per shard after success, tumbling windows (state carried
  between invokes, a final invoke per window with ``isFinalInvokeForWindow``), retries with
  bisection on function error, partial batch responses, record age limits, and the failed
  batch's metadata to the on-failure destination (SQS) once the retries are used up;
- Firehose: its own reader of the bike stream with its own checkpoint, buffering by size and
  interval, the transformer with the Firehose event shape, GZIP newline-delimited objects under
  ``raw/YYYY/MM/DD/HH/<name>-1-<YYYY-MM-DD-HH-MM-SS>-<uuid>.gz`` and ProcessingFailed records
  under ``processing-failed/``;
- S3 notifications of the delivery bucket (new objects under the trigger's prefix) → history.

Every few seconds it logs one line per source and writes ``$ALLEYCAT_PIPELINE_STATUS_FILE``
(default ``var/pipeline-status.json``): iterator age (lag), records/s, errors, dead letters.
SIGTERM or SIGINT stop it after the batch in progress; a restart resumes from the checkpoints
(at least once: a batch cut short by a kill is processed again, which the handlers tolerate).

Environment (besides the names of docs/contracts.md, which override the template's defaults):
``ALLEYCAT_VAR_DIR`` (checkpoints, default ``var``), ``ALLEYCAT_FIREHOSE_BUFFER_SECONDS`` (a shorter
buffer interval than the template's, for demos and tests), ``ALLEYCAT_RUNNER_POLL_SECONDS`` (1),
``ALLEYCAT_RUNNER_REPORT_SECONDS`` (5), ``ALLEYCAT_TUMBLING_WINDOW_SECONDS`` (template parameter),
``ALLEYCAT_HANDLER_LOG_LEVEL`` (WARNING: every function logs to the same console, so per-invocation
INFO summaries are left out unless asked for), ``ALLEYCAT_HANDLER_EMF=1`` (keep the EMF metric blobs).
More in docs/local-pipeline.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import io
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from processors.local import events, filters
from processors.local.checkpoints import CheckpointStore, var_dir, write_json_atomically
from processors.local.sandbox import Sandbox
from processors.local.streams import DynamoDBStream, KinesisStream, ShardCursor, ShardSet, StreamAdapter
from processors.local.template import EventSourceSettings, FunctionSettings, LocalSettings, load_local_settings

# Not under "alleycat": that is the handlers' Powertools logger (JSON, WARNING locally, no propagation).
logger = logging.getLogger("processors.local.runner")

Handler = Callable[[dict, Any], Any]

# Template parameters that the shared environment variables (docs/contracts.md) override.
PARAMETER_ENV = {
    "StreamName": "ALLEYCAT_STREAM",
    "TableName": "ALLEYCAT_TABLE",
    "DeliveryBucketName": "ALLEYCAT_DELIVERY_BUCKET",
    "HistoryBucketName": "ALLEYCAT_HISTORY_BUCKET",
    "FirehoseName": "ALLEYCAT_FIREHOSE",
    "TopRows": "ALLEYCAT_TOP_ROWS",
    "TumblingWindowInSeconds": "ALLEYCAT_TUMBLING_WINDOW_SECONDS",
    "StreamShardCount": "ALLEYCAT_STREAM_SHARDS",
}
WINDOW_CLOSE_GRACE_SECONDS = 0.15
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024 - 64 * 1024  # synchronous invocation payload limit, with room for the envelope
S3_LOOKBACK_SECONDS = 3 * 3600
_CLIENT_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60)


def template_parameters_from_env(environ: Mapping[str, str] = os.environ) -> dict:
    """Template parameter overrides taken from the shared environment variables that are set."""
    return {parameter: environ[name] for parameter, name in PARAMETER_ENV.items() if environ.get(name)}


def _retry_delay(attempts: int) -> float:
    """Back-off between retries of a failed batch (``ALLEYCAT_RUNNER_RETRY_SECONDS`` is the first delay)."""
    return min(2.0, _float_env("ALLEYCAT_RUNNER_RETRY_SECONDS", 0.1) * 2 ** (attempts - 1))


def status_file_path() -> Path:
    configured = os.environ.get("ALLEYCAT_PIPELINE_STATUS_FILE")
    return Path(configured) if configured else var_dir() / "pipeline-status.json"


def _float_env(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


# --------------------------------------------------------------------------- figures


@dataclass
class SourceStats:
    """Figures of one event source, read by the reporter thread (plain ints: no lock needed under the GIL)."""

    name: str
    function: str
    kind: str
    source: str
    shards: int = 0
    lag_ms: int = 0
    records: int = 0
    invocations: int = 0
    errors: int = 0
    dead_letters: int = 0
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _last_records: int = 0
    _last_at: float = field(default_factory=time.monotonic)
    _rate: float = 0.0

    def error(self, exc: BaseException | str) -> None:
        self.errors += 1
        self.last_error = (exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}")[:500]

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        elapsed = now - self._last_at
        if elapsed >= 0.5:
            self._rate = (self.records - self._last_records) / elapsed
            self._last_records, self._last_at = self.records, now
        return {
            "name": self.name,
            "function": self.function,
            "kind": self.kind,
            "source": self.source,
            "shards": self.shards,
            "lagMs": self.lag_ms,
            "recordsPerSecond": round(self._rate, 1),
            "records": self.records,
            "invocations": self.invocations,
            "errors": self.errors,
            "deadLetters": self.dead_letters,
            "lastError": self.last_error,
            **self.extra,
        }


# --------------------------------------------------------------------------- invoking


class Invoker:
    """Calls a handler given as a function, in this process (tests pass their own functions).

    A fresh context per invocation and a JSON round trip of event and response, as Lambda does.
    Invocations are serialised: functions in one process share module-level objects. The
    template's real handlers run in their own processes instead (:mod:`processors.local.sandbox`).
    """

    _lock = threading.Lock()

    def __init__(self, function: FunctionSettings, handler: Handler, region: str) -> None:
        self.function = function
        self.handler = handler
        self.region = region

    @staticmethod
    def _metrics_sink() -> Any:
        # Powertools prints one EMF blob per invocation (CloudWatch's metric format) with print();
        # locally nobody collects them, so they are dropped unless ALLEYCAT_HANDLER_EMF=1.
        # Handler logs are unaffected: their handler keeps the stream it was created with.
        return sys.stdout if os.environ.get("ALLEYCAT_HANDLER_EMF") == "1" else io.StringIO()

    def __call__(self, event: dict) -> Any:
        payload = json.loads(json.dumps(event))  # exactly what a JSON-serialised Lambda payload gives
        context = events.LambdaContext(
            function_name=self.function.key,
            region=self.region,
            memory_limit_in_mb=self.function.memory_mb,
            timeout_seconds=self.function.timeout_seconds,
        )
        with self._lock, contextlib.redirect_stdout(self._metrics_sink()):
            response = self.handler(payload, context)
        return json.loads(json.dumps(response)) if response is not None else None


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


def _checkpoint_name(*parts: str) -> str:
    return "-".join(part.replace("/", "_").replace(":", "_") for part in parts)


class SourceThread(threading.Thread):
    def __init__(self, name: str, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.stop = stop
        self.poll_seconds = _float_env("ALLEYCAT_RUNNER_POLL_SECONDS", 1.0)
        self.failed: BaseException | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.loop()
                return
            except Exception as exc:  # a source never dies silently: log, count, wait, resume
                if self.stop.is_set():
                    logger.info("%s: stopped during a call (%s); it resumes from its checkpoint", self.name, exc)
                    return
                self.stats.error(exc)
                logger.error("%s: %s\n%s", self.name, exc, traceback.format_exc(limit=5))
                self.stop.wait(2.0)
                self.reset()

    def loop(self) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Drop in-memory progress after an unexpected error; the next loop resumes from the checkpoint."""


# --------------------------------------------------------------------------- stream mappings


@dataclass
class Window:
    start: float
    end: float
    state: dict = field(default_factory=dict)
    first: dict | None = None  # {"sequence", "arrival"} of the window's first record
    last: dict | None = None
    last_sequence: str | None = None
    count: int = 0


class ShardReaderMixin:
    """Shared by the sources that read a stream shard by shard (Kinesis/table-stream mappings, Firehose)."""

    stream: Any
    shards: Any
    checkpoints: CheckpointStore
    processed: Any

    def _save(self) -> None:
        """Persist where every shard has been read up to (after a successful batch)."""
        self.checkpoints.save(self.stream.identity, self.shards.checkpoint_state(self.processed))


class StreamMappingSource(ShardReaderMixin, SourceThread):
    """One Kinesis or DynamoDB-stream event source mapping of the template."""

    def __init__(
        self,
        *,
        mapping: EventSourceSettings,
        stream: StreamAdapter,
        invoker: Invoker,
        dead_letters: DeadLetters,
        region: str,
        stop: threading.Event,
    ) -> None:
        super().__init__(f"{mapping.function}<-{mapping.name}", stop)
        self.mapping = mapping
        self.stream = stream
        self.invoke = invoker
        self.dead_letters = dead_letters
        self.region = region
        self.window_seconds = mapping.tumbling_window_seconds
        if mapping.kind == "dynamodb":
            # Lambda polls a DynamoDB stream's shards four times a second (a Kinesis shard once a second).
            self.poll_seconds = min(self.poll_seconds, 0.25)
        self.checkpoints = CheckpointStore(_checkpoint_name(mapping.function, mapping.name))
        self.stats = SourceStats(
            name=f"{mapping.function} ← {mapping.source}",
            function=mapping.function,
            kind=mapping.kind,
            source=mapping.source,
        )
        self.reset()

    def reset(self) -> None:
        saved = self.checkpoints.load(self.stream.identity)["shards"]
        self.shards = ShardSet(self.stream, starting_position=self.mapping.starting_position, checkpoint=saved)
        self.processed: dict[str, str] = {sid: s["sequenceNumber"] for sid, s in saved.items() if s["sequenceNumber"]}
        self.windows: dict[str, Window] = {}

    # -- the loop

    def loop(self) -> None:
        while not self.stop.is_set():
            self.shards.refresh()
            readable = self.shards.readable()
            self.stats.shards = len(readable)
            busy = False
            for cursor in readable:
                if self.stop.is_set():
                    return
                records = self.shards.read(cursor, self.mapping.batch_size)
                busy = busy or len(records) >= self.mapping.batch_size
                self.handle(cursor, records)
            if not busy:
                self.stop.wait(self.poll_seconds)

    def handle(self, cursor: ShardCursor, records: list[dict]) -> None:
        now = time.time()
        cursor.lag_ms = int((now - self.stream.arrival(records[-1])) * 1000) if records else 0
        self.stats.lag_ms = max((c.lag_ms for c in self.shards.readable()), default=0)
        records = self._drop_expired(cursor, records)
        if self.window_seconds:
            self._handle_windowed(cursor, records)
        elif records:
            self._deliver_filtered(cursor, records)
        if cursor.drained and not self.stop.is_set():
            window = self.windows.pop(cursor.shard_id, None)
            if window is not None:
                self._close_window(cursor, window)
            cursor.finished = True
            self._save()
            logger.info("%s: shard %s read to its end", self.name, cursor.shard_id)

    def _drop_expired(self, cursor: ShardCursor, records: list[dict]) -> list[dict]:
        max_age = self.mapping.maximum_record_age_seconds
        if max_age < 0 or not records:
            return records
        cutoff = time.time() - max_age
        expired = [raw for raw in records if self.stream.arrival(raw) < cutoff]
        if not expired:
            return records
        self._dead_letter(cursor, expired, 0, "RecordAgeExceeded", "")
        if not self.window_seconds:
            self.processed[cursor.shard_id] = self.stream.sequence(expired[-1])
        return [raw for raw in records if self.stream.arrival(raw) >= cutoff]

    def _deliver_filtered(self, cursor: ShardCursor, records: list[dict]) -> None:
        """Lambda's event filtering: only records matching a FilterCriteria pattern are delivered.

        The others count as processed: once the kept records are done (or dead-lettered), the
        checkpoint moves to the end of the batch, also when nothing was kept.
        """
        if not self.mapping.filters:
            self._deliver(cursor, records, None)
            return
        kept = [raw for raw in records if filters.matches(self.mapping.filters, self._filter_view(cursor, raw))]
        self.stats.extra["filteredOut"] = self.stats.extra.get("filteredOut", 0) + len(records) - len(kept)
        if kept and not self._deliver(cursor, kept, None):
            return  # stopped mid-batch: the checkpoint stays where the delivered records left it
        self.processed[cursor.shard_id] = self.stream.sequence(records[-1])
        self._save()

    def _filter_view(self, cursor: ShardCursor, raw: dict) -> dict:
        if self.stream.kind == "kinesis":
            return filters.kinesis_filter_view(self._event_record(cursor, raw))
        if not self._filters_read_images:
            # Keys only: converting both images of a big item for a pattern on its key is wasted work.
            return {
                "eventName": raw["eventName"],
                "eventSource": "aws:dynamodb",
                "dynamodb": {"Keys": events.lambda_image(raw["dynamodb"]["Keys"])},
            }
        return self._event_record(cursor, raw)

    @property
    def _filters_read_images(self) -> bool:
        return any(set(pattern.get("dynamodb", {})) - {"Keys"} for pattern in self.mapping.filters) or any(
            set(pattern) - {"dynamodb", "eventName", "eventSource"} for pattern in self.mapping.filters
        )

    # -- tumbling windows

    def _handle_windowed(self, cursor: ShardCursor, records: list[dict]) -> None:
        size = self.window_seconds
        run: list[dict] = []
        run_start: float | None = None
        for raw in records:
            start = (self.stream.arrival(raw) // size) * size
            if run and start != run_start:
                self._window_run(cursor, run_start, run)
                run = []
            run_start = start
            run.append(raw)
        if run:
            self._window_run(cursor, run_start, run)
        window = self.windows.get(cursor.shard_id)
        caught_up = len(records) < self.mapping.batch_size
        if window is not None and caught_up and time.time() >= window.end + WINDOW_CLOSE_GRACE_SECONDS:
            del self.windows[cursor.shard_id]
            self._close_window(cursor, window)

    def _window_run(self, cursor: ShardCursor, start: float, run: list[dict]) -> None:
        window = self.windows.get(cursor.shard_id)
        if window is not None and window.start != start:
            del self.windows[cursor.shard_id]
            self._close_window(cursor, window)
            window = None
        if window is None:
            window = self.windows[cursor.shard_id] = Window(start, start + self.window_seconds)
        self._deliver(cursor, run, window)

    def _close_window(self, cursor: ShardCursor, window: Window) -> None:
        """The final invoke of a window; its records count as processed once it succeeds (or is dead-lettered)."""
        attempts = 0
        while not self.stop.is_set():
            try:
                self._invoke(cursor, [], window, final=True)
                break
            except Exception as exc:
                self._function_error(exc)
                attempts += 1
                if 0 <= self.mapping.maximum_retry_attempts < attempts:
                    if window.first is not None:
                        self._dead_letter_range(cursor, window.first, window.last, window.count, attempts, str(exc))
                    break
                self.stop.wait(_retry_delay(attempts))
        else:
            return  # stopped: the window will be redone from the checkpoint
        if window.last_sequence is not None:
            self.processed[cursor.shard_id] = window.last_sequence
        self._save()

    # -- delivering a batch: retries, bisection, partial failures, on-failure destination

    def _payload_chunks(self, records: list[dict]) -> list[list[dict]]:
        """Split so that no invocation payload exceeds Lambda's 6 MB (big table-stream images)."""
        chunks: list[list[dict]] = [[]]
        size = 0
        for raw in records:
            if self.stream.kind == "kinesis":
                length = len(raw["Data"]) * 4 // 3 + 400
            else:
                length = int(raw["dynamodb"].get("SizeBytes", 0)) + 400
            if chunks[-1] and size + length > MAX_PAYLOAD_BYTES:
                chunks.append([])
                size = 0
            chunks[-1].append(raw)
            size += length
        return [chunk for chunk in chunks if chunk]

    def _deliver(self, cursor: ShardCursor, records: list[dict], window: Window | None) -> bool:
        """Deliver (retry, bisect, dead-letter) every record; False when stopped before the end."""
        queue: deque[tuple[list[dict], int]] = deque((chunk, 0) for chunk in self._payload_chunks(records))
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
                self._skip(cursor, rest, window)
                continue
            queue.appendleft((rest, attempts))
            self.stop.wait(_retry_delay(attempts))
        return True

    def _first_failure(self, batch: list[dict], response: Any) -> int | None:
        if not self.mapping.report_batch_item_failures or not isinstance(response, dict):
            return None
        failures = response.get("batchItemFailures") or []
        if not failures:
            return None
        index = {self.stream.sequence(raw): position for position, raw in enumerate(batch)}
        positions = [index.get((failure or {}).get("itemIdentifier")) for failure in failures]
        if any(position is None for position in positions):
            return 0  # an identifier that is not in the batch fails the whole batch, as on AWS
        return min(positions)

    def _invoke(self, cursor: ShardCursor, batch: list[dict], window: Window | None, *, final: bool) -> Any:
        records = [self._event_record(cursor, raw) for raw in batch]
        if window is not None:
            event = events.tumbling_window_event(
                records,
                window_start=window.start,
                window_end=window.end,
                state=window.state,
                shard_id=cursor.shard_id,
                source_arn=self.stream.arn,
                final=final,
            )
        else:
            event = {"Records": records}
        self.stats.invocations += 1
        response = self.invoke(event)
        if window is not None:
            state = response.get("state") if isinstance(response, dict) else None
            window.state = state if isinstance(state, dict) else {}
        return response

    def _event_record(self, cursor: ShardCursor, raw: dict) -> dict:
        if self.stream.kind == "kinesis":
            return events.kinesis_record(
                raw,
                shard_id=cursor.shard_id,
                stream_arn=self.stream.arn,
                region=self.region,
                function=self.mapping.function,
            )
        return events.dynamodb_record(raw, stream_arn=self.stream.arn, region=self.region)

    def _done(self, cursor: ShardCursor, batch: list[dict], window: Window | None) -> None:
        self.stats.records += len(batch)
        self._advance(cursor, batch, window)

    def _skip(self, cursor: ShardCursor, batch: list[dict], window: Window | None) -> None:
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


# --------------------------------------------------------------------------- Firehose


class FirehoseSource(ShardReaderMixin, SourceThread):
    """Firehose with a Kinesis source: buffer, transform, GZIP, deliver to S3."""

    def __init__(
        self,
        *,
        settings: LocalSettings,
        stream: KinesisStream,
        s3: Any,
        invoker: Invoker | None,
        region: str,
        stop: threading.Event,
    ) -> None:
        super().__init__(f"firehose:{settings.firehose.name}", stop)
        self.config = settings.firehose
        self.stream = stream
        self.s3 = s3
        self.invoke = invoker
        self.region = region
        self.interval = _float_env("ALLEYCAT_FIREHOSE_BUFFER_SECONDS", float(self.config.buffer_interval_seconds))
        self.size_bytes = self.config.buffer_size_mb * 1024 * 1024
        self.transform_bytes = self.config.transformer_buffer_size_mb * 1024 * 1024
        self.delivery_stream_arn = f"arn:aws:firehose:{region}:{events.ACCOUNT_ID}:deliverystream/{self.config.name}"
        self.lambda_arn = events.function_arn(region, self.config.transformer or "")
        self.checkpoints = CheckpointStore(_checkpoint_name("firehose", self.config.name))
        self.stats = SourceStats(
            name=f"firehose {self.config.name} ← {self.config.source_stream}",
            function=self.config.transformer or "",
            kind="firehose",
            source=self.config.source_stream,
            extra={"objects": 0, "processingFailed": 0, "bufferedRecords": 0},
        )
        self.sequence = 0
        self.reset()

    def reset(self) -> None:
        saved = self.checkpoints.load(self.stream.identity)["shards"]
        self.shards = ShardSet(self.stream, starting_position="TRIM_HORIZON", checkpoint=saved)
        self.processed: dict[str, str] = {sid: s["sequenceNumber"] for sid, s in saved.items() if s["sequenceNumber"]}
        self.buffer: list[dict] = []  # {"recordId", "raw", "shardId"}
        self.buffer_bytes = 0
        self.buffer_since = 0.0

    def loop(self) -> None:
        while not self.stop.is_set():
            self.shards.refresh()
            readable = self.shards.readable()
            self.stats.shards = len(readable)
            busy = False
            for cursor in readable:
                records = self.shards.read(cursor, 5000)
                busy = busy or len(records) >= 5000
                for raw in records:
                    if not self.buffer:
                        self.buffer_since = time.monotonic()
                    self.buffer.append(
                        {
                            "recordId": events.firehose_record_id(cursor.shard_id, raw["SequenceNumber"]),
                            "raw": raw,
                            "shardId": cursor.shard_id,
                        }
                    )
                    self.buffer_bytes += len(raw["Data"])
                if self.buffer_bytes >= self.size_bytes:
                    self.flush()
            self.stats.extra["bufferedRecords"] = len(self.buffer)
            if self.buffer:
                oldest = events.epoch_seconds(self.buffer[0]["raw"]["ApproximateArrivalTimestamp"])
                self.stats.lag_ms = int((time.time() - oldest) * 1000)
                if time.monotonic() - self.buffer_since >= self.interval:
                    self.flush()
            else:
                self.stats.lag_ms = 0
                self._finish_drained()
            if not busy:
                self.stop.wait(min(self.poll_seconds, max(0.05, self.interval / 4)))
        if self.buffer:
            self.flush()  # graceful stop: deliver what is buffered rather than read it again

    def _finish_drained(self) -> None:
        drained = [c for c in self.shards.cursors.values() if c.drained and not c.finished]
        if drained:
            for cursor in drained:
                cursor.finished = True
            self._save()

    def flush(self) -> None:
        buffer, self.buffer, self.buffer_bytes = self.buffer, [], 0
        ok_lines: list[bytes] = []
        failed: list[dict] = []
        for chunk in self._chunks(buffer):
            results = self._transform(chunk)
            for entry in chunk:
                result, data, message = results[entry["recordId"]]
                if result == "Ok":
                    ok_lines.append(data)
                elif result == "ProcessingFailed":
                    failed.append(
                        events.firehose_error_record(
                            raw_data=entry["raw"]["Data"],
                            arrival_ms=int(events.epoch_seconds(entry["raw"]["ApproximateArrivalTimestamp"]) * 1000),
                            error_code="Lambda.ProcessingFailed" if not message else "Lambda.FunctionError",
                            message=message or "The record was marked ProcessingFailed by the transformer.",
                            lambda_arn=self.lambda_arn,
                        )
                    )
        now = time.time()
        if ok_lines:
            self._put(self.config.prefix, b"".join(ok_lines), now)
        if failed:
            body = b"".join(json.dumps(line).encode() + b"\n" for line in failed)
            self._put(self.config.error_output_prefix, body, now)
            self.stats.extra["processingFailed"] += len(failed)
        for entry in buffer:
            self.processed[entry["shardId"]] = entry["raw"]["SequenceNumber"]
        for cursor in self.shards.cursors.values():
            if cursor.drained:
                cursor.finished = True
        self.stats.records += len(buffer)
        self._save()

    def _chunks(self, buffer: list[dict]) -> list[list[dict]]:
        chunks: list[list[dict]] = [[]]
        size = 0
        for entry in buffer:
            length = len(entry["raw"]["Data"]) * 4 // 3 + 200
            if chunks[-1] and size + length > self.transform_bytes:
                chunks.append([])
                size = 0
            chunks[-1].append(entry)
            size += length
        return [chunk for chunk in chunks if chunk]

    def _transform(self, chunk: list[dict]) -> dict[str, tuple[str, bytes, str]]:
        """recordId -> (result, delivered bytes, error message); without a transformer every record is Ok."""
        if self.invoke is None:
            return {entry["recordId"]: ("Ok", entry["raw"]["Data"], "") for entry in chunk}
        event = events.firehose_event(
            chunk,
            delivery_stream_arn=self.delivery_stream_arn,
            source_stream_arn=self.stream.arn,
            region=self.region,
        )
        error = ""
        for attempt in range(self.config.transformer_retries + 1):
            self.stats.invocations += 1
            try:
                response = self.invoke(event)
                return self._results(chunk, response)
            except Exception as exc:
                self.stats.error(exc)
                error = f"{type(exc).__name__}: {exc}"[:500]
                logger.warning("%s: transformer failed (attempt %d): %s", self.name, attempt + 1, error)
                if self.stop.wait(_retry_delay(attempt + 1)):
                    break
        return {entry["recordId"]: ("ProcessingFailed", b"", error) for entry in chunk}

    @staticmethod
    def _results(chunk: list[dict], response: Any) -> dict[str, tuple[str, bytes, str]]:
        by_id = {record.get("recordId"): record for record in (response or {}).get("records", [])}
        results: dict[str, tuple[str, bytes, str]] = {}
        for entry in chunk:
            record = by_id.get(entry["recordId"])
            if record is None:
                results[entry["recordId"]] = ("ProcessingFailed", b"", "record missing from the transformer response")
                continue
            result = record.get("result")
            if result == "Ok":
                results[entry["recordId"]] = ("Ok", base64.b64decode(record.get("data", "")), "")
            elif result == "Dropped":
                results[entry["recordId"]] = ("Dropped", b"", "")
            else:
                results[entry["recordId"]] = ("ProcessingFailed", b"", "")
        return results

    def _put(self, prefix: str, body: bytes, now: float) -> str:
        moment = datetime.fromtimestamp(now, UTC)
        self.sequence += 1
        compressed = self.config.compression.upper() == "GZIP"
        key = f"{prefix}{moment:%Y/%m/%d/%H}/{self.config.name}-1-{moment:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}" + (
            ".gz" if compressed else ""
        )
        data = gzip.compress(body, mtime=0) if compressed else body
        self.s3.put_object(Bucket=self.config.bucket, Key=key, Body=data)
        self.stats.extra["objects"] += 1
        logger.debug("%s: delivered s3://%s/%s (%d bytes)", self.name, self.config.bucket, key, len(data))
        return key


# --------------------------------------------------------------------------- S3 notifications


class S3NotificationSource(SourceThread):
    """Object-created notifications of a bucket (prefix/suffix filter) → an asynchronous invoke per object."""

    def __init__(
        self,
        *,
        mapping: EventSourceSettings,
        s3: Any,
        invoker: Invoker,
        dead_letters: DeadLetters,
        region: str,
        stop: threading.Event,
    ) -> None:
        super().__init__(f"{mapping.function}<-s3:{mapping.source}", stop)
        self.mapping = mapping
        self.s3 = s3
        self.invoke = invoker
        self.dead_letters = dead_letters
        self.region = region
        self.checkpoints = CheckpointStore(_checkpoint_name(mapping.function, mapping.name))
        self.stats = SourceStats(
            name=f"{mapping.function} ← s3://{mapping.source}/{mapping.s3_prefix}",
            function=mapping.function,
            kind="s3",
            source=mapping.source,
            extra={"objects": 0},
        )
        self.identity = ""
        self.seen: dict[str, float] = {}

    def reset(self) -> None:
        self.identity = ""

    def _identity(self) -> str:
        for bucket in self.s3.list_buckets().get("Buckets", []):
            if bucket["Name"] == self.mapping.source:
                return f"{bucket['Name']}@{events.epoch_seconds(bucket['CreationDate']):.3f}"
        raise RuntimeError(f"bucket {self.mapping.source} does not exist")

    def loop(self) -> None:
        while not self.stop.is_set():
            if not self.identity:
                self.identity = self._identity()
                self.seen = dict(self.checkpoints.load(self.identity).get("seen", {}))
            self.stats.shards = 1
            for obj in self._new_objects():
                if self.stop.is_set():
                    return
                self._notify(obj)
            self.stop.wait(self.poll_seconds)

    def _new_objects(self) -> list[dict]:
        prefix = self.mapping.s3_prefix
        lookback = datetime.fromtimestamp(time.time() - S3_LOOKBACK_SECONDS, UTC)
        kwargs: dict[str, Any] = {"Bucket": self.mapping.source, "Prefix": prefix}
        kwargs["StartAfter"] = f"{prefix}{lookback:%Y/%m/%d/%H}"  # Firehose keys start with the UTC hour
        found: list[dict] = []
        while True:
            response = self.s3.list_objects_v2(**kwargs)
            for obj in response.get("Contents", []):
                key = obj["Key"]
                if key.endswith(self.mapping.s3_suffix) and key not in self.seen:
                    found.append(obj)
            if not response.get("IsTruncated"):
                break
            kwargs["ContinuationToken"] = response["NextContinuationToken"]
        return sorted(found, key=lambda obj: (obj["LastModified"], obj["Key"]))

    def _notify(self, obj: dict) -> None:
        event = events.s3_put_event(
            bucket=self.mapping.source,
            key=obj["Key"],
            size=obj["Size"],
            etag=obj.get("ETag", ""),
            region=self.region,
            configuration_id=self.mapping.name,
        )
        self.stats.lag_ms = int((time.time() - events.epoch_seconds(obj["LastModified"])) * 1000)
        retries = self.mapping.maximum_retry_attempts if self.mapping.maximum_retry_attempts >= 0 else 2
        error = ""
        for attempt in range(retries + 1):
            self.stats.invocations += 1
            try:
                self.invoke(event)
                self.stats.records += 1
                self.stats.extra["objects"] += 1
                break
            except Exception as exc:
                self.stats.error(exc)
                error = f"{type(exc).__name__}: {exc}"
                logger.warning("%s: %s failed (attempt %d): %s", self.name, obj["Key"], attempt + 1, error[:300])
                if attempt < retries and self.stop.wait(10 * _retry_delay(attempt + 1)):
                    return  # stopping: not marked seen, so it is notified again after a restart
        else:
            body = events.async_failure_record(
                region=self.region, function=self.mapping.function, event=event, invoke_count=retries + 1, error=error
            )
            self.dead_letters.send(self.mapping.on_failure, body)
            self.stats.dead_letters += 1
        now = time.time()
        self.seen[obj["Key"]] = now
        self.seen = {key: at for key, at in self.seen.items() if at > now - S3_LOOKBACK_SECONDS - 3600}
        self.checkpoints.save(self.identity, {}, seen=self.seen)


# --------------------------------------------------------------------------- the runner


class Runner:
    """All event sources of the template, their threads and the status reporter."""

    def __init__(
        self,
        settings: LocalSettings,
        *,
        resources: Any,
        handlers: Mapping[str, Handler] | None = None,
        session: boto3.Session | None = None,
    ) -> None:
        self.settings = settings
        self.resources = resources
        self.stop = threading.Event()
        session = session or boto3.Session()
        self.region = settings.region
        self.kinesis = session.client("kinesis", config=_CLIENT_CONFIG)
        self.streams = session.client("dynamodbstreams", config=_CLIENT_CONFIG)
        self.s3 = session.client("s3", config=_CLIENT_CONFIG)
        self.sqs = session.client("sqs", config=_CLIENT_CONFIG)
        self.dead_letters = DeadLetters(self.sqs)
        self.handlers = dict(handlers or {})
        self.sandboxes: list[Sandbox] = []
        self.sources: list[SourceThread] = []
        self.report_seconds = _float_env("ALLEYCAT_RUNNER_REPORT_SECONDS", 5.0)
        self.status_path = status_file_path()
        self.started_at = time.time()
        self._dlq_messages: int | None = None
        self._build()

    def _handler(self, function: str) -> Callable[[dict], Any]:
        settings = self.settings.function(function)
        if function in self.handlers:
            return Invoker(settings, self.handlers[function], self.region)
        sandbox = Sandbox(
            function=function,
            module=settings.module,
            attribute=settings.attribute,
            region=self.region,
            memory_mb=settings.memory_mb,
            timeout=settings.timeout_seconds,
        )
        self.sandboxes.append(sandbox)
        return sandbox

    def _build(self) -> None:
        kinesis_streams: dict[str, KinesisStream] = {}

        def kinesis_stream(name: str) -> KinesisStream:
            if name not in kinesis_streams:
                kinesis_streams[name] = KinesisStream(self.kinesis, name)
            return kinesis_streams[name]

        for mapping in self.settings.event_sources():
            if mapping.kind == "kinesis":
                stream: StreamAdapter = kinesis_stream(mapping.source)
            elif mapping.kind == "dynamodb":
                stream = DynamoDBStream(self.streams, self.resources.table_stream_arn)
            elif mapping.kind == "s3":
                self.sources.append(
                    S3NotificationSource(
                        mapping=mapping,
                        s3=self.s3,
                        invoker=self._handler(mapping.function),
                        dead_letters=self.dead_letters,
                        region=self.region,
                        stop=self.stop,
                    )
                )
                continue
            else:
                continue  # the transformer's "firehose" trigger is the Firehose source below
            self.sources.append(
                StreamMappingSource(
                    mapping=mapping,
                    stream=stream,
                    invoker=self._handler(mapping.function),
                    dead_letters=self.dead_letters,
                    region=self.region,
                    stop=self.stop,
                )
            )
        firehose = self.settings.firehose
        self.sources.append(
            FirehoseSource(
                settings=self.settings,
                stream=kinesis_stream(firehose.source_stream),
                s3=self.s3,
                invoker=self._handler(firehose.transformer) if firehose.transformer else None,
                region=self.region,
                stop=self.stop,
            )
        )

    def start(self) -> None:
        for source in self.sources:
            source.start()
        logger.info("runner started: %s", ", ".join(source.stats.name for source in self.sources))

    def status(self) -> dict[str, Any]:
        return {
            "updatedAt": events.iso_ms(time.time()),
            "startedAt": events.iso_ms(self.started_at),
            "pid": os.getpid(),
            "running": not self.stop.is_set(),
            "endpoint": os.environ.get("AWS_ENDPOINT_URL") or "AWS",
            "sources": [source.stats.snapshot() for source in self.sources],
            "deadLetterQueue": {
                "name": self.settings.dead_letter_queue.name,
                "approximateMessages": self._dlq_messages,
            },
        }

    def report(self) -> dict[str, Any]:
        try:
            url = self.dead_letters.url(self.settings.dead_letter_queue.name)
            attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
            self._dlq_messages = int(attributes["Attributes"]["ApproximateNumberOfMessages"])
        except Exception as exc:  # the figures are best effort; the pipeline goes on
            logger.debug("dead-letter queue size unavailable: %s", exc)
        status = self.status()
        write_json_atomically(self.status_path, status)
        parts = [
            f"{s['function'] or s['kind']}[{s['kind']}] lag={s['lagMs']}ms {s['recordsPerSecond']}/s "
            f"total={s['records']} err={s['errors']} dlq={s['deadLetters']}"
            for s in status["sources"]
        ]
        logger.info("%s | dlq messages=%s", " | ".join(parts), self._dlq_messages)
        return status

    def run_until_stopped(self) -> None:
        self.start()
        try:
            while not self.stop.wait(self.report_seconds):
                self.report()
        finally:
            self.stop.set()
            for source in self.sources:
                source.join(timeout=30)
            for sandbox in self.sandboxes:
                sandbox.close()
            status = self.report()
            status["running"] = False
            write_json_atomically(self.status_path, status)
            logger.info("runner stopped")


def configure_environment(settings: LocalSettings, resources: Any, environ: dict = os.environ) -> None:  # type: ignore[assignment]
    """Give this process the functions' environment (the template's variables; values already set win)."""
    for function in settings.functions:
        for name, value in settings.environment(function, resources).items():
            if name in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_LOG_LEVEL"):
                continue
            environ.setdefault(name, value)
    environ.setdefault("POWERTOOLS_LOG_LEVEL", os.environ.get("ALLEYCAT_HANDLER_LOG_LEVEL") or "WARNING")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m processors.local.runner", description=__doc__.split("\n")[0])
    parser.add_argument("--template", default=None, help="SAM template (default: infra/template.yaml)")
    parser.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from processors.local.bootstrap import bootstrap

    parameters = {**template_parameters_from_env(), **dict(item.split("=", 1) for item in args.parameter)}
    settings = load_local_settings(args.template, parameters=parameters)
    resources = bootstrap(None, settings)
    configure_environment(settings, resources)
    runner = Runner(settings, resources=resources)

    def request_stop(signum: int, _frame: Any) -> None:
        if runner.stop.is_set():
            os._exit(130)  # a second Ctrl-C: do not wait for the batch in progress
        logger.info("signal %s: stopping after the batches in progress", signal.Signals(signum).name)
        runner.stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    runner.run_until_stopped()
    return 0


if __name__ == "__main__":
    sys.exit(main())
