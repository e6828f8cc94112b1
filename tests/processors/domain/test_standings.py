"""Folding readings into the window state and merging windows into standings (``processors.domain.window``,
``standings``): order-independent, idempotent, ranked by the ranking rule. No AWS."""

from __future__ import annotations

import base64
import copy
import random
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.domain.message import BadRecord, Reading, Reason, decode_payloads
from processors.domain.scoring import output_of
from processors.domain.standings import RacerTotal, apply_pending, finished_changes, rank_key
from processors.domain.window import fold_fields, new_state, state_seconds
from tests.processors.factories import fold_readings, make_reading, message, recompute_scores


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
