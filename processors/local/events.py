"""Lambda event and destination shapes, byte for byte as AWS builds them.

The local runner turns what its stream readers return back into the JSON that Lambda hands a
function: base64 text for Kinesis data and DynamoDB binary attributes (the readers keep them as
the wire's base64 text; bytes from boto3's default parser are encoded), epoch numbers for
timestamps, ISO 8601 for tumbling windows. Shapes follow the AWS Lambda developer guide
("Using Lambda with Kinesis / DynamoDB / S3 / Firehose", "Tumbling windows", "On-failure
destinations") and the samples in ``tests/events/``.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

ACCOUNT_ID = "123456789012"


def base64_text(data: bytes | bytearray | str) -> str:
    """Record data as events carry it: base64 text (already so when it is a ``str``, as on the wire)."""
    return data if isinstance(data, str) else base64.b64encode(data).decode()


def data_bytes(data: bytes | bytearray | str) -> bytes:
    """Record data as delivered: the bytes (decoded when it is the wire's base64 text)."""
    return base64.b64decode(data) if isinstance(data, str) else bytes(data)


def data_size(data: bytes | bytearray | str) -> int:
    """The size of record data in bytes, without decoding the wire's base64 text."""
    if isinstance(data, str):
        return len(data) * 3 // 4 - data.count("=", -2)
    return len(data)


def base64_size(data: bytes | bytearray | str) -> int:
    """The length of record data as base64 text, without encoding bytes."""
    return len(data) if isinstance(data, str) else (len(data) + 2) // 3 * 4


def function_arn(region: str, function: str) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function}"


def epoch_seconds(value: datetime | float | int) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def iso_ms(epoch: float) -> str:
    """``2026-11-26T15:00:00.000Z``"""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(epoch * 1000) % 1000:03d}Z"


def iso_seconds(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class LambdaContext:
    """What Lambda passes as ``context`` (the attributes Powertools reads)."""

    function_name: str
    region: str = "us-east-1"
    memory_limit_in_mb: int = 512
    timeout_seconds: int = 60
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.invoked_function_arn = function_arn(self.region, self.function_name)
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/{self.aws_request_id}"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# --------------------------------------------------------------------------- Kinesis


def kinesis_record(raw: Mapping[str, Any], *, shard_id: str, stream_arn: str, region: str, function: str) -> dict:
    """One record of a Kinesis event from a ``GetRecords`` record (data: base64 text or bytes)."""
    sequence = raw["SequenceNumber"]
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": raw["PartitionKey"],
            "sequenceNumber": sequence,
            "data": base64_text(raw["Data"]),
            "approximateArrivalTimestamp": round(epoch_seconds(raw["ApproximateArrivalTimestamp"]), 3),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT_ID}:role/{function}-role",
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    }


def tumbling_window_event(
    records: Sequence[dict],
    *,
    window_start: float,
    window_end: float,
    state: Mapping[str, Any],
    shard_id: str,
    source_arn: str,
    final: bool,
) -> dict:
    return {
        "Records": list(records),
        "window": {"start": iso_seconds(window_start), "end": iso_seconds(window_end)},
        "state": dict(state),
        "shardId": shard_id,
        "eventSourceARN": source_arn,
        "isFinalInvokeForWindow": final,
        "isWindowTerminatedEarly": False,
    }


# --------------------------------------------------------------------------- DynamoDB Streams


