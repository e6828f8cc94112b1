"""Bootstrap against a real moto server: everything the template declares, idempotently."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from processors.local.bootstrap import Clients, Resources, bootstrap
from processors.local.template import LocalSettings, load_local_settings
from processors.table import schema

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings() -> LocalSettings:
    return load_local_settings()


class TestBootstrap:
    def test_creates_what_the_template_declares(self, aws: str, settings: LocalSettings) -> None:
        # WHEN bootstrapping a clean endpoint
        resources = bootstrap(boto3.Session(), settings)

        # THEN the stream, table (indexes, stream), both buckets and the queue exist as declared
        assert set(resources.created) == {
            "stream:alleycat-bikes",
            "table:alleycat",
            "bucket:alleycat-delivery",
            "bucket:alleycat-history",
            "queue:alleycat-dead-letter",
        }
        kinesis = boto3.client("kinesis")
        summary = kinesis.describe_stream_summary(StreamName="alleycat-bikes")["StreamDescriptionSummary"]
        assert summary["OpenShardCount"] == settings.stream.shard_count == 2
        assert resources.stream_arn == summary["StreamARN"]

        table = boto3.client("dynamodb").describe_table(TableName="alleycat")["Table"]
        expected = schema.create_table_kwargs("alleycat")
        assert table["KeySchema"] == expected["KeySchema"]
        assert sorted(table["AttributeDefinitions"], key=str) == sorted(expected["AttributeDefinitions"], key=str)
        indexes = {index["IndexName"]: index["KeySchema"] for index in table["GlobalSecondaryIndexes"]}
        assert indexes == {index["IndexName"]: index["KeySchema"] for index in expected["GlobalSecondaryIndexes"]}
        assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        assert resources.table_stream_arn == table["LatestStreamArn"]

        s3 = boto3.client("s3")
        names = {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
        assert {"alleycat-delivery", "alleycat-history"} <= names
        assert s3.get_bucket_versioning(Bucket="alleycat-history").get("Status") == "Enabled"

        sqs = boto3.client("sqs")
        assert resources.dead_letter_queue_url == sqs.get_queue_url(QueueName="alleycat-dead-letter")["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=resources.dead_letter_queue_url, AttributeNames=["All"])
        assert attributes["Attributes"]["MessageRetentionPeriod"] == "1209600"

    def test_second_run_changes_nothing_and_keeps_data(self, aws: str, settings: LocalSettings) -> None:
        # GIVEN a bootstrapped endpoint holding data
        first = bootstrap(None, settings)
        boto3.client("s3").put_object(Bucket=first.history_bucket, Key="class-3.json.gz", Body=b"x")
        boto3.client("dynamodb").put_item(TableName=first.table_name, Item={"pk": {"S": "RACE#1"}, "sk": {"S": "LIVE"}})
        boto3.client("sqs").send_message(QueueUrl=first.dead_letter_queue_url, MessageBody="letter")

        # WHEN bootstrapping again (a second `make run`)
        second = bootstrap(Clients.from_session(), settings)

        # THEN nothing is created, every name and ARN is the same, and the data is still there
        assert second.created == ()
        assert second == first
        assert boto3.client("s3").get_object(Bucket=first.history_bucket, Key="class-3.json.gz")["Body"].read() == b"x"
        item = boto3.client("dynamodb").get_item(
            TableName=first.table_name, Key={"pk": {"S": "RACE#1"}, "sk": {"S": "LIVE"}}
        )
        assert "Item" in item
        attributes = boto3.client("sqs").get_queue_attributes(
            QueueUrl=first.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "1"

    def test_names_follow_template_parameters(self, aws: str) -> None:
        settings = load_local_settings(parameters={"TableName": "other-table", "StreamShardCount": "1"})

        resources = bootstrap(None, settings)

        assert resources.table_name == "other-table"
        assert "table:other-table" in resources.created
        summary = boto3.client("kinesis").describe_stream_summary(StreamName="alleycat-bikes")
        assert summary["StreamDescriptionSummary"]["OpenShardCount"] == 1

    def test_environment_resolves_the_dead_letter_queue_url(self, aws: str, settings: LocalSettings) -> None:
        resources = bootstrap(None, settings)

        env = settings.environment("aggregator", resources)

        assert env["ALLEYCAT_DEAD_LETTER_QUEUE_URL"] == resources.dead_letter_queue_url
        assert env["ALLEYCAT_TABLE"] == resources.table_name
        assert settings.environment("aggregator").get("ALLEYCAT_DEAD_LETTER_QUEUE_URL") is None

    def test_table_without_a_required_index_is_refused(self, aws: str, settings: LocalSettings) -> None:
        # An old table lacking an index the table module needs must not be silently reused.
        kwargs = settings.table.create_table_kwargs()
        kwargs["GlobalSecondaryIndexes"] = kwargs["GlobalSecondaryIndexes"][:1]
        kwargs["AttributeDefinitions"] = [
            d for d in kwargs["AttributeDefinitions"] if not d["AttributeName"].startswith("gsi2")
        ]
        boto3.client("dynamodb").create_table(**kwargs)

        with pytest.raises(ValueError, match="gsi2"):
            bootstrap(None, settings)

    def test_command_line(self, aws: str) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "processors.local.bootstrap"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            env={**os.environ, "AWS_ENDPOINT_URL": aws},
        )
        assert result.returncode == 0, result.stderr
        printed = json.loads(result.stdout)
        assert printed["table_name"] == "alleycat"
        assert printed["dead_letter_queue_url"].endswith("/alleycat-dead-letter")
        assert Resources(**{**printed, "created": tuple(printed["created"])}).stream_name == "alleycat-bikes"
