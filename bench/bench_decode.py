"""CPU time to validate, score and aggregate one 1,000-record Kinesis batch (the aggregator's hot path).

Builds a realistic batch (1,000 racers of one race, one second each, base64 JSON as Lambda
delivers it, a third without ``uuid``), then times ``fold_kinesis_records`` — base64 decode,
parse and validation (msgspec; orjson for what msgspec rejects), output, fold into the
tumbling-window state — with
``time.process_time_ns`` (CPU time of this process). Prints median and p90.

    .venv/bin/python bench/bench_decode.py [--runs 2000] [--records 1000]
"""

from __future__ import annotations

import argparse
import base64
import gc
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import msgspec
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from processors.domain.window import new_state  # noqa: E402
from processors.handlers.aggregator import fold_kinesis_records  # noqa: E402


def make_batch(records: int, second: int = 42, values: str = "decimal") -> list[dict]:
    batch = []
    for racer_id in range(records):
        body = {
            "event": "update",
            "deviceTimestamp": 1_764_172_800_000 + second * 1000 + racer_id,
            "second": second,
            "raceId": 1234,
            "name": f"Racer number {racer_id}",
            "racerId": 10_000 + racer_id,
            "classId": 3,
            "cadence": 60 + (racer_id % 90) + (0.5 if values == "decimal" else 0),
            "resistance": 20 + racer_id % 60,
        }
        if racer_id % 3:
            body["uuid"] = str(uuid.UUID(int=racer_id))
        sequence = str(49590338271490256608559692538361571095921575989136588898 + racer_id)
        batch.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": "1234",
                    "sequenceNumber": sequence,
                    "data": base64.b64encode(orjson.dumps(body)).decode(),
                    "approximateArrivalTimestamp": 1764172800.123,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{sequence}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/alleycat-aggregator",
                "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/alleycat-bikes",
            }
        )
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument(
        "--values",
        choices=("decimal", "integer"),
        default="decimal",
        help="cadence with a fraction (round() per record) or whole numbers (exact fast path)",
    )
    args = parser.parse_args()

    batch = make_batch(args.records, values=args.values)
    readings, bad = fold_kinesis_records(batch, new_state())
    assert readings == args.records and not bad, "the benchmark batch must be all valid"
    for _ in range(50):  # warm up
        fold_kinesis_records(batch, new_state())

    samples: list[int] = []
    gc.collect()  # start clean; the collector stays on, as in Lambda
    for _ in range(args.runs):
        state = new_state()
        started = time.process_time_ns()
        fold_kinesis_records(batch, state)
        samples.append(time.process_time_ns() - started)

    samples.sort()
    median = statistics.median(samples) / 1e6
    p90 = samples[int(len(samples) * 0.9) - 1] / 1e6
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"python {sys.version.split()[0]}, msgspec {msgspec.__version__}, orjson {orjson.__version__}, "
        f"{os.cpu_count()} CPUs, load {load:.2f}"
    )
    print(
        f"{args.records} records x {args.runs} runs, {args.values} values: "
        f"median {median:.3f} ms, p90 {p90:.3f} ms, min {samples[0] / 1e6:.3f} ms CPU per batch"
    )


if __name__ == "__main__":
    main()
