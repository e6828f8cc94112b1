"""Each handler on its own, 1,000 racers: CPU of the handler's process and AWS requests per invoke.

Starts the embedded AWS endpoint (``python -m processors.local.endpoint``: moto's server with the
project's fixes; ``--server moto`` for moto's own, on which the original's figures were measured:
every handler but finals, whose transactions moto's own server answers by copying the whole table)
on 127.0.0.1 in a child process, creates the stream, table, buckets and dead-letter queue with the
bootstrap (as the handler tests do), and invokes each handler's ``lambda_handler`` in this process with the realistic
event of a 1,000-racer race:

- aggregator: one tumbling window holding one second of 1,000 racers, in a race whose live item
  already holds 30 seconds of them. The records invoke (not final) folds them into the state; the
  final invoke (no records, the state carried through JSON as Lambda passes it) writes them out.
  Also a window whose one invoke carries the 1,000 records and is final. Windows are 1 s; four of
  five close off a multiple of 5 s and only write (the headline), the fifth also stores the shard's
  watermark and looks for races to settle (``aggregator.checks_settlement``): its own line.
- finals: one stream record of the live item in which 1,000 racers become finished (OLD_IMAGE and
  NEW_IMAGE written by the aggregator), in a class without bests, and in a class whose bests
  exist for every racer, half of which the race improves.
- history: one S3 ObjectCreated event of one GZIP NDJSON Firehose object of 1,000 records (1,000
  racers x 1 second, the transformer's output), with no class history object yet, and with the
  class history already holding 60 seconds of every racer (half improve).
- transformer: one Firehose transformation event of 1,000 records.

Per invoke: CPU time of this process (``time.process_time``, every thread: the handlers' parallel
puts run in a thread pool) and wall time around the call, the AWS requests the handler's clients
send (botocore ``before-send`` on the clients of ``processors.clients``, retries included) and the
moto server's CPU (its ``/proc`` counters, 10 ms ticks). Fresh race and class per repeat; the first
invoke of each handler is a warm-up and not counted. Figures are medians, with the minimum CPU next
to them (a quiet machine's figure): 15 repeats, 3 for finals and history, whose invokes take seconds
each on moto. The handlers' log and metric lines (stdout) go to /dev/null during the call. Prints a
table with the original sample's figures and the ratio, writes ``--json`` if given, and merges the
headline figures into ``bench/results/summary.json``.

    .venv/bin/python bench/bench_handlers.py                 # 15 repeats (finals, history: 3) + 1 warm-up
    .venv/bin/python bench/bench_handlers.py --repeats 3 --only finals history --json /tmp/h.json
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import gc
import gzip
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._common import free_port, update_summary, wait_http  # noqa: E402

RACERS = 1000
SERVICES = ("dynamodb", "s3", "sqs")  # every client the handlers make (processors.clients.aws_client)

# The original sample's handlers and ours before this work, measured side by side on one plain moto
# server, 1,000 racers (issue 9, point 5): (CPU ms, requests); None where the issue gives no figure.
ORIGINAL = {
    "aggregator": (28.5, 2),
    "finals": (3300.0, 2000),
    "history": (1500.0, 1003),
    "transformer": (9.0, None),
}
BEFORE = {
    "aggregator": (29.0, 2),
    "finals": (630.0, 118),
    "history": (3500.0, 1003),
    "transformer": (10.7, None),
}
TARGETS = {  # (CPU ratio to the original at most, requests at most)
    "aggregator": (0.5, None),
    "finals": (None, 50),
    "history": (0.5, 50),
    "transformer": (0.8, None),
}


# --------------------------------------------------------------------------- measuring


@dataclass
class Sample:
    cpu_ms: float
    wall_ms: float
    requests: int
    server_cpu_ms: float
    operations: dict[str, int]


@dataclass
class Scenario:
    handler: str
    name: str
    samples: list[Sample] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(sample, attribute) for sample in self.samples)

    def operations(self) -> dict[str, int]:
        """The operations of the median-request sample (they are the same in every repeat here)."""
        ordered = sorted(self.samples, key=lambda sample: sample.requests)
        return ordered[len(ordered) // 2].operations

    def as_json(self) -> dict[str, Any]:
        return {
            "handler": self.handler,
            "scenario": self.name,
            "repeats": len(self.samples),
            "cpu_ms_median": round(self.median("cpu_ms"), 3),
            "cpu_ms_min": round(min(s.cpu_ms for s in self.samples), 3),
            "wall_ms_median": round(self.median("wall_ms"), 3),
            "requests_median": self.median("requests"),
            "server_cpu_ms_median": round(self.median("server_cpu_ms"), 1),
            "operations": self.operations(),
            "samples": [
                {"cpu_ms": round(s.cpu_ms, 3), "wall_ms": round(s.wall_ms, 3), "requests": s.requests}
                for s in self.samples
            ],
        }


class RequestCounter:
    """Counts the requests the handlers' clients send (one per attempt) by service and operation."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._hooked: set[int] = set()

    def hook(self) -> None:
        """Hook the clients of ``processors.clients`` (made now if not yet, as a warm Lambda has them)."""
        from processors.clients import aws_client

        for service in SERVICES:
            client = aws_client(service)
            if id(client) not in self._hooked:
                client.meta.events.register("before-send", self._count)
                self._hooked.add(id(client))

    def _count(self, event_name: str = "", **_: Any) -> None:
        _before, _dot, operation = event_name.partition(".")  # before-send.dynamodb.PutItem
        with self._lock:
            self.counts[operation] += 1

    def take(self) -> dict[str, int]:
        with self._lock:
            counts, self.counts = dict(self.counts), Counter()
        return counts


