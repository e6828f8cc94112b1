"""The staff dead-letter page against the moto server: list with reasons, redrive, discard."""

from __future__ import annotations

import json
import re

import boto3
import orjson
import pytest
from django.urls import reverse

from ops import admin_deadletters
from processors import clients, deadletter
from processors import deadletter_review as review
from processors.deadletter import DeadLetter, send_dead_letters
from tests.conftest import free_port

pytestmark = pytest.mark.django_db

STREAM = "alleycat-bikes-deadletter-test"


def _clear() -> None:
    clients.clear()
    admin_deadletters._kinesis.cache_clear()


@pytest.fixture
def queue(aws, monkeypatch, settings):
    _clear()
    url = boto3.client("sqs").create_queue(QueueName="alleycat-dead-letter")["QueueUrl"]
    monkeypatch.setenv("ALLEYCAT_DEAD_LETTER_QUEUE_URL", url)
    kinesis = boto3.client("kinesis")
    kinesis.create_stream(StreamName=STREAM, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=STREAM, WaiterConfig={"Delay": 0.2})
    settings.ALLEYCAT_STREAM = STREAM
    yield url
    _clear()


def stream_records() -> list[tuple[bytes, str]]:
    kinesis = boto3.client("kinesis")
    records = []
    for shard in kinesis.list_shards(StreamName=STREAM)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=STREAM, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records += [(r["Data"], r["PartitionKey"]) for r in kinesis.get_records(ShardIterator=iterator)["Records"]]
    return records


def bike(race_id: int, racer_id: int, second: int) -> bytes:
    return orjson.dumps(
        {"event": "update", "deviceTimestamp": 1, "second": second, "raceId": race_id, "name": "Ada Lovelace",
         "racerId": racer_id, "classId": 1, "cadence": 80, "resistance": 50}
    )  # fmt: skip


def letter(reason: str, data: bytes, *, handler: str = "aggregator", key: str | None = "42") -> DeadLetter:
    return DeadLetter(reason, f"{reason} detail", handler, data, source="arn:stream", sequence_number="1",
                      shard_id="shardId-000000000000", partition_key=key)  # fmt: skip


@pytest.fixture
def letters(queue):
    """unknown_race and out_of_range bike records, a bad S3 object, a cut payload, a failed Kinesis batch."""
    kinesis = boto3.client("kinesis")
    sent = [kinesis.put_record(StreamName=STREAM, Data=bike(50, r, 1), PartitionKey="50") for r in (1, 2, 3)]
    stream_arn = kinesis.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]["StreamARN"]
    assert (
        send_dead_letters(
            [
                letter("unknown_race", bike(42, 7, 3)),
                letter("out_of_range", b'{"second": 0}', key=None),
                letter("bad_object", b"\x1f\x8bnot gzip", handler="history", key=None),
                letter("unknown_race", b"x" * (deadletter.MAX_DATA_BYTES + 10)),
            ]
        )
        == 4
    )
    failure = {
        "requestContext": {"functionArn": "arn:aws:lambda:us-east-1:1:function:alleycat-aggregator",
                           "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 3},
        "KinesisBatchInfo": {"shardId": sent[0]["ShardId"], "startSequenceNumber": sent[0]["SequenceNumber"],
                             "endSequenceNumber": sent[2]["SequenceNumber"], "batchSize": 3, "streamArn": stream_arn},
    }  # fmt: skip
    boto3.client("sqs").send_message(QueueUrl=queue, MessageBody=json.dumps(failure))
    return {item.reason + ("-cut" if item.truncated else ""): item for item in review.list_letters(_sqs(), queue)}


def _sqs():
    return clients.aws_client("sqs")


def _page(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def test_the_page_lists_letters_with_reasons_and_leaves_them_in_the_queue(admin_client, queue, letters):
    assert set(letters) == {"unknown_race", "unknown_race-cut", "out_of_range", "bad_object", "RetryAttemptsExhausted"}
    response = admin_client.get(reverse("admin-dead-letters"))
    assert response.status_code == 200
    page = _page(response)
    assert "5 message(s)" in page
    assert re.search(r"unknown_race</a></td><td>2</td>", page)
    assert "race 42, racer 7, second 3" in page and "unknown_race detail" in page
    assert "3 records of shardId-000000000000" in page and "alleycat-aggregator" in page
    # a bad S3 object is no stream record; a payload cut at 16 KB cannot be sent as it was
    assert not letters["bad_object"].redrivable and not letters["unknown_race-cut"].redrivable
    # a bad bike record, and a failed Kinesis batch (read again from the shard)
    assert letters["unknown_race"].redrivable and letters["RetryAttemptsExhausted"].redrivable
    # listing hid nothing: every message can be received right away
    assert len(review.receive_letters(_sqs(), queue, hold_seconds=0)) == 5
    filtered = _page(admin_client.get(reverse("admin-dead-letters"), {"reason": "out_of_range"}))
    assert "out_of_range detail" in filtered and "unknown_race detail" not in filtered


def test_redrive_puts_records_back_on_the_stream_and_only_those_leave_the_queue(admin_client, queue, letters):
    before = stream_records()
    chosen = [letters["unknown_race"].message_id, letters["bad_object"].message_id]
    response = admin_client.post(
        reverse("admin-dead-letters"), {"action": "redrive", "message_id": chosen}, follow=True
    )
    notes = [str(m) for m in response.context["messages"]]
    assert any("Put 1 record(s) of 1 letter(s) back" in n for n in notes)
    assert any("1 not redrivable" in n for n in notes)
    assert stream_records()[len(before) :] == [(bike(42, 7, 3), "42")]  # the original bytes, the original key
    remaining = {item.reason for item in review.list_letters(_sqs(), queue)}
    assert len(review.list_letters(_sqs(), queue)) == 4 and "bad_object" in remaining

    # a whole failed batch: its three records are read again from the shard and sent again
    batch = admin_client.post(
        reverse("admin-dead-letters"), {"action": "redrive", "all_of_reason": "RetryAttemptsExhausted"}, follow=True
    )
    assert any("Put 3 record(s) of 1 letter(s)" in str(m) for m in batch.context["messages"]), [
        str(m) for m in batch.context["messages"]
    ]
    again = stream_records()[len(before) + 1 :]
    assert again == [(bike(50, racer, 1), "50") for racer in (1, 2, 3)]
    assert "RetryAttemptsExhausted" not in {item.reason for item in review.list_letters(_sqs(), queue)}


def test_discard_removes_the_chosen_letters(admin_client, queue, letters):
    admin_client.post(reverse("admin-dead-letters"), {"action": "discard", "all_of_reason": "unknown_race"})
    left = sorted(item.reason for item in review.list_letters(_sqs(), queue))
    assert left == ["RetryAttemptsExhausted", "bad_object", "out_of_range"]


def test_only_staff_and_an_unreachable_queue_is_a_503_page(client, admin_client, queue, monkeypatch):
    anonymous = client.__class__().get(reverse("admin-dead-letters"))
    assert anonymous.status_code == 302 and reverse("admin:login") in anonymous["Location"]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    _clear()
    response = admin_client.get(reverse("admin-dead-letters"))
    assert response.status_code == 503 and "cannot be read" in response.content.decode()
