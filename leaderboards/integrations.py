"""S3 reads of the history bucket (the "All time" ghost objects), behind a cached client factory.

Only this module calls boto3 for S3 in the Django site; DynamoDB goes through ``processors.table``.
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

DEFAULT_HISTORY_BUCKET = "alleycat-history"
CHUNK_BYTES = 64 * 1024

BOTO_CONFIG = BotoConfig(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)


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


def history_bucket() -> str:
    return os.environ.get("ALLEYCAT_HISTORY_BUCKET") or DEFAULT_HISTORY_BUCKET


def history_key(class_id: int) -> str:
    return f"class-{int(class_id)}.json.gz"


@lru_cache(maxsize=1)
def s3_get_client() -> Any:
    """S3 client; honours AWS_ENDPOINT_URL (moto, LocalStack) and the standard AWS variables."""
    return boto3.client("s3", config=BOTO_CONFIG)


def history_object_get(*, class_id: int, if_none_match: str | None = None) -> HistoryObject | None:
    """The gzip history object of a class, ``None`` when it does not exist yet.

    ``if_none_match`` is passed to S3, which answers 304 when the client's copy is current:
    then ``not_modified`` is set and nothing is downloaded.
    """
    params: dict[str, Any] = {"Bucket": history_bucket(), "Key": history_key(class_id)}
    if if_none_match:
        params["IfNoneMatch"] = if_none_match
    try:
        response = s3_get_client().get_object(**params)
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
