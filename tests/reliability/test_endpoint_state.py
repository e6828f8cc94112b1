"""The embedded endpoint's journal and snapshots (processors/local/endpoint/persistence.py) on their own:
a SIGKILLed endpoint comes back with the same stream creation times, table stream ARN, sequence
numbers, arrival times, items, objects and queue (a receipt handle given before the kill still deletes its
message), also when the journal's last entry was cut short by the kill."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import boto3
import pytest

from processors.local.endpoint.persistence import JOURNAL_PREFIX, is_mutating
from tests.conftest import AWS_TEST_ENV, free_port
from tests.reliability.conftest import EndpointProcess

pytestmark = pytest.mark.reliability


def _clients(url: str):
    kwargs = {
        "endpoint_url": url,
        "region_name": "us-east-1",
        "aws_access_key_id": AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
    }
    return (boto3.client(name, **kwargs) for name in ("kinesis", "dynamodb", "s3", "sqs"))


def _state(kinesis, dynamodb, s3, sqs, queue: str) -> dict:
    records = []
    for shard in kinesis.list_shards(StreamName="s")["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName="s", ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )
        got = kinesis.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
        records += [(r["SequenceNumber"], r["Data"], r["ApproximateArrivalTimestamp"]) for r in got]
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    return {
        "records": records,
        "created": kinesis.describe_stream_summary(StreamName="s")["StreamDescriptionSummary"][
            "StreamCreationTimestamp"
        ],
        "table_stream": dynamodb.describe_table(TableName="t")["Table"]["LatestStreamArn"],
        "items": sorted(str(item) for item in dynamodb.scan(TableName="t")["Items"]),
        "objects": [(o["Key"], o["ETag"]) for o in s3.list_objects_v2(Bucket="bucket-a").get("Contents", [])],
        "queue": (attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"]),
    }


def test_a_killed_endpoint_comes_back_as_it_was(tmp_path: Path):
    endpoint = EndpointProcess(free_port(), tmp_path / "aws", tmp_path / "endpoint.log")
    endpoint.start()
    try:
        kinesis, dynamodb, s3, sqs = _clients(endpoint.url)
        kinesis.create_stream(StreamName="s", ShardCount=2)
        dynamodb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        s3.create_bucket(Bucket="bucket-a")
        queue = sqs.create_queue(QueueName="q")["QueueUrl"]
        for n in range(20):
            kinesis.put_records(
                StreamName="s", Records=[{"Data": f"{n}-{k}".encode(), "PartitionKey": f"{k}"} for k in range(10)]
            )
            dynamodb.put_item(TableName="t", Item={"pk": {"S": f"k{n % 7}"}, "v": {"N": str(n)}})
        s3.put_object(Bucket="bucket-a", Key="a.json.gz", Body=b"x" * 1000)
        for n in range(4):
            sqs.send_message(QueueUrl=queue, MessageBody=f"m{n}")
        received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=2, VisibilityTimeout=0)["Messages"]
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=received[0]["ReceiptHandle"])
        before = _state(kinesis, dynamodb, s3, sqs, queue)

        # WHEN it is killed with half an entry at the end of its journal, and started again
        endpoint.signal(signal.SIGKILL)
        (journal,) = sorted((tmp_path / "aws").glob(f"{JOURNAL_PREFIX}*.log"))[-1:]
        with journal.open("ab") as handle:
            handle.write(b"\x00\x10\x00\x00half an entry")
        endpoint.start()

        # THEN everything is as it was, and a receipt handle from before the kill still works
        kinesis, dynamodb, s3, sqs = _clients(endpoint.url)
        assert _state(kinesis, dynamodb, s3, sqs, queue) == before
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=received[1]["ReceiptHandle"])
        assert (
            sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
                "ApproximateNumberOfMessages"
            ]
            == "2"
        )
        assert "cut short" in endpoint.output()
    finally:
        if endpoint.running():
            endpoint.proc.kill()  # type: ignore[union-attr]
            endpoint.proc.wait()  # type: ignore[union-attr]


def test_big_object_bodies_live_in_files_and_come_back_after_a_kill(tmp_path: Path):
    endpoint = EndpointProcess(free_port(), tmp_path / "aws", tmp_path / "endpoint.log")
    bodies = tmp_path / "aws" / "bodies"
    endpoint.start()
    try:
        _kinesis, _dynamodb, s3, _sqs = _clients(endpoint.url)
        s3.create_bucket(Bucket="bucket-a")
        # GIVEN a delivery-sized object and a small one
        big, small = os.urandom(300_000), b"small" * 100
        s3.put_object(Bucket="bucket-a", Key="big", Body=big)
        s3.put_object(Bucket="bucket-a", Key="small", Body=small)
        # THEN the big body is a file of its own, the small one is not on disk
        assert [path.stat().st_size for path in bodies.iterdir()] == [len(big)]
        # AND both read back whole, by range, and with moto's ETag
        assert s3.get_object(Bucket="bucket-a", Key="big")["Body"].read() == big
        assert s3.get_object(Bucket="bucket-a", Key="big", Range="bytes=1000-1999")["Body"].read() == big[1000:2000]
        assert s3.head_object(Bucket="bucket-a", Key="big")["ETag"] == f'"{hashlib.md5(big).hexdigest()}"'
        assert s3.get_object(Bucket="bucket-a", Key="small")["Body"].read() == small
        # WHEN the big object is replaced and another one is put and deleted
        replaced = os.urandom(200_000)
        s3.put_object(Bucket="bucket-a", Key="big", Body=replaced)
        s3.put_object(Bucket="bucket-a", Key="gone", Body=os.urandom(100_000))
        s3.delete_object(Bucket="bucket-a", Key="gone")
        # THEN only the current body has a file (the others' files left with them)
        assert [path.stat().st_size for path in bodies.iterdir()] == [len(replaced)]

        # WHEN the endpoint is killed and started again
        endpoint.signal(signal.SIGKILL)
        endpoint.start()
        _kinesis, _dynamodb, s3, _sqs = _clients(endpoint.url)
        # THEN every body is back (from its journal and snapshot), the big one in a file again
        assert s3.get_object(Bucket="bucket-a", Key="big")["Body"].read() == replaced
        assert s3.get_object(Bucket="bucket-a", Key="small")["Body"].read() == small
        assert [path.stat().st_size for path in bodies.iterdir()] == [len(replaced)]
    finally:
        if endpoint.running():
            endpoint.proc.kill()  # type: ignore[union-attr]
            endpoint.proc.wait()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("environ", "body", "mutating"),
    [
        ({"HTTP_X_AMZ_TARGET": "Kinesis_20131202.PutRecords"}, b"{}", True),
        ({"HTTP_X_AMZ_TARGET": "Kinesis_20131202.GetRecords"}, b"{}", False),
        ({"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.Query"}, b"{}", False),
        ({"HTTP_X_AMZ_TARGET": "DynamoDB_20120810.BatchWriteItem"}, b"{}", True),
        ({"HTTP_X_AMZ_TARGET": "AmazonSQS.ReceiveMessage"}, b"{}", True),
        ({"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/x-www-form-urlencoded"}, b"Action=ListQueues", False),
        ({"REQUEST_METHOD": "PUT", "PATH_INFO": "/bucket/key"}, b"data", True),
        ({"REQUEST_METHOD": "GET", "PATH_INFO": "/bucket/key"}, b"", False),
        ({"REQUEST_METHOD": "POST", "PATH_INFO": "/moto-api/reset"}, b"", True),
        ({"REQUEST_METHOD": "POST", "PATH_INFO": "/moto-api/seed"}, b"", False),
    ],
)
def test_which_requests_are_journaled(environ: dict, body: bytes, mutating: bool):
    assert is_mutating({"REQUEST_METHOD": "POST", "PATH_INFO": "/", **environ}, body) is mutating


def test_a_big_state_is_snapshotted_after_a_journal_in_proportion_to_it(tmp_path: Path, monkeypatch):
    from processors.local.endpoint.persistence import PersistentApp

    monkeypatch.setenv("ALLEYCAT_AWS_JOURNAL_COMPACT_MB", "16")
    monkeypatch.setenv("ALLEYCAT_AWS_JOURNAL_COMPACT_RATIO", "0.1")
    app = PersistentApp(lambda environ, start_response: [], tmp_path)
    mb = 1024 * 1024
    # GIVEN a small state: the journal is compacted from 16 MB on, as before
    app.snapshot_bytes = 20 * mb
    app._journal_bytes = 15 * mb
    assert not app._compaction_due()
    app._journal_bytes = 16 * mb
    assert app._compaction_due()
    # AND a 600 MB state (1,000 racers, 15 minutes of records): not at 16 MB, at a tenth of its size
    app.snapshot_bytes = 600 * mb
    app._journal_bytes = 59 * mb
    assert not app._compaction_due()
    app._journal_bytes = 60 * mb
    assert app._compaction_due()
    # AND never while a snapshot is being written
    app._compacting = True
    assert not app._compaction_due()
