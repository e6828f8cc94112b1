"""Builders for bike messages and Lambda events (Kinesis with tumbling window, DynamoDB streams)."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from processors.domain.message import EVENT_UPDATE, Fields, Reading
from processors.domain.schedule import RaceIdentity
from processors.domain.scoring import output_of, output_units, units_to_score
from processors.domain.window import fold_fields
from processors.local import events

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"
STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/alleycat-bikes"
SHARD_ID = "shardId-000000000000"
_sequence = itertools.count(49590338271490256608559692538361571095921575989136588898)


# The factories' records arrive at 1764172800.123 (2025-11-26T16:00:00.123Z); their races start then.
RACE_START_MS = 1_764_172_800_000
ARRIVAL_S = 1764172800.123


def race_identity(
    race_id: int = 7,
    *,
    class_id: int = 3,
    starts_at_ms: int = RACE_START_MS,
    length_s: int = 3600,
    grace_s: int = 120,
    cancelled: bool = False,
) -> RaceIdentity:
    """A race as the races app publishes it (A0): by default an hour from the factories' arrival time."""
    ends_at_ms = starts_at_ms + length_s * 1000
    return RaceIdentity(
        race_id=race_id,
        class_id=class_id,
        starts_at_ms=starts_at_ms,
        ends_at_ms=ends_at_ms,
        length_s=length_s,
        settle_at_ms=ends_at_ms + grace_s * 1000,
        cancelled=cancelled,
    )


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / name).read_text())


@dataclass
class LambdaContext(events.LambdaContext):
    """The context every handler test passes: the local runner's own, with a default function name."""

    function_name: str = "alleycat-test"


def message(
    *,
    race_id: int = 7,
    racer_id: int = 1,
    second: int = 1,
    cadence: float = 80,
    resistance: float = 50,
    class_id: int = 3,
    event: str = "update",
    name: str | None = None,
    uuid: str | None = None,
    device_ts: int | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event": event,
        "deviceTimestamp": device_ts if device_ts is not None else 1_764_172_800_000 + second * 1000,
        "second": second,
        "raceId": race_id,
        "name": name if name is not None else f"Racer {racer_id}",
        "racerId": racer_id,
        "classId": class_id,
        "cadence": cadence,
        "resistance": resistance,
    }
    if uuid is not None:
        body["uuid"] = uuid
    return body


def kinesis_record(
    body: dict[str, Any] | bytes | str, *, partition_key: str = "7", arrival: float = ARRIVAL_S
) -> dict[str, Any]:
    """A Kinesis record as Lambda delivers it; ``str`` bodies are used as the base64 data verbatim."""
    if isinstance(body, dict):
        data = base64.b64encode(orjson.dumps(body)).decode()
    elif isinstance(body, bytes):
        data = base64.b64encode(body).decode()
    else:
        data = body
    sequence = str(next(_sequence))
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": sequence,
            "data": data,
            "approximateArrivalTimestamp": arrival,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{SHARD_ID}:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/alleycat-aggregator",
        "awsRegion": "us-east-1",
        "eventSourceARN": STREAM_ARN,
    }


def kinesis_event(
    records: list[dict[str, Any]],
    *,
    state: dict[str, Any] | None = None,
    window: bool = True,
    final: bool = False,
    terminated_early: bool = False,
) -> dict[str, Any]:
    """A Kinesis event; with ``window`` it carries the tumbling-window fields."""
    event: dict[str, Any] = {"Records": records}
    if window:
        event.update(
            {
                # a window that closes on a multiple of 5 s: its write-out also checks settlement
                "window": {"start": "2025-11-26T16:00:04Z", "end": "2025-11-26T16:00:05Z"},
                "state": state if state is not None else {},
                "shardId": SHARD_ID,
                "eventSourceARN": STREAM_ARN,
                "isFinalInvokeForWindow": final,
                "isWindowTerminatedEarly": terminated_early,
            }
        )
    return event


