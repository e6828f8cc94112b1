"""Pure domain functions: decode and validate a bike message, score it, fold readings.

Nothing here does I/O or imports boto3. Scores are kept as integer ten-thousandths
("units") so that a sum over a set of seconds is exact and does not depend on the order
in which the seconds were added; ``units_to_score`` turns them back into a float.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec
import orjson

MAX_SECOND = 3600
MAX_NAME_CHARS = 64
MAX_UUID_CHARS = 64
MAX_CADENCE = 250
MAX_RESISTANCE = 100
MAX_ID = 2**53 - 1  # ids and timestamps must survive a round trip through JSON numbers
# A valid message is about 1 KB at most (a 64-character name, JSON-escaped, is at most 768 bytes);
# anything much larger is rejected before it is parsed.
MAX_RECORD_BYTES = 8192
UNITS_PER_POINT = 10_000

EVENT_UPDATE = "update"
EVENT_FINAL = "final"


def output_of(cadence: float, resistance: float) -> float:
    """Output of one second: round(((cadence + 35) * (resistance + 65)) / 100, 4), computed fast.

    ``round(x, 4)`` goes through a decimal string and costs ~0.2 us. The result is the double
    nearest to x rounded to 4 decimals, i.e. nearest to r / 10**4 for the right integer r, and
    ``r / 10000`` (two exact integers below 2**53) is that same correctly rounded double. r is
    ``round(x * 10000)`` unless x * 10000 lies next to a half, where the product's own rounding
    could decide: then we ask ``round(x, 4)``. Whole-number inputs give P / 100 with P an integer,
    which already has at most 2 decimals. Both shortcuts are tested against the formula.
    """
    product = ((cadence + 35) * (resistance + 65)) / 100
    if type(cadence) is int and type(resistance) is int:
        return product
    scaled = product * 10000.0
    nearest = round(scaled)
    if -0.49 < scaled - nearest < 0.49:
        return nearest / 10000
    return round(product, 4)


def output_units(output: float) -> int:
    """An output (at most 4 decimals) as exact integer ten-thousandths."""
    return round(output * UNITS_PER_POINT)


def units_to_score(units: int) -> float:
    return units / UNITS_PER_POINT


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
    """Build a Reading from trusted values (tests, simulator); computes ``output``."""
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


_REQUIRED = ("event", "deviceTimestamp", "second", "raceId", "name", "racerId", "classId", "cadence", "resistance")
_INT_RANGES = {
    "deviceTimestamp": (0, MAX_ID),
    "second": (1, MAX_SECOND),
    "raceId": (0, MAX_ID),
    "racerId": (0, MAX_ID),
    "classId": (1, MAX_ID),
}
_loads = orjson.loads
_MAX_BASE64_CHARS = MAX_RECORD_BYTES * 4 // 3 + 4
_a2b_base64 = binascii.a2b_base64
_JSONDecodeError = orjson.JSONDecodeError
_JSON_NAMES = {
    "device_ts": "deviceTimestamp",
    "race_id": "raceId",
    "racer_id": "racerId",
    "class_id": "classId",
}


def decode_reading(data: bytes | str) -> Reading | BadRecord:
    """Validate one bike message (JSON bytes) and compute its output. Never raises.

    Unknown extra fields (e.g. ``output`` added by the transformer) are ignored.
    """
    fields = _decode_fields(data)
    if type(fields) is tuple:
        return Reading(*fields)
    return fields  # type: ignore[return-value]


# (uuid, event, device_ts, second, race_id, name, racer_id, class_id, cadence, resistance, output):
# the field order of Reading. The hot path passes these tuples around instead of objects.
Fields = tuple[str | None, str, int, int, int, str, int, int, float, float, float]


class _Message(msgspec.Struct, gc=False, rename=_JSON_NAMES):
    """The bike message as msgspec checks it, in C, while it parses: the rules of ``_check_json``.

    Decoded with ``strict=True``: no bool for an int or a number, no str for a number, no float
    (not even ``3.0``) for an int. Unknown fields are skipped. A number field keeps the type it had
    in the JSON (int or float), as orjson gives it, so ``to_message`` writes it back unchanged.
    ``gc=False``: the instance holds only str, int, float and None, so the collector need not track it.
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