def process_cpu_s(pid: int) -> float:
    """User + system CPU of a process from /proc (0 where /proc is not there)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def stdout_to_devnull() -> Iterator[None]:
    """File descriptor 1 to /dev/null: the handlers' JSON log lines and EMF metrics are not wanted here."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


class Bench:
    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.counter = RequestCounter()

    def measure(
        self, handler: Callable[[dict[str, Any], Any], Any], event: dict[str, Any], function: str
    ) -> tuple[Any, Sample]:
        """``handler(event, context)`` measured; the event is built before, outside the measurement."""
        lambda_context = context(function)
        self.counter.hook()
        self.counter.take()
        gc.collect()
        with stdout_to_devnull():
            server_before = process_cpu_s(self.server_pid)
            wall = time.perf_counter()
            cpu = time.process_time()
            result = handler(event, lambda_context)
            cpu = time.process_time() - cpu
            wall = time.perf_counter() - wall
            server = process_cpu_s(self.server_pid) - server_before
        operations = self.counter.take()
        return result, Sample(cpu * 1000, wall * 1000, sum(operations.values()), server * 1000, operations)

    def quietly(self, handler: Callable[[dict[str, Any], Any], Any], event: dict[str, Any], function: str) -> Any:
        """A setup invoke (not measured), its log lines silenced too."""
        with stdout_to_devnull():
            return handler(event, context(function))


# --------------------------------------------------------------------------- server and resources


SERVERS = {
    "moto": ["-m", "moto.server", "-H", "127.0.0.1", "-p"],  # moto's own server, as the original was measured on
    "embedded": ["-m", "processors.local.endpoint"],  # what make run starts: moto with the project's fixes
}


