"""The anonymous throttle counts the real client address, in a cache every web process shares."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from django.test import RequestFactory, override_settings
from rest_framework.throttling import AnonRateThrottle

from alleycat_site.cache import ResilientRedisCache
from alleycat_site.client_ip import client_ip

ROOT = Path(__file__).resolve().parents[2]

# One web process: Django's test client against the real settings (Redis cache on REDIS_URL), printing the
# status of each request. Every request carries a different, made-up X-Forwarded-For. The request is a bad
# one (limit=0, a 400 before any database read): the throttle counts it all the same, and answers 429.
WEB_PROCESS = """
import json, sys, uuid
import django
django.setup()
from django.test import Client
codes = []
for i, peer in enumerate(sys.argv[1:]):
    forged = f"10.{i % 250}.{uuid.uuid4().int % 250}.1"
    response = Client(REMOTE_ADDR=peer).get("/api/races/?limit=0", headers={"x-forwarded-for": forged})
    codes.append(response.status_code)
print(json.dumps(codes))
"""


def _web_process(redis_url: str, tmp_path: Path, peers: list[str], **env: str) -> list[int]:
    """One request per address in ``peers`` (the TCP peer of each), in one new process."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "alleycat_site.settings",
        "DJANGO_DEBUG": "1",
        "ALLEYCAT_VAR_DIR": str(tmp_path),
        "REDIS_URL": redis_url,
        "ALLEYCAT_ANON_THROTTLE": "3/minute",
        "DJANGO_ALLOWED_HOSTS": "testserver",
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-c", WEB_PROCESS, *peers],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_forged_forwarded_for_does_not_bypass_and_counts_are_shared(redis_url, tmp_path):
    redis.Redis.from_url(redis_url).flushall()
    # One process: three allowed, then throttled, whatever X-Forwarded-For says.
    assert _web_process(redis_url, tmp_path, ["192.0.2.10"] * 5) == [400, 400, 400, 429, 429]
    # Another process (another web server behind the balancer) sees the same count for this client, and
    # another client has its own budget.
    assert _web_process(redis_url, tmp_path, ["192.0.2.10", "192.0.2.11", "192.0.2.11"]) == [429, 400, 400]


def test_behind_one_proxy_the_last_forwarded_address_is_the_client(redis_url, tmp_path):
    redis.Redis.from_url(redis_url).flushall()
    codes = _web_process(redis_url, tmp_path, ["192.0.2.20"] * 5, ALLEYCAT_NUM_PROXIES="1")
    assert codes == [400] * 5  # each request came from another client, as the proxy reported


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "203.0.113.9", "192.0.2.1"),
        (0, None, "192.0.2.1"),
        (1, "198.51.100.7, 203.0.113.9", "203.0.113.9"),
        (2, "198.51.100.7, 203.0.113.9", "198.51.100.7"),
        (3, "203.0.113.9", "203.0.113.9"),
        (1, None, "192.0.2.1"),
    ],
)
def test_client_ip_and_drf_agree(proxies, forwarded, expected):
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.1", **headers)
    with override_settings(
        ALLEYCAT_NUM_PROXIES=proxies, REST_FRAMEWORK={"NUM_PROXIES": proxies, "DEFAULT_PERMISSION_CLASSES": []}
    ):
        assert client_ip(request) == expected
        assert AnonRateThrottle().get_ident(request) == expected


def test_a_redis_outage_degrades_to_misses_not_errors(tmp_path):
    cache = ResilientRedisCache(f"unix://{tmp_path}/no-redis.sock", {"OPTIONS": {"socket_connect_timeout": 0.2}})
    assert cache.get("k") is None
    assert cache.get("k", "fallback") == "fallback"
    cache.set("k", 1)
    assert cache.get_many(["a", "b"]) == {}
    assert cache.add("k", 1) is False
