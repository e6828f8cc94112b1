"""The embedded endpoint's Query fast path (``processors.local.moto``) answers exactly as moto's own Query.

Each query runs twice against the same in-process moto table, once with moto's ``Table.query`` and once with the
patched one, and the whole answers (items in order, Count, ScannedCount, LastEvaluatedKey, or the error) must be
equal, page after page. Covered: table and index queries, every range key condition, ScanIndexForward, Limit,
ExclusiveStartKey/LastEvaluatedKey, projections (top-level and nested, numbers whose text a round trip changes,
binary, lists, maps, sets), filter expressions, an index that does not project every attribute, ties on the index
sort key, items missing the index keys, and the errors and legacy parameters left to moto.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models.table import Table

from processors.local.moto import _patch_dynamodb_items_response, _patch_dynamodb_query

TABLE = "moto-query"


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    _patch_dynamodb_query()
    with mock_aws():
        dynamodb = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            endpoint_url=None,
        )
        dynamodb.create_table(
            TableName=TABLE,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
                {"AttributeName": "g1pk", "AttributeType": "S"},
                {"AttributeName": "g1sk", "AttributeType": "S"},
                {"AttributeName": "g2pk", "AttributeType": "S"},
                {"AttributeName": "g2sk", "AttributeType": "N"},
                {"AttributeName": "lsk", "AttributeType": "N"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "gsi1",
                    "KeySchema": [
                        {"AttributeName": "g1pk", "KeyType": "HASH"},
                        {"AttributeName": "g1sk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                },
                {
                    "IndexName": "gsi2",
                    "KeySchema": [
                        {"AttributeName": "g2pk", "KeyType": "HASH"},
                        {"AttributeName": "g2sk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["score"]},
                },
            ],
            LocalSecondaryIndexes=[
                {
                    "IndexName": "lsi1",
                    "KeySchema": [
                        {"AttributeName": "pk", "KeyType": "HASH"},
                        {"AttributeName": "lsk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        rng = random.Random(5)
        numbers = ["1", "1.50", "1e5", "-0", "0.0001", "123456789.1234", "7", "2.0"]
        requests = []
        for n in range(300):
            item: dict[str, Any] = {
                "pk": {"S": f"P#{n % 4}"},
                "sk": {"S": f"S#{n:04d}"},
                "score": {"N": rng.choice(numbers)},
                "name": {"S": f"racer {n}"},
                "second": {"N": str(n % 17)},
            }
            if n % 5:  # some items stay out of the indexes
                item["g1pk"] = {"S": f"G#{n % 3}"}
                item["g1sk"] = {"S": f"{rng.randrange(40):03d}"}  # ties: order falls back to pk, sk
            if n % 2:
                item["g2pk"] = {"S": "R"}
                item["g2sk"] = {"N": rng.choice(numbers)}
            if n % 3:
                item["lsk"] = {"N": str(rng.randrange(-50, 50))}
            if n % 7 == 0:
                item["blob"] = {"B": bytes([n % 256, 0, 255])}
                item["arr"] = {"L": [{"N": "1.10"}, {"S": "x"}, {"M": {"a": {"N": "2"}}}]}
                item["map"] = {"M": {"a": {"S": "b"}, "n": {"N": "3.0"}, "deep": {"M": {"x": {"BOOL": True}}}}}
                item["tags"] = {"SS": ["b", "a"]}
                item["flag"] = {"BOOL": n % 2 == 0}
                item["nothing"] = {"NULL": True}
            requests.append({"PutRequest": {"Item": item}})
        for start in range(0, len(requests), 25):
            dynamodb.batch_write_item(RequestItems={TABLE: requests[start : start + 25]})
        yield dynamodb


def _answer(client: Any, params: dict[str, Any], patched: bool) -> dict[str, Any]:
    Table.query = Table._alleycat_patched_query if patched else Table._alleycat_unpatched_query
    try:
        response = client.query(TableName=TABLE, **params)
    except ClientError as exc:
        return {"error": exc.response["Error"]}
    except Exception as exc:  # noqa: BLE001 - moto's own failures (a 500 over HTTP) must be the same too
        return {"exception": repr(exc)}
    finally:
        Table.query = Table._alleycat_patched_query
    response.pop("ResponseMetadata", None)
    return response


def _pages(client: Any, params: dict[str, Any], patched: bool) -> list[dict[str, Any]]:
    pages = []
    params = dict(params)
    for _ in range(400):
        answer = _answer(client, params, patched)
        pages.append(answer)
        if "LastEvaluatedKey" not in answer:
            break
        params["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
    return pages


def _assert_same(client: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
    expected = _pages(client, params, patched=False)
    actual = _pages(client, params, patched=True)
    assert actual == expected
    return actual


@pytest.fixture(autouse=True)
def _both_queries() -> None:
    if not hasattr(Table, "_alleycat_patched_query"):
        Table._alleycat_patched_query = Table.query


RANGE_CONDITIONS = [
    ("", {}),
    (" AND #r = :a", {":a": "010"}),
    (" AND #r < :a", {":a": "015"}),
    (" AND #r <= :a", {":a": "015"}),
    (" AND #r > :a", {":a": "015"}),
    (" AND #r >= :a", {":a": "015"}),
    (" AND #r BETWEEN :a AND :b", {":a": "005", ":b": "030"}),
    (" AND begins_with(#r, :a)", {":a": "01"}),
]


@pytest.mark.parametrize("forward", [True, False])
@pytest.mark.parametrize("limit", [None, 1, 7, 100])
@pytest.mark.parametrize(("condition", "values"), RANGE_CONDITIONS)
def test_index_query_matches_moto(client: Any, condition: str, values: dict[str, str], limit: int, forward: bool):
    params: dict[str, Any] = {
        "IndexName": "gsi1",
        "KeyConditionExpression": "#h = :h" + condition,
        "ExpressionAttributeNames": {"#h": "g1pk", **({"#r": "g1sk"} if condition else {})},
        "ExpressionAttributeValues": {":h": {"S": "G#1"}, **{k: {"S": v} for k, v in values.items()}},
        "ScanIndexForward": forward,
    }
    if limit:
        params["Limit"] = limit
    pages = _assert_same(client, params)
    assert sum(page.get("Count", 0) for page in pages) > 0, pages[0]


@pytest.mark.parametrize("forward", [True, False])
@pytest.mark.parametrize("limit", [None, 1, 9])
@pytest.mark.parametrize(("condition", "values"), RANGE_CONDITIONS)
def test_table_query_matches_moto(client: Any, condition: str, values: dict[str, str], limit: int, forward: bool):
    values = {key: "S#0" + value for key, value in values.items()}
    params: dict[str, Any] = {
        "KeyConditionExpression": "pk = :h" + condition.replace("#r", "sk"),
        "ExpressionAttributeValues": {":h": {"S": "P#2"}, **{k: {"S": v} for k, v in values.items()}},
        "ScanIndexForward": forward,
    }
    if limit:
        params["Limit"] = limit
    pages = _assert_same(client, params)
    assert sum(page.get("Count", 0) for page in pages) > 0, pages[0]


@pytest.mark.parametrize(
    "projection",
    [
        "#n, score, #s",  # what the table module asks for
        "score, #n, absent",  # a name no item has
        "#b, #t, #f, #nothing, score",  # values the fast path leaves to moto's projection
        "arr[2].a, #m.deep.x, #m.n, score",  # nested paths
        "pk, sk, g1pk, g1sk",
    ],
)
@pytest.mark.parametrize("index", ["gsi1", "gsi2", None])
def test_projection_matches_moto(client: Any, projection: str, index: str | None):
    names = {"#n": "name", "#s": "second", "#nothing": "nothing", "#b": "blob", "#t": "tags", "#f": "flag", "#m": "map"}
    params: dict[str, Any] = {
        "ProjectionExpression": projection,
        "ExpressionAttributeNames": {k: names[k] for k in set(re.findall(r"#\w+", projection))},
        "Limit": 11,
    }
    if index == "gsi1":
        params.update(IndexName="gsi1", KeyConditionExpression="g1pk = :h", ScanIndexForward=False)
        params["ExpressionAttributeValues"] = {":h": {"S": "G#0"}}
    elif index == "gsi2":
        params.update(IndexName="gsi2", KeyConditionExpression="g2pk = :h AND g2sk > :z")
        params["ExpressionAttributeValues"] = {":h": {"S": "R"}, ":z": {"N": "0"}}
    else:
        params.update(KeyConditionExpression="pk = :h")
        params["ExpressionAttributeValues"] = {":h": {"S": "P#0"}}
    if not params["ExpressionAttributeNames"]:
        del params["ExpressionAttributeNames"]
    pages = _assert_same(client, params)
    assert sum(page.get("Count", 0) for page in pages) > 0, pages[0]


@pytest.mark.parametrize("projection", [None, "#n, score"])
@pytest.mark.parametrize(
    "condition",
    ["score > :one", "attribute_exists(blob)", "#s BETWEEN :one AND :ten OR begins_with(#n, :r)"],
)
def test_filter_expression_matches_moto(client: Any, condition: str, projection: str | None):
    params: dict[str, Any] = {
        "IndexName": "gsi1",
        "KeyConditionExpression": "g1pk = :h",
        "FilterExpression": condition,
        "ExpressionAttributeValues": {":h": {"S": "G#2"}},
        "Limit": 13,
    }
    values = {":one": {"N": "1"}, ":ten": {"N": "10"}, ":r": {"S": "racer 1"}}
    params["ExpressionAttributeValues"].update({k: v for k, v in values.items() if k in condition})
    names = {"#n": "name", "#s": "second"}
    used = condition + (projection or "")
    if projection:
        params["ProjectionExpression"] = projection
    if any(name in used for name in names):
        params["ExpressionAttributeNames"] = {k: v for k, v in names.items() if k in used}
    _assert_same(client, params)


@pytest.mark.parametrize("forward", [True, False])
def test_numeric_index_keys_and_keys_only_index_match_moto(client: Any, forward: bool):
    _assert_same(
        client,
        {
            "IndexName": "gsi2",
            "KeyConditionExpression": "g2pk = :h AND g2sk BETWEEN :a AND :b",
            "ExpressionAttributeValues": {":h": {"S": "R"}, ":a": {"N": "-1"}, ":b": {"N": "1000"}},
            "ScanIndexForward": forward,
            "Limit": 6,
        },
    )
    _assert_same(
        client,
        {
            "IndexName": "lsi1",
            "KeyConditionExpression": "pk = :h AND lsk < :z",
            "ExpressionAttributeValues": {":h": {"S": "P#1"}, ":z": {"N": "0"}},
            "ScanIndexForward": forward,
            "Limit": 4,
        },
    )


def test_start_key_between_items_and_no_match_match_moto(client: Any):
    base = {
        "IndexName": "gsi1",
        "KeyConditionExpression": "g1pk = :h",
        "ExpressionAttributeValues": {":h": {"S": "G#0"}},
    }
    start = {"g1pk": {"S": "G#0"}, "g1sk": {"S": "020"}, "pk": {"S": "P#9"}, "sk": {"S": "S#zzzz"}}
    for forward in (True, False):
        _assert_same(client, {**base, "ExclusiveStartKey": start, "ScanIndexForward": forward, "Limit": 5})
    _assert_same(client, {**base, "ExpressionAttributeValues": {":h": {"S": "nobody"}}})
    _assert_same(client, {"KeyConditionExpression": "pk = :h", "ExpressionAttributeValues": {":h": {"S": "nobody"}}})


@pytest.mark.parametrize(
    "params",
    [
        {"IndexName": "nope", "KeyConditionExpression": "g1pk = :h", "ExpressionAttributeValues": {":h": {"S": "G#0"}}},
        {
            "IndexName": "gsi1",
            "ConsistentRead": True,
            "KeyConditionExpression": "g1pk = :h",
            "ExpressionAttributeValues": {":h": {"S": "G#0"}},
        },
        {
            "IndexName": "gsi1",
            "KeyConditions": {"g1pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "G#0"}]}},
        },
        {
            "KeyConditions": {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "P#3"}]}},
            "QueryFilter": {"score": {"ComparisonOperator": "GT", "AttributeValueList": [{"N": "1"}]}},
        },
        {
            "IndexName": "gsi1",
            "KeyConditionExpression": "g1pk = :h",
            "ExpressionAttributeValues": {":h": {"S": "G#0"}},
            "ExclusiveStartKey": {"pk": {"S": "P#0"}, "sk": {"S": "S#0005"}},  # without the index keys
        },
    ],
)
def test_errors_and_legacy_parameters_match_moto(client: Any, params: dict[str, Any]):
    _assert_same(client, params)


def test_the_table_modules_query_takes_the_fast_path(client: Any, monkeypatch: pytest.MonkeyPatch):
    def unpatched(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("answered by moto's own Query")

    monkeypatch.setattr(Table, "_alleycat_unpatched_query", unpatched)
    answer = client.query(
        TableName=TABLE,
        IndexName="gsi1",
        KeyConditionExpression="#k = :k",
        ExpressionAttributeNames={"#k": "g1pk", "#a0": "name", "#a1": "score"},
        ExpressionAttributeValues={":k": {"S": "G#1"}},
        ProjectionExpression="#a0, #a1",
        ScanIndexForward=False,
        Limit=5,
    )
    assert answer["Count"] == 5 and "LastEvaluatedKey" in answer
    assert all(set(item) == {"name", "score"} for item in answer["Items"])


def _with_items_response(patched: bool, call: Any) -> Any:
    from moto.core.serialize import JSONSerializer
    from moto.dynamodb import responses

    to_dict, serialize_map = responses._alleycat_patched if patched else responses._alleycat_unpatched
    responses.dynamo_to_dict, JSONSerializer._serialize_type_map = to_dict, serialize_map
    try:
        return call()
    except ClientError as exc:
        return {"error": exc.response["Error"]}
    finally:
        responses.dynamo_to_dict, JSONSerializer._serialize_type_map = responses._alleycat_patched


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.query(
            TableName=TABLE, KeyConditionExpression="pk = :h", ExpressionAttributeValues={":h": {"S": "P#0"}}
        ),
        lambda c: c.query(
            TableName=TABLE,
            IndexName="gsi1",
            KeyConditionExpression="g1pk = :h",
            ExpressionAttributeValues={":h": {"S": "G#1"}},
            ProjectionExpression="arr, #m, score",
            ExpressionAttributeNames={"#m": "map"},
        ),
        lambda c: c.get_item(TableName=TABLE, Key={"pk": {"S": "P#0"}, "sk": {"S": "S#0028"}}),
        lambda c: c.batch_get_item(RequestItems={TABLE: {"Keys": [{"pk": {"S": "P#3"}, "sk": {"S": "S#0007"}}]}}),
        lambda c: c.scan(TableName=TABLE, Limit=40),
        lambda c: c.describe_table(TableName=TABLE),
    ],
)
def test_items_response_matches_moto(client: Any, call: Any):
    _patch_dynamodb_items_response()
    expected = _with_items_response(False, lambda: call(client))
    actual = _with_items_response(True, lambda: call(client))
    for answer in (expected, actual):
        answer.pop("ResponseMetadata", None)
    assert actual == expected
    assert "error" not in actual