@contextlib.contextmanager
def moto_server(kind: str = "moto") -> Iterator[subprocess.Popen]:
    """A moto server (``kind``: see SERVERS) on 127.0.0.1 in a child process until the block ends; this
    process's boto3 reaches it."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    argv = [sys.executable, *SERVERS[kind], str(port)]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"{endpoint}/moto-api/")
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        )
        os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def create_resources() -> Any:
    """Stream, table, buckets and dead-letter queue as the template declares them; the handlers' environment set."""
    from processors import clients
    from processors.local.bootstrap import bootstrap
    from processors.local.template import load_local_settings

    settings = load_local_settings()
    resources = bootstrap(None, settings)
    for function in ("aggregator", "finals", "history", "transformer"):
        os.environ.update(settings.environment(function, resources))
    for name in ("REDIS_URL", "ALLEYCAT_REDIS_URL_PARAMETER"):
        os.environ.pop(name, None)
    clients.clear()
    return resources


def use_function_environment(function: str, resources: Any) -> None:
    """The function's own variables (service name and the like); the clients are kept (a warm Lambda)."""
    from processors.local.template import load_local_settings

    os.environ.update(load_local_settings().environment(function, resources))


# --------------------------------------------------------------------------- events


def bike_message(race_id: int, class_id: int, racer_id: int, second: int, *, event: str = "update") -> dict[str, Any]:
    """A bike message as the simulator sends it: varied cadence and resistance, a uuid on two thirds."""
    from tests.processors.factories import message

    body = message(
        race_id=race_id,
        racer_id=racer_id,
        second=second,
        class_id=class_id,
        cadence=round(55 + (racer_id * 7 + second * 3) % 60 + 0.5 * (second % 2), 1),
        resistance=20 + (racer_id * 11 + second) % 60,
        event=event,
        name=f"Racer {racer_id:04d} of the bench",
    )
    if racer_id % 3:
        body["uuid"] = f"{race_id:08x}-{racer_id:04x}-4000-8000-{second:012x}"
    return body


def kinesis_records(race_id: int, class_id: int, seconds: range, *, final_at: int | None = None) -> list[dict]:
    from tests.processors.factories import kinesis_record

    return [
        kinesis_record(
            bike_message(race_id, class_id, racer_id, second, event="final" if second == final_at else "update"),
            partition_key=str(racer_id),
        )
        for second in seconds
        for racer_id in range(1, RACERS + 1)
    ]


def publish_race(race_id: int, class_id: int) -> None:
    from processors.table import get_results_table
    from tests.processors.factories import race_identity

    assert get_results_table().put_race_identity(race_identity(race_id, class_id=class_id))


def context(function: str) -> Any:
    from tests.processors.factories import LambdaContext

    return LambdaContext(function_name=f"alleycat-{function}")


# --------------------------------------------------------------------------- scenarios


def bench_transformer(bench: Bench, repeats: int) -> list[Scenario]:
    from processors.handlers import transformer
    from tests.processors.factories import load_event

    recorded = load_event("firehose_kinesis_source.json")
    template = recorded["records"][0]
    records = []
    for racer_id in range(1, RACERS + 1):
        record = copy.deepcopy(template)
        record["recordId"] = f"{racer_id:064d}"
        record["data"] = base64.b64encode(orjson.dumps(bike_message(42, 3, racer_id, 61))).decode()
        record["kinesisRecordMetadata"]["sequenceNumber"] = str(4965928411987654321098765432109876543210 + racer_id)
        record["kinesisRecordMetadata"]["partitionKey"] = str(racer_id)
        records.append(record)
    event = {key: value for key, value in recorded.items() if key != "records"} | {"records": records}
    scenario = Scenario("transformer", "1,000 records")
    for repeat in range(repeats + 1):
        response, sample = bench.measure(transformer.lambda_handler, copy.deepcopy(event), "transformer")
        assert [r["result"] for r in response["records"]] == ["Ok"] * RACERS, "transformer refused a record"
        if repeat:
            scenario.samples.append(sample)
    return [scenario]


