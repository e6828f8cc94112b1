"""Local settings read from the SAM template, so the local runtime cannot drift from the cloud.

Usage::

    from processors.local.template import load_local_settings

    settings = load_local_settings()                  # infra/template.yaml, parameter defaults
    settings.table.create_table_kwargs()              # boto3 create_table(**kwargs)
    source = settings.function("aggregator").event_sources[0]
    source.batch_size, source.tumbling_window_seconds, source.maximum_retry_attempts
    handler = settings.function("history").import_handler()
    env = settings.environment("history", resources)  # resources: processors.local.bootstrap.Resources

The template is parsed with a YAML loader that understands CloudFormation's short-form tags
(``!Ref``, ``!GetAtt``, ``!Sub``, ``!If``...). Intrinsics are resolved with the parameter defaults
(or the ``parameters`` given), ``AWS::NoValue`` drops a property, and resource-level conditions
drop resources. A reference whose value only exists once the resource does (a queue URL, an ARN)
stays a :class:`ResourceRef` until :meth:`LocalSettings.environment` resolves it against the
bootstrapped resources.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import yaml

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

_HANDLER_PATH = re.compile(r"^processors/handlers/(?P<name>[a-z_]+)\.(?P<attr>[A-Za-z_]+)$")


class TemplateError(ValueError):
    """The template does not have the shape the local runtime relies on."""


# --------------------------------------------------------------------------- YAML loading


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short-form tags into their long form."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        logical_id, _, attribute = value.partition(".")
        value = [logical_id, attribute]
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The template as plain data, short-form tags in long form (``{"Ref": ...}``, ``{"Fn::Sub": ...}``)."""
    text = Path(path or DEFAULT_TEMPLATE_PATH).read_text(encoding="utf-8")
    return yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - _CfnLoader is a SafeLoader


# --------------------------------------------------------------------------- intrinsics


@dataclass(frozen=True)
class ResourceRef:
    """A ``Ref`` (attribute None) or ``GetAtt`` of a resource, known only once the resource exists."""

    logical_id: str
    attribute: str | None = None


class ReferenceResolver(Protocol):
    def reference(self, ref: ResourceRef) -> str: ...


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


