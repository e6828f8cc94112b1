"""The site as it runs for real, for the browser and web-tier tests: daphne (ASGI, HTTP + WebSocket)
and the local pipeline runner, each a process of its own on 127.0.0.1, sharing a SQLite file, the
session's Redis and moto server; stopped when the test ends."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.conftest import AWS_TEST_ENV, free_port, process_stop, wait_for_http

ROOT = Path(__file__).resolve().parents[2]


def site_env(*, aws: str, redis_url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    """What every process of the site gets: development settings, no DJANGO_*/ALLEYCAT_* of the shell."""
    return {
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
        **extra,
    }


@dataclass
class SiteProcesses:
    env: dict[str, str]
    var_dir: Path
    scenario_module: str  # ``python -m <it> <step>``: the test's database steps, with the site's settings
    ports: list[int] = field(default_factory=list)  # daphne's, in start order
    processes: list[subprocess.Popen] = field(default_factory=list)
    logs: list[IO[str]] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 120) -> str:
        """Run ``python <args>`` with the site's environment; returns stdout, fails the test on an error."""
        done = subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode:
            raise AssertionError(f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def scenario(self, *args: str) -> dict:
        """Run a step of the scenario module; returns the JSON it prints last."""
        return json.loads(self.run("-m", self.scenario_module, *args).strip().splitlines()[-1])

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        """Start a process with its output in ``<var_dir>/<name>.log``."""
        log = open(self.var_dir / f"{name}.log", "w")  # noqa: SIM115 - closed by stop()
        self.logs.append(log)
        process = subprocess.Popen(argv, cwd=ROOT, env=env or self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)

    def start_runner(self) -> None:
        self.start("runner", [sys.executable, "-m", "processors.local.runner"])

    def daphne(self, port: int | None = None, **extra_env: str) -> int:
        """Start a daphne process (``daphne-<n>``); returns its port once it serves."""
        port = port or free_port()
        argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "alleycat_site.asgi:application"]
        self.start(f"daphne-{len(self.ports) + 1}", argv, {**self.env, **extra_env})
        self.ports.append(port)
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        return port

    def log(self, name: str) -> str:
        return (self.var_dir / f"{name}.log").read_text()

    def stop(self) -> None:
        for process in reversed(self.processes):
            process_stop(process, timeout=15)
        for log in self.logs:
            log.close()


@contextlib.contextmanager
def site_processes(site: SiteProcesses, *, timeout: float = 180) -> Iterator[SiteProcesses]:
    """Migrate the database and bootstrap the pipeline's resources; stop every process at the end."""
    site.var_dir.mkdir(exist_ok=True)
    site.run("manage.py", "migrate", "--noinput", timeout=timeout)
    site.run("-m", "processors.local.bootstrap", timeout=timeout)
    try:
        yield site
    finally:
        site.stop()
