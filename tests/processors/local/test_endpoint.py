"""The embedded AWS endpoint as the runner uses it (processors.local.endpoint): no lost records."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.table import schema
from tests.conftest import free_port, http_server_process, wait_for_http


@contextlib.contextmanager
def running_endpoint(**env: str) -> Iterator[str]:
    """The embedded endpoint on a free port of 127.0.0.1 (``env`` added to its environment) until the block ends."""
    port = free_port()
    argv = [sys.executable, "-m", "processors.local.endpoint", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, env={**os.environ, **env})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/moto-api/")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with running_endpoint() as url:
        yield url


def client(url: str):
    return boto3.client(
        "kinesis",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def read_all(kinesis, stream: str, shard_id: str) -> list[dict]:
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")
    records, token = [], iterator["ShardIterator"]
    while True:
        response = kinesis.get_records(ShardIterator=token, Limit=1000)
        records += response["Records"]
        token = response["NextShardIterator"]
        if not response["Records"]:
            return records


def test_concurrent_put_records_to_one_shard_keep_every_record(endpoint):
    kinesis = client(endpoint)
    kinesis.create_stream(StreamName="concurrent", ShardCount=1)

    def send(worker: int) -> None:
        own = client(endpoint)
        for batch in range(6):
            records = [{"Data": f"{worker}-{batch}-{i}".encode(), "PartitionKey": "1"} for i in range(250)]
            assert own.put_records(StreamName="concurrent", Records=records)["FailedRecordCount"] == 0

    threads = [threading.Thread(target=send, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (shard,) = kinesis.list_shards(StreamName="concurrent")["Shards"]
    records = read_all(kinesis, "concurrent", shard["ShardId"])
    assert len(records) == 6000 and len({r["Data"] for r in records}) == 6000
    assert len({r["SequenceNumber"] for r in records}) == 6000


def test_after_resharding_new_records_go_to_open_shards(endpoint):
    kinesis = client(endpoint)
    kinesis.create_stream(StreamName="reshard", ShardCount=2)
    kinesis.update_shard_count(StreamName="reshard", TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    for key in range(200):
        kinesis.put_record(StreamName="reshard", Data=b"x", PartitionKey=str(key))
    shards = kinesis.list_shards(StreamName="reshard")["Shards"]
    closed = [s["ShardId"] for s in shards if "EndingSequenceNumber" in s["SequenceNumberRange"]]
    open_ = [s["ShardId"] for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    assert len(closed) == 2 and len(open_) == 4
    assert sum(len(read_all(kinesis, "reshard", shard)) for shard in closed) == 0
    assert sum(len(read_all(kinesis, "reshard", shard)) for shard in open_) == 200


def test_the_speedups_are_written_for_the_pinned_moto() -> None:
    from pathlib import Path

    from processors.local.endpoint import speedups

    pins = dict(
        line.split("#")[0].strip().split("==", 1)
        for line in (Path(__file__).resolve().parents[3] / "requirements.txt").read_text().splitlines()
        if "==" in line.split("#")[0]
    )
    assert pins["moto[server]"] == speedups.PINNED_MOTO


def test_on_another_moto_version_the_speedups_are_left_out(monkeypatch, caplog) -> None:
    from moto.kinesis.models import Shard

    from processors.local.endpoint import speedups

    before = Shard.get_records
    monkeypatch.setattr(speedups, "version", lambda _package: "9.9.9")
    assert speedups.apply() is False
    assert Shard.get_records is before
    assert "moto 9.9.9 is not the pinned 5.2.5" in caplog.text


def test_an_unknown_speedup_name_is_refused_before_any_is_applied(monkeypatch) -> None:
    from processors.local.endpoint import speedups

    monkeypatch.setenv("ALLEYCAT_ENDPOINT_SPEEDUPS", "linear_kinesis_shards,no_such_speedup")
    with pytest.raises(ValueError, match="no_such_speedup"):
        speedups.apply()


@pytest.fixture
def short_retention_endpoint() -> Iterator[str]:
    with running_endpoint(ALLEYCAT_MOTO_RETENTION_SECONDS="3") as url:
        yield url


def test_records_older_than_the_retention_leave_both_streams(short_retention_endpoint):
    url = short_retention_endpoint
    kinesis = client(url)
    kinesis.create_stream(StreamName="kept", ShardCount=1)
    dynamodb = boto3.client(
        "dynamodb", endpoint_url=url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    schema.create_table(dynamodb, "kept")
    streams = boto3.client(
        "dynamodbstreams", endpoint_url=url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    stream_arn = dynamodb.describe_table(TableName="kept")["Table"]["LatestStreamArn"]

    def put_batch(tag: str, count: int) -> None:
        for start in range(0, count, 500):
            records = [
                {"Data": f"{tag}-{i}".encode(), "PartitionKey": "1"} for i in range(start, min(count, start + 500))
            ]
            assert kinesis.put_records(StreamName="kept", Records=records)["FailedRecordCount"] == 0

    def stream_keys() -> list[str]:
        (shard,) = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        return [r["dynamodb"]["Keys"]["sk"]["S"] for r in streams.get_records(ShardIterator=iterator)["Records"]]

    # GIVEN records written, then older than the retention (3 s here)
    put_batch("old", 600)
    dynamodb.put_item(TableName="kept", Item={"pk": {"S": "RACE#1"}, "sk": {"S": "OLD"}})
    time.sleep(4)
    # WHEN more arrive (Kinesis trims every 500th record, a table stream on every write)
    put_batch("new", 500)
    dynamodb.put_item(TableName="kept", Item={"pk": {"S": "RACE#1"}, "sk": {"S": "NEW"}})
    # THEN readers from the horizon see only the records within the retention
    (shard,) = kinesis.list_shards(StreamName="kept")["Shards"]
    kept = [record["Data"].decode() for record in read_all(kinesis, "kept", shard["ShardId"])]
    assert kept == [f"new-{i}" for i in range(500)]
    assert stream_keys() == ["NEW"]


def test_a_versioned_bucket_keeps_the_newest_noncurrent_versions(endpoint):
    s3 = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    s3.create_bucket(Bucket="versions")
    s3.put_bucket_versioning(Bucket="versions", VersioningConfiguration={"Status": "Enabled"})
    for n in range(8):
        s3.put_object(Bucket="versions", Key="class-1.json.gz", Body=f"v{n}".encode())
        if n == 0:
            s3.put_object(Bucket="versions", Key="other", Body=b"x")
    versions = s3.list_object_versions(Bucket="versions", Prefix="class-1")["Versions"]
    bodies = [
        s3.get_object(Bucket="versions", Key="class-1.json.gz", VersionId=v["VersionId"])["Body"].read()
        for v in versions
    ]
    assert sorted(bodies) == [b"v4", b"v5", b"v6", b"v7"]  # the current one and 3 noncurrent (the default)
    assert s3.get_object(Bucket="versions", Key="class-1.json.gz")["Body"].read() == b"v7"
    assert s3.get_object(Bucket="versions", Key="other")["Body"].read() == b"x"


def _dynamodb(url: str):
    return boto3.client(
        "dynamodb", endpoint_url=url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )


def _stream_keys(url: str, table: str) -> list[str]:
    streams = boto3.client(
        "dynamodbstreams", endpoint_url=url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    arn = _dynamodb(url).describe_table(TableName=table)["Table"]["LatestStreamArn"]
    (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")
    return [
        r["dynamodb"]["Keys"]["sk"]["S"]
        for r in streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    ]


def _put(table: str, sk: str, score: int, condition: str | None = None, **extra: dict) -> dict:
    action: dict = {
        "TableName": table,
        "Item": {"pk": {"S": "P"}, "sk": {"S": sk}, "score": {"N": str(score)}, **extra},
    }
    if condition:
        action |= {"ConditionExpression": condition, "ExpressionAttributeValues": {":s": {"N": str(score)}}}
    return {"Put": action}


@pytest.fixture(scope="module")
def plain_moto() -> Iterator[str]:
    """moto's own server, unchanged, to compare with."""
    port = free_port()
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with http_server_process(argv, "/moto-api/", port) as url:
        yield url


