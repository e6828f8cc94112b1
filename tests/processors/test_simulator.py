"""The simulator core (processors.local.simulator) against the embedded AWS endpoint."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from processors.local.simulator import RaceSpec, Simulator, profiles, racer_message, racer_profile


def create_stream(name: str = "sim-test", shards: int = 1) -> Any:
    kinesis = boto3.client("kinesis")
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    return kinesis


def stream_records(kinesis: Any, name: str) -> list[dict]:
    records = []
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )
        response = kinesis.get_records(ShardIterator=iterator["ShardIterator"], Limit=10_000)
        records += response["Records"]
    return records


class CountingKinesis:
    """The real client, with PutRecords calls counted; optionally fails records of the first calls.

    A failed record is not forwarded and comes back with an ErrorCode, as Kinesis reports a
    throttled record inside a successful PutRecords response (FailedRecordCount > 0).
    """

    def __init__(self, client: Any, *, fail_first: int = 0) -> None:
        self.client = client
        self.calls: list[int] = []
        self.fail_left = fail_first

    def put_records(self, *, StreamName: str, Records: list[dict]) -> dict:  # noqa: N803 - boto3's names
        self.calls.append(len(Records))
        failing, passing = Records[: self.fail_left], Records[self.fail_left :]
        self.fail_left -= len(failing)
        results: list[dict] = [
            {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded"} for _ in failing
        ]
        if passing:
            response = self.client.put_records(StreamName=StreamName, Records=passing)
            assert response["FailedRecordCount"] == 0
            results += response["Records"]
        return {"FailedRecordCount": len(failing), "Records": results}


class TestMessages:
    def test_one_message_per_racer_per_second_with_final_at_the_last_second(self):
        race = RaceSpec(race_id=5, class_id=2, first_second=1, last_second=3)
        racer = racer_profile(17)
        messages = [racer_message(race, racer, second, device_ts=1_700_000_000_000) for second in (1, 2, 3)]
        assert [m["event"] for m in messages] == ["update", "update", "final"]
        fields = "uuid event deviceTimestamp second raceId name racerId classId cadence resistance"
        assert set(messages[0]) == set(fields.split())
        assert all(0 <= m["cadence"] <= 250 and 0 <= m["resistance"] <= 100 for m in messages)
        assert (messages[0]["raceId"], messages[0]["classId"], messages[0]["racerId"]) == (5, 2, 17)
        assert len(messages[0]["name"]) <= 64

    def test_profiles_are_deterministic_and_races_vary(self):
        assert racer_profile(42) == racer_profile(42)
        assert racer_profile(42) != racer_profile(43)
        assert racer_profile(42, "Named Racer").name == "Named Racer"
        racer = racer_profile(42)
        race_a = RaceSpec(race_id=1, class_id=1, last_second=10)
        race_b = RaceSpec(race_id=2, class_id=1, last_second=10)

        def numbers(race: RaceSpec) -> list[tuple[float, float]]:
            return [
                (m["cadence"], m["resistance"])
                for m in (racer_message(race, racer, s, device_ts=0) for s in range(1, 11))
            ]

        assert numbers(race_a) == numbers(race_a)
        assert numbers(race_a) != numbers(race_b)


class TestSending:
    def test_put_records_in_batches_of_at_most_500_keyed_by_race_and_racer(self, aws):
        kinesis = create_stream(shards=2)
        counting = CountingKinesis(kinesis)
        race = RaceSpec(race_id=77, class_id=1, first_second=1, last_second=1)
        result = Simulator(counting, "sim-test").play(race, profiles((i, None) for i in range(1200)), speed=100)
        assert (result.sent, result.lost) == (1200, 0)
        assert max(counting.calls) <= 500 and sum(counting.calls) == 1200
        records = stream_records(kinesis, "sim-test")
        assert len(records) == 1200
        assert {r["PartitionKey"] for r in records} == {f"77:{json.loads(r['Data'])['racerId']}" for r in records}
        assert len({r["PartitionKey"] for r in records}) == 1200
        for shard in kinesis.list_shards(StreamName="sim-test")["Shards"]:  # the race spreads over both shards
            iterator = kinesis.get_shard_iterator(
                StreamName="sim-test", ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            assert 400 < len(kinesis.get_records(ShardIterator=iterator, Limit=10_000)["Records"]) < 800
        assert {json.loads(r["Data"])["event"] for r in records} == {"final"}

    def test_failed_records_are_sent_again_until_accepted(self, aws):
        kinesis = create_stream()
        counting = CountingKinesis(kinesis, fail_first=120)
        race = RaceSpec(race_id=9, class_id=1, first_second=1, last_second=2)
        result = Simulator(counting, "sim-test", workers=1).play(race, profiles((i, None) for i in range(300)))
        assert (result.sent, result.retried, result.lost) == (600, 120, 0)
        records = [json.loads(r["Data"]) for r in stream_records(kinesis, "sim-test")]
        # every (racer, second) exactly once
        assert sorted((m["racerId"], m["second"]) for m in records) == sorted(
            (racer, second) for racer in range(300) for second in (1, 2)
        )

    def test_speed_plays_faster_than_real_time(self, aws):
        create_stream()
        race = RaceSpec(race_id=3, class_id=1, first_second=1, last_second=6)
        started = time.monotonic()
        result = Simulator(boto3.client("kinesis"), "sim-test").play(race, profiles([(1, None)]), speed=10)
        elapsed = time.monotonic() - started
        assert result.sent == 6 and 0.45 <= elapsed < 2.0

    def test_more_than_20000_racers_are_refused(self, aws):
        race = RaceSpec(race_id=3, class_id=1)
        with pytest.raises(ValueError):
            Simulator(boto3.client("kinesis"), "sim-test").play(race, profiles((i, None) for i in range(20_001)))
