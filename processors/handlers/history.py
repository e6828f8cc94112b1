"""History: S3 object-created events of Firehose objects in the delivery bucket.

Each object is GZIP newline-delimited JSON (the transformer's output). For all objects of the
event together, the handler

1. writes each racer's output per second in each race through the table module
   (``ResultsTable.put_race_seconds``: one item per bucket of racers, race and object, at most 64,
   BatchWriteItem 25 at a time, so a 1,000-racer object costs 3 writes), and
2. merges the per-second personal bests into ``class-<id>.json.gz`` in the history bucket
   (``processors.history_store.merge_class_history``: conditional put on the ETag, retried on conflict).

Both steps are idempotent, so a retried invocation or a replayed object leaves S3 and DynamoDB as
they were. Keys in the event are URL-encoded (``unquote_plus``). Objects under the error prefix
(``processing-failed/``) are not bike messages and are skipped; a line that is not a valid message
goes to the dead-letter queue with ``s3://bucket/key`` and its line number. Anything else that
fails (S3 or DynamoDB unreachable) raises: Lambda retries the asynchronous invoke and then sends
the event to the on-failure destination (the dead-letter queue), so no object is lost silently.
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from processors.clients import aws_client
from processors.config import get_config
from processors.deadletter import DeadLetter, send_dead_letters
from processors.domain.message import BadRecord, Reading, decode_reading
from processors.history_store import best_outputs, merge_class_history
from processors.observability import count, logger, metrics, tracer
from processors.table import ResultsTable, get_results_table

HANDLER = "history"
ERROR_OUTPUT_PREFIX = "processing-failed/"
GZIP_MAGIC = b"\x1f\x8b"


def _lines(body: bytes) -> Iterator[bytes]:
    data = gzip.decompress(body) if body[:2] == GZIP_MAGIC else body
    for line in data.split(b"\n"):
        if line.strip():
            yield line


def handle(event: S3Event, *, s3: Any, table: ResultsTable, history_bucket: str) -> dict[str, Any]:
    """Read the delivered objects, write per-second outputs and merge personal bests; returns the summary."""
    started = time.perf_counter()
    readings: list[Reading] = []
    by_object: list[tuple[str, list[Reading]]] = []  # each object's readings, for its per-second items
    letters: list[DeadLetter] = []
    objects = skipped = 0
    for record in event.records:
        bucket = record.s3.bucket.name
        key = unquote_plus(record.s3.get_object.key)
        source = f"s3://{bucket}/{key}"
        if not record.event_name.startswith("ObjectCreated") or key.startswith(ERROR_OUTPUT_PREFIX):
            skipped += 1
            continue
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("NoSuchKey", "404"):
                raise
            logger.warning("delivered object is gone", extra={"object": source})
            skipped += 1
            continue
        objects += 1
        try:
            lines = list(_lines(body))
        except (OSError, EOFError, zlib.error) as exc:
            letters.append(DeadLetter("bad_object", str(exc)[:200], HANDLER, body, source=source))
            continue
        object_readings: list[Reading] = []
        for number, line in enumerate(lines, start=1):
            decoded = decode_reading(line)
            if isinstance(decoded, BadRecord):
                letters.append(
                    DeadLetter(
                        decoded.reason, decoded.detail, HANDLER, line, source=source, sequence_number=str(number)
                    )
                )
            else:
                object_readings.append(decoded)
        by_object.append((source, object_readings))
        readings.extend(object_readings)

    races: set[int] = set()
    seconds_items = 0
    for source, object_readings in by_object:
        # race -> racer -> second -> output; the object names the items, so a replay rewrites the same ones
        for race_id, outputs_by_racer in best_outputs(object_readings, by_race=True).items():
            seconds_items += table.put_race_seconds(race_id, outputs_by_racer, source=source)
            races.add(race_id)

    merges = [
        merge_class_history(s3, history_bucket, class_id, racers)
        for class_id, racers in sorted(best_outputs(readings).items())
    ]
    sent = send_dead_letters(letters)

    count("ObjectsIn", objects)
    count("RecordsIn", len(readings) + len(letters))
    count("BadRecords", len(letters))
    count("HistoryObjectsWritten", sum(merge.written for merge in merges))
    count("HistoryConflicts", sum(max(merge.attempts - 1, 0) for merge in merges))
    summary = {
        "objects": objects,
        "skipped": skipped,
        "records": len(readings),
        "bad": len(letters),
        "deadLettersSent": sent,
        "races": sorted(races),
        "secondsItems": seconds_items,
        "classesWritten": [merge.class_id for merge in merges if merge.written],
        "classesUnchanged": [merge.class_id for merge in merges if not merge.written],
        "conflicts": sum(max(merge.attempts - 1, 0) for merge in merges),
        "durationMs": round((time.perf_counter() - started) * 1000, 1),
    }
    logger.info("history merged", extra=summary)
    return summary


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(correlation_id_path="Records[0].s3.object.key", clear_state=True)
@event_source(data_class=S3Event)
def lambda_handler(event: S3Event, context: LambdaContext) -> dict[str, Any]:
    return handle(event, s3=aws_client("s3"), table=get_results_table(), history_bucket=get_config().history_bucket)
