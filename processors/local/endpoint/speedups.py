"""Speedups of moto for a pipeline that runs for hours, applied only on the pinned moto version.

They replace moto internals (private methods and attributes), so they are only safe on the
version they were written against: :data:`PINNED_MOTO` (the pin of requirements.txt, checked by
a test). With any other version they are left out (a warning says so) and the endpoint answers
with moto's own code, slower but correct. None changes an answer
(``tests/processors/local/test_endpoint_paths.py`` compares them with moto's own responses).

Each one quotes what it buys on the local pipeline: ``bench/bench_pipeline.py`` (what ``make run``
starts, under one race of N racers sending one message a second; sizes in each figure), run without
it (``ALLEYCAT_ENDPOINT_SPEEDUPS`` naming the others) and with all of them, interleaved, on a shared
2-core machine. The figures are the endpoint's CPU seconds over the run (the steadiest figure on a
loaded machine) and the aggregator's lag. With none of them, 300 racers x 60 s cost the endpoint
4.5x the CPU (75 s vs 16 s) and the producer fell behind (70-85 s to send 60 s of race).
Measured and dropped, no figure moved without them: a cache of moto's dispatcher's backend lookup;
Kinesis GetRecords written with one ``json.dumps`` (endpoint CPU 52 s vs 51 s at 1,000 racers);
DynamoDB Streams GetRecords likewise (it served the per-second items of history, which no
table-stream reader wants: moving those items out of the streamed table is the cure).
"""

from __future__ import annotations

import base64
import copy
import logging
import os
import re
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from processors.local.endpoint import replace

logger = logging.getLogger(__name__)

PINNED_MOTO = "5.2.5"


def apply() -> bool:
    """Apply the speedups if the installed moto is the pinned one; whether they were applied.

    ``ALLEYCAT_ENDPOINT_SPEEDUPS`` picks them by name (comma-separated, or ``none``; default: all),
    so that the figure each one quotes can be measured again: bench/bench_pipeline.py with and without it.
    """
    installed = version("moto")
    if installed != PINNED_MOTO:
        logger.warning("moto %s is not the pinned %s: the endpoint runs without its speedups", installed, PINNED_MOTO)
        return False
    chosen = os.environ.get("ALLEYCAT_ENDPOINT_SPEEDUPS", "").strip()
    names = set(SPEEDUPS) if not chosen else {name.strip() for name in chosen.split(",")} - {"none", ""}
    unknown = names - set(SPEEDUPS)
    if unknown:
        raise ValueError(f"ALLEYCAT_ENDPOINT_SPEEDUPS: unknown {sorted(unknown)}; known {sorted(SPEEDUPS)}")
    for name, speedup in SPEEDUPS.items():
        if name in names:
            speedup()
    return True


def _linear_kinesis_shards() -> None:
    """Kinesis shards find their newest record in O(1) and read from the iterator's position.

    moto 5.2 lists every key of the shard on each put (``get_max_sequence_number``) and scans the
    shard from its first record on each GetRecords: quadratic in the records of a shard, which in a
    1,000-racer race (1,000 records a second) made an hour-long run slow to a crawl.

    Figure (one 5-minute race of 300 racers): without it the endpoint spends 2.6x the CPU (268 s vs
    105 s), the aggregator's lag peaks at 151 s instead of 1.2 s and the producer takes 348 s to send
    300 s of race; at 60 s the endpoint already spends 1.5x (25 s vs 16 s). It grows with the run.
    """
    from moto.kinesis.models import Shard

    if getattr(Shard, "_alleycat_linear", False):
        return

    def get_max_sequence_number(self: Any) -> int:
        return next(reversed(self.records)) if self.records else 0

    def get_min_sequence_number(self: Any) -> int:
        return next(iter(self.records)) if self.records else 0

    def get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list, int, int]:
        last = int(last_sequence_id)
        if not self.records:
            return [], last, 0
        newest = next(reversed(self.records))
        sequence = max(last + 1, next(iter(self.records)))
        limit = limit or 10_000
        results: list[Any] = []
        while sequence <= newest and len(results) < limit:
            record = self.records.get(sequence)
            if record is not None:
                results.append(record)
                last = sequence
            sequence += 1
        behind = int((self.records[newest].created_at - results[-1].created_at) * 1000) if results else 0
        return results, last, behind

    replace(Shard, "get_max_sequence_number", get_max_sequence_number)
    replace(Shard, "get_min_sequence_number", get_min_sequence_number)
    replace(Shard, "get_records", get_records)
    replace(Shard, "_alleycat_linear", True)


