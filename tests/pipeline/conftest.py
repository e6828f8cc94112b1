"""End-to-end fixtures: the runner as a process, next to the session's embedded AWS endpoint
(``moto_endpoint``, as ``make run`` starts it)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import process_stop

REPO = Path(__file__).resolve().parents[2]


class RunnerProcess:
    """``python -m processors.local.runner`` with the test's environment; output kept in a log file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        handle = self.log.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "processors.local.runner"],
            cwd=REPO,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        handle.close()

    def kill(self) -> None:
        """SIGKILL: no graceful stop, no final checkpoint (a crash)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        assert self.proc is not None
        return process_stop(self.proc, timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def pipeline_env(aws: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment of a runner (and of the simulator in the test): short buffers and polls."""
    env = dict(os.environ)
    env.update(
        {
            "AWS_ENDPOINT_URL": aws,
            "REDIS_URL": redis_url,
            "ALLEYCAT_VAR_DIR": str(tmp_path / "var"),
            "ALLEYCAT_PIPELINE_STATUS_FILE": str(tmp_path / "var" / "pipeline-status.json"),
            "ALLEYCAT_FIREHOSE_BUFFER_SECONDS": "1",
            "ALLEYCAT_RUNNER_POLL_SECONDS": "0.25",
            "ALLEYCAT_RUNNER_REPORT_SECONDS": "0.5",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.fixture
def runner_process(pipeline_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[], RunnerProcess]]:
    started: list[RunnerProcess] = []

    def make() -> RunnerProcess:
        runner = RunnerProcess(pipeline_env, tmp_path / "runner.log")
        runner.start()
        started.append(runner)
        return runner

    yield make
    for runner in started:
        if runner.proc is not None and runner.proc.poll() is None:
            runner.stop()


class GroupListener:
    """Receives what is sent to a Channels group through the site's channel layer (a background loop)."""

    def __init__(self, redis_url: str, group: str) -> None:
        from alleycat_site.channel_layer import GroupsOnlyPubSubChannelLayer

        self.layer = GroupsOnlyPubSubChannelLayer(hosts=[{"address": redis_url, "socket_timeout": 15}])
        self.group = group
        self.messages: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)

    async def _listen(self) -> None:
        channel = await self.layer.new_channel()
        await self.layer.group_add(self.group, channel)
        self._ready.set()
        # One receive at a time, never cancelled while listening: channels_redis's pub/sub layer takes
        # a cancelled receive for a consumer leaving and drops the channel's queue with what is in it.
        receiving = asyncio.ensure_future(self.layer.receive(channel))
        try:
            while not self._stop.is_set():
                done, _ = await asyncio.wait({receiving}, timeout=0.5)
                if receiving in done:
                    self.messages.append(receiving.result())
                    receiving = asyncio.ensure_future(self.layer.receive(channel))
        finally:
            receiving.cancel()
            await self.layer.group_discard(self.group, channel)

    def __enter__(self) -> GroupListener:
        self._thread.start()
        assert self._ready.wait(10), "could not join the group"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def history_covers(history: dict[str, Any] | None, per_second: dict[int, dict[int, float]]) -> bool:
    """The class's history object holds a value for every second each racer rode (``per_second``)."""
    if history is None:
        return False
    rows = history["racers"]
    return all(
        str(racer) in rows and sum(value is not None for value in rows[str(racer)]) >= len(seconds)
        for racer, seconds in per_second.items()
    )
