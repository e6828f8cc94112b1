"""The bike message: decoding and validation (``processors.domain.message``). No AWS."""

from __future__ import annotations

import base64
import math
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.domain.message import MAX_RECORD_BYTES, BadRecord, Reading, Reason, decode_payloads, decode_reading
from processors.domain.scoring import output_of
from tests.processors.factories import make_reading, message


def encode(body: Any) -> bytes:
    return orjson.dumps(body)


def decode_base64_reading(payload: str | bytes) -> Reading | BadRecord:
    """One base64 payload through the aggregator's decoder."""
    good, bad = decode_payloads([payload])
    return Reading(*good[0][1]) if good else bad[0][1]


class TestDecodeValid:
    def test_message_without_uuid_decodes(self) -> None:
        reading = decode_reading(encode(message(racer_id=4, second=12, cadence=87.3, resistance=42.1)))
        assert isinstance(reading, Reading)
        assert reading.uuid is None
        assert (reading.racer_id, reading.second, reading.race_id, reading.class_id) == (4, 12, 7, 3)
        assert reading.output == output_of(87.3, 42.1)

    def test_uuid_kept_and_extra_fields_ignored(self) -> None:
        body = message(uuid="6f1c0e3a-4d0f-4b1e-9a59-1d7a4f3a2b10") | {"output": 1.0, "extra": [1]}
        reading = decode_reading(encode(body))
        assert isinstance(reading, Reading)
        assert reading.uuid == "6f1c0e3a-4d0f-4b1e-9a59-1d7a4f3a2b10"
        assert reading.output == output_of(80, 50)

    def test_final_event_and_boundaries(self) -> None:
        body = message(event="final", second=3600, cadence=250, resistance=100, racer_id=0, name="x" * 64)
        reading = decode_reading(encode(body))
        assert isinstance(reading, Reading)
        assert reading.is_final and reading.second == 3600 and reading.racer_id == 0

    def test_base64_payload(self) -> None:
        reading = decode_base64_reading(base64.b64encode(encode(message())).decode())
        assert isinstance(reading, Reading)

    def test_to_message_round_trips(self) -> None:
        reading = make_reading(
            device_ts=5, second=2, race_id=1, name="A", racer_id=2, class_id=1, cadence=90, resistance=10
        )
        assert decode_reading(encode(reading.to_message())) == reading


BAD_CASES: list[tuple[str, Any, Reason]] = [
    ("not json", b"{not json", Reason.NOT_JSON),
    ("NaN literal", b'{"cadence": NaN}', Reason.NOT_JSON),
    ("empty", b"", Reason.NOT_JSON),
    ("array", encode([message()]), Reason.NOT_OBJECT),
    ("string", encode("hello"), Reason.NOT_OBJECT),
    ("missing racerId", encode({k: v for k, v in message().items() if k != "racerId"}), Reason.MISSING_FIELD),
    ("missing event", encode({k: v for k, v in message().items() if k != "event"}), Reason.MISSING_FIELD),
    ("second is bool", encode(message() | {"second": True}), Reason.WRONG_TYPE),
    ("racerId is string", encode(message() | {"racerId": "1"}), Reason.WRONG_TYPE),
    ("racerId is float", encode(message() | {"racerId": 1.0}), Reason.WRONG_TYPE),
    # Several rules broken: the first one met in document order names the reason.
    ("raceId huge, the rest missing", b'{"raceId": 123456789012345678901234567890}', Reason.OUT_OF_RANGE),
    ("only raceId, in range", b'{"raceId": 12}', Reason.MISSING_FIELD),
    ("cadence is string", encode(message() | {"cadence": "80"}), Reason.WRONG_TYPE),
    ("resistance is bool", encode(message() | {"resistance": False}), Reason.WRONG_TYPE),
    ("name is number", encode(message() | {"name": 5}), Reason.WRONG_TYPE),
    ("name null", encode(message() | {"name": None}), Reason.WRONG_TYPE),
    ("uuid is number", encode(message() | {"uuid": 5}), Reason.WRONG_TYPE),
    ("event is number", encode(message() | {"event": 1}), Reason.WRONG_TYPE),
    ("unknown event", encode(message() | {"event": "start"}), Reason.UNKNOWN_EVENT),
    ("second 0", encode(message() | {"second": 0}), Reason.OUT_OF_RANGE),
    ("second 3601", encode(message() | {"second": 3601}), Reason.OUT_OF_RANGE),
    ("racerId negative", encode(message() | {"racerId": -1}), Reason.OUT_OF_RANGE),
    ("classId 0", encode(message() | {"classId": 0}), Reason.OUT_OF_RANGE),
    ("cadence 250.01", encode(message() | {"cadence": 250.01}), Reason.OUT_OF_RANGE),
    ("resistance negative", encode(message() | {"resistance": -0.5}), Reason.OUT_OF_RANGE),
    ("cadence beyond a double", b'{"cadence": 1e999}', Reason.OUT_OF_RANGE),
    ("name 65 chars", encode(message() | {"name": "x" * 65}), Reason.OUT_OF_RANGE),
    ("name empty", encode(message() | {"name": ""}), Reason.OUT_OF_RANGE),
    ("1 MB name", encode(message() | {"name": "x" * 1_000_000}), Reason.TOO_LARGE),
]


