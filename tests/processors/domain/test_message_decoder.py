"""The one decoder of the bike message (``processors.domain.message``, msgspec): what it accepts, and the
reason it names for what it refuses, including the corners of JSON (duplicate keys, number spellings,
UTF-8, nesting). Generated messages check that an accepted message carries exactly the values (and
number types) its JSON text holds.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from processors.domain.message import (
    BadRecord,
    Reading,
    Reason,
    decode_fields,
    decode_payloads,
    decode_reading,
    delivered_line,
)
from processors.domain.scoring import output_of
from processors.domain.window import fold_fields, new_state
from tests.processors.factories import fold_readings, message

VALID = orjson.dumps(message(racer_id=2, second=3, cadence=80, resistance=50))
FIELD_NAMES = [key for key in message() if key != "uuid"]


def field(name: str, raw: bytes) -> bytes:
    """The valid message with one field's JSON value replaced by ``raw`` (a JSON text, not checked)."""
    body = message(racer_id=2, second=3, cadence=80, resistance=50)
    before = orjson.dumps({name: body[name]})[1:-1]  # '"name":value'
    assert before in VALID
    return VALID.replace(before, orjson.dumps(name) + b":" + raw)


def with_extra(raw: bytes, key: bytes = b'"extra"') -> bytes:
    """The valid message with one more member, ``key: raw``, at the end."""
    return VALID[:-1] + b"," + key + b":" + raw + b"}"


def carries_its_json(data: bytes | str) -> None:
    """An accepted message holds exactly what its JSON text says (repr keeps int vs float and -0.0 apart)."""
    reading = decode_reading(data)
    if isinstance(reading, BadRecord):
        assert reading.detail
        return
    parsed = orjson.loads(data)
    assert isinstance(parsed, dict)
    out = reading.to_message()
    for key in FIELD_NAMES:
        assert repr(out[key]) == repr(parsed[key]), key
    assert reading.uuid == parsed.get("uuid")
    assert reading.output == output_of(reading.cadence, reading.resistance)
    # the transformer's line is the same JSON, byte for byte
    assert delivered_line(decode_fields(data)) == orjson.dumps(out) + b"\n"  # type: ignore[arg-type]


ACCEPTED: list[tuple[str, bytes | str, dict[str, Any]]] = [
    ("int cadence stays int", field("cadence", b"80"), {"cadence": 80}),
    ("float cadence stays float", field("cadence", b"80.0"), {"cadence": 80.0}),
    ("exponent is a float", field("cadence", b"1e2"), {"cadence": 100.0}),
    ("negative zero", field("cadence", b"-0.0"), {"cadence": -0.0}),
    ("int minus zero", field("resistance", b"-0"), {"resistance": 0}),
    ("uuid null is no uuid", with_extra(b"null", b'"uuid"'), {"uuid": None}),
    ("duplicate key: the last wins", with_extra(b"4", b'"second"'), {"second": 4}),
    ("escaped key", VALID.replace(b'"second"', b'"sec\\u006fnd"'), {"second": 3}),
    ("escaped key as a duplicate", with_extra(b"7", b'"sec\\u006fnd"'), {"second": 7}),
    ("nested objects in an unknown field", with_extra(b'{"a": [1, {"b": null, "c": [true, 1.5]}]}'), {}),
    ("huge int in an unknown field", with_extra(b"123456789012345678901234567890"), {}),
    ("100 levels of nesting in an unknown field", with_extra(b"[" * 100 + b"]" * 100), {}),
    ("whitespace between tokens", VALID.replace(b",", b" ,\r\n\t"), {}),
    ("non-ASCII name", orjson.dumps(message() | {"name": "Zoë 🚲"}), {"name": "Zoë 🚲"}),
    ("64 two-byte characters", orjson.dumps(message() | {"name": "ë" * 64}), {"name": "ë" * 64}),
    ("escaped name", field("name", b'"\\u0041\\n"'), {"name": "A\n"}),
    ("str input", VALID.decode(), {}),
]

