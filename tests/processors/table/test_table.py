"""The table module against moto: item shapes, A1-A5, cursors, batching, errors."""

from __future__ import annotations

import ast
import base64
import json
import random
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from hypothesis import given
from hypothesis import strategies as st

from processors.domain.message import MAX_ID
from processors.domain.scoring import output_of
from processors.domain.standings import RacerTotal
from processors.domain.window import new_state
from processors.table import (
    FinalResult,
    InvalidCursor,
    PersonalBest,
    ResultsTable,
    StoreUnavailable,
    items,
    schema,
)
from processors.table.store import get_results_table
from tests.conftest import free_port
from tests.processors.conftest import TABLE_NAME
from tests.processors.factories import fold_readings, make_reading, to_lambda_image

PROCESSORS = Path(__file__).resolve().parents[3] / "processors"


def pending(race_id: int, racer_seconds: dict[int, list[int]], *, final: set[int] = frozenset(), name: str = "R"):
    readings = [
        make_reading(
            event="final" if racer_id in final and second == max(seconds) else "update",
            device_ts=10_000 + second,
            second=second,
            race_id=race_id,
            name=f"{name}{racer_id}",
            racer_id=racer_id,
            class_id=3,
            cadence=80 + racer_id,
            resistance=50,
        )
        for racer_id, seconds in racer_seconds.items()
        for second in seconds
    ]
    return fold_readings(new_state(), readings)["races"][str(race_id)]["r"]


def result(race_id: int, racer_id: int, score: float, class_id: int = 3) -> FinalResult:
    return FinalResult(race_id, class_id, racer_id, f"R{racer_id}", score, 300, 1_764_172_800_000 + race_id)


