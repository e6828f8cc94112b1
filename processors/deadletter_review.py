"""Staff review of the dead-letter queue: list what is in it, put records back on the stream, discard.

The queue holds two kinds of message (both described in ``processors/deadletter.py`` and
docs/contracts.md):

- a **bad record** (``record``): the body ``dead_letter_body`` writes, with ``reason``, ``detail``,
  ``handler`` and the original payload (base64, cut at 16 KB with ``truncated``);
- an **on-failure record** (``batch``): what Lambda (or the local runner) sends to an event-source
  mapping's destination when a whole batch failed after its retries: no records, only the shard
  and the sequence-number range (``KinesisBatchInfo`` / ``DDBStreamBatchInfo``).

A redrive puts the original records back on the Kinesis stream, where the aggregator checks them
again: one that failed for a reason since fixed (its race was published late, a handler bug fixed)
now counts; one still bad comes back to the queue with its reason. Counting is idempotent per
(race, racer, second), so a redriven record never counts twice. Redrivable: bad records of the
Kinesis-fed handlers (aggregator, transformer) whose payload is whole, and on-failure records of
a Kinesis mapping (the range is read again from the shard, within the stream's retention). Not
redrivable: a bad S3 object (history) and DynamoDB-stream batches (finals has its reconciliation).

SQS has no "peek": listing receives the messages with a short visibility timeout, then makes them
visible again at once, so a listing hides nothing. An action receives again (fresh receipt
handles), acts on the chosen messages and releases the others.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

REDRIVABLE_HANDLERS = frozenset({"aggregator", "transformer"})
RECEIVE_BATCH = 10  # SQS ReceiveMessage maximum
PUT_RECORDS_MAX = 500  # Kinesis PutRecords maximum
DEFAULT_LIMIT = 500
HOLD_SECONDS = 30  # long enough for one listing pass; released right after


@dataclass(frozen=True)
class QueuedLetter:
    message_id: str
    receipt_handle: str
    sent_at_ms: int
    receive_count: int
    kind: str  # "record", "batch" or "unknown"
    reason: str
    detail: str
    handler: str
    source: str
    shard_id: str | None = None
    sequence_number: str | None = None
    partition_key: str | None = None
    data: bytes | None = None  # a bad record's payload (None when cut or absent)
    truncated: bool = False
    batch: dict | None = None  # an on-failure record's KinesisBatchInfo / DDBStreamBatchInfo

    @property
    def redrivable(self) -> bool:
        if self.kind == "record":
            return self.handler in REDRIVABLE_HANDLERS and self.data is not None and not self.truncated
        return self.kind == "batch" and self.batch is not None and self.batch.get("kind") == "kinesis"

    @property
    def preview(self) -> str:
        """The payload as text (at most 300 characters), for a person to read."""
        if self.data is None:
            return ""
        return self.data[:300].decode("utf-8", errors="replace")

    @property
    def message(self) -> dict | None:
        """The payload as the bike message (a JSON object), or None when it is not one."""
        if self.data is None:
            return None
        try:
            value = orjson.loads(self.data)
        except orjson.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None


def parse_letter(message: dict[str, Any]) -> QueuedLetter:
    """A received SQS message as a ``QueuedLetter`` (any body: a foreign message is ``unknown``)."""
    attributes = message.get("Attributes", {})
    common = {
        "message_id": message["MessageId"],
        "receipt_handle": message["ReceiptHandle"],
        "sent_at_ms": int(attributes.get("SentTimestamp", 0)),
        "receive_count": int(attributes.get("ApproximateReceiveCount", 0)),
    }
    try:
        body = orjson.loads(message.get("Body", ""))
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        return QueuedLetter(**common, kind="unknown", reason="unknown", detail=str(message.get("Body"))[:300],
                            handler="", source="")  # fmt: skip
    if "reason" in body and "handler" in body:
        data: bytes | None
        try:
            data = base64.b64decode(body.get("data") or "", validate=True)
        except (binascii.Error, ValueError):
            data = None
        return QueuedLetter(
            **common,
            kind="record",
            reason=str(body["reason"]),
            detail=str(body.get("detail", "")),
            handler=str(body["handler"]),
            source=str(body.get("source") or ""),
            shard_id=body.get("shardId"),
            sequence_number=body.get("sequenceNumber"),
            partition_key=body.get("partitionKey"),
            data=data,
            truncated=bool(body.get("truncated")),
        )
    for key, kind in (("KinesisBatchInfo", "kinesis"), ("DDBStreamBatchInfo", "dynamodb")):
        info = body.get(key)
        if isinstance(info, dict):
            context = body.get("requestContext") or {}
            function = str(context.get("functionArn", "")).rsplit(":", 1)[-1]
            return QueuedLetter(
                **common,
                kind="batch",
                reason=str(context.get("condition") or "batch failed"),
                detail=(
                    f"{info.get('batchSize')} records of {info.get('shardId')}, "
                    f"{info.get('startSequenceNumber')} … {info.get('endSequenceNumber')}"
                ),
                handler=function,
                source=str(info.get("streamArn") or ""),
                shard_id=info.get("shardId"),
                sequence_number=info.get("startSequenceNumber"),
                batch={**info, "kind": kind},
            )
    return QueuedLetter(**common, kind="unknown", reason="unknown", detail=orjson.dumps(body)[:300].decode(),
                        handler="", source="")  # fmt: skip


def receive_letters(
    sqs: Any, queue_url: str, *, limit: int = DEFAULT_LIMIT, hold_seconds: int = HOLD_SECONDS
) -> list[QueuedLetter]:
    """Up to ``limit`` messages, each once, held invisible for ``hold_seconds`` (release them after)."""
    letters: dict[str, QueuedLetter] = {}
    while len(letters) < limit:
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(RECEIVE_BATCH, limit - len(letters)),
            VisibilityTimeout=hold_seconds,
            WaitTimeSeconds=0,
            AttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
        )
        messages = response.get("Messages", [])
        fresh = [message for message in messages if message["MessageId"] not in letters]
        if not fresh:
            break
        for message in fresh:
            letters[message["MessageId"]] = parse_letter(message)
    return sorted(letters.values(), key=lambda letter: (letter.sent_at_ms, letter.message_id))


def queue_size(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
        attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
    )


def _in_tens(letters: Sequence[QueuedLetter]) -> Iterable[Sequence[QueuedLetter]]:
    for start in range(0, len(letters), RECEIVE_BATCH):
        yield letters[start : start + RECEIVE_BATCH]


def release(sqs: Any, queue_url: str, letters: Sequence[QueuedLetter]) -> None:
    """Make held messages visible again now."""
    for chunk in _in_tens(letters):
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(index), "ReceiptHandle": letter.receipt_handle, "VisibilityTimeout": 0}
                for index, letter in enumerate(chunk)
            ],
        )


def delete(sqs: Any, queue_url: str, letters: Sequence[QueuedLetter]) -> int:
    deleted = 0
    for chunk in _in_tens(letters):
        response = sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(index), "ReceiptHandle": letter.receipt_handle} for index, letter in enumerate(chunk)],
        )
        deleted += len(response.get("Successful", []))
    return deleted


def list_letters(sqs: Any, queue_url: str, *, limit: int = DEFAULT_LIMIT) -> list[QueuedLetter]:
    """What is in the queue (up to ``limit``), leaving every message in it and visible."""
    letters = receive_letters(sqs, queue_url, limit=limit)
    release(sqs, queue_url, letters)
    return letters


def _partition_key(letter: QueuedLetter) -> str:
    if letter.partition_key:
        return letter.partition_key
    message = letter.message or {}
    return str(message.get("raceId", "redrive"))


def _batch_records(kinesis: Any, info: dict) -> list[tuple[bytes, str]]:
    """The records of a failed Kinesis batch, read again from its shard (start … end sequence numbers)."""
    stream_arn, shard_id = info["streamArn"], info["shardId"]
    start, end = info["startSequenceNumber"], int(info["endSequenceNumber"])
    # By name (arn:aws:kinesis:<region>:<account>:stream/<name>): moto's GetRecords cannot follow an
    # iterator made from a StreamARN ("Stream None ... not found", moto 5.2.5).
    iterator = kinesis.get_shard_iterator(
        StreamName=stream_arn.rsplit("/", 1)[-1],
        ShardId=shard_id,
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=start,
    )["ShardIterator"]
    records: list[tuple[bytes, str]] = []
    while iterator:
        response = kinesis.get_records(ShardIterator=iterator, Limit=1000)
        for record in response.get("Records", []):
            if int(record["SequenceNumber"]) > end:
                return records
            records.append((record["Data"], record["PartitionKey"]))
        if not response.get("Records") and not response.get("MillisBehindLatest"):
            return records  # reached the tip of the shard
        iterator = response.get("NextShardIterator")
    return records


@dataclass
class RedriveOutcome:
    redriven: int = 0  # letters put back on the stream (and removed from the queue)
    records: int = 0  # records sent (a batch letter holds many)
    not_redrivable: int = 0  # left in the queue
    failed: int = 0  # the stream refused them: left in the queue


def redrive(
    letters: Sequence[QueuedLetter],
    *,
    sqs: Any,
    queue_url: str,
    kinesis: Any,
    stream: str,
    put_records: Callable[..., dict] | None = None,
) -> RedriveOutcome:
    """Put the redrivable letters' records back on ``stream``; delete those letters, release the rest.

    A letter leaves the queue only once every one of its records was accepted by PutRecords.
    """
    put = put_records or kinesis.put_records
    outcome = RedriveOutcome()
    done: list[QueuedLetter] = []
    keep: list[QueuedLetter] = []
    for letter in letters:
        if not letter.redrivable:
            outcome.not_redrivable += 1
            keep.append(letter)
            continue
        if letter.kind == "record":
            assert letter.data is not None
            records = [(letter.data, _partition_key(letter))]
        else:
            assert letter.batch is not None
            records = _batch_records(kinesis, letter.batch)
        accepted = 0
        for start in range(0, len(records), PUT_RECORDS_MAX):
            chunk = records[start : start + PUT_RECORDS_MAX]
            response = put(StreamName=stream, Records=[{"Data": data, "PartitionKey": key} for data, key in chunk])
            accepted += len(chunk) - int(response.get("FailedRecordCount", 0))
        if accepted == len(records):
            done.append(letter)
            outcome.redriven += 1
            outcome.records += accepted
        else:
            # Some went through: sending them again later is harmless (each second counts once).
            outcome.failed += 1
            keep.append(letter)
    delete(sqs, queue_url, done)
    release(sqs, queue_url, keep)
    return outcome


def act_on(
    sqs: Any,
    queue_url: str,
    *,
    message_ids: Iterable[str] = (),
    reason: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> tuple[list[QueuedLetter], list[QueuedLetter]]:
    """Receive the queue again and split it: (chosen by id or by reason, the others, released now)."""
    wanted = set(message_ids)
    letters = receive_letters(sqs, queue_url, limit=limit)
    chosen = [letter for letter in letters if letter.message_id in wanted or (reason and letter.reason == reason)]
    chosen_ids = {letter.message_id for letter in chosen}
    others = [letter for letter in letters if letter.message_id not in chosen_ids]
    release(sqs, queue_url, others)
    return chosen, others
