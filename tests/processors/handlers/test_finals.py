"""Finals handler: the table's real stream (from moto) -> final results and personal bests."""

from __future__ import annotations

import base64
import copy
import random
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent

from processors.domain.scoring import output_of
from processors.handlers import aggregator, finals
from processors.observability import logger
from processors.table import FinalResult, PersonalBest, ResultsTable, schema
from processors.table.items import live_key
from tests.conftest import free_port
from tests.processors.conftest import TABLE_NAME, publish_races, race_identity
from tests.processors.factories import (
    LambdaContext,
    kinesis_event,
    kinesis_record,
    load_event,
    message,
    stream_record,
    to_lambda_image,
)


def aggregate(racers: range, seconds: range, *, final_at: int | None = None, race_id: int = 7, boost: int = 0) -> None:
    records = [
        kinesis_record(
            message(
                race_id=race_id,
                racer_id=racer_id,
                second=second,
                cadence=60 + racer_id + boost,
                resistance=40,
                event="final" if second == final_at else "update",
            )
        )
        for second in seconds
        for racer_id in racers
    ]
    aggregator.lambda_handler(kinesis_event(records, final=True), LambdaContext())


class StreamReader:
    """Reads the table's stream from moto and hands out Lambda events, like the event source mapping."""

    def __init__(self, dynamodb: Any, table_name: str = TABLE_NAME) -> None:
        self._streams = boto3.client("dynamodbstreams")
        self._arn = dynamodb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
        shards = self._streams.describe_stream(StreamArn=self._arn)["StreamDescription"]["Shards"]
        self._iterator = self._streams.get_shard_iterator(
            StreamArn=self._arn, ShardId=shards[0]["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]

    def next_event(self) -> dict[str, Any]:
        response = self._streams.get_records(ShardIterator=self._iterator)
        self._iterator = response["NextShardIterator"]
        records = []
        for record in response["Records"]:
            change = dict(record["dynamodb"])
            created = change.get("ApproximateCreationDateTime")
            if created is not None and not isinstance(created, (int, float)):
                change["ApproximateCreationDateTime"] = int(created.timestamp())
            for image in ("NewImage", "OldImage"):
                if image in change:
                    change[image] = to_lambda_image(change[image])
            records.append({**record, "dynamodb": change, "eventSourceARN": self._arn})
        return {"Records": records}


@pytest.fixture
def stream(dynamodb: Any) -> StreamReader:
    return StreamReader(dynamodb)


@pytest.fixture(autouse=True)
def _races(request: pytest.FixtureRequest) -> None:
    if "table" in request.fixturenames:
        publish_races(request.getfixturevalue("table"), [7, 8, 9])


def all_results(table: ResultsTable, race_id: int) -> list[FinalResult]:
    found: list[FinalResult] = []
    cursor = None
    while True:
        page = table.race_results(race_id, limit=10, start_key=cursor)
        found.extend(page.items)
        cursor = page.last_key
        if cursor is None:
            return found


class TestFinals:
    def test_finished_racers_get_results_and_personal_bests(
        self, table: ResultsTable, stream: StreamReader, caplog: pytest.LogCaptureFixture
    ) -> None:
        # GIVEN a race where racers 0-3 finish at second 5 and racer 4 is still riding
        aggregate(range(5), range(1, 5))
        aggregate(range(4), range(5, 6), final_at=5)
        event = stream.next_event()
        # the race identities and the shard's watermark are in the table's stream too: finals skips them
        event = {"Records": [r for r in event["Records"] if r["dynamodb"]["Keys"]["sk"]["S"] == "LIVE"]}
        assert len(event["Records"]) == 2  # INSERT then MODIFY of the live item
        # WHEN finals processes the stream
        response = finals.lambda_handler(event, LambdaContext())
        # THEN
        assert response == {"batchItemFailures": []}
        (summary,) = [r for r in caplog.records if r.name == logger.name and r.getMessage() == "finals"]
        assert (summary.records, summary.finalResults, summary.personalBests, summary.failed) == (2, 4, 4, 0)
        results = all_results(table, 7)
        assert [result.racer_id for result in results] == [3, 2, 1, 0]
        assert results[0].score == pytest.approx(5 * output_of(63, 40))
        assert results[0].second == 5 and results[0].class_id == 3 and results[0].name == "Racer 3"
        assert results[0].finished_at_ms == message(second=5)["deviceTimestamp"]
        assert table.personal_best(3, 4) is None
        best = table.personal_best(3, 2)
        assert best == PersonalBest(3, 2, "Racer 2", results[1].score, 7)
        assert [b.racer_id for b in table.class_leaderboard(3).items] == [3, 2, 1, 0]
        assert [r.race_id for r in table.racer_results(1).items] == [7]

    def test_replaying_the_stream_batch_changes_nothing(
        self, table: ResultsTable, stream: StreamReader, dynamodb: Any
    ) -> None:
        aggregate(range(30), range(1, 4), final_at=3)
        event = stream.next_event()
        finals.lambda_handler(copy.deepcopy(event), LambdaContext())
        before = (all_results(table, 7), table.class_leaderboard(3, limit=100).items)
        finals.lambda_handler(copy.deepcopy(event), LambdaContext())
        assert (all_results(table, 7), table.class_leaderboard(3, limit=100).items) == before
        assert len(before[0]) == 30

    def test_personal_best_kept_when_a_later_race_is_worse(self, table: ResultsTable, stream: StreamReader) -> None:
        aggregate(range(2), range(1, 4), final_at=3, race_id=7, boost=50)
        aggregate(range(2), range(1, 4), final_at=3, race_id=8, boost=0)
        aggregate(range(2, 3), range(1, 4), final_at=3, race_id=9, boost=100)
        finals.lambda_handler(stream.next_event(), LambdaContext())
        assert table.personal_best(3, 0).race_id == 7  # type: ignore[union-attr]
        assert table.personal_best(3, 2).race_id == 9  # type: ignore[union-attr]
        assert [r.race_id for r in table.racer_results(0).items] == [8, 7]

    def test_a_late_second_after_the_final_message_updates_the_final_result(
        self, table: ResultsTable, stream: StreamReader
    ) -> None:
        records = [kinesis_record(message(second=s, event="final" if s == 5 else "update")) for s in (1, 2, 3, 5)]
        aggregator.lambda_handler(kinesis_event(records, final=True), LambdaContext())
        aggregator.lambda_handler(kinesis_event([kinesis_record(message(second=4))], final=True), LambdaContext())
        finals.lambda_handler(stream.next_event(), LambdaContext())
        (result,) = all_results(table, 7)
        assert result.score == pytest.approx(5 * output_of(80, 50))
        assert table.personal_best(3, 1).score == result.score  # type: ignore[union-attr]

    def test_other_items_and_the_aws_sample_are_ignored(self, table: ResultsTable) -> None:
        assert finals.lambda_handler(load_event("dynamodb_stream.json"), LambdaContext()) == {"batchItemFailures": []}
        result_item = {"pk": {"S": "RACE#7"}, "sk": {"S": "RESULT#0000000000000001"}, "score": {"N": "1.0"}}
        event = {"Records": [stream_record(None, result_item)]}
        assert finals.lambda_handler(event, LambdaContext()) == {"batchItemFailures": []}
        assert all_results(table, 7) == []

    def test_settling_a_race_nobody_rode_is_no_failure(self, table: ResultsTable, stream: StreamReader) -> None:
        # GIVEN a race that ends with no live item: settling it creates one with an UpdateItem, which
        # moto streams as two INSERTs, the first holding the key alone
        table.settle_race(race_identity(9, class_id=3))
        event = stream.next_event()
        images = [
            r["dynamodb"].get("NewImage", {}) for r in event["Records"] if r["dynamodb"]["Keys"]["sk"]["S"] == "LIVE"
        ]
        assert any(set(image) == {"pk", "sk"} for image in images)
        # WHEN finals reads them THEN nothing fails and nothing is written
        assert finals.lambda_handler(event, LambdaContext()) == {"batchItemFailures": []}
        assert all_results(table, 9) == []


class TestPartialFailure:
    def test_a_broken_record_is_reported_and_the_others_processed(
        self, table: ResultsTable, stream: StreamReader, dynamodb: Any
    ) -> None:
        aggregate(range(3), range(1, 3), final_at=2, race_id=7)
        aggregate(range(3), range(1, 3), final_at=2, race_id=8)
        good_first, good_second = [
            r for r in stream.next_event()["Records"] if r["dynamodb"]["Keys"]["sk"]["S"] == "LIVE"
        ]
        live = dynamodb.get_item(TableName=TABLE_NAME, Key=live_key(7))["Item"]
        broken_image = to_lambda_image(live)
        board = base64.b64decode(broken_image["board"]["B"])
        broken_image["board"]["B"] = base64.b64encode(board[:-3]).decode()  # truncated racer entry
        broken = stream_record(None, live, sequence=5)
        broken["dynamodb"]["NewImage"] = broken_image
        response = finals.lambda_handler({"Records": [good_first, broken, good_second]}, LambdaContext())
        assert response == {"batchItemFailures": [{"itemIdentifier": broken["dynamodb"]["SequenceNumber"]}]}
        assert len(all_results(table, 7)) == 3 and len(all_results(table, 8)) == 3

    def test_unreachable_table_reports_every_record(
        self, table: ResultsTable, stream: StreamReader, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        aggregate(range(2), range(1, 3), final_at=2)
        event = {"Records": [r for r in stream.next_event()["Records"] if r["dynamodb"]["Keys"]["sk"]["S"] == "LIVE"]}
        from tests.processors.conftest import _clear_caches

        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
        _clear_caches()
        response = finals.lambda_handler(event, LambdaContext())
        assert response == {
            "batchItemFailures": [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in event["Records"]]
        }


class TestPipelineOrderIndependence:
    """Aggregator + finals end to end: duplicated, reordered, re-split deliveries give the same outcome."""

    @staticmethod
    def run(dynamodb: Any, table_name: str, windows: list[list[dict[str, Any]]]) -> tuple[Any, ...]:
        schema.create_table(dynamodb, table_name)
        table = ResultsTable(dynamodb, table_name)
        publish_races(table, [7])
        reader = StreamReader(dynamodb, table_name)
        for window in windows:
            event = KinesisStreamEvent(kinesis_event([kinesis_record(body) for body in window], final=True))
            aggregator.handle(event, table, max_pending_seconds=20_000)
        while True:
            event = reader.next_event()
            if not event["Records"]:
                break
            assert finals.handle(event, table, None) == {"batchItemFailures": []}
        live = table.live_standings(7)
        assert live is not None
        return (
            [(row.racer_id, row.score, row.second, row.output, row.finished) for row in live.rows],
            all_results(table, 7),
            table.class_leaderboard(3, limit=1000).items,
        )

    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_same_standings_results_and_bests(self, dynamodb: Any, seed: int) -> None:
        rng = random.Random(seed)
        messages = []
        for racer_id in range(12):
            last = rng.randint(5, 30)
            for second in range(1, last + 1):
                if rng.random() < 0.1 and second != last:
                    continue  # a lost message
                messages.append(
                    message(
                        racer_id=racer_id,
                        second=second,
                        cadence=round(rng.uniform(40, 120), 1),
                        resistance=rng.randint(10, 90),
                        event="final" if second == last and racer_id % 3 else "update",
                    )
                )
        in_order = self.run(dynamodb, "in-order", [messages[i : i + 50] for i in range(0, len(messages), 50)])
        shuffled = messages + rng.sample(messages, len(messages) // 2)
        rng.shuffle(shuffled)
        windows, index = [], 0
        while index < len(shuffled):
            size = rng.randint(1, 60)
            windows.append(shuffled[index : index + size])
            index += size
        assert self.run(dynamodb, "shuffled", windows) == in_order
        assert len(in_order[1]) == 8  # racers 1, 2, 4, 5, 7, 8, 10, 11 finished


class TestRecordedSamples:
    """tests/events/kinesis_bike_window.json and the stream record it produced (recorded from moto)."""

    def test_bike_window_then_its_stream_record(self, table: ResultsTable) -> None:
        aggregator.lambda_handler(load_event("kinesis_bike_window.json"), LambdaContext())
        live = table.live_standings(7)
        assert live is not None
        assert [(row.racer_id, row.name, row.finished) for row in live.rows] == [
            (17, "Ada", False),
            (18, "Grace", True),
        ]
        assert live.rows[0].score == pytest.approx(output_of(88, 40) + output_of(90, 40))

        response = finals.lambda_handler(load_event("dynamodb_live_item_stream.json"), LambdaContext())
        assert response == {"batchItemFailures": []}
        (grace,) = all_results(table, 7)
        assert (grace.racer_id, grace.name, grace.second, grace.class_id) == (18, "Grace", 2, 3)
        assert grace.score == pytest.approx(output_of(91.5, 35.5) + output_of(93.25, 36))
        assert table.personal_best(3, 18) == PersonalBest(3, 18, "Grace", grace.score, 7)
