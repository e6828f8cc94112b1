"""Long URLs against daphne as it runs the site: every request gets an HTTP answer, none a dropped connection."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.conftest import free_port, http_server_process

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def daphne_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    var_dir = tmp_path_factory.mktemp("var")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ALLEYCAT_"))},
        "DJANGO_SETTINGS_MODULE": "alleycat_site.settings",
        "DJANGO_DEBUG": "1",
        "ALLEYCAT_VAR_DIR": str(var_dir),
        "REDIS_URL": f"unix://{var_dir}/no-redis.sock",  # the cache degrades: throttling is not what is tested
    }
    argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "alleycat_site.asgi:application"]
    with http_server_process(argv, "/healthz", port, cwd=ROOT, env=env, timeout=60) as url:
        yield url


def _raw_get(url: str, target: str, extra_header: str = "") -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra_header}Connection: close\r\n\r\n"
        sock.sendall(request.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data, f"connection closed without a response ({len(target)} bytes of target)"
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("length", [2_000, 8_000, 16_000])
def test_a_long_cursor_is_a_json_400(daphne_url, length):
    status, headers, body = _raw_get(daphne_url, f"/api/racers/3/results/?cursor={'x' * length}&limit=1001")
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert set(orjson.loads(body)["error"]["details"]) == {"cursor", "limit"}


@pytest.mark.parametrize("length", [17_000, 70_000])
def test_a_request_line_past_the_server_limit_is_a_414(daphne_url, length):
    status, headers, body = _raw_get(daphne_url, f"/api/racers/3/results/?cursor={'x' * length}")
    assert status == 414
    assert orjson.loads(body)["error"]["code"] == "uri_too_long"


def test_a_header_line_past_the_limit_is_a_431(daphne_url):
    status, _headers, body = _raw_get(daphne_url, "/healthz", extra_header=f"X-Big: {'y' * 17_000}\r\n")
    assert status == 431
    assert orjson.loads(body)["error"]["code"] == "header_too_large"
