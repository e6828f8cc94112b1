"""The Django site's AWS clients (one factory, one cache) and its S3 reads of the history bucket.

DynamoDB is read through ``processors.table`` with a client made here: a web request must fail fast
(a 503 with Retry-After within ~2 s when DynamoDB or S3 hangs), where a handler can wait and retry.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from processors.config import get_config
from processors.history_store import history_key
from processors.table import ResultsTable

CHUNK_BYTES = 64 * 1024

# One attempt, short timeouts: a hung endpoint costs a request at most CONNECT + READ timeouts (~2 s), not
# botocore's default 60 s x retries. The client of the API retries on 503 (Retry-After) and pages say "try again".
# The read timeout is the wait for the next bytes, not for the whole answer: a large item still streams in.
WEB_CONNECT_TIMEOUT_SECONDS = 1.0
WEB_READ_TIMEOUT_SECONDS = 2.0
BOTO_CONFIG = BotoConfig(
    retries={"mode": "standard", "total_max_attempts": 1},
    connect_timeout=WEB_CONNECT_TIMEOUT_SECONDS,
    read_timeout=WEB_READ_TIMEOUT_SECONDS,
    max_pool_connections=32,
)


class HistoryUnavailable(Exception):
    """The history bucket cannot be reached (endpoint down, throttled, bucket missing): HTTP 503."""


@dataclass(frozen=True)
class HistoryObject:
    """A class's history object: gzip bytes streamed from S3 (``chunks``), or ``not_modified``."""

    etag: str | None
    last_modified: Any
    content_length: int | None
    chunks: Iterator[bytes] | None
    not_modified: bool = False


def aws_client(service: str) -> Any:
    """The site's client of an AWS service; honours AWS_ENDPOINT_URL (moto, LocalStack) and the AWS variables."""
    # Keyed by the endpoint too: a process that is pointed elsewhere (tests, one endpoint per test) never
    # keeps talking to the previous one.
    return _client(service, os.environ.get("AWS_ENDPOINT_URL"))


@lru_cache(maxsize=8)
def _client(service: str, endpoint_url: str | None) -> Any:
    return boto3.client(service, config=BOTO_CONFIG)


def results_table() -> ResultsTable:
    return _results_table(os.environ.get("AWS_ENDPOINT_URL"), get_config().table_name)


@lru_cache(maxsize=8)
def _results_table(endpoint_url: str | None, table_name: str) -> ResultsTable:
    return ResultsTable(aws_client("dynamodb"), table_name)


def clients_clear() -> None:
    """Forget the clients (tests point AWS_ENDPOINT_URL elsewhere between tests)."""
    _client.cache_clear()
    _results_table.cache_clear()


def history_object_get(*, class_id: int, if_none_match: str | None = None) -> HistoryObject | None:
    """The gzip history object of a class, ``None`` when it does not exist yet.

    ``if_none_match`` is passed to S3, which answers 304 when the client's copy is current:
    then ``not_modified`` is set and nothing is downloaded.
    """
    params: dict[str, Any] = {"Bucket": get_config().history_bucket, "Key": history_key(class_id)}
    if if_none_match:
        params["IfNoneMatch"] = if_none_match
    try:
        response = aws_client("s3").get_object(**params)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code"))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("304", "NotModified") or status == 304:
            return HistoryObject(if_none_match, None, 0, None, not_modified=True)
        if code in ("NoSuchKey", "404"):
            return None
        raise HistoryUnavailable(f"history object of class {class_id}: {code}") from exc
    except BotoCoreError as exc:
        raise HistoryUnavailable(str(exc)) from exc
    body = response["Body"]
    return HistoryObject(
        etag=response.get("ETag"),
        last_modified=response.get("LastModified"),
        content_length=response.get("ContentLength"),
        chunks=_chunks(body),
    )


def _chunks(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(CHUNK_BYTES)
    finally:
        body.close()
