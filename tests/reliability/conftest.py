"""Fault tests: the pipeline's processes as ``make run`` starts them, killed and started again mid-race.

``Rig`` is one machine's pipeline in a temp directory: the embedded endpoint with its state kept
under ``var/aws`` (``python -m processors.local.endpoint``, on a port of its own that survives
restarts), the event-source runner as a process, the session's embedded Redis. Each test plays a
short race (seconds, not minutes) and compares what the pipeline stored with the figures recomputed
from the messages sent (what a clean run stores: tests/pipeline asserts that equality without faults).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from processors.local.bootstrap import Resources, bootstrap
from processors.local.simulator import RaceSpec, Simulator, profiles
from processors.local.template import load_local_settings
from processors.table import RaceIdentity, ResultsTable
from tests.conftest import AWS_TEST_ENV, free_port, wait_for_http, wait_until
from tests.pipeline.conftest import RunnerProcess, history_covers

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 90.0  # generous: a loaded 2-core machine runs these next to other work
# How long the endpoint / Redis stay down in the outage tests (the 30 s by default).
OUTAGE_SECONDS = float(os.environ.get("ALLEYCAT_RELIABILITY_OUTAGE_SECONDS") or 30)


class EndpointProcess:
    """``python -m processors.local.endpoint PORT`` with its state under ``state_dir``."""

    def __init__(self, port: int, state_dir: Path, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.state_dir = state_dir
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.started_in: float = 0.0

    def start(self) -> None:
        env = {**os.environ, "ALLEYCAT_AWS_STATE_DIR": str(self.state_dir), "ALLEYCAT_AWS_STOP_GRACE_SECONDS": "1"}
        began = time.monotonic()
        with self.log.open("a") as handle:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "processors.local.endpoint", str(self.port)],
                cwd=REPO,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        wait_for_http(f"{self.url}/moto-api/", timeout=TIMEOUT)
        self.started_in = time.monotonic() - began

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)
        self.proc.wait(timeout=30)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Rig:
    tmp: Path
    endpoint: EndpointProcess
    env: dict[str, str]
    resources: Resources
    runners: list[RunnerProcess] = field(default_factory=list)

    # -- processes

    def runner(self) -> RunnerProcess:
        runner = RunnerProcess(self.env, self.tmp / "runner.log")
        runner.start()
        self.runners.append(runner)
        return runner

    def output(self) -> str:
        runner = self.runners[-1].output() if self.runners else ""
        return f"{runner[-5000:]}\n--- endpoint ---\n{self.endpoint.output()[-3000:]}"

    def status(self) -> dict[str, Any] | None:
        try:
            return json.loads(Path(self.env["ALLEYCAT_PIPELINE_STATUS_FILE"]).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def aggregated(self) -> int:
        """Records the current runner's aggregator has processed (0 before its first report)."""
        status = self.status()
        if not status or status.get("pid") != self.runners[-1].proc.pid:  # type: ignore[union-attr]
            return 0
        return sum(s["records"] for s in status["sources"] if s["kind"] == "kinesis")

    def checkpoint(self, name: str = "aggregator-BikeStream") -> dict[str, Any]:
        return json.loads((Path(self.env["ALLEYCAT_VAR_DIR"]) / "checkpoints" / f"{name}.json").read_text())

    # -- the race

    def table(self) -> ResultsTable:
        return ResultsTable(boto3.client("dynamodb"), self.resources.table_name)

    def publish(self, race: RaceSpec, *, length_s: int, grace_s: int = 600) -> None:
        now_ms = int(time.time() * 1000)
        ends_at_ms = now_ms + length_s * 1000
        assert self.table().put_race_identity(
            RaceIdentity(
                race_id=race.race_id,
                class_id=race.class_id,
                starts_at_ms=now_ms,
                ends_at_ms=ends_at_ms,
                length_s=length_s,
                settle_at_ms=ends_at_ms + grace_s * 1000,
            )
        )

    def play(self, race: RaceSpec, racers: range, speed: float = 20) -> list[dict]:
        simulator = Simulator(boto3.client("kinesis"), self.resources.stream_name)
        result = simulator.play(race, profiles([(r, None) for r in racers]), speed=speed, collect=True)
        assert result.lost == 0
        return result.messages

    def play_in_background(
        self, race: RaceSpec, racers: range, speed: float, stop: threading.Event | None = None
    ) -> tuple[threading.Thread, dict]:
        """The race played by a thread (its PutRecords retry while the endpoint is down); ``holder["result"]``."""
        holder: dict[str, Any] = {}
        simulator = Simulator(boto3.client("kinesis"), self.resources.stream_name)
        thread = threading.Thread(
            target=lambda: holder.setdefault(
                "result",
                simulator.play(race, profiles([(r, None) for r in racers]), speed=speed, collect=True, stop=stop),
            ),
            daemon=True,
        )
        thread.start()
        return thread, holder

    def stream_records(self) -> int:
        """Records in the bike stream (moto numbers each shard's records 1, 2, 3...)."""
        kinesis = boto3.client("kinesis")
        total = 0
        for shard in kinesis.list_shards(StreamName=self.resources.stream_name)["Shards"]:
            iterator = kinesis.get_shard_iterator(
                StreamName=self.resources.stream_name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            records = kinesis.get_records(ShardIterator=iterator, Limit=10_000)["Records"]
            total += len(records)
        return total

    def put_bad(self, count: int, race_id: int = 999_999) -> None:
        """Readings of a race the pipeline does not know: dead letters (``unknown_race``)."""
        kinesis = boto3.client("kinesis")
        for n in range(count):
            message = {
                "event": "update",
                "deviceTimestamp": int(time.time() * 1000),
                "second": n + 1,
                "raceId": race_id,
                "name": "Ghost",
                "racerId": 1,
                "classId": 1,
                "cadence": 90.0,
                "resistance": 50.0,
            }
            kinesis.put_record(
                StreamName=self.resources.stream_name, Data=json.dumps(message).encode(), PartitionKey=f"{race_id}:1"
            )

    # -- what the pipeline stored

    def dead_letters(self) -> list[dict]:
        """Every letter in the queue (received with visibility 0, so they stay)."""
        sqs = boto3.client("sqs")
        url = self.resources.dead_letter_queue_url
        count = int(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
                "ApproximateNumberOfMessages"
            ]
        )
        bodies: dict[str, dict] = {}
        for _ in range(count * 3 + 3):
            if len(bodies) >= count:
                break
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
            for message in got.get("Messages", []):
                bodies[message["MessageId"]] = json.loads(message["Body"])
        return sorted(bodies.values(), key=lambda body: json.dumps(body, sort_keys=True))

    def history(self, class_id: int) -> dict[str, Any] | None:
        s3 = boto3.client("s3")
        try:
            body = s3.get_object(Bucket=self.resources.history_bucket, Key=f"class-{class_id}.json.gz")["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None
        return json.loads(gzip.decompress(body))

    def stored(self, race: RaceSpec, racer_ids: range) -> dict[str, Any]:
        """Results, personal bests, the class's history object and the dead letters, as plain data."""
        table = self.table()
        results = {r.racer_id: r.score for r in table.race_results(race.race_id, limit=1000).items}
        bests = {}
        for racer in racer_ids:
            best = table.personal_best(race.class_id, racer)
            bests[racer] = None if best is None else best.score
        history = self.history(race.class_id)
        return {
            "results": results,
            "bests": bests,
            "history": history["racers"] if history else None,
            "dead_letters": len(self.dead_letters()),
        }


def expected_figures(messages: list[dict]) -> tuple[dict[int, float], dict[int, dict[int, float]]]:
    """(score per racer, best output per racer per second), straight from DESIGN.md "Scoring"."""
    per_second: dict[int, dict[int, float]] = {}
    for message in messages:
        output = round(((message["cadence"] + 35) * (message["resistance"] + 65)) / 100, 4)
        seconds = per_second.setdefault(message["racerId"], {})
        seconds[message["second"]] = max(output, seconds.get(message["second"], 0.0))
    return {racer: round(sum(s.values()), 4) for racer, s in per_second.items()}, per_second


def assert_exact(rig: Rig, race: RaceSpec, messages: list[dict], *, dead_letters: int | None) -> dict[str, Any]:
    """Results, bests and history equal the recomputation from ``messages``: nothing lost, nothing twice."""
    scores, per_second = expected_figures(messages)
    table = rig.table()

    def results_complete() -> dict[int, float] | None:
        found = {r.racer_id: r.score for r in table.race_results(race.race_id, limit=1000).items}
        return found if len(found) == len(scores) else None

    results = wait_until(results_complete, timeout=TIMEOUT, what="every final result", output=rig.output)
    assert results == pytest.approx(scores, abs=1e-6)
    live = table.live_standings(race.race_id)
    assert live is not None
    assert {row.racer_id: row.score for row in live.rows} == pytest.approx(scores, abs=1e-6)

    def bests() -> dict[int, float] | None:
        found = {racer: table.personal_best(race.class_id, racer) for racer in scores}
        return None if None in found.values() else {racer: best.score for racer, best in found.items()}  # type: ignore[union-attr]

    assert wait_until(bests, timeout=TIMEOUT, what="every personal best", output=rig.output) == pytest.approx(
        scores, abs=1e-6
    )

    def history_complete() -> dict[str, Any] | None:
        history = rig.history(race.class_id)
        return history if history_covers(history, per_second) else None

    history = wait_until(history_complete, timeout=TIMEOUT, what="the history object", output=rig.output)
    for racer, seconds in per_second.items():
        row = history["racers"][str(racer)]
        assert {second: row[second - 1] for second in seconds} == pytest.approx(seconds, abs=1e-6)
    wait_until(lambda: len(rig.dead_letters()) == dead_letters, timeout=TIMEOUT, what="dead letters", output=rig.output)
    return rig.stored(race, range(min(scores), max(scores) + 1))


@pytest.fixture
def rig(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    var = tmp_path / "var"
    endpoint = EndpointProcess(free_port(), var / "aws", tmp_path / "endpoint.log")
    endpoint.start()
    env = dict(os.environ)
    env.update(AWS_TEST_ENV)
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint.url,
            "REDIS_URL": redis_url,
            "ALLEYCAT_VAR_DIR": str(var),
            "ALLEYCAT_PIPELINE_STATUS_FILE": str(var / "pipeline-status.json"),
            "ALLEYCAT_FIREHOSE_BUFFER_SECONDS": "1",
            "ALLEYCAT_RUNNER_POLL_SECONDS": "0.25",
            "ALLEYCAT_RUNNER_REPORT_SECONDS": "0.5",
            "PYTHONUNBUFFERED": "1",
        }
    )
    for key in ("AWS_ENDPOINT_URL", *AWS_TEST_ENV):
        monkeypatch.setenv(key, env[key])
    rig = Rig(tmp=tmp_path, endpoint=endpoint, env=env, resources=bootstrap(None, load_local_settings()))
    try:
        yield rig
    finally:
        for runner in rig.runners:
            if runner.proc is not None and runner.proc.poll() is None:
                runner.proc.kill()
                runner.proc.wait(timeout=10)
        if endpoint.running():
            endpoint.proc.kill()  # type: ignore[union-attr]
            endpoint.proc.wait(timeout=10)  # type: ignore[union-attr]


def random_moment(low: float, high: float, seed: str) -> float:
    """A random delay, printed so that a failure can be replayed (ALLEYCAT_RELIABILITY_SEED)."""
    rng = random.Random(f"{os.environ.get('ALLEYCAT_RELIABILITY_SEED', time.time_ns())}-{seed}")
    delay = rng.uniform(low, high)
    print(f"{seed}: {delay:.2f} s")
    return delay


def kill(proc: subprocess.Popen, signum: int = signal.SIGKILL) -> None:
    proc.send_signal(signum)
    proc.wait(timeout=30)