REJECTED: list[tuple[str, bytes | str, Reason]] = [
    ("float for int", field("second", b"3.0"), Reason.WRONG_TYPE),
    ("exponent for int", field("second", b"3E0"), Reason.WRONG_TYPE),
    ("bool for int", field("classId", b"true"), Reason.WRONG_TYPE),
    ("bool for number", field("cadence", b"true"), Reason.WRONG_TYPE),
    ("null for number", field("cadence", b"null"), Reason.WRONG_TYPE),
    ("string for number", field("resistance", b'"50"'), Reason.WRONG_TYPE),
    ("int 2**53 (not exact in JSON)", field("raceId", str(2**53).encode()), Reason.OUT_OF_RANGE),
    ("int 2**63", field("racerId", str(2**63).encode()), Reason.OUT_OF_RANGE),
    ("int beyond 64 bits", field("raceId", str(2**64).encode()), Reason.OUT_OF_RANGE),
    ("huge int cadence", field("cadence", b"123456789012345678901234567890"), Reason.OUT_OF_RANGE),
    ("NaN token", field("cadence", b"NaN"), Reason.NOT_JSON),
    ("Infinity token", field("resistance", b"Infinity"), Reason.NOT_JSON),
    ("-Infinity token", field("cadence", b"-Infinity"), Reason.NOT_JSON),
    ("number beyond a double", field("cadence", b"1e999"), Reason.OUT_OF_RANGE),
    ("leading zero", field("second", b"03"), Reason.NOT_JSON),
    ("object for name", field("name", b'{"first": "A"}'), Reason.WRONG_TYPE),
    ("array for cadence", field("cadence", b"[80]"), Reason.WRONG_TYPE),
    ("object for second", field("second", b'{"v": 3}'), Reason.WRONG_TYPE),
    ("object for uuid", with_extra(b"{}", b'"uuid"'), Reason.WRONG_TYPE),
    ("object for event", field("event", b'{"type": "update"}'), Reason.WRONG_TYPE),
    ("null event", field("event", b"null"), Reason.WRONG_TYPE),
    ("event in another case", field("event", b'"Update"'), Reason.UNKNOWN_EVENT),
    ("duplicate key: a bad last value", with_extra(b'"x"', b'"second"'), Reason.WRONG_TYPE),
    # Every occurrence of a key is checked: a bad value is not excused by a later good one.
    ("duplicate key: a bad first value", field("second", b'"x"')[:-1] + b',"second":5}', Reason.WRONG_TYPE),
    ("duplicate event: the last is unknown", with_extra(b'"start"', b'"event"'), Reason.UNKNOWN_EVENT),
    ("uuid of 65 chars", with_extra(b'"' + b"u" * 65 + b'"', b'"uuid"'), Reason.WRONG_TYPE),
    ("65 two-byte characters", orjson.dumps(message() | {"name": "ë" * 65}), Reason.OUT_OF_RANGE),
    ("invalid UTF-8 in a kept string", field("name", b'"\xff"'), Reason.NOT_JSON),
    ("invalid UTF-8 in an unknown field", with_extra(b'"\xff"'), Reason.NOT_JSON),
    ("invalid UTF-8 in an unknown key", with_extra(b"1", b'"\xc3"'), Reason.NOT_JSON),
    ("UTF-8-encoded surrogate", with_extra(b'"\xed\xa0\x80"'), Reason.NOT_JSON),
    ("overlong UTF-8", with_extra(b'"\xc0\xaf"'), Reason.NOT_JSON),
    ("lone surrogate escape", with_extra(b'"\\ud800"'), Reason.NOT_JSON),
    ("lone surrogate in str input", VALID.decode().replace("Racer 2", "Racer \ud800"), Reason.NOT_JSON),
    ("control character in a string", field("name", b'"a\x01"'), Reason.NOT_JSON),
    ("1,000 levels of nesting", with_extra(b"[" * 1000 + b"]" * 1000), Reason.NOT_JSON),
    ("1,100 levels of nesting", with_extra(b"[" * 1100 + b"]" * 1100), Reason.NOT_JSON),
    ("trailing comma", VALID[:-1] + b",}", Reason.NOT_JSON),
    ("trailing data", VALID + b" {}", Reason.NOT_JSON),
    ("byte order mark", b"\xef\xbb\xbf" + VALID, Reason.NOT_JSON),
    ("top level null", b"null", Reason.NOT_OBJECT),
    ("top level number", b"5", Reason.NOT_OBJECT),
]


