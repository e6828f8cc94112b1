"""infra/template.yaml: cfn-lint, least privilege, the table mirrors schema.py, and what the local runtime reads."""

from __future__ import annotations

import ast
import json
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
    TemplateError,
    load_local_settings,
    load_template,
)
from processors.table import schema

ROOT = Path(__file__).resolve().parents[2]
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
HANDLERS = ("aggregator", "finals", "transformer", "history", "publisher")

# A "*" in a resource is allowed only as the last part of an ARN under a named container:
# log streams of one named log group, objects under a fixed prefix of one named bucket.
ALLOWED_RESOURCE_SUFFIXES = (":log-stream:*", "/raw/*", "/processing-failed/*", "/class-*", "/index/*")
# X-Ray has no resource-level permissions: AWS documents Resource "*" for these actions, and only these.
XRAY_WRITE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


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
        if set([actions] if isinstance(actions, str) else actions) <= XRAY_WRITE_ACTIONS:
            if statement.get("Resource") != "*":
                violations.append(f"{logical_id}: X-Ray statement should name Resource '*' alone")
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
                                        {
                                            "Effect": "Allow",
                                            "Action": ["xray:PutTraceSegments", "s3:GetObject"],
                                            "Resource": "*",
                                        },
                                    ]
                                },
                            }
                        ]
                    },
                }
            }
        }
        assert len(wildcard_violations(bad)) == 5

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
    def test_five_handlers_on_python_311_with_importable_paths(self, template: dict[str, Any]) -> None:
        settings = load_local_settings()
        assert sorted(settings.functions) == sorted(HANDLERS)
        # The project's Python; infra/lambda/Makefile picks the wheels for the same version.
        assert template["Globals"]["Function"]["Runtime"] == "python3.11"
        makefile = (ROOT / "infra" / "lambda" / "Makefile").read_text()
        assert re.search(r"^LAMBDA_PYTHON_VERSION := 3\.11$", makefile, re.M)
        assert template["Globals"]["Function"]["Architectures"] == ["arm64"]
        assert re.search(r"^LAMBDA_PLATFORM := manylinux2014_aarch64$", makefile, re.M)
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


