"""The Firehose transformer against recorded events, with a real dead-letter queue on moto."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from processors import clients
from processors.domain.scoring import output_of
from processors.handlers import transformer
from tests.processors.factories import LambdaContext, load_event


@pytest.fixture
def dead_letter_queue(aws: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = boto3.client("sqs").create_queue(QueueName="alleycat-dead-letter")["QueueUrl"]
    monkeypatch.setenv("ALLEYCAT_DEAD_LETTER_QUEUE_URL", url)
    clients.clear()
    yield url
    clients.clear()


def receive_all(url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    bodies = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def firehose_record(payload: bytes | str, record_id: str, sequence: str = "1") -> dict[str, Any]:
    data = payload if isinstance(payload, str) else base64.b64encode(payload).decode()
    return {
        "recordId": record_id,
        "approximateArrivalTimestamp": 1764172801500,
        "data": data,
        "kinesisRecordMetadata": {
            "sequenceNumber": sequence,
            "subsequenceNumber": 0,
            "partitionKey": "42",
            "shardId": "shardId-000000000000",
            "approximateArrivalTimestamp": 1764172801500,
        },
    }


EXPECTED = [
    "Ok",  # valid update with uuid
    "Ok",  # valid update without uuid
    "Ok",  # valid final
    "Dropped",  # redelivered duplicate of the first record
    "Dropped",  # empty payload
    "ProcessingFailed",  # not JSON
    "ProcessingFailed",  # JSON array
    "ProcessingFailed",  # missing classId
    "ProcessingFailed",  # second as a string
    "ProcessingFailed",  # cadence 300
    "ProcessingFailed",  # second 0
    "ProcessingFailed",  # unknown event
    "ProcessingFailed",  # uuid as a number
]
EXPECTED_REASONS = [
    "not_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "out_of_range",
    "out_of_range",
    "unknown_event",
    "wrong_type",
]


class TestTransformer:
    def test_one_response_per_record_with_same_ids_in_order(self, dead_letter_queue: str) -> None:
        # GIVEN a recorded Firehose event from the Kinesis source: valid, duplicate, empty and malformed records
        event = load_event("firehose_kinesis_source.json")

        # WHEN the transformer runs
        response = transformer.lambda_handler(copy.deepcopy(event), LambdaContext())

        # THEN every input has exactly one output with the same recordId and the expected result
        assert [r["recordId"] for r in response["records"]] == [r["recordId"] for r in event["records"]]
        assert [r["result"] for r in response["records"]] == EXPECTED

    def test_ok_records_are_json_lines_with_output_added(self, dead_letter_queue: str) -> None:
        event = load_event("firehose_kinesis_source.json")

        response = transformer.lambda_handler(copy.deepcopy(event), LambdaContext())

        for original, transformed in zip(event["records"], response["records"], strict=True):
            if transformed["result"] != "Ok":
                continue
            data = base64.b64decode(transformed["data"])
            assert data.endswith(b"\n") and data.count(b"\n") == 1
            message = json.loads(data)
            source = json.loads(base64.b64decode(original["data"]))
            assert message == {**source, "output": output_of(source["cadence"], source["resistance"])}

    def test_record_without_uuid_stays_without_uuid(self, dead_letter_queue: str) -> None:
        event = load_event("firehose_kinesis_source.json")

        response = transformer.lambda_handler(copy.deepcopy(event), LambdaContext())

        message = json.loads(base64.b64decode(response["records"][1]["data"]))
        assert "uuid" not in message
        assert message["racerId"] == 18
        assert message["output"] == round((80 + 35) * (55 + 65) / 100, 4)

    def test_bad_records_keep_their_original_data_and_reach_the_dead_letter_queue(self, dead_letter_queue: str) -> None:
        event = load_event("firehose_kinesis_source.json")

        response = transformer.lambda_handler(copy.deepcopy(event), LambdaContext())

        failed = [
            (original, transformed)
            for original, transformed in zip(event["records"], response["records"], strict=True)
            if transformed["result"] == "ProcessingFailed"
        ]
        # Firehose writes the payload of a ProcessingFailed record under processing-failed/: keep it intact.
        assert all(transformed["data"] == original["data"] for original, transformed in failed)
        letters = receive_all(dead_letter_queue)
        assert sorted(letter["sequenceNumber"] for letter in letters) == sorted(
            original["kinesisRecordMetadata"]["sequenceNumber"] for original, _ in failed
        )
        by_sequence = {letter["sequenceNumber"]: letter for letter in letters}
        reasons = [by_sequence[original["kinesisRecordMetadata"]["sequenceNumber"]]["reason"] for original, _ in failed]
        assert reasons == EXPECTED_REASONS
        for original, _ in failed:
            letter = by_sequence[original["kinesisRecordMetadata"]["sequenceNumber"]]
            assert letter["handler"] == "transformer"
            assert letter["shardId"] == "shardId-000000000001"
            assert letter["source"] == event["sourceKinesisStreamArn"]
            assert base64.b64decode(letter["data"]) == base64.b64decode(original["data"])

    def test_dropped_records_are_not_dead_lettered(self, dead_letter_queue: str) -> None:
        event = load_event("firehose_kinesis_source.json")
        event["records"] = event["records"][:5]  # three valid, one duplicate, one empty

        response = transformer.lambda_handler(event, LambdaContext())

        assert [r["result"] for r in response["records"]] == ["Ok", "Ok", "Ok", "Dropped", "Dropped"]
        assert receive_all(dead_letter_queue) == []

    def test_huge_name_and_bad_base64_fail_without_crashing(self, dead_letter_queue: str) -> None:
        # GIVEN a 1 MB name (a Kinesis record's maximum) and a payload that is not base64
        huge = json.dumps(
            {
                "event": "update",
                "deviceTimestamp": 1,
                "second": 1,
                "raceId": 42,
                "name": "x" * 1_000_000,
                "racerId": 1,
                "classId": 1,
                "cadence": 90,
                "resistance": 50,
            }
        ).encode()
        event = load_event("firehose_kinesis_source.json")
        event["records"] = [
            firehose_record(huge, "a", sequence="100"),
            firehose_record("not*base64!", "b", sequence="101"),
        ]

        response = transformer.lambda_handler(event, LambdaContext())

        assert [(r["recordId"], r["result"]) for r in response["records"]] == [
            ("a", "ProcessingFailed"),
            ("b", "ProcessingFailed"),
        ]
        letters = {letter["sequenceNumber"]: letter for letter in receive_all(dead_letter_queue)}
        assert letters["100"]["reason"] == "too_large"
        assert letters["100"]["truncated"] is True and letters["100"]["dataSize"] == len(huge)
        assert letters["101"]["reason"] == "bad_base64"

    def test_dead_letter_queue_down_still_answers_every_record(self, aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
        # GIVEN a dead-letter queue URL nobody listens on
        monkeypatch.setenv("ALLEYCAT_DEAD_LETTER_QUEUE_URL", "http://127.0.0.1:9/123456789012/alleycat-dead-letter")
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:9")
        clients.clear()
        event = load_event("firehose_kinesis_source.json")
        try:
            response = transformer.lambda_handler(event, LambdaContext())
        finally:
            clients.clear()

        assert [r["result"] for r in response["records"]] == EXPECTED

    def test_transform_is_deterministic(self) -> None:
        # Firehose retries an invocation on timeout: the same input must give the same output.
        event = load_event("firehose_kinesis_source.json")
        first = [transformer.transform(r["data"], set()) for r in event["records"]]
        second = [transformer.transform(r["data"], set()) for r in event["records"]]
        assert first == second


VALID = {
    "event": "update",
    "deviceTimestamp": 1764172801000,
    "second": 1,
    "raceId": 42,
    "name": "Ada",
    "racerId": 17,
    "classId": 3,
    "cadence": 92.5,
    "resistance": 40,
}


def _encoded(payload: bytes | dict[str, Any]) -> str:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe not utf-8", "not_json"),
        (b'{"cadence": NaN}', "not_json"),
        (b'"just a string"', "not_object"),
        (b"null", "not_object"),
        ({**VALID, "racerId": None}, "wrong_type"),
        ({**VALID, "cadence": "fast"}, "wrong_type"),
        ({**VALID, "second": 1.5}, "wrong_type"),
        ({**VALID, "second": 3601}, "out_of_range"),
        ({**VALID, "resistance": -1}, "out_of_range"),
        ({**VALID, "classId": 0}, "out_of_range"),
        ({**VALID, "racerId": -3}, "out_of_range"),
        ({**VALID, "name": ""}, "out_of_range"),
        ({**VALID, "name": "n" * 65}, "out_of_range"),
        ({**VALID, "event": 7}, "wrong_type"),
        ({**VALID, "event": "FINAL"}, "unknown_event"),
        ({key: value for key, value in VALID.items() if key != "event"}, "missing_field"),
    ],
)
def test_every_kind_of_malformed_record_fails_with_its_reason(payload: bytes | dict[str, Any], reason: str) -> None:
    outcome = transformer.transform(_encoded(payload), set())

    assert outcome.result == "ProcessingFailed"
    assert outcome.bad is not None and outcome.bad.reason == reason
    assert outcome.data == _encoded(payload)  # the original payload, for processing-failed/


def test_extra_fields_are_ignored_and_boundaries_accepted() -> None:
    message = {**VALID, "second": 3600, "cadence": 250, "resistance": 0, "name": "n" * 64, "firmware": "2.1"}

    outcome = transformer.transform(_encoded(message), set())

    assert outcome.result == "Ok"
    line = json.loads(base64.b64decode(outcome.data))
    assert "firmware" not in line and line["output"] == output_of(250, 0)