class TestDecoderCases:
    @pytest.mark.parametrize(("data", "expected"), [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
    def test_accepted(self, data: bytes | str, expected: dict[str, Any]) -> None:
        reading = decode_reading(data)
        assert isinstance(reading, Reading), reading
        message_out = reading.to_message()
        for key, value in expected.items():
            if key == "uuid":
                assert reading.uuid is value
            else:
                assert repr(message_out[key]) == repr(value)  # type and sign too
        carries_its_json(data)

    @pytest.mark.parametrize(("data", "reason"), [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED])
    def test_rejected_with_its_reason(self, data: bytes | str, reason: Reason) -> None:
        result = decode_reading(data)
        assert isinstance(result, BadRecord) and result.reason == reason, result
        assert result.detail
        if isinstance(data, bytes):
            assert decode_payloads([base64.b64encode(data)]) == ([], [(0, result)])

    def test_an_int_cadence_is_written_back_as_an_int(self) -> None:
        reading = decode_reading(VALID)
        assert isinstance(reading, Reading)
        assert type(reading.cadence) is int and type(reading.resistance) is int
        assert b'"cadence":80,"resistance":50' in orjson.dumps(reading.to_message())

    def test_a_number_beyond_a_double_in_an_unknown_field_is_accepted(self) -> None:
        """An unknown field is skipped unread: 1e999 is valid JSON (RFC 8259 leaves number range to the
        parser), and every field the pipeline reads is checked, so the message is accepted."""
        assert isinstance(decode_reading(with_extra(b"1e999")), Reading)

    def test_a_batch_folds_what_decode_reading_accepts(self) -> None:
        bodies = [
            VALID,
            field("second", b'"x"')[:-1] + b',"second":5}',
            orjson.dumps(message(racer_id=9) | {"name": "Zoë"}),
            with_extra(b'"\xff"'),
        ]
        good, bad = decode_payloads([base64.b64encode(body).decode() for body in bodies])
        assert [(index, problem.reason) for index, problem in bad] == [(1, Reason.WRONG_TYPE), (3, Reason.NOT_JSON)]
        state = new_state()
        fold_fields(state, (fields for _index, fields in good))
        readings = [decode_reading(bodies[0]), decode_reading(bodies[2])]
        assert all(isinstance(reading, Reading) for reading in readings)
        assert state == fold_readings(new_state(), readings)  # type: ignore[arg-type]


# --- Generated messages -------------------------------------------------------------------

NUMBER_TEXT = st.from_regex(r"-?(0|[1-9][0-9]{0,3})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,2})?", fullmatch=True)
JSON_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
FIELDS = [*message().keys(), "uuid"]


@st.composite
def message_texts(draw: st.DrawFn) -> bytes:
    """JSON object texts near a valid message: fields dropped, replaced, duplicated, numbers spelled
    in every way JSON allows, unknown members, and now and then a byte changed."""
    members: list[tuple[str, bytes]] = [
        (key, orjson.dumps(value))
        for key, value in message(
            racer_id=draw(st.integers(0, 50)),
            second=draw(st.integers(1, 3600)),
            uuid=draw(st.none() | st.uuids().map(str)),
        ).items()
    ]
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from([*FIELDS, "output", "extra"]))
        raw = draw(
            NUMBER_TEXT.map(str.encode)
            | JSON_VALUE.map(orjson.dumps)
            | st.sampled_from([b'"update"', b'"final"', b"3.0", b"true", b"null", b'""', b'"x"'])
        )
        if draw(st.booleans()):
            members = [(k, raw if k == key else v) for k, v in members]
        else:
            members.append((key, raw))
    dropped = draw(st.sets(st.sampled_from(FIELDS), max_size=1))
    members = [(k, v) for k, v in members if k not in dropped]
    members = draw(st.permutations(members))
    text = b"{" + b",".join(orjson.dumps(k) + b":" + v for k, v in members) + b"}"
    if draw(st.integers(0, 9)) == 0 and text:
        position = draw(st.integers(0, len(text) - 1))
        text = text[:position] + bytes([draw(st.integers(0, 255))]) + text[position + 1 :]
    return text


class TestGeneratedMessages:
    @settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(message_texts())
    @example(field("cadence", b"87.30000000000000071054273576010018587112426757812"))
    @example(field("cadence", b"2.2250738585072011e-308"))
    @example(field("resistance", b"0.1e1"))
    def test_accepted_messages_carry_their_json(self, data: bytes) -> None:
        carries_its_json(data)

    @settings(max_examples=800)
    @given(cadence=NUMBER_TEXT, resistance=NUMBER_TEXT)
    def test_numbers_parse_to_the_double_json_means(self, cadence: str, resistance: str) -> None:
        data = field("cadence", cadence.encode())
        data = data.replace(b'"resistance":50', b'"resistance":' + resistance.encode())
        carries_its_json(data)

    @given(st.binary(max_size=200))
    def test_arbitrary_bytes(self, data: bytes) -> None:
        carries_its_json(data)