@pytest.mark.parametrize("server", ["embedded", "moto"])
def test_a_transaction_whose_condition_fails_writes_nothing_and_names_the_action(endpoint, plain_moto, server):
    # GIVEN a stored item (the same sequence on the embedded endpoint and on moto's own server)
    url = endpoint if server == "embedded" else plain_moto
    dynamodb = _dynamodb(url)
    table = f"cancel-{server}"
    schema.create_table(dynamodb, table)
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "P"}, "sk": {"S": "A"}, "score": {"N": "5"}})
    # WHEN a transaction's middle action needs a lower score than the stored one
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException) as cancelled:
        dynamodb.transact_write_items(
            TransactItems=[
                _put(table, "B", 1),
                _put(table, "A", 3, "attribute_not_exists(pk) OR score < :s"),
                _put(table, "C", 1),
            ]
        )
    # THEN DynamoDB's answer names it, and nothing of the transaction is written or streamed
    reasons = [reason["Code"] for reason in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "ConditionalCheckFailed", "None"]
    keys = [item["sk"]["S"] for item in dynamodb.scan(TableName=table)["Items"]]
    assert keys == ["A"]
    assert _stream_keys(url, table) == ["A"]
    # and the same transaction with a condition that holds writes all three
    dynamodb.transact_write_items(
        TransactItems=[_put(table, "B", 1), _put(table, "A", 9, "score < :s"), _put(table, "C", 1)]
    )
    assert sorted(item["sk"]["S"] for item in dynamodb.scan(TableName=table)["Items"]) == ["A", "B", "C"]
    assert _stream_keys(url, table) == ["A", "B", "A", "C"]


