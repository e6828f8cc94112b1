"""The local event-source runner against the embedded AWS endpoint (moto server).

The runner is what is under test here: the functions it invokes are small recording functions
defined in the tests, so that each test can make a function fail, count what it was given and
check the exact Lambda event shapes. The real handlers run through the runner in tests/pipeline.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from processors.local.bootstrap import Resources, bootstrap
from processors.local.runner import Runner
from processors.local.template import LocalSettings, load_local_settings


def wait_until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Recorder:
    """Records every invocation of a fake function; ``behaviour`` decides the response (or raises)."""

    def __init__(self, behaviour: Callable[[dict], Any] | None = None) -> None:
        self.events: list[dict] = []
        self.behaviour = behaviour
        self.lock = threading.Lock()

    def __call__(self, event: dict, context: Any) -> Any:
        assert context.function_name and context.get_remaining_time_in_millis() > 0
        with self.lock:
            self.events.append(event)
        return self.behaviour(event) if self.behaviour else None

    def records(self) -> list[dict]:
        with self.lock:
            return [record for event in self.events for record in event.get("Records", [])]


def payloads(records: list[dict]) -> list[str]:
    return [base64.b64decode(record["kinesis"]["data"]).decode() for record in records]


@pytest.fixture
def var_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ALLEYCAT_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("ALLEYCAT_RUNNER_POLL_SECONDS", "0.2")
    monkeypatch.setenv("ALLEYCAT_RUNNER_RETRY_SECONDS", "0.01")
    monkeypatch.setenv("ALLEYCAT_RUNNER_REPORT_SECONDS", "0.5")
    monkeypatch.setenv("ALLEYCAT_FIREHOSE_BUFFER_SECONDS", "0.5")
    monkeypatch.setenv("ALLEYCAT_PIPELINE_STATUS_FILE", str(tmp_path / "var" / "status.json"))
    return tmp_path / "var"


def make_stack(window: int, shards: int = 1) -> tuple[LocalSettings, Resources]:
    settings = load_local_settings(parameters={"TumblingWindowInSeconds": str(window), "StreamShardCount": str(shards)})
    return settings, bootstrap(None, settings)


def fake_handlers(**overrides: Recorder) -> dict[str, Recorder]:
    handlers = {name: Recorder() for name in ("aggregator", "finals", "publisher", "history")}
    handlers["transformer"] = Recorder(
        lambda event: {
            "records": [
                {
                    "recordId": r["recordId"],
                    "result": "Ok",
                    "data": base64.b64encode(base64.b64decode(r["data"]) + b"\n").decode(),
                }
                for r in event["records"]
            ]
        }
    )
    handlers.update(overrides)
    return handlers


@pytest.fixture
def running() -> Iterator[Callable[..., Runner]]:
    started: list[Runner] = []

    def start(settings: LocalSettings, resources: Resources, handlers: dict) -> Runner:
        runner = Runner(settings, resources=resources, handlers=handlers)
        thread = threading.Thread(target=runner.run_until_stopped, daemon=True)
        thread.start()
        runner.thread = thread  # type: ignore[attr-defined]
        started.append(runner)
        return runner

    yield start
    for runner in started:
        runner.stop.set()
        runner.thread.join(timeout=30)  # type: ignore[attr-defined]


def put(stream: str, bodies: list[str], key: str = "7") -> None:
    kinesis = boto3.client("kinesis")
    for start in range(0, len(bodies), 500):
        response = kinesis.put_records(
            StreamName=stream,
            Records=[{"Data": body.encode(), "PartitionKey": key} for body in bodies[start : start + 500]],
        )
        assert response["FailedRecordCount"] == 0


def stop(runner: Runner) -> None:
    runner.stop.set()
    runner.thread.join(timeout=30)  # type: ignore[attr-defined]
    assert not runner.thread.is_alive()  # type: ignore[attr-defined]


class TestRunnerCheckpoints:
    def test_a_restart_resumes_after_the_last_processed_record(self, aws, var_dir, running):
        # GIVEN a runner without tumbling window that has processed 30 records
        settings, resources = make_stack(window=0)
        first = fake_handlers()
        runner = running(settings, resources, first)
        put(resources.stream_name, [f"a{i}" for i in range(30)])
        wait_until(lambda: len(first["aggregator"].records()) == 30, what="first 30 records")
        stop(runner)
        # THEN the checkpoint holds the last sequence number of the shard
        checkpoint = json.loads((var_dir / "checkpoints" / "aggregator-BikeStream.json").read_text())
        (shard,) = checkpoint["shards"].values()
        assert shard["sequenceNumber"] == first["aggregator"].records()[-1]["kinesis"]["sequenceNumber"]

        # WHEN a new runner starts and more records arrive
        second = fake_handlers()
        running(settings, resources, second)
        put(resources.stream_name, [f"b{i}" for i in range(10)])
        wait_until(lambda: len(second["aggregator"].records()) >= 10, what="10 new records")
        time.sleep(0.5)
        # THEN it sees exactly the new ones
        assert payloads(second["aggregator"].records()) == [f"b{i}" for i in range(10)]

    def test_a_checkpoint_of_a_stream_that_was_created_again_is_ignored(self, aws, var_dir, running):
        settings, resources = make_stack(window=0)
        first = fake_handlers()
        runner = running(settings, resources, first)
        put(resources.stream_name, [f"a{i}" for i in range(20)])
        wait_until(lambda: len(first["aggregator"].records()) == 20)
        stop(runner)
        # The endpoint restarts empty (moto keeps everything in memory): sequence numbers start again.
        kinesis = boto3.client("kinesis")
        kinesis.delete_stream(StreamName=resources.stream_name)
        time.sleep(1.1)  # a different creation timestamp
        resources = bootstrap(None, settings)
        second = fake_handlers()
        running(settings, resources, second)
        put(resources.stream_name, [f"b{i}" for i in range(5)])
        wait_until(lambda: len(second["aggregator"].records()) >= 5)
        assert payloads(second["aggregator"].records()) == [f"b{i}" for i in range(5)]


class TestRunnerErrors:
    def test_bisect_isolates_a_failing_record_and_sends_its_batch_info_to_the_dead_letter_queue(
        self, aws, var_dir, running
    ):
        # GIVEN a function that fails whenever its batch holds the poison record
        def behaviour(event: dict) -> None:
            if "poison" in payloads(event["Records"]):
                raise RuntimeError("poison")

        settings, resources = make_stack(window=0)
        handlers = fake_handlers(aggregator=Recorder(behaviour))
        bodies = [f"r{i}" for i in range(16)]
        bodies[11] = "poison"
        put(resources.stream_name, bodies)
        runner = running(settings, resources, handlers)
        sqs = boto3.client("sqs")
        mapping = settings.function("aggregator").event_sources[0]

        def letters() -> list[dict]:
            messages = sqs.receive_message(QueueUrl=resources.dead_letter_queue_url, MaxNumberOfMessages=10)
            return [json.loads(m["Body"]) for m in messages.get("Messages", [])]

        received: list[dict] = []
        wait_until(lambda: received.extend(letters()) or received, what="a dead letter")
        # THEN every good record was processed exactly once, in order, and the poison one dead-lettered alone
        good = [
            p
            for event in handlers["aggregator"].events
            if "poison" not in payloads(event["Records"])
            for p in payloads(event["Records"])
        ]
        assert good == [b for b in bodies if b != "poison"]
        (letter,) = received
        info = letter["KinesisBatchInfo"]
        poison_sequence = next(
            r["kinesis"]["sequenceNumber"] for r in handlers["aggregator"].records() if "poison" in payloads([r])
        )
        assert info["startSequenceNumber"] == info["endSequenceNumber"] == poison_sequence
        assert info["batchSize"] == 1 and info["streamArn"] == resources.stream_arn
        assert letter["requestContext"]["condition"] == "RetryAttemptsExhausted"
        # the poison record alone was tried 1 + MaximumRetryAttempts times
        alone = [event for event in handlers["aggregator"].events if payloads(event["Records"]) == ["poison"]]
        assert len(alone) == mapping.maximum_retry_attempts + 1
        wait_until(lambda: runner.status()["sources"][0]["deadLetters"] == 1)
        # and the shard moved on: a later record is processed
        put(resources.stream_name, ["after"])
        wait_until(lambda: "after" in payloads(handlers["aggregator"].records()))

    def test_partial_batch_failure_retries_from_the_reported_record(self, aws, var_dir, running):
        # GIVEN finals (ReportBatchItemFailures) failing the second stream record once
        failed_once: set[str] = set()

        def behaviour(event: dict) -> dict:
            records = event["Records"]
            for record in records:
                sequence = record["dynamodb"]["SequenceNumber"]
                if record["dynamodb"]["Keys"]["pk"]["S"] == "x1" and sequence not in failed_once:
                    failed_once.add(sequence)
                    return {"batchItemFailures": [{"itemIdentifier": sequence}]}
            return {"batchItemFailures": []}

        settings, resources = make_stack(window=0)
        handlers = fake_handlers(finals=Recorder(behaviour))
        running(settings, resources, handlers)
        dynamodb = boto3.client("dynamodb")
        for pk in ("x0", "x1", "x2"):  # live items: the template's filter lets only sk = LIVE through
            dynamodb.put_item(
                TableName=resources.table_name, Item={"pk": {"S": pk}, "sk": {"S": "LIVE"}, "b": {"B": b"\x01\x02"}}
            )
        wait_until(lambda: [r["dynamodb"]["Keys"]["pk"]["S"] for r in handlers["finals"].records()].count("x2") >= 1)
        seen = [r["dynamodb"]["Keys"]["pk"]["S"] for r in handlers["finals"].records()]
        # x0 is never redelivered once acknowledged; x1 is delivered twice (failed, then retried)
        assert seen.count("x0") == 1 and seen.count("x1") == 2
        record = handlers["finals"].records()[0]
        # the Lambda shape: binary attributes as base64 text, epoch creation time, the stream ARN
        assert record["dynamodb"]["NewImage"]["b"] == {"B": base64.b64encode(b"\x01\x02").decode()}
        assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int)
        assert record["eventSourceARN"] == resources.table_stream_arn and record["eventName"] == "INSERT"

    def test_filter_criteria_deliver_only_live_items_and_checkpoint_past_the_others(self, aws, var_dir, running):
        # GIVEN the template's FilterCriteria on finals and publisher (sk = LIVE)
        settings, resources = make_stack(window=0)
        assert settings.function("finals").event_sources[0].filters
        handlers = fake_handlers()
        runner = running(settings, resources, handlers)
        dynamodb = boto3.client("dynamodb")
        for pk, sk in (("RACE#1", "RESULT#1"), ("RACE#1", "LIVE"), ("CLASS#1", "BEST#1"), ("RACE#2", "LIVE")):
            dynamodb.put_item(TableName=resources.table_name, Item={"pk": {"S": pk}, "sk": {"S": sk}})
        dynamodb.put_item(TableName=resources.table_name, Item={"pk": {"S": "RACE#3"}, "sk": {"S": "SECONDS#1"}})
        wait_until(lambda: len(handlers["finals"].records()) >= 2)
        for name in ("finals", "publisher"):  # publisher starts at LATEST: it may have missed the first ones
            records = handlers[name].records()
            keys = [(r["dynamodb"]["Keys"]["pk"]["S"], r["dynamodb"]["Keys"]["sk"]["S"]) for r in records]
            assert all(key in [("RACE#1", "LIVE"), ("RACE#2", "LIVE")] for key in keys)
        assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in handlers["finals"].records()] == ["RACE#1", "RACE#2"]
        finals = next(source for source in runner.sources if source.name == "finals<-TableStream")
        wait_until(lambda: finals.stats.extra.get("filteredOut") == 3, what="the last record filtered out")
        stop(runner)
        # the checkpoint is past the last record (filtered out): a restart delivers nothing again
        handlers_again = fake_handlers()
        restarted = running(settings, resources, handlers_again)
        time.sleep(1.5)
        stop(restarted)
        assert handlers_again["finals"].records() == []


class TestRunnerTumblingWindow:
    def test_state_is_carried_within_a_window_and_each_window_ends_with_a_final_invoke(self, aws, var_dir, running):
        # GIVEN a function that counts records in its window state
        finals: list[dict] = []

        def behaviour(event: dict) -> dict:
            state = event["state"] or {"n": 0, "invokes": 0}
            if event["isFinalInvokeForWindow"]:
                finals.append({"window": event["window"], "state": state, "records": len(event["Records"])})
                return {}
            return {"state": {"n": state["n"] + len(event["Records"]), "invokes": state["invokes"] + 1}}

        settings, resources = make_stack(window=1)
        handlers = fake_handlers(aggregator=Recorder(behaviour))
        running(settings, resources, handlers)
        sent = 0
        for burst in range(4):
            put(resources.stream_name, [f"w{burst}-{i}" for i in range(25)])
            sent += 25
            time.sleep(0.6)
        wait_until(lambda: sum(f["state"]["n"] for f in finals) == sent, what="every record counted in a final state")
        # THEN windows are 1 s, aligned, distinct, and the final invoke carries no records
        starts = [f["window"]["start"] for f in finals]
        assert len(starts) == len(set(starts)) >= 2
        assert all(f["records"] == 0 for f in finals)
        assert any(f["state"]["invokes"] >= 1 for f in finals)
        event = handlers["aggregator"].events[0]
        assert event["shardId"].startswith("shardId-") and event["eventSourceARN"] == resources.stream_arn
        assert set(event) >= {"Records", "window", "state", "isFinalInvokeForWindow", "isWindowTerminatedEarly"}


class TestRunnerFirehose:
    def test_firehose_delivers_gzip_objects_failed_records_separately_and_notifies_history(self, aws, var_dir, running):
        def transform(event: dict) -> dict:
            out = []
            for record in event["records"]:
                data = base64.b64decode(record["data"])
                result = "ProcessingFailed" if data == b"bad" else "Ok"
                out.append(
                    {"recordId": record["recordId"], "result": result, "data": base64.b64encode(data + b"\n").decode()}
                )
            return {"records": out}

        settings, resources = make_stack(window=0)
        handlers = fake_handlers(transformer=Recorder(transform))
        runner = running(settings, resources, handlers)
        put(resources.stream_name, ["one", "bad", "two"])
        wait_until(lambda: handlers["history"].events, what="history notified")
        s3 = boto3.client("s3")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=resources.delivery_bucket).get("Contents", [])]
        raw = [k for k in keys if k.startswith("raw/")]
        failed = [k for k in keys if k.startswith("processing-failed/")]
        assert len(raw) == 1 and len(failed) == 1
        # raw/YYYY/MM/DD/HH/<name>-1-YYYY-MM-DD-HH-MM-SS-<uuid>.gz
        parts = raw[0].split("/")
        assert len(parts) == 6 and parts[5].startswith(f"{settings.firehose.name}-1-") and parts[5].endswith(".gz")
        body = gzip.decompress(s3.get_object(Bucket=resources.delivery_bucket, Key=raw[0])["Body"].read())
        assert body == b"one\ntwo\n"
        error_lines = gzip.decompress(s3.get_object(Bucket=resources.delivery_bucket, Key=failed[0])["Body"].read())
        (error,) = [json.loads(line) for line in error_lines.splitlines()]
        assert base64.b64decode(error["rawData"]) == b"bad" and error["errorCode"] == "Lambda.ProcessingFailed"
        # the S3 notification: an ObjectCreated:Put event for the raw object only
        (event,) = handlers["history"].events
        (record,) = event["Records"]
        assert record["eventName"] == "ObjectCreated:Put" and record["s3"]["object"]["key"] == raw[0]
        assert record["s3"]["bucket"]["name"] == resources.delivery_bucket
        # the transformer got the Firehose event shape
        transformer_event = handlers["transformer"].events[0]
        assert transformer_event["sourceKinesisStreamArn"] == resources.stream_arn
        assert {"recordId", "approximateArrivalTimestamp", "data", "kinesisRecordMetadata"} <= set(
            transformer_event["records"][0]
        )
        # and the status file reports every source
        wait_until(lambda: runner.status_path.exists())
        status = json.loads(runner.status_path.read_text())
        kinds = {source["kind"] for source in status["sources"]}
        assert kinds == {"kinesis", "dynamodb", "s3", "firehose"}
        assert all({"lagMs", "recordsPerSecond", "errors", "deadLetters"} <= set(s) for s in status["sources"])


class TestRunnerS3Notifications:
    def test_a_failing_object_is_retried_then_its_event_goes_to_the_dead_letter_queue(self, aws, var_dir, running):
        # GIVEN history failing on every object
        def behaviour(event: dict) -> None:
            raise RuntimeError("history is down")

        settings, resources = make_stack(window=0)
        handlers = fake_handlers(history=Recorder(behaviour))
        runner = running(settings, resources, handlers)
        s3 = boto3.client("s3")
        key = time.strftime("raw/%Y/%m/%d/%H/manual-object.gz", time.gmtime())
        s3.put_object(Bucket=resources.delivery_bucket, Key=key, Body=gzip.compress(b"{}\n"))
        sqs = boto3.client("sqs")

        def letter() -> dict | None:
            messages = sqs.receive_message(QueueUrl=resources.dead_letter_queue_url).get("Messages", [])
            return json.loads(messages[0]["Body"]) if messages else None

        received: list[dict] = []
        wait_until(lambda: received.append(letter()) or any(received), what="a dead letter")
        body = next(item for item in received if item)
        # THEN it was invoked 1 + MaximumRetryAttempts (EventInvokeConfig) times, as Lambda retries async events
        mapping = settings.function("history").event_sources[0]
        assert len(handlers["history"].events) == mapping.maximum_retry_attempts + 1
        assert body["requestContext"]["condition"] == "RetriesExhausted"
        assert body["requestContext"]["approximateInvokeCount"] == mapping.maximum_retry_attempts + 1
        assert body["requestPayload"]["Records"][0]["s3"]["object"]["key"] == key
        assert body["responsePayload"]["errorMessage"].startswith("RuntimeError: history is down")
        wait_until(lambda: any(s["kind"] == "s3" and s["deadLetters"] == 1 for s in runner.status()["sources"]))
        # AND the object is not notified again (its notification is done, failed or not)
        time.sleep(1.0)
        assert len(handlers["history"].events) == mapping.maximum_retry_attempts + 1


def test_an_open_window_closes_at_its_end_not_at_the_next_poll():
    from processors.local.runner.sources.mapping import StreamMappingSource
    from processors.local.runner.windows import WINDOW_CLOSE_GRACE_SECONDS, Window

    # GIVEN a windowed mapping polling once a second (built without a stream: only its timing is asked)
    source = object.__new__(StreamMappingSource)
    source.poll_seconds = 1.0
    source.windows = {}
    # THEN with no open window it waits the poll interval
    assert source.idle_wait() == 1.0
    # AND with windows open it wakes when the first can close (its end + the grace), not a second later
    now = time.time()
    source.windows = {"a": Window(start=now - 0.7, end=now + 0.3), "b": Window(start=now - 0.2, end=now + 0.8)}
    assert 0.3 < source.idle_wait() <= 0.3 + WINDOW_CLOSE_GRACE_SECONDS
    # AND a window already past its end is closed on the next pass, at once
    source.windows = {"a": Window(start=now - 5, end=now - 4)}
    assert source.idle_wait() == 0.01


def test_a_shard_read_to_its_end_has_its_children_listed_at_once():
    from processors.local.runner.sources.shards import SHARD_LIST_SECONDS, ShardInfo, ShardSet

    class Stream:
        """Two listings: before the reshard (one open shard), after it (parent closed, two children)."""

        kind, arn, identity = "kinesis", "arn:stream", "1"

        def __init__(self) -> None:
            self.shards = [ShardInfo("p", (), False)]
            self.listings = 0

        def list_shards(self) -> list[ShardInfo]:
            self.listings += 1
            return list(self.shards)

        def iterator(self, shard_id: str, after: str | None, starting_position: str) -> str:
            return f"{shard_id}:0"

        def get_records(self, iterator: str, limit: int) -> tuple[list[dict], str | None, int | None]:
            # the parent is closed and has no more records: no next iterator
            return [{"SequenceNumber": "9"}], None, 0

        @staticmethod
        def sequence(raw: dict) -> str:
            return raw["SequenceNumber"]

    # GIVEN a shard set that listed the stream before a reshard
    stream = Stream()
    shards = ShardSet(stream, starting_position="LATEST", checkpoint={})  # type: ignore[arg-type]
    shards.refresh()
    (parent,) = shards.readable()
    # AND the stream was resharded: the parent closed, two children took its keys
    stream.shards = [ShardInfo("p", (), True), ShardInfo("c1", ("p",), False), ShardInfo("c2", ("p",), False)]
    shards.refresh()  # within SHARD_LIST_SECONDS: no new listing yet
    assert stream.listings == 1 and SHARD_LIST_SECONDS >= 1
    # WHEN the parent is read to its end and its records are processed
    assert shards.read(parent, 100) and parent.drained
    parent.finished = True
    # THEN the next pass lists the stream again at once and reads the children
    shards.refresh()
    assert stream.listings == 2
    assert [cursor.shard_id for cursor in shards.readable()] == ["c1", "c2"]
    # AND listing goes back to its interval afterwards
    shards.refresh()
    assert stream.listings == 2


def test_the_stream_readers_get_records_as_sent_and_the_same_records_as_boto3(aws):
    """The runner's Kinesis client (``core._wire_values``): base64 data and epoch arrivals, nothing else changed."""
    from processors.local.runner.core import _wire_values

    plain = boto3.client("kinesis")
    plain.create_stream(StreamName="wire", ShardCount=1)
    plain.get_waiter("stream_exists").wait(StreamName="wire")
    payloads = [bytes([i, 0, 255]) + f"record {i} ✓".encode() for i in range(30)]
    plain.put_records(
        StreamName="wire", Records=[{"Data": data, "PartitionKey": f"7:{i}"} for i, data in enumerate(payloads)]
    )
    wire = _wire_values(boto3.Session()).client("kinesis")
    shard = plain.list_shards(StreamName="wire")["Shards"][0]["ShardId"]

    def read(client: Any, limit: int) -> list[dict]:
        iterator = client.get_shard_iterator(StreamName="wire", ShardId=shard, ShardIteratorType="TRIM_HORIZON")
        answer = client.get_records(ShardIterator=iterator["ShardIterator"], Limit=limit)
        assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert answer["NextShardIterator"] and answer["MillisBehindLatest"] >= 0
        return answer["Records"]

    expected, got = read(plain, 25), read(wire, 25)
    assert len(got) == len(expected) == 25
    for mine, theirs in zip(got, expected, strict=True):
        assert set(mine) == set(theirs) == {"Data", "PartitionKey", "SequenceNumber", "ApproximateArrivalTimestamp"}
        assert mine["Data"] == base64.b64encode(theirs["Data"]).decode()
        assert abs(mine["ApproximateArrivalTimestamp"] - theirs["ApproximateArrivalTimestamp"].timestamp()) < 0.001
        assert (mine["PartitionKey"], mine["SequenceNumber"]) == (theirs["PartitionKey"], theirs["SequenceNumber"])
    with pytest.raises(wire.exceptions.ClientError):  # errors still parsed by botocore
        wire.get_records(ShardIterator="not-an-iterator")
    with pytest.raises(wire.exceptions.ResourceNotFoundException):
        wire.describe_stream_summary(StreamName="no-such-stream")