def _decode_fields(data: bytes | str, base64_encoded: bool = False) -> Fields | BadRecord:
    """The hot path: msgspec parses and validates a good message in one C call.

    Anything msgspec does not accept goes to ``_check_json`` (orjson and Python checks), which
    decides and names the reason. So the outcome, and the reason, is always the one
    ``_check_json`` gives; msgspec only makes the common case fast. The two differ where msgspec
    would be laxer or stricter than orjson, and each such case takes the slow path:
    - msgspec checks UTF-8 only inside the strings it keeps, orjson everywhere: non-ASCII bytes
      are checked here first;
    - with a duplicate key msgspec validates every occurrence, orjson keeps the last one;
    - msgspec gives up on nesting a little below orjson's depth limit (RecursionError).
    One difference is left on purpose: a number beyond a double (``1e999``) in an unknown field,
    which orjson rejects and msgspec skips unread. It is valid JSON, and no field we read is
    affected. ``tests/processors/test_domain_decoder.py`` pins each case and compares the two
    decoders over generated messages.
    """
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
        if type(data) is not str and not data.isascii():
            str(data, "utf-8")  # raises on invalid UTF-8 anywhere, as orjson does
        message = _decode_message(data)
    except Exception:  # whatever msgspec rejects, or raises on: orjson decides
        return _check_json(data)
    cadence = message.cadence
    resistance = message.resistance
    # output_of(), inlined: a call per record costs as much as the shortcut saves.
    output = ((cadence + 35) * (resistance + 65)) / 100
    if type(cadence) is not int or type(resistance) is not int:
        scaled = output * 10000.0
        nearest = round(scaled)
        output = nearest / 10000 if -0.49 < scaled - nearest < 0.49 else round(output, 4)
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
        output,
    )


def _check_json(data: bytes | str) -> Fields | BadRecord:
    """The reference decoder (orjson, then Python checks): decides every message msgspec does not accept."""
    try:
        obj = _loads(data)
    except _JSONDecodeError as exc:
        return BadRecord(Reason.NOT_JSON, str(exc)[:200])
    if type(obj) is not dict:
        return BadRecord(Reason.NOT_OBJECT, f"top level is {type(obj).__name__}")
    try:
        event = obj["event"]
        device_ts = obj["deviceTimestamp"]
        second = obj["second"]
        race_id = obj["raceId"]
        name = obj["name"]
        racer_id = obj["racerId"]
        class_id = obj["classId"]
        cadence = obj["cadence"]
        resistance = obj["resistance"]
    except KeyError:
        missing = [field for field in _REQUIRED if field not in obj]
        return BadRecord(Reason.MISSING_FIELD, ",".join(missing))
    # The fast path: one combined check for the common, valid case (bool is not an int here:
    # type() is compared exactly; NaN fails every comparison; orjson rejects NaN/Infinity).
    if (
        type(second) is int
        and type(device_ts) is int
        and type(race_id) is int
        and type(racer_id) is int
        and type(class_id) is int
        and type(name) is str
        and (type(cadence) is float or type(cadence) is int)
        and (type(resistance) is float or type(resistance) is int)
        and 1 <= second <= MAX_SECOND
        and 0 <= device_ts <= MAX_ID
        and 0 <= race_id <= MAX_ID
        and 0 <= racer_id <= MAX_ID
        and 1 <= class_id <= MAX_ID
        and 0 <= cadence <= MAX_CADENCE
        and 0 <= resistance <= MAX_RESISTANCE
        and 0 < len(name) <= MAX_NAME_CHARS
    ):
        uuid = obj.get("uuid")
        if uuid is not None and (type(uuid) is not str or len(uuid) > MAX_UUID_CHARS):
            return BadRecord(Reason.WRONG_TYPE, "uuid: must be a string of at most 64 chars")
        if event != EVENT_UPDATE and event != EVENT_FINAL:
            if type(event) is not str:
                return BadRecord(Reason.WRONG_TYPE, "event: must be a string")
            return BadRecord(Reason.UNKNOWN_EVENT, f"event: {event[:32]!r}")
        # output_of(), inlined: a call per record costs as much as the shortcut saves.
        output = ((cadence + 35) * (resistance + 65)) / 100
        if type(cadence) is not int or type(resistance) is not int:
            scaled = output * 10000.0
            nearest = round(scaled)
            output = nearest / 10000 if -0.49 < scaled - nearest < 0.49 else round(output, 4)
        return (uuid, event, device_ts, second, race_id, name, racer_id, class_id, cadence, resistance, output)
    return _explain(obj)


