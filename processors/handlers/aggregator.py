"""Aggregator: Kinesis (tumbling window) -> the live item of each race; settles races.

Lambda event (Kinesis with a tumbling window): ``Records`` plus ``window`` {start, end},
``state`` (what the previous invocation of the window returned), ``shardId``,
``eventSourceARN``, ``isFinalInvokeForWindow`` and ``isWindowTerminatedEarly``. Response:
``{"state": {...}}``; the state returned on the final invoke is discarded by Lambda.

Each record is decoded and validated, then checked against its race's identity (A0, read with one
BatchGetItem per invocation for the races of the batch; nothing is cached across invocations):
``unknown_race``, ``class_mismatch``, ``second_out_of_race``, ``late`` (arrived in the stream after
the race's settle deadline, or the race has settled). Bad records are counted, logged with their
sequence number, sent to the dead-letter queue and skipped; they never fail the batch. Readings are
folded into the state (a plain dict of pending seconds per racer). The state is written out on the
final invoke of a window (or when the window ended early), on every invoke when no window is
configured, and early when it holds more than ``max_pending_seconds`` entries, which bounds its
size. A write-out is one conditional put per race (see ``ResultsTable.merge_live``): the process
keeps the boards it wrote (``processors.table.boards``) and merges the next window into those
without reading them back; a board someone else wrote meanwhile refuses that put and is read and
merged as before. What a write-out could not store is dead-lettered as a fragment of the window
state (``{"raceId", "classId", "racers": {...}}``, the state's own format, so it can be merged
again): new racers of a full race (``race_full``), a live item over the size guard or refused for
its size (``item_too_large``), a race that settled meanwhile (``late``). If the table is unavailable
the invocation fails and Lambda retries the batch, which is safe because every second is counted
once.

Settlement: after a write-out (of 1 s windows, every fifth: ``checks_settlement``) the shard's
watermark (the arrival time of the newest record written out) is stored; a race whose settle
deadline every active shard has passed is settled (``ResultsTable.settle_race``: freeze,
reconcile finals, mark settled). A shard that wrote nothing
for ``shard_idle_seconds`` counts as caught up. Settlement failures are logged and retried at the
next write-out; they never fail the batch.
"""

from __future__ import annotations

import binascii
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import orjson
from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamWindow
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from processors.config import DEFAULT_MAX_RACERS_PER_RACE, get_config
from processors.deadletter import DeadLetter, send_dead_letters
from processors.domain.message import BadRecord, Reason, decode_payloads
from processors.domain.schedule import check_schedule
from processors.domain.window import PendingRacer, WindowState, fold_fields, new_state, state_seconds
from processors.observability import RECORDS_CORRELATION_PATH, count, logger, metrics, milliseconds, tracer
from processors.table import ResultsTable, TableError, get_results_table

HANDLER = "aggregator"
MAX_BAD_RECORD_LOGS = 100
MAX_RACES_IN_SUMMARY = 20
SETTLE_CHECK_SECONDS = 5  # see checks_settlement
FRAGMENT_BYTES = 12 * 1024  # a dead-lettered state fragment stays under the letter's 16 KB data limit


def fold_kinesis_records(
    records: Sequence[Mapping[str, Any]], state: WindowState, table: ResultsTable | None = None
) -> tuple[int, list[tuple[Mapping[str, Any], BadRecord]]]:
    """Decode Kinesis records, check them against their races and fold the valid ones into ``state``.

    Returns (readings, bad records). Without ``table`` the schedule is not checked (benchmarks of
    the decoder only).
    """
    good, bad = decode_payloads([record["kinesis"]["data"] for record in records])
    accepted = good
    newest = _newest_arrival_ms(records)
    if table is not None and good:
        races = table.race_identities({fields[4] for _index, fields in good})
        accepted = []
        for index, fields in good:
            race = races.get(fields[4])
            # Arrival per record only when the batch reaches past the race's deadline (rare).
            arrival = newest if race is None or newest <= race.settle_at_ms else _arrival_ms(records[index])
            problem = check_schedule(race, fields[7], fields[3], arrival)
            if problem is None:
                accepted.append((index, fields))
            else:
                bad.append((index, problem))
        bad.sort(key=lambda pair: pair[0])
    fold_fields(state, (fields for _index, fields in accepted))
    if records:
        state["w"] = max(state.get("w", 0), newest)
    return len(accepted), [(records[index], problem) for index, problem in bad]


