"""Aggregator handler against moto: tumbling windows, replays, concurrent writers, bad input, state size."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

import boto3
import orjson
import pytest
from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent

from processors.domain.scoring import output_of
from processors.handlers import aggregator
from processors.observability import logger
from processors.table import ResultsTable, StoreUnavailable
from processors.table.items import live_key
from tests.conftest import free_port
from tests.processors.conftest import TABLE_NAME, publish_races, receive_all
from tests.processors.factories import LambdaContext, kinesis_event, kinesis_record, load_event, message, ride


@pytest.fixture(autouse=True)
def _races(request: pytest.FixtureRequest) -> None:
    # The races these tests ride, published as the races app does (the aggregator checks each record).
    if "table" in request.fixturenames:
        publish_races(request.getfixturevalue("table"), [7, 1, 2])


def live_item(dynamodb: Any, race_id: int = 7) -> dict[str, Any] | None:
    return dynamodb.get_item(TableName=TABLE_NAME, Key=live_key(race_id), ConsistentRead=True).get("Item")


def log_lines(caplog: pytest.LogCaptureFixture, message_text: str) -> list[str]:
    """Our log records with this message, formatted as Powertools writes them (JSON lines)."""
    formatter = logger.registered_formatter
    return [
        formatter.format(record)
        for record in caplog.records
        if record.name == logger.name and record.getMessage() == message_text
    ]


class TestWindows:
    def test_aws_documentation_sample_event(
        self, table: ResultsTable, dead_letter_queue: str, lambda_context: LambdaContext
    ) -> None:
        # GIVEN the tumbling-window sample from the AWS docs: its one record is not a bike message
        event = load_event("kinesis_tumbling_window.json")
        response = aggregator.lambda_handler(event, lambda_context)
        # THEN the record is dead-lettered, the foreign state is replaced (the window keeps the shard's
        # position: the record's arrival time), nothing is written
        assert response == {"state": {"races": {}, "w": 1607497475000}}
        letters = [json.loads(m["Body"]) for m in receive_all(dead_letter_queue)]
        assert [(letter["reason"], letter["sequenceNumber"]) for letter in letters] == [
            ("not_json", "49590338271490256608559692538361571095921575989136588898")
        ]
        assert base64.b64decode(letters[0]["data"]) == b"Hello, this is a test."
        assert letters[0]["shardId"] == "shardId-000000000006"

    def test_state_carries_readings_until_the_final_invoke(self, table: ResultsTable, dynamodb: Any) -> None:
        # GIVEN a window of two invokes, messages without uuid (as some producers send)
        first = aggregator.lambda_handler(kinesis_event(ride(range(3), range(1, 3))), LambdaContext())
        assert live_item(dynamodb) is None
        assert set(first["state"]["races"]["7"]["r"]) == {"0", "1", "2"}
        # the state goes through JSON between invokes, as Lambda passes it
        state = json.loads(json.dumps(first["state"]))
        last = aggregator.lambda_handler(
            kinesis_event(ride(range(3), range(3, 5), final_at=4), state=state, final=True), LambdaContext()
        )
        assert last == {"state": {"races": {}}}
        standings = table.live_standings(7)
        assert standings is not None and standings.version == 1
        assert [row.racer_id for row in standings.rows] == [2, 1, 0]
        assert standings.rows[0].score == pytest.approx(4 * output_of(62, 40))
        assert all(row.finished and row.second == 4 for row in standings.rows)

    def test_final_invoke_without_records_writes_the_state(self, table: ResultsTable) -> None:
        state = aggregator.lambda_handler(kinesis_event(ride(range(3), range(1, 3))), LambdaContext())["state"]
        assert table.live_standings(7) is None
        response = aggregator.lambda_handler(kinesis_event([], state=state, final=True), LambdaContext())
        assert response == {"state": {"races": {}}}
        standings = table.live_standings(7)
        assert standings is not None and [row.second for row in standings.rows] == [2, 2, 2]

    def test_window_terminated_early_writes_out(self, table: ResultsTable) -> None:
        aggregator.lambda_handler(kinesis_event(ride(range(2), range(1, 3)), terminated_early=True), LambdaContext())
        standings = table.live_standings(7)
        assert standings is not None and len(standings.rows) == 2

    def test_without_a_window_every_invoke_writes(self, table: ResultsTable) -> None:
        response = aggregator.lambda_handler(kinesis_event(ride(range(2), range(1, 3)), window=False), LambdaContext())
        assert response == {"state": {"races": {}}}
        aggregator.lambda_handler(kinesis_event(ride(range(2), range(3, 4)), window=False), LambdaContext())
        standings = table.live_standings(7)
        assert standings is not None and standings.version == 2
        assert [row.second for row in standings.rows] == [3, 3]

    def test_several_races_in_one_batch_one_write_each(self, table: ResultsTable, dynamodb: Any) -> None:
        puts: list[str] = []
        dynamodb.meta.events.register(
            "provide-client-params.dynamodb.PutItem", lambda params, **_: puts.append(params["Item"]["pk"]["S"])
        )
        records = ride(range(5), range(1, 4), race_id=1) + ride(range(5), range(1, 4), race_id=2)
        aggregator.lambda_handler(kinesis_event(records, final=True), LambdaContext())
        assert sorted(puts) == ["RACE#1", "RACE#2"]


class TestIdempotency:
    def test_replaying_a_batch_leaves_the_table_identical(self, table: ResultsTable, dynamodb: Any) -> None:
        records = ride(range(10), range(1, 6), final_at=5)
        aggregator.lambda_handler(kinesis_event(records, final=True), LambdaContext())
        before = live_item(dynamodb)
        aggregator.lambda_handler(kinesis_event(records, final=True), LambdaContext())
        aggregator.lambda_handler(kinesis_event(records[::-1] + records[:7], final=True), LambdaContext())
        assert live_item(dynamodb) == before

    def test_overlapping_windows_count_each_second_once(self, table: ResultsTable) -> None:
        records = ride(range(4), range(1, 11))
        aggregator.lambda_handler(kinesis_event(records[:25], final=True), LambdaContext())
        aggregator.lambda_handler(kinesis_event(records[15:], final=True), LambdaContext())
        standings = table.live_standings(7)
        assert standings is not None
        for row in standings.rows:
            assert row.score == pytest.approx(10 * output_of(60 + row.racer_id, 40))

    def test_concurrent_writers_do_not_lose_racers(self, table: ResultsTable, dynamodb: Any) -> None:
        # GIVEN two shards (two Lambda processes, each with its own client) sending different
        # racers of the same race at the same time. They call the handler's core directly:
        # Powertools Metrics is per process, and two threads would share and flush one store.
        errors: list[BaseException] = []
        barrier = threading.Barrier(2)

        def shard(racers: range) -> None:
            own_table = ResultsTable(boto3.client("dynamodb"), TABLE_NAME)
            try:
                barrier.wait()
                for second in range(1, 9):
                    event = KinesisStreamEvent(kinesis_event(ride(racers, range(second, second + 1)), final=True))
                    aggregator.handle(event, own_table, max_pending_seconds=20_000)
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=shard, args=(racers,)) for racers in (range(0, 20), range(20, 40))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors
        standings = table.live_standings(7)
        assert standings is not None
        assert sorted(row.racer_id for row in standings.rows) == list(range(40))
        for row in standings.rows:
            assert row.score == pytest.approx(8 * output_of(60 + row.racer_id, 40))
        assert standings.version == 16


class TestBadInput:
    def test_every_kind_of_malformed_record_is_counted_and_dead_lettered(
        self, table: ResultsTable, dead_letter_queue: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        good = ride(range(2), range(1, 3))
        bad_bodies: list[Any] = [
            "%%% not base64 %%%",
            b"{not json",
            b"[1, 2, 3]",
            {k: v for k, v in message().items() if k != "second"},
            message() | {"racerId": "seven"},
            message() | {"second": True},
            message() | {"second": 0},
            message() | {"cadence": 999},
            message() | {"classId": 0},
            message() | {"event": "started"},
            message() | {"name": "x" * 65},
            orjson.dumps(message() | {"name": "x" * 1_000_000}),
        ]
        bad = [kinesis_record(body) for body in bad_bodies]
        records = good[:2] + bad + good[2:]
        aggregator.lambda_handler(kinesis_event(records, final=True), LambdaContext())

        summary = [json.loads(line) for line in log_lines(caplog, "aggregated")]
        assert len(summary) == 1 and summary[0]["bad"] == len(bad) and summary[0]["readings"] == len(good)
        warnings = [json.loads(line) for line in log_lines(caplog, "bad record skipped")]
        assert [w["sequenceNumber"] for w in warnings] == [record["kinesis"]["sequenceNumber"] for record in bad]
        letters = {
            json.loads(m["Body"])["sequenceNumber"]: json.loads(m["Body"]) for m in receive_all(dead_letter_queue)
        }
        assert set(letters) == {record["kinesis"]["sequenceNumber"] for record in bad}
        reasons = [letters[record["kinesis"]["sequenceNumber"]]["reason"] for record in bad]
        assert reasons == [
            "bad_base64",
            "not_json",
            "not_object",
            "missing_field",
            "wrong_type",
            "wrong_type",
            "out_of_range",
            "out_of_range",
            "out_of_range",
            "unknown_event",
            "out_of_range",
            "too_large",
        ]
        huge = letters[bad[-1]["kinesis"]["sequenceNumber"]]
        assert huge["truncated"] is True and huge["dataSize"] > 1_000_000
        standings = table.live_standings(7)
        assert standings is not None and sorted(row.racer_id for row in standings.rows) == [0, 1]

    def test_dead_letter_queue_down_does_not_fail_the_batch(
        self, table: ResultsTable, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ALLEYCAT_DEAD_LETTER_QUEUE_URL", "http://127.0.0.1:1/000000000000/missing-queue")
        records = [kinesis_record(b"{bad")] + ride(range(1), range(1, 2))
        aggregator.lambda_handler(kinesis_event(records, final=True), LambdaContext())
        assert table.live_standings(7) is not None


class TestLimits:
    def test_state_for_a_thousand_racers_is_well_under_1_mb(self) -> None:
        state: dict[str, Any] = {"races": {}}
        for second in range(1, 3):  # a 2-second live window
            aggregator.fold_kinesis_records(ride(range(1000), range(second, second + 1)), state)
        size = len(orjson.dumps(state))
        assert size < 200 * 1024, size

    def test_state_stays_bounded_by_early_write_outs(
        self, table: ResultsTable, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # GIVEN a long window: 1,000 racers for 30 seconds without a final invoke
        state: dict[str, Any] = {}
        largest = 0
        for second in range(1, 31):
            response = aggregator.lambda_handler(
                kinesis_event(ride(range(1000), range(second, second + 1)), state=state), LambdaContext()
            )
            state = json.loads(json.dumps(response["state"]))
            largest = max(largest, len(json.dumps(state)))
        # THEN the state never nears 1 MB, and what was written early is already in the table
        assert largest < 1024 * 1024 / 2, largest
        standings = table.live_standings(7)
        assert standings is not None and len(standings.rows) == 1000
        assert 20 <= standings.rows[0].second < 30

    def test_summary_log_is_small_and_has_no_payloads(
        self, table: ResultsTable, caplog: pytest.LogCaptureFixture
    ) -> None:
        publish_races(table, range(3, 40))
        races = [ride(range(50), range(1, 3), race_id=race_id) for race_id in range(1, 40)]
        aggregator.lambda_handler(kinesis_event([r for race in races for r in race], final=True), LambdaContext())
        lines = [
            logger.registered_formatter.format(record)
            for record in caplog.records
            if record.name == logger.name and record.levelname == "INFO"
        ]
        assert len(lines) == 1
        assert len(lines[0].encode()) <= 2048
        assert "Racer" not in lines[0] and "kinesis" not in lines[0]
        summary = json.loads(lines[0])
        assert summary["records"] == 39 * 100 and summary["raceCount"] == 39 and summary["written"] == 39


class TestStoreUnavailable:
    def test_unreachable_table_fails_the_invocation_for_a_retry(
        self, aws: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
        with pytest.raises(StoreUnavailable):
            aggregator.lambda_handler(kinesis_event(ride(range(2), range(1, 2)), final=True), LambdaContext())
