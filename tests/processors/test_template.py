"""infra/template.yaml: cfn-lint, least privilege, the table mirrors schema.py, and what the local runtime reads."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from processors.local.template import (
    DEFAULT_TEMPLATE_PATH,
    ResourceRef,
    load_local_settings,
    load_template,
)
from processors.table import schema

ROOT = Path(__file__).resolve().parents[2]
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
HANDLERS = ("aggregator", "finals", "transformer", "history", "publisher")

# A "*" in a resource is allowed only as the last part of an ARN under a named container:
# log streams of one named log group, objects under a fixed prefix of one named bucket.
ALLOWED_RESOURCE_SUFFIXES = (":log-stream:*", "/raw/*", "/processing-failed/*", "/class-*")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def policy_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(resource id, statement) for every IAM statement the template defines itself."""
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        documents = []
        if resource["Type"] == "AWS::IAM::Role":
            documents.extend(_policy_documents(props.get("Policies", [])))
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append(props["PolicyDocument"])
        elif resource["Type"] == "AWS::Serverless::Function":
            documents.extend(_policy_documents(props.get("Policies", [])))
        for document in documents:
            for statement in document.get("Statement", []):
                yield logical_id, statement


def _policy_documents(policies: Any) -> Iterator[dict[str, Any]]:
    for policy in policies if isinstance(policies, list) else [policies]:
        if isinstance(policy, dict) and "Fn::If" in policy:
            _name, when_true, when_false = policy["Fn::If"]
            yield from _policy_documents([when_true, when_false])
        elif isinstance(policy, dict) and "PolicyDocument" in policy:
            yield policy["PolicyDocument"]
        elif isinstance(policy, dict) and "Statement" in policy:
            yield policy
        elif isinstance(policy, (str, dict)) and not (isinstance(policy, dict) and "Ref" in policy):
            # A SAM policy template ({"S3ReadPolicy": {...}}) or a managed policy name: not checkable here.
            raise AssertionError(f"unexpected policy form {policy!r}: use explicit statements")


def _texts(value: Any) -> list[str]:
    """The literal text of a resource value: plain strings, !Sub templates, !GetAtt/!Ref as placeholders."""
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    if isinstance(value, str):
        return [value]
    if "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return [sub if isinstance(sub, str) else sub[0]]
    if "Fn::GetAtt" in value:
        return ["${" + ".".join(value["Fn::GetAtt"]) + "}"]
    if "Ref" in value:
        return ["${" + value["Ref"] + "}"]
    if "Fn::If" in value:
        return _texts(value["Fn::If"][1:])
    raise AssertionError(f"unexpected resource value {value!r}")


def wildcard_violations(template: dict[str, Any]) -> list[str]:
    violations = []
    for logical_id, statement in policy_statements(template):
        if "NotAction" in statement or "NotResource" in statement:
            violations.append(f"{logical_id}: NotAction/NotResource")
        actions = statement.get("Action", [])
        for action in [actions] if isinstance(actions, str) else actions:
            if "*" in action:
                violations.append(f"{logical_id}: action {action}")
        if "Principal" in statement:  # trust policies name a service, not a resource
            continue
        for text in _texts(statement.get("Resource", [])):
            stars = text.count("*")
            if stars == 0:
                continue
            if text.strip() == "*" or stars > 1 or not text.endswith(ALLOWED_RESOURCE_SUFFIXES):
                violations.append(f"{logical_id}: resource {text}")
    return violations


class TestTemplateLints:
    def test_cfn_lint_passes(self) -> None:
        result = subprocess.run(
            [str(CFN_LINT), str(DEFAULT_TEMPLATE_PATH)], capture_output=True, text=True, timeout=240, cwd=ROOT
        )
        assert result.returncode == 0, result.stdout + result.stderr


