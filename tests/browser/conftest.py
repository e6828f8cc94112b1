"""The browser (Debian's Chromium through Playwright) and the site as it runs for real
(``tests.support.site``): daphne, the local pipeline runner (aggregator, finals, publisher ... on
moto), the Redis channel layer and a SQLite file, stopped at the end of the test.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.support.site import SiteProcesses, site_env, site_processes

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
class Site(SiteProcesses):
    url: str = ""
    rider_password: str = ""


@pytest.fixture
def site(aws: str, redis_url: str, tmp_path: Path) -> Iterator[Site]:
    var_dir = tmp_path / "var"
    password = secrets.token_urlsafe(12)
    env = site_env(
        aws=aws,
        redis_url=redis_url,
        var_dir=var_dir,
        ALLEYCAT_RIDER_PASSWORD=password,
        ALLEYCAT_FIREHOSE_BUFFER_SECONDS="5",
    )
    port = free_port()
    site = Site(
        env=env,
        var_dir=var_dir,
        scenario_module="tests.browser.scenario",
        url=f"http://127.0.0.1:{port}",
        rider_password=password,
    )
    with site_processes(site, timeout=120):
        site.start_runner()
        site.daphne(port)
        yield site


def offline_context(browser, site: Site, **options) -> tuple[Any, list[str]]:
    """A browser context that reaches the site only: every other request is aborted and listed."""
    context = browser.new_context(**options)
    outside: list[str] = []

    def only_the_site(route) -> None:
        if route.request.url.startswith(site.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_site)
    return context, outside
