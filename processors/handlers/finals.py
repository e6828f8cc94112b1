"""Finals: the table's stream -> final results and class personal bests.

For each stream record of a live item, racers newly finished in NEW_IMAGE against
OLD_IMAGE (or finished racers whose score changed, when a late second arrived) get their
final result written (an idempotent put) and their personal best in the class updated only if
the new score is greater (a conditional put), in TransactWriteItems of 100 (``ResultsTable.put_finals``). Records of
other items (results, bests written by this handler) are ignored. Failures are reported per
record (``batchItemFailures``); Lambda retries from the first failed record.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from processors.observability import RECORDS_CORRELATION_PATH, count, logger, metrics, milliseconds, tracer
from processors.table import ResultsTable, final_results_from_stream, get_results_table


def process_record(record: DynamoDBRecord, table: ResultsTable) -> tuple[int, int]:
    """Write the finals a stream record implies. Returns (final results written, personal bests improved)."""
    change = record.raw_event.get("dynamodb") or {}
    results = final_results_from_stream(change.get("OldImage"), change.get("NewImage"))
    if not results:
        return 0, 0
    return table.put_finals(results)


def handle(event: dict[str, Any], table: ResultsTable, context: LambdaContext | None) -> dict[str, Any]:
    started = time.perf_counter()
    written: list[tuple[int, int]] = []  # this invocation's (results, bests) per successful record

    def record_handler(record: DynamoDBRecord) -> None:
        written.append(process_record(record, table))

    # One processor per invocation: it holds the batch's records and failures.
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    records = len(event.get("Records") or [])
    failed = len(response.get("batchItemFailures", []))
    finals = sum(results for results, _bests in written)
    bests = sum(improved for _results, improved in written)
    duration_ms = (time.perf_counter() - started) * 1000
    count("StreamRecords", records)
    count("FinalResultsWritten", finals)
    count("PersonalBestsImproved", bests)
    count("FailedRecords", failed)
    milliseconds("FinalsDuration", duration_ms)
    logger.info(
        "finals",
        extra={
            "records": records,
            "finalResults": finals,
            "personalBests": bests,
            "failed": failed,
            "durationMs": round(duration_ms, 3),
        },
    )
    return dict(response)


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(correlation_id_path=RECORDS_CORRELATION_PATH)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, get_results_table(), context)
