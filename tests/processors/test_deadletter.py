"""Dead-letter queue: message shape, SQS size limits, queue lookup, SQS unavailable."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
from pathlib import Path

import boto3
import pytest

from processors import clients
from processors.deadletter import MAX_DATA_BYTES, DeadLetter, dead_letter_body, send_dead_letters
from tests.conftest import free_port
from tests.processors.conftest import receive_all

SQS_MESSAGE_LIMIT = 256 * 1024


def letter(size: int, sequence: int = 1) -> DeadLetter:
    return DeadLetter(
        reason="too_large",
        detail="x",
        handler="aggregator",
        data=b"y" * size,
        source="arn:aws:kinesis:us-east-1:123456789012:stream/alleycat-bikes",
        sequence_number=str(sequence),
        shard_id="shardId-000000000000",
        partition_key="7",
    )


class TestBody:
    def test_small_payload_is_kept_whole(self) -> None:
        body = json.loads(dead_letter_body(letter(100)))
        assert base64.b64decode(body["data"]) == b"y" * 100
        assert body["truncated"] is False and body["dataSize"] == 100
        assert (body["sequenceNumber"], body["shardId"], body["partitionKey"]) == ("1", "shardId-000000000000", "7")

    def test_oversized_payload_is_truncated_with_size_and_hash(self) -> None:
        item = letter(1_048_576)
        body_text = dead_letter_body(item)
        body = json.loads(body_text)
        assert len(body_text.encode()) < SQS_MESSAGE_LIMIT
        assert body["truncated"] is True and body["dataSize"] == 1_048_576
        assert len(base64.b64decode(body["data"])) == MAX_DATA_BYTES
        assert body["sha256"] == hashlib.sha256(item.data).hexdigest()


class TestSend:
    def test_many_large_letters_go_in_batches_under_the_sqs_limit(self, dead_letter_queue: str) -> None:
        sizes: list[int] = []
        sqs = clients.aws_client("sqs")
        sqs.meta.events.register(
            "provide-client-params.sqs.SendMessageBatch",
            lambda params, **_: sizes.append(sum(len(e["MessageBody"].encode()) for e in params["Entries"])),
        )
        letters = [letter(900_000, sequence) for sequence in range(25)]
        assert send_dead_letters(letters) == 25
        assert sizes and all(size < SQS_MESSAGE_LIMIT for size in sizes)
        received = receive_all(dead_letter_queue)
        assert sorted(int(json.loads(m["Body"])["sequenceNumber"]) for m in received) == list(range(25))
        assert {m["MessageAttributes"]["reason"]["StringValue"] for m in received} == {"too_large"}

    def test_queue_found_by_name_when_the_url_is_not_configured(self, aws: str) -> None:
        url = boto3.client("sqs").create_queue(QueueName="alleycat-dead-letter")["QueueUrl"]
        assert send_dead_letters([letter(10)]) == 1
        assert len(receive_all(url)) == 1

    def test_sqs_unreachable_is_counted_not_raised(self, aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
        monkeypatch.setenv("ALLEYCAT_DEAD_LETTER_QUEUE_URL", "http://127.0.0.1:1/000000000000/alleycat-dead-letter")
        assert send_dead_letters([letter(10), letter(20)]) == 0

    def test_nothing_to_send(self) -> None:
        assert send_dead_letters([]) == 0


def test_processors_never_import_django() -> None:
    root = Path(__file__).resolve().parents[2] / "processors"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"django", "rest_framework"}, f"{path}: imports {name}"