def _newest_arrival_ms(records: Sequence[Mapping[str, Any]]) -> int:
    # Kinesis delivers a shard's records in arrival order, but take the max: replays and tests may not.
    arrivals = [record["kinesis"].get("approximateArrivalTimestamp") for record in records]
    known = [arrival for arrival in arrivals if arrival is not None]
    if len(known) < len(arrivals):
        known.append(time.time())
    return int(float(max(known)) * 1000) if known else 0


def _arrival_ms(record: Mapping[str, Any]) -> int:
    arrival = record.get("kinesis", {}).get("approximateArrivalTimestamp")
    return int(float(arrival) * 1000) if arrival is not None else int(time.time() * 1000)


def write_state(
    table: ResultsTable, state: WindowState, *, max_racers: int = DEFAULT_MAX_RACERS_PER_RACE
) -> tuple[dict[str, Any], list[tuple[str, int, int, dict[str, PendingRacer]]]]:
    """Merge every race of the state into its live item.

    Returns counts for the summary, and what was not written as (reason, race, class, racers).
    """
    written = unchanged = conflicts = too_large = settled = full = 0
    largest_item = 0
    unwritten: list[tuple[str, int, int, dict[str, PendingRacer]]] = []
    for race_key, race in state["races"].items():
        race_id = int(race_key)
        outcome = table.merge_live(race_id, race["c"], race["r"], max_racers=max_racers)
        conflicts += outcome.attempts - 1
        if outcome.rejected:
            full += len(outcome.rejected)
            unwritten.append((str(Reason.RACE_FULL), race_id, race["c"], dict(outcome.rejected)))
            logger.warning(
                "race full, new racers refused",
                extra={"raceId": race_id, "racers": outcome.racers, "refused": len(outcome.rejected)},
            )
        rest = (
            dict(outcome.unwritten)
            if outcome.unwritten is not None
            else {key: value for key, value in race["r"].items() if key not in outcome.rejected}
        )
        if outcome.settled:
            settled += 1
            unwritten.append((str(Reason.LATE), race_id, race["c"], rest))
            logger.warning("race settled meanwhile, window not written", extra={"raceId": race_id})
        elif outcome.too_large:
            too_large += 1
            unwritten.append((str(Reason.ITEM_TOO_LARGE), race_id, race["c"], rest))
            logger.error(
                "live item over the size limit, not written",
                extra={"raceId": race_id, "racers": outcome.racers, "itemBytes": outcome.item_bytes},
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
        "settledMeanwhile": settled,
        "raceFull": full,
        "largestItemBytes": largest_item,
    }, unwritten


def _unwritten_letters(
    unwritten: list[tuple[str, int, int, dict[str, PendingRacer]]], event: KinesisStreamEvent
) -> list[DeadLetter]:
    """State fragments of what could not be written, each small enough to be kept whole."""
    letters = []
    for reason, race_id, class_id, racers in unwritten:
        chunk: dict[str, PendingRacer] = {}
        size = 0
        items = sorted(racers.items(), key=lambda pair: int(pair[0]))
        for position, (racer_key, pending) in enumerate(items):
            chunk[racer_key] = pending
            size += len(orjson.dumps(pending)) + len(racer_key) + 4
            if size >= FRAGMENT_BYTES or position == len(items) - 1:
                seconds = sum(len(value["o"]) for value in chunk.values())
                letters.append(
                    DeadLetter(
                        reason=reason,
                        detail=f"race {race_id}: {len(chunk)} racers, {seconds} seconds not written",
                        handler=HANDLER,
                        data=orjson.dumps({"raceId": race_id, "classId": class_id, "racers": chunk}),
                        source=event.event_source_arn or "",
                        shard_id=event.shard_id,
                    )
                )
                chunk, size = {}, 0
    return letters


def checks_settlement(window: KinesisStreamWindow | None) -> bool:
    """Whether this write-out also stores the shard's watermark and looks for races to settle.

    Not every window: a race settles minutes after its end (its settle deadline), and the two
    requests of the check were half of a 1 s window's requests. Every write-out without a window
    or with a window of ``SETTLE_CHECK_SECONDS`` or more; of shorter windows (aligned to the clock,
    as Lambda's are) the one that closes on a multiple of ``SETTLE_CHECK_SECONDS``. A shard that
    only ever has records in other windows keeps an older watermark and, once it is idle for
    ``shard_idle_seconds``, no longer holds settlement back.
    """
    if window is None:
        return True
    start, end = _epoch_ms(window.start), _epoch_ms(window.end)
    step = SETTLE_CHECK_SECONDS * 1000
    return end - start >= step or start // step != end // step


