"""The history handler with real GZIP Firehose objects in moto S3 and the table on moto DynamoDB."""

from __future__ import annotations

import base64
import copy
import gzip
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus

import boto3
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors import clients
from processors.handlers import history
from processors.history_store import (
    decode_history,
    encode_history,
    history_key,
    merge_bests,
    merge_class_history,
    read_class_history,
)
from processors.local.bootstrap import Resources, bootstrap
from processors.local.template import load_local_settings
from processors.table import get_results_table
from tests.processors.factories import LambdaContext, load_event, make_reading


@pytest.fixture
def pipeline(aws: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Resources]:
    """Stream, table, buckets and dead-letter queue as the template declares them, on a clean moto."""
    resources = bootstrap(None, load_local_settings())
    for name, value in load_local_settings().environment("history", resources).items():
        monkeypatch.setenv(name, value)
    clients.clear()
    yield resources
    clients.clear()


def message(racer_id: int, second: int, cadence: float, resistance: float, **overrides: Any) -> dict[str, Any]:
    reading = make_reading(
        device_ts=1764172800000 + second * 1000,
        second=second,
        race_id=overrides.pop("race_id", 42),
        name=overrides.pop("name", f"Racer {racer_id}"),
        racer_id=racer_id,
        class_id=overrides.pop("class_id", 3),
        cadence=cadence,
        resistance=resistance,
        uuid=overrides.pop("uuid", None),
    )
    return reading.to_message()


def firehose_object(messages: list[dict[str, Any]], *, extra_lines: list[bytes] = ()) -> bytes:
    """A delivered Firehose object: the transformer's JSON lines, concatenated and GZIP-compressed."""
    lines = b"".join(orjson.dumps(m) + b"\n" for m in messages) + b"".join(extra_lines)
    return gzip.compress(lines)


def s3_event(*keys: str) -> dict[str, Any]:
    """The recorded S3 notification, with its records' keys (URL-encoded like S3 does) replaced."""
    recorded = load_event("s3_object_created.json")
    records = []
    for index, key in enumerate(keys):
        record = copy.deepcopy(recorded["Records"][index % len(recorded["Records"])])
        record["s3"]["object"]["key"] = key
        records.append(record)
    return {"Records": records}


def put(bucket: str, key: str, body: bytes) -> None:
    boto3.client("s3").put_object(Bucket=bucket, Key=unquote_plus(key), Body=body)


def history_document(bucket: str, class_id: int) -> dict[str, Any]:
    body = boto3.client("s3").get_object(Bucket=bucket, Key=history_key(class_id))["Body"].read()
    return decode_history(body)


def out(cadence: float, resistance: float) -> float:
    return round((cadence + 35) * (resistance + 65) / 100, 4)