class TestLeastPrivilege:
    def test_no_statement_has_a_wildcard_action_or_resource(self, template: dict[str, Any]) -> None:
        assert list(policy_statements(template)), "the template should define its policies explicitly"
        assert wildcard_violations(template) == []

    def test_checker_catches_wildcards(self) -> None:
        # The check above must be able to fail.
        bad = {
            "Resources": {
                "Role": {
                    "Type": "AWS::IAM::Role",
                    "Properties": {
                        "Policies": [
                            {
                                "PolicyName": "p",
                                "PolicyDocument": {
                                    "Statement": [
                                        {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/raw/x"},
                                        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"},
                                        {
                                            "Effect": "Allow",
                                            "Action": "s3:GetObject",
                                            "Resource": {"Fn::Sub": "${B}/*"},
                                        },
                                        {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "arn:*:table/t"},
                                    ]
                                },
                            }
                        ]
                    },
                }
            }
        }
        assert len(wildcard_violations(bad)) == 4

    def test_every_function_has_its_own_role(self, template: dict[str, Any]) -> None:
        roles = [
            resource["Properties"]["Role"]["Fn::GetAtt"][0]
            for resource in template["Resources"].values()
            if resource["Type"] == "AWS::Serverless::Function"
        ]
        assert len(roles) == len(HANDLERS) == len(set(roles))

    def test_only_managed_policy_is_the_conditional_vpc_one(self, template: dict[str, Any]) -> None:
        managed = {
            logical_id: resource["Properties"]["ManagedPolicyArns"]
            for logical_id, resource in template["Resources"].items()
            if "ManagedPolicyArns" in resource.get("Properties", {})
        }
        assert list(managed) == ["PublisherRole"]
        condition, _when_true, when_false = managed["PublisherRole"]["Fn::If"]
        assert condition == "UseVpc" and when_false == {"Ref": "AWS::NoValue"}


class TestTableMirrorsSchema:
    def test_table_equals_processors_table_schema(self) -> None:
        settings = load_local_settings()
        assert settings.table.create_table_kwargs() == schema.create_table_kwargs(settings.table.name)

    def test_table_is_on_demand_with_new_and_old_images(self, template: dict[str, Any]) -> None:
        props = template["Resources"]["Table"]["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


class TestFunctionsAndTriggers:
    def test_five_handlers_on_python_312_with_importable_paths(self, template: dict[str, Any]) -> None:
        settings = load_local_settings()
        assert sorted(settings.functions) == sorted(HANDLERS)
        assert template["Globals"]["Function"]["Runtime"] == "python3.12"
        for key, function in settings.functions.items():
            assert function.handler == f"processors/handlers/{key}.lambda_handler"
            assert callable(function.import_handler())

    def test_aggregator_reads_kinesis_with_a_live_latency_window(self) -> None:
        settings = load_local_settings()
        (source,) = settings.function("aggregator").event_sources
        assert source.kind == "kinesis" and source.source == settings.stream.name
        assert source.tumbling_window_seconds == 1  # ~1 s polling + 1 s window keeps live latency <= 2 s
        assert source.bisect_batch_on_function_error
        assert source.maximum_retry_attempts >= 1
        assert source.on_failure == settings.dead_letter_queue.name
        assert source.batch_size >= 1000

    def test_window_parameter_reaches_the_local_settings(self) -> None:
        settings = load_local_settings(parameters={"TumblingWindowInSeconds": "0"})
        assert settings.function("aggregator").event_sources[0].tumbling_window_seconds == 0

    def test_table_stream_has_exactly_two_readers(self) -> None:
        settings = load_local_settings()
        readers = settings.event_sources("dynamodb")
        assert sorted(source.function for source in readers) == ["finals", "publisher"]
        for source in readers:
            assert source.source == settings.table.name
            assert source.bisect_batch_on_function_error and source.on_failure == settings.dead_letter_queue.name
        finals = settings.function("finals").event_sources[0]
        assert finals.report_batch_item_failures

    def test_firehose_feeds_history_through_the_transformer(self) -> None:
        settings = load_local_settings()
        firehose = settings.firehose
        assert firehose.source_stream == settings.stream.name
        assert firehose.bucket == settings.delivery_bucket.name
        assert (firehose.buffer_interval_seconds, firehose.buffer_size_mb, firehose.compression) == (60, 1, "GZIP")
        assert firehose.error_output_prefix == "processing-failed/"
        assert firehose.transformer == "transformer"
        (s3,) = settings.function("history").event_sources
        assert s3.kind == "s3" and s3.source == settings.delivery_bucket.name
        assert s3.s3_prefix == firehose.prefix and not firehose.error_output_prefix.startswith(s3.s3_prefix)
        # history never writes where its own trigger listens
        assert settings.history_bucket.name != settings.delivery_bucket.name
        assert s3.on_failure == settings.dead_letter_queue.name


class TestEnvironment:
    def test_variable_names_come_from_the_contracts(self) -> None:
        contracts = (ROOT / "docs" / "contracts.md").read_text()
        documented = set(re.findall(r"`((?:ALLEYCAT_|REDIS_)[A-Z_]+)`", contracts))
        settings = load_local_settings()
        for function in settings.functions.values():
            ours = {name for name in function.environment if name.startswith(("ALLEYCAT_", "REDIS_"))}
            assert ours <= documented, f"{function.key}: {sorted(ours - documented)}"

    def test_names_match_the_documented_defaults(self) -> None:
        settings = load_local_settings()
        env = settings.function("history").environment
        assert env["ALLEYCAT_TABLE"] == "alleycat"
        assert env["ALLEYCAT_STREAM"] == "alleycat-bikes"
        assert env["ALLEYCAT_DELIVERY_BUCKET"] == "alleycat-delivery"
        assert env["ALLEYCAT_HISTORY_BUCKET"] == "alleycat-history"
        assert env["ALLEYCAT_DEAD_LETTER_QUEUE_URL"] == ResourceRef("DeadLetterQueue")
        assert settings.dead_letter_queue.name == "alleycat-dead-letter"
        assert settings.function("publisher").environment["ALLEYCAT_TOP_ROWS"] == "100"


class TestAlarmsAndOptionalParts:
    def test_iterator_age_alarms_fire_at_half_the_retention(self, template: dict[str, Any]) -> None:
        retention_ms = template["Resources"]["BikeStream"]["Properties"]["RetentionPeriodHours"] * 3600 * 1000
        alarms = [
            resource["Properties"]
            for resource in template["Resources"].values()
            if resource["Type"] == "AWS::CloudWatch::Alarm"
        ]
        iterator = [a for a in alarms if a["MetricName"] in ("IteratorAge", "GetRecords.IteratorAgeMilliseconds")]
        assert len(iterator) == 4  # the stream, and the three stream consumers
        assert {a["Threshold"] for a in iterator} == {retention_ms // 2}
        metrics = {a["MetricName"] for a in alarms}
        assert {"Errors", "ReadThrottleEvents", "WriteThrottleEvents", "ApproximateNumberOfMessagesVisible"} <= metrics
        assert sum(a["MetricName"] == "Errors" for a in alarms) == len(HANDLERS)

    def test_iot_rule_is_optional_and_partitions_by_race(self, template: dict[str, Any]) -> None:
        rule = template["Resources"]["BikeTopicRule"]
        assert rule["Condition"] == "UseIotRule"
        (action,) = rule["Properties"]["TopicRulePayload"]["Actions"]
        assert action["Kinesis"]["PartitionKey"] == "${raceId}"
        assert action["Kinesis"]["StreamName"] == {"Ref": "BikeStream"}
        load_local_settings(parameters={"EnableIotRule": "true"})  # resolvable either way

    def test_publisher_vpc_is_optional(self, template: dict[str, Any]) -> None:
        vpc = template["Resources"]["PublisherFunction"]["Properties"]["VpcConfig"]["Fn::If"]
        assert vpc[0] == "UseVpc" and vpc[2] == {"Ref": "AWS::NoValue"}
        assert template["Parameters"]["RedisUrl"]["NoEcho"] is True
