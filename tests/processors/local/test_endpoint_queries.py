"""The embedded endpoint's queries (``speedups._patch_dynamodb_query_scope``: a base-table Query reads its
partition only) answer as moto's own server does, whatever writes came before and between: puts, updates
that add or remove index keys, deletes, batch writes, transactions, and a transaction taken back."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.table import schema
from tests.processors.local.test_endpoint import _dynamodb, plain_moto, running_endpoint

__all__ = ("plain_moto",)  # the fixture, moto's own server

_TABLES = itertools.count()
PKS = ["P0", "P1", "P2"]
SKS = ["A", "B", "C", "D"]
G1 = ["G0", "G1"]
G2 = ["H0"]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with running_endpoint() as url:
        yield url


def _item(pk: str, sk: str, g1: str | None, g2: str | None, n: int) -> dict[str, Any]:
    item = {"pk": {"S": pk}, "sk": {"S": sk}, "n": {"N": str(n)}}
    if g1 is not None:
        item |= {schema.GSI1_PK: {"S": g1}, schema.GSI1_SK: {"S": f"{n:04d}#{sk}"}}
    if g2 is not None:
        item |= {schema.GSI2_PK: {"S": g2}, schema.GSI2_SK: {"S": f"{sk}{n}"}}
    return item


keys = st.tuples(st.sampled_from(PKS), st.sampled_from(SKS))
puts = st.builds(
    lambda key, g1, g2, n: ("put", key, g1, g2, n),
    keys,
    st.sampled_from([*G1, None]),
    st.sampled_from([*G2, None]),
    st.integers(0, 30),
)
operations = st.one_of(
    puts,
    st.builds(lambda key, g1, n: ("update", key, g1, n), keys, st.sampled_from([*G1, None]), st.integers(0, 30)),
    st.builds(lambda key: ("delete", key), keys),
    st.builds(lambda batch: ("batch", batch), st.lists(puts, min_size=1, max_size=4, unique_by=lambda op: op[1])),
    st.builds(
        lambda batch, fails: ("transaction", batch, fails),
        st.lists(puts, min_size=1, max_size=4, unique_by=lambda op: op[1]),
        st.sampled_from(["", "condition", "too large"]),
    ),
)


def _apply(dynamodb: Any, table: str, operation: tuple) -> None:
    kind = operation[0]
    if kind == "put":
        _, (pk, sk), g1, g2, n = operation
        dynamodb.put_item(TableName=table, Item=_item(pk, sk, g1, g2, n))
    elif kind == "update":
        _, (pk, sk), g1, n = operation
        key = {"pk": {"S": pk}, "sk": {"S": sk}}
        if g1 is None:
            dynamodb.update_item(
                TableName=table, Key=key, UpdateExpression=f"REMOVE {schema.GSI1_PK}, {schema.GSI1_SK}"
            )
        else:
            dynamodb.update_item(
                TableName=table,
                Key=key,
                UpdateExpression=f"SET {schema.GSI1_PK} = :g, {schema.GSI1_SK} = :s, n = :n",
                ExpressionAttributeValues={":g": {"S": g1}, ":s": {"S": f"{n:04d}#{sk}"}, ":n": {"N": str(n)}},
            )
    elif kind == "delete":
        _, (pk, sk) = operation
        dynamodb.delete_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}})
    elif kind == "batch":
        requests = [{"PutRequest": {"Item": _item(pk, sk, g1, g2, n)}} for _, (pk, sk), g1, g2, n in operation[1]]
        dynamodb.batch_write_item(RequestItems={table: requests})
    else:
        _, batch, fails = operation
        actions: list[dict[str, Any]] = [
            {"Put": {"TableName": table, "Item": _item(pk, sk, g1, g2, n)}} for _, (pk, sk), g1, g2, n in batch
        ]
        last = actions[-1]["Put"]
        if fails == "condition":  # checked before anything is written: nothing is
            last["ConditionExpression"] = "attribute_exists(never)"
        elif fails == "too large":  # found while written: the puts before it are taken back
            last["Item"] = {**last["Item"], "blob": {"B": b"x" * 420_000}}
        try:
            dynamodb.transact_write_items(TransactItems=actions)
        except dynamodb.exceptions.ClientError:
            assert fails


def _pages(dynamodb: Any, table: str, **query: Any) -> list[tuple[list[dict[str, Any]], Any]]:
    pages, start = [], None
    while True:
        page = dynamodb.query(TableName=table, Limit=2, **query, **({"ExclusiveStartKey": start} if start else {}))
        start = page.get("LastEvaluatedKey")
        pages.append((page["Items"], start))
        if not start:
            return pages


def _answers(dynamodb: Any, table: str) -> list[Any]:
    answers = []
    for pk in PKS:
        for forward in (True, False):
            answers.append(
                _pages(
                    dynamodb,
                    table,
                    KeyConditionExpression="pk = :p",
                    ExpressionAttributeValues={":p": {"S": pk}},
                    ScanIndexForward=forward,
                )
            )
    for index, attribute, values in ((schema.GSI1, schema.GSI1_PK, G1), (schema.GSI2, schema.GSI2_PK, G2)):
        answers.extend(_index_answers(dynamodb, table, index, attribute, values))
    return answers


def _index_answers(dynamodb: Any, table: str, index: str, attribute: str, values: list[str]) -> list[Any]:
    return [
        _pages(
            dynamodb,
            table,
            IndexName=index,
            KeyConditionExpression=f"{attribute} = :v",
            ExpressionAttributeValues={":v": {"S": value}},
            ScanIndexForward=False,
        )
        for value in [*values, "nobody"]
    ]


# each example writes tables of its own (fresh names) on both servers
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=st.lists(operations, min_size=1, max_size=12))
def test_queries_answer_as_moto_does_after_any_writes(endpoint: str, plain_moto: str, history: list[tuple]) -> None:
    number = next(_TABLES)
    answers = []
    for url in (endpoint, plain_moto):
        dynamodb = _dynamodb(url)
        table = f"queries-{number}"
        schema.create_table(dynamodb, table)
        seen = []
        for operation in history:  # the index partitions after every write, so that none goes unseen
            _apply(dynamodb, table, operation)
            seen.append(_index_answers(dynamodb, table, schema.GSI1, schema.GSI1_PK, G1))
        answers.append((seen, _answers(dynamodb, table)))
    assert answers[0] == answers[1]
