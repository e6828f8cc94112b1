"""Firehose data transformation: validate each bike message and add its ``output``.

One response record per input record, same ``recordId``:

- ``Ok``: a valid message, re-serialised as JSON with ``output`` added, plus ``"\\n"`` (so the
  delivered GZIP object is newline-delimited JSON). Only the fields of the bike message are kept
  (``uuid`` only when the producer sent it); unknown extra fields are left out.
- ``ProcessingFailed``: a bad record (not base64, not JSON, missing/wrong-typed/out-of-range
  field, unknown event, too large). Firehose writes the original payload, untouched and complete,
  under the ``processing-failed/`` prefix of the delivery bucket, so it stays recoverable; we also
  send it with its reason and sequence number to the dead-letter queue, like every handler does.
- ``Dropped``: records that carry nothing to recover, so writing them anywhere would only add noise:
  an empty or whitespace-only payload, and a byte-identical repeat of a record already ``Ok`` in
  the same invocation (Kinesis delivers at least once; history is idempotent anyway, this just keeps
  the objects small).

A bad record never fails the invocation: failing it would make Firehose retry the whole batch.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.data_classes import KinesisFirehoseEvent, event_source
from aws_lambda_powertools.utilities.data_classes.kinesis_firehose_event import KinesisFirehoseRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from processors.deadletter import DeadLetter, send_dead_letters
from processors.domain.message import BadRecord, decode_fields, delivered_line
from processors.observability import count, logger, metrics, tracer

HANDLER = "transformer"
_b64encode = base64.b64encode

OK = "Ok"
DROPPED = "Dropped"
PROCESSING_FAILED = "ProcessingFailed"


@dataclass(frozen=True, slots=True)
class Transformed:
    result: str  # Ok | Dropped | ProcessingFailed
    data: str  # base64 of the new payload (Ok) or of the original one
    bad: BadRecord | None = None
    raw: bytes = b""


def transform(data: str, seen: set[str]) -> Transformed:
    """Transform one base64 Firehose payload. ``seen`` holds the payloads already Ok in this invocation.

    The hot path decodes base64 and validates in one call (``decode_fields``), and a repeat is found
    by its base64 text (the same bytes always encode to the same text); a payload that fails is
    decoded again only to tell an empty one (Dropped) from a bad one.
    """
    if data in seen:
        return Transformed(DROPPED, data)
    fields = decode_fields(data, base64_encoded=True)
    if type(fields) is tuple:
        seen.add(data)
        return Transformed(OK, _b64encode(delivered_line(fields)).decode())
    bad: BadRecord = fields  # type: ignore[assignment]
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return Transformed(PROCESSING_FAILED, data, bad, data.encode())
    if not raw.strip():
        return Transformed(DROPPED, data)
    return Transformed(PROCESSING_FAILED, data, bad, raw)


def handle(event: KinesisFirehoseEvent) -> dict[str, Any]:
    """One output record per input record (``{"records": [...]}``); bad records also go to the dead-letter queue."""
    seen: set[str] = set()
    records: list[dict[str, str]] = []
    letters: list[DeadLetter] = []
    tally = {OK: 0, DROPPED: 0, PROCESSING_FAILED: 0}
    reasons: dict[str, int] = {}
    source = event.source_kinesis_stream_arn or event.delivery_stream_arn
    ok = 0
    for raw_record in event.raw_event["records"]:
        data = raw_record["data"]
        if data not in seen:  # the hot path, inline: a valid record seen once (as ``transform``)
            fields = decode_fields(data, base64_encoded=True)
            if type(fields) is tuple:
                seen.add(data)
                line = _b64encode(delivered_line(fields)).decode()
                records.append({"recordId": raw_record["recordId"], "result": OK, "data": line})
                ok += 1
                continue
        record = KinesisFirehoseRecord(raw_record)  # the slow path: Powertools' view of the record
        outcome = transform(data, seen)
        tally[outcome.result] += 1
        records.append({"recordId": record.record_id, "result": outcome.result, "data": outcome.data})
        if outcome.bad is not None:
            reasons[outcome.bad.reason] = reasons.get(outcome.bad.reason, 0) + 1
            metadata = record.metadata
            letters.append(
                DeadLetter(
                    reason=outcome.bad.reason,
                    detail=outcome.bad.detail,
                    handler=HANDLER,
                    data=outcome.raw,
                    source=source,
                    sequence_number=metadata.sequence_number if metadata else None,
                    shard_id=metadata.shard_id if metadata else None,
                    partition_key=metadata.partition_key if metadata else None,
                )
            )
    tally[OK] += ok
    sent = send_dead_letters(letters)
    count("RecordsIn", len(records))
    count("RecordsOk", tally[OK])
    count("RecordsDropped", tally[DROPPED])
    count("BadRecords", tally[PROCESSING_FAILED])
    logger.info(
        "transformed",
        extra={
            "records": len(records),
            "ok": tally[OK],
            "dropped": tally[DROPPED],
            "processingFailed": tally[PROCESSING_FAILED],
            "reasons": reasons,
            "deadLettersSent": sent,
        },
    )
    return {"records": records}


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(correlation_id_path="invocationId", clear_state=True)
@event_source(data_class=KinesisFirehoseEvent)
def lambda_handler(event: KinesisFirehoseEvent, context: LambdaContext) -> dict[str, Any]:
    return handle(event)
