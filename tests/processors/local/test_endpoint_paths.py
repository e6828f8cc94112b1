"""The embedded endpoint's shortcuts on the pipeline's hot paths give moto's own answers.

Kinesis GetRecords and PutRecords (the bodies on the wire as well as what boto3 makes of them),
UpdateItem ``SET #a = :a, ...`` (and the requests
that must still fail) and the table stream records they produce, against moto's server and
``processors.local.endpoint`` side by side.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from processors.table import schema
from tests.conftest import free_port, wait_for_http


@pytest.fixture(scope="module")
def endpoints() -> Iterator[dict[str, str]]:
    commands = {
        "moto": lambda port: [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        "embedded": lambda port: [sys.executable, "-m", "processors.local.endpoint", str(port)],
    }
    procs, urls = [], {}
    try:
        for name, command in commands.items():
            port = free_port()
            procs.append(subprocess.Popen(command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            urls[name] = f"http://127.0.0.1:{port}"
            wait_for_http(f"{urls[name]}/moto-api/")
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=15)


def clients(url: str) -> dict[str, Any]:
    kwargs = {"endpoint_url": url, "region_name": "us-east-1", "aws_access_key_id": "t", "aws_secret_access_key": "t"}
    return {name: boto3.client(name, **kwargs) for name in ("kinesis", "dynamodb", "dynamodbstreams")}


def wire_bodies(client: Any) -> list[tuple[str, Any]]:
    """Every answer's JSON body as the server wrote it (before botocore parses it), with its operation."""
    bodies: list[tuple[str, Any]] = []

    def keep(operation_model: Any, response_dict: dict, **_: Any) -> None:
        bodies.append((operation_model.name, json.loads(response_dict["body"] or b"null")))

    client.meta.events.register("before-parse.kinesis.*", keep)
    return bodies


def wire_shape(operation: str, body: Any) -> Any:
    """The body, with each record's arrival time (a clock reading) replaced by its JSON type."""
    if operation == "GetRecords" and isinstance(body, dict):
        arrival = "ApproximateArrivalTimestamp"
        records = [{**r, arrival: type(r[arrival]).__name__} for r in body["Records"]]
        return {**body, "Records": records, "NextShardIterator": type(body.get("NextShardIterator")).__name__}
    return body


def kinesis_answers(kinesis: Any) -> tuple:
    bodies = wire_bodies(kinesis)
    kinesis.create_stream(StreamName="s", ShardCount=1)
    time.sleep(0.3)
    kinesis.put_records(
        StreamName="s", Records=[{"Data": b"\x00\xffdata" + bytes([i]), "PartitionKey": "7"} for i in range(5)]
    )
    shard = kinesis.list_shards(StreamName="s")["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName="s", ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    first = kinesis.get_records(ShardIterator=iterator["ShardIterator"], Limit=3)
    second = kinesis.get_records(ShardIterator=first["NextShardIterator"])
    third = kinesis.get_records(ShardIterator=second["NextShardIterator"])
    shape = [
        (r["Data"], r["PartitionKey"], r["SequenceNumber"], type(r["ApproximateArrivalTimestamp"]).__name__)
        for response in (first, second, third)
        for r in response["Records"]
    ]
    expired = None
    try:
        kinesis.get_records(ShardIterator="not-an-iterator")
    except Exception as exc:  # moto's own error either way
        expired = type(exc).__name__
    too_many = None
    try:
        kinesis.put_records(StreamName="s", Records=[{"Data": b"x", "PartitionKey": "k"}] * 501)
    except Exception as exc:
        too_many = type(exc).__name__
    wire = [(op, wire_shape(op, body)) for op, body in bodies if op in ("GetRecords", "PutRecords")]
    return shape, "NextShardIterator" in third, third["MillisBehindLatest"], expired, too_many, wire


def test_get_records_answer_as_moto_does(endpoints: dict[str, str]) -> None:
    answers = {name: kinesis_answers(clients(url)["kinesis"]) for name, url in endpoints.items()}
    assert answers["embedded"] == answers["moto"]
    records, *_, too_many, wire = answers["embedded"]
    assert len(records) == 5
    assert too_many is not None
    assert [operation for operation, _ in wire] == ["PutRecords"] + ["GetRecords"] * 3 + ["PutRecords"]


def items_answers(dynamodb: Any) -> tuple:
    """GetItem and Query answers of items with every kind of value (the items-response speedup's path)."""
    dynamodb.create_table(
        TableName="items",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk")],
        BillingMode="PAY_PER_REQUEST",
    )
    for i in range(30):
        item = {
            "pk": {"S": "RACE#1"},
            "sk": {"S": f"RESULT#{i:04d}"},
            "name": {"S": f"Racer {i} ✓"},
            "second": {"N": f"{1000 + i * 0.37:.2f}"},
            "done": {"BOOL": i % 2 == 0},
            "none": {"NULL": True},
            "blob": {"B": bytes([i, 255, 0])},
            "tags": {"SS": ["a", f"t{i}"]},
            "nested": {"M": {"list": {"L": [{"N": str(i)}, {"S": "x"}, {"M": {"deep": {"BOOL": False}}}]}}},
            "odd": {"N": ["1e2", "0.10", "-0", "007", "1.5E-3", "12345678901234567890.5"][i % 6]},
        }
        dynamodb.put_item(TableName="items", Item=item)
    key = {"pk": {"S": "RACE#1"}, "sk": {"S": "RESULT#0007"}}
    got = dynamodb.get_item(TableName="items", Key=key)["Item"]
    condition = {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "RACE#1"}}}
    first = dynamodb.query(TableName="items", Limit=10, **condition)
    second = dynamodb.query(TableName="items", ExclusiveStartKey=first["LastEvaluatedKey"], Limit=10, **condition)
    projected = dynamodb.query(
        TableName="items",
        ScanIndexForward=False,
        ProjectionExpression="sk, #n, #s",
        ExpressionAttributeNames={"#n": "name", "#s": "second"},
        **condition,
    )

    # projections of every kind through the answer speedups: top-level scalars, numbers moto's round trip
    # rewrites (1e2 -> 1E+2), a nested path, a list index, a map, a binary (not a set: moto's round
    # trip gives a string set in Python's set order, which differs between two processes)
    def projected_query(expression: str) -> dict:
        placeholders = {"#s": "second", "#none": "none", "#n": "name", "#b": "blob"}
        tokens = {token.strip() for token in expression.replace(".", ",").split(",")}
        used = {key: value for key, value in placeholders.items() if key in tokens}
        names = {"ExpressionAttributeNames": used} if used else {}
        return dynamodb.query(TableName="items", ProjectionExpression=expression, **names, **condition)

    scalars = projected_query("#s, odd, done, #none, sk, absent")
    others = [
        projected_query(expression)
        for expression in ("nested.list", "nested.list[1], sk", "nested, odd", "#b", "sk, #n")
    ]
    pages = [
        (page["Items"], page.get("LastEvaluatedKey"), page["Count"])
        for page in (first, second, projected, scalars, *others)
    ]
    return got, pages


