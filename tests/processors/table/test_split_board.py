"""A live board split in parts (races past one item's 400 KB): same standings, every write conditional,
frozen at settlement, readers in O(1) requests. Against the embedded endpoint, through the real table
module and handlers."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors import clients
from processors.domain.scoring import output_of
from processors.handlers import aggregator, publisher
from processors.table import ResultsTable, final_results_from_stream, items
from tests.processors.conftest import TABLE_NAME, receive_all
from tests.processors.factories import LambdaContext, kinesis_event, race_identity, ride
from tests.processors.table.test_table import pending

LENGTH_S = 60
_RACES = itertools.count()


def split(table: ResultsTable, parts: int) -> ResultsTable:
    return ResultsTable(table._client, TABLE_NAME, board_parts=parts)


def part_items(dynamodb: Any, race_id: int, parts: int) -> dict[int, dict[str, Any]]:
    found = {}
    for part in range(parts):
        item = dynamodb.get_item(TableName=TABLE_NAME, Key=items.live_part_key(race_id, part), ConsistentRead=True)
        if "Item" in item:
            found[part] = item["Item"]
    return found


def count_requests(client: Any) -> list[str]:
    seen: list[str] = []
    client.meta.events.register("before-call.dynamodb", lambda model, **_: seen.append(model.name))
    return seen


class TestBoardPart:
    def test_parts_follow_the_kinesis_hash_of_the_contract_key(self) -> None:
        # A shard holds the MD5 range of its partition keys: with equal ranges, part == shard.
        import hashlib

        for racer_id in range(200):
            digest = int.from_bytes(hashlib.md5(f"7:{racer_id}".encode()).digest(), "big")
            assert items.board_part(7, racer_id, 4) == digest // (2**128 // 4)
        assert {items.board_part(7, racer_id, 1) for racer_id in range(50)} == {0}

    def test_racers_spread_evenly(self) -> None:
        sizes = [0] * 8
        for racer_id in range(10_000):
            sizes[items.board_part(11, racer_id, 8)] += 1
        assert min(sizes) > 1_100 and max(sizes) < 1_400


class TestSplitMerge:
    def test_same_standings_as_one_item_and_each_racer_in_its_part(self, table: ResultsTable, dynamodb: Any) -> None:
        riders = {racer_id: list(range(1, 2 + racer_id % 5)) for racer_id in range(1, 41)}
        table.merge_live(7, 3, pending(7, riders, final={3, 9}), now_ms=100)
        four = split(table, 4)
        outcome = four.merge_live(8, 3, pending(8, riders, final={3, 9}), now_ms=100)
        assert outcome.written and outcome.racers == 40
        one, many = table.live_standings(7), table.live_standings(8)
        assert one is not None and many is not None
        assert [(r.racer_id, r.score, r.second, r.finished) for r in many.rows] == [
            (r.racer_id, r.score, r.second, r.finished) for r in one.rows
        ]
        summary = dynamodb.get_item(TableName=TABLE_NAME, Key=items.live_key(8))["Item"]
        assert items.BOARD not in summary and summary[items.PARTS] == {"N": "4"}
        stored = part_items(dynamodb, 8, 4)
        assert len(stored) == 4
        for part, item in stored.items():
            assert set(items.live_totals(item)) == {r for r in riders if items.board_part(8, r, 4) == part}
        # a replay writes nothing
        again = four.merge_live(8, 3, pending(8, riders, final={3, 9}), now_ms=200)
        assert not again.written
        assert table.live_standings(8).version == many.version  # type: ignore[union-attr]

    def test_readers_need_two_requests_whatever_the_race_size(self, table: ResultsTable, dynamodb: Any) -> None:
        four = split(table, 8)
        racers = {racer_id: [1, 2, 3] for racer_id in range(1, 10_001)}
        window = pending(9, racers, name="x" * 40)
        outcome = four.merge_live(9, 3, window, now_ms=100, max_racers=10_000)
        assert outcome.written and not outcome.too_large and not outcome.rejected
        assert outcome.racers == 10_000
        assert outcome.item_bytes < items.LIVE_ITEM_LIMIT_BYTES
        seen = count_requests(dynamodb)
        live = table.live_standings(9)
        assert seen == ["GetItem", "BatchGetItem"]
        assert live is not None and len(live.rows) == 10_000
        assert [row.racer_id for row in live.rows[:3]] == [10_000, 9_999, 9_998]  # cadence grows with id

    def test_a_writer_follows_the_parts_the_race_started_with(self, table: ResultsTable, dynamodb: Any) -> None:
        split(table, 4).merge_live(7, 3, pending(7, {1: [1], 2: [1]}))
        table.merge_live(7, 3, pending(7, {1: [2], 3: [1]}))  # a one-item writer (another config)
        split(table, 2).merge_live(7, 3, pending(7, {4: [1]}))
        summary = dynamodb.get_item(TableName=TABLE_NAME, Key=items.live_key(7))["Item"]
        assert summary[items.PARTS] == {"N": "4"} and items.BOARD not in summary
        live = table.live_standings(7)
        assert live is not None and {row.racer_id: row.second for row in live.rows} == {1: 2, 2: 1, 3: 1, 4: 1}
        # and a race started as one item stays one item for a split writer
        table.merge_live(8, 3, pending(8, {1: [1]}))
        split(table, 4).merge_live(8, 3, pending(8, {2: [1]}))
        assert not part_items(dynamodb, 8, 4)
        assert {row.racer_id for row in table.live_standings(8).rows} == {1, 2}  # type: ignore[union-attr]

    def test_concurrent_writers_lose_nothing(self, table: ResultsTable) -> None:
        # Four writers (shards) with interleaved racers and seconds: every part has several writers.
        errors: list[BaseException] = []

        def write(shard: int) -> None:
            writer = split(table, 3)
            try:
                for second in range(1, 6):
                    writer.merge_live(7, 3, pending(7, {r: [second] for r in range(shard, 60, 4)}))
            except BaseException as exc:  # noqa: BLE001 - reported below, not lost in the thread
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(shard,)) for shard in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        live = table.live_standings(7)
        assert live is not None and len(live.rows) == 60
        assert {row.second for row in live.rows} == {5}
        assert {row.racer_id: row.score for row in live.rows} == pytest.approx(
            {r: 5 * output_of(80 + r, 50) for r in range(60)}
        )

    def test_the_race_cap_holds_per_part_with_headroom(self, table: ResultsTable) -> None:
        outcome = split(table, 2).merge_live(7, 3, pending(7, {r: [1] for r in range(1, 41)}), max_racers=8)
        # each part admits ceil(8 * 5/4 / 2) = 5 racers
        assert outcome.racers == 10 and len(outcome.rejected) == 30
        assert len(table.live_standings(7).rows) == 10  # type: ignore[union-attr]

    # each example writes two races of its own (fresh ids), so sharing the function's table is safe
    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        windows=st.lists(
            st.dictionaries(st.integers(1, 30), st.lists(st.integers(1, 20), min_size=1, max_size=4), min_size=1),
            min_size=1,
            max_size=4,
        ),
        parts=st.integers(2, 5),
    )
    def test_any_windows_give_the_one_item_standings(
        self, table: ResultsTable, windows: list[dict[int, list[int]]], parts: int
    ) -> None:
        race = 1000 + 2 * next(_RACES)
        for window in windows:
            table.merge_live(race, 3, pending(race, window))
            split(table, parts).merge_live(race + 1, 3, pending(race + 1, window))
        one, many = table.live_standings(race), table.live_standings(race + 1)
        assert one is not None and many is not None
        rows = [(r.racer_id, r.score, r.second) for r in one.rows]
        assert [(r.racer_id, r.score, r.second) for r in many.rows] == rows


class TestSplitSettlement:
    def test_settling_freezes_every_part_and_reconciles(self, table: ResultsTable, dynamodb: Any) -> None:
        four = split(table, 4)
        four.put_race_identity(race_identity(7, class_id=3, length_s=LENGTH_S))
        four.merge_live(7, 3, pending(7, {1: [1, 2], 2: [1, 2], 3: [1]}, final={1, 2}))
        outcome = four.settle_race(four.race_identity(7))  # type: ignore[arg-type]
        assert (outcome.finished, outcome.reconciled) == (2, 2)
        assert sorted(result.racer_id for result in four.race_results(7).items) == [1, 2]
        stored = part_items(dynamodb, 7, 4)
        assert len(stored) == 4  # parts nobody rode in exist, empty and frozen: nothing can create them later
        assert all(items.is_live_settled(item) for item in stored.values())
        summary = dynamodb.get_item(TableName=TABLE_NAME, Key=items.live_key(7))["Item"]
        assert items.is_live_settled(summary) and items.BOARD not in summary
        # a later window is refused whole, and all its racers are reported unwritten
        late = four.merge_live(7, 3, pending(7, {r: [3] for r in range(1, 20)}))
        assert late.settled and not late.written
        assert late.unwritten is None  # None: every racer of the window (aggregator.write_state)
        assert part_items(dynamodb, 7, 4) == stored
        again = four.settle_race(four.race_identity(7))  # type: ignore[arg-type]
        assert (again.finished, again.reconciled) == (2, 0)

    def test_a_part_frozen_under_a_writer_is_reported_late(self, table: ResultsTable, dynamodb: Any) -> None:
        four = split(table, 4)
        four.merge_live(7, 3, pending(7, {r: [1] for r in range(1, 30)}))
        # freeze one part only (as settlement does part by part)
        dynamodb.update_item(
            TableName=TABLE_NAME,
            Key=items.live_part_key(7, 0),
            UpdateExpression="SET settledAt = :n",
            ExpressionAttributeValues={":n": {"N": "1"}},
        )
        outcome = four.merge_live(7, 3, pending(7, {r: [2] for r in range(1, 30)}))
        frozen = {str(r) for r in range(1, 30) if items.board_part(7, r, 4) == 0}
        assert outcome.settled and outcome.written
        assert outcome.unwritten is not None and set(outcome.unwritten) == frozen


class TestSplitReaders:
    def test_finals_read_part_images(self, table: ResultsTable, dynamodb: Any) -> None:
        four = split(table, 4)
        four.merge_live(7, 3, pending(7, {r: [1, 2] for r in range(1, 12)}))
        before = part_items(dynamodb, 7, 4)
        four.merge_live(7, 3, pending(7, {r: [3] for r in range(1, 12)}, final={5, 6}))
        after = part_items(dynamodb, 7, 4)
        finished = [
            result.racer_id for part in after for result in final_results_from_stream(before.get(part), after[part])
        ]
        assert sorted(finished) == [5, 6]

    def test_publisher_reads_a_split_race_once_per_batch(self, table: ResultsTable, dynamodb: Any) -> None:
        four = split(table, 4)
        four.merge_live(7, 3, pending(7, {r: [1, 2] for r in range(1, 40)}))
        records = [
            {"eventName": "MODIFY", "dynamodb": {"NewImage": item, "OldImage": {}}}
            for item in part_items(dynamodb, 7, 4).values()
        ]
        summary = dynamodb.get_item(TableName=TABLE_NAME, Key=items.live_key(7))["Item"]
        records.append({"eventName": "INSERT", "dynamodb": {"NewImage": summary}})
        seen = count_requests(dynamodb)
        standings = publisher.changed_standings(records, four)
        assert seen == ["GetItem", "BatchGetItem"]
        assert len(standings) == 1 and len(standings[0].rows) == 39
        assert standings[0].version == table.live_standings(7).version  # type: ignore[union-attr]


class TestSplitAggregator:
    def test_the_handler_splits_by_configuration_and_dead_letters_nothing(
        self, table: ResultsTable, dynamodb: Any, dead_letter_queue: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ALLEYCAT_LIVE_BOARD_PARTS", "4")
        clients.clear()  # the handlers' configuration and table are made once per process, as in Lambda
        table.put_race_identity(race_identity(7, class_id=3, length_s=LENGTH_S))
        records = ride(range(50), range(1, 4)) + ride(range(50), range(1, 3))  # duplicates
        aggregator.lambda_handler(kinesis_event(records, final=True), LambdaContext())
        assert len(part_items(dynamodb, 7, 4)) == 4
        live = table.live_standings(7)
        assert live is not None and len(live.rows) == 50
        assert {row.racer_id: row.score for row in live.rows} == pytest.approx(
            {r: 3 * output_of(60 + r % 50, 40) for r in range(50)}
        )
        assert receive_all(dead_letter_queue) == []
