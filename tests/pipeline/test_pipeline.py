"""End to end: simulator → Kinesis → runner (real handlers) → DynamoDB, Redis (Channels), S3.

Nothing is mocked in the path: a moto server and an embedded Redis are started by fixtures, the
runner runs as its own process, the simulator sends with PutRecords. Expected figures are
recomputed here from the messages the simulator sent, without the domain module.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import boto3
import pytest

from processors.local.bootstrap import Resources, bootstrap
from processors.local.simulator import RaceSpec, SimulationResult, Simulator, profiles
from processors.local.template import load_local_settings
from processors.table import RaceIdentity, ResultsTable
from tests.conftest import wait_until
from tests.pipeline.conftest import GroupListener, history_covers

pytestmark = pytest.mark.e2e

PIPELINE_TIMEOUT = 45.0


def expected_figures(messages: list[dict]) -> tuple[dict[int, float], dict[int, dict[int, float]]]:
    """(score per racer, best output per racer per second), straight from DESIGN.md "Scoring"."""
    per_second: dict[int, dict[int, float]] = defaultdict(dict)
    for message in messages:
        output = round(((message["cadence"] + 35) * (message["resistance"] + 65)) / 100, 4)
        seconds = per_second[message["racerId"]]
        seconds[message["second"]] = max(output, seconds.get(message["second"], 0.0))
    scores = {racer: round(sum(seconds.values()), 4) for racer, seconds in per_second.items()}
    return scores, per_second


def stack() -> Resources:
    return bootstrap(None, load_local_settings())


def publish(resources: Resources, *races: RaceSpec, grace_s: int = 120) -> None:
    """Publish the races' identities (A0) as the races app does: starting now, as long as they are played."""
    table = results_table(resources)
    now_ms = int(time.time() * 1000)
    for race in races:
        ends_at_ms = now_ms + race.last_second * 1000
        assert table.put_race_identity(
            RaceIdentity(
                race_id=race.race_id,
                class_id=race.class_id,
                starts_at_ms=now_ms,
                ends_at_ms=ends_at_ms,
                length_s=race.last_second,
                settle_at_ms=ends_at_ms + grace_s * 1000,
            )
        )


def results_table(resources: Resources) -> ResultsTable:
    return ResultsTable(boto3.client("dynamodb"), resources.table_name)