def test_items_answer_as_moto_does(endpoints: dict[str, str]) -> None:
    answers = {name: items_answers(clients(url)["dynamodb"]) for name, url in endpoints.items()}
    assert answers["embedded"] == answers["moto"]
    got, pages = answers["embedded"]
    assert got["nested"]["M"]["list"]["L"][2] == {"M": {"deep": {"BOOL": False}}} and len(pages[2][0]) == 30
    scalars = pages[3][0]
    assert {item["odd"]["N"] for item in scalars} >= {"1E+2", "0.10"} and set(scalars[0]) == {
        "second",
        "odd",
        "done",
        "none",
        "sk",
    }


def query_answers(dynamodb: Any) -> list:
    """Queries of one partition and of a sparse index, in a table of many partitions (the query-scope speedup)."""
    schema.create_table(dynamodb, "scoped")
    for race in range(6):
        for racer in range(12):
            item = {"pk": {"S": f"RACE#{race}"}, "sk": {"S": f"RESULT#{racer:04d}"}, "score": {"N": str(racer % 5)}}
            if racer % 3 == 0:  # sparse: a third of the items carry the index keys
                item["gsi1pk"] = {"S": f"RACE#{race % 2}#RESULTS"}
                item["gsi1sk"] = {"S": f"{racer % 5:04d}#{race:02d}"}
            dynamodb.put_item(TableName="scoped", Item=item)
    answers = []
    for params in (
        {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "RACE#3"}}},
        {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "RACE#9"}}},
        {
            "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
            "ExpressionAttributeValues": {":p": {"S": "RACE#2"}, ":s": {"S": "RESULT#000"}},
            "ScanIndexForward": False,
            "Limit": 4,
        },
        {
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :p",
            "ExpressionAttributeValues": {":p": {"S": "RACE#1#RESULTS"}},
            "ScanIndexForward": False,
            "Limit": 5,
        },
    ):
        page = dynamodb.query(TableName="scoped", **params)
        pages = [page]
        while "LastEvaluatedKey" in page and len(pages) < 10:
            page = dynamodb.query(TableName="scoped", ExclusiveStartKey=page["LastEvaluatedKey"], **params)
            pages.append(page)
        answers.append([({k: v for k, v in p.items() if k != "ResponseMetadata"}) for p in pages])
    answers.append(dynamodb.scan(TableName="scoped", Limit=7)["Items"])
    return answers


def test_queries_of_a_partition_and_an_index_answer_as_moto_does(endpoints: dict[str, str]) -> None:
    answers = {name: query_answers(clients(url)["dynamodb"]) for name, url in endpoints.items()}
    assert answers["embedded"] == answers["moto"]
    partition, missing, reversed_page, index, _scan = answers["embedded"]
    assert len(partition[0]["Items"]) == 12 and missing[0]["Items"] == []
    assert [item["sk"]["S"] for item in reversed_page[0]["Items"]] == [f"RESULT#{n:04d}" for n in (9, 8, 7, 6)]
    assert sum(len(page["Items"]) for page in index) == 12  # races 1, 3, 5: racers 0, 3, 6, 9
