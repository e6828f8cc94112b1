"""Send bad records to the dead-letter queue (SQS), with the reason and where they came from.

Message body (JSON)::

    {"reason": "out_of_range", "detail": "second: 0 not in 1..3600", "handler": "aggregator",
     "source": "<eventSourceARN or s3://bucket/key>", "shardId": "...", "partitionKey": "...",
     "sequenceNumber": "...", "dataSize": 123, "sha256": "<hex of the original payload>",
     "truncated": false, "data": "<base64 of the original payload>"}

Records too big for SQS: a message is at most 256 KB, a Kinesis record up to 1 MB. We keep the
first ``MAX_DATA_BYTES`` (16 KB) of the payload, set ``truncated`` and keep the original size and
SHA-256. That is enough to see what was wrong (a bad record is never more than a few hundred
bytes of useful JSON), and the full payload stays addressable in the stream by shard and sequence
number for the stream's retention period. Storing whole payloads in S3 (claim check) would add a
bucket, a write permission and a failure mode to every handler for records nobody replays.

Sending never raises: if SQS is unreachable the letters are logged (reason and sequence number,
no payload) and counted in ``DeadLetterFailed``, and the batch goes on; stopping the shard for
a record we are going to skip anyway would hold up every good record behind it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from processors.clients import aws_client, cached
from processors.config import DEFAULT_DEAD_LETTER_QUEUE_NAME, get_config
from processors.observability import count, logger

MAX_DATA_BYTES = 16 * 1024
SQS_BATCH_ENTRIES = 10
SQS_BATCH_BYTES = 240 * 1024  # SendMessageBatch total limit is 256 KB; leave room for attributes


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    detail: str
    handler: str
    data: bytes
    source: str = ""
    sequence_number: str | None = None
    shard_id: str | None = None
    partition_key: str | None = None


def dead_letter_body(letter: DeadLetter) -> str:
    """The SQS message body for a letter; always well under 256 KB."""
    data = letter.data
    body = {
        "reason": letter.reason,
        "detail": letter.detail[:1000],
        "handler": letter.handler,
        "source": letter.source,
        "shardId": letter.shard_id,
        "partitionKey": letter.partition_key,
        "sequenceNumber": letter.sequence_number,
        "dataSize": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "truncated": len(data) > MAX_DATA_BYTES,
        "data": base64.b64encode(data[:MAX_DATA_BYTES]).decode(),
    }
    return orjson.dumps(body).decode()


@cached
def dead_letter_queue_url() -> str:
    configured = get_config().dead_letter_queue_url
    if configured:
        return configured
    return aws_client("sqs").get_queue_url(QueueName=DEFAULT_DEAD_LETTER_QUEUE_NAME)["QueueUrl"]


def send_dead_letters(letters: Sequence[DeadLetter]) -> int:
    """Send letters in SendMessageBatch calls (10 entries, < 256 KB each). Returns how many were accepted."""
    if not letters:
        return 0
    sent = 0
    failed: list[DeadLetter] = []
    batches = _batches(letters)
    for position, batch in enumerate(batches):
        entries = [
            {
                "Id": str(index),
                "MessageBody": body,
                "MessageAttributes": {
                    "reason": {"DataType": "String", "StringValue": letter.reason},
                    "handler": {"DataType": "String", "StringValue": letter.handler},
                },
            }
            for index, (letter, body) in enumerate(batch)
        ]
        try:
            response = aws_client("sqs").send_message_batch(QueueUrl=dead_letter_queue_url(), Entries=entries)
        except (BotoCoreError, ClientError) as exc:
            logger.error("dead-letter queue unavailable", extra={"error": str(exc)[:300]})
            failed.extend(letter for later in batches[position:] for letter, _body in later)
            break
        sent += len(response.get("Successful", []))
        failed.extend(batch[int(entry["Id"])][0] for entry in response.get("Failed", []))
    if failed:
        count("DeadLetterFailed", len(failed))
        logger.error(
            "dead letters not delivered",
            extra={"lost": [(letter.sequence_number, letter.reason) for letter in failed[:50]], "count": len(failed)},
        )
    return sent


def _batches(letters: Sequence[DeadLetter]) -> list[list[tuple[DeadLetter, str]]]:
    batches: list[list[tuple[DeadLetter, str]]] = []
    current: list[tuple[DeadLetter, str]] = []
    size = 0
    for letter in letters:
        body = dead_letter_body(letter)
        if current and (len(current) == SQS_BATCH_ENTRIES or size + len(body) > SQS_BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append((letter, body))
        size += len(body)
    if current:
        batches.append(current)
    return batches