def test_an_action_refused_while_written_takes_back_the_ones_before_it(endpoint):
    # GIVEN a transaction whose last put is over DynamoDB's item size (found only when it is written)
    dynamodb = _dynamodb(endpoint)
    schema.create_table(dynamodb, "rollback")
    dynamodb.put_item(TableName="rollback", Item={"pk": {"S": "P"}, "sk": {"S": "A"}, "score": {"N": "5"}})
    too_large = {"blob": {"B": b"x" * 420_000}}
    with pytest.raises(dynamodb.exceptions.ClientError):
        dynamodb.transact_write_items(
            TransactItems=[_put("rollback", "A", 6), _put("rollback", "B", 1), _put("rollback", "C", 1, **too_large)]
        )
    # THEN the items before it are as they were, and the table stream has none of its records
    items = {item["sk"]["S"]: item["score"]["N"] for item in dynamodb.scan(TableName="rollback")["Items"]}
    assert items == {"A": "5"}
    assert _stream_keys(endpoint, "rollback") == ["A"]


def test_transactions_and_writes_from_many_threads_all_land(endpoint):
    # GIVEN 6 threads sending transactions of 50 puts while 2 others put items one by one into the same table
    dynamodb = _dynamodb(endpoint)
    schema.create_table(dynamodb, "busy")
    errors: list[BaseException] = []

    def transactions(worker: int) -> None:
        client = _dynamodb(endpoint)
        try:
            for batch in range(8):
                client.transact_write_items(
                    TransactItems=[_put("busy", f"t{worker}-{batch}-{n}", n) for n in range(50)]
                )
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def single_puts(worker: int) -> None:
        client = _dynamodb(endpoint)
        try:
            for n in range(200):
                client.put_item(TableName="busy", Item={"pk": {"S": "P"}, "sk": {"S": f"s{worker}-{n}"}})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=transactions, args=(w,)) for w in range(6)]
    threads += [threading.Thread(target=single_puts, args=(w,)) for w in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # THEN every write is there and none failed
    assert errors == []
    count = dynamodb.scan(TableName="busy", Select="COUNT")["Count"]
    assert count == 6 * 8 * 50 + 2 * 200


def test_a_table_stream_iterator_expires_and_the_old_ones_are_let_go():
    # GIVEN an endpoint whose table-stream iterators live 2 s (AWS: 15 minutes)
    with running_endpoint(ALLEYCAT_MOTO_ITERATOR_SECONDS="2") as url:
        dynamodb = _dynamodb(url)
        schema.create_table(dynamodb, "iterators")
        streams = boto3.client(
            "dynamodbstreams",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="t",
            aws_secret_access_key="t",
        )
        arn = dynamodb.describe_table(TableName="iterators")["Table"]["LatestStreamArn"]
        (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]

        def iterator() -> str:
            return streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]

        dynamodb.put_item(TableName="iterators", Item={"pk": {"S": "P"}, "sk": {"S": "A"}})
        old = iterator()
        fresh_from_old = streams.get_records(ShardIterator=old)["NextShardIterator"]
        assert fresh_from_old
        # WHEN it is older than that
        time.sleep(2.5)
        # THEN reading with it answers ExpiredIteratorException, as AWS does, and a new iterator reads on
        with pytest.raises(streams.exceptions.ExpiredIteratorException):
            streams.get_records(ShardIterator=old)
        records = streams.get_records(ShardIterator=iterator())["Records"]
        assert [r["dynamodb"]["Keys"]["sk"]["S"] for r in records] == ["A"]
        models = urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=10).read()  # noqa: S310 - 127.0.0.1
        assert json.loads(models)["dynamodbstreams"]["ShardIterator"] == []  # not kept for moto's dashboard either


def test_the_endpoint_hands_freed_memory_back_on_glibc():
    from processors.local.endpoint.__main__ import release_freed_memory

    # Debian's libc is glibc: the endpoint fixes malloc's mmap threshold and trims its heaps.
    assert release_freed_memory(every=3600) is True
    assert "malloc-trim" in {thread.name for thread in threading.enumerate()}