class TestSchema:
    def test_table_created_from_schema_has_indexes_and_stream(self, dynamodb: Any) -> None:
        description = dynamodb.describe_table(TableName="alleycat-test")["Table"]
        assert description["KeySchema"] == schema.KEY_SCHEMA
        assert {index["IndexName"] for index in description["GlobalSecondaryIndexes"]} == {"gsi1", "gsi2"}
        assert description["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"

    def test_create_table_is_idempotent(self, dynamodb: Any) -> None:
        arn = schema.create_table(dynamodb, "alleycat-test")
        assert arn.startswith("arn:aws:dynamodb:")


class TestLiveItem:
    def test_a1_live_standings_ranked(self, table: ResultsTable) -> None:
        assert table.live_standings(7) is None
        table.merge_live(7, 3, pending(7, {1: [1, 2, 3], 2: [1, 2, 3, 4], 3: [1, 2, 3]}, final={2}), now_ms=123)
        live = table.live_standings(7)
        assert live is not None
        assert (live.race_id, live.class_id, live.version, live.updated_at_ms) == (7, 3, 1, 123)
        assert [row.racer_id for row in live.rows] == [2, 3, 1]
        top = live.rows[0]
        assert top.score == pytest.approx(4 * output_of(82, 50))
        assert (top.second, top.output, top.finished, top.name) == (4, output_of(82, 50), True, "R2")
        assert not live.rows[1].finished

    def test_merge_counts_each_second_once_across_windows(self, table: ResultsTable) -> None:
        table.merge_live(7, 3, pending(7, {1: [1, 2, 3]}))
        table.merge_live(7, 3, pending(7, {1: [3, 4]}))
        outcome = table.merge_live(7, 3, pending(7, {1: [1, 2, 3, 4]}))
        assert not outcome.written
        live = table.live_standings(7)
        assert live is not None and live.version == 2
        assert live.rows[0].score == pytest.approx(4 * output_of(81, 50))

    def test_stale_version_is_reread_and_merged(self, table: ResultsTable, dynamodb: Any) -> None:
        # GIVEN a board another writer (its own client) started, and that puts racer 2 right after our first read
        other = ResultsTable(boto3.client("dynamodb"), "alleycat-test")
        other.merge_live(7, 3, pending(7, {1: [1]}))
        reads = {"n": 0}

        def after_get(**_: Any) -> None:
            reads["n"] += 1
            if reads["n"] == 1:
                other.merge_live(7, 3, pending(7, {2: [1, 2]}))

        dynamodb.meta.events.register("after-call.dynamodb.GetItem", after_get)
        # WHEN we merge racer 3 from that now stale read
        outcome = table.merge_live(7, 3, pending(7, {3: [1]}))
        # THEN our put was rejected once, re-read, and nobody's racers are lost
        assert outcome.written and outcome.attempts == 2 and reads["n"] == 2
        live = other.live_standings(7)
        assert live is not None
        assert {row.racer_id for row in live.rows} == {1, 2, 3}
        assert live.version == 3

    def test_thousand_racers_fit_in_one_item(self, table: ResultsTable, dynamodb: Any) -> None:
        # a whole 5-minute race of 1,000 racers with 64-character names, as one window's state
        window = {
            str(racer_id): {
                "n": f"{racer_id:064d}",
                "ns": 300,
                "o": {str(second): output_of(80 + racer_id % 100, 50) for second in range(1, 301)},
                "f": 1_764_172_800_000 if racer_id % 2 else None,
            }
            for racer_id in range(1000)
        }
        outcome = table.merge_live(7, 3, window)
        assert outcome.written and outcome.racers == 1000
        assert outcome.item_bytes < 400 * 1024
        live = table.live_standings(7)
        assert live is not None and len(live.rows) == 1000
        assert [row.racer_id for row in live.rows[:3]] == [99, 199, 299]  # highest cadence, then racer id
        assert live.rows[0].score == pytest.approx(300 * output_of(179, 50))
        assert sum(row.finished for row in live.rows) == 500

    def test_the_board_round_trips(self) -> None:
        totals = {
            5: RacerTotal("Zoë Ünïcode", 2, 1_234_567, 0b1110, 3, 181.4567, None),
            2**53 - 1: RacerTotal("x" * 64, 1, 1_234_567, 0b10, 1, 0.0001, 1_764_172_800_000),
            0: RacerTotal("", 9, 0, 0, 9, 0.0, 0),
        }
        item = items.live_item(7, 3, totals, version=4, updated_at_ms=99)
        assert set(item) == {"pk", "sk", "raceId", "classId", "version", "updatedAt", "board"}
        assert items.live_totals(item) == totals
        assert items.live_totals(to_lambda_image(item)) == totals  # a stream image: base64 text
        rows = items.live_standings_from_item(item).rows
        assert [(row.racer_id, row.score, row.finished) for row in rows] == [
            (5, 123.4567, False),
            (2**53 - 1, 123.4567, True),
            (0, 0.0, True),
        ]
        with pytest.raises(ValueError):
            items.live_totals({**item, "board": {"B": item["board"]["B"][:-1]}})

    def test_hour_long_race_with_gaps_stays_under_the_item_limit(self) -> None:
        seconds = 0
        for second in range(1, 3601):
            if second % 60:
                seconds |= 1 << second
        totals = {
            racer_id: RacerTotal("N" * 64, 3600, 123_456_789_0, seconds, 3599, 470.25, 1_764_172_800_000)
            for racer_id in range(1000)
        }
        item = items.live_item(7, 3, totals, version=99, updated_at_ms=1_764_172_800_000)
        assert items.item_size(item) < 400 * 1024
        assert items.live_totals(item) == totals


class TestItemLimit:
    def test_a_race_over_the_item_limit_is_reported_not_written(self, table: ResultsTable) -> None:
        # GIVEN 800 racers with 64-character names, an hour long, every other second lost at random
        rng = random.Random(3)
        window = {
            str(racer_id): {
                "n": f"{racer_id:064d}",
                "ns": 1,
                "o": {str(second): 100.0 for second in range(1, 3601) if rng.random() < 0.5},
                "f": None,
            }
            for racer_id in range(800)
        }
        table.merge_live(7, 3, pending(7, {1: [1]}))
        outcome = table.merge_live(7, 3, window)
        assert outcome.too_large and not outcome.written and outcome.item_bytes > 400 * 1024
        live = table.live_standings(7)
        assert live is not None and len(live.rows) == 1 and live.version == 1


class TestSecondsEncoding:
    @pytest.mark.parametrize(
        "seconds",
        [[], [1], list(range(1, 301)), list(range(1, 3601)), list(range(1, 3601, 2)), [1, 2, 3, 100, 3600]],
    )
    def test_round_trip(self, seconds: list[int]) -> None:
        bits = sum(1 << s for s in seconds)
        encoded = items.encode_seconds(bits)
        assert items.decode_seconds(encoded) == bits
        assert len(encoded) <= 452

    @given(st.sets(st.integers(min_value=1, max_value=3600), max_size=3600))
    def test_any_set_of_seconds_round_trips(self, seconds: set[int]) -> None:
        bits = sum(1 << second for second in seconds)
        encoded = items.encode_seconds(bits)
        assert items.decode_seconds(encoded) == bits
        assert len(encoded) <= 1 + (bits.bit_length() + 7) // 8

    def test_gappy_hour_is_compressed(self) -> None:
        rng = random.Random(7)
        bits = sum(1 << s for s in range(1, 3601) if rng.random() > 0.05)  # 5 % of messages lost
        encoded = items.encode_seconds(bits)
        assert encoded[0] == 2 and len(encoded) < 300
        assert items.decode_seconds(encoded) == bits

    def test_contiguous_ride_is_tiny(self) -> None:
        assert len(items.encode_seconds(sum(1 << s for s in range(1, 3601)))) == 5

    @given(st.integers(min_value=0, max_value=3600), st.integers(min_value=0, max_value=3600))
    def test_one_run_is_its_first_and_last_second(self, first: int, length: int) -> None:
        last = min(first + length, 3600)
        bits = ((1 << (last - first + 1)) - 1) << first
        encoded = items.encode_seconds(bits)
        if last >= 32:  # past 4 bytes of bitmap a run is shorter
            assert encoded == bytes([1]) + first.to_bytes(2, "big") + last.to_bytes(2, "big")
        assert items.decode_seconds(encoded) == bits
        assert items.decode_seconds(items.encode_seconds(bits | 1 << 3602)) == bits | 1 << 3602  # two runs


class TestResultsAndBests:
    def test_a2_race_results_by_score_desc_with_pagination(self, table: ResultsTable) -> None:
        scores = {racer_id: float(racer_id % 7) * 10 + 0.1234 for racer_id in range(60)}
        table.put_final_results(result(7, racer_id, score) for racer_id, score in scores.items())
        table.put_final_results([result(8, 1, 999.0)])  # another race
        expected = sorted(scores, key=lambda racer_id: (-scores[racer_id], racer_id))
        seen: list[int] = []
        cursor = None
        pages = 0
        while True:
            page = table.race_results(7, limit=25, start_key=cursor)
            seen.extend(item.racer_id for item in page.items)
            pages += 1
            cursor = page.last_key
            if cursor is None:
                break
        assert seen == expected
        assert pages >= 3
        top = table.race_results(7, limit=3)
        assert [item.racer_id for item in top.items] == expected[:3]
        assert top.items[0].score == scores[expected[0]]

    def test_a4_racer_results_newest_first(self, table: ResultsTable) -> None:
        table.put_final_results([result(race_id, 5, float(race_id)) for race_id in (3, 11, 7, 100)])
        table.put_final_results([result(4, 6, 1.0)])
        first = table.racer_results(5, limit=2)
        assert [item.race_id for item in first.items] == [100, 11]
        second = table.racer_results(5, limit=2, start_key=first.last_key)
        assert [item.race_id for item in second.items] == [7, 3]

    def test_final_results_written_in_batches_of_25(self, table: ResultsTable, dynamodb: Any) -> None:
        calls: list[int] = []
        dynamodb.meta.events.register(
            "provide-client-params.dynamodb.BatchWriteItem",
            lambda params, **_: calls.append(len(params["RequestItems"]["alleycat-test"])),
        )
        assert table.put_final_results(result(7, racer_id, 1.0) for racer_id in range(60)) == 60
        assert calls == [25, 25, 10]
        # the same key twice in one call: one request, the later value
        assert table.put_final_results([result(7, 1, 5.0), result(7, 1, 6.0)]) == 1
        assert [item.score for item in table.racer_results(1).items] == [6.0]

    def test_unprocessed_items_are_retried(self, table: ResultsTable, dynamodb: Any) -> None:
        # GIVEN DynamoDB answering the first BatchWriteItem and BatchGetItem with nothing processed
        # (as it does under load); the answer is given at the client boundary, the retry goes to moto.
        seen = {"BatchWriteItem": 0, "BatchGetItem": 0}

        def first_unprocessed(model: Any, params: dict[str, Any], **_: Any) -> Any:
            seen[model.name] += 1
            if seen[model.name] > 1:
                return None
            body = json.loads(params["body"])
            if model.name == "BatchWriteItem":
                for requests in body["RequestItems"].values():  # as botocore parses an answer: B is bytes
                    for request in requests:
                        for value in request["PutRequest"]["Item"].values():
                            if "B" in value:
                                value["B"] = base64.b64decode(value["B"])
                parsed = {"UnprocessedItems": body["RequestItems"]}
            else:
                parsed = {"Responses": {}, "UnprocessedKeys": body["RequestItems"]}
            return AWSResponse(params["url"], 200, {}, None), parsed

        dynamodb.meta.events.register("before-call.dynamodb.BatchWriteItem", first_unprocessed)
        dynamodb.meta.events.register("before-call.dynamodb.BatchGetItem", first_unprocessed)
        table.put_race_seconds(7, {racer_id: {1: float(racer_id)} for racer_id in range(5)}, source="a")
        assert seen["BatchWriteItem"] == 2
        assert table.racer_race_seconds(7, 4) == [4.0]
        table.put_personal_bests([PersonalBest(3, 1, "A", 10.0, 7)])  # its BatchGet is answered unprocessed once
        table.put_personal_bests([PersonalBest(3, 1, "A", 9.0, 8)])  # reads 10.0: not better
        assert seen["BatchGetItem"] == 3
        assert table.personal_best(3, 1) == PersonalBest(3, 1, "A", 10.0, 7)

    def test_a3_a5_personal_bests_only_if_greater(self, table: ResultsTable) -> None:
        assert table.personal_best(3, 1) is None
        written = table.put_personal_bests(
            [PersonalBest(3, 1, "A", 100.0, 7), PersonalBest(3, 2, "B", 150.0, 7), PersonalBest(3, 1, "A", 120.0, 8)]
        )
        assert written == 2
        assert table.personal_best(3, 1) == PersonalBest(3, 1, "A", 120.0, 8)
        assert table.put_personal_bests([PersonalBest(3, 1, "A", 110.0, 9), PersonalBest(3, 1, "A", 120.0, 10)]) == 0
        assert table.personal_best(3, 1) == PersonalBest(3, 1, "A", 120.0, 8)
        table.put_personal_bests([PersonalBest(3, 3, "C", 130.0, 9), PersonalBest(4, 1, "A", 500.0, 9)])
        board = table.class_leaderboard(3, limit=2)
        assert [(best.racer_id, best.score) for best in board.items] == [(2, 150.0), (3, 130.0)]
        rest = table.class_leaderboard(3, limit=2, start_key=board.last_key)
        assert [(best.racer_id, best.score) for best in rest.items] == [(1, 120.0)]

    def test_many_personal_bests_at_once(self, table: ResultsTable) -> None:
        table.put_personal_bests([PersonalBest(3, racer_id, "R", 50.0, 1) for racer_id in range(0, 150, 3)])
        candidates = [PersonalBest(3, racer_id, "R", float(racer_id), 2) for racer_id in range(150)]
        # racers 0..50 that already had 50.0 keep it; every other racer gets its new score
        expected = sum(1 for racer_id in range(150) if racer_id % 3 or racer_id > 50)
        assert table.put_personal_bests(candidates) == expected
        board = table.class_leaderboard(3, limit=1000).items
        assert len(board) == 150
        assert {(b.racer_id, b.score) for b in board if b.race_id == 1} == {(r, 50.0) for r in range(0, 51, 3)}
        assert table.put_personal_bests(candidates) == 0  # replay

    def test_finals_of_a_big_race_in_few_requests(self, table: ResultsTable, dynamodb: Any) -> None:
        # GIVEN 1,000 finishers, all new to the class, and 10 who already have a better best
        table.put_personal_bests([PersonalBest(3, racer_id, "R", 5000.0, 1) for racer_id in range(10)])
        calls: list[str] = []
        dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
        # WHEN finals writes them
        written, improved = table.put_finals(result(7, racer_id, 100.0 + racer_id) for racer_id in range(1000))
        # THEN every result and every better best is there, in 10 BatchGetItem and 20 transactions
        assert (written, improved) == (1000, 990)
        assert calls.count("BatchGetItem") == 10 and calls.count("TransactWriteItems") == 20 and len(calls) == 30
        assert len(table.race_results(7, limit=1000).items) == 1000
        board = table.class_leaderboard(3, limit=1000).items
        assert len(board) == 1000
        assert {(b.racer_id, b.score) for b in board if b.racer_id < 10} == {(r, 5000.0) for r in range(10)}
        # a replay writes the results again and no best
        assert table.put_finals(result(7, racer_id, 100.0 + racer_id) for racer_id in range(1000)) == (1000, 0)

    def test_a_better_best_written_meanwhile_wins_and_the_rest_is_written(
        self, table: ResultsTable, dynamodb: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import tenacity.nap

        naps: list[float] = []
        monkeypatch.setattr(tenacity.nap.time, "sleep", naps.append)
        # GIVEN another writer storing a better best for racer 2 after finals read the bests
        sent: list[int] = []

        def meanwhile(params: dict[str, Any], **_: Any) -> None:
            sent.append(len(params["TransactItems"]))
            if len(sent) == 1:
                writer = boto3.client("dynamodb")
                writer.put_item(TableName=TABLE_NAME, Item=items.personal_best_item(PersonalBest(3, 2, "B", 900.0, 6)))

        dynamodb.meta.events.register("provide-client-params.dynamodb.TransactWriteItems", meanwhile)
        # WHEN finals writes three results and their bests
        written, improved = table.put_finals([result(7, 1, 100.0), result(7, 2, 200.0), result(7, 3, 300.0)])
        # THEN the cancelled transaction went again at once (no back-off: no conflict) without racer 2's best
        assert sent == [6, 5] and naps == []
        assert (written, improved) == (3, 2)
        assert table.personal_best(3, 2) == PersonalBest(3, 2, "B", 900.0, 6)
        assert table.personal_best(3, 3) == PersonalBest(3, 3, "R3", 300.0, 7)
        assert {r.racer_id for r in table.race_results(7, limit=10).items} == {1, 2, 3}

    def test_race_seconds_for_many_racers(self, table: ResultsTable) -> None:
        outputs = {racer_id: {1: 50.0 + racer_id, 3: 60.0} for racer_id in range(140)} | {999: {}}
        assert table.put_race_seconds(7, outputs, source="s3://delivery/a.gz") == 64  # one item per bucket
        assert table.racer_race_seconds(7, 139) == [189.0, None, 60.0]
        assert table.racer_race_seconds(7, 0) == [50.0, None, 60.0]
        assert table.racer_race_seconds(7, 64) == [114.0, None, 60.0]  # racer 0's bucket, its own seconds
        assert table.racer_race_seconds(7, 999) == []
        assert table.racer_race_seconds(8, 0) == []

    def test_racer_race_seconds(self, table: ResultsTable) -> None:
        assert table.racer_race_seconds(7, 1) == []
        table.put_racer_race_seconds(7, 1, {1: 101.25, 2: 102.5, 4: 99.0}, source="a")
        table.put_racer_race_seconds(7, 1, {s: 100.0 + s / 10_000 for s in range(4, 251)}, source="b")
        table.put_racer_race_seconds(7, 1, {1: 101.25}, source="c")  # a duplicate in another object
        table.put_racer_race_seconds(7, 1, {1: 101.25, 2: 102.5, 4: 99.0}, source="a")  # replay
        table.put_racer_race_seconds(7, 2, {1: 1.0}, source="a")  # another racer, same object
        seconds = table.racer_race_seconds(7, 1)
        assert seconds[:4] == [101.25, 102.5, None, 100.0004]  # the best of both parts at second 4
        assert len(seconds) == 250 and seconds[-1] == 100.025

    def test_a_part_is_six_bytes_a_second_and_exact(self) -> None:
        outputs = {1: 0.0, 2: 470.25, 3600: 123.4567}  # the smallest and largest second and output
        racer = MAX_ID  # the largest racer id a message may carry
        (item,) = items.race_seconds_items(7, items.seconds_part("s3://b/k"), {racer: outputs, racer - 64: {1: 9.0}})
        assert set(item) == {"pk", "sk", "outputs"} and len(item["outputs"]["B"]) == (10 + 18) + (10 + 6)
        assert item["sk"]["S"].startswith(items.seconds_sk(items.seconds_bucket(racer)) + "#")
        (other,) = items.race_seconds_items(7, "x", {racer: {2: 100.0, 4: 1.5}})
        merged = items.seconds_from_items(racer, [item, other])
        assert len(merged) == 3600
        assert merged[:4] == [0.0, 470.25, None, 1.5] and merged[3599] == 123.4567
        assert items.seconds_from_items(racer - 64, [item, other]) == [9.0]

    def test_one_item_per_bucket_and_source_written_in_batches(self, table: ResultsTable, dynamodb: Any) -> None:
        operations: list[str] = []
        dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: operations.append(model.name))
        outputs = {racer_id: {second: float(racer_id + second) for second in range(1, 11)} for racer_id in range(1000)}
        table.put_race_seconds(8, outputs, source="s3://delivery/raw/x.gz")
        table.put_race_seconds(8, outputs, source="s3://delivery/raw/x.gz")  # replayed object: same items
        assert operations == ["BatchWriteItem"] * 6  # 64 items, 25 a call, twice
        assert dynamodb.scan(TableName=TABLE_NAME, Select="COUNT")["Count"] == 64
        assert table.racer_race_seconds(8, 999) == [float(999 + second) for second in range(1, 11)]


class TestStartKeys:
    def test_pages_continue_from_the_raw_last_key(self, table: ResultsTable) -> None:
        table.put_final_results(result(7, racer_id, float(racer_id)) for racer_id in range(5))
        first = table.race_results(7, limit=2)
        assert first.last_key is not None and first.last_key["gsi1pk"] == {"S": first.last_key["gsi1pk"]["S"]}
        rest = table.race_results(7, limit=10, start_key=first.last_key)
        assert [r.racer_id for r in first.items + rest.items] == [4, 3, 2, 1, 0]
        assert rest.last_key is None

    def test_a_key_of_another_query_or_shape_is_refused(self, table: ResultsTable) -> None:
        table.put_final_results(result(7, racer_id, float(racer_id)) for racer_id in range(5))
        table.put_final_results(result(8, racer_id, float(racer_id)) for racer_id in range(5))
        key = table.race_results(7, limit=2).last_key
        assert key is not None
        with pytest.raises(InvalidCursor):  # another race's partition
            table.race_results(8, limit=2, start_key=key)
        with pytest.raises(InvalidCursor):  # not a key of the index at all (DynamoDB's ValidationException)
            table.race_results(7, limit=2, start_key={"gsi1pk": key["gsi1pk"]})
        for bad in ({}, {"gsi1pk": "RACE"}, {"gsi1pk": {"S": "x"}, "y": [1]}):
            with pytest.raises(InvalidCursor):
                table.race_results(7, limit=2, start_key=bad)

    def test_limit_is_bounded(self, table: ResultsTable) -> None:
        with pytest.raises(ValueError):
            table.race_results(7, limit=0)
        with pytest.raises(ValueError):
            table.race_results(7, limit=1001)


class TestUnavailable:
    def test_unreachable_endpoint_raises_store_unavailable(self, aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
        table = get_results_table()
        with pytest.raises(StoreUnavailable):
            table.live_standings(1)
        with pytest.raises(StoreUnavailable):
            table.race_results(1)
        with pytest.raises(StoreUnavailable):
            table.put_final_results([result(1, 1, 1.0)])

    def test_throttling_raises_store_unavailable(self, table: ResultsTable, dynamodb: Any) -> None:
        from botocore.exceptions import ClientError

        def throttle(**_: Any) -> None:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "GetItem"
            )

        dynamodb.meta.events.register("before-call.dynamodb.GetItem", throttle)
        with pytest.raises(StoreUnavailable):
            table.personal_best(1, 1)


class TestNoScan:
    def test_no_scan_in_processors_source(self) -> None:
        # The pipeline's code; processors/local is the stand-in for AWS (its endpoint names every action).
        for path in PROCESSORS.rglob("*.py"):
            if path.is_relative_to(PROCESSORS / "local"):
                continue
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute):
                    assert node.attr not in {"scan", "Scan"}, f"{path}: uses {node.attr}"
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    assert node.value != "Scan", f"{path}: mentions Scan"

    def test_every_access_pattern_avoids_scan(self, table: ResultsTable, dynamodb: Any) -> None:
        operations: list[str] = []
        dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: operations.append(model.name))
        table.merge_live(7, 3, pending(7, {1: [1, 2]}, final={1}))
        table.put_final_results([result(7, 1, 10.0)])
        table.put_personal_bests([PersonalBest(3, 1, "R1", 10.0, 7)])
        table.put_racer_race_seconds(7, 1, {1: 1.0}, source="a")
        table.live_standings(7)
        table.race_results(7)
        table.class_leaderboard(3)
        table.racer_results(1)
        table.personal_best(3, 1)
        table.racer_race_seconds(7, 1)
        assert "Scan" not in operations
        assert set(operations) <= {
            "GetItem",
            "Query",
            "BatchGetItem",
            "PutItem",
            "UpdateItem",
            "BatchWriteItem",
            "TransactWriteItems",
        }
        assert operations.count("Query") == 4


def test_boto3_clients_reach_moto(aws: str) -> None:
    # Sanity check that the fixture points boto3 at moto, not at AWS.
    assert boto3.client("dynamodb").meta.endpoint_url == aws
