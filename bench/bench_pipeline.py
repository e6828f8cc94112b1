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
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._common import local_pipeline, race_identity_publish, source, update_summary  # noqa: E402


def expected_scores(messages: list[dict]) -> dict[int, int]:
    from processors.domain.scoring import output_units

    seen: dict[int, dict[int, int]] = {}
    for message in messages:
        units = output_units(round(((message["cadence"] + 35) * (message["resistance"] + 65)) / 100, 4))
        seen.setdefault(message["racerId"], {})[message["second"]] = units
    return {racer: sum(seconds.values()) for racer, seconds in seen.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--racers", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--report", type=float, default=5.0, help="seconds between progress lines")
    parser.add_argument("--drain", type=float, default=120.0, help="at most this long to wait for the backlog")
    parser.add_argument("--firehose-buffer", default="10", help="ALLEYCAT_FIREHOSE_BUFFER_SECONDS (make run: 10)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, status file)")
    parser.add_argument("--no-summary", action="store_true", help="do not update bench/results/summary.json")
    args = parser.parse_args()

    import boto3

    from processors.local.simulator import RaceSpec, Simulator, profiles
    from processors.table import items

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
            sim_result["result"] = simulator.play(race, racers, speed=1.0, collect=True, progress=progress)

        player = threading.Thread(target=play, daemon=True)
        started = time.monotonic()
        player.start()
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
        print(f"racers {args.racers}, seconds {args.seconds}, sent {final.get('sent')} in {elapsed_play:.1f}s")
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
        # What this run measured, for bench/results/summary.json (a figure it could not measure is left out).
        figures: dict[str, float] = {"e2e_racers": args.racers}
        if measured_rates:
            figures["aggregator_records_per_s"] = round(statistics.median(measured_rates), 1)
        if played:
            figures["e2e_iterator_age_max_s"] = round(max(lags), 1)

        if result and drained_after is not None:
            time.sleep(2)
            dynamodb = boto3.client("dynamodb")
            table = os.environ.get("ALLEYCAT_TABLE") or "alleycat"
            item = dynamodb.get_item(TableName=table, Key=items.live_key(race.race_id))
            totals = items.live_totals(item["Item"])
            expected = expected_scores(result.messages)
            wrong = [r for r, units in expected.items() if r not in totals or totals[r].score_units != units]
            print(f"live item: {len(totals)} racers, scores exact: {not wrong} ({len(wrong)} differ)")
            figures["e2e_records_lost"] = len(wrong)  # racers whose score is wrong or missing
        if not args.no_summary:
            unmeasured = {"aggregator_records_per_s", "e2e_iterator_age_max_s", "e2e_records_lost"} - set(figures)
            print(f"summary: {update_summary(remove=unmeasured, **figures)}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
