"""Local settings read from the SAM template as CloudFormation deploys it, so the local runtime cannot drift.

Usage::

    from processors.local.template import load_local_settings

    settings = load_local_settings()                  # infra/template.yaml, parameter defaults
    settings.table.create_table_kwargs()              # boto3 create_table(**kwargs)
    source = settings.function("aggregator").event_sources[0]
    source.batch_size, source.tumbling_window_seconds, source.maximum_retry_attempts
    handler = settings.function("history").import_handler()
    env = settings.environment("history", resources)  # resources: processors.local.bootstrap.Resources

The template goes through the pinned SAM translator (``aws-sam-translator``: the transform CloudFormation
runs for ``Transform: AWS::Serverless-2016-10-31``), which merges the Globals and turns each function's
``Events`` into the event source mappings, bucket notifications and invoke settings CloudFormation
creates. What stays here is CloudFormation's own part of a deployment, for one local stack: parameter
values (defaults or overrides), pseudo-parameters, conditions and intrinsic functions. A value that only
exists once the resource does (a queue URL, an ARN) stays a :class:`ResourceRef` until
:meth:`LocalSettings.environment` resolves it against the bootstrapped resources.
"""

from __future__ import annotations

import copy
import importlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import boto3
import yaml
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import intrinsics_multi_constructor

from processors.local.filters import parse_filters

DEFAULT_TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"

# Logical ids of the template's shared resources (the functions are found by their handler path).
STREAM_ID = "BikeStream"
TABLE_ID = "Table"
DELIVERY_BUCKET_ID = "DeliveryBucket"
HISTORY_BUCKET_ID = "HistoryBucket"
DEAD_LETTER_QUEUE_ID = "DeadLetterQueue"
FIREHOSE_ID = "DeliveryStream"

LOCAL_ACCOUNT_ID = "123456789012"  # moto's default account
DEFAULT_STACK_NAME = "alleycat"

# The functions run from the working tree; the transform only needs their code to look uploaded.
_LOCAL_CODE_URI = "s3://local/processors.zip"
_HANDLER_PATH = re.compile(r"^processors/handlers/(?P<name>[a-z_]+)\.(?P<attr>[A-Za-z_]+)$")

# Resource types the local runtime creates or emulates: a resource of these types that it does not
# know would exist on AWS and be missing locally, so the template is refused instead.
_EMULATED_ONCE = {
    "AWS::Kinesis::Stream": STREAM_ID,
    "AWS::DynamoDB::Table": TABLE_ID,
    "AWS::SQS::Queue": DEAD_LETTER_QUEUE_ID,
    "AWS::KinesisFirehose::DeliveryStream": FIREHOSE_ID,
}
_BUCKETS = (DELIVERY_BUCKET_ID, HISTORY_BUCKET_ID)

# The property holding the name a resource's ``Ref`` returns (a queue's ``Ref`` is its URL: not known here).
_NAME_PROPERTY = {
    "AWS::Kinesis::Stream": "Name",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::KinesisFirehose::DeliveryStream": "DeliveryStreamName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Logs::LogGroup": "LogGroupName",
}


class TemplateError(ValueError):
    """The template does not have the shape the local runtime relies on."""


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML with CloudFormation's short-form tags (``!Ref``, ``!GetAtt``...), read by SAM's own constructor."""


_Loader.add_multi_constructor("!", intrinsics_multi_constructor)


def load_template(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The SAM template as plain data, short-form tags in long form (``{"Ref": ...}``, ``{"Fn::Sub": ...}``)."""
    text = Path(path or DEFAULT_TEMPLATE_PATH).read_text(encoding="utf-8")
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def transform(template: Mapping[str, Any], parameters: Mapping[str, Any], region: str) -> dict[str, Any]:
    """The CloudFormation template SAM's transform makes of ``template`` (intrinsics left for the deployment)."""
    sam = copy.deepcopy(dict(template))
    for properties in [sam.get("Globals", {}).get("Function", {})] + [
        resource.get("Properties", {})
        for resource in sam.get("Resources", {}).values()
        if resource.get("Type") == "AWS::Serverless::Function"
    ]:
        if "CodeUri" in properties:
            properties["CodeUri"] = _LOCAL_CODE_URI
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name=region))
    try:
        return translator.translate(
            sam, parameter_values={**parameters, **_pseudo_parameters(region)}, get_managed_policy_map=dict
        )
    except InvalidDocumentException as exc:
        raise TemplateError("; ".join(str(cause) for cause in exc.causes)) from exc
    finally:
        translator.metrics.publish()  # to its dummy publisher: else it warns of unpublished metrics


