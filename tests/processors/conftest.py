"""Fixtures for processors tests: a table made from processors/table/schema.py, a dead-letter queue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from processors import clients
from processors.table import ResultsTable, create_table, store
from tests.processors.factories import LambdaContext, race_identity

TABLE_NAME = "alleycat-test"


def _clear_caches() -> None:
    clients.clear()


@pytest.fixture(autouse=True)
def _fresh_processor_caches() -> Iterator[None]:
    # Config and clients are cached per process, as in Lambda; each test gets its own.
    _clear_caches()
    yield
    _clear_caches()


@pytest.fixture
def dynamodb(aws: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ALLEYCAT_TABLE", TABLE_NAME)
    client = clients.aws_client("dynamodb")  # the table module's own client, so tests can hook its calls
    create_table(client, TABLE_NAME)
    return client


@pytest.fixture
def table(dynamodb: Any) -> ResultsTable:
    return store.get_results_table()


@pytest.fixture
def dead_letter_queue(aws: str, monkeypatch: pytest.MonkeyPatch) -> str:
    url = boto3.client("sqs").create_queue(QueueName="alleycat-dead-letter")["QueueUrl"]
    monkeypatch.setenv("ALLEYCAT_DEAD_LETTER_QUEUE_URL", url)
    return url


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


def receive_all(queue_url: str) -> list[dict[str, Any]]:
    """Every message in the queue (short polls until empty)."""
    sqs = boto3.client("sqs")
    messages: list[dict[str, Any]] = []
    while True:
        response = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=60
        )
        batch = response.get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)


def publish_races(table: ResultsTable, race_ids: Any, *, class_id: int = 3, **kwargs: Any) -> None:
    """Publish race identities (A0), as the races app does, so that the aggregator counts their records."""
    for race_id in race_ids:
        assert table.put_race_identity(race_identity(race_id, class_id=class_id, **kwargs))