class TestHistoryHandler:
    def test_merges_per_second_bests_of_every_object_in_the_event(self, pipeline: Resources) -> None:
        # GIVEN two Firehose objects (URL-encoded keys, as in the recorded event): racer 17 rides seconds
        # 1-3 in race 42 and again in race 43 (class 3); racer 5 rides in class 4; one message has no uuid
        recorded = load_event("s3_object_created.json")
        first_key, second_key = (record["s3"]["object"]["key"] for record in recorded["Records"])
        put(
            pipeline.delivery_bucket,
            first_key,
            firehose_object(
                [
                    message(17, 1, 90, 40, uuid="u-1"),
                    message(17, 2, 95, 40),
                    message(17, 3, 100, 40),
                    message(5, 1, 60, 20, class_id=4, race_id=44),
                ]
            ),
        )
        put(
            pipeline.delivery_bucket,
            second_key,
            firehose_object(
                [
                    message(17, 1, 80, 40, race_id=43),  # worse than race 42 at second 1
                    message(17, 3, 120, 40, race_id=43),  # better at second 3
                    message(17, 5, 70, 30, race_id=43),  # second 4 never seen
                ]
            ),
        )

        # WHEN history handles the recorded notification of both objects
        summary = history.lambda_handler(recorded, LambdaContext())

        # THEN the class objects hold the best output per second, null where never seen
        assert summary["objects"] == 2 and summary["records"] == 7 and summary["bad"] == 0
        class_3 = history_document(pipeline.history_bucket, 3)
        assert class_3["classId"] == 3
        assert class_3["racers"] == {"17": [out(90, 40), out(95, 40), out(120, 40), None, out(70, 30)]}
        assert history_document(pipeline.history_bucket, 4)["racers"] == {"5": [out(60, 20)]}

    def test_writes_per_racer_per_second_items(self, pipeline: Resources) -> None:
        key = "raw/2026/11/26/16/object-a.gz"
        put(pipeline.delivery_bucket, key, firehose_object([message(17, s, 90 + s, 40) for s in (1, 2, 4)]))

        history.lambda_handler(s3_event(key), LambdaContext())

        seconds = get_results_table().racer_race_seconds(42, 17)
        assert seconds[:4] == [out(91, 40), out(92, 40), None, out(94, 40)]

    def test_replaying_an_object_leaves_s3_and_dynamodb_identical(self, pipeline: Resources) -> None:
        # GIVEN an object already processed once
        key = "raw/2026/11/26/16/object-b.gz"
        put(pipeline.delivery_bucket, key, firehose_object([message(r, s, 90, 40 + r) for r in (1, 2) for s in (1, 2)]))
        history.lambda_handler(s3_event(key), LambdaContext())
        s3 = boto3.client("s3")
        before_object = s3.get_object(Bucket=pipeline.history_bucket, Key=history_key(3))
        before_bytes = before_object["Body"].read()
        before_table = scan_table(pipeline.table_name)

        # WHEN the same notification is delivered again (S3 and Lambda retries are at least once)
        summary = history.lambda_handler(s3_event(key), LambdaContext())

        # THEN nothing changed: same bytes, same ETag, no new version of the (versioned) history object
        after_object = s3.get_object(Bucket=pipeline.history_bucket, Key=history_key(3))
        assert after_object["Body"].read() == before_bytes
        assert after_object["ETag"] == before_object["ETag"]
        versions = s3.list_object_versions(Bucket=pipeline.history_bucket, Prefix=history_key(3))["Versions"]
        assert len(versions) == 1
        assert summary["classesUnchanged"] == [3] and summary["classesWritten"] == []
        assert scan_table(pipeline.table_name) == before_table

    def test_keeps_better_bests_already_in_the_history(self, pipeline: Resources) -> None:
        boto3.client("s3").put_object(
            Bucket=pipeline.history_bucket,
            Key=history_key(3),
            Body=encode_history({"classId": 3, "updatedAt": 1, "racers": {"17": [500.0, 1.0], "9": [7.5]}}),
        )
        key = "raw/2026/11/26/16/object-c.gz"
        put(pipeline.delivery_bucket, key, firehose_object([message(17, 1, 90, 40), message(17, 2, 90, 40)]))

        history.lambda_handler(s3_event(key), LambdaContext())

        assert history_document(pipeline.history_bucket, 3)["racers"] == {"17": [500.0, out(90, 40)], "9": [7.5]}

    def test_bad_lines_go_to_the_dead_letter_queue_and_failed_prefix_is_skipped(self, pipeline: Resources) -> None:
        key = "raw/2026/11/26/16/object-d.gz"
        put(
            pipeline.delivery_bucket,
            key,
            firehose_object([message(17, 1, 90, 40)], extra_lines=[b"{not json\n", b'{"event": "update"}\n']),
        )
        failed_key = "processing-failed/2026/11/26/16/failed.gz"
        put(pipeline.delivery_bucket, failed_key, gzip.compress(b'{"errorCode":"Lambda.FunctionError"}\n'))

        summary = history.lambda_handler(s3_event(key, failed_key), LambdaContext())

        assert summary["objects"] == 1 and summary["skipped"] == 1 and summary["records"] == 1
        messages = boto3.client("sqs").receive_message(QueueUrl=pipeline.dead_letter_queue_url, MaxNumberOfMessages=10)[
            "Messages"
        ]
        letters = sorted((json.loads(m["Body"]) for m in messages), key=lambda letter: letter["sequenceNumber"])
        assert [(letter["reason"], letter["sequenceNumber"]) for letter in letters] == [
            ("not_json", "2"),
            ("missing_field", "3"),
        ]
        assert {letter["source"] for letter in letters} == {f"s3://{pipeline.delivery_bucket}/{key}"}
        assert history_document(pipeline.history_bucket, 3)["racers"] == {"17": [out(90, 40)]}