def _explain(obj: dict[str, Any]) -> BadRecord:
    """Slow path: name the first rule a message breaks."""
    for field, (low, high) in _INT_RANGES.items():
        value = obj[field]
        if type(value) is not int:
            return BadRecord(Reason.WRONG_TYPE, f"{field}: expected int, got {type(value).__name__}")
        if not low <= value <= high:
            return BadRecord(Reason.OUT_OF_RANGE, f"{field}: {value} not in {low}..{high}")
    for field, high in (("cadence", MAX_CADENCE), ("resistance", MAX_RESISTANCE)):
        value = obj[field]
        if type(value) is not int and type(value) is not float:
            return BadRecord(Reason.WRONG_TYPE, f"{field}: expected number, got {type(value).__name__}")
        if not 0 <= value <= high:  # also rejects NaN and infinities
            return BadRecord(Reason.OUT_OF_RANGE, f"{field}: {value} not in 0..{high}")
    name = obj["name"]
    if type(name) is not str:
        return BadRecord(Reason.WRONG_TYPE, f"name: expected string, got {type(name).__name__}")
    return BadRecord(Reason.OUT_OF_RANGE, f"name: {len(name)} chars, expected 1..{MAX_NAME_CHARS}")


def decode_base64_reading(data: str | bytes) -> Reading | BadRecord:
    """Decode a base64 record payload (Kinesis, Firehose) and validate it. Never raises."""
    fields = _decode_base64_fields(data)
    if type(fields) is tuple:
        return Reading(*fields)
    return fields  # type: ignore[return-value]


def _decode_base64_fields(data: str | bytes) -> Fields | BadRecord:
    return _decode_fields(data, base64_encoded=True)


# --- Aggregation -------------------------------------------------------------------------
#
# The tumbling-window state is a plain JSON dict (Lambda passes it between invocations):
#
#   {"races": {"<raceId>": {"c": classId,
#                           "r": {"<racerId>": {"n": name, "ns": second of that name,
#                                               "o": {"<second>": output}, "f": finishedAtMs | None}}}}}
#    "w": newest Kinesis arrival time (ms) among the window's records (the aggregator's watermark)}
#
# Folding is order-independent: duplicates are idempotent, a second seen with two different
# outputs keeps the larger, the name comes from the latest second, "finished" is sticky.


# --- The schedule: a race's identity (A0) and the checks against it ----------------------


@dataclass(frozen=True, slots=True)
class RaceIdentity:
    """What the races app publishes about a race, and what the pipeline adds when it settles.

    Times are ms since the epoch. ``settle_at_ms`` = end + grace: a record that arrived in the
    stream after it is ``late``. ``settled_at_ms`` is set once the race's results are final.
    """

    race_id: int
    class_id: int
    starts_at_ms: int
    ends_at_ms: int
    length_s: int
    settle_at_ms: int
    cancelled: bool = False
    settled_at_ms: int | None = None

    @property
    def settled(self) -> bool:
        return self.settled_at_ms is not None


