"""The pipeline knows the schedule: every record is checked against its race's identity (A0);
races settle when the pipeline has passed their settle deadline; reconciliation; size refusals.

Against moto, through the real handler and the real table module.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import orjson
import pytest

from processors import clients
from processors.domain.scoring import output_of
from processors.handlers import aggregator
from processors.table import FinalResult, ResultsTable, items
from processors.table.items import live_key
from tests.processors.conftest import TABLE_NAME, receive_all
from tests.processors.factories import (
    RACE_START_MS,
    LambdaContext,
    kinesis_event,
    kinesis_record,
    message,
    race_identity,
    ride,
)

# Race 7: class 3, 60 s long, starting at the factories' arrival time; settles 120 s after its end.
LENGTH_S = 60
SETTLE_AT_S = RACE_START_MS / 1000 + LENGTH_S + 120


def letters_of(queue: str) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in receive_all(queue)]


def aggregate(records: list[dict[str, Any]]) -> dict[str, Any]:
    return aggregator.lambda_handler(kinesis_event(records, final=True), LambdaContext())


@pytest.fixture
def race(table: ResultsTable) -> ResultsTable:
    assert table.put_race_identity(race_identity(7, class_id=3, length_s=LENGTH_S))
    return table


class TestReasons:
    def test_each_schedule_reason_is_counted_logged_dead_lettered_and_skipped(
        self, race: ResultsTable, dead_letter_queue: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        race.put_race_identity(race_identity(8, class_id=3, cancelled=True))
        good = ride(range(2), range(1, 3))
        bad = {
            "unknown_race": kinesis_record(message(race_id=99)),
            "cancelled": kinesis_record(message(race_id=8)),
            "class_mismatch": kinesis_record(message(racer_id=5, class_id=1)),
            "second_out_of_race": kinesis_record(message(racer_id=6, second=LENGTH_S + 1)),
            "late": kinesis_record(message(racer_id=7, second=3), arrival=SETTLE_AT_S + 0.5),
        }
        response = aggregate(good[:2] + list(bad.values()) + good[2:])
        assert response == {"state": {"races": {}}}  # the batch does not fail

        letters = {letter["sequenceNumber"]: letter for letter in letters_of(dead_letter_queue)}
        reasons = {name: letters[record["kinesis"]["sequenceNumber"]]["reason"] for name, record in bad.items()}
        assert reasons == {
            "unknown_race": "unknown_race",
            "cancelled": "unknown_race",
            "class_mismatch": "class_mismatch",
            "second_out_of_race": "second_out_of_race",
            "late": "late",
        }
        assert len(letters) == len(bad)
        logged = {r.sequenceNumber: r.reason for r in caplog.records if r.getMessage() == "bad record skipped"}
        assert logged == {
            record["kinesis"]["sequenceNumber"]: reason
            for (record, reason) in zip(bad.values(), reasons.values(), strict=True)
        }
        (summary,) = [r for r in caplog.records if r.getMessage() == "aggregated"]
        assert (summary.readings, summary.bad) == (4, 5)

        # only the good readings count: racers 0 and 1, two seconds each, in the race's own class
        live = race.live_standings(7)
        assert live is not None and live.class_id == 3
        assert {row.racer_id: row.score for row in live.rows} == pytest.approx(
            {0: 2 * output_of(60, 40), 1: 2 * output_of(61, 40)}
        )
        assert race.live_standings(99) is None and race.live_standings(8) is None

    def test_a_smaller_class_id_no_longer_moves_the_race(self, race: ResultsTable, dead_letter_queue: str) -> None:
        aggregate(ride(range(3), range(1, 3)))
        aggregate([kinesis_record(message(racer_id=9, second=3, class_id=1))])
        live = race.live_standings(7)
        assert live is not None and live.class_id == 3 and len(live.rows) == 3
        assert [letter["reason"] for letter in letters_of(dead_letter_queue)] == ["class_mismatch"]

    def test_a_full_race_refuses_new_racers_and_dead_letters_their_seconds(
        self, race: ResultsTable, dead_letter_queue: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ALLEYCAT_MAX_RACERS_PER_RACE", "3")
        clients.clear()  # read once per process, as in Lambda
        aggregate(ride(range(2), range(1, 3)))
        # WHEN racers 0..5 ride: 0 and 1 are in, there is room for one more (the lowest id: 2)
        aggregate(ride(range(6), range(3, 5)))
        live = race.live_standings(7)
        assert live is not None and sorted(row.racer_id for row in live.rows) == [0, 1, 2]
        assert {row.racer_id: row.second for row in live.rows} == {0: 4, 1: 4, 2: 4}
        (letter,) = letters_of(dead_letter_queue)
        assert letter["reason"] == "race_full"
        fragment = json.loads(base64.b64decode(letter["data"]))
        assert fragment["raceId"] == 7 and fragment["classId"] == 3
        assert {racer: sorted(map(int, pending["o"])) for racer, pending in fragment["racers"].items()} == {
            "3": [3, 4],
            "4": [3, 4],
            "5": [3, 4],
        }
        # racers already in the race keep riding
        aggregate(ride(range(3), range(5, 6)))
        live = race.live_standings(7)
        assert live is not None and {row.second for row in live.rows} == {5}


class TestSettlement:
    def test_a_race_settles_when_the_pipeline_passes_its_deadline_and_then_never_changes(
        self, race: ResultsTable, dynamodb: Any, dead_letter_queue: str
    ) -> None:
        race.put_race_identity(race_identity(8, class_id=3, length_s=3600))
        # GIVEN race 7 ridden by 3 racers, 2 of them finished; no finals handler ran at all
        aggregate(ride(range(3), range(1, 6)) + ride(range(2), range(6, 7), final_at=6))
        identity = race.race_identity(7)
        assert identity is not None and not identity.settled
        # WHEN records (of another race) that arrived before the deadline are written: nothing settles
        aggregate(ride(range(1), range(1, 2), race_id=8, arrival=SETTLE_AT_S - 1))
        assert not race.race_identity(7).settled  # type: ignore[union-attr]
        # AND once the shard has written a record that arrived past race 7's deadline, it settles
        aggregate(ride(range(1), range(2, 3), race_id=8, arrival=SETTLE_AT_S + 1))
        settled = race.race_identity(7)
        assert settled is not None and settled.settled
        assert race.race_identity(8).settled is False  # type: ignore[union-attr]

        # THEN every finished racer has a result (reconciled: finals never ran), DNF stays in the live item
        results = race.race_results(7).items
        assert sorted(result.racer_id for result in results) == [0, 1]
        assert {r.racer_id: r.score for r in results} == pytest.approx(
            {0: 6 * output_of(60, 40), 1: 6 * output_of(61, 40)}
        )
        assert race.personal_best(3, 1) is not None
        live = race.live_standings(7)
        assert live is not None and [
            (row.racer_id, row.finished) for row in sorted(live.rows, key=lambda r: r.racer_id)
        ] == [
            (0, True),
            (1, True),
            (2, False),
        ]

        # AND a reading of race 7 that arrived in time but is processed after settlement is late
        frozen = dynamodb.get_item(TableName=TABLE_NAME, Key=live_key(7), ConsistentRead=True)["Item"]
        aggregate(ride(range(3), range(7, 8), arrival=SETTLE_AT_S - 60))
        assert dynamodb.get_item(TableName=TABLE_NAME, Key=live_key(7), ConsistentRead=True)["Item"] == frozen
        assert {letter["reason"] for letter in letters_of(dead_letter_queue)} == {"late"}

    def test_a_settled_race_is_not_republished(self, race: ResultsTable) -> None:
        race.settle_race(race.race_identity(7))  # type: ignore[arg-type]
        assert race.put_race_identity(race_identity(7, class_id=4, length_s=LENGTH_S)) is False
        identity = race.race_identity(7)
        assert identity is not None and identity.class_id == 3 and identity.settled

    def test_a_lagging_active_shard_holds_settlement_back_an_idle_one_does_not(self, race: ResultsTable) -> None:
        now = 1_900_000_000_000
        race.advance_watermark("bikes/shard-b", int(SETTLE_AT_S * 1000) - 5000, now_ms=now)
        settled = aggregator.settle_due(race, "bikes/shard-a", int(SETTLE_AT_S * 1000) + 1, idle_ms=60_000, now_ms=now)
        assert settled == [] and not race.race_identity(7).settled  # type: ignore[union-attr]
        # shard b wrote nothing for over a minute: caught up (nothing pending), it no longer holds back
        later = now + 61_000
        settled = aggregator.settle_due(
            race, "bikes/shard-a", int(SETTLE_AT_S * 1000) + 2, idle_ms=60_000, now_ms=later
        )
        assert settled == [7] and race.race_identity(7).settled  # type: ignore[union-attr]

    def test_a_race_nobody_rode_settles_and_stays_empty(self, race: ResultsTable, dead_letter_queue: str) -> None:
        outcome = race.settle_race(race.race_identity(7))  # type: ignore[arg-type]
        assert (outcome.finished, outcome.reconciled) == (0, 0)
        aggregate(ride(range(2), range(1, 2)))
        live = race.live_standings(7)
        assert live is not None and live.rows == []
        assert [letter["reason"] for letter in letters_of(dead_letter_queue)] == ["late", "late"]


class TestReconciliation:
    def test_reconciliation_writes_what_finals_missed_and_is_idempotent(
        self, race: ResultsTable, dynamodb: Any
    ) -> None:
        aggregate(ride(range(4), range(1, 4), final_at=3))
        # finals wrote racer 0's result wrongly and gave up on the others
        live_item = dynamodb.get_item(TableName=TABLE_NAME, Key=live_key(7), ConsistentRead=True)["Item"]
        first = items.finished_results_of_live(live_item)[0]
        race.put_final_results([dataclasses.replace(first, score=1.0)])
        outcome = race.settle_race(race.race_identity(7), now_ms=1_800_000_000_000)  # type: ignore[arg-type]
        assert (outcome.finished, outcome.reconciled) == (4, 4)
        results = {r.racer_id: r.score for r in race.race_results(7).items}
        assert results == pytest.approx({racer: 3 * output_of(60 + racer, 40) for racer in range(4)})

        def snapshot() -> list[dict[str, Any]]:
            found = []
            for key in [live_key(7), items.identity_key(7)] + [items.result_key(7, r) for r in range(4)]:
                found.append(dynamodb.get_item(TableName=TABLE_NAME, Key=key, ConsistentRead=True)["Item"])
            return found

        before = snapshot()
        again = race.settle_race(race.race_identity(7), now_ms=1_800_000_999_000)  # type: ignore[arg-type]
        assert (again.finished, again.reconciled) == (4, 0)
        assert snapshot() == before


class TestSize:
    def test_over_the_guard_the_seconds_are_dead_lettered_and_can_be_replayed(
        self, race: ResultsTable, dead_letter_queue: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(items, "LIVE_ITEM_LIMIT_BYTES", 2000)
        aggregate(ride(range(40), range(1, 4)))
        assert race.live_standings(7) is None
        letters = letters_of(dead_letter_queue)
        assert letters and {letter["reason"] for letter in letters} == {"item_too_large"}
        fragments = [orjson.loads(base64.b64decode(letter["data"])) for letter in letters]
        assert all(not letter["truncated"] for letter in letters)
        # replay: merging the fragments (with the guard back) restores every second
        monkeypatch.setattr(items, "LIVE_ITEM_LIMIT_BYTES", 384 * 1024)
        for fragment in fragments:
            race.merge_live(fragment["raceId"], fragment["classId"], fragment["racers"])
        live = race.live_standings(7)
        assert live is not None and len(live.rows) == 40
        assert {row.racer_id: row.score for row in live.rows} == pytest.approx(
            {racer: 3 * output_of(60 + racer, 40) for racer in range(40)}
        )

    def test_an_item_size_refusal_by_the_endpoint_is_treated_like_the_guard(
        self, race: ResultsTable, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # GIVEN a guard that lets through what the endpoint refuses (405,001 bytes by our estimate)
        monkeypatch.setattr(items, "LIVE_ITEM_LIMIT_BYTES", 10 * 1024 * 1024)
        pending = {
            str(racer): {"n": f"{racer:064d}", "ns": 1, "o": {str(s): 100.0 for s in range(1, 301, 2)}, "f": None}
            for racer in range(4000)
        }
        outcome = race.merge_live(7, 3, pending)
        assert outcome.item_bytes > 409_600
        assert outcome.too_large and not outcome.written
        assert race.live_standings(7) is None

    def test_the_guard_keeps_a_margin_below_what_the_endpoint_refuses(self) -> None:
        assert items.LIVE_ITEM_LIMIT_BYTES <= 405_000 - 10_000


class TestQuietStream:
    def test_races_settle_when_every_shard_is_idle_and_not_while_one_is_active(self, race: ResultsTable) -> None:
        from processors.settlement import settle_quiet

        deadline = int(SETTLE_AT_S * 1000)
        race.advance_watermark("bikes/shard-a", deadline - 10_000, now_ms=deadline + 5_000)
        # a shard wrote 5 s ago: the aggregator is running and decides
        assert settle_quiet(race, idle_ms=60_000, now_ms=deadline + 10_000) == []
        # a minute later nothing has been written by any shard: the stream is quiet, the race settles
        assert settle_quiet(race, idle_ms=60_000, now_ms=deadline + 70_000) == [7]
        assert race.race_identity(7).settled  # type: ignore[union-attr]
        assert settle_quiet(race, idle_ms=60_000, now_ms=deadline + 80_000) == []  # once

    def test_reconciliation_never_brings_back_a_result_staff_voided(self, race: ResultsTable) -> None:
        aggregate(ride(range(2), range(1, 3), final_at=2))
        live = race.live_standings(7)
        assert live is not None and all(row.finished for row in live.rows)
        # finals wrote racer 1's result, staff voided it; racer 0's write was given up on
        result = FinalResult(7, 3, 1, "Racer 1", 2 * output_of(61, 40), 2, message(second=2)["deviceTimestamp"])
        race.put_final_results([result])
        race.void_final_result(result, voided_at_ms=1)
        outcome = race.settle_race(race.race_identity(7))  # type: ignore[arg-type]
        assert outcome.reconciled == 1
        assert [r.racer_id for r in race.race_results(7).items] == [0]


class TestSettlementCadence:
    @pytest.mark.parametrize(
        ("start", "end", "checks"),
        [
            ("16:00:04", "16:00:05", True),  # closes on a multiple of 5 s
            ("16:00:00", "16:00:01", False),
            ("16:00:07", "16:00:08", False),
            ("16:00:09", "16:00:10", True),
            ("16:00:00", "16:00:05", True),  # a window of 5 s or more: every one
            ("16:00:03", "16:00:15", True),
        ],
    )
    def test_a_1s_window_checks_every_fifth_time(self, start: str, end: str, checks: bool) -> None:
        from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamWindow

        window = KinesisStreamWindow({"start": f"2025-11-26T{start}Z", "end": f"2025-11-26T{end}Z"})
        assert aggregator.checks_settlement(window) is checks
        assert aggregator.checks_settlement(None) is True

    def test_other_windows_write_but_neither_store_the_watermark_nor_settle(
        self, race: ResultsTable, dynamodb: Any
    ) -> None:
        race.put_race_identity(race_identity(8, class_id=3, length_s=3600))
        calls: list[str] = []
        dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
        event = kinesis_event(ride(range(2), range(1, 3), arrival=SETTLE_AT_S - 10), final=True)
        event["window"] = {"start": "2025-11-26T16:00:00Z", "end": "2025-11-26T16:00:01Z"}
        aggregator.lambda_handler(event, LambdaContext())
        assert race.live_standings(7) is not None  # written
        assert "Query" not in calls and "UpdateItem" not in calls
        assert race.watermarks() == [] and not race.race_identity(7).settled  # type: ignore[union-attr]
        # the fifth window of the shard does both: its records (of race 8) arrived past race 7's deadline
        aggregate(ride(range(2), range(3, 4), race_id=8, arrival=SETTLE_AT_S + 2))
        assert [mark.arrival_ms for mark in race.watermarks()] == [int((SETTLE_AT_S + 2) * 1000)]
        assert race.race_identity(7).settled  # type: ignore[union-attr]
