"""An outside producer against a running stack: bikes as the real world sends them, measured from outside.

Unlike ``processors.local.simulator`` (our own, well-behaved producer), this one behaves like the
bikes and gateways we do not control, and uses nothing of the pipeline's code:

- at-least-once: a share of the messages (``--dups``, default 10%) is sent twice, the copy in the
  same second's batch or in the next one; records PutRecords marks as failed are sent again;
- each second's batch is shuffled, and the partition key is the race (``race``), the race and racer
  (``racer``, the contract's recommendation) or a random key per record (``random``, as the
  original sample's simulator did);
- ``--bad`` malformed records spread over the race (not JSON, a missing field, a wrong class, a
  second past the race) — the stack must count them as bad and keep every score exact;
- ``--reshard-at S`` reshards the stream (UpdateShardCount to ``--reshard-to``) before putting race
  second S, as an operator scaling a live stream would.

It waits for the next race of a class (or joins the current one with ``--join``), plays its racers
in real time (second ``s`` put at ``start + s``), listens on ``--viewers`` WebSockets of the race, and
reports:

- put → push latency p50/p95: for every (racer, second) the first standings row showing that racer
  at that second or later, against the time its PutRecords call returned (top rows only, so the
  sample is the leading racers; every version is sampled);
- the aggregator's iterator age (the runner's status file) sampled every second: max and p95;
- after the last put, how long until the results API lists every racer with its exact score
  (computed here from DESIGN.md's formula over distinct seconds), and any mismatch.

    .venv/bin/python bench/outside_producer.py --racers 1000 --seconds 300 --partition random

It targets only 127.0.0.1 (``--url``) and reads the embedded endpoint from ``var/stack.env``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
MAX_BATCH = 500
RACER_BASE = 700_000  # far from the seeded racers and the demo simulator's ids; each run its own block


def get_json(url: str, timeout: float = 10.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - 127.0.0.1 only
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = error.read()
        try:
            return error.code, json.loads(body)
        except ValueError:
            return error.code, body.decode(errors="replace")


def units(cadence: int, resistance: int) -> int:
    """DESIGN.md: output = round((cadence+35)(resistance+65)/100, 4); integers here, so exact in 1/10,000."""
    return (cadence + 35) * (resistance + 65) * 100


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass
class Race:
    id: int
    class_id: int
    starts_at: float
    ends_at: float

    @property
    def length(self) -> int:
        return round(self.ends_at - self.starts_at)


@dataclass
class Tally:
    put_at: dict[tuple[int, int], float] = field(default_factory=dict)  # (racer, second) -> first success
    expected: dict[int, dict[int, int]] = field(default_factory=dict)  # racer -> second -> units
    first_racer: int = RACER_BASE
    records: int = 0
    duplicates: int = 0
    bad: int = 0
    failed_retried: int = 0
    put_calls: int = 0
    behind: list[float] = field(default_factory=list)  # how late each second's puts finished
    reshard: str | None = None  # what --reshard-at did
    lock: threading.Lock = field(default_factory=threading.Lock)


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def find_race(base: str, class_id: int | None, join: bool) -> Race:
    deadline = time.time() + 120  # the stack may still be starting
    while True:
        try:
            status, classes = get_json(f"{base}/api/classes/")
            break
        except urllib.error.URLError:
            if time.time() > deadline:
                raise
            time.sleep(1)
    if status != 200:
        raise SystemExit(f"GET /api/classes/ answered {status}: {classes}")
    rows = classes["results"] if isinstance(classes, dict) else classes
    if class_id is not None:
        rows = [row for row in rows if row["id"] == class_id]
    for row in rows:
        race = row.get("current_race") if join else row.get("next_race")
        if race:
            return Race(race["id"], race["class_id"], parse_time(race["starts_at"]), parse_time(race["ends_at"]))
    raise SystemExit("no " + ("current" if join else "upcoming") + " race in " + (f"class {class_id}" or "any class"))


def endpoint(var_dir: Path) -> dict[str, str]:
    env = {}
    path = var_dir / "stack.env"
    if not path.exists():
        raise SystemExit(f"{path} not found: is `make run` running (or pass --var-dir)?")
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            env[key.strip()] = value.strip()
    return env


class Producer:
    def __init__(self, kinesis: Any, stream: str, race: Race, args: argparse.Namespace, tally: Tally) -> None:
        self.kinesis, self.stream, self.race, self.args, self.tally = kinesis, stream, race, args, tally
        self.rng = random.Random(args.seed)
        self.pool = ThreadPoolExecutor(max_workers=args.workers)
        self.carry: list[tuple[bytes, str, tuple[int, int] | None]] = []
        self.first = max(1, int(time.time() - race.starts_at) + 1) if args.join else 1
        self.last = last = min(self.first + args.seconds - 1, race.length)
        self.bad_seconds = sorted(self.rng.sample(range(self.first, last + 1), min(args.bad, last - self.first + 1)))

    def key(self, racer: int) -> str:
        mode = self.args.partition
        if mode == "race":
            return str(self.race.id)
        if mode == "racer":
            return f"{self.race.id}:{racer}"
        return uuid.uuid4().hex

    def message(self, racer: int, second: int) -> tuple[dict[str, Any], int]:
        cadence, resistance = self.rng.randint(55, 115), self.rng.randint(15, 85)
        message = {
            "uuid": str(uuid.uuid4()),
            "event": "final" if second == self.last else "update",
            "deviceTimestamp": int(time.time() * 1000),
            "second": second,
            "raceId": self.race.id,
            "name": f"Outsider {racer - self.tally.first_racer}",
            "racerId": racer,
            "classId": self.race.class_id,
            "cadence": cadence,
            "resistance": resistance,
        }
        return message, units(cadence, resistance)

    def bad_record(self, second: int) -> bytes:
        racer = self.tally.first_racer + self.rng.randrange(self.args.racers)
        message, _ = self.message(racer, second)
        kind = self.rng.choice(("json", "missing", "class", "past"))
        if kind == "json":
            return b'{"raceId": ' + str(self.race.id).encode() + b", not json"
        if kind == "missing":
            del message["cadence"]
        elif kind == "class":
            message["classId"] = self.race.class_id + 1000
        else:
            message["second"] = self.race.length + 1 + self.rng.randrange(100)
        return json.dumps(message).encode()

    def batch(self, second: int) -> list[tuple[bytes, str, tuple[int, int] | None]]:
        records, later = list(self.carry), []
        for index in range(self.args.racers):
            racer = self.tally.first_racer + index
            message, value = self.message(racer, second)
            self.tally.expected.setdefault(racer, {})[second] = value
            record = (json.dumps(message).encode(), self.key(racer), (racer, second))
            records.append(record)
            if self.rng.random() < self.args.dups:
                self.tally.duplicates += 1
                copy = (record[0], self.key(racer), record[2])
                (records if self.rng.random() < 0.5 or second == self.last else later).append(copy)
        while self.bad_seconds and self.bad_seconds[0] == second:
            self.bad_seconds.pop(0)
            records.append((self.bad_record(second), self.key(self.tally.first_racer), None))
            self.tally.bad += 1
        self.rng.shuffle(records)
        self.carry = later
        return records

    def put(self, records: list[tuple[bytes, str, tuple[int, int] | None]]) -> None:
        pending = records
        for attempt in range(20):
            response = self.kinesis.put_records(
                StreamName=self.stream, Records=[{"Data": data, "PartitionKey": key} for data, key, _ in pending]
            )
            done_at = time.time()
            failed = []
            with self.tally.lock:
                self.tally.put_calls += 1
                for record, result in zip(pending, response["Records"], strict=True):
                    if "ErrorCode" in result:
                        failed.append(record)
                        continue
                    self.tally.records += 1
                    if record[2] is not None:
                        self.tally.put_at.setdefault(record[2], done_at)
                self.tally.failed_retried += len(failed)
            if not failed:
                return
            pending = failed
            time.sleep(min(2.0, 0.05 * 2**attempt))
        raise RuntimeError(f"{len(pending)} records still failing after 20 attempts")

    def play(self, stop: threading.Event) -> None:
        for second in range(self.first, self.last + 1):
            due = self.race.starts_at + second
            if stop.wait(max(0.0, due - time.time())):
                return
            if second == self.args.reshard_at:
                self.reshard()
            records = self.batch(second)
            chunks = [records[i : i + MAX_BATCH] for i in range(0, len(records), MAX_BATCH)]
            list(self.pool.map(self.put, chunks))
            self.tally.behind.append(time.time() - due)

    def reshard(self) -> None:
        """UpdateShardCount to ``--reshard-to`` (uniform scaling), in the middle of the race."""
        before = len(self.kinesis.list_shards(StreamName=self.stream)["Shards"])
        self.kinesis.update_shard_count(
            StreamName=self.stream, TargetShardCount=self.args.reshard_to, ScalingType="UNIFORM_SCALING"
        )
        after = self.kinesis.list_shards(StreamName=self.stream)["Shards"]
        open_shards = sum(1 for shard in after if "EndingSequenceNumber" not in shard["SequenceNumberRange"])
        listed = len(after)
        self.tally.reshard = f"second {self.args.reshard_at}: {before} shards -> {open_shards} open ({listed} listed)"
        print(f"resharded at {self.tally.reshard}", flush=True)


class Viewers:
    """``n`` WebSocket viewers of the race; put → push latency from the rows they receive."""

    def __init__(self, ws_url: str, origin: str, n: int, tally: Tally) -> None:
        self.ws_url, self.origin, self.n, self.tally = ws_url, origin, n, tally
        self.latencies: list[float] = []
        self.seen: set[tuple[int, int]] = set()
        self.messages = 0
        self.connected = 0
        self.errors: list[str] = []
        self.stop = threading.Event()

    async def one(self, index: int) -> None:
        import websockets

        try:
            async with websockets.connect(self.ws_url, origin=self.origin, open_timeout=30, max_size=2**24) as socket:
                self.connected += 1
                while not self.stop.is_set():
                    try:
                        text = await asyncio.wait_for(socket.recv(), timeout=1.0)
                    except TimeoutError:
                        continue
                    received = time.time()
                    message = json.loads(text)
                    self.messages += 1
                    if index == 0:
                        self.sample(message, received)
        except Exception as error:  # noqa: BLE001 - reported, not raised: the run goes on
            self.errors.append(f"viewer {index}: {error!r}")

    def sample(self, message: dict[str, Any], received: float) -> None:
        for row in message.get("rows") or ():
            racer, second = row.get("racer_id"), row.get("second")
            if not isinstance(racer, int) or not isinstance(second, int) or racer not in self.tally.expected:
                continue
            key = (racer, second)
            if key in self.seen:
                continue
            self.seen.add(key)
            put_at = self.tally.put_at.get(key)
            if put_at is not None:
                self.latencies.append(received - put_at)

    def run(self) -> None:
        async def main() -> None:
            await asyncio.gather(*(self.one(i) for i in range(self.n)))

        asyncio.run(main())


def status_sampler(path: Path, stop: threading.Event, ages: list[float]) -> None:
    while not stop.wait(1.0):
        try:
            status = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for source in status.get("sources", []):
            if source.get("function") == "aggregator" and source.get("kind") == "kinesis":
                ages.append(source.get("lagMs", 0) / 1000)


def result_pages(base: str, race_id: int) -> Iterator[dict[str, Any]]:
    url: str | None = f"{base}/api/races/{race_id}/results/?limit=1000"
    while url:
        status, page = get_json(url)
        if status != 200:
            raise RuntimeError(f"{status}")
        yield from page["results"]
        url = page.get("next")


def check_results(base: str, race: Race, tally: Tally) -> tuple[int, int, int]:
    """(racers with the exact final score, racers missing, racers with a wrong score)."""
    got: dict[int, dict[str, Any]] = {}
    for row in result_pages(base, race.id):
        if row["racer_id"] in tally.expected:
            got[row["racer_id"]] = row
    exact = missing = wrong = 0
    for racer, seconds in tally.expected.items():
        row = got.get(racer)
        if row is None or row.get("status") != "finished":
            missing += 1
        elif round(row["score"] * 10_000) != sum(seconds.values()):
            wrong += 1
        else:
            exact += 1
    return exact, missing, wrong


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the running site (127.0.0.1 only)")
    parser.add_argument("--var-dir", default=str(REPO / "var"), help="the stack's ALLEYCAT_VAR_DIR")
    parser.add_argument("--stream", default="alleycat-bikes")
    parser.add_argument("--class-id", type=int)
    parser.add_argument("--join", action="store_true", help="join the current race instead of waiting for the next")
    parser.add_argument("--racers", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=300, help="race seconds to play (to the race's end at most)")
    parser.add_argument("--dups", type=float, default=0.10, help="share of messages sent twice")
    parser.add_argument("--partition", choices=("race", "racer", "random"), default="racer")
    parser.add_argument("--bad", type=int, default=10, help="malformed records spread over the race")
    parser.add_argument("--viewers", type=int, default=1)
    parser.add_argument("--workers", type=int, default=4, help="PutRecords calls in parallel")
    parser.add_argument("--settle", type=float, default=120.0, help="seconds to wait for complete results")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reshard-at", type=int, help="race second at which to reshard the stream (UpdateShardCount)")
    parser.add_argument("--reshard-to", type=int, default=4, help="shards after --reshard-at")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()

    if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit("load tests target 127.0.0.1 only")
    base = args.url.rstrip("/")
    env = endpoint(Path(args.var_dir))
    import boto3

    kinesis = boto3.client(
        "kinesis",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env.get("AWS_DEFAULT_REGION", "us-east-1"),
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", "testing"),
    )
    race = find_race(base, args.class_id, args.join)
    wait = race.starts_at - time.time()
    print(f"race {race.id} (class {race.class_id}, {race.length} s) starts in {max(wait, 0):.0f} s", flush=True)

    # A block of racer ids of its own per run (a racer that finished a race cannot race it again).
    tally = Tally(first_racer=RACER_BASE + (int(time.time()) % 10_000) * 10_000)
    producer = Producer(kinesis, args.stream, race, args, tally)
    ws_base = base.replace("http", "ws", 1)
    viewers = Viewers(f"{ws_base}/ws/races/{race.id}/", base, args.viewers, tally)
    stop = threading.Event()
    ages: list[float] = []
    threads = [
        threading.Thread(target=viewers.run, daemon=True),
        threading.Thread(
            target=status_sampler, args=(Path(args.var_dir) / "pipeline-status.json", stop, ages), daemon=True
        ),
    ]
    for thread in threads:
        thread.start()
    started = time.time()
    try:
        producer.play(stop)
    except KeyboardInterrupt:
        stop.set()
    last_put = time.time()
    print(
        f"played seconds {producer.first}..{producer.last}: {tally.records} records in {tally.put_calls} calls",
        flush=True,
    )

    complete_after = None
    exact = missing = wrong = 0
    deadline = last_put + args.settle
    checks: list[str] = []  # each check: when it began and ended (s after the last put) and what it found
    while time.time() < deadline:
        began = time.time() - last_put
        try:
            exact, missing, wrong = check_results(base, race, tally)
        except RuntimeError:
            pass
        checks.append(f"{began:.1f}-{time.time() - last_put:.1f}s: {exact}")
        if exact == len(tally.expected):
            complete_after = time.time() - last_put
            break
        time.sleep(0.5)
    print("results checks (s after the last put: exact results read): " + ", ".join(checks), flush=True)
    stop.set()
    viewers.stop.set()
    time.sleep(1.5)

    figures = {
        "race_id": race.id,
        "racers": args.racers,
        "seconds": producer.last - producer.first + 1,
        "partition": args.partition,
        "reshard": tally.reshard,
        "records_put": tally.records,
        "duplicates_sent": tally.duplicates,
        "bad_sent": tally.bad,
        "failed_and_resent": tally.failed_retried,
        "put_behind_p95_s": percentile(tally.behind, 0.95),
        "push_latency_samples": len(viewers.latencies),
        "push_p50_s": percentile(viewers.latencies, 0.50),
        "push_p95_s": percentile(viewers.latencies, 0.95),
        "iterator_age_max_s": max(ages, default=None),
        "iterator_age_p95_s": percentile(ages, 0.95),
        "results_complete_s": complete_after,
        "results_exact": exact,
        "results_missing": missing,
        "results_wrong": wrong,
        "viewers_connected": viewers.connected,
        "viewer_errors": viewers.errors[:5],
        "viewer_messages": viewers.messages,
        "wall_s": round(time.time() - started, 1),
        "load_average": os.getloadavg(),
    }
    for key, value in figures.items():
        shown = f"{value:.2f}" if isinstance(value, float) else value
        print(f"{key:24} {shown}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    ok = complete_after is not None and wrong == 0 and missing == 0
    print("scores exact, results complete" if ok else "RESULTS INCOMPLETE OR WRONG", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
