"""`manage.py runstack` (what `make run` starts): everything comes up, Ctrl-C stops every
child, and a second start needs no clean-up."""

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.conftest import free_port, wait_for_http

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def _env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDIS_URL", "DATABASE_URL"))}
    env.update(
        {
            "DJANGO_DEBUG": "1",
            "DJANGO_SETTINGS_MODULE": "alleycat_site.settings",
            "ALLEYCAT_VAR_DIR": str(var_dir),
            "ALLEYCAT_AWS_PORT": str(free_port()),
            "SIMULATE": "0",
        }
    )
    return env


def _start(env: dict[str, str], port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "runstack", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


class Output:
    """Collects a process's output in the background so the test can wait for lines."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, *needles: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not all(needle in self.text() for needle in needles):
            assert time.monotonic() < deadline, f"never saw {needles} in:\n{self.text()[-4000:]}"
            time.sleep(0.2)

    def join(self) -> str:
        self._thread.join(timeout=30)
        return self.text()


def _stop_and_check(proc: subprocess.Popen) -> None:
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 3, "runstack should run web, worker and beat as children"
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 10
    alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"children left running after Ctrl-C: {[c.cmdline() for c in alive]}"


def test_runstack_starts_everything_and_ctrl_c_stops_every_child(tmp_path):
    env = _env(tmp_path / "var")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    subprocess.run([sys.executable, "manage.py", "seed_demo"], cwd=ROOT, env=env, check=True, timeout=120)
    for attempt in range(2):  # the second start proves no clean-up is needed
        port = free_port()
        proc = _start(env, port)
        output = Output(proc)
        try:
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, "runstack exited while starting"
                try:
                    wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except OSError:
                    assert time.monotonic() < deadline, "web did not answer within 90 s"
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/classes/", timeout=10) as response:
                body = response.read().decode()
            assert "Sprint" in body, f"attempt {attempt}: {body[:200]}"
            # The worker is connected to the embedded Redis broker; beat runs the database scheduler.
            output.wait_for("ready.", "beat: Starting")
        except Exception:
            proc.kill()
            print(output.join()[-5000:])
            raise
        _stop_and_check(proc)
        text = output.join()
        assert proc.returncode == 0, text[-3000:]