def scan_table(table_name: str) -> list[dict[str, Any]]:
    # A test-only full read to compare the whole table before and after a replay.
    items = boto3.client("dynamodb").scan(TableName=table_name, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


class InterleavingS3:
    """The real S3 client, except that another writer gets in right before our first conditional put.

    This forces the lost-update race deterministically: we have read the object (or seen it missing),
    then someone else writes, then our put must be rejected and our merge redone.
    """

    def __init__(self, client: Any, bucket: str, class_id: int, other_bests: dict[int, dict[int, float]]) -> None:
        self._client = client
        self._bucket = bucket
        self._class_id = class_id
        self._other_bests = other_bests
        self.interfered = False

    def put_object(self, **kwargs: Any) -> Any:
        if not self.interfered:
            self.interfered = True
            merge_class_history(self._client, self._bucket, self._class_id, self._other_bests, now_ms=5)
        return self._client.put_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class TestConcurrentMerge:
    @pytest.mark.parametrize("existing", [False, True], ids=["create", "update"])
    def test_a_concurrent_writer_is_never_lost(self, pipeline: Resources, existing: bool) -> None:
        s3 = boto3.client("s3")
        if existing:
            merge_class_history(s3, pipeline.history_bucket, 3, {1: {1: 10.0}}, now_ms=1)
        interleaving = InterleavingS3(s3, pipeline.history_bucket, 3, {2: {1: 20.0, 2: 21.0}})

        result = merge_class_history(interleaving, pipeline.history_bucket, 3, {3: {2: 30.0}}, now_ms=9)

        assert interleaving.interfered
        assert result.written and result.attempts == 2  # first put rejected (412), merged again
        document, _etag = read_class_history(s3, pipeline.history_bucket, 3)
        expected = {"2": [20.0, 21.0], "3": [None, 30.0]}
        if existing:
            expected["1"] = [10.0]
        assert document["racers"] == expected


class TestMergeBests:
    @given(
        st.lists(
            st.dictionaries(
                st.integers(1, 20),
                st.dictionaries(st.integers(1, 30), st.floats(0, 500, allow_nan=False), max_size=5),
                max_size=4,
            ),
            min_size=1,
            max_size=5,
        ),
        st.randoms(use_true_random=False),
    )
    def test_merge_order_does_not_matter_and_replay_changes_nothing(self, batches: list, rnd: Any) -> None:
        def merge_all(order: list) -> dict[str, Any] | None:
            document = None
            for bests in order:
                document = merge_bests(document, 3, bests, 0) or document
            return document

        shuffled = list(batches)
        rnd.shuffle(shuffled)
        forward = merge_all(batches)
        assert encode_history(forward) == encode_history(merge_all(shuffled))
        for bests in batches:
            assert merge_bests(forward, 3, bests, 99) is None

    def test_encoding_is_deterministic_and_round_trips(self) -> None:
        document = {"classId": 3, "updatedAt": 7, "racers": {"2": [1.5, None], "10": [2.25]}}
        assert encode_history(document) == encode_history(dict(reversed(list(document.items()))))
        assert decode_history(encode_history(document)) == document


class TestFromTransformerToHistory:
    def test_transformer_output_delivered_as_firehose_would_is_merged(self, pipeline: Resources) -> None:
        # GIVEN the transformer's answer to the recorded Firehose event, delivered as Firehose does:
        # the Ok records' data concatenated and GZIP-compressed into one object under the prefix
        from processors.handlers import transformer

        event = load_event("firehose_kinesis_source.json")
        response = transformer.lambda_handler(event, LambdaContext(function_name="transformer"))
        body = b"".join(base64.b64decode(record["data"]) for record in response["records"] if record["result"] == "Ok")
        key = "raw/2026/11/26/16/alleycat-delivery-1-2026-11-26-16-00-00-0000.gz"
        put(pipeline.delivery_bucket, key, gzip.compress(body))

        # WHEN history handles the object
        summary = history.lambda_handler(s3_event(key), LambdaContext())

        # THEN the three valid messages (racers 17 and 18 at second 1, racer 17's final at 300) are merged
        assert summary["records"] == 3 and summary["bad"] == 0
        racers = history_document(pipeline.history_bucket, 3)["racers"]
        assert racers["18"] == [out(80, 55)]
        assert racers["17"][0] == out(92.5, 40) and racers["17"][299] == out(110.25, 70)
        assert racers["17"][1:299] == [None] * 298