class _Resolver:
    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str], region: str) -> None:
        self.template = template
        self.resources: Mapping[str, Any] = template.get("Resources", {})
        declared = template.get("Parameters", {})
        unknown = set(parameters) - set(declared)
        if unknown:
            raise TemplateError(f"unknown template parameters: {sorted(unknown)}")
        self.parameters: dict[str, Any] = {}
        for name, spec in declared.items():
            value = parameters.get(name, spec.get("Default"))
            if value is None:
                raise TemplateError(f"parameter {name} has no default and no value")
            if spec.get("Type") == "CommaDelimitedList":
                value = [] if value in ("", []) else (value.split(",") if isinstance(value, str) else list(value))
            else:
                value = str(value)
            self.parameters[name] = value
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": LOCAL_ACCOUNT_ID,
            "AWS::StackName": DEFAULT_STACK_NAME,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.template.get("Conditions", {})
            if name not in conditions:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(conditions[name]))
        return self._conditions[name]

    def resource_included(self, logical_id: str) -> bool:
        condition = self.resources[logical_id].get("Condition")
        return condition is None or self.condition(condition)

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            return self.physical_name(name) or ResourceRef(name)
        raise TemplateError(f"unresolvable Ref {name}")

    def physical_name(self, logical_id: str) -> str | None:
        """The name a resource is created under, when the template sets it (Ref of streams, tables, buckets)."""
        resource = self.resources[logical_id]
        name_property = {
            "AWS::Kinesis::Stream": "Name",
            "AWS::DynamoDB::Table": "TableName",
            "AWS::S3::Bucket": "BucketName",
            "AWS::KinesisFirehose::DeliveryStream": "DeliveryStreamName",
            "AWS::Logs::LogGroup": "LogGroupName",
            "AWS::Logs::LogStream": "LogStreamName",
        }.get(resource.get("Type", ""))
        if name_property is None:
            return None
        value = resource.get("Properties", {}).get(name_property)
        if value is None:
            return None if name_property != "LogGroupName" else f"/local/{logical_id}"
        return str(self.resolve(value))

    def get_att(self, logical_id: str, attribute: str) -> Any:
        if logical_id not in self.resources:
            raise TemplateError(f"unresolvable GetAtt {logical_id}.{attribute}")
        if attribute == "QueueName" and self.resources[logical_id].get("Type") == "AWS::SQS::Queue":
            return str(self.resolve(self.resources[logical_id]["Properties"]["QueueName"]))
        return ResourceRef(logical_id, attribute)

    def sub(self, value: Any) -> Any:
        if isinstance(value, list):
            text, variables = value[0], {k: self.resolve(v) for k, v in value[1].items()}
        else:
            text, variables = value, {}
        unresolved: list[ResourceRef] = []

        def replace(match: re.Match[str]) -> str:
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
                unresolved.append(resolved)
                return match.group(0)
            return str(resolved)

        result = re.sub(r"\$\{([^}]+)\}", replace, text)
        return result if not unresolved else {"Fn::Sub": result, "unresolved": unresolved}

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Condition":
                return self.condition(argument)
            if key == "Fn::GetAtt":
                return self.get_att(*argument)
            if key == "Fn::Sub":
                return self.sub(argument)
            if key == "Fn::If":
                name, when_true, when_false = argument
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Equals":
                left, right = (self.resolve(item) for item in argument)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(argument[0])
            if key == "Fn::And":
                return all(self.resolve(item) for item in argument)
            if key == "Fn::Or":
                return any(self.resolve(item) for item in argument)
            if key == "Fn::Join":
                separator, items = argument
                return separator.join(str(item) for item in self.resolve(items))
            if key == "Fn::Select":
                index, items = argument
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                separator, text = argument
                return str(self.resolve(text)).split(separator)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}


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
    """One trigger of a function, as the template configures it.

    ``kind`` is ``kinesis`` or ``dynamodb`` (stream mappings: ``source`` is the stream or table name),
    ``s3`` (``source`` is the bucket, ``s3_events``/``s3_prefix``/``s3_suffix`` the filter) or
    ``firehose`` (the transformer; ``source`` is the delivery stream name). A tumbling window of 0
    means no window; ``on_failure`` is the name of the on-failure SQS queue.
    """

    function: str
    name: str
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
    environment: Mapping[str, str | ResourceRef | dict[str, Any]]
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
        Empty values (``REDIS_URL`` when the RedisUrl parameter is unset) are left out too, so the
        local process's own value (the embedded Redis) applies.
        """
        environment: dict[str, str] = {}
        for name, value in self.function(function).environment.items():
            resolved = _resolve_late(value, resources)
            if resolved:
                environment[name] = resolved
        return environment


def _resolve_late(value: Any, resources: ReferenceResolver | None) -> str | None:
    if isinstance(value, ResourceRef):
        return resources.reference(value) if resources is not None else None
    if isinstance(value, dict) and "unresolved" in value:
        if resources is None:
            return None
        text = value["Fn::Sub"]
        for ref in value["unresolved"]:
            placeholder = ref.logical_id + (f".{ref.attribute}" if ref.attribute else "")
            text = text.replace("${" + placeholder + "}", resources.reference(ref))
        return text
    return str(value)


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
    template = load_template(template_path)
    region = region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    resolver = _Resolver(template, parameters or {}, region)
    resources = template.get("Resources", {})
    for logical_id in (STREAM_ID, TABLE_ID, DELIVERY_BUCKET_ID, HISTORY_BUCKET_ID, DEAD_LETTER_QUEUE_ID, FIREHOSE_ID):
        if logical_id not in resources:
            raise TemplateError(f"{template_path} has no resource {logical_id}")

    def properties(logical_id: str) -> dict[str, Any]:
        return resolver.resolve(resources[logical_id].get("Properties", {}))

    stream_props = properties(STREAM_ID)
    stream = StreamSettings(
        logical_id=STREAM_ID,
        name=stream_props["Name"],
        shard_count=int(stream_props.get("ShardCount", 1)),
        retention_hours=int(stream_props.get("RetentionPeriodHours", 24)),
    )

    table_props = properties(TABLE_ID)
    table = TableSettings(
        logical_id=TABLE_ID,
        name=table_props["TableName"],
        billing_mode=table_props.get("BillingMode", "PROVISIONED"),
        key_schema=tuple(table_props["KeySchema"]),
        attribute_definitions=tuple(table_props["AttributeDefinitions"]),
        global_secondary_indexes=tuple(table_props.get("GlobalSecondaryIndexes", ())),
        local_secondary_indexes=tuple(table_props.get("LocalSecondaryIndexes", ())),
        stream_view_type=table_props.get("StreamSpecification", {}).get("StreamViewType"),
    )

    def bucket(logical_id: str) -> BucketSettings:
        props = properties(logical_id)
        versioning = props.get("VersioningConfiguration", {}).get("Status") == "Enabled"
        return BucketSettings(logical_id=logical_id, name=props["BucketName"], versioned=versioning)

    queue_props = properties(DEAD_LETTER_QUEUE_ID)
    queue = QueueSettings(
        logical_id=DEAD_LETTER_QUEUE_ID,
        name=queue_props["QueueName"],
        attributes={
            key: str(queue_props[key]) for key in ("MessageRetentionPeriod", "VisibilityTimeout") if key in queue_props
        },
    )
    names = _NameIndex(resolver)

    functions = _functions(template, resolver, names)
    _apply_async_invoke_configs(template, resolver, functions)
    firehose = _firehose(properties(FIREHOSE_ID), names, functions)
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

    return LocalSettings(
        template_path=template_path,
        region=region,
        parameters=dict(resolver.parameters),
        stream=stream,
        table=table,
        delivery_bucket=bucket(DELIVERY_BUCKET_ID),
        history_bucket=bucket(HISTORY_BUCKET_ID),
        dead_letter_queue=queue,
        firehose=firehose,
        functions=functions,
    )


class _NameIndex:
    """Local names of resources referenced by Ref/GetAtt (streams, tables, buckets, queues, functions)."""

    def __init__(self, resolver: _Resolver) -> None:
        self.resolver = resolver

    def name_of(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, ResourceRef):
            resource = self.resolver.resources[value.logical_id]
            if resource.get("Type") == "AWS::SQS::Queue":
                return str(self.resolver.resolve(resource["Properties"]["QueueName"]))
            name = self.resolver.physical_name(value.logical_id)
            if name is not None:
                return name
            if resource.get("Type") == "AWS::Serverless::Function":
                return _function_key(str(self.resolver.resolve(resource["Properties"]["Handler"])))[0]
        raise TemplateError(f"cannot name {value!r} locally")


def _function_key(handler: str) -> tuple[str, str]:
    match = _HANDLER_PATH.match(handler)
    if not match:
        raise TemplateError(f"handler {handler!r} is not processors/handlers/<name>.<function>")
    return match.group("name"), match.group("attr")


def _functions(template: Mapping[str, Any], resolver: _Resolver, names: _NameIndex) -> dict[str, FunctionSettings]:
    globals_ = resolver.resolve(template.get("Globals", {}).get("Function", {}))
    functions: dict[str, FunctionSettings] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function" or not resolver.resource_included(logical_id):
            continue
        props = resolver.resolve(resource.get("Properties", {}))
        handler = props.get("Handler", globals_.get("Handler"))
        key, attribute = _function_key(handler)
        environment = {
            **globals_.get("Environment", {}).get("Variables", {}),
            **props.get("Environment", {}).get("Variables", {}),
        }
        sources = tuple(_event_source(key, name, event, names) for name, event in props.get("Events", {}).items())
        functions[key] = FunctionSettings(
            key=key,
            logical_id=logical_id,
            handler=handler,
            module=handler.rsplit(".", 1)[0].replace("/", "."),
            attribute=attribute,
            timeout_seconds=int(props.get("Timeout", globals_.get("Timeout", 3))),
            memory_mb=int(props.get("MemorySize", globals_.get("MemorySize", 128))),
            environment=environment,
            event_sources=sources,
        )
    return functions


def _event_source(function: str, name: str, event: Mapping[str, Any], names: _NameIndex) -> EventSourceSettings:
    kind = {"Kinesis": "kinesis", "DynamoDB": "dynamodb", "S3": "s3"}.get(event.get("Type", ""))
    if kind is None:
        raise TemplateError(f"{function}: unsupported event type {event.get('Type')!r}")
    props = event.get("Properties", {})
    if kind == "s3":
        rules = props.get("Filter", {}).get("S3Key", {}).get("Rules", [])
        by_name = {rule["Name"].lower(): rule["Value"] for rule in rules}
        events = props.get("Events", [])
        return EventSourceSettings(
            function=function,
            name=name,
            kind=kind,
            source=names.name_of(props["Bucket"]),
            s3_events=tuple([events] if isinstance(events, str) else events),
            s3_prefix=by_name.get("prefix", ""),
            s3_suffix=by_name.get("suffix", ""),
        )
    stream = props["Stream"]
    if isinstance(stream, ResourceRef):
        stream = names.name_of(ResourceRef(stream.logical_id))
    on_failure = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    return EventSourceSettings(
        function=function,
        name=name,
        kind=kind,
        source=stream,
        batch_size=int(props.get("BatchSize", 100)),
        maximum_batching_window_seconds=int(props.get("MaximumBatchingWindowInSeconds", 0)),
        tumbling_window_seconds=int(props.get("TumblingWindowInSeconds", 0)),
        parallelization_factor=int(props.get("ParallelizationFactor", 1)),
        bisect_batch_on_function_error=_as_bool(props.get("BisectBatchOnFunctionError", False)),
        maximum_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
        maximum_record_age_seconds=int(props.get("MaximumRecordAgeInSeconds", -1)),
        starting_position=props.get("StartingPosition", "TRIM_HORIZON"),
        report_batch_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
        on_failure=names.name_of(ResourceRef(on_failure.logical_id)) if on_failure is not None else None,
        filters=parse_filters(props.get("FilterCriteria", {}).get("Filters", [])),
    )


def _firehose(
    props: Mapping[str, Any], names: _NameIndex, functions: Mapping[str, FunctionSettings]
) -> FirehoseSettings:
    source = props["KinesisStreamSourceConfiguration"]["KinesisStreamARN"]
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
            logical_id = arn.logical_id if isinstance(arn, ResourceRef) else None
            transformer = next((f.key for f in functions.values() if f.logical_id == logical_id), None)
            if transformer is None:
                raise TemplateError(f"Firehose transformer {arn!r} is not a function of the template")
    return FirehoseSettings(
        logical_id=FIREHOSE_ID,
        name=props["DeliveryStreamName"],
        source_stream=names.name_of(ResourceRef(source.logical_id) if isinstance(source, ResourceRef) else source),
        bucket=names.name_of(ResourceRef(destination["BucketARN"].logical_id)),
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


def _apply_async_invoke_configs(
    template: Mapping[str, Any], resolver: _Resolver, functions: dict[str, FunctionSettings]
) -> None:
    """Retries and on-failure destination of asynchronous invokes (S3 notifications) from EventInvokeConfig."""
    by_logical_id = {function.logical_id: function for function in functions.values()}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Lambda::EventInvokeConfig" or not resolver.resource_included(logical_id):
            continue
        props = resolver.resolve(resource.get("Properties", {}))
        target = props.get("FunctionName")
        function = by_logical_id.get(target.logical_id) if isinstance(target, ResourceRef) else None
        if function is None:
            continue
        destination = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        sources = tuple(
            replace(
                source,
                maximum_retry_attempts=int(props.get("MaximumRetryAttempts", 2)),
                on_failure=_queue_name(resolver, destination),
            )
            if source.kind == "s3"
            else source
            for source in function.event_sources
        )
        functions[function.key] = replace(function, event_sources=sources)


def _queue_name(resolver: _Resolver, destination: Any) -> str | None:
    if not isinstance(destination, ResourceRef):
        return None
    return str(resolver.resolve(resolver.resources[destination.logical_id]["Properties"]["QueueName"]))


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)
