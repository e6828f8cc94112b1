"""The bike message (DESIGN.md, "The bike message"): its limits, its one decoder, and why a record is bad.

One decoder: msgspec parses and validates a message in one C call (``_Message``), and when it refuses
one, its error names the field and the rule, which ``_bad_record`` turns into a ``Reason``. A message
that breaks several rules is reported with the first one msgspec meets, in document order.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec

from processors.domain.scoring import output_of

MAX_SECOND = 3600
MAX_NAME_CHARS = 64
MAX_UUID_CHARS = 64
MAX_CADENCE = 250
MAX_RESISTANCE = 100
MAX_ID = 2**53 - 1  # ids and timestamps must survive a round trip through JSON numbers
MAX_ID_DIGITS = len(str(MAX_ID))
# A valid message is about 1 KB at most (a 64-character name, JSON-escaped, is at most 768 bytes);
# anything much larger is rejected before it is parsed.
MAX_RECORD_BYTES = 8192

EVENT_UPDATE = "update"
EVENT_FINAL = "final"


@dataclass(slots=True)
class Reading:
    """One validated bike message, with its output computed. Treat as immutable.

    Not ``frozen``: a frozen dataclass costs about 1 us more per instance (object.__setattr__
    for each field), which is a third of the 3 ms budget for a 1,000-record batch.
    """

    uuid: str | None
    event: str
    device_ts: int
    second: int
    race_id: int
    name: str
    racer_id: int
    class_id: int
    cadence: float
    resistance: float
    output: float

    @property
    def is_final(self) -> bool:
        return self.event == EVENT_FINAL

    def to_message(self) -> dict[str, Any]:
        """The bike message as JSON-ready dict, with ``output`` added (Firehose, history)."""
        message: dict[str, Any] = {
            "event": self.event,
            "deviceTimestamp": self.device_ts,
            "second": self.second,
            "raceId": self.race_id,
            "name": self.name,
            "racerId": self.racer_id,
            "classId": self.class_id,
            "cadence": self.cadence,
            "resistance": self.resistance,
            "output": self.output,
        }
        if self.uuid is not None:
            message["uuid"] = self.uuid
        return message


class Reason(StrEnum):
    """Why a record is bad. The values are stable: they appear in the dead-letter queue and in logs."""

    BAD_BASE64 = "bad_base64"
    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    UNKNOWN_EVENT = "unknown_event"
    # The record does not fit the schedule (checked against the race's identity item, A0).
    UNKNOWN_RACE = "unknown_race"
    CLASS_MISMATCH = "class_mismatch"
    SECOND_OUT_OF_RACE = "second_out_of_race"
    LATE = "late"
    RACE_FULL = "race_full"
    # The live item could not take the window's seconds (over the item size limit): replayable.
    ITEM_TOO_LARGE = "item_too_large"


@dataclass(slots=True, frozen=True)
class BadRecord:
    reason: Reason
    detail: str


# (uuid, event, device_ts, second, race_id, name, racer_id, class_id, cadence, resistance, output):
# the field order of Reading. The hot path passes these tuples around instead of objects.
Fields = tuple[str | None, str, int, int, int, str, int, int, float, float, float]

_JSON_NAMES = {
    "device_ts": "deviceTimestamp",
    "race_id": "raceId",
    "racer_id": "racerId",
    "class_id": "classId",
}


class _Message(msgspec.Struct, gc=False, rename=_JSON_NAMES):
    """The bike message as msgspec checks it, in C, while it parses.

    Decoded with ``strict=True``: no bool for an int or a number, no str for a number, no float
    (not even ``3.0``) for an int. Unknown fields are skipped. A number field keeps the type it had
    in the JSON (int or float), so ``to_message`` writes it back unchanged. ``gc=False``: the
    instance holds only str, int, float and None, so the collector need not track it.
    """

    event: Literal["update", "final"]
    device_ts: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
    second: Annotated[int, msgspec.Meta(ge=1, le=MAX_SECOND)]
    race_id: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_CHARS)]
    racer_id: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
    class_id: Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
    cadence: Annotated[int, msgspec.Meta(ge=0, le=MAX_CADENCE)] | Annotated[float, msgspec.Meta(ge=0, le=MAX_CADENCE)]
    resistance: (
        Annotated[int, msgspec.Meta(ge=0, le=MAX_RESISTANCE)] | Annotated[float, msgspec.Meta(ge=0, le=MAX_RESISTANCE)]
    )
    uuid: Annotated[str, msgspec.Meta(max_length=MAX_UUID_CHARS)] | None = None


_decode_message = msgspec.json.Decoder(_Message, strict=True).decode
_MAX_BASE64_CHARS = MAX_RECORD_BYTES * 4 // 3 + 4
_a2b_base64 = binascii.a2b_base64


class _Delivered(msgspec.Struct, gc=False, rename=_JSON_NAMES, omit_defaults=True):
    """The message as the transformer delivers it: the bike message's fields, ``output`` added."""

    event: str
    device_ts: int
    second: int
    race_id: int
    name: str
    racer_id: int
    class_id: int
    cadence: float
    resistance: float
    output: float
    uuid: str | None = None