def _lambda_attribute(value: Mapping[str, Any]) -> dict:
    """A DynamoDB JSON attribute as Lambda sends it: binary as base64 text."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64encode(inner).decode() if isinstance(inner, bytes | bytearray) else inner}
    if kind == "BS":
        return {
            "BS": [base64.b64encode(item).decode() if isinstance(item, bytes | bytearray) else item for item in inner]
        }
    if kind == "M":
        return {"M": {key: _lambda_attribute(item) for key, item in inner.items()}}
    if kind == "L":
        return {"L": [_lambda_attribute(item) for item in inner]}
    return {kind: inner}


def lambda_image(image: Mapping[str, Any]) -> dict:
    return {name: _lambda_attribute(value) for name, value in image.items()}


def dynamodb_record(raw: Mapping[str, Any], *, stream_arn: str, region: str) -> dict:
    """One record of a DynamoDB Streams event from a ``GetRecords`` record of boto3."""
    source = raw["dynamodb"]
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": int(epoch_seconds(source["ApproximateCreationDateTime"])),
        "Keys": lambda_image(source["Keys"]),
    }
    if "NewImage" in source:
        dynamodb["NewImage"] = lambda_image(source["NewImage"])
    if "OldImage" in source:
        dynamodb["OldImage"] = lambda_image(source["OldImage"])
    dynamodb["SequenceNumber"] = source["SequenceNumber"]
    dynamodb["SizeBytes"] = source.get("SizeBytes", 0)
    dynamodb["StreamViewType"] = source.get("StreamViewType", "NEW_AND_OLD_IMAGES")
    return {
        "eventID": raw.get("eventID") or uuid.uuid4().hex,
        "eventName": raw["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": raw.get("awsRegion") or region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }


# --------------------------------------------------------------------------- S3


def s3_put_event(*, bucket: str, key: str, size: int, etag: str, region: str, configuration_id: str) -> dict:
    """An S3 ``ObjectCreated:Put`` notification for one object (keys are URL-encoded, as S3 sends them)."""
    now = time.time()
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": iso_ms(now),
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:LOCALFIREHOSE"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {
                    "x-amz-request-id": uuid.uuid4().hex[:16].upper(),
                    "x-amz-id-2": base64.b64encode(uuid.uuid4().bytes).decode(),
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": configuration_id,
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "LOCAL"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        "key": quote_plus(key, safe="/"),
                        "size": size,
                        "eTag": etag.strip('"'),
                        "sequencer": f"{int(now * 1_000_000):016X}",
                    },
                },
            }
        ]
    }


# --------------------------------------------------------------------------- Firehose


def firehose_event(
    records: Sequence[Mapping[str, Any]], *, delivery_stream_arn: str, source_stream_arn: str, region: str
) -> dict:
    """Firehose data-transformation event; ``records`` are (recordId, raw Kinesis record, shard id) dicts."""
    return {
        "invocationId": str(uuid.uuid4()),
        "deliveryStreamArn": delivery_stream_arn,
        "sourceKinesisStreamArn": source_stream_arn,
        "region": region,
        "records": [
            {
                "recordId": record["recordId"],
                "approximateArrivalTimestamp": int(epoch_seconds(record["raw"]["ApproximateArrivalTimestamp"]) * 1000),
                "data": base64_text(record["raw"]["Data"]),
                "kinesisRecordMetadata": {
                    "sequenceNumber": record["raw"]["SequenceNumber"],
                    "subsequenceNumber": 0,
                    "partitionKey": record["raw"]["PartitionKey"],
                    "shardId": record["shardId"],
                    "approximateArrivalTimestamp": int(
                        epoch_seconds(record["raw"]["ApproximateArrivalTimestamp"]) * 1000
                    ),
                },
            }
            for record in records
        ],
    }


def firehose_record_id(shard_id: str, sequence_number: str) -> str:
    """Firehose record ids are opaque; ours are stable per Kinesis record (shard + sequence number)."""
    return base64.urlsafe_b64encode(f"{shard_id}:{sequence_number}".encode()).decode()


def firehose_error_record(
    *, raw_data: bytes | str, arrival_ms: int, error_code: str, message: str, lambda_arn: str
) -> dict:
    """One line of a processing-failed object, as Firehose writes it."""
    return {
        "attemptsMade": 1,
        "arrivalTimestamp": arrival_ms,
        "errorCode": error_code,
        "errorMessage": message,
        "attemptEndingTimestamp": int(time.time() * 1000),
        "rawData": base64_text(raw_data),
        "lambdaArn": lambda_arn,
    }


# --------------------------------------------------------------------------- on-failure destinations


def stream_failure_record(
    *,
    kind: str,
    region: str,
    function: str,
    shard_id: str,
    stream_arn: str,
    first: Mapping[str, Any],
    last: Mapping[str, Any],
    batch_size: int,
    invoke_count: int,
    condition: str,
    error: str,
) -> dict:
    """What Lambda sends to a stream mapping's on-failure destination (batch metadata, not the records)."""
    info_key = "KinesisBatchInfo" if kind == "kinesis" else "DDBStreamBatchInfo"
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn(region, function),
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": error},
        "version": "1.0",
        "timestamp": iso_ms(time.time()),
        info_key: {
            "shardId": shard_id,
            "startSequenceNumber": first["sequence"],
            "endSequenceNumber": last["sequence"],
            "approximateArrivalOfFirstRecord": iso_ms(first["arrival"]),
            "approximateArrivalOfLastRecord": iso_ms(last["arrival"]),
            "batchSize": batch_size,
            "streamArn": stream_arn,
        },
    }


def async_failure_record(
    *, region: str, function: str, event: Mapping[str, Any], invoke_count: int, error: str
) -> dict:
    """What Lambda sends to an asynchronous invocation's on-failure destination (S3 notifications)."""
    return {
        "version": "1.0",
        "timestamp": iso_ms(time.time()),
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"{function_arn(region, function)}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": dict(event),
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": error[:1000], "errorType": "Error"},
    }
