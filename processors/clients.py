"""The processors' clients, one factory and one cache: ``clear()`` forgets every client, the configuration
and whatever else was made once per process with ``@cached`` (tests point the environment elsewhere).

Module-level state holds only these (clients and configuration), never data of a request. Every AWS
client honours ``AWS_ENDPOINT_URL`` (moto, LocalStack) and the standard AWS variables; botocore's
``standard`` retry mode retries throttling, 5xx and connection errors below ``processors.retry``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

import boto3
from botocore.config import Config as BotoConfig

F = TypeVar("F", bound=Callable[..., Any])

PARALLEL_REQUESTS = 16  # the table's parallel conditional puts (processors.table.store) share one client

BOTO_CONFIGS: dict[str, BotoConfig] = {
    "dynamodb": BotoConfig(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=2,
        read_timeout=5,
        max_pool_connections=PARALLEL_REQUESTS,
        # Every request is built by the table module from typed values; botocore's client-side check of a
        # 1,000-racer live item costs ~17 ms of CPU per write and would catch nothing.
        parameter_validation=False,
    ),
    "s3": BotoConfig(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=10),
    "sqs": BotoConfig(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2),
}

_caches: list[Any] = []


def cached(function: F) -> F:
    """Make ``function`` once per process (per arguments); ``clear()`` forgets it."""
    wrapped = lru_cache(maxsize=None)(function)
    _caches.append(wrapped)
    return wrapped  # type: ignore[return-value]


def clear() -> None:
    """Forget every client and the configuration: the next use reads the environment again."""
    for wrapped in _caches:
        wrapped.cache_clear()


@cached
def aws_client(service: str) -> Any:
    """The boto3 low-level client of ``service`` ("dynamodb", "s3" or "sqs")."""
    return boto3.client(service, config=BOTO_CONFIGS[service])
