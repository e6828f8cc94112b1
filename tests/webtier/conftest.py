"""The web tier as it runs for real: daphne processes (one or more, sharing one Redis, one SQLite
file and the embedded AWS endpoint), optionally the local pipeline runner; each a process of its
own on 127.0.0.1, stopped at the end of the test. WebSocket clients are the ``websockets`` library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import AWS_TEST_ENV, free_port, wait_for_http

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class WebTier:
    env: dict[str, str]
    var_dir: Path
    ports: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen] = field(default_factory=list)
    logs: list = field(default_factory=list)

    def run(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode:
            raise AssertionError(f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def scenario(self, *args: str) -> dict:
        return json.loads(self.run("-m", "tests.webtier.scenario", *args).strip().splitlines()[-1])

    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = open(self.var_dir / f"{name}.log", "w")  # noqa: SIM115 - closed at teardown
        self.logs.append(log)
        self.processes.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))

    def start_daphne(self, **extra_env: str) -> str:
        port = free_port()
        name = f"daphne-{len(self.ports) + 1}"
        argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "alleycat_site.asgi:application"]
        self._start(name, argv, {**self.env, **extra_env})
        self.ports.append(port)
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        return f"ws://127.0.0.1:{port}"

    def start_runner(self) -> None:
        self._start("runner", [sys.executable, "-m", "processors.local.runner"], self.env)

    def log(self, name: str) -> str:
        return (self.var_dir / f"{name}.log").read_text()

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        for log in self.logs:
            log.close()


@pytest.fixture
def web_tier(aws: str, redis_url: str, tmp_path: Path) -> Iterator[WebTier]:
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ALLEYCAT_"))},
        **AWS_TEST_ENV,
        "AWS_ENDPOINT_URL": aws,
        "DJANGO_SETTINGS_MODULE": "alleycat_site.settings",
        "DJANGO_DEBUG": "1",
        "ALLEYCAT_VAR_DIR": str(var_dir),
        "DATABASE_URL": f"sqlite:///{var_dir / 'alleycat.sqlite3'}",
        "REDIS_URL": redis_url,
        "ALLEYCAT_RUNNER_REPORT_SECONDS": "30",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    tier = WebTier(env=env, var_dir=var_dir)
    tier.run("manage.py", "migrate", "--noinput", timeout=180)
    tier.run("-m", "processors.local.bootstrap", timeout=180)
    try:
        yield tier
    finally:
        tier.stop()