_encode = msgspec.json.Encoder().encode


def delivered_line(fields: Fields) -> bytes:
    """One delivered line: the JSON of ``Reading(*fields).to_message()`` (same keys, order, numbers) and a newline.

    Encoded by msgspec from a struct, in C: the transformer's hot path (about half its CPU before).
    """
    uuid, event, device_ts, second, race_id, name, racer_id, class_id, cadence, resistance, output = fields
    delivered = _Delivered(
        event, device_ts, second, race_id, name, racer_id, class_id, cadence, resistance, output, uuid
    )
    return _encode(delivered) + b"\n"


def decode_reading(data: bytes | str) -> Reading | BadRecord:
    """Validate one bike message (JSON bytes) and compute its output. Never raises.

    Unknown extra fields (e.g. ``output`` added by the transformer) are ignored.
    """
    fields = decode_fields(data)
    if type(fields) is tuple:
        return Reading(*fields)
    return fields  # type: ignore[return-value]


def decode_fields(data: bytes | str, base64_encoded: bool = False) -> Fields | BadRecord:
    """The hot path: one bike message (base64 when ``base64_encoded``) as a ``Fields`` tuple, or why not."""
    if base64_encoded:  # one function for both, to save a call per record on the hot path
        if len(data) > _MAX_BASE64_CHARS:
            return BadRecord(Reason.TOO_LARGE, f"payload is {len(data)} base64 chars, limit {MAX_RECORD_BYTES} bytes")
        try:
            data = _a2b_base64(data, strict_mode=True)
        except (binascii.Error, ValueError) as exc:
            return BadRecord(Reason.BAD_BASE64, str(exc)[:200])
    elif len(data) > MAX_RECORD_BYTES:
        return BadRecord(Reason.TOO_LARGE, f"record is {len(data)} bytes, limit {MAX_RECORD_BYTES}")
    try:
        if not isinstance(data, str) and not data.isascii():
            # msgspec checks UTF-8 only inside the strings it keeps: a record must be UTF-8 throughout.
            data.decode("utf-8")
        message = _decode_message(data)
    except msgspec.ValidationError as exc:
        return _bad_record(str(exc))
    except Exception as exc:  # noqa: BLE001 - malformed JSON, invalid UTF-8, nesting past the recursion limit
        return BadRecord(Reason.NOT_JSON, str(exc)[:200])
    cadence = message.cadence
    resistance = message.resistance
    return (
        message.uuid,
        message.event,
        message.device_ts,
        message.second,
        message.race_id,
        message.name,
        message.racer_id,
        message.class_id,
        cadence,
        resistance,
        output_of(cadence, resistance),
    )


def _bad_record(error: str) -> BadRecord:
    """The reason a msgspec validation error names, e.g. "Expected `int` <= 3600 - at `$.second`"."""
    rule, _, at = error.partition(" - at `$")
    field = at.rstrip("`").lstrip(".")
    if rule.startswith("Object missing required field"):
        missing = rule.rpartition(" ")[2].strip("`")
        return BadRecord(Reason.MISSING_FIELD, missing)
    detail = f"{field}: {rule}"[:200] if field else rule[:200]
    if not field:  # only the top level is validated as a whole: it is not an object
        return BadRecord(Reason.NOT_OBJECT, detail)
    if rule.startswith("Invalid enum value"):
        return BadRecord(Reason.UNKNOWN_EVENT, detail)
    if ", got `" in rule or field == "uuid":  # uuid: "a string of at most 64 chars" is one rule
        return BadRecord(Reason.WRONG_TYPE, detail)
    return BadRecord(Reason.OUT_OF_RANGE, detail)  # a bound, a length, or a number beyond a double


def decode_payloads(payloads: Iterable[str | bytes]) -> tuple[list[tuple[int, Fields]], list[tuple[int, BadRecord]]]:
    """Decode base64 payloads and validate them: ((index, fields) of the good, (index, BadRecord) of the bad)."""
    good: list[tuple[int, Fields]] = []
    bad: list[tuple[int, BadRecord]] = []
    decode = decode_fields
    for index, payload in enumerate(payloads):
        fields = decode(payload, True)
        if type(fields) is tuple:
            good.append((index, fields))
        else:
            bad.append((index, fields))  # type: ignore[arg-type]
    return good, bad
