"""The publisher's Redis URL: REDIS_URL locally, an SSM SecureString on AWS (read at cold start), never plaintext."""

from __future__ import annotations

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from processors import clients
from processors.config import REDIS_URL_PARAMETER_ENV, get_config, redis_url
from processors.handlers import publisher

SECRET_URL = "rediss://:s3cr3t-password@redis.example.internal:6379/0"


def publisher_client():
    """The publisher's Redis connection object (configuration only, nothing is sent)."""
    return publisher.get_redis()


@pytest.fixture
def fresh_caches():
    parameters.clear_caches()
    clients.clear()
    yield
    parameters.clear_caches()
    clients.clear()


def test_url_comes_from_the_secure_string_parameter(aws, monkeypatch, fresh_caches) -> None:
    boto3.client("ssm").put_parameter(Name="/alleycat/redis-url", Value=SECRET_URL, Type="SecureString")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv(REDIS_URL_PARAMETER_ENV, "/alleycat/redis-url")
    assert redis_url(get_config()) == SECRET_URL
    # The publisher connects with it (one GetParameter per cold start, then cached).
    assert publisher.redis_url is redis_url
    client = publisher_client()
    assert client is not None
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["password"]) == ("redis.example.internal", 6379, "s3cr3t-password")


def test_redis_url_wins_locally(monkeypatch, fresh_caches) -> None:
    monkeypatch.setenv("REDIS_URL", "unix:///tmp/redis.sock")
    monkeypatch.setenv(REDIS_URL_PARAMETER_ENV, "/never/read")
    assert redis_url(get_config()) == "unix:///tmp/redis.sock"


def test_neither_set_means_nothing_to_publish_to(monkeypatch, fresh_caches) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv(REDIS_URL_PARAMETER_ENV, raising=False)
    assert redis_url(get_config()) is None
    assert publisher_client() is None


def test_a_missing_parameter_fails_loudly(aws, monkeypatch, fresh_caches) -> None:
    # A misconfigured name must not look like "no Redis configured": the invocation fails and retries.
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv(REDIS_URL_PARAMETER_ENV, "/alleycat/missing")
    with pytest.raises(parameters.exceptions.GetParameterError):
        redis_url(get_config())
