"""Aggregator: Kinesis (tumbling window) -> the live item of each race.

Lambda event (Kinesis with a tumbling window): ``Records`` plus ``window`` {start, end},
``state`` (what the previous invocation of the window returned), ``shardId``,
``eventSourceARN``, ``isFinalInvokeForWindow`` and ``isWindowTerminatedEarly``. Response:
``{"state": {...}}``; the state returned on the final invoke is discarded by Lambda.

Each record is decoded and validated; bad records are counted, logged with their sequence
number, sent to the dead-letter queue and skipped. Readings are folded into the state (a
plain dict of pending seconds per racer). The state is written out on the final invoke of a
window (or when the window ended early), on every invoke when no window is configured, and
early when it holds more than ``max_pending_seconds`` entries, which bounds its size. A
write-out is one conditional put per race (see ``ResultsTable.merge_live``); if the table is
unavailable the invocation fails and Lambda retries the batch, which is safe because every
second is counted once.
"""

from __future__ import annotations

import binascii
import time
from collections.abc import Mapping, Sequence
from typing import Any

from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from processors.config import get_config
from processors.deadletter import DeadLetter, send_dead_letters
from processors.domain import BadRecord, fold_payloads, new_state, state_seconds
from processors.observability import RECORDS_CORRELATION_PATH, count, logger, metrics, milliseconds, tracer
from processors.table import ResultsTable, get_results_table

HANDLER = "aggregator"
MAX_BAD_RECORD_LOGS = 100
MAX_RACES_IN_SUMMARY = 20


def fold_kinesis_records(
    records: Sequence[Mapping[str, Any]], state: dict[str, Any]
) -> tuple[int, list[tuple[Mapping[str, Any], BadRecord]]]:
    """Decode Kinesis records and fold the valid ones into ``state``. Returns (readings, bad records)."""
    bad = fold_payloads(state, [record["kinesis"]["data"] for record in records])
    return len(records) - len(bad), [(records[index], problem) for index, problem in bad]


def write_state(table: ResultsTable, state: Mapping[str, Any]) -> dict[str, Any]:
    """Merge every race of the state into its live item. Returns counts for the summary."""
    written = unchanged = conflicts = too_large = 0
    largest_item = 0
    for race_key, race in state.get("races", {}).items():
        outcome = table.merge_live(int(race_key), race["c"], race["r"])
        conflicts += outcome.attempts - 1
        if outcome.too_large:
            too_large += 1
            logger.error(
                "live item over the DynamoDB item limit, not written",
                extra={"raceId": int(race_key), "racers": outcome.racers, "itemBytes": outcome.item_bytes},
            )
        elif outcome.written:
            written += 1
            largest_item = max(largest_item, outcome.item_bytes)
        else:
            unchanged += 1
    return {
        "written": written,
        "unchanged": unchanged,
        "conflicts": conflicts,
        "tooLarge": too_large,
        "largestItemBytes": largest_item,
    }


def _report_bad(bad: list[tuple[Mapping[str, Any], BadRecord]], event: KinesisStreamEvent) -> None:
    letters = []
    for index, (record, problem) in enumerate(bad):
        kinesis = record.get("kinesis", {})
        sequence_number = kinesis.get("sequenceNumber")
        if index < MAX_BAD_RECORD_LOGS:
            logger.warning(
                "bad record skipped",
                extra={
                    "sequenceNumber": sequence_number,
                    "reason": str(problem.reason),
                    "detail": problem.detail[:200],
                },
            )
        letters.append(
            DeadLetter(
                reason=str(problem.reason),
                detail=problem.detail,
                handler=HANDLER,
                data=_raw_data(kinesis.get("data", "")),
                source=record.get("eventSourceARN") or event.event_source_arn or "",
                sequence_number=sequence_number,
                shard_id=event.shard_id or _shard_of(record.get("eventID", "")),
                partition_key=kinesis.get("partitionKey"),
            )
        )
    send_dead_letters(letters)


def _raw_data(data: str) -> bytes:
    # The original payload when it is base64, else the text itself (bad base64 is kept as sent).
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        return data.encode(errors="replace")


def _shard_of(event_id: str) -> str | None:
    shard, _, _ = event_id.partition(":")
    return shard or None


def handle(event: KinesisStreamEvent, table: ResultsTable, *, max_pending_seconds: int) -> dict[str, Any]:
    started = time.perf_counter()
    state = event.state if "races" in event.state else new_state()
    records = event.raw_event.get("Records") or []
    readings, bad = fold_kinesis_records(records, state)
    if bad:
        _report_bad(bad, event)

    count("RecordsIn", len(records))
    count("Readings", readings)
    count("BadRecords", len(bad))
    final = event.window is None or bool(event.is_final_invoke_for_window) or bool(event.is_window_terminated_early)
    pending = state_seconds(state)
    early = not final and pending > max_pending_seconds
    races = sorted(int(race_key) for race_key in state["races"])
    writes: dict[str, Any] = {}
    if final or early:
        writes = write_state(table, state)
        state = new_state()

    duration_ms = (time.perf_counter() - started) * 1000
    if writes:
        count("LiveWrites", writes["written"])
        count("WriteConflicts", writes["conflicts"])
        count("LiveItemsTooLarge", writes["tooLarge"])
    milliseconds("AggregateDuration", duration_ms)
    logger.info(
        "aggregated",
        extra={
            "shardId": event.shard_id,
            "records": len(records),
            "readings": readings,
            "bad": len(bad),
            "races": races[:MAX_RACES_IN_SUMMARY],
            "raceCount": len(races),
            "pendingSeconds": pending,
            "finalInvoke": final,
            "earlyWrite": early,
            **writes,
            "durationMs": round(duration_ms, 3),
        },
    )
    return {"state": state}


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(correlation_id_path=RECORDS_CORRELATION_PATH)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(KinesisStreamEvent(event), get_results_table(), max_pending_seconds=get_config().max_pending_seconds)
