"""Pure domain functions: decoding, validation, scoring, folding, merging. No AWS."""

from __future__ import annotations

import base64
import copy
import math
import random
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.domain.message import MAX_RECORD_BYTES, BadRecord, Reading, Reason, decode_payloads, decode_reading
from processors.domain.scoring import is_better_best, output_of, units_to_score
from processors.domain.standings import RacerTotal, apply_pending, finished_changes, rank_key
from processors.domain.window import fold_fields, new_state, state_seconds
from tests.processors.factories import fold_readings, make_reading, message, recompute_scores


def encode(body: Any) -> bytes:
    return orjson.dumps(body)


def decode_base64_reading(payload: str | bytes) -> Reading | BadRecord:
    """One base64 payload through the aggregator's decoder."""
    good, bad = decode_payloads([payload])
    return Reading(*good[0][1]) if good else bad[0][1]


def fold_payloads(state: dict[str, Any], payloads: list[str]) -> list[tuple[int, BadRecord]]:
    """What the aggregator does with a batch: decode, fold the good, return the bad."""
    good, bad = decode_payloads(payloads)
    fold_fields(state, (fields for _index, fields in good))
    return bad


def rank_totals(totals: dict[int, RacerTotal]) -> list[tuple[int, RacerTotal]]:
    return sorted(totals.items(), key=lambda item: rank_key(item[1].score_units, item[0]))


class TestOutput:
    @pytest.mark.parametrize(
        ("cadence", "resistance"),
        [(0, 0), (250, 100), (80, 50), (87.3, 42.1), (91.25, 33.333)],
    )
    def test_output_is_the_rounded_formula(self, cadence: float, resistance: float) -> None:
        expected = round(((cadence + 35) * (resistance + 65)) / 100, 4)
        assert output_of(cadence, resistance) == expected

    def test_integer_fast_path_equals_the_rounded_formula_for_every_integer_input(self) -> None:
        for cadence in range(0, 251):
            body = message(cadence=cadence)
            for resistance in range(0, 101):
                body["resistance"] = resistance
                reading = decode_reading(orjson.dumps(body))
                assert isinstance(reading, Reading)
                assert reading.output == round(((cadence + 35) * (resistance + 65)) / 100, 4)

    @settings(max_examples=3000)
    @given(
        st.floats(min_value=0, max_value=250, allow_nan=False) | st.integers(0, 249).map(lambda x: x + 0.5),
        st.floats(min_value=0, max_value=100, allow_nan=False) | st.integers(0, 100),
    )
    def test_fast_output_equals_the_rounded_formula(self, cadence: float, resistance: float) -> None:
        expected = round(((cadence + 35) * (resistance + 65)) / 100, 4)
        assert output_of(cadence, resistance) == expected
        reading = decode_reading(orjson.dumps(message(cadence=cadence, resistance=resistance)))
        assert isinstance(reading, Reading) and reading.output == expected

    def test_fast_output_on_a_dense_grid_of_decimals(self) -> None:
        for cadence_tenths in range(0, 2501, 7):
            cadence = cadence_tenths / 10
            for resistance_hundredths in range(0, 10001, 37):
                resistance = resistance_hundredths / 100
                assert output_of(cadence, resistance) == round(((cadence + 35) * (resistance + 65)) / 100, 4)

    def test_known_values(self) -> None:
        assert output_of(0, 0) == 22.75
        assert output_of(250, 100) == 470.25
        assert output_of(87.3, 42.1) == 130.9833


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


# --- folding and merging -----------------------------------------------------------------


def readings_strategy() -> st.SearchStrategy[list[Reading]]:
    """A race's messages: each (racer, second) once, some racers finish with a final message."""

    @st.composite
    def race(draw: st.DrawFn) -> list[Reading]:
        racers = draw(st.integers(min_value=1, max_value=6))
        readings = []
        for racer_id in range(racers):
            seconds = draw(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=15, unique=True))
            finishes = draw(st.booleans())
            last = max(seconds)
            for second in seconds:
                readings.append(
                    make_reading(
                        event="final" if finishes and second == last else "update",
                        device_ts=1_000_000 + second * 1000,
                        second=second,
                        race_id=9,
                        name=f"R{racer_id}",
                        racer_id=racer_id,
                        class_id=2,
                        cadence=draw(st.floats(min_value=0, max_value=250, allow_nan=False).map(lambda x: round(x, 2))),
                        resistance=draw(st.integers(min_value=0, max_value=100)),
                    )
                )
        return readings

    return race()


def run_windows(windows: list[list[Reading]]) -> tuple[dict[int, RacerTotal], dict[int, tuple[float, int]]]:
    """Fold each window into a JSON round-tripped state, merge it into totals, collect finals as finals does."""
    totals: dict[int, RacerTotal] = {}
    finals: dict[int, tuple[float, int]] = {}
    for window in windows:
        state = orjson.loads(orjson.dumps(fold_readings(new_state(), window)))
        for race in state["races"].values():
            before = copy.deepcopy(totals)
            apply_pending(totals, race["r"])
            for racer_id in finished_changes(before, totals):
                finals[racer_id] = (totals[racer_id].score, totals[racer_id].last_second)
    return totals, finals


