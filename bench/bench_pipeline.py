"""The local pipeline under one big race: N racers at real speed (1 message per racer per second).

Starts what ``make run`` starts for the pipeline, on free ports, 127.0.0.1 only: the embedded AWS
endpoint (``processors.local.endpoint``), the bootstrap, the runner (``processors.local.runner``, every
handler in its sandbox process); then plays N racers for S seconds at 1x with the simulator core
(``processors.local.simulator``), and reports every few seconds and at the end: records/s of the
aggregator and its lag (iterator age from the runner's status file, and the backlog: messages sent
minus records aggregated, in seconds of the race). Everything it started is stopped at the end.

    .venv/bin/python bench/bench_pipeline.py                 # 1,000 racers, 120 s
    .venv/bin/python bench/bench_pipeline.py --racers 300 --seconds 60

After the race it waits for the aggregator to drain and checks the live item: every racer's score
equals an independent recomputation from the messages sent (exact, counted once).

With ``--dups``, ``--partition``, ``--viewers``, ``--bad`` or ``--reshard-at`` it measures the whole
stack instead, as an outsider would (``stack_race``): ``make run``'s processes with ``SIMULATE=0`` on
a fresh directory and free ports, and ``bench/outside_producer.py`` against them (duplicates,
shuffled batches, the chosen partition keys, malformed records, WebSocket viewers, a reshard); it
reports put -> push p50/p95, the iterator age, when the results API had every final result, and
whether every score is exact.

    .venv/bin/python bench/bench_pipeline.py --racers 1000 --seconds 300 --dups 0.1 --partition racer --viewers 200
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._common import free_port, local_pipeline, race_identity_publish, source, update_summary  # noqa: E402


def expected_scores(messages: list[dict]) -> dict[int, int]:
    from processors.domain.scoring import output_units

    seen: dict[int, dict[int, int]] = {}
    for message in messages:
        units = output_units(round(((message["cadence"] + 35) * (message["resistance"] + 65)) / 100, 4))
        seen.setdefault(message["racerId"], {})[message["second"]] = units
    return {racer: sum(seconds.values()) for racer, seconds in seen.items()}


def cpu_by_process(pipeline: Any) -> dict[str, float]:
    """CPU seconds (user + system) so far of the endpoint, the runner, its handler processes, and this one."""
    import psutil

    def cpu(*processes: Any) -> float:
        total = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def process(pid: int) -> Any:
        return psutil.Process(pid)

    endpoint, runner = process(pipeline.procs["moto"].pid), process(pipeline.procs["runner"].pid)
    figures = {
        "endpoint": cpu(endpoint, *endpoint.children(recursive=True)),
        "runner": cpu(runner),
        "handler processes": cpu(*runner.children(recursive=True)),
        "this process (producer, standings reader)": cpu(psutil.Process()),
    }
    figures["together"] = sum(figures.values())
    for name, info in sorted((pipeline.status() or {}).get("functions", {}).items()):  # one by one
        if pid := info.get("pid"):
            figures[name] = cpu(process(pid))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--racers", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--report", type=float, default=5.0, help="seconds between progress lines")
    parser.add_argument("--drain", type=float, default=120.0, help="at most this long to wait for the backlog")
    parser.add_argument("--firehose-buffer", default="10", help="ALLEYCAT_FIREHOSE_BUFFER_SECONDS (make run: 10)")
    parser.add_argument("--speed", type=float, default=1.0, help="race seconds played per second (simulator mode)")
    parser.add_argument("--shards", type=int, help="shards of the bike stream (ALLEYCAT_STREAM_SHARDS; template: 2)")
    parser.add_argument("--parts", type=int, help="parts of the live board (ALLEYCAT_LIVE_BOARD_PARTS; default 1)")
    parser.add_argument(
        "--batch-size",
        type=int,
        help="most records per aggregator invoke (ALLEYCAT_AGGREGATOR_BATCH_SIZE; template: 1000)",
    )
    parser.add_argument(
        "--delivery-buffer-mb", type=int, help="Firehose buffer size (ALLEYCAT_DELIVERY_BUFFER_MB; template: 1)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, status file)")
    parser.add_argument("--no-summary", action="store_true", help="do not update bench/results/summary.json")
    stack = parser.add_argument_group(
        "the whole stack", "any of these runs the race through make run's stack with the outside producer"
    )
    stack.add_argument("--dups", type=float, help="share of messages sent twice (outside producer: 0.1)")
    stack.add_argument("--partition", choices=("race", "racer", "random"), help="partition key (default racer)")
    stack.add_argument("--viewers", type=int, help="WebSocket viewers of the race (default 1)")
    stack.add_argument("--bad", type=int, help="malformed records spread over the race (default 10)")
    stack.add_argument("--reshard-at", type=int, help="reshard the stream before this race second")
    stack.add_argument("--reshard-to", type=int, default=4, help="shards after --reshard-at (default 4)")
    args = parser.parse_args()
    # The race cap (template default 1,000) admits every racer of the run, in either mode.
    os.environ["ALLEYCAT_MAX_RACERS_PER_RACE"] = str(max(1000, args.racers))
    if any(value is not None for value in (args.dups, args.partition, args.viewers, args.bad, args.reshard_at)):
        args.dups = 0.1 if args.dups is None else args.dups
        args.partition = args.partition or "racer"
        args.viewers = 1 if args.viewers is None else args.viewers
        args.bad = 10 if args.bad is None else args.bad
        return stack_race(args)

    import boto3

    from processors.local.simulator import RaceSpec, Simulator, profiles
    from processors.table import ResultsTable

    if args.shards:
        os.environ["ALLEYCAT_STREAM_SHARDS"] = str(args.shards)
    if args.parts:
        os.environ["ALLEYCAT_LIVE_BOARD_PARTS"] = str(args.parts)
    if args.batch_size:
        os.environ["ALLEYCAT_AGGREGATOR_BATCH_SIZE"] = str(args.batch_size)
    if args.delivery_buffer_mb:
        os.environ["ALLEYCAT_DELIVERY_BUFFER_MB"] = str(args.delivery_buffer_mb)
    with local_pipeline(
        prefix="alleycat-bench-", firehose_buffer_seconds=args.firehose_buffer, keep=args.keep
    ) as pipeline:
        runner = pipeline.procs["runner"]
        print(f"moto pid {pipeline.procs['moto'].pid}, runner pid {runner.pid}, logs in {pipeline.work}", flush=True)

        kinesis = boto3.client("kinesis")
        stream = os.environ.get("ALLEYCAT_STREAM") or "alleycat-bikes"
        race = RaceSpec(race_id=int(time.time()) % 1_000_000 + 1, class_id=1, first_second=1, last_second=args.seconds)
        race_identity_publish(
            race_id=race.race_id, class_id=race.class_id, seconds=args.seconds, settle_after_seconds=args.seconds + 600
        )
        racers = profiles((racer_id, None) for racer_id in range(1, args.racers + 1))
        simulator = Simulator(kinesis, stream)
        sim_result: dict[str, Any] = {}
        sent = [0]

        def progress(count: int, result: Any) -> None:
            sent[0] = result.sent

        def play() -> None:
            sim_result["result"] = simulator.play(race, racers, speed=args.speed, collect=True, progress=progress)

        dynamodb = boto3.client("dynamodb")
        table = ResultsTable(dynamodb, os.environ.get("ALLEYCAT_TABLE") or "alleycat")
        reads: list[tuple[float, int, int, float]] = []  # (t, racers, requests, seconds) of each standings read
        read_errors: list[str] = []
        requests = [0]
        dynamodb.meta.events.register("before-call.dynamodb", lambda **_: requests.__setitem__(0, requests[0] + 1))

        def read_standings() -> None:
            # A reader of the standings throughout, as the site is: what one read costs and that it never fails.
            while player.is_alive():
                before, began = requests[0], time.perf_counter()
                try:
                    live = table.live_standings(race.race_id)
                except Exception as exc:  # a failed read is what this counts
                    read_errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    live = None
                took = time.perf_counter() - began
                reads.append((time.monotonic() - started, len(live.rows) if live else 0, requests[0] - before, took))
                time.sleep(1.0)

        player = threading.Thread(target=play, daemon=True)
        reader = threading.Thread(target=read_standings, daemon=True)
        started = time.monotonic()
        player.start()
        reader.start()
        samples: list[dict[str, float]] = []
        next_line = started + args.report
        drain_deadline = None
        while True:
            time.sleep(1.0)
            now = time.monotonic()
            status = pipeline.status()
            agg = source(status, "aggregator", "kinesis")
            done = int(agg.get("records", 0))
            backlog_s = max(0, sent[0] - done) / args.racers
            samples.append(
                {
                    "t": now - started,
                    "lag": agg.get("lagMs", 0) / 1000,
                    "backlog": backlog_s,
                    "rate": agg.get("recordsPerSecond", 0.0),
                    "sent": sent[0],
                    "done": done,
                    "playing": player.is_alive(),
                }
            )
            if now >= next_line:
                next_line += args.report
                pub = source(status, "publisher", "dynamodb")
                fin = source(status, "finals", "dynamodb")
                print(
                    f"t={now - started:6.1f}s sent={sent[0]} aggregated={done} backlog={backlog_s:5.1f}s "
                    f"agg lag={agg.get('lagMs', 0) / 1000:5.1f}s {agg.get('recordsPerSecond', 0):7.1f}/s | "
                    f"publisher lag={pub.get('lagMs', 0) / 1000:.1f}s finals lag={fin.get('lagMs', 0) / 1000:.1f}s | "
                    f"load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
            if runner.poll() is not None:
                print("runner exited", file=sys.stderr)
                break
            if not player.is_alive():
                drain_deadline = drain_deadline or now + args.drain
                if done >= sent[0] or now > drain_deadline:
                    break
        played = [s for s in samples if s["playing"] and s["t"] > 5]  # skip the first seconds (cold start)
        result = sim_result.get("result")
        elapsed_play = result.elapsed if result else 0.0
        lags = [s["lag"] for s in played] or [0.0]
        backlogs = [s["backlog"] for s in played] or [0.0]
        measured_rates = [s["rate"] for s in played if s["t"] > 10]
        rates = measured_rates or [0.0]
        final = samples[-1] if samples else {}
        drained_after = (final.get("t", 0) - elapsed_play) if final.get("done", 0) >= final.get("sent", 1) else None
        print()
        print(
            f"racers {args.racers}, seconds {args.seconds}, sent {final.get('sent')} in {elapsed_play:.1f}s "
            f"(speed {args.speed:g}x, shards {args.shards or 'template'}, board parts {args.parts or 1})"
        )
        reader.join(timeout=30)
        if reads:
            took = sorted(read[3] for read in reads)
            print(
                f"standings read {len(reads)} times while playing: {max(read[2] for read in reads)} requests at most, "
                f"{took[len(took) // 2] * 1000:.0f} ms median, {took[-1] * 1000:.0f} ms max, "
                f"racers seen {reads[0][1]} -> {reads[-1][1]}, errors {len(read_errors)} {read_errors[:2]}"
            )
        print(
            f"aggregator lag (iterator age) median {statistics.median(lags):.1f}s max {max(lags):.1f}s; "
            f"backlog median {statistics.median(backlogs):.1f}s max {max(backlogs):.1f}s"
        )
        print(f"aggregator records/s median {statistics.median(rates):.0f} (status, from t=10 s)")
        print(
            "drained "
            + (f"{drained_after:.1f}s after the last second" if drained_after is not None else "NOT within the limit")
        )
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if drained_after is not None:
            took_s = elapsed_play + drained_after
            print(
                f"{args.seconds} race seconds took {took_s:.0f}s from the first put to the last record aggregated: "
                f"{args.seconds / took_s:.2f}x real time"
            )
        print("CPU seconds: " + ", ".join(f"{name} {cpu:.1f}" for name, cpu in cpu_by_process(pipeline).items()))
        # What this run measured, for bench/results/summary.json (a figure it could not measure is left out).
        figures: dict[str, float] = {"e2e_racers": args.racers}
        if measured_rates:
            figures["aggregator_records_per_s"] = round(statistics.median(measured_rates), 1)
        if played:
            figures["e2e_iterator_age_max_s"] = round(max(lags), 1)

        if result and drained_after is not None:
            time.sleep(2)
            totals = table.live_totals(race.race_id)
            expected = expected_scores(result.messages)
            wrong = [r for r, units in expected.items() if r not in totals or totals[r].score_units != units]
            print(f"live item: {len(totals)} racers, scores exact: {not wrong} ({len(wrong)} differ)")
            figures["e2e_records_lost"] = len(wrong)  # racers whose score is wrong or missing
        if not args.no_summary:
            unmeasured = {"aggregator_records_per_s", "e2e_iterator_age_max_s", "e2e_records_lost"} - set(figures)
            print(f"summary: {update_summary(remove=unmeasured, **figures)}")
        return 0


def stack_race(args: argparse.Namespace) -> int:
    """``--dups``/``--partition``/``--viewers``/``--bad``: one race through the whole stack, measured from outside.

    Starts what ``make run`` starts (``manage.py migrate``, ``seed_demo``, ``runstack`` with
    ``SIMULATE=0``) on a fresh ``ALLEYCAT_VAR_DIR`` and free ports of 127.0.0.1, then runs
    ``bench/outside_producer.py`` against it (the next race of a class: up to 5 minutes' wait for the
    rotation), stops the stack and writes the e2e figures to the summary.
    """
    import subprocess
    import tempfile
    import urllib.request

    from tests.conftest import interrupt_group

    work = Path(tempfile.mkdtemp(prefix="alleycat-bench-stack-"))
    port, aws_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDIS_URL", "DATABASE_URL"))}
    env |= {
        "DJANGO_DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "alleycat_site.settings",
        "ALLEYCAT_VAR_DIR": str(work / "var"),
        "ALLEYCAT_AWS_PORT": str(aws_port),
        "SIMULATE": "0",
    }
    for command in (["migrate", "--noinput"], ["seed_demo"]):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL
        )
    log = (work / "stack.log").open("w")
    stack = subprocess.Popen(
        [sys.executable, "manage.py", "runstack", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    print(f"stack pid {stack.pid} on 127.0.0.1:{port}, logs in {work}", flush=True)
    figures_path = work / "figures.json"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/classes/", timeout=5):  # noqa: S310
                    break
            except OSError:
                if stack.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the stack did not come up; see {work / 'stack.log'}") from None
                time.sleep(1)
        argv = [
            sys.executable,
            str(REPO / "bench" / "outside_producer.py"),
            *("--url", f"http://127.0.0.1:{port}", "--var-dir", str(work / "var")),
            *("--racers", str(args.racers), "--seconds", str(args.seconds), "--dups", str(args.dups)),
            *("--partition", args.partition, "--viewers", str(args.viewers), "--bad", str(args.bad)),
            *("--json", str(figures_path)),
            *(("--reshard-at", str(args.reshard_at), "--reshard-to", str(args.reshard_to)) if args.reshard_at else ()),
        ]
        producer = subprocess.run(argv, cwd=REPO, env={k: v for k, v in env.items() if k != "SIMULATE"})
    finally:
        interrupt_group(stack, timeout=60)  # Ctrl-C, as make run is stopped
        log.close()
    if not figures_path.exists():
        print("the outside producer wrote no figures", file=sys.stderr)
        return 1
    measured = json.loads(figures_path.read_text())
    figures: dict[str, float] = {"e2e_racers": args.racers}
    keys = {
        "e2e_push_p95_s": "push_p95_s",
        "e2e_iterator_age_max_s": "iterator_age_max_s",
        "e2e_results_complete_s": "results_complete_s",
    }
    for key, name in keys.items():
        if measured.get(name) is not None:
            figures[key] = round(float(measured[name]), 2)
    figures["e2e_records_lost"] = int(measured.get("results_missing") or 0) + int(measured.get("results_wrong") or 0)
    if not args.no_summary:
        print(f"summary: {update_summary(remove=set(keys) - set(figures), **figures)}")
    return producer.returncode


if __name__ == "__main__":
    sys.exit(main())
