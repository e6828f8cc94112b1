#!/usr/bin/env python
"""Live viewers and browser riders against a running Alleycat stack (issue 8).

N viewers (half on ``/ws/races/<id>/``, half on ``/ws/classes/<id>/``, each with ``?racer=``) connect
within ``--ramp`` seconds while M riders ride on ``/ws/ride/`` (one reading a second each, real
WebSockets, real accounts); optionally ``--simulate K`` more racers from the demo simulator make the
race bigger. Reports handshake failures, missed standings versions, the fan-out spread (first to
last viewer receiving the same standings version) p50/p95, ride ack latency p50/p95, Redis bytes and
commands per standings change (``INFO stats`` / ``INFO commandstats`` deltas) and the CPU of the web
process, as one JSON object on the last line.

The viewers run in ``--client-procs`` processes of their own (each an event loop), so that one
client process decoding 1,000 sockets' messages is not what the spread measures; receive times are
``time.monotonic()``, one clock for every process on Linux. The riders run in the main process.

Without ``--url`` it starts its own stack (``manage.py runstack`` with SIMULATE=0 on a free port and a
temporary ALLEYCAT_VAR_DIR) and stops it at the end. With ``--url`` give the stack's ``--var-dir``
(riders' accounts and sessions are written to its database; Redis is its embedded socket)::

    python bench/bench_viewers.py --viewers 1000 --riders 300 --simulate 700 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import psutil  # noqa: E402
import redis  # noqa: E402
import websockets  # noqa: E402

from bench._common import free_port, wait_http  # noqa: E402

RIDER_ID_BASE = 900_000
# Viewers keep listening this long after the window: a version first received inside it counts as
# missed by a viewer only if that viewer has not received it by then (spreads of several seconds
# were seen under full load, which a 2 s grace counted as losses).
LISTEN_AFTER_WINDOW_S = 10.0


AWS_PORT = {"port": 4566}


def stack_env(var_dir: Path, port: int) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ALLEYCAT_", "REDIS_URL", "AWS_ENDPOINT"))
    }
    env.update(
        ALLEYCAT_AWS_PORT=str(AWS_PORT["port"]),
        DJANGO_DEBUG="1",
        DJANGO_SETTINGS_MODULE="alleycat_site.settings",
        ALLEYCAT_VAR_DIR=str(var_dir),
        ALLEYCAT_PORT=str(port),
        SIMULATE="0",
        PYTHONUNBUFFERED="1",
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


def start_stack(var_dir: Path, port: int) -> subprocess.Popen:
    env = stack_env(var_dir, port)
    python = sys.executable
    for command in (["migrate", "--noinput"], ["seed_demo"]):
        subprocess.run([python, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)
    log = open(var_dir / "stack.log", "w")  # noqa: SIM115 - lives as long as the stack
    stack = subprocess.Popen(
        [python, "manage.py", "runstack"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_http(f"http://127.0.0.1:{port}/healthz", timeout=180)
    return stack


def stop_stack(stack: subprocess.Popen) -> None:
    stack.send_signal(signal.SIGINT)
    try:
        stack.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(stack.pid, signal.SIGKILL)
        stack.wait()


def prepare(var_dir: Path, port: int, riders: int, class_id: int | None) -> dict:
    """Rider accounts with sessions, the class and its current race (the stack's own database)."""
    os.environ.update({k: v for k, v in stack_env(var_dir, port).items() if k.startswith(("DJANGO_", "ALLEYCAT_"))})
    import django

    django.setup()
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    from races.models import RaceClass, Racer
    from races.selectors import race_current_for_class

    race_class = RaceClass.objects.get(pk=class_id) if class_id else RaceClass.objects.order_by("pk").first()
    race = race_current_for_class(class_id=race_class.pk)
    if race is None:
        raise SystemExit(f"class {race_class.pk} has no current race")
    users = get_user_model().objects
    sessions = []
    for i in range(1, riders + 1):
        user, _ = users.get_or_create(username=f"bench-rider-{i}")
        racer, _ = Racer.objects.get_or_create(racer_id=RIDER_ID_BASE + i, defaults={"name": f"Bench Rider {i}"})
        if racer.user_id != user.pk:
            racer.user = user
            racer.save(update_fields=["user"])
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.save()
        sessions.append((racer.racer_id, store.session_key))
    seconds_left = race.ends_at.timestamp() - time.time()
    return {
        "class_id": race_class.pk,
        "race_id": race.pk,
        "sessions": sessions,
        "seconds_left": seconds_left,
        "ends_at": race.ends_at.timestamp(),
    }


@dataclass
class Results:
    failures: list[str] = field(default_factory=list)
    connected: int = 0
    snapshots: int = 0
    closed_early: int = 0
    # (race_id, version) -> receive times (monotonic) per viewer
    versions: dict[tuple[int, int], dict[int, float]] = field(default_factory=dict)
    first_version: dict[int, tuple[int, int]] = field(default_factory=dict)
    acks: list[tuple[float, float]] = field(default_factory=list)  # (sent at, latency)
    ride_errors: dict[str, int] = field(default_factory=dict)
    readings: int = 0
    cpu_s: float = 0.0
    acked: list[tuple[int, int, int]] = field(default_factory=list)  # (racer, second, output in 1/10,000)
    finals: int = 0


def viewer_worker(jobs: list[tuple[int, str, float]], stop_at: float) -> Results:
    """One client process: each viewer connects at its (monotonic) time and listens until ``stop_at``."""

    async def main() -> Results:
        results = Results()
        stop = asyncio.Event()
        tasks = [
            asyncio.ensure_future(viewer(index, url, max(0.0, at - time.monotonic()), stop, results))
            for index, url, at in jobs
        ]
        await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        return results

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    results = asyncio.run(main())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    results.cpu_s = usage.ru_utime + usage.ru_stime
    return results


async def viewer(index: int, url: str, delay: float, stop: asyncio.Event, results: Results) -> None:
    await asyncio.sleep(delay)
    try:
        ws = await websockets.connect(url, origin="http://127.0.0.1", open_timeout=60, max_size=None)
    except Exception as exc:  # noqa: BLE001 - every failure is a handshake failure to report
        results.failures.append(type(exc).__name__ + ": " + str(exc)[:120])
        return
    results.connected += 1
    try:
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            now = time.monotonic()
            message = orjson.loads(raw)
            kind = message.get("type")
            if kind == "snapshot":
                results.snapshots += 1
            if kind in ("snapshot", "standings") and message.get("race_id") is not None:
                key = (message["race_id"], message["version"])
                results.versions.setdefault(key, {})[index] = now
                results.first_version.setdefault(index, key)
    except websockets.ConnectionClosed:
        results.closed_early += 1
    finally:
        await ws.close()


async def rider(
    url: str,
    session: str,
    racer_id: int,
    class_id: int,
    delay: float,
    stop: asyncio.Event,
    results: Results,
    finish: bool = False,
):
    await asyncio.sleep(delay)
    try:
        ws = await websockets.connect(
            url, origin="http://127.0.0.1", open_timeout=60, additional_headers={"Cookie": f"sessionid={session}"}
        )
    except Exception as exc:  # noqa: BLE001
        results.failures.append("rider " + type(exc).__name__ + ": " + str(exc)[:120])
        return
    rng = random.Random(racer_id)
    next_at = time.monotonic()
    try:
        while not stop.is_set():
            reading = {
                "event": "update",
                "racerId": racer_id,
                "classId": class_id,
                "cadence": rng.randint(70, 110),
                "resistance": rng.randint(30, 60),
            }
            sent = time.monotonic()
            await ws.send(json.dumps(reading))
            reply = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
            results.readings += 1
            if reply.get("type") == "ack":
                results.acks.append((sent, time.monotonic() - sent))
                results.acked.append((racer_id, reply["second"], round(reply["output"] * 10_000)))
            else:
                code = reply.get("code", "?")
                results.ride_errors[code] = results.ride_errors.get(code, 0) + 1
            next_at = max(next_at + 1.0, time.monotonic())  # never a burst to catch up (the rate limit)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        if finish:  # the rider stops riding: a "final" reading, so the results list them as finished
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await ws.send(json.dumps(reading | {"event": "final"}))
            reply = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
            if reply.get("type") == "ack":
                results.acked.append((racer_id, reply["second"], round(reply["output"] * 10_000)))
                results.finals += 1
    except (websockets.ConnectionClosed, TimeoutError) as exc:
        results.failures.append("rider lost: " + type(exc).__name__)
    finally:
        await ws.close()


def redis_counters(client: redis.Redis) -> dict[str, int]:
    stats = client.info("stats")
    commands = client.info("commandstats")
    counters = {"net_in": stats["total_net_input_bytes"], "net_out": stats["total_net_output_bytes"]}
    for name in ("publish", "set", "get", "evalsha", "subscribe", "unsubscribe"):
        counters[name] = commands.get(f"cmdstat_{name}", {}).get("calls", 0)
    return counters


def web_process(port: int) -> psutil.Process | None:
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if any("daphne" in part for part in cmdline) and str(port) in cmdline:
            return process
    return None


def process_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds so far of every process on the machine, by pid, with a short name."""
    found = {}
    for process in psutil.process_iter(["cmdline", "cpu_times"]):
        cmdline, times = process.info["cmdline"], process.info["cpu_times"]
        if not cmdline or times is None:
            continue
        found[process.pid] = (_short_name(process, cmdline), times.user + times.system)
    return found


def _short_name(process: psutil.Process, cmdline: list[str]) -> str:
    if any("multiprocessing" in word for word in cmdline):  # a spawned worker: named after its parent
        try:
            parent = process.parent()
            return "worker of " + _short_name(parent, parent.cmdline()) if parent else "worker"
        except psutil.Error:
            return "worker"
    words = [w for w in cmdline if not w.startswith("-") and "python" not in w]
    return " ".join(Path(w).name if "/" in w else w for w in words[:3])[:60]


def cpu_shares(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], wall: float) -> dict:
    """Percent of one CPU per process name over the window (processes of one name summed)."""
    shares: dict[str, float] = {}
    for pid, (name, cpu) in after.items():
        used = cpu - before.get(pid, (name, 0.0))[1]
        shares[name] = shares.get(name, 0.0) + 100 * used / wall
    top = sorted(shares.items(), key=lambda item: -item[1])[:10]
    return {name: round(share, 1) for name, share in top if share >= 1}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


results_by_run: dict[str, Results] = {}


def check_results(http: str, race_id: int, ends_at: float, acked: list[tuple[int, int, int]], settle: float) -> dict:
    """Every acknowledged reading counted exactly once: each rider's result is the sum over its distinct seconds.

    Polls ``/api/races/<id>/results/`` from the race's end until every rider is listed with that score
    (or ``settle`` seconds pass). A second acknowledged twice with different outputs (two readings in
    one clock second) may count either: those riders are compared against every such choice.
    """
    seconds: dict[int, dict[int, set[int]]] = {}
    for racer, second, output in acked:
        seconds.setdefault(racer, {}).setdefault(second, set()).add(output)
    expected: dict[int, set[int]] = {}
    for racer, by_second in seconds.items():
        totals = {0}
        for outputs in by_second.values():
            totals = {total + output for total in totals for output in outputs}
        expected[racer] = totals
    time.sleep(max(0.0, ends_at - time.time()))
    deadline = time.time() + settle
    got: dict[int, dict] = {}
    while True:
        got = {}
        url: str | None = f"{http}/api/races/{race_id}/results/?limit=1000"
        while url:
            with urllib.request.urlopen(url, timeout=30) as response:
                page = json.load(response)
            got.update({row["racer_id"]: row for row in page["results"] if row["racer_id"] in expected})
            url = page.get("next")
        exact = [r for r, row in got.items() if round(row["score"] * 10_000) in expected[r]]
        if len(exact) == len(expected) or time.time() >= deadline:
            break
        time.sleep(2)
    wrong = [r for r, row in got.items() if round(row["score"] * 10_000) not in expected[r]]
    return {
        "riders_checked": len(expected),
        "riders_exact": len(exact),
        "riders_missing": len(expected) - len(got),
        "riders_wrong": len(wrong),
        "riders_finished": sum(1 for row in got.values() if row.get("status") == "finished"),
        "acked_readings": len(acked),
        "distinct_seconds": sum(len(by_second) for by_second in seconds.values()),
        "results_complete_after_end_s": round(time.time() - ends_at, 1),
    }


async def run(args, setup: dict, base: str, redis_client: redis.Redis, web: psutil.Process | None) -> dict:
    results = Results()
    stop = asyncio.Event()
    class_id, race_id = setup["class_id"], setup["race_id"]
    tasks = []
    for i, (racer_id, session) in enumerate(setup["sessions"]):
        delay = i / max(1, len(setup["sessions"]))  # spread over one second
        tasks.append(
            asyncio.ensure_future(
                rider(f"{base}/ws/ride/", session, racer_id, class_id, delay, stop, results, args.check_results)
            )
        )
    # Viewers in their own processes: connect over the ramp from 4 s on (the riders' standings flow by
    # then), listen LISTEN_AFTER_WINDOW_S after the window so that versions first seen in it reach everyone.
    start = time.monotonic() + 4
    window_start = start + args.ramp + 2
    window_end = window_start + args.duration
    half = args.viewers // 2
    jobs: list[list[tuple[int, str, float]]] = [[] for _ in range(args.client_procs)]
    for i in range(args.viewers):
        racer = RIDER_ID_BASE + 1 + (i % max(1, args.riders))
        path = (
            f"/ws/races/{race_id}/?racer={racer}"
            if i < half or args.viewers == 1
            else f"/ws/classes/{class_id}/?racer={racer}"
        )
        jobs[i % args.client_procs].append((i, base + path, start + args.ramp * i / max(1, args.viewers)))
    loop = asyncio.get_running_loop()
    with concurrent.futures.ProcessPoolExecutor(
        args.client_procs, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        workers = [
            loop.run_in_executor(pool, viewer_worker, chunk, window_end + LISTEN_AFTER_WINDOW_S)
            for chunk in jobs
            if chunk
        ]
        await asyncio.sleep(max(0.0, window_start - time.monotonic()))
        before = redis_counters(redis_client)
        cpu_before = web.cpu_times() if web else None
        machine_before = process_cpu()
        await asyncio.sleep(max(0.0, window_end - time.monotonic()))
        after = redis_counters(redis_client)
        cpu_after = web.cpu_times() if web else None
        machine_after = process_cpu()
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        client_cpu = 0.0
        for part in await asyncio.gather(*workers):
            results.failures.extend(part.failures)
            results.connected += part.connected
            results.snapshots += part.snapshots
            results.closed_early += part.closed_early
            for key, times in part.versions.items():
                results.versions.setdefault(key, {}).update(times)
            results.first_version.update(part.first_version)
            client_cpu += part.cpu_s

    # Versions first received inside the window; spread over the viewers that got it.
    in_window = {
        key: times for key, times in results.versions.items() if window_start <= min(times.values()) <= window_end
    }
    spreads = [max(t.values()) - min(t.values()) for t in in_window.values() if len(t) > 1]
    # A viewer misses a version if it was connected (had its first message) before the version and never got it.
    missed = 0
    for key, times in in_window.items():
        for index, first in results.first_version.items():
            if first[0] == key[0] and first[1] < key[1] and index not in times:
                missed += 1
    changes = len(in_window)
    acks = [latency for sent, latency in results.acks if window_start <= sent <= window_end]
    delta = {name: after[name] - before[name] for name in after}
    wall = window_end - window_start
    cpu = None
    if cpu_before and cpu_after:
        cpu = round(100 * ((cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)) / wall, 1)
    results_by_run["results"] = results
    return {
        "viewers": args.viewers,
        "riders": args.riders,
        "simulated_racers": args.simulate,
        "handshake_failures": len([f for f in results.failures if not f.startswith("rider")]),
        "rider_failures": len([f for f in results.failures if f.startswith("rider")]),
        "failure_samples": sorted(set(results.failures))[:5],
        "viewers_connected": results.connected,
        "snapshots": results.snapshots,
        "closed_early": results.closed_early,
        "standings_changes_in_window": changes,
        "standings_versions_seen": len(results.versions),
        "missed_versions": missed,
        "spread_p50_s": round(percentile(spreads, 0.5) or 0, 3),
        "spread_p95_s": round(percentile(spreads, 0.95) or 0, 3),
        "ride_readings": results.readings,
        "ride_acks_in_window": len(acks),
        "ride_ack_p50_s": round(percentile(acks, 0.5) or 0, 3),
        "ride_ack_p95_s": round(percentile(acks, 0.95) or 0, 3),
        "ride_ack_max_s": round(max(acks, default=0), 3),
        "ride_errors": results.ride_errors,
        "redis_in_bytes_per_change": round(delta["net_in"] / changes) if changes else None,
        "redis_out_bytes_per_change": round(delta["net_out"] / changes) if changes else None,
        "redis_commands_in_window": {k: v for k, v in delta.items() if not k.startswith("net_")},
        "web_cpu_percent": cpu,
        "viewer_client_cpu_s": round(client_cpu, 1),
        "cpu_percent_by_process": cpu_shares(machine_before, machine_after, wall),
        "load_average_1m": round(os.getloadavg()[0], 1),
        "client_procs": args.client_procs,
        "window_s": round(wall, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running stack, e.g. http://127.0.0.1:8100 (default: start one)")
    parser.add_argument("--var-dir", help="the running stack's ALLEYCAT_VAR_DIR (with --url)")
    parser.add_argument("--aws-port", type=int, default=4566, help="the running stack's ALLEYCAT_AWS_PORT (with --url)")
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--riders", type=int, default=100)
    parser.add_argument("--simulate", type=int, default=0, help="racers added by the demo simulator")
    parser.add_argument("--class-id", type=int)
    parser.add_argument("--ramp", type=float, default=10.0, help="seconds over which the viewers connect")
    parser.add_argument("--duration", type=float, default=30.0, help="measuring window (s)")
    parser.add_argument("--client-procs", type=int, default=2, help="processes the viewers are spread over")
    parser.add_argument(
        "--check-results",
        action="store_true",
        help="riders end with a final reading; after the race, check each rider's result against its acks",
    )
    parser.add_argument("--settle", type=float, default=180.0, help="seconds after the race's end to wait for results")
    args = parser.parse_args()

    stack = None
    temp = None
    if args.url:
        if not args.var_dir:
            parser.error("--url needs --var-dir")
        var_dir, port = Path(args.var_dir), int(args.url.rsplit(":", 1)[1].strip("/"))
        AWS_PORT["port"] = args.aws_port
    else:
        temp = tempfile.TemporaryDirectory(prefix="bench-viewers-")
        var_dir, port = Path(temp.name), free_port()
        AWS_PORT["port"] = free_port()  # never the default 4566 of someone's `make run`
        print(f"starting a stack on port {port} in {var_dir}", file=sys.stderr)
        stack = start_stack(var_dir, port)
    simulator = None
    try:
        setup = prepare(var_dir, port, args.riders, args.class_id)
        needed = args.ramp + args.duration + 10
        if setup["seconds_left"] < needed:
            print(
                f"waiting {setup['seconds_left']:.0f} s for the next race (the run needs {needed:.0f} s)",
                file=sys.stderr,
            )
            time.sleep(setup["seconds_left"] + 2)
            setup = prepare(var_dir, port, 0, setup["class_id"]) | {"sessions": setup["sessions"]}
        if args.simulate:
            env = stack_env(var_dir, port)
            simulator = subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "simulate",
                    "--racers",
                    str(args.simulate),
                    "--class",
                    str(setup["class_id"]),
                    "--race",
                    str(setup["race_id"]),
                    "--no-progress",
                ],
                cwd=ROOT,
                env={
                    **env,
                    "AWS_ENDPOINT_URL": f"http://127.0.0.1:{AWS_PORT['port']}",
                    "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing",
                },
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                # the bikes, as the stack's own simulator (ALLEYCAT_STANDIN_NICE, default 0)
                preexec_fn=lambda: os.nice(int(os.environ.get("ALLEYCAT_STANDIN_NICE", "0"))),  # noqa: PLW1509
            )
        redis_client = redis.Redis(unix_socket_path=str(var_dir / "redis" / "redis.sock"))
        web = web_process(port)
        result = asyncio.run(run(args, setup, f"ws://127.0.0.1:{port}", redis_client, web))
        if args.check_results:
            ridden = results_by_run["results"]
            result["results_check"] = check_results(
                f"http://127.0.0.1:{port}", setup["race_id"], setup["ends_at"], ridden.acked, args.settle
            )
            result["results_check"]["finals_acked"] = ridden.finals
    finally:
        if simulator is not None:
            simulator.terminate()
            simulator.wait(timeout=30)
        if stack is not None:
            stop_stack(stack)
        if temp is not None:
            temp.cleanup()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