def _wire_attribute(value: Any) -> dict:
    """A DynamoDB attribute value (moto's DynamoType or its JSON form) in wire format."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    if isinstance(value, DynamoType):
        value = value.to_json()
    ((kind, inner),) = value.items()
    if kind == "M":
        return {"M": {name: _wire_attribute(item) for name, item in inner.items()}}
    if kind == "L":
        return {"L": [_wire_attribute(item) for item in inner]}
    if kind == "B":
        return {"B": inner if isinstance(inner, str) else base64.b64encode(inner).decode()}
    if kind == "BS":
        return {"BS": [item if isinstance(item, str) else base64.b64encode(item).decode() for item in inner]}
    if kind == "N":
        return {"N": str(inner)}
    if kind == "NS":
        return {"NS": [str(item) for item in inner]}
    return {kind: inner}


def _patch_attribute_value_serialisation() -> None:
    """DynamoDB attribute values written to responses directly (``_wire_attribute``).

    moto 5.2 walks the botocore shape of every nested AttributeValue of every item it answers.

    Figure (1,000 racers x 60 s): without it the endpoint spends 2.1x the CPU (106 s vs 51 s), the
    aggregator's lag peaks at 21.9 s instead of 7.3 s and the backlog drains 62 s after the race
    instead of 13 s. At 300 racers no figure moves. (A second speedup that wrote whole item maps of
    Query and GetItem answers bought the same, and nothing more once this one is on: dropped.)
    """
    from moto.core.serialize import JSONSerializer

    original = JSONSerializer._serialize_type_structure

    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key and shape.name == "AttributeValue" and value is not None:
            serialized[key] = _wire_attribute(value)
            return
        original(self, serialized, value, shape, key)

    replace(JSONSerializer, "_serialize_type_structure", serialize_structure)


_SIMPLE_SET = re.compile(r"\s*SET\s+(#\w+\s*=\s*:\w+(?:\s*,\s*#\w+\s*=\s*:\w+)*)\s*", re.IGNORECASE)
_SIMPLE_SET_TYPES = frozenset({"S", "N", "B", "BOOL", "NULL"})


def _patch_dynamodb_simple_update() -> None:
    """UpdateItem of the form ``SET #a = :a, #b = :b, ...`` (no condition) without moto's expression machinery.

    moto 5.2 parses such an expression twice, then deep-copies and walks its syntax tree in
    ``UpdateExpressionValidator`` for every call: ~3 ms per call, and history writes one UpdateItem per
    racer per Firehose object (1,000 calls at once in a 1,000-racer race), each competing with the
    aggregator for the one process that serves every service. Here the placeholders are resolved and
    the values set as moto's executor would (``item.attrs[name] = DynamoType(value)``, size-limited by
    moto's ``LimitedSizeDict``), the new item is created as moto creates it, and the table stream
    gets the same records. Anything else (conditions, paths, functions, a key attribute, a name set
    twice, unknown placeholders, other value types) takes moto's own path, errors included.

    Figure (300 racers x 60 s): without it the endpoint spends 2x the CPU (32 s vs 16 s) and the
    aggregator's lag peaks at 3.6-13.5 s instead of about 1 s. All of it is history's per-second items:
    out of the streamed table (or written once per race), they would make this speedup unneeded.
    """
    from moto.dynamodb.exceptions import ItemSizeTooLarge, ItemSizeToUpdateTooLarge
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType

    if getattr(DynamoDBBackend, "_alleycat_simple_update", False):
        return
    original = DynamoDBBackend.update_item

    def assignments(table: Any, expression: str, names: dict[str, Any], values: dict[str, Any]) -> list | None:
        match = _SIMPLE_SET.fullmatch(expression)
        if match is None:
            return None
        pairs = []
        for clause in match.group(1).split(","):
            placeholder, _, value_name = (part.strip() for part in clause.partition("="))
            name, value = names.get(placeholder), values.get(value_name)
            if not isinstance(name, str) or not isinstance(value, dict) or len(value) != 1:
                return None
            if next(iter(value)) not in _SIMPLE_SET_TYPES or name in table.attribute_keys:
                return None
            pairs.append((name, value))
        if len({name for name, _ in pairs}) != len(pairs):
            return None
        return pairs

    def update_item(
        self: Any,
        table_name: str,
        key: dict[str, dict[str, Any]],
        update_expression: str,
        expression_attribute_names: dict[str, Any],
        expression_attribute_values: dict[str, Any],
        attribute_updates: dict[str, Any] | None = None,
        expected: dict[str, Any] | None = None,
        condition_expression: str | None = None,
        return_values_on_condition_check_failure: str | None = None,
    ) -> Any:
        table = self.get_table(table_name)
        pairs = None
        if update_expression and not attribute_updates and not expected and not condition_expression:
            hash_attr, range_attr = table.hash_key_attr, table.range_key_attr
            if set(key) == set(table.table_key_attrs):  # exactly the table's key (indexes' keys are attributes)
                pairs = assignments(
                    table, update_expression, expression_attribute_names or {}, expression_attribute_values or {}
                )
        if pairs is None:
            return original(
                self,
                table_name,
                key,
                update_expression,
                expression_attribute_names,
                expression_attribute_values,
                attribute_updates,
                expected,
                condition_expression,
                return_values_on_condition_check_failure,
            )
        hash_value = DynamoType(key[hash_attr])
        range_value = DynamoType(key[range_attr]) if range_attr else None
        item = table.get_item(hash_value, range_value)
        orig_item = copy.deepcopy(item)
        if item is None:
            data: dict[str, Any] = {hash_attr: {hash_value.type: hash_value.value}}
            if range_value is not None:
                data[range_attr] = {range_value.type: range_value.value}
            table.put_item(data)
            item = table.get_item(hash_value, range_value)
        try:
            for name, value in pairs:
                item.attrs[name] = DynamoType(value)
        except ItemSizeTooLarge:
            raise ItemSizeToUpdateTooLarge() from None
        if table.stream_shard is not None:
            table.stream_shard.add(orig_item, item)
        return item

    replace(DynamoDBBackend, "update_item", update_item)
    replace(DynamoDBBackend, "_alleycat_simple_update", True)


SPEEDUPS: dict[str, Callable[[], None]] = {
    "linear_kinesis_shards": _linear_kinesis_shards,
    "attribute_value_serialisation": _patch_attribute_value_serialisation,
    "dynamodb_simple_update": _patch_dynamodb_simple_update,
}