def check_schedule(race: RaceIdentity | None, class_id: int, second: int, arrival_ms: int) -> BadRecord | None:
    """Why a valid bike message does not fit its race, or ``None`` when it counts.

    ``arrival_ms`` is when the record reached the stream (Kinesis approximateArrivalTimestamp),
    not when it is processed: a lagging consumer does not make a punctual record late.
    """
    if race is None:
        return BadRecord(Reason.UNKNOWN_RACE, "no such race")
    if race.cancelled:
        return BadRecord(Reason.UNKNOWN_RACE, f"race {race.race_id} was cancelled")
    if class_id != race.class_id:
        return BadRecord(Reason.CLASS_MISMATCH, f"classId {class_id}, race {race.race_id} is class {race.class_id}")
    if second > race.length_s:
        return BadRecord(Reason.SECOND_OUT_OF_RACE, f"second {second}, race {race.race_id} lasts {race.length_s} s")
    if race.settled:
        return BadRecord(Reason.LATE, f"race {race.race_id} settled at {race.settled_at_ms}")
    if arrival_ms > race.settle_at_ms:
        return BadRecord(Reason.LATE, f"arrived at {arrival_ms}, race {race.race_id} settles at {race.settle_at_ms}")
    return None


def decode_payloads(payloads: Iterable[str | bytes]) -> tuple[list[tuple[int, Fields]], list[tuple[int, BadRecord]]]:
    """Decode base64 payloads and validate them: ((index, fields) of the good, (index, BadRecord) of the bad)."""
    good: list[tuple[int, Fields]] = []
    bad: list[tuple[int, BadRecord]] = []
    decode = _decode_fields
    for index, payload in enumerate(payloads):
        fields = decode(payload, True)
        if type(fields) is tuple:
            good.append((index, fields))  # type: ignore[arg-type]
        else:
            bad.append((index, fields))  # type: ignore[arg-type]
    return good, bad


def fold_fields(state: dict[str, Any], rows: Iterable[Fields]) -> None:
    """Fold already validated field tuples (``decode_payloads``) into the window state."""
    _fold_fields(state.setdefault("races", {}), rows)


def new_state() -> dict[str, Any]:
    return {"races": {}}


def fold_readings(state: dict[str, Any], readings: Iterable[Reading]) -> dict[str, Any]:
    """Fold readings into the window state (mutated and returned)."""
    _fold_fields(
        state.setdefault("races", {}),
        (
            (
                r.uuid,
                r.event,
                r.device_ts,
                r.second,
                r.race_id,
                r.name,
                r.racer_id,
                r.class_id,
                r.cadence,
                r.resistance,
                r.output,
            )
            for r in readings
        ),
    )
    return state


def fold_payloads(state: dict[str, Any], payloads: Iterable[str | bytes]) -> list[tuple[int, BadRecord]]:
    """Decode base64 payloads, validate them and fold the valid ones into the state: the hot path.

    Returns (index, BadRecord) for each payload that is not a valid bike message.
    """
    good: list[Fields] = []
    bad: list[tuple[int, BadRecord]] = []
    append = good.append
    decode = _decode_fields
    for index, payload in enumerate(payloads):
        fields = decode(payload, True)
        if type(fields) is tuple:
            append(fields)
        else:
            bad.append((index, fields))  # type: ignore[arg-type]
    _fold_fields(state.setdefault("races", {}), good)
    return bad


_SECOND_KEYS = tuple(str(second) for second in range(MAX_SECOND + 1))  # str(second) without the call


def _fold_fields(races: dict[str, Any], rows: Iterable[Fields]) -> None:
    last_race_id = last_class_id = None
    race: dict[str, Any] = {}
    racers: dict[str, Any] = {}
    second_keys = _SECOND_KEYS
    for _uuid, event, device_ts, second, race_id, name, racer_id, class_id, _cadence, _resistance, output in rows:
        if race_id != last_race_id or class_id != last_class_id:
            race_key = str(race_id)
            race = races.get(race_key)
            if race is None:
                # The class is the race's own: the aggregator checks it against the race identity
                # before folding, so the first record's class is every record's class.
                race = races[race_key] = {"c": class_id, "r": {}}
            last_race_id = race_id
            last_class_id = class_id
            racers = race["r"]
        racer_key = str(racer_id)
        racer = racers.get(racer_key)
        if racer is None:  # the common case in a short window: the racer's first second
            racers[racer_key] = {
                "n": name,
                "ns": second,
                "o": {second_keys[second]: output},
                "f": device_ts if event == EVENT_FINAL else None,
            }
            continue
        if second > racer["ns"] or (second == racer["ns"] and name > racer["n"]):
            racer["n"] = name
            racer["ns"] = second
        outputs = racer["o"]
        second_key = second_keys[second]
        previous = outputs.get(second_key)
        if previous is None or output > previous:
            outputs[second_key] = output
        if event == EVENT_FINAL:
            finished = racer["f"]
            if finished is None or device_ts > finished:
                racer["f"] = device_ts


