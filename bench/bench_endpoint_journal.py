"""What the embedded endpoint's journal costs (processors/local/endpoint/persistence.py), and its restart time.

Starts the endpoint twice on free ports (127.0.0.1), in memory and with its state under a temp dir, and
sends the same PutRecords calls (the simulator's shape: 500 bike messages a call) and UpdateItem calls to
both, alternately, so that load from other work hits both alike. Reports per-call latency (median, p95)
and records/s for each, then kills the persistent one (SIGKILL), starts it again and reports the restart
time (load + replay + snapshot) and whether every record is still there.

    .venv/bin/python bench/bench_endpoint_journal.py                # 200 calls of each kind
    .venv/bin/python bench/bench_endpoint_journal.py --calls 50
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(port: int, state: Path | None) -> tuple[subprocess.Popen, float]:
    env = {**os.environ, "ALLEYCAT_AWS_STATE_DIR": str(state) if state else ""}
    began = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "processors.local.endpoint", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1).close()
            return proc, time.monotonic() - began
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("the endpoint exited") from None
            time.sleep(0.05)


def clients(port: int):
    import boto3

    kwargs = {
        "endpoint_url": f"http://127.0.0.1:{port}",
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    return boto3.client("kinesis", **kwargs), boto3.client("dynamodb", **kwargs)


def setup(kinesis, dynamodb) -> None:
    kinesis.create_stream(StreamName="bench", ShardCount=2)
    dynamodb.create_table(
        TableName="bench",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


def records(call: int) -> list[dict]:
    return [
        {
            "Data": json.dumps(
                {"event": "update", "second": call, "raceId": 1, "racerId": racer, "cadence": 90.0, "resistance": 50.0}
            ).encode(),
            "PartitionKey": f"1:{racer}",
        }
        for racer in range(500)
    ]


def count(kinesis) -> int:
    total = 0
    for shard in kinesis.list_shards(StreamName="bench")["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName="bench", ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            total += len(response["Records"])
            if not response["Records"]:
                break
            iterator = response.get("NextShardIterator")
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="alleycat-journal-")) / "aws"
    ports = {"memory": free_port(), "journal": free_port()}
    procs = {"memory": start(ports["memory"], None)[0], "journal": start(ports["journal"], state)[0]}
    try:
        pairs = {name: clients(port) for name, port in ports.items()}
        for kinesis, dynamodb in pairs.values():
            setup(kinesis, dynamodb)
        puts: dict[str, list[float]] = {name: [] for name in ports}
        updates: dict[str, list[float]] = {name: [] for name in ports}
        for call in range(args.calls):
            batch = records(call)
            for name, (kinesis, dynamodb) in pairs.items():
                began = time.perf_counter()
                kinesis.put_records(StreamName="bench", Records=batch)
                puts[name].append(time.perf_counter() - began)
                began = time.perf_counter()
                dynamodb.update_item(
                    TableName="bench",
                    Key={"pk": {"S": f"racer#{call % 50}"}},
                    UpdateExpression="SET #s = :s",
                    ExpressionAttributeNames={"#s": "score"},
                    ExpressionAttributeValues={":s": {"N": str(call)}},
                )
                updates[name].append(time.perf_counter() - began)
        for name in ports:
            p = sorted(puts[name])
            u = sorted(updates[name])
            print(
                f"{name:>8}: PutRecords(500) median {statistics.median(p) * 1000:.1f} ms, "
                f"p95 {p[int(len(p) * 0.95)] * 1000:.1f} ms, {500 * len(p) / sum(p):,.0f} records/s; "
                f"UpdateItem median {statistics.median(u) * 1000:.2f} ms, p95 {u[int(len(u) * 0.95)] * 1000:.2f} ms"
            )
        journal = sum(path.stat().st_size for path in state.glob("journal-*.log"))
        print(f"journal: {journal / 1e6:.1f} MB for {args.calls * 501} records and {args.calls} updates")
        procs["journal"].send_signal(signal.SIGKILL)
        procs["journal"].wait()
        procs["journal"], restart = start(ports["journal"], state)
        kept = count(clients(ports["journal"])[0])
        print(f"restart after SIGKILL: {restart:.2f} s to answer; records kept {kept} of {args.calls * 500}")
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()
        shutil.rmtree(state.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