def _pseudo_parameters(region: str) -> dict[str, str]:
    return {
        "AWS::Region": region,
        "AWS::AccountId": LOCAL_ACCOUNT_ID,
        "AWS::StackName": DEFAULT_STACK_NAME,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
    }


# --------------------------------------------------------------------------- the local stack


@dataclass(frozen=True)
class ResourceRef:
    """A ``Ref`` (attribute None) or ``GetAtt`` of a resource, known only once the resource exists."""

    logical_id: str
    attribute: str | None = None


class ReferenceResolver(Protocol):
    def reference(self, ref: ResourceRef) -> str: ...


_NO_VALUE = object()  # AWS::NoValue: the property is left out


class _Stack:
    """What CloudFormation resolves when it deploys the template as one local stack."""

    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, Any], region: str) -> None:
        self.template = template
        self.parameters = parameter_values(template, parameters)
        self.pseudo = _pseudo_parameters(region)
        self._conditions: dict[str, bool] = {}
        self.resources = {
            logical_id: resource
            for logical_id, resource in template.get("Resources", {}).items()
            if "Condition" not in resource or self.condition(resource["Condition"])
        }

    def of_type(self, resource_type: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(logical id, resolved properties) of each resource of ``resource_type``, in template order."""
        for logical_id, resource in self.resources.items():
            if resource["Type"] == resource_type:
                yield logical_id, self.properties(logical_id)

    def properties(self, logical_id: str) -> dict[str, Any]:
        return self.resolve(self.resources[logical_id].get("Properties", {}))

    def type_of(self, ref: Any) -> str:
        if not isinstance(ref, ResourceRef):
            raise TemplateError(f"{ref!r} is not a resource of the template")
        return str(self.resources[ref.logical_id]["Type"])

    def name_of(self, ref: Any) -> str:
        """The name of the resource behind a ``Ref``/``GetAtt`` (a queue's ``QueueName`` too)."""
        if isinstance(ref, ResourceRef):
            name = self.physical_name(ref.logical_id)
            if name is None and self.type_of(ref) == "AWS::SQS::Queue":
                name = self.properties(ref.logical_id).get("QueueName")
            if name is not None:
                return str(name)
        raise TemplateError(f"cannot name {ref!r} locally: give the resource a name property")

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.template.get("Conditions", {})
            if name not in conditions:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(conditions[name]))
        return self._conditions[name]

    def physical_name(self, logical_id: str) -> str | None:
        resource = self.resources[logical_id]
        name_property = _NAME_PROPERTY.get(resource["Type"])
        value = resource.get("Properties", {}).get(name_property) if name_property else None
        return None if value is None else str(self.resolve(value))

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        for values in (self.pseudo, self.parameters):
            if name in values:
                return values[name]
        if name in self.resources:
            return self.physical_name(name) or ResourceRef(name)
        raise TemplateError(f"unresolvable Ref {name}")

    def get_att(self, logical_id: str, attribute: str) -> ResourceRef:
        if logical_id not in self.resources:
            raise TemplateError(f"unresolvable GetAtt {logical_id}.{attribute}")
        return ResourceRef(logical_id, attribute)

    def sub(self, argument: Any) -> str:
        text, variables = (argument[0], self.resolve(argument[1])) if isinstance(argument, list) else (argument, {})

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                resolved = variables[name]
            elif "." in name and not name.startswith("AWS::"):
                resolved = self.get_att(*name.split(".", 1))
            else:
                resolved = self.ref(name)
            if isinstance(resolved, ResourceRef):
                raise TemplateError(f"cannot substitute ${{{name}}} locally in {text!r}")
            return str(resolved)

        return re.sub(r"\$\{([^}]+)\}", value, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self.resolve(item) for item in value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            function = self._FUNCTIONS.get(key)
            if function is not None:
                return function(self, argument)
            if key.startswith("Fn::"):
                raise TemplateError(f"{key} is not resolved locally: add it to _Stack._FUNCTIONS")
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

    def _if(self, argument: list[Any]) -> Any:
        name, when_true, when_false = argument
        return self.resolve(when_true if self.condition(name) else when_false)

    _FUNCTIONS: dict[str, Callable[[_Stack, Any], Any]] = {
        "Ref": ref,
        "Condition": condition,
        "Fn::GetAtt": lambda self, argument: self.get_att(*argument),
        "Fn::Sub": sub,
        "Fn::If": _if,
        "Fn::Equals": lambda self, argument: str(self.resolve(argument[0])) == str(self.resolve(argument[1])),
        "Fn::Not": lambda self, argument: not self.resolve(argument[0]),
        "Fn::And": lambda self, argument: all(self.resolve(item) for item in argument),
        "Fn::Or": lambda self, argument: any(self.resolve(item) for item in argument),
        "Fn::Join": lambda self, argument: argument[0].join(str(item) for item in self.resolve(argument[1])),
    }


def parameter_values(template: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Each template parameter's value: the override, else its default (a ``CommaDelimitedList`` as a list)."""
    declared = template.get("Parameters", {})
    unknown = set(overrides) - set(declared)
    if unknown:
        raise TemplateError(f"unknown template parameters: {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        value = overrides.get(name, spec.get("Default"))
        if value is None:
            raise TemplateError(f"parameter {name} has no default and no value")
        if spec.get("Type") == "CommaDelimitedList":
            values[name] = [] if value in ("", []) else (value.split(",") if isinstance(value, str) else list(value))
        else:
            values[name] = str(value)
    return values


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class StreamSettings:
    logical_id: str
    name: str
    shard_count: int
    retention_hours: int


@dataclass(frozen=True)
class TableSettings:
    logical_id: str
    name: str
    billing_mode: str
    key_schema: tuple[dict[str, str], ...]
    attribute_definitions: tuple[dict[str, str], ...]
    global_secondary_indexes: tuple[dict[str, Any], ...]
    local_secondary_indexes: tuple[dict[str, Any], ...]
    stream_view_type: str | None

    def create_table_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of boto3's ``DynamoDB.Client.create_table`` for this table."""
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "BillingMode": self.billing_mode,
            "KeySchema": [dict(item) for item in self.key_schema],
            "AttributeDefinitions": [dict(item) for item in self.attribute_definitions],
        }
        if self.global_secondary_indexes:
            kwargs["GlobalSecondaryIndexes"] = [dict(index) for index in self.global_secondary_indexes]
        if self.local_secondary_indexes:
            kwargs["LocalSecondaryIndexes"] = [dict(index) for index in self.local_secondary_indexes]
        if self.stream_view_type:
            kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": self.stream_view_type}
        return kwargs


@dataclass(frozen=True)
class BucketSettings:
    logical_id: str
    name: str
    versioned: bool


@dataclass(frozen=True)
class QueueSettings:
    logical_id: str
    name: str
    attributes: Mapping[str, str]  # SQS CreateQueue attributes (MessageRetentionPeriod, VisibilityTimeout)


@dataclass(frozen=True)
class FirehoseSettings:
    logical_id: str
    name: str
    source_stream: str  # stream name
    bucket: str  # delivery bucket name
    prefix: str  # key prefix of delivered objects, e.g. "raw/"
    error_output_prefix: str  # key prefix of ProcessingFailed records, "processing-failed/"
    compression: str  # "GZIP"
    buffer_interval_seconds: int
    buffer_size_mb: int
    transformer: str | None  # function key ("transformer") of the Lambda processor
    transformer_retries: int
    transformer_buffer_size_mb: int
    transformer_buffer_interval_seconds: int


@dataclass(frozen=True)
class EventSourceSettings:
    """One trigger of a function, as the deployed stack configures it.

    ``kind`` is ``kinesis`` or ``dynamodb`` (an event source mapping: ``source`` is the stream or table
    name), ``s3`` (a notification of the bucket ``source``; ``s3_events``/``s3_prefix``/``s3_suffix``
    the filter) or ``firehose`` (the transformer;
    ``source`` is the delivery stream name). A tumbling window of 0 means no window; ``on_failure`` is
    the name of the on-failure SQS queue.
    """

    function: str
    name: str  # the SAM event's ("BikeStream"): it names the source's checkpoint
    kind: str
    source: str
    batch_size: int = 100
    maximum_batching_window_seconds: int = 0
    tumbling_window_seconds: int = 0
    parallelization_factor: int = 1
    bisect_batch_on_function_error: bool = False
    maximum_retry_attempts: int = -1  # -1 = until the record expires, as on AWS
    maximum_record_age_seconds: int = -1
    starting_position: str = "TRIM_HORIZON"
    report_batch_item_failures: bool = False
    on_failure: str | None = None
    s3_events: tuple[str, ...] = ()
    s3_prefix: str = ""
    s3_suffix: str = ""
    filters: tuple[dict[str, Any], ...] = ()  # FilterCriteria patterns (processors.local.filters)


@dataclass(frozen=True)
class FunctionSettings:
    key: str  # "aggregator", from processors/handlers/aggregator.py
    logical_id: str
    handler: str  # "processors/handlers/aggregator.lambda_handler", as in the template
    module: str  # "processors.handlers.aggregator"
    attribute: str  # "lambda_handler"
    timeout_seconds: int
    memory_mb: int
    environment: Mapping[str, str | ResourceRef]
    event_sources: tuple[EventSourceSettings, ...] = ()

    def import_handler(self) -> Callable[[dict[str, Any], Any], Any]:
        """The handler function itself (imports its module)."""
        return getattr(importlib.import_module(self.module), self.attribute)


@dataclass(frozen=True)
class LocalSettings:
    template_path: Path
    region: str
    parameters: Mapping[str, Any]
    stream: StreamSettings
    table: TableSettings
    delivery_bucket: BucketSettings
    history_bucket: BucketSettings
    dead_letter_queue: QueueSettings
    firehose: FirehoseSettings
    functions: Mapping[str, FunctionSettings] = field(default_factory=dict)

    def function(self, key: str) -> FunctionSettings:
        try:
            return self.functions[key]
        except KeyError:
            raise TemplateError(f"no function {key!r} in {self.template_path}") from None

    def event_sources(self, kind: str | None = None) -> list[EventSourceSettings]:
        """Every trigger of every function (optionally only one kind), in template order."""
        return [
            source
            for function in self.functions.values()
            for source in function.event_sources
            if kind is None or source.kind == kind
        ]

    def environment(self, function: str, resources: ReferenceResolver | None = None) -> dict[str, str]:
        """The function's environment variables (Globals merged with its own), as strings.

        Values that reference a resource (the dead-letter queue URL) are resolved with
        ``resources`` (:class:`processors.local.bootstrap.Resources`); without it they are left out.
        Empty values (``ALLEYCAT_REDIS_URL_PARAMETER`` when unset) are left out too, so the local
        process's own value applies.
        """
        environment: dict[str, str] = {}
        for name, value in self.function(function).environment.items():
            if isinstance(value, ResourceRef):
                if resources is None:
                    continue
                value = resources.reference(value)
            if value:
                environment[name] = str(value)
        return environment


def load_local_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    parameters: Mapping[str, str] | None = None,
    region: str | None = None,
) -> LocalSettings:
    """Read the SAM template and resolve the settings of the local runtime.

    ``parameters`` override the template's parameter defaults (e.g. ``{"TumblingWindowInSeconds": "0"}``);
    ``region`` defaults to ``AWS_DEFAULT_REGION`` (else us-east-1).
    """
    template_path = Path(path or DEFAULT_TEMPLATE_PATH)
    region = region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    sam = load_template(template_path)
    parameter_values(sam, parameters or {})  # unknown names fail here, before the transform
    stack = _Stack(transform(sam, parameters or {}, region), parameters or {}, region)
    _check_emulated(stack, template_path)

    stream_props = stack.properties(STREAM_ID)
    table_props = stack.properties(TABLE_ID)
    queue_props = stack.properties(DEAD_LETTER_QUEUE_ID)
    functions = _functions(stack)
    firehose = _firehose(stack, functions)
    if firehose.transformer:
        transformer = functions[firehose.transformer]
        source = EventSourceSettings(
            function=transformer.key,
            name="Firehose",
            kind="firehose",
            source=firehose.name,
            maximum_retry_attempts=firehose.transformer_retries,
        )
        functions[transformer.key] = replace(transformer, event_sources=(*transformer.event_sources, source))

    def bucket(logical_id: str) -> BucketSettings:
        props = stack.properties(logical_id)
        versioned = props.get("VersioningConfiguration", {}).get("Status") == "Enabled"
        return BucketSettings(logical_id=logical_id, name=props["BucketName"], versioned=versioned)

    return LocalSettings(
        template_path=template_path,
        region=region,
        parameters=dict(stack.parameters),
        stream=StreamSettings(
            logical_id=STREAM_ID,
            name=stream_props["Name"],
            shard_count=int(stream_props.get("ShardCount", 1)),
            retention_hours=int(stream_props.get("RetentionPeriodHours", 24)),
        ),
        table=TableSettings(
            logical_id=TABLE_ID,
            name=table_props["TableName"],
            billing_mode=table_props.get("BillingMode", "PROVISIONED"),
            key_schema=tuple(table_props["KeySchema"]),
            attribute_definitions=tuple(table_props["AttributeDefinitions"]),
            global_secondary_indexes=tuple(table_props.get("GlobalSecondaryIndexes", ())),
            local_secondary_indexes=tuple(table_props.get("LocalSecondaryIndexes", ())),
            stream_view_type=table_props.get("StreamSpecification", {}).get("StreamViewType"),
        ),
        delivery_bucket=bucket(DELIVERY_BUCKET_ID),
        history_bucket=bucket(HISTORY_BUCKET_ID),
        dead_letter_queue=QueueSettings(
            logical_id=DEAD_LETTER_QUEUE_ID,
            name=queue_props["QueueName"],
            attributes={
                key: str(queue_props[key])
                for key in ("MessageRetentionPeriod", "VisibilityTimeout")
                if key in queue_props
            },
        ),
        firehose=firehose,
        functions=functions,
    )


def _check_emulated(stack: _Stack, template_path: Path) -> None:
    """Every stream, table, bucket, queue and delivery stream of the stack is one the local runtime makes."""
    expected = {*_EMULATED_ONCE.values(), *_BUCKETS}
    for logical_id in sorted(expected - set(stack.resources)):
        raise TemplateError(f"{template_path} has no resource {logical_id}")
    for logical_id, resource in stack.resources.items():
        if resource["Type"] in (*_EMULATED_ONCE, "AWS::S3::Bucket") and logical_id not in expected:
            raise TemplateError(f"{template_path}: {resource['Type']} {logical_id} has no local stand-in")


def _functions(stack: _Stack) -> dict[str, FunctionSettings]:
    functions: dict[str, FunctionSettings] = {}
    for logical_id, props in stack.of_type("AWS::Lambda::Function"):
        handler = props["Handler"]
        match = _HANDLER_PATH.match(handler)
        if not match:
            raise TemplateError(f"handler {handler!r} is not processors/handlers/<name>.<function>")
        functions[match.group("name")] = FunctionSettings(
            key=match.group("name"),
            logical_id=logical_id,
            handler=handler,
            module=handler.rsplit(".", 1)[0].replace("/", "."),
            attribute=match.group("attr"),
            timeout_seconds=int(props.get("Timeout", 3)),
            memory_mb=int(props.get("MemorySize", 128)),
            environment=props.get("Environment", {}).get("Variables", {}),
        )
    by_logical_id = {function.logical_id: function.key for function in functions.values()}

    def function_of(ref: Any) -> str:
        if isinstance(ref, str):  # a Ref of a function that sets FunctionName
            ref = next((ResourceRef(i) for i in by_logical_id if stack.physical_name(i) == ref), ref)
        if not isinstance(ref, ResourceRef) or ref.logical_id not in by_logical_id:
            raise TemplateError(f"{ref!r} is not a function of the template")
        return by_logical_id[ref.logical_id]

    sources: dict[str, list[EventSourceSettings]] = {key: [] for key in functions}
    for logical_id, props in stack.of_type("AWS::Lambda::EventSourceMapping"):
        key = function_of(props["FunctionName"])
        sources[key].append(_mapping(stack, key, logical_id.removeprefix(functions[key].logical_id), props))
    # Asynchronous invokes (S3 notifications): retries and on-failure destination from EventInvokeConfig.
    async_config = {
        function_of(props["FunctionName"]): props for _, props in stack.of_type("AWS::Lambda::EventInvokeConfig")
    }
    for bucket_id, props in stack.of_type("AWS::S3::Bucket"):
        for notification in props.get("NotificationConfiguration", {}).get("LambdaConfigurations", []):
            key = function_of(notification["Function"])
            config = async_config.get(key, {})
            destination = config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            rules = {
                rule["Name"].lower(): rule["Value"]
                for rule in notification.get("Filter", {}).get("S3Key", {}).get("Rules", [])
            }
            sources[key].append(
                EventSourceSettings(
                    function=key,
                    name=_s3_event_name(stack, bucket_id, functions[key].logical_id),
                    kind="s3",
                    source=stack.name_of(ResourceRef(bucket_id)),
                    maximum_retry_attempts=int(config.get("MaximumRetryAttempts", 2)),
                    on_failure=stack.name_of(destination) if destination is not None else None,
                    s3_events=(notification["Event"],),
                    s3_prefix=rules.get("prefix", ""),
                    s3_suffix=rules.get("suffix", ""),
                )
            )
    return {key: replace(function, event_sources=tuple(sources[key])) for key, function in functions.items()}


def _s3_event_name(stack: _Stack, bucket_id: str, function_id: str) -> str:
    """The SAM event's name (it names the source's checkpoint), else the bucket's logical id.

    SAM names the permission of an S3 event ``<function><event>Permission`` and makes the bucket depend on it.
    """
    names = [
        dependency[len(function_id) : -len("Permission")]
        for dependency in stack.resources[bucket_id].get("DependsOn", [])
        if dependency.startswith(function_id) and dependency.endswith("Permission")
    ]
    return names[0] if len(names) == 1 else bucket_id


def _mapping(stack: _Stack, function: str, name: str, props: Mapping[str, Any]) -> EventSourceSettings:
    source = props["EventSourceArn"]
    kind = {"AWS::Kinesis::Stream": "kinesis", "AWS::DynamoDB::Table": "dynamodb"}.get(stack.type_of(source))
    if kind is None:
        raise TemplateError(f"{function}: no local event source for {source!r}")
    on_failure = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    return EventSourceSettings(
        function=function,
        name=name,
        kind=kind,
        source=stack.name_of(ResourceRef(source.logical_id)),
        batch_size=int(props.get("BatchSize", 100)),
        maximum_batching_window_seconds=int(props.get("MaximumBatchingWindowInSeconds", 0)),
        tumbling_window_seconds=int(props.get("TumblingWindowInSeconds", 0)),
        parallelization_factor=int(props.get("ParallelizationFactor", 1)),
        bisect_batch_on_function_error=_as_bool(props.get("BisectBatchOnFunctionError", False)),
        maximum_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
        maximum_record_age_seconds=int(props.get("MaximumRecordAgeInSeconds", -1)),
        starting_position=props.get("StartingPosition", "TRIM_HORIZON"),
        report_batch_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
        on_failure=stack.name_of(on_failure) if on_failure is not None else None,
        filters=parse_filters(props.get("FilterCriteria", {}).get("Filters", [])),
    )


def _firehose(stack: _Stack, functions: Mapping[str, FunctionSettings]) -> FirehoseSettings:
    props = stack.properties(FIREHOSE_ID)
    destination = props["ExtendedS3DestinationConfiguration"]
    hints = destination.get("BufferingHints", {})
    transformer: str | None = None
    parameters: dict[str, str] = {}
    processing = destination.get("ProcessingConfiguration", {})
    if _as_bool(processing.get("Enabled", False)):
        for processor in processing.get("Processors", []):
            if processor.get("Type") != "Lambda":
                continue
            parameters = {item["ParameterName"]: item["ParameterValue"] for item in processor.get("Parameters", [])}
            arn = parameters["LambdaArn"]
            transformer = next((f.key for f in functions.values() if ResourceRef(f.logical_id, "Arn") == arn), None)
            if transformer is None:
                raise TemplateError(f"Firehose transformer {arn!r} is not a function of the template")
    return FirehoseSettings(
        logical_id=FIREHOSE_ID,
        name=props["DeliveryStreamName"],
        source_stream=stack.name_of(props["KinesisStreamSourceConfiguration"]["KinesisStreamARN"]),
        bucket=stack.name_of(destination["BucketARN"]),
        prefix=destination.get("Prefix", ""),
        error_output_prefix=destination.get("ErrorOutputPrefix", ""),
        compression=destination.get("CompressionFormat", "UNCOMPRESSED"),
        buffer_interval_seconds=int(hints.get("IntervalInSeconds", 300)),
        buffer_size_mb=int(hints.get("SizeInMBs", 5)),
        transformer=transformer,
        transformer_retries=int(parameters.get("NumberOfRetries", 3)),
        transformer_buffer_size_mb=int(parameters.get("BufferSizeInMBs", 1)),
        transformer_buffer_interval_seconds=int(parameters.get("BufferIntervalInSeconds", 60)),
    )


def _as_bool(value: Any) -> bool:
    return value.lower() == "true" if isinstance(value, str) else bool(value)
