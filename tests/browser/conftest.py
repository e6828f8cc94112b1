"""The site as it runs for real, for the browser: daphne (ASGI, HTTP + WebSocket), the local
pipeline runner (aggregator, finals, publisher ... on moto), the Redis channel layer, and a
SQLite file, each a process of its own on 127.0.0.1, stopped at the end of the test.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import AWS_TEST_ENV, free_port, wait_for_http

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Debian's Chromium. Missing in CI is a failure, never a skip."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message + " (outside CI)")
    return str(CHROMIUM)


@pytest.fixture
def browser(chromium_executable: str) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Site:
    url: str
    env: dict[str, str]
    var_dir: Path
    rider_password: str

    def manage(self, *args: str, timeout: float = 60) -> str:
        """Run ``python -m <module> ...`` with the site's environment; returns stdout."""
        done = subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode:
            raise AssertionError(f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def scenario(self, *args: str) -> dict:
        return json.loads(self.manage("-m", "tests.browser.scenario", *args).strip().splitlines()[-1])


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture
def site(aws: str, redis_url: str, tmp_path: Path) -> Iterator[Site]:
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    password = secrets.token_urlsafe(12)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ALLEYCAT_"))},
        **AWS_TEST_ENV,
        "AWS_ENDPOINT_URL": aws,
        "DJANGO_SETTINGS_MODULE": "alleycat_site.settings",
        "DJANGO_DEBUG": "1",
        "ALLEYCAT_VAR_DIR": str(var_dir),
        "DATABASE_URL": f"sqlite:///{var_dir / 'alleycat.sqlite3'}",
        "REDIS_URL": redis_url,
        "ALLEYCAT_RIDER_PASSWORD": password,
        "ALLEYCAT_FIREHOSE_BUFFER_SECONDS": "5",
        "ALLEYCAT_RUNNER_REPORT_SECONDS": "30",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    port = free_port()
    site = Site(url=f"http://127.0.0.1:{port}", env=env, var_dir=var_dir, rider_password=password)
    site.manage("manage.py", "migrate", "--noinput", timeout=120)
    site.manage("-m", "processors.local.bootstrap", timeout=120)
    logs = {name: open(var_dir / f"{name}.log", "w") for name in ("runner", "daphne")}  # noqa: SIM115
    processes = []
    try:
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "processors.local.runner"],
                cwd=ROOT,
                env=env,
                stdout=logs["runner"],
                stderr=subprocess.STDOUT,
            )
        )
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "alleycat_site.asgi:application"],
                cwd=ROOT,
                env=env,
                stdout=logs["daphne"],
                stderr=subprocess.STDOUT,
            )
        )
        wait_for_http(f"{site.url}/healthz", timeout=60)
        yield site
    finally:
        for process in reversed(processes):
            _stop(process)
        for log in logs.values():
            log.close()


def wait_until(predicate, *, timeout: float, interval: float = 0.25, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)
