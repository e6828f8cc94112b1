"""Count the AWS requests one race makes, through the local stack (for docs/deploy.md, "What one race costs").

Starts the embedded endpoint with a counter in front of it (every request is counted by service and
operation: the SigV4 credential scope names the service, ``X-Amz-Target`` or ``Action`` the operation,
S3 by method), the bootstrap and the runner with the template's settings (1 s tumbling window, Firehose
60 s / 1 MB), plays N racers for S seconds at 1x, waits for everything to settle (results, Firehose's
last buffer, history), and prints the requests per operation and the invocations per function.
Everything runs on 127.0.0.1 and stops at the end.

    .venv/bin/python bench/count_requests.py --racers 100 --seconds 60

Polling (Kinesis/Streams GetRecords, GetShardIterator, Describe*) is the event-source mappings' own
work: on AWS it is not billed per request (Lambda's reads of a DynamoDB stream are free; Kinesis reads
are part of the shard-hours), so it is printed apart.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._common import local_pipeline, race_identity_publish  # noqa: E402

POLLING = {
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:ListShards",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:DescribeStream",
    "dynamodb:ListStreams",
    "dynamodb:DescribeTable",
    "streams.dynamodb:GetRecords",
    "streams.dynamodb:GetShardIterator",
    "streams.dynamodb:DescribeStream",
    "streams.dynamodb:ListStreams",
}
# The local runner's own stand-ins: it lists the delivery bucket instead of receiving S3 notifications,
# and reads the dead-letter queue's depth for the staff page. On AWS neither request exists.
LOCAL_ONLY = {"s3:GET bucket?list-type", "sqs:GetQueueAttributes"}
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")


def operation(environ: dict[str, Any]) -> str:
    scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = scope.group(1) if scope else "unsigned"
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return f"{service}:{target.rsplit('.', 1)[-1]}"
    if service == "s3":
        path = environ.get("PATH_INFO", "/")
        query = environ.get("QUERY_STRING", "")
        kind = "object" if path.strip("/").count("/") >= 1 else "bucket"
        return f"s3:{environ.get('REQUEST_METHOD', 'GET')} {kind}" + (f"?{query.split('=')[0]}" if query else "")
    action = re.search(r"(?:^|&)Action=([A-Za-z]+)", environ.get("QUERY_STRING", ""))
    return f"{service}:{action.group(1) if action else environ.get('REQUEST_METHOD', '?')}"


def serve_counting(port: int, counts_path: Path) -> int:
    """The embedded endpoint (processors.local.endpoint) with a request counter; counts saved every second."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    counts: Counter[str] = Counter()
    lock = threading.Lock()
    original = DomainDispatcherApplication.__call__

    def counted(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        with lock:
            counts[operation(environ)] += 1
        return original(self, environ, start_response)

    DomainDispatcherApplication.__call__ = counted

    def save() -> None:
        while True:
            time.sleep(1.0)
            with lock:
                snapshot = dict(counts)
            tmp = counts_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(snapshot))
            tmp.replace(counts_path)

    threading.Thread(target=save, daemon=True).start()
    from processors.local.endpoint.__main__ import main as serve

    return serve([str(port)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--racers", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--settle", type=float, default=90.0, help="seconds to wait after the last message")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "COUNTS_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve_counting(int(args.serve[0]), Path(args.serve[1]))

    import boto3

    from processors.local.simulator import RaceSpec, Simulator, profiles

    def counting_endpoint(port: int, work: Path) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), "--serve", str(port), str(work / "counts.json")]

    # The template's buffering hint, 60 s (make run uses 10).
    with local_pipeline(
        prefix="alleycat-count-", firehose_buffer_seconds="60", endpoint_argv=counting_endpoint
    ) as pipeline:
        counts_path = pipeline.work / "counts.json"

        def counts() -> Counter[str]:
            time.sleep(1.5)  # the counter saves every second
            return Counter(json.loads(counts_path.read_text()))

        before = counts()
        invocations_before = {
            e["function"]: e.get("invocations", 0) for e in (pipeline.status() or {}).get("sources", [])
        }
        race = RaceSpec(race_id=int(time.time()) % 1_000_000 + 1, class_id=1, first_second=1, last_second=args.seconds)
        # The race published as the races app does: its one UpdateItem is counted too, as it is on AWS.
        race_identity_publish(
            race_id=race.race_id, class_id=race.class_id, seconds=args.seconds, settle_after_seconds=args.seconds + 30
        )
        racers = profiles((racer_id, None) for racer_id in range(1, args.racers + 1))
        # The producer's own client, counted apart: PutRecords is what bikes (or the IoT rule) send.
        started = time.monotonic()
        result = Simulator(boto3.client("kinesis"), "alleycat-bikes").play(race, racers, speed=1.0)
        print(f"played {result.sent} messages in {time.monotonic() - started:.1f}s; settling {args.settle:.0f}s")
        time.sleep(args.settle)
        during = counts() - before
        status = pipeline.status() or {}
        print(f"\nracers {args.racers}, seconds {args.seconds}, messages {result.sent}")
        print("\nrequests by operation (billed per request or per unit on AWS):")
        for name, count in sorted(during.items()):
            if name not in POLLING | LOCAL_ONLY:
                print(f"  {name:45s} {count:8d}")
        print("\nevent-source polling (not billed per request for Lambda triggers):")
        for name, count in sorted(during.items()):
            if name in POLLING:
                print(f"  {name:45s} {count:8d}")
        print("\nthe local runner's stand-ins for S3 notifications and the status page (none on AWS):")
        for name, count in sorted(during.items()):
            if name in LOCAL_ONLY:
                print(f"  {name:45s} {count:8d}")
        print("\ninvocations by function:")
        for entry in status.get("sources", []):
            done = entry.get("invocations", 0) - invocations_before.get(entry["function"], 0)
            print(f"  {entry['function']:12s} ({entry['kind']:8s}) {done:8d}   records {entry.get('records', 0)}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