def test_after_resharding_each_record_is_in_one_shard_once(endpoint):
    # GIVEN records in a one-shard stream
    kinesis = client(endpoint)
    kinesis.create_stream(StreamName="once", ShardCount=1)
    before = [{"Data": f"before-{i}".encode(), "PartitionKey": f"7:{i}"} for i in range(100)]
    assert kinesis.put_records(StreamName="once", Records=before)["FailedRecordCount"] == 0
    # WHEN it is split (UpdateShardCount) and merged back (MergeShards), and more records come after each
    kinesis.update_shard_count(StreamName="once", TargetShardCount=2, ScalingType="UNIFORM_SCALING")
    after = [{"Data": f"after-{i}".encode(), "PartitionKey": f"7:{i}"} for i in range(100)]
    assert kinesis.put_records(StreamName="once", Records=after)["FailedRecordCount"] == 0
    children = sorted(
        (s for s in kinesis.list_shards(StreamName="once")["Shards"] if s.get("ParentShardId")),
        key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]),
    )
    kinesis.merge_shards(
        StreamName="once", ShardToMerge=children[0]["ShardId"], AdjacentShardToMerge=children[1]["ShardId"]
    )
    last = [{"Data": f"last-{i}".encode(), "PartitionKey": f"7:{i}"} for i in range(10)]
    assert kinesis.put_records(StreamName="once", Records=last)["FailedRecordCount"] == 0
    # THEN reading every shard from its horizon gives each record once: the parents keep theirs
    shards = kinesis.list_shards(StreamName="once")["Shards"]
    data = {s["ShardId"]: [r["Data"].decode() for r in read_all(kinesis, "once", s["ShardId"])] for s in shards}
    every = [record for records in data.values() for record in records]
    assert sorted(every) == sorted(r["Data"].decode() for r in before + after + last)
    assert data["shardId-000000000000"] == [f"before-{i}" for i in range(100)]


def test_puts_leave_no_kinesis_metric_data_behind(endpoint):
    # moto's PutRecords also puts two CloudWatch data points, kept for ever; nothing here reads them
    kinesis = client(endpoint)
    kinesis.create_stream(StreamName="quiet-metrics", ShardCount=1)
    records = [{"Data": b"x", "PartitionKey": f"7:{i}"} for i in range(10)]
    assert kinesis.put_records(StreamName="quiet-metrics", Records=records)["FailedRecordCount"] == 0
    assert kinesis.get_records(
        ShardIterator=kinesis.get_shard_iterator(
            StreamName="quiet-metrics",
            ShardId=kinesis.list_shards(StreamName="quiet-metrics")["Shards"][0]["ShardId"],
            ShardIteratorType="TRIM_HORIZON",
        )["ShardIterator"]
    )["Records"]
    cloudwatch = boto3.client(
        "cloudwatch", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    assert cloudwatch.list_metrics(Namespace="AWS/Kinesis")["Metrics"] == []


@given(
    operations=st.lists(
        st.one_of(
            st.tuples(st.just("write"), st.binary(max_size=300)),
            st.tuples(st.just("seek"), st.integers(0, 600)),
            st.tuples(st.just("read"), st.integers(-1, 400)),
            st.tuples(st.just("truncate"), st.none()),
        ),
        max_size=30,
    )
)
@settings(max_examples=150, deadline=None)
def test_a_spilled_body_behaves_as_the_file_it_stands_for(tmp_path_factory, operations):
    from processors.local.endpoint.fixes import SpilledBody

    # GIVEN a body that moves to a file at 256 bytes, and an in-memory file as the reference
    body, reference = SpilledBody(tmp_path_factory.mktemp("bodies"), 256), io.BytesIO()
    reached = 0  # the largest size after a write: past the threshold the body is on disk for good
    for name, argument in operations:
        # WHEN both get the same calls (as moto's FakeKey makes them)
        if name == "write":
            assert body.write(argument) == reference.write(argument)
            reached = max(reached, len(reference.getbuffer()))
        elif name == "seek":
            assert body.seek(argument) == reference.seek(argument)
        elif name == "read":
            assert body.read(argument) == reference.read(argument)
        else:
            body.truncate()
            reference.truncate()
        # THEN they hold the same bytes at the same position, on disk once past the threshold
        assert body.tell() == reference.tell()
    body.seek(0)
    assert body.read() == reference.getvalue()
    assert body.on_disk == (reached >= 256)
    # AND closing it removes its file
    files = list(body._directory.iterdir())
    body.close()
    assert len(files) == int(reached >= 256) and not list(body._directory.iterdir())