def to_lambda_image(image: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB-JSON image from boto3 (bytes for binaries) as Lambda's JSON event carries it (base64)."""

    def convert(value: dict[str, Any]) -> dict[str, Any]:
        ((kind, inner),) = value.items()
        if kind == "B":
            return {"B": base64.b64encode(bytes(inner)).decode()}
        if kind == "M":
            return {"M": {key: convert(element) for key, element in inner.items()}}
        if kind == "L":
            return {"L": [convert(element) for element in inner]}
        return value

    return {name: convert(value) for name, value in image.items()}


def stream_record(
    old_image: dict[str, Any] | None, new_image: dict[str, Any] | None, *, sequence: int = 1
) -> dict[str, Any]:
    """A DynamoDB stream record (Lambda event shape) of the table."""
    image = new_image or old_image or {}
    change: dict[str, Any] = {
        "ApproximateCreationDateTime": 1764172800,
        "Keys": {"pk": image["pk"], "sk": image["sk"]},
        "SequenceNumber": str(100000000000000000000 + sequence),
        "SizeBytes": 1024,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new_image is not None:
        change["NewImage"] = to_lambda_image(new_image)
    if old_image is not None:
        change["OldImage"] = to_lambda_image(old_image)
    return {
        "eventID": f"{sequence:032x}",
        "eventName": "MODIFY" if old_image and new_image else ("INSERT" if new_image else "REMOVE"),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": change,
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/alleycat/stream/2025-11-26T16:00:00.000",
    }


def ride(
    racers: range,
    seconds: range,
    *,
    race_id: int = 7,
    class_id: int = 3,
    final_at: int | None = None,
    arrival: float = ARRIVAL_S,
) -> list[dict[str, Any]]:
    """Kinesis records of ``racers`` riding ``seconds`` (second by second), cadence 60 + racer id % 50."""
    return [
        kinesis_record(
            message(
                race_id=race_id,
                racer_id=racer_id,
                second=second,
                class_id=class_id,
                cadence=60 + racer_id % 50,
                resistance=40,
                event="final" if second == final_at else "update",
            ),
            arrival=arrival,
        )
        for second in seconds
        for racer_id in racers
    ]


# --- domain helpers for tests (the pipeline decodes to field tuples, never builds Readings itself) ----------


def make_reading(
    *,
    event: str = EVENT_UPDATE,
    device_ts: int,
    second: int,
    race_id: int,
    name: str,
    racer_id: int,
    class_id: int,
    cadence: float,
    resistance: float,
    uuid: str | None = None,
) -> Reading:
    """A Reading from trusted values; computes ``output``."""
    return Reading(
        uuid,
        event,
        device_ts,
        second,
        race_id,
        name,
        racer_id,
        class_id,
        cadence,
        resistance,
        output_of(cadence, resistance),
    )


def reading_fields(reading: Reading) -> Fields:
    return (
        reading.uuid,
        reading.event,
        reading.device_ts,
        reading.second,
        reading.race_id,
        reading.name,
        reading.racer_id,
        reading.class_id,
        reading.cadence,
        reading.resistance,
        reading.output,
    )


def fold_readings(state: dict[str, Any], readings: Iterable[Reading]) -> dict[str, Any]:
    """Fold readings into a window state (mutated and returned)."""
    fold_fields(state, map(reading_fields, readings))
    return state


def recompute_scores(readings: Iterable[Reading]) -> dict[tuple[int, int], float]:
    """The scoring rule from scratch: (race, racer) -> sum of the best output per distinct second."""
    best: dict[tuple[int, int, int], float] = {}
    for reading in readings:
        key = (reading.race_id, reading.racer_id, reading.second)
        if key not in best or reading.output > best[key]:
            best[key] = reading.output
    scores: dict[tuple[int, int], int] = {}
    for (race_id, racer_id, _second), output in best.items():
        scores[(race_id, racer_id)] = scores.get((race_id, racer_id), 0) + output_units(output)
    return {key: units_to_score(units) for key, units in scores.items()}
