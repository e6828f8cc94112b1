"""The web tier as it runs for real: daphne processes (one or more, sharing one Redis, one SQLite
file and the embedded AWS endpoint), optionally the local pipeline runner; each a process of its
own on 127.0.0.1, stopped at the end of the test. WebSocket clients are the ``websockets`` library."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.site import SiteProcesses, site_env, site_processes


class WebTier(SiteProcesses):
    def start_daphne(self, **extra_env: str) -> str:
        """Start one more daphne process; returns its ``ws://`` base URL."""
        return f"ws://127.0.0.1:{self.daphne(**extra_env)}"


@pytest.fixture
def web_tier(aws: str, redis_url: str, tmp_path: Path) -> Iterator[WebTier]:
    var_dir = tmp_path / "var"
    env = site_env(aws=aws, redis_url=redis_url, var_dir=var_dir)
    with site_processes(WebTier(env=env, var_dir=var_dir, scenario_module="tests.webtier.scenario")) as tier:
        yield tier