def history_object(resources: Resources, class_id: int) -> dict[str, Any] | None:
    s3 = boto3.client("s3")
    try:
        body = s3.get_object(Bucket=resources.history_bucket, Key=f"class-{class_id}.json.gz")["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(gzip.decompress(body))


def play_in_background(resources: Resources, race: RaceSpec, racer_ids: range, speed: float) -> tuple:
    holder: dict[str, SimulationResult] = {}
    simulator = Simulator(boto3.client("kinesis"), resources.stream_name)
    racers = profiles([(racer_id, None) for racer_id in racer_ids])
    thread = threading.Thread(
        target=lambda: holder.setdefault("result", simulator.play(race, racers, speed=speed, collect=True))
    )
    thread.start()
    return thread, holder


def assert_race_exact(resources: Resources, race: RaceSpec, messages: list[dict], output) -> None:
    """Live item, final results and history all equal the independent recomputation."""
    table = results_table(resources)
    scores, per_second = expected_figures(messages)
    racers = len(scores)

    def live_complete():
        live = table.live_standings(race.race_id)
        if live and len(live.rows) == racers and all(r.second == race.last_second and r.finished for r in live.rows):
            return live
        return None

    live = wait_until(live_complete, timeout=PIPELINE_TIMEOUT, what="live item at the last second", output=output)
    assert {row.racer_id: row.score for row in live.rows} == pytest.approx(scores, abs=1e-6)
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    assert [row.racer_id for row in live.rows] == [racer for racer, _ in ranked]

    def finals_complete():
        page = table.race_results(race.race_id, limit=racers + 10)
        return page if len(page.items) == racers else None

    page = wait_until(finals_complete, timeout=PIPELINE_TIMEOUT, what="final results of every racer", output=output)
    assert {result.racer_id: result.score for result in page.items} == pytest.approx(scores, abs=1e-6)
    assert [result.racer_id for result in page.items] == [racer for racer, _ in ranked]

    def history_complete():
        history = history_object(resources, race.class_id)
        return history if history_covers(history, per_second) else None

    history = wait_until(history_complete, timeout=PIPELINE_TIMEOUT, what="history object", output=output)
    for racer, seconds in per_second.items():
        row = history["racers"][str(racer)]
        assert {second: row[second - 1] for second in seconds} == pytest.approx(seconds, abs=1e-6)


def dead_letters(resources: Resources) -> int:
    sqs = boto3.client("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=resources.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def status_of(env: dict[str, str]) -> dict[str, Any]:
    return json.loads(Path(env["ALLEYCAT_PIPELINE_STATUS_FILE"]).read_text())


class TestWholePipeline:
    def test_a_short_race_reaches_standings_subscribers_finals_and_history_exactly(
        self, pipeline_env, runner_process, redis_url
    ):
        # GIVEN the stack and a runner
        resources = stack()
        runner = runner_process()
        race = RaceSpec(race_id=7001, class_id=3, first_second=1, last_second=20)
        publish(resources, race)
        racers = profiles([(racer_id, None) for racer_id in range(1, 26)])

        with GroupListener(redis_url, f"race.{race.race_id}") as listener:
            # WHEN 25 racers ride 20 seconds at 10x
            result = Simulator(boto3.client("kinesis"), resources.stream_name).play(
                race, racers, speed=10, collect=True
            )
            assert (result.sent, result.lost) == (500, 0)

            # THEN live item, finals and history equal an independent recomputation
            assert_race_exact(resources, race, result.messages, runner.output)

            # AND a subscriber of the race's group received standings, up to the last second
            def last_standings():
                updates = [m for m in listener.messages if m.get("type") == "standings.update"]
                complete = [m for m in updates if m["total"] == 25 and all(r["second"] == 20 for r in m["rows"])]
                return complete[-1] if complete else None

            message = wait_until(
                last_standings, timeout=PIPELINE_TIMEOUT, what="standings.update", output=runner.output
            )
        scores, _ = expected_figures(result.messages)
        assert message["race_id"] == race.race_id and message["class_id"] == race.class_id
        assert {row["racer_id"]: row["score"] for row in message["rows"]} == pytest.approx(scores, abs=1e-6)
        assert [row["rank"] for row in message["rows"]] == list(range(1, 26))

        # AND the personal bests of the class are the race scores (first race of the class)
        table = results_table(resources)
        best = table.personal_best(race.class_id, 1)
        assert best is not None and best.score == pytest.approx(scores[1], abs=1e-6)

        # AND nothing was dead-lettered; the runner reported every source, and stops cleanly
        assert dead_letters(resources) == 0
        assert runner.stop() == 0
        status = status_of(pipeline_env)
        assert not status["running"]
        by_kind = {source["kind"]: source for source in status["sources"]}
        assert by_kind["kinesis"]["records"] >= 500 and by_kind["firehose"]["records"] >= 500
        assert all(source["deadLetters"] == 0 for source in status["sources"])

    def test_a_runner_killed_mid_race_resumes_from_its_checkpoints_and_results_stay_exact(
        self, pipeline_env, runner_process
    ):
        resources = stack()
        runner = runner_process()

        def kinesis_records() -> int | None:
            try:
                status = status_of(pipeline_env)
            except (FileNotFoundError, json.JSONDecodeError):
                return None
            return max((s["records"] for s in status["sources"] if s["kind"] == "kinesis"), default=None)

        # The race starts once the runner polls, and lasts 15 s: long enough on a loaded 2-core machine
        # for the runner to process part of it before it is killed.
        wait_until(
            lambda: kinesis_records() is not None, timeout=PIPELINE_TIMEOUT, what="runner polling", output=runner.output
        )
        race = RaceSpec(race_id=7002, class_id=4, first_second=1, last_second=30)
        publish(resources, race)
        thread, holder = play_in_background(resources, race, range(101, 126), speed=2)

        # WHEN the runner dies (SIGKILL) once it has processed part of the race
        def aggregated_some() -> bool:
            return (kinesis_records() or 0) >= 150

        wait_until(aggregated_some, timeout=PIPELINE_TIMEOUT, what="part of the race processed", output=runner.output)
        assert thread.is_alive(), "the race should still be running when the runner dies"
        runner.kill()
        time.sleep(1.0)
        restarted = runner_process()
        thread.join(timeout=60)
        result = holder["result"]
        assert (result.sent, result.lost) == (750, 0)

        # THEN the results are exact: nothing lost, nothing counted twice
        assert_race_exact(resources, race, result.messages, restarted.output)
        assert dead_letters(resources) == 0
        assert restarted.stop() == 0

    def test_resharding_from_two_to_four_shards_mid_race_loses_nothing(self, pipeline_env, runner_process):
        resources = stack()
        kinesis = boto3.client("kinesis")
        assert len(kinesis.list_shards(StreamName=resources.stream_name)["Shards"]) == 2
        runner = runner_process()
        # Races whose partition keys fall in both halves of the hash space, i.e. both initial shards.
        low = [r for r in range(7100, 7200) if int(hashlib.md5(str(r).encode()).hexdigest(), 16) < 2**127][:2]
        high = [r for r in range(7100, 7200) if int(hashlib.md5(str(r).encode()).hexdigest(), 16) >= 2**127][:1]
        races = [RaceSpec(race_id=r, class_id=5 + i, first_second=1, last_second=30) for i, r in enumerate(low + high)]
        publish(resources, *races)
        playing = [
            play_in_background(resources, race, range(200 + 20 * i, 212 + 20 * i), 5) for i, race in enumerate(races)
        ]

        # WHEN the stream is resharded to four shards mid-race
        time.sleep(2.5)
        assert all(thread.is_alive() for thread, _holder in playing)
        kinesis.update_shard_count(StreamName=resources.stream_name, TargetShardCount=4, ScalingType="UNIFORM_SCALING")
        for thread, _holder in playing:
            thread.join(timeout=60)

        # THEN every race is exact
        for race, (_thread, holder) in zip(races, playing, strict=True):
            assert holder["result"].lost == 0
            assert_race_exact(resources, race, holder["result"].messages, runner.output)
        # AND the runner followed the children: parents read to their end, children checkpointed
        shards = kinesis.list_shards(StreamName=resources.stream_name)["Shards"]
        children = [s["ShardId"] for s in shards if s.get("ParentShardId")]
        assert len(children) == 4
        checkpoint = json.loads(
            (Path(pipeline_env["ALLEYCAT_VAR_DIR"]) / "checkpoints" / "aggregator-BikeStream.json").read_text()
        )
        parents = {s["ShardId"] for s in shards if not s.get("ParentShardId")}
        assert all(checkpoint["shards"][p]["finished"] for p in parents)
        assert any(checkpoint["shards"].get(c, {}).get("sequenceNumber") for c in children)
        assert dead_letters(resources) == 0
        assert runner.stop() == 0


class TestSettlement:
    def test_a_race_settles_once_the_stream_passes_its_deadline_and_later_readings_are_late(
        self, pipeline_env, runner_process
    ):
        # GIVEN a runner whose shards count as caught up after 3 s without a write
        # (a shard with nothing new for 3 s counts as past the deadline)
        pipeline_env["ALLEYCAT_SHARD_IDLE_SECONDS"] = "3"
        resources = stack()
        runner = runner_process()
        table = results_table(resources)
        race = RaceSpec(race_id=7301, class_id=3, first_second=1, last_second=10)
        publish(resources, race, grace_s=2)
        deadline_s = table.race_identity(race.race_id).settle_at_ms / 1000  # type: ignore[union-attr]

        # WHEN 10 racers ride it (8 of them send their final message)
        simulator = Simulator(boto3.client("kinesis"), resources.stream_name)
        result = simulator.play(race, profiles([(r, None) for r in range(401, 411)]), speed=5, collect=True)
        assert (result.sent, result.lost) == (100, 0)
        assert_race_exact(resources, race, result.messages, runner.output)
        assert not table.race_identity(race.race_id).settled  # type: ignore[union-attr]

        # AND the stream moves past the deadline (another race rides after it)
        time.sleep(max(0.0, deadline_s - time.time()) + 0.5)
        other = RaceSpec(race_id=7302, class_id=3, first_second=1, last_second=5)
        publish(resources, other)

        def settled():
            simulator.play(other, profiles([(501, None)]), speed=50)
            return table.race_identity(race.race_id).settled  # type: ignore[union-attr]

        # THEN the race settles, its results are complete and stay as they are
        wait_until(settled, timeout=PIPELINE_TIMEOUT, what="race 7301 settled", output=runner.output)
        results = {r.racer_id: r.score for r in table.race_results(race.race_id, limit=100).items}
        scores, _ = expected_figures(result.messages)
        assert results == pytest.approx(scores, abs=1e-6)
        frozen = table.live_standings(race.race_id)

        # AND a reading of the settled race is dead-lettered as late, never counted
        late = dict(result.messages[-1], second=10, cadence=250.0, resistance=100.0, event="update")
        boto3.client("kinesis").put_record(
            StreamName=resources.stream_name, Data=json.dumps(late).encode(), PartitionKey=str(race.race_id)
        )
        wait_until(
            lambda: dead_letters(resources) == 1, timeout=PIPELINE_TIMEOUT, what="late letter", output=runner.output
        )
        message = boto3.client("sqs").receive_message(QueueUrl=resources.dead_letter_queue_url)["Messages"][0]
        assert json.loads(message["Body"])["reason"] == "late"
        assert table.live_standings(race.race_id) == frozen
        assert runner.stop() == 0