def bench_aggregator(bench: Bench, repeats: int, *, seed_seconds: int) -> list[Scenario]:
    from processors.handlers import aggregator
    from processors.table import get_results_table
    from tests.processors.factories import kinesis_event

    race_id, class_id = 900_001, 901
    publish_race(race_id, class_id)
    # The live item already holds the race's first seconds (one write, no window).
    seed = kinesis_records(race_id, class_id, range(1, seed_seconds + 1))
    bench.quietly(aggregator.lambda_handler, kinesis_event(seed, window=False), "aggregator")
    records_invoke = Scenario("aggregator", "window: records invoke (1,000 records, not final)")
    final_invoke = Scenario("aggregator", "window: final invoke (state carried, no records)")
    settling_invoke = Scenario("aggregator", "the same, window closing on a multiple of 5 s")
    one_invoke = Scenario("aggregator", "window: one final invoke with the 1,000 records")

    def window(event: dict[str, Any], end_second: int) -> dict[str, Any]:
        event["window"] = {
            "start": f"2025-11-26T16:00:{end_second - 1:02d}Z",
            "end": f"2025-11-26T16:00:{end_second:02d}Z",
        }
        return event

    second = seed_seconds
    for repeat in range(repeats + 1):
        second += 1
        records = kinesis_records(race_id, class_id, range(second, second + 1))
        response, sample_records = bench.measure(
            aggregator.lambda_handler, kinesis_event(records, state={}, final=False), "aggregator"
        )
        state = json.loads(json.dumps(response["state"]))  # as Lambda passes it to the next invoke
        assert len(state["races"][str(race_id)]["r"]) == RACERS
        response, sample_final = bench.measure(
            aggregator.lambda_handler, window(kinesis_event([], state=state, final=True), 1), "aggregator"
        )
        assert response == {"state": {"races": {}}}, response
        second += 1
        records = kinesis_records(race_id, class_id, range(second, second + 1))
        response, _sample = bench.measure(
            aggregator.lambda_handler, kinesis_event(records, state={}, final=False), "aggregator"
        )
        state = json.loads(json.dumps(response["state"]))
        _response, sample_settling = bench.measure(
            aggregator.lambda_handler, window(kinesis_event([], state=state, final=True), 5), "aggregator"
        )
        second += 1
        records = kinesis_records(race_id, class_id, range(second, second + 1))
        _response, sample_one = bench.measure(
            aggregator.lambda_handler, window(kinesis_event(records, final=True), 1), "aggregator"
        )
        if repeat:
            records_invoke.samples.append(sample_records)
            final_invoke.samples.append(sample_final)
            settling_invoke.samples.append(sample_settling)
            one_invoke.samples.append(sample_one)
    standings = get_results_table().live_standings(race_id)
    assert standings is not None and len(standings.rows) == RACERS
    assert all(row.second == second for row in standings.rows), "the live item misses seconds"
    return [records_invoke, final_invoke, settling_invoke, one_invoke]


def finishing_record(bench: Bench, race_id: int, class_id: int, seconds: int) -> dict[str, Any]:
    """The stream record of the live item in which all 1,000 racers finish at ``seconds`` (images from the table)."""
    from processors.clients import aws_client
    from processors.handlers import aggregator
    from processors.table.items import live_key
    from tests.processors.factories import kinesis_event, stream_record

    dynamodb = aws_client("dynamodb")
    table_name = os.environ.get("ALLEYCAT_TABLE") or "alleycat"
    publish_race(race_id, class_id)
    images = []
    for window in (range(1, seconds), range(seconds, seconds + 1)):
        records = kinesis_records(race_id, class_id, window, final_at=seconds)
        bench.quietly(aggregator.lambda_handler, kinesis_event(records, window=False), "aggregator")
        images.append(dynamodb.get_item(TableName=table_name, Key=live_key(race_id), ConsistentRead=True)["Item"])
    return stream_record(images[0], images[1])