def state_seconds(state: Mapping[str, Any]) -> int:
    """How many (race, racer, second) entries the state holds: its size driver."""
    return sum(len(racer["o"]) for race in state.get("races", {}).values() for racer in race["r"].values())


@dataclass(slots=True)
class RacerTotal:
    """A racer's running total in a race, as the live item stores it.

    ``seconds`` is a bitset: bit ``s`` is set when second ``s`` has been counted.
    """

    name: str
    name_second: int
    score_units: int
    seconds: int
    last_second: int
    last_output: float
    finished_at_ms: int | None

    @property
    def score(self) -> float:
        return units_to_score(self.score_units)

    @property
    def finished(self) -> bool:
        return self.finished_at_ms is not None


def apply_pending(totals: dict[int, RacerTotal], pending_racers: Mapping[str, Mapping[str, Any]]) -> bool:
    """Merge a window's pending racers (state["races"][id]["r"]) into the totals.

    A second already counted (its bit is set) is ignored, so applying the same window
    twice, or overlapping windows, counts every second once. Returns whether anything changed.
    """
    changed = False
    for racer_key, pending in pending_racers.items():
        racer_id = int(racer_key)
        total = totals.get(racer_id)
        if total is None:
            total = totals[racer_id] = RacerTotal(pending["n"], pending["ns"], 0, 0, 0, 0.0, None)
            changed = True
        elif pending["ns"] > total.name_second or (pending["ns"] == total.name_second and pending["n"] > total.name):
            total.name = pending["n"]
            total.name_second = pending["ns"]
            changed = True
        seconds = total.seconds
        for second_key, output in pending["o"].items():
            second = int(second_key)
            bit = 1 << second
            if seconds & bit:
                continue
            seconds |= bit
            total.score_units += output_units(output)
            if second > total.last_second:
                total.last_second = second
                total.last_output = output
            changed = True
        total.seconds = seconds
        finished = pending["f"]
        if finished is not None and (total.finished_at_ms is None or finished > total.finished_at_ms):
            total.finished_at_ms = finished
            changed = True
    return changed


def rank_totals(totals: Mapping[int, RacerTotal]) -> list[tuple[int, RacerTotal]]:
    """(racer_id, total) ranked by score desc, then racer id asc."""
    return sorted(totals.items(), key=lambda item: (-item[1].score_units, item[0]))


def finished_changes(old: Mapping[int, RacerTotal], new: Mapping[int, RacerTotal]) -> list[int]:
    """Racers whose final result must be (re)written: newly finished, or finished and changed since.

    A second delivered late, after the racer's final message, still reaches the final result.
    """
    changed = []
    for racer_id, total in new.items():
        if total.finished_at_ms is None:
            continue
        before = old.get(racer_id)
        if (
            before is None
            or before.finished_at_ms != total.finished_at_ms
            or before.score_units != total.score_units
            or before.last_second != total.last_second
            or before.name != total.name
        ):
            changed.append(racer_id)
    return sorted(changed)


def is_better_best(new_score: float, current_score: float | None) -> bool:
    """A personal best is replaced only by a strictly greater score."""
    return current_score is None or new_score > current_score


def recompute_scores(readings: Iterable[Reading]) -> dict[tuple[int, int], float]:
    """Reference implementation for tests: (race, racer) -> sum of the best output per distinct second."""
    best: dict[tuple[int, int, int], float] = {}
    for reading in readings:
        key = (reading.race_id, reading.racer_id, reading.second)
        if key not in best or reading.output > best[key]:
            best[key] = reading.output
    scores: dict[tuple[int, int], int] = {}
    for (race_id, racer_id, _second), output in best.items():
        scores[(race_id, racer_id)] = scores.get((race_id, racer_id), 0) + output_units(output)
    return {key: units_to_score(units) for key, units in scores.items()}