class TestDecodeBad:
    @pytest.mark.parametrize(("data", "reason"), [case[1:] for case in BAD_CASES], ids=[case[0] for case in BAD_CASES])
    def test_bad_record_has_a_reason(self, data: bytes, reason: Reason) -> None:
        result = decode_reading(data)
        assert isinstance(result, BadRecord)
        assert result.reason == reason
        assert result.detail

    def test_wrong_type_names_the_field(self) -> None:
        result = decode_reading(encode(message() | {"second": "5"}))
        assert isinstance(result, BadRecord) and result.detail.startswith("second")

    @pytest.mark.parametrize("payload", ["not base64!", "YWJ", "=" * 8])
    def test_bad_base64(self, payload: str) -> None:
        result = decode_base64_reading(payload)
        assert isinstance(result, BadRecord) and result.reason == Reason.BAD_BASE64

    def test_oversized_base64_is_rejected_before_decoding(self) -> None:
        result = decode_base64_reading("A" * (MAX_RECORD_BYTES * 2))
        assert isinstance(result, BadRecord) and result.reason == Reason.TOO_LARGE

    @given(st.binary(max_size=300))
    def test_never_raises_on_arbitrary_bytes(self, data: bytes) -> None:
        assert isinstance(decode_reading(data), (Reading, BadRecord))
        assert isinstance(decode_base64_reading(base64.b64encode(data)), (Reading, BadRecord))

    @given(st.text(max_size=300))
    def test_never_raises_on_arbitrary_text(self, text: str) -> None:
        assert isinstance(decode_reading(text), (Reading, BadRecord))
        assert isinstance(decode_base64_reading(text), (Reading, BadRecord))

    @settings(suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.dictionaries(
            st.sampled_from([*message().keys(), "uuid"]),
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=70),
            max_size=4,
        ),
        st.sets(st.sampled_from([*message().keys(), "uuid"]), max_size=2),
    )
    def test_never_raises_on_arbitrary_objects(self, overrides: dict[str, Any], dropped: set[str]) -> None:
        body = {key: value for key, value in (message() | overrides).items() if key not in dropped}
        try:
            data = orjson.dumps(body)
        except TypeError:  # integers beyond 64 bits cannot be encoded
            return
        result = decode_reading(data)
        if isinstance(result, Reading):
            assert 1 <= result.second <= 3600
            assert math.isfinite(result.cadence) and math.isfinite(result.resistance)
            assert type(result.racer_id) is int