def seed_bests(record: dict[str, Any], class_id: int) -> None:
    """Every racer has a best in the class already: half of them below this race's score, half above."""
    from processors.clients import aws_client
    from processors.table import PersonalBest
    from processors.table.items import final_results_from_stream, personal_best_item

    results = final_results_from_stream(record["dynamodb"]["OldImage"], record["dynamodb"]["NewImage"])
    assert len(results) == RACERS
    bests = [
        PersonalBest(class_id, r.racer_id, r.name, round(r.score * (0.5 if r.racer_id % 2 else 2.0), 2), 1)
        for r in results
    ]
    dynamodb = aws_client("dynamodb")
    table_name = os.environ.get("ALLEYCAT_TABLE") or "alleycat"
    for start in range(0, len(bests), 25):
        requests = [{"PutRequest": {"Item": personal_best_item(best)}} for best in bests[start : start + 25]]
        pending: dict[str, Any] = {table_name: requests}
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def bench_finals(bench: Bench, repeats: int, *, seconds: int) -> list[Scenario]:
    from processors.handlers import finals
    from processors.table import get_results_table

    first = Scenario("finals", "1,000 finishers, no bests in the class yet")
    again = Scenario("finals", "1,000 finishers, bests exist, half improve")
    table = get_results_table()
    for repeat in range(repeats + 1):
        # The warm-up (repeat 0) runs the first variant only: each invoke takes seconds on moto.
        for scenario, existing in ((first, False), (again, True))[: 1 if repeat == 0 else 2]:
            race_id = 910_000 + repeat * 2 + existing
            class_id = 9_100 + repeat * 2 + existing
            record = finishing_record(bench, race_id, class_id, seconds)
            if existing:
                seed_bests(record, class_id)
            event = {"Records": [record]}
            response, sample = bench.measure(finals.lambda_handler, event, "finals")
            assert response == {"batchItemFailures": []}, response
            page = table.race_results(race_id, limit=RACERS)
            assert len(page.items) == RACERS, f"finals wrote {len(page.items)} results"
            if repeat:
                scenario.samples.append(sample)
    return [first, again]


def firehose_object(race_id: int, class_id: int, second: int) -> bytes:
    """A delivered Firehose object: 1,000 racers x 1 second, the transformer's output lines, GZIP."""
    from processors.domain.scoring import output_of

    lines = []
    for racer_id in range(1, RACERS + 1):
        body = bike_message(race_id, class_id, racer_id, second)
        body["output"] = output_of(body["cadence"], body["resistance"])
        lines.append(orjson.dumps(body) + b"\n")
    return gzip.compress(b"".join(lines))


def bench_history(bench: Bench, repeats: int, resources: Any, *, history_seconds: int) -> list[Scenario]:
    from processors.clients import aws_client
    from processors.domain.scoring import output_of
    from processors.handlers import history
    from processors.history_store import merge_class_history
    from tests.processors.factories import load_event

    s3 = aws_client("s3")
    template = load_event("s3_object_created.json")["Records"][0]
    first = Scenario("history", "1,000-record object, no class history yet")
    again = Scenario("history", f"1,000-record object, class history of {history_seconds} s exists, half improve")
    second = min(30, history_seconds)
    for repeat in range(repeats + 1):
        # The warm-up (repeat 0) runs the first variant only: each invoke takes seconds on moto.
        for scenario, existing in ((first, False), (again, True))[: 1 if repeat == 0 else 2]:
            race_id = 920_000 + repeat * 2 + existing
            class_id = 9_200 + repeat * 2 + existing
            body = firehose_object(race_id, class_id, second)
            key = f"raw/bench/{race_id}/alleycat-delivery-1-{race_id}.gz"
            s3.put_object(Bucket=resources.delivery_bucket, Key=key, Body=body)
            if existing:
                bests = {}
                for racer_id in range(1, RACERS + 1):
                    factor = 0.9 if racer_id % 2 else 1.1  # odd racers improve
                    bests[racer_id] = {
                        s: round(factor * output_of(*_ride(racer_id, s)), 4) for s in range(1, history_seconds + 1)
                    }
                merge_class_history(s3, resources.history_bucket, class_id, bests)
            record = copy.deepcopy(template)
            record["s3"]["bucket"]["name"] = resources.delivery_bucket
            record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{resources.delivery_bucket}"
            record["s3"]["object"].update({"key": key, "size": len(body)})
            event = {"Records": [record]}
            summary, sample = bench.measure(history.lambda_handler, event, "history")
            assert summary["records"] == RACERS and summary["bad"] == 0, summary
            assert summary["classesWritten"] == [class_id], summary
            if repeat:
                scenario.samples.append(sample)
    return [first, again]