class TestDeployedShape:
    """The local runtime reads the template as the SAM transform deploys it, and refuses what it cannot stand in for."""

    @staticmethod
    def _variant(tmp_path: Path, change: Any) -> Path:
        template = load_template()
        change(template)
        path = tmp_path / "template.json"  # JSON is YAML
        path.write_text(json.dumps(template))
        return path

    def test_a_resource_without_a_local_stand_in_is_refused(self, tmp_path: Path) -> None:
        def add_stream(template: dict[str, Any]) -> None:
            template["Resources"]["OtherStream"] = {"Type": "AWS::Kinesis::Stream", "Properties": {"ShardCount": 1}}

        with pytest.raises(TemplateError, match="OtherStream has no local stand-in"):
            load_local_settings(self._variant(tmp_path, add_stream))

    def test_an_event_the_runner_cannot_emulate_is_refused(self, tmp_path: Path) -> None:
        def add_queue_event(template: dict[str, Any]) -> None:
            events = template["Resources"]["FinalsFunction"]["Properties"]["Events"]
            events["Letters"] = {"Type": "SQS", "Properties": {"Queue": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}}

        with pytest.raises(TemplateError, match="no local event source"):
            load_local_settings(self._variant(tmp_path, add_queue_event))

    def test_sources_keep_the_sam_event_names(self) -> None:
        # The names key the runner's durable checkpoints (var/checkpoints/<function>-<name>.json).
        names = {(source.function, source.name) for source in load_local_settings().event_sources()}
        assert names == {
            ("aggregator", "BikeStream"),
            ("finals", "TableStream"),
            ("publisher", "TableStream"),
            ("history", "Delivered"),
            ("transformer", "Firehose"),
        }


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
    def test_iterator_age_alarms_fire_in_seconds_of_live_lag(self, template: dict[str, Any]) -> None:
        alarms = _alarms(template)
        lag = {
            name: alarm
            for name, alarm in alarms.items()
            if any(
                query.get("MetricStat", {}).get("Metric", {}).get("MetricName")
                in ("IteratorAge", "GetRecords.IteratorAgeMilliseconds")
                for query in alarm.get("Metrics", [])
            )
        }
        # The bike stream (aggregator and Firehose read it) and the three stream-reading functions.
        assert sorted(lag) == sorted(
            [
                "StreamIteratorAgeAlarm",
                "AggregatorIteratorAgeAlarm",
                "PublisherIteratorAgeAlarm",
                "FinalsIteratorAgeAlarm",
            ]
        )
        assert template["Parameters"]["IteratorAgeAlarmSeconds"]["Default"] == 10
        for alarm in lag.values():
            assert alarm["Threshold"] == {"Ref": "IteratorAgeAlarmSeconds"}
            (returned,) = [query for query in alarm["Metrics"] if query.get("ReturnData", True)]
            (source,) = [query for query in alarm["Metrics"] if "MetricStat" in query]
            assert returned["Expression"] == f"{source['Id']} / 1000"  # milliseconds -> seconds
            assert source["MetricStat"]["Stat"] == "Maximum" and source["MetricStat"]["Period"] == 60
            assert alarm["EvaluationPeriods"] == 1

    def test_every_operating_figure_has_an_alarm(self, template: dict[str, Any]) -> None:
        alarms = _alarms(template)
        by_metric: dict[str, list[dict[str, Any]]] = {}
        for alarm in alarms.values():
            by_metric.setdefault(alarm.get("MetricName", "<math>"), []).append(alarm)
        for metric in ("Errors", "Throttles", "Duration"):
            functions = sorted(a["Dimensions"][0]["Value"]["Ref"] for a in by_metric[metric])
            assert functions == sorted(f"{key.capitalize()}Function" for key in HANDLERS), metric
        for metric in (
            "WriteProvisionedThroughputExceeded",  # stream write throttling
            "PutRecords.FailedRecords",  # producers' failed puts
            "ReadThrottleEvents",
            "WriteThrottleEvents",
            "ApproximateNumberOfMessagesVisible",  # dead-letter depth
            "DeliveryToS3.DataFreshness",
        ):
            assert len(by_metric[metric]) == 1, metric
        for alarm in alarms.values():
            assert alarm["AlarmActions"]["Fn::If"][0] == "HasAlarmTopic"
            assert alarm["TreatMissingData"] == "notBreaching"

    def test_duration_alarms_fire_at_80_percent_of_each_timeout(self, template: dict[str, Any]) -> None:
        settings = load_local_settings()
        for alarm in _alarms(template).values():
            if alarm.get("MetricName") != "Duration":
                continue
            logical_id = alarm["Dimensions"][0]["Value"]["Ref"]
            (function,) = [f for f in settings.functions.values() if f.logical_id == logical_id]
            assert alarm["Statistic"] == "Maximum"
            assert alarm["Threshold"] == function.timeout_seconds * 1000 * 0.8

    def test_every_alarm_has_a_runbook_line(self, template: dict[str, Any]) -> None:
        guide = (ROOT / "docs" / "deploy.md").read_text()
        runbook = guide[guide.index("Alarms and what to do") :]
        for name in _alarms(template):
            family = re.sub(r"^(Aggregator|Finals|Publisher|Transformer|History)", "<Function>", name)
            assert f"`{name}`" in runbook or f"`{family}`" in runbook, name

    def test_dashboard_shows_lag_throughput_failures_and_capacity(self, template: dict[str, Any]) -> None:
        body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
        for metric in (
            "IteratorAge",
            "GetRecords.IteratorAgeMilliseconds",
            "IncomingRecords",
            "PutRecords.FailedRecords",
            "WriteProvisionedThroughputExceeded",
            "Readings",
            "BadRecords",
            "StandingsSent",
            "Duration",
            "Errors",
            "Throttles",
            "ConcurrentExecutions",
            "ConsumedWriteCapacityUnits",
            "ApproximateNumberOfMessagesVisible",
            "DeliveryToS3.DataFreshness",
        ):
            assert f'"{metric}"' in body, metric
        json.loads(re.sub(r"\$\{[^}]+\}", "x", body))  # valid JSON once CloudFormation substitutes

    def test_iot_rule_is_optional_and_partitions_by_race(self, template: dict[str, Any]) -> None:
        rule = template["Resources"]["BikeTopicRule"]
        assert rule["Condition"] == "UseIotRule"
        (action,) = rule["Properties"]["TopicRulePayload"]["Actions"]
        assert action["Kinesis"]["PartitionKey"] == "${raceId}:${racerId}"  # spreads a race over shards
        assert action["Kinesis"]["StreamName"] == {"Ref": "BikeStream"}
        load_local_settings(parameters={"EnableIotRule": "true"})  # resolvable either way

    def test_publisher_vpc_is_optional(self, template: dict[str, Any]) -> None:
        vpc = template["Resources"]["PublisherFunction"]["Properties"]["VpcConfig"]["Fn::If"]
        assert vpc[0] == "UseVpc" and vpc[2] == {"Ref": "AWS::NoValue"}

    def test_redis_url_is_a_secure_string_read_at_cold_start(self, template: dict[str, Any]) -> None:
        # Never a plaintext parameter or environment value: the function gets the parameter's name only.
        assert "RedisUrl" not in template["Parameters"]
        env = template["Resources"]["PublisherFunction"]["Properties"]["Environment"]["Variables"]
        assert "REDIS_URL" not in env
        assert env["ALLEYCAT_REDIS_URL_PARAMETER"] == {"Ref": "RedisUrlParameterName"}
        policies = template["Resources"]["PublisherRole"]["Properties"]["Policies"]
        (conditional,) = [p for p in policies if "Fn::If" in p]
        condition, policy, _ = conditional["Fn::If"]
        assert condition == "UseRedis"
        (statement,) = policy["PolicyDocument"]["Statement"]
        assert statement["Action"] == ["ssm:GetParameter"]
        assert statement["Resource"]["Fn::Sub"].endswith(":parameter${RedisUrlParameterName}")


