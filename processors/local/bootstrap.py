"""Create the pipeline's data stores idempotently, with the names and settings of the SAM template.

Against whatever ``AWS_ENDPOINT_URL`` points at (the embedded moto server, LocalStack, or real AWS
when unset): the Kinesis stream, the DynamoDB table with its indexes and stream, the delivery and
history buckets, and the dead-letter queue. Running it again changes nothing.

Usage::

    python -m processors.local.bootstrap [--template infra/template.yaml] [--parameter Name=Value ...]

or from code (the local runner)::

    settings = load_local_settings()
    resources = bootstrap(boto3.Session(), settings)   # or a Clients, or None for a default session
    resources.stream_arn, resources.table_stream_arn, resources.dead_letter_queue_url
    settings.environment("history", resources)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from processors.local.template import LocalSettings, ResourceRef, TemplateError, load_local_settings

logger = logging.getLogger(__name__)

_CLIENT_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30)


@dataclass(frozen=True)
class Clients:
    """The boto3 clients bootstrap needs (all made from one session, so they share endpoint and region)."""

    kinesis: Any
    dynamodb: Any
    s3: Any
    sqs: Any

    @classmethod
    def from_session(cls, session: boto3.Session | None = None) -> Clients:
        session = session or boto3.Session()
        # boto3 reads AWS_ENDPOINT_URL itself: moto, LocalStack, or real AWS when it is unset.
        return cls(
            kinesis=session.client("kinesis", config=_CLIENT_CONFIG),
            dynamodb=session.client("dynamodb", config=_CLIENT_CONFIG),
            s3=session.client("s3", config=_CLIENT_CONFIG),
            sqs=session.client("sqs", config=_CLIENT_CONFIG),
        )


@dataclass(frozen=True)
class Resources:
    """What exists after :func:`bootstrap`; ``created`` names what this run created (empty on a re-run)."""

    stream_name: str
    stream_arn: str
    table_name: str
    table_arn: str
    table_stream_arn: str
    delivery_bucket: str
    history_bucket: str
    dead_letter_queue_url: str
    dead_letter_queue_arn: str
    created: tuple[str, ...] = field(default=(), compare=False)

    def reference(self, ref: ResourceRef) -> str:
        """Value of a template ``Ref``/``GetAtt`` (see :meth:`LocalSettings.environment`)."""
        values = {
            ("BikeStream", None): self.stream_name,
            ("BikeStream", "Arn"): self.stream_arn,
            ("Table", None): self.table_name,
            ("Table", "Arn"): self.table_arn,
            ("Table", "StreamArn"): self.table_stream_arn,
            ("DeliveryBucket", None): self.delivery_bucket,
            ("DeliveryBucket", "Arn"): f"arn:aws:s3:::{self.delivery_bucket}",
            ("HistoryBucket", None): self.history_bucket,
            ("HistoryBucket", "Arn"): f"arn:aws:s3:::{self.history_bucket}",
            ("DeadLetterQueue", None): self.dead_letter_queue_url,
            ("DeadLetterQueue", "Arn"): self.dead_letter_queue_arn,
        }
        try:
            return values[(ref.logical_id, ref.attribute)]
        except KeyError:
            raise TemplateError(f"no local value for {ref}") from None


def bootstrap(
    clients: Clients | boto3.Session | None,
    settings: LocalSettings,
    *,
    timeout: float = 60.0,
) -> Resources:
    """Create (or find) the stream, table, buckets and dead-letter queue of ``settings``; wait until usable."""
    if not isinstance(clients, Clients):
        clients = Clients.from_session(clients)
    created: list[str] = []
    deadline = time.monotonic() + timeout

    stream_arn = _ensure_stream(clients.kinesis, settings, created, deadline)
    table_arn, table_stream_arn = _ensure_table(clients.dynamodb, settings, created, deadline)
    for bucket in (settings.delivery_bucket, settings.history_bucket):
        _ensure_bucket(clients.s3, bucket.name, versioned=bucket.versioned, region=settings.region, created=created)
    queue_url, queue_arn = _ensure_queue(clients.sqs, settings, created)

    resources = Resources(
        stream_name=settings.stream.name,
        stream_arn=stream_arn,
        table_name=settings.table.name,
        table_arn=table_arn,
        table_stream_arn=table_stream_arn,
        delivery_bucket=settings.delivery_bucket.name,
        history_bucket=settings.history_bucket.name,
        dead_letter_queue_url=queue_url,
        dead_letter_queue_arn=queue_arn,
        created=tuple(created),
    )
    logger.info("bootstrap done: created %s", ", ".join(created) or "nothing (all existed)")
    return resources


def _ensure_stream(kinesis: Any, settings: LocalSettings, created: list[str], deadline: float) -> str:
    name = settings.stream.name
    _create(
        kinesis.create_stream,
        f"stream:{name}",
        created,
        StreamName=name,
        ShardCount=settings.stream.shard_count,
        StreamModeDetails={"StreamMode": "PROVISIONED"},
    )
    summary = _poll(
        lambda: kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"],
        lambda summary: summary["StreamStatus"] in ("ACTIVE", "UPDATING"),
        deadline,
        f"stream {name}",
    )
    if summary.get("RetentionPeriodHours", 24) < settings.stream.retention_hours:
        kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=settings.stream.retention_hours)
    return summary["StreamARN"]


def _ensure_table(dynamodb: Any, settings: LocalSettings, created: list[str], deadline: float) -> tuple[str, str]:
    kwargs = settings.table.create_table_kwargs()
    name = settings.table.name
    _create(dynamodb.create_table, f"table:{name}", created, **kwargs)
    table = _poll(
        lambda: dynamodb.describe_table(TableName=name)["Table"],
        lambda table: (
            table["TableStatus"] == "ACTIVE"
            and all(index.get("IndexStatus", "ACTIVE") == "ACTIVE" for index in table.get("GlobalSecondaryIndexes", []))
        ),
        deadline,
        f"table {name}",
    )
    existing_indexes = {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])}
    wanted_indexes = {index["IndexName"] for index in kwargs.get("GlobalSecondaryIndexes", [])}
    if wanted_indexes - existing_indexes:
        # An older table without an index the table module now needs: fail loudly rather than half-work.
        raise TemplateError(
            f"table {name} exists without indexes {sorted(wanted_indexes - existing_indexes)}; delete it and re-run"
        )
    stream = kwargs.get("StreamSpecification")
    if stream and not table.get("LatestStreamArn"):
        dynamodb.update_table(TableName=name, StreamSpecification=stream)
        created.append(f"table-stream:{name}")
        table = dynamodb.describe_table(TableName=name)["Table"]
    return table["TableArn"], table.get("LatestStreamArn", "")


def _ensure_bucket(s3: Any, name: str, *, versioned: bool, region: str, created: list[str]) -> None:
    # HeadBucket first: in us-east-1, CreateBucket of a bucket you already own succeeds silently.
    try:
        s3.head_bucket(Bucket=name)
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
            raise
        location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        # BucketAlreadyOwnedByYou: another bootstrap created it in between.
        _create(s3.create_bucket, f"bucket:{name}", created, exists="BucketAlreadyOwnedByYou", Bucket=name, **location)
    if versioned:
        status = s3.get_bucket_versioning(Bucket=name).get("Status")
        if status != "Enabled":
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def _ensure_queue(sqs: Any, settings: LocalSettings, created: list[str]) -> tuple[str, str]:
    queue = settings.dead_letter_queue
    try:
        url = sqs.get_queue_url(QueueName=queue.name)["QueueUrl"]
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            raise
        url = sqs.create_queue(QueueName=queue.name, Attributes=dict(queue.attributes))["QueueUrl"]
        created.append(f"queue:{queue.name}")
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _create(
    call: Callable[..., Any], what: str, created: list[str], *, exists: str = "ResourceInUseException", **kwargs: Any
) -> None:
    """Call a Create API; the error code ``exists`` means the resource is already there (a re-run)."""
    try:
        call(**kwargs)
        created.append(what)
    except ClientError as error:
        if error.response["Error"]["Code"] != exists:
            raise


def _poll(describe: Callable[[], dict], ready: Callable[[dict], bool], deadline: float, what: str) -> dict:
    """``describe()`` again every 0.2 s until ``ready`` says so; TimeoutError past ``deadline``."""
    while True:
        found = describe()
        if ready(found):
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"bootstrap gave up waiting: {what} is not ready")
        time.sleep(0.2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m processors.local.bootstrap", description=__doc__.split("\n")[0])
    parser.add_argument("--template", default=None, help="SAM template (default: infra/template.yaml)")
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a template parameter (repeatable)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    parameters = dict(item.split("=", 1) for item in args.parameter)
    settings = load_local_settings(args.template, parameters=parameters)
    resources = bootstrap(None, settings)
    print(json.dumps(asdict(resources), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
