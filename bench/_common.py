"""What the benchmarks share: free ports on 127.0.0.1, waiting for a server, and the local pipeline.

``local_pipeline()`` starts what ``make run`` starts for the pipeline, on a free port: the embedded
AWS endpoint, the bootstrap and the event-source runner (every handler in its sandbox process), and
stops them all when the block ends. Not a benchmark itself (``make bench`` runs ``bench_*.py``).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0) -> None:
    """Return once ``url`` answers; raise the last error after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own 127.0.0.1 server
                return
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def read_status(path: Path) -> dict[str, Any] | None:
    """The runner's status file (``sources``, ``deadLetterQueue``…), None before its first write."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def source(status: dict[str, Any] | None, function: str, kind: str) -> dict[str, Any]:
    """The figures of one event source in the runner's status (``{}`` when it does not report yet)."""
    for entry in (status or {}).get("sources", []):
        if entry.get("function") == function and entry.get("kind") == kind:
            return entry
    return {}


@dataclass
class LocalPipeline:
    work: Path  # temporary directory: logs (<name>.log), status file, var/
    endpoint: str
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)  # by name: moto, bootstrap, runner

    @property
    def status_path(self) -> Path:
        return self.work / "status.json"

    def status(self) -> dict[str, Any] | None:
        return read_status(self.status_path)

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        """Start a child with the pipeline's environment, its output in ``work/<name>.log``."""
        with (self.work / f"{name}.log").open("w") as log:
            proc = subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs.values()):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs.values()):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def local_pipeline(
    *,
    prefix: str,
    firehose_buffer_seconds: str,
    endpoint_argv: Callable[[int, Path], list[str]] | None = None,
    keep: bool = False,
    endpoint_state: bool = False,
) -> Iterator[LocalPipeline]:
    """The local pipeline until the block ends; this process's boto3 clients reach its endpoint.

    ``endpoint_argv(port, work)`` replaces the embedded endpoint's command line (a counting proxy,
    say). If the bootstrap fails or the runner does not report within a minute, its log goes to
    stderr and the benchmark exits with status 1. ``keep`` leaves the temporary directory.
    ``endpoint_state`` keeps the endpoint's state on disk under ``var/aws`` as ``make run`` does
    (journal, snapshots, object bodies); without it the endpoint keeps everything in memory only.
    """
    work = Path(tempfile.mkdtemp(prefix=prefix))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "ALLEYCAT_TUMBLING_WINDOW_SECONDS")}
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "NO_PROXY": "127.0.0.1,localhost",
            "ALLEYCAT_VAR_DIR": str(work / "var"),
            "ALLEYCAT_PIPELINE_STATUS_FILE": str(work / "status.json"),
            "ALLEYCAT_FIREHOSE_BUFFER_SECONDS": firehose_buffer_seconds,
            "ALLEYCAT_RUNNER_REPORT_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
            "ALLEYCAT_AWS_STATE_DIR": str(work / "var" / "aws") if endpoint_state else "",
        }
    )
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        os.environ[key] = env[key]
    pipeline = LocalPipeline(work=work, endpoint=endpoint, env=env)
    python = sys.executable
    try:
        argv = endpoint_argv(port, work) if endpoint_argv else [python, "-m", "processors.local.endpoint", str(port)]
        pipeline.start("moto", argv)
        wait_http(f"{endpoint}/moto-api/")
        boot = pipeline.start("bootstrap", [python, "-m", "processors.local.bootstrap"])
        if boot.wait(timeout=120) != 0:
            print((work / "bootstrap.log").read_text(), file=sys.stderr)
            sys.exit(1)
        runner = pipeline.start("runner", [python, "-m", "processors.local.runner"])
        deadline = time.monotonic() + 60
        while not source(pipeline.status(), "aggregator", "kinesis"):
            if time.monotonic() > deadline or runner.poll() is not None:
                print((work / "runner.log").read_text()[-3000:], file=sys.stderr)
                sys.exit(1)
            time.sleep(0.5)
        yield pipeline
    finally:
        pipeline.stop()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def race_identity_publish(*, race_id: int, class_id: int, seconds: int, settle_after_seconds: int) -> None:
    """Tell the pipeline a race starting now, as the races app would: the aggregator counts only known races."""
    import boto3

    from processors.table import RaceIdentity, ResultsTable

    now_ms = int(time.time() * 1000)
    ResultsTable(boto3.client("dynamodb"), os.environ.get("ALLEYCAT_TABLE") or "alleycat").put_race_identity(
        RaceIdentity(
            race_id=race_id,
            class_id=class_id,
            starts_at_ms=now_ms,
            ends_at_ms=now_ms + seconds * 1000,
            length_s=seconds,
            settle_at_ms=now_ms + settle_after_seconds * 1000,
        )
    )


SUMMARY_PATH = REPO / "bench" / "results" / "summary.json"


def update_summary(*, path: Path | None = None, remove: Iterable[str] = (), **figures: float | int) -> Path:
    """Merge ``figures`` into ``bench/results/summary.json`` (other keys kept), written atomically.

    Only what a benchmark measured goes in. ``remove``: keys of this benchmark it could not measure
    this time, taken out so that an earlier run's value does not pass for this one's. The file is
    ``$ALLEYCAT_BENCH_SUMMARY`` when set (a trial run). Returns the path written.
    """
    path = path or Path(os.environ.get("ALLEYCAT_BENCH_SUMMARY") or SUMMARY_PATH)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        summary = json.loads(path.read_text())
        if not isinstance(summary, dict):
            summary = {}
    except (OSError, ValueError):
        summary = {}
    for key in remove:
        summary.pop(key, None)
    summary.update(figures)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".summary-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(summary, out, indent=2, sort_keys=True)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
