"""Memory of the local pipeline under races back to back: RSS of the embedded endpoint and the runner.

Starts what ``make run`` starts for the pipeline (``bench._common.local_pipeline``: the embedded AWS
endpoint with its state under ``var/aws`` unless ``--in-memory``, the bootstrap, the runner with
every handler in its sandbox process; Firehose's 10 s buffer as in ``make run``), then plays 5-minute
races of N racers one after another in real time (the simulator core, one message per racer per
second, a new race id each time, each race's identity published first as the races app does) for
``--minutes``. Every ``--sample`` seconds it reads the resident set size of the endpoint, of the
runner and of the runner's handler processes (summed as "runner"; with PSS beside it, which counts
the pages the handlers share once), and prints the figures at the marks (5, 30 and 60 minutes by
default) and at the end.

    .venv/bin/python bench/bench_memory.py                      # 1,000 racers, 60 minutes
    .venv/bin/python bench/bench_memory.py --racers 300 --minutes 6 --marks 1,3,6

Issue 9's target: endpoint + runner under 2 GB, flat after the first minutes. ``--json`` writes
every sample; a run that reaches 60 minutes puts the endpoint's RSS then in
``bench/results/summary.json`` (``endpoint_rss_mb_60min``). Everything it starts binds 127.0.0.1 and stops at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._common import local_pipeline, race_identity_publish, source, update_summary  # noqa: E402

MB = 1024 * 1024


def memory_mb(pid: int, *, with_children: bool) -> tuple[float, float]:
    """(RSS, PSS) of ``pid`` and, with ``with_children``, its descendants, in MB; zeros once it is gone.

    PSS shares each shared page among the processes that map it, so the handlers' common Python
    pages are not counted once per process as RSS counts them: the honest sum of a process tree.
    """
    rss = pss = 0
    try:
        processes = [psutil.Process(pid)]
        if with_children:
            processes += processes[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0, 0.0
    for process in processes:
        try:
            info = process.memory_full_info()
        except psutil.NoSuchProcess:
            continue
        rss += info.rss
        pss += info.pss
    return rss / MB, pss / MB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--racers", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--race-seconds", type=int, default=300)
    parser.add_argument("--marks", default="5,30,60", help="minutes at which to print the figures")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--json", help="write every sample to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, status file)")
    parser.add_argument(
        "--in-memory",
        action="store_true",
        help="the endpoint without its state directory (default: as make run, state under var/aws)",
    )
    args = parser.parse_args()
    marks = sorted(float(mark) for mark in args.marks.split(","))

    import boto3

    from processors.local.simulator import RaceSpec, Simulator, profiles

    with local_pipeline(
        prefix="alleycat-memory-", firehose_buffer_seconds="10", keep=args.keep, endpoint_state=not args.in_memory
    ) as pipeline:
        endpoint_pid, runner_pid = pipeline.procs["moto"].pid, pipeline.procs["runner"].pid
        print(f"endpoint pid {endpoint_pid}, runner pid {runner_pid}, logs in {pipeline.work}", flush=True)
        simulator = Simulator(boto3.client("kinesis"), os.environ.get("ALLEYCAT_STREAM") or "alleycat-bikes")
        racers = profiles((racer_id, None) for racer_id in range(1, args.racers + 1))
        stop = threading.Event()
        races: list[int] = []

        def play() -> None:
            first_id = int(time.time()) % 1_000_000 * 100
            while not stop.is_set():
                race = RaceSpec(race_id=first_id + len(races), class_id=1, last_second=args.race_seconds)
                race_identity_publish(
                    race_id=race.race_id,
                    class_id=1,
                    seconds=args.race_seconds,
                    settle_after_seconds=args.race_seconds + 30,
                )
                races.append(race.race_id)
                simulator.play(race, racers, speed=1.0, stop=stop)

        player = threading.Thread(target=play, daemon=True)
        started = time.monotonic()
        player.start()
        samples: list[dict[str, Any]] = []
        pending_marks = list(marks)
        end = started + args.minutes * 60
        while time.monotonic() < end:
            time.sleep(min(args.sample, max(0.0, end - time.monotonic())))
            minutes = (time.monotonic() - started) / 60
            agg = source(pipeline.status(), "aggregator", "kinesis")
            endpoint_rss, endpoint_pss = memory_mb(endpoint_pid, with_children=False)
            runner_rss, runner_pss = memory_mb(runner_pid, with_children=True)
            sample = {
                "minute": round(minutes, 2),
                "endpoint_mb": round(endpoint_rss, 1),
                "runner_mb": round(runner_rss, 1),
                "runner_pss_mb": round(runner_pss, 1),
                "total_mb": round(endpoint_rss + runner_rss, 1),
                "total_pss_mb": round(endpoint_pss + runner_pss, 1),
                "races": len(races),
                "aggregator_lag_s": agg.get("lagMs", 0) / 1000,
                "load_1m": os.getloadavg()[0],
            }
            samples.append(sample)
            while pending_marks and minutes >= pending_marks[0] - 1e-6:
                pending_marks.pop(0)
                print(
                    f"{minutes:5.1f} min: endpoint {sample['endpoint_mb']:7.1f} MB, runner (with its handlers) "
                    f"{sample['runner_mb']:6.1f} MB (PSS {sample['runner_pss_mb']:.1f}), "
                    f"together {sample['total_mb']:7.1f} MB "
                    f"(PSS {sample['total_pss_mb']:.1f}); race {len(races)}, "
                    f"aggregator lag {sample['aggregator_lag_s']:.1f} s, load {sample['load_1m']:.2f}",
                    flush=True,
                )
            if pipeline.procs["runner"].poll() is not None or pipeline.procs["moto"].poll() is not None:
                print("the endpoint or the runner exited", file=sys.stderr)
                return 1
        stop.set()
        player.join(timeout=30)
        peak = max(samples, key=lambda s: s["total_mb"]) if samples else {}
        print(
            f"peak together {peak.get('total_mb')} MB at {peak.get('minute')} min; {len(races)} races of {args.racers}"
        )
        if args.json:
            Path(args.json).write_text(json.dumps({"racers": args.racers, "samples": samples}, indent=1))
        # The summary's figure: the endpoint's RSS at 60 minutes, only from a run that reached them.
        at_hour = [sample for sample in samples if sample["minute"] >= 60]
        if at_hour:
            update_summary(endpoint_rss_mb_60min=at_hour[0]["endpoint_mb"])
        else:
            update_summary(remove=["endpoint_rss_mb_60min"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