def _ride(racer_id: int, second: int) -> tuple[float, float]:
    body = bike_message(0, 0, racer_id, second)
    return body["cadence"], body["resistance"]


# --------------------------------------------------------------------------- report


def ratio(ours: float, original: float | None) -> str:
    return f"{ours / original:.2f}x" if original else "-"


def report(scenarios: list[Scenario], out: Any) -> dict[str, float]:
    """Print the table; return the headline figures for summary.json."""
    print(
        f"\n{'handler':12s} {'scenario':58s} {'CPU ms':>9s} {'min':>8s} {'wall ms':>9s} {'requests':>8s} "
        f"{'moto CPU ms':>11s}",
        file=out,
    )
    for s in scenarios:
        print(
            f"{s.handler:12s} {s.name:58s} {s.median('cpu_ms'):9.1f} {min(x.cpu_ms for x in s.samples):8.1f} "
            f"{s.median('wall_ms'):9.1f} "
            f"{s.median('requests'):8.0f} {s.median('server_cpu_ms'):11.0f}",
            file=out,
        )
    print("\nrequests by operation (median sample):", file=out)
    for s in scenarios:
        ops = ", ".join(f"{name} {count}" for name, count in sorted(s.operations().items())) or "none"
        print(f"  {s.handler:12s} {s.name:58s} {ops}", file=out)

    by_handler: dict[str, list[Scenario]] = {}
    for s in scenarios:
        by_handler.setdefault(s.handler, []).append(s)
    headline: dict[str, tuple[float, float]] = {}  # handler -> (CPU ms, requests) compared with the original
    if "aggregator" in by_handler:
        final = next(s for s in by_handler["aggregator"] if "final invoke (state" in s.name)
        headline["aggregator"] = (final.median("cpu_ms"), final.median("requests"))
    for handler in ("finals", "history"):  # the worse of the two variants
        if handler in by_handler:
            headline[handler] = (
                max(s.median("cpu_ms") for s in by_handler[handler]),
                max(s.median("requests") for s in by_handler[handler]),
            )
    if "transformer" in by_handler:
        only = by_handler["transformer"][0]
        headline["transformer"] = (only.median("cpu_ms"), only.median("requests"))

    print(
        "\nagainst the original sample (issue 9, point 5; finals and history: the worse of the two variants):",
        file=out,
    )
    print(
        f"{'handler':12s} {'original':>22s} {'ours before':>22s} {'ours now':>22s} {'CPU ratio':>9s} target",
        file=out,
    )
    for handler, (cpu, requests) in headline.items():
        original_cpu, original_requests = ORIGINAL[handler]
        before_cpu, before_requests = BEFORE[handler]
        cpu_target, requests_target = TARGETS[handler]
        met = []
        if cpu_target is not None:
            ok = cpu <= cpu_target * original_cpu
            met.append(f"CPU <= {cpu_target}x: {'met' if ok else 'NOT met'}")
        if requests_target is not None:
            ok = requests <= requests_target
            met.append(f"requests <= {requests_target}: {'met' if ok else 'NOT met'}")

        def cell(cpu_ms: float, count: float | None) -> str:
            return f"{cpu_ms:.1f} ms" + (f", {count:.0f} req" if count is not None else "")

        print(
            f"{handler:12s} {cell(original_cpu, original_requests):>22s} {cell(before_cpu, before_requests):>22s} "
            f"{cell(cpu, requests):>22s} {ratio(cpu, original_cpu):>9s} {'; '.join(met)}",
            file=out,
        )
    print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs", file=out)

    figures: dict[str, float] = {}
    if "aggregator" in headline:
        figures["aggregator_cpu_ms_per_invoke"] = round(headline["aggregator"][0], 2)
    if "finals" in headline:
        figures["finals_requests_per_1000"] = headline["finals"][1]
    if "history" in headline:
        figures["history_requests_per_object"] = headline["history"][1]
        figures["history_cpu_ms_per_object"] = round(headline["history"][0], 1)
    if "transformer" in headline:
        figures["transformer_cpu_ms_per_1000"] = round(headline["transformer"][0], 2)
    return figures