def _epoch_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def settle_due(
    table: ResultsTable, shard: str, watermark_ms: int, *, idle_ms: int, now_ms: int | None = None
) -> list[int]:
    """Store this shard's watermark and settle every race that all active shards have passed. Never raises."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    settled: list[int] = []
    try:
        table.advance_watermark(shard, watermark_ms, now_ms=now)
        due = table.races_due(watermark_ms)
        if not due:
            return settled
        active = [mark.arrival_ms for mark in table.watermarks() if now - mark.updated_at_ms <= idle_ms]
        position = min([*active, watermark_ms])
        for race in due:
            if race.settle_at_ms > position:
                continue
            outcome = table.settle_race(race, now_ms=now)
            settled.append(race.race_id)
            count("RacesSettled", 1)
            count("ResultsReconciled", outcome.reconciled)
            logger.info(
                "race settled",
                extra={
                    "raceId": race.race_id,
                    "settleAt": race.settle_at_ms,
                    "position": position,
                    "finished": outcome.finished,
                    "reconciled": outcome.reconciled,
                },
            )
    except (TableError, ClientError, BotoCoreError) as exc:
        # Settlement waits for the next write-out; the readings are safe in the live items already.
        count("SettleFailed", 1)
        logger.error("settlement failed, retried at the next write-out", extra={"error": str(exc)[:300]})
    return settled


def _report_bad(bad: list[tuple[Mapping[str, Any], BadRecord]], event: KinesisStreamEvent) -> None:
    send_dead_letters(_bad_letters(bad, event))


def _bad_letters(bad: list[tuple[Mapping[str, Any], BadRecord]], event: KinesisStreamEvent) -> list[DeadLetter]:
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
    return letters


def _raw_data(data: str) -> bytes:
    # The original payload when it is base64, else the text itself (bad base64 is kept as sent).
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        return data.encode(errors="replace")


def _shard_of(event_id: str) -> str | None:
    shard, _, _ = event_id.partition(":")
    return shard or None


def _shard_name(event: KinesisStreamEvent, records: Sequence[Mapping[str, Any]]) -> str:
    arn = event.event_source_arn or (records[0].get("eventSourceARN") if records else "") or ""
    shard = event.shard_id or (_shard_of(records[0].get("eventID", "")) if records else None) or "unknown"
    return f"{arn.rpartition('/')[2] or 'stream'}/{shard}"


def handle(
    event: KinesisStreamEvent,
    table: ResultsTable,
    *,
    max_pending_seconds: int,
    max_racers: int = DEFAULT_MAX_RACERS_PER_RACE,
    shard_idle_seconds: int = 60,
) -> dict[str, Any]:
    started = time.perf_counter()
    # The state Lambda hands back is the JSON of what the previous invocation returned (WindowState).
    state = cast(WindowState, event.state) if "races" in event.state else new_state()
    records = event.raw_event.get("Records") or []
    readings, bad = fold_kinesis_records(records, state, table)
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
    settled: list[int] = []
    if final or early:
        writes, unwritten = write_state(table, state, max_racers=max_racers)
        if unwritten:
            letters = _unwritten_letters(unwritten, event)
            count("UnwrittenLetters", len(letters))
            send_dead_letters(letters)
        watermark = state.get("w")
        if watermark and checks_settlement(event.window):
            settled = settle_due(table, _shard_name(event, records), watermark, idle_ms=shard_idle_seconds * 1000)
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
            "settled": settled[:MAX_RACES_IN_SUMMARY],
            "durationMs": round(duration_ms, 3),
        },
    )
    return {"state": state}


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(correlation_id_path=RECORDS_CORRELATION_PATH)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config = get_config()
    return handle(
        KinesisStreamEvent(event),
        get_results_table(),
        max_pending_seconds=config.max_pending_seconds,
        max_racers=config.max_racers_per_race,
        shard_idle_seconds=config.shard_idle_seconds,
    )