class TestOperatorParameters:
    def test_stream_mode_shard_count_and_retention(self, template: dict[str, Any]) -> None:
        params = template["Parameters"]
        assert params["StreamMode"]["AllowedValues"] == ["PROVISIONED", "ON_DEMAND"]
        stream = template["Resources"]["BikeStream"]["Properties"]
        assert stream["StreamModeDetails"]["StreamMode"] == {"Ref": "StreamMode"}
        assert stream["ShardCount"]["Fn::If"] == ["IsProvisioned", {"Ref": "StreamShardCount"}, {"Ref": "AWS::NoValue"}]
        assert stream["RetentionPeriodHours"] == {"Ref": "StreamRetentionHours"}
        on_demand = load_local_settings(parameters={"StreamMode": "ON_DEMAND", "StreamRetentionHours": "48"})
        assert on_demand.stream.retention_hours == 48
        assert load_local_settings(parameters={"StreamShardCount": "4"}).stream.shard_count == 4

    def test_aggregator_batch_window_and_parallelization_reach_the_local_runner(self) -> None:
        settings = load_local_settings(
            parameters={"AggregatorBatchSize": "500", "TumblingWindowInSeconds": "2", "ParallelizationFactor": "3"}
        )
        (source,) = settings.function("aggregator").event_sources
        assert (source.batch_size, source.tumbling_window_seconds, source.parallelization_factor) == (500, 2, 3)

    def test_the_delivery_buffer_size_is_a_parameter_that_reaches_the_local_firehose(self, template) -> None:
        hints = template["Resources"]["DeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]
        assert hints["BufferingHints"]["SizeInMBs"] == {"Ref": "DeliveryBufferMB"}
        assert template["Parameters"]["DeliveryBufferMB"]["Default"] == 1
        assert load_local_settings().firehose.buffer_size_mb == 1
        assert load_local_settings(parameters={"DeliveryBufferMB": "8"}).firehose.buffer_size_mb == 8

    def test_reserved_concurrency_tracing_and_log_retention(self, template: dict[str, Any]) -> None:
        function_globals = template["Globals"]["Function"]
        assert function_globals["Tracing"] == "Active"
        assert function_globals["ReservedConcurrentExecutions"]["Fn::If"][0] == "UseReservedConcurrency"
        log_groups = [r for r in template["Resources"].values() if r["Type"] == "AWS::Logs::LogGroup"]
        assert len(log_groups) == len(HANDLERS) + 1  # the functions and Firehose
        assert all(g["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"} for g in log_groups)
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] == "AWS::Serverless::Function":
                assert resource["Metadata"] == {"BuildMethod": "makefile", "ContextPath": "lambda"}, logical_id
        assert function_globals["CodeUri"] == "../processors"

    def test_bucket_lifecycle_rules(self, template: dict[str, Any]) -> None:
        delivery = template["Resources"]["DeliveryBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        raw = next(rule for rule in delivery if rule.get("Prefix") == "raw/")
        assert raw["ExpirationInDays"] == {"Ref": "DeliveryRetentionDays"}
        assert all(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1 for rule in delivery)
        history = template["Resources"]["HistoryBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        noncurrent = next(rule for rule in history if "NoncurrentVersionExpiration" in rule)
        assert noncurrent["NoncurrentVersionExpiration"]["NoncurrentDays"] == {"Ref": "HistoryNoncurrentVersionDays"}

    def test_sam_validate_lint_passes(self) -> None:
        # `sam validate --lint` from the SAM CLI's own virtualenv (make sam-install creates it).
        result = subprocess.run(
            ["make", "--no-print-directory", "sam-validate"], capture_output=True, text=True, timeout=900, cwd=ROOT
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        assert "is a valid SAM Template" in result.stdout


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


class TestDynamoDBPermissionsFollowTheCode:
    """Each role allows the DynamoDB actions its code calls, found by reading processors/table/store.py."""

    STORE = ROOT / "processors" / "table" / "store.py"
    ROLES = {
        "aggregator": "AggregatorRole",
        "finals": "FinalsRole",
        "history": "HistoryRole",
        "publisher": "PublisherRole",
        "transformer": "TransformerRole",
    }

    # IAM checks the actions inside a transaction, not TransactWriteItems: the kinds of action are
    # the keys of the action dicts the methods on the way to the call write.
    TRANSACT_ACTIONS = {
        "Put": "PutItem",
        "Delete": "DeleteItem",
        "Update": "UpdateItem",
        "ConditionCheck": "ConditionCheckItem",
    }

    @staticmethod
    def _camel(operation: str) -> set[str]:
        return {"dynamodb:" + "".join(part.capitalize() for part in operation.split("_"))}

    def _store_calls(self) -> dict[str, tuple[set[str], set[str]]]:
        """method -> (client operations, other methods of the store it calls); a transaction's
        operations are named by the keys of the action dicts the method writes (``transact:Put``)."""
        tree = ast.parse(self.STORE.read_text())
        (store,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "ResultsTable"]
        calls: dict[str, tuple[set[str], set[str]]] = {}
        for method in store.body:
            if not isinstance(method, ast.FunctionDef):
                continue
            operations, methods = set(), set()
            for node in ast.walk(method):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
                    if isinstance(node.value.value, ast.Name) and node.value.value.id == "self":
                        if node.value.attr == "_client":
                            operations.add(node.attr)
                elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                    methods.add(node.attr)
                elif isinstance(node, ast.Dict):
                    for key in node.keys:
                        if isinstance(key, ast.Constant) and key.value in self.TRANSACT_ACTIONS:
                            operations.add("transact:" + key.value)
            calls[method.name] = (operations, methods)
        return calls

    def _actions(self, entry_points: set[str]) -> set[str]:
        calls = self._store_calls()
        seen: set[str] = set()
        queue = [name for name in entry_points if name in calls]
        actions: set[str] = set()
        transact: set[str] = set()
        transacts = False
        while queue:
            name = queue.pop()
            if name in seen:
                continue
            seen.add(name)
            operations, methods = calls[name]
            for operation in operations:
                if operation.startswith("transact:"):
                    transact.add("dynamodb:" + self.TRANSACT_ACTIONS[operation.removeprefix("transact:")])
                elif operation == "transact_write_items":
                    transacts = True
                else:
                    actions |= self._camel(operation)
            queue += [m for m in methods if m in calls]
        return actions | transact if transacts else actions

    @staticmethod
    def _allowed(template: dict[str, Any], logical_id: str) -> set[str]:
        allowed: set[str] = set()
        for role, statement in policy_statements(template):
            if role != logical_id:
                continue
            actions = statement.get("Action", [])
            resources = _texts(statement.get("Resource", []))
            if any(text in ("${Table.Arn}",) for text in resources):
                allowed |= {actions} if isinstance(actions, str) else set(actions)
        return allowed

    def test_each_function_may_do_what_its_handler_calls(self, template: dict[str, Any]) -> None:
        for handler, role in self.ROLES.items():
            source = (ROOT / "processors" / "handlers" / f"{handler}.py").read_text()
            needed = self._actions(set(re.findall(r"\btable\.([a-z_]+)\(", source)))
            assert needed <= self._allowed(template, role), f"{role}: {sorted(needed - self._allowed(template, role))}"

    def test_the_aggregator_may_query_the_index_of_races_due(self, template: dict[str, Any]) -> None:
        resources = [
            text
            for role, statement in policy_statements(template)
            if role == "AggregatorRole" and "dynamodb:Query" in statement["Action"]
            for text in _texts(statement["Resource"])
        ]
        assert "${Table.Arn}/index/gsi1" in resources

    def test_the_site_policy_covers_what_django_calls(self, template: dict[str, Any]) -> None:
        methods = set(self._store_calls())
        django_source = "\n".join(
            path.read_text()
            for app in ("races", "leaderboards", "alleycat_site")
            for path in (ROOT / app).rglob("*.py")
        )
        # Django also calls the table through processors modules it imports (e.g. settlement on a quiet stream).
        for module in set(re.findall(r"from processors\.([a-z_]+) import", django_source)) - {"table"}:
            path = ROOT / "processors" / f"{module}.py"
            if path.exists():
                django_source += "\n" + path.read_text()
        called = {name for name in re.findall(r"\.([a-z_]+)\(", django_source) if name in methods}
        needed = self._actions(called)
        assert needed, "Django calls the table module"
        assert needed <= self._allowed(template, "SitePolicy"), sorted(needed - self._allowed(template, "SitePolicy"))

    def test_the_reader_sees_a_missing_permission(self, template: dict[str, Any]) -> None:
        # The check above must be able to fail: finals' writes are not the publisher's.
        needed = self._actions({"put_finals"})
        assert {"dynamodb:BatchWriteItem", "dynamodb:BatchGetItem", "dynamodb:PutItem"} <= needed
        assert "dynamodb:DeleteItem" not in needed  # finals' transactions only put
        assert "dynamodb:DeleteItem" in self._actions({"void_final_result"})
        assert not needed <= self._allowed(template, "PublisherRole")