def main() -> int:
    handlers = ("transformer", "aggregator", "finals", "history")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="measured invokes per scenario (plus one warm-up)")
    parser.add_argument(
        "--heavy-repeats", type=int, default=3, help="the same for finals and history (seconds per invoke on moto)"
    )
    parser.add_argument("--only", nargs="+", choices=handlers, default=list(handlers))
    parser.add_argument("--seed-seconds", type=int, default=30, help="seconds the aggregator's live item holds")
    parser.add_argument("--finals-seconds", type=int, default=30, help="the second at which the 1,000 racers finish")
    parser.add_argument("--history-seconds", type=int, default=60, help="seconds of the existing class history")
    parser.add_argument("--json", type=Path, help="write every scenario's figures and samples here")
    parser.add_argument(
        "--server",
        choices=sorted(SERVERS),
        default="embedded",
        help="the embedded endpoint (default) or moto's own server (not for finals: see the docstring)",
    )
    parser.add_argument("--no-summary", action="store_true", help="do not update bench/results/summary.json")
    args = parser.parse_args()
    if min(args.repeats, args.heavy_repeats) < 1:
        parser.error("--repeats and --heavy-repeats must be at least 1")

    started = time.monotonic()
    scenarios: list[Scenario] = []
    if args.server == "moto" and "finals" in args.only:
        parser.error(
            "finals needs --server embedded: moto's own server copies the whole table for every transaction"
            " (seconds each at this size, past the client's timeout) and fails when another write comes meanwhile"
        )
    with moto_server(args.server) as server:
        resources = create_resources()
        bench = Bench(server.pid)
        print(
            f"{args.server} server pid {server.pid}; {args.repeats} repeats (finals, history: {args.heavy_repeats})"
            " + 1 warm-up per handler",
            flush=True,
        )
        for handler in handlers:
            if handler not in args.only:
                continue
            use_function_environment(handler, resources)
            t0 = time.monotonic()
            if handler == "transformer":
                done = bench_transformer(bench, args.repeats)
            elif handler == "aggregator":
                done = bench_aggregator(bench, args.repeats, seed_seconds=args.seed_seconds)
            elif handler == "finals":
                done = bench_finals(bench, args.heavy_repeats, seconds=args.finals_seconds)
            else:
                done = bench_history(bench, args.heavy_repeats, resources, history_seconds=args.history_seconds)
            scenarios.extend(done)
            print(f"  {handler}: {time.monotonic() - t0:.1f}s", flush=True)
    figures = report(scenarios, sys.stdout)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "racers": RACERS,
                    "repeats": args.repeats,
                    "heavy_repeats": args.heavy_repeats,
                    "loadavg": os.getloadavg(),
                    "cpus": os.cpu_count(),
                    "original": ORIGINAL,
                    "before": BEFORE,
                    "summary": figures,
                    "scenarios": [s.as_json() for s in scenarios],
                },
                indent=2,
            )
            + "\n"
        )
    if not args.no_summary and figures:
        print(f"summary: {update_summary(**figures)}")
    print(f"took {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
