"""The runner: every event source of the template in its own thread, and the status reporter."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import boto3
import botocore.parsers
import botocore.session
import orjson

from processors.local import events
from processors.local.checkpoints import write_json_atomically
from processors.local.runner.config import CLIENT_CONFIG, float_env
from processors.local.runner.delivery import DeadLetters
from processors.local.runner.invoke import Handler, Invoke, Invoker
from processors.local.runner.sources.base import SourceThread
from processors.local.runner.sources.dynamodb import DynamoDBMappingSource, DynamoDBStream
from processors.local.runner.sources.firehose import FirehoseSource
from processors.local.runner.sources.kinesis import KinesisMappingSource, KinesisStream
from processors.local.runner.sources.s3 import S3NotificationSource
from processors.local.runner.stats import status_file_path
from processors.local.sandbox import Sandbox
from processors.local.template import LocalSettings

logger = logging.getLogger("processors.local.runner")


class _KinesisRecordsAsSent(botocore.parsers.JSONParser):
    """botocore's JSON parser, except that a Kinesis GetRecords answer is taken as the JSON it is.

    With timestamps and blobs left as sent (``_wire_values``), walking the GetRecords shape only
    copies each record's four members into a new dict: ~6 µs a record, a sixth of the runner's CPU
    when it reads 10,000 records a second twice (the aggregator's mapping and Firehose). Here the
    body is read with orjson and the answer keeps the members the model names (unknown keys and
    nulls are dropped, as botocore drops them); records are taken as written (the endpoint writes
    the model's members, ``speedups._kinesis_json_answers``). Errors and every other answer go
    through botocore's parser.
    """

    def _handle_json_body(self, raw_body: Any, shape: Any) -> Any:
        if shape is not None and shape.name == "GetRecordsOutput" and raw_body:
            records = shape.members.get("Records")
            if records is not None and "PartitionKey" in getattr(records.member, "members", {}):
                try:
                    body = orjson.loads(raw_body)
                except orjson.JSONDecodeError:
                    body = None
                if isinstance(body, dict):
                    return {name: value for name, value in body.items() if name in shape.members and value is not None}
        return super()._handle_json_body(raw_body, shape)


class _WireParsers(botocore.parsers.ResponseParserFactory):
    def create_parser(self, protocol_name: str) -> Any:
        if protocol_name == "json":
            return _KinesisRecordsAsSent(**self._defaults)
        return super().create_parser(protocol_name)


def _wire_values(session: boto3.Session) -> boto3.Session:
    """The session's credentials and region, with response timestamps and blobs left as the wire has them.

    The stream readers only turn a record's arrival time into epoch seconds (``events.epoch_seconds``),
    and the JSON protocols of Kinesis and DynamoDB Streams send epoch seconds already; botocore's
    default parser makes a timezone-aware datetime of every record's timestamp with dateutil, which
    was a sixth of the runner's CPU reading a 10,000-racer race (py-spy). Likewise a record's data
    (and a binary attribute of a table-stream image) arrives as base64 text, which is what a Lambda
    event carries: decoding it to bytes only to encode it again for the event was ~8 % of the runner
    (``events.base64_text`` / ``events.data_bytes`` take either form). botocore's own knobs: the
    session's ``response_parser_factory`` component and its ``set_parser_defaults(timestamp_parser=...,
    blob_parser=...)``, on a session of its own so that the S3 and SQS clients keep their datetimes
    and bytes; Kinesis GetRecords answers are read as sent (``_KinesisRecordsAsSent``).
    """
    core = botocore.session.get_session()
    parsers = _WireParsers()
    parsers.set_parser_defaults(timestamp_parser=lambda value: value, blob_parser=lambda value: value)
    core.register_component("response_parser_factory", parsers)
    credentials = session.get_credentials()
    frozen = credentials.get_frozen_credentials() if credentials else None
    return boto3.Session(
        botocore_session=core,
        region_name=session.region_name,
        aws_access_key_id=frozen.access_key if frozen else None,
        aws_secret_access_key=frozen.secret_key if frozen else None,
        aws_session_token=frozen.token if frozen else None,
    )


class Runner:
    """All event sources of the template, their threads and the status reporter."""

    def __init__(
        self,
        settings: LocalSettings,
        *,
        resources: Any,
        handlers: Mapping[str, Handler] | None = None,
        session: boto3.Session | None = None,
    ) -> None:
        self.settings = settings
        self.resources = resources
        self.stop = threading.Event()
        session = session or boto3.Session()
        self.region = settings.region
        readers = _wire_values(session)
        self.kinesis = readers.client("kinesis", config=CLIENT_CONFIG)
        self.streams = readers.client("dynamodbstreams", config=CLIENT_CONFIG)
        self.s3 = session.client("s3", config=CLIENT_CONFIG)
        self.sqs = session.client("sqs", config=CLIENT_CONFIG)
        self.dead_letters = DeadLetters(self.sqs)
        self.handlers = dict(handlers or {})
        self.sandboxes: list[Sandbox] = []
        self.sources: list[SourceThread] = []
        self.report_seconds = float_env("ALLEYCAT_RUNNER_REPORT_SECONDS", 5.0)
        self.status_path = status_file_path()
        self.started_at = time.time()
        self._dlq_messages: int | None = None
        self._build()

    def _handler(self, function: str) -> Invoke:
        settings = self.settings.function(function)
        if function in self.handlers:
            return Invoker(settings, self.handlers[function], self.region)
        sandbox = Sandbox(
            function=function,
            module=settings.module,
            attribute=settings.attribute,
            region=self.region,
            memory_mb=settings.memory_mb,
            timeout=settings.timeout_seconds,
        )
        self.sandboxes.append(sandbox)
        return sandbox

    def _build(self) -> None:
        kinesis_streams: dict[str, KinesisStream] = {}

        def kinesis_stream(name: str) -> KinesisStream:
            if name not in kinesis_streams:
                kinesis_streams[name] = KinesisStream(self.kinesis, name)
            return kinesis_streams[name]

        for mapping in self.settings.event_sources():
            if mapping.kind not in ("kinesis", "dynamodb", "s3"):
                continue  # the transformer's "firehose" trigger is the Firehose source below
            invoker = self._handler(mapping.function)
            source: SourceThread
            if mapping.kind == "kinesis":
                source = KinesisMappingSource(
                    mapping=mapping,
                    stream=kinesis_stream(mapping.source),
                    invoker=invoker,
                    dead_letters=self.dead_letters,
                    region=self.region,
                    stop=self.stop,
                )
            elif mapping.kind == "dynamodb":
                source = DynamoDBMappingSource(
                    mapping=mapping,
                    stream=DynamoDBStream(self.streams, self.resources.table_stream_arn),
                    invoker=invoker,
                    dead_letters=self.dead_letters,
                    region=self.region,
                    stop=self.stop,
                )
            else:
                source = S3NotificationSource(
                    mapping=mapping,
                    s3=self.s3,
                    invoker=invoker,
                    dead_letters=self.dead_letters,
                    region=self.region,
                    stop=self.stop,
                )
            self.sources.append(source)
        firehose = self.settings.firehose
        self.sources.append(
            FirehoseSource(
                settings=self.settings,
                stream=kinesis_stream(firehose.source_stream),
                s3=self.s3,
                invoker=self._handler(firehose.transformer) if firehose.transformer else None,
                region=self.region,
                stop=self.stop,
            )
        )

    def start(self) -> None:
        for source in self.sources:
            source.start()
        logger.info("runner started: %s", ", ".join(source.stats.name for source in self.sources))

    def status(self) -> dict[str, Any]:
        return {
            "updatedAt": events.iso_ms(time.time()),
            "startedAt": events.iso_ms(self.started_at),
            "pid": os.getpid(),
            "running": not self.stop.is_set(),
            "endpoint": os.environ.get("AWS_ENDPOINT_URL") or "AWS",
            "sources": [source.stats.snapshot() for source in self.sources],
            "functions": {sandbox.function: {"pid": sandbox.pid} for sandbox in self.sandboxes},
            "deadLetterQueue": {
                "name": self.settings.dead_letter_queue.name,
                "approximateMessages": self._dlq_messages,
            },
        }

    def report(self) -> dict[str, Any]:
        try:
            url = self.dead_letters.url(self.settings.dead_letter_queue.name)
            attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
            self._dlq_messages = int(attributes["Attributes"]["ApproximateNumberOfMessages"])
        except Exception as exc:  # the figures are best effort; the pipeline goes on
            logger.debug("dead-letter queue size unavailable: %s", exc)
        status = self.status()
        write_json_atomically(self.status_path, status)
        parts = [
            f"{s['function'] or s['kind']}[{s['kind']}] lag={s['lagMs']}ms {s['recordsPerSecond']}/s "
            f"total={s['records']} err={s['errors']} dlq={s['deadLetters']}"
            for s in status["sources"]
        ]
        logger.info("%s | dlq messages=%s", " | ".join(parts), self._dlq_messages)
        return status

    def run_until_stopped(self) -> None:
        self.start()
        try:
            while not self.stop.wait(self.report_seconds):
                self.report()
        finally:
            self.stop.set()
            for source in self.sources:
                source.join(timeout=30)
            for sandbox in self.sandboxes:
                sandbox.close()
            status = self.report()
            status["running"] = False
            write_json_atomically(self.status_path, status)
            logger.info("runner stopped")


def configure_environment(settings: LocalSettings, resources: Any, environ: dict = os.environ) -> None:  # type: ignore[assignment]
    """Give this process the functions' environment (the template's variables; values already set win)."""
    for function in settings.functions:
        for name, value in settings.environment(function, resources).items():
            if name in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_LOG_LEVEL"):
                continue
            environ.setdefault(name, value)
    environ.setdefault("POWERTOOLS_LOG_LEVEL", os.environ.get("ALLEYCAT_HANDLER_LOG_LEVEL") or "WARNING")