def split(readings: list[Reading], rng: random.Random) -> list[list[Reading]]:
    windows: list[list[Reading]] = []
    index = 0
    while index < len(readings):
        size = rng.randint(1, 8)
        windows.append(readings[index : index + size])
        index += size
    return windows


def standings(totals: dict[int, RacerTotal]) -> list[tuple[int, float, int, float, bool]]:
    return [(rid, t.score, t.last_second, t.last_output, t.finished) for rid, t in rank_totals(totals)]


class TestAggregationProperties:
    @settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
    @given(readings_strategy(), st.randoms(use_true_random=False))
    def test_duplication_and_reordering_give_the_same_standings_and_finals(
        self, readings: list[Reading], rng: random.Random
    ) -> None:
        in_order, in_order_finals = run_windows([readings])
        shuffled = readings + [rng.choice(readings) for _ in range(len(readings))]
        rng.shuffle(shuffled)
        replayed, replayed_finals = run_windows(split(shuffled, rng) + split(readings, rng))
        assert standings(replayed) == standings(in_order)
        assert replayed_finals == in_order_finals

    @settings(max_examples=150)
    @given(readings_strategy(), st.randoms(use_true_random=False))
    def test_scores_equal_a_straightforward_recomputation(self, readings: list[Reading], rng: random.Random) -> None:
        duplicated = readings * 2
        rng.shuffle(duplicated)
        totals, _finals = run_windows(split(duplicated, rng))
        expected = recompute_scores(readings)
        assert {(9, rid): total.score for rid, total in totals.items()} == pytest.approx(expected, abs=1e-9)
        for rid, total in totals.items():
            mine = [r for r in readings if r.racer_id == rid]
            assert total.last_second == max(r.second for r in mine)
            assert total.finished == any(r.is_final for r in mine)
            plain_sum = sum(r.output for r in mine)
            assert total.score == pytest.approx(plain_sum, abs=1e-6)


class TestFoldAndApply:
    def test_fold_payloads_equals_decode_then_fold(self) -> None:
        bodies = [
            message(racer_id=r, second=s, cadence=60.5 + r, event="final" if s == 3 else "update")
            for r in range(5)
            for s in (1, 2, 3)
        ]
        payloads = [base64.b64encode(orjson.dumps(body)).decode() for body in bodies]
        payloads.insert(4, "bad!")
        payloads.append(base64.b64encode(b"[]").decode())
        state = new_state()
        bad = fold_payloads(state, payloads)
        assert [(index, problem.reason) for index, problem in bad] == [(4, Reason.BAD_BASE64), (16, Reason.NOT_OBJECT)]
        readings = [decode_base64_reading(payload) for payload in payloads]
        expected = fold_readings(new_state(), [r for r in readings if isinstance(r, Reading)])
        assert state == expected

    def test_fold_keeps_one_output_per_second_and_the_larger_on_conflict(self) -> None:
        fields = {"device_ts": 1, "second": 5, "race_id": 1, "name": "A", "racer_id": 1, "class_id": 1, "resistance": 0}
        low = make_reading(cadence=10, **fields)
        high = make_reading(cadence=90, **fields)
        for order in ([low, high], [high, low]):
            state = fold_readings(new_state(), order)
            assert state["races"]["1"]["r"]["1"]["o"] == {"5": high.output}
        assert state_seconds(state) == 1

    def test_applying_the_same_window_twice_changes_nothing_the_second_time(self) -> None:
        readings = [
            make_reading(device_ts=s, second=s, race_id=1, name="A", racer_id=1, class_id=1, cadence=80, resistance=50)
            for s in range(1, 11)
        ]
        pending = fold_readings(new_state(), readings)["races"]["1"]["r"]
        totals: dict[int, RacerTotal] = {}
        assert apply_pending(totals, pending) is True
        snapshot = copy.deepcopy(totals)
        assert apply_pending(totals, pending) is False
        assert totals == snapshot
        assert totals[1].score == pytest.approx(10 * output_of(80, 50))
        assert totals[1].last_second == 10

    def test_rank_by_score_desc_then_racer_id_asc(self) -> None:
        def total(units: int) -> RacerTotal:
            return RacerTotal("n", 1, units, 2, 1, 1.0, None)

        ranked = rank_totals({5: total(100), 2: total(300), 9: total(300), 1: total(50)})
        assert [rid for rid, _ in ranked] == [2, 9, 5, 1]

    def test_personal_best_only_if_strictly_greater(self) -> None:
        assert is_better_best(10.0, None)
        assert is_better_best(10.5, 10.0)
        assert not is_better_best(10.0, 10.0)
        assert not is_better_best(9.0, 10.0)

    def test_units_round_trip(self) -> None:
        assert units_to_score(1_234_567) == 123.4567
