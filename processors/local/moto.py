"""The embedded AWS endpoint: moto's server on 127.0.0.1 (``python -m processors.local.moto``).

Port ``ALLEYCAT_AWS_PORT`` (default 4566, LocalStack's, so that its users can swap theirs in).
It binds to 127.0.0.1 only, whatever the arguments: it accepts any credentials.

Before serving, it adjusts moto's in-memory Kinesis and DynamoDB Streams for a pipeline that runs
for hours (moto is built for short unit tests):

- a Kinesis shard finds its newest sequence number in O(1) and GetRecords reads from the
  iterator's position instead of scanning the shard from its first record (moto 5.2 lists every
  key on each put and scans on each read: quadratic in the records of a shard);
- new records go to an *open* shard only: after UpdateShardCount moto 5.2 still routes keys to the
  closed parent (the first shard whose hash range matches), where no reader looks any more, and
  misses the last hash key of every range;
- PutRecords calls served concurrently cannot lose records (moto 5.2 numbers records without a lock);
- DynamoDB attribute values are written to responses directly: moto 5.2 walks the botocore shape of
  every nested AttributeValue, about 2 s for one GetItem of a 1,000-racer live item;
- per request, the backend of a host is looked up once (moto 5.2 lists its package directory under a
  lock for every request); Kinesis GetRecords is answered with one ``json.dumps`` of the stored base64
  data; UpdateItem ``SET #a = :a, ...`` without a condition skips moto's expression validator (history
  writes one per racer per Firehose object) — see ``_patch_dispatcher``,
  ``_patch_kinesis_get_records_response``, ``_patch_dynamodb_simple_update``;
- records older than ``ALLEYCAT_MOTO_RETENTION_SECONDS`` (default 3600) leave the Kinesis shards,
  and a table stream keeps its newest ``ALLEYCAT_MOTO_TABLE_STREAM_RECORDS`` (default 20000)
  records, as the real services' retention does, so memory stays bounded.

Sequence numbers, iterators and responses keep moto's formats; a reader positioned before the
oldest kept record continues at the oldest one (TRIM_HORIZON semantics).
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

DEFAULT_PORT = 4566
HOST = "127.0.0.1"
_TRIM_EVERY = 500


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def patch_moto() -> None:
    """Make moto's Kinesis and DynamoDB Streams linear and bounded (see the module docstring)."""
    from moto.dynamodb.models.table import StreamShard
    from moto.kinesis.exceptions import InvalidArgumentError
    from moto.kinesis.models import Shard, Stream

    if getattr(Shard, "_alleycat_patched", False):
        return
    retention = _int_env("ALLEYCAT_MOTO_RETENTION_SECONDS", 3600)
    stream_records = _int_env("ALLEYCAT_MOTO_TABLE_STREAM_RECORDS", 20_000)

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
        results = []
        while sequence <= newest and len(results) < limit:
            record = self.records.get(sequence)
            if record is not None:
                results.append(record)
                last = sequence
            sequence += 1
        behind = int((self.records[newest].created_at - results[-1].created_at) * 1000) if results else 0
        return results, last, behind

    original_put = Shard.put_record
    put_lock = threading.Lock()

    def put_record(self: Any, partition_key: str, data: str, explicit_hash_key: str) -> str:
        # moto numbers a record "newest + 1" without a lock: two PutRecords calls served by two
        # threads at once can get the same sequence number, and one record silently replaces the other.
        with put_lock:
            sequence = original_put(self, partition_key, data, explicit_hash_key)
        if int(sequence) % _TRIM_EVERY == 0:
            cutoff = time.time() - retention
            while self.records:
                oldest = next(iter(self.records))
                if self.records[oldest].created_at >= cutoff:
                    break
                del self.records[oldest]
        return sequence

    def get_shard_for_key(self: Any, partition_key: str, explicit_hash_key: str) -> Any:
        if not isinstance(partition_key, str) or len(partition_key) > 256:
            raise InvalidArgumentError("partition_key")
        if explicit_hash_key:
            key = int(explicit_hash_key)
            if key >= 2**128:
                raise InvalidArgumentError("explicit_hash_key")
        else:
            key = int(hashlib.md5(partition_key.encode("utf-8")).hexdigest(), 16)  # noqa: S324 - Kinesis's hash
        for shard in self.shards.values():
            if shard.is_open and shard.starting_hash <= key <= shard.ending_hash:
                return shard
        return None

    Stream.get_shard_for_key = get_shard_for_key
    _patch_attribute_value_serialisation()
    _patch_dynamodb_query()
    _patch_dynamodb_items_response()
    Shard.get_max_sequence_number = get_max_sequence_number
    Shard.get_min_sequence_number = get_min_sequence_number
    Shard.get_records = get_records
    Shard.put_record = put_record

    original_add = StreamShard.add

    def add(self: Any, old: Any, new: Any) -> None:
        original_add(self, old, new)
        excess = len(self.items) - stream_records
        if excess > 0:
            del self.items[:excess]
            self.starting_sequence_number += excess

    def get(self: Any, start: int, quantity: int) -> list[dict]:
        offset = max(0, start - self.starting_sequence_number)
        return [item.to_json() for item in self.items[offset : offset + quantity]]

    StreamShard.add = add
    StreamShard.get = get
    Shard._alleycat_patched = True


def _exit_after_grace(_signum: int, _frame: Any) -> None:
    # ``make run`` stops every process at once: keep answering for a moment so that the runner
    # and the simulator finish the calls in progress (and checkpoint) instead of failing them.
    grace = float(os.environ.get("ALLEYCAT_AWS_STOP_GRACE_SECONDS") or 3)
    threading.Timer(grace, os._exit, args=(0,)).start()


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
    from moto.core.serialize import JSONSerializer

    original = JSONSerializer._serialize_type_structure

    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key and shape.name == "AttributeValue" and value is not None:
            serialized[key] = _wire_attribute(value)
            return
        original(self, serialized, value, shape, key)

    JSONSerializer._serialize_type_structure = serialize_structure


# --- DynamoDB Query: one partition, sorted by plain values (the results API's read path) -------------------


def _sort_value(value: Any) -> Any:
    """What moto's DynamoType ``<``/``==`` compare (``cast_value``), without building a Decimal for strings."""
    return value.value if value.type == "S" else value.cast_value


def _sort_key(names: list[str]) -> Any:
    """Sort key of an item: the plain values of ``names`` (what moto's key tuple of DynamoTypes compares)."""

    def key(item: Any) -> tuple:
        attrs = item.attrs
        return tuple([value.value if (value := attrs[name]).type == "S" else value.cast_value for name in names])

    return key


def _item_size(item: Any) -> int:
    """moto's ``Item.size()`` (its 1 MB page limit), with string and number values measured inline."""
    total = 0
    for name, value in item.attrs.items():
        total += len(name.encode())
        kind, inner = value.type, value.value
        if kind == "S" and type(inner) is str:
            total += len(inner.encode())
        elif kind == "N":
            total += len(str(inner))
        else:
            total += value.size()
    return total


def _same_value(value: Any, expected: Any) -> bool:
    """moto's ``DynamoType.__eq__`` (type and cast value) for a key attribute."""
    if value.type != expected.type:
        return False
    return value.value == expected.value if value.type == "S" else value.cast_value == expected.cast_value


@functools.lru_cache(maxsize=65_536)
def _number_text_survives(text: Any) -> bool:
    """True when moto's projection round trip (boto3's Decimal context and back) gives ``text`` unchanged."""
    from boto3.dynamodb.types import DYNAMODB_CONTEXT

    try:
        return str(DYNAMODB_CONTEXT.create_decimal(text)) == text
    except (ArithmeticError, TypeError, ValueError):  # moto's round trip raises its own error
        return False


def _projected_item(item: Any, paths: list[list[str]]) -> Any:
    """``Item.project`` for top-level names of string and number values, without its JSON round trip.

    moto's ``project`` goes through ``to_regular_json`` and back and fills a ``LimitedSizeDict`` that re-sums the
    item on every insert. For top-level ``S``/``N`` values (numbers whose text survives ``Decimal``) the result is
    the same item; anything else goes to moto's own ``project``.
    """
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict

    attrs = item.attrs
    chosen: dict[str, Any] = {}
    for path in paths:
        if len(path) != 1:
            return item.project(paths)
        name = path[0]
        value = attrs.get(name)
        if value is None or name in chosen:
            continue
        if value.type == "N":
            if not _number_text_survives(value.value):
                return item.project(paths)
        elif value.type != "S":
            return item.project(paths)
        copy = DynamoType.__new__(DynamoType)
        copy.type, copy.value = value.type, value.value
        chosen[name] = copy
    result = Item.__new__(Item)
    result.hash_key, result.range_key = item.hash_key, item.range_key
    result.attrs = LimitedSizeDict.__new__(LimitedSizeDict)
    dict.update(result.attrs, chosen)
    return result


def _patch_dynamodb_query() -> None:
    """Answer a Query from its partition, sorted once by plain values: ~25 ms -> ~3 ms for 100 of 1,000 results.

    moto 5.2's ``Table.query`` sorts *every item of the table* on each call (``all_items``), compares key values
    through ``DynamoType`` (a ``Decimal`` per comparison), sorts the matches again, sizes each item twice,
    deep-copies the page and projects it through a JSON round trip. This answers the common shape — one hash key
    equality, at most one range key condition, a table or an index with one hash and one range key — with the
    same steps in the same order (order by index key then table key, ``ScanIndexForward``, ``ExclusiveStartKey``,
    ``Limit`` and the 1 MB page limit, ``LastEvaluatedKey``, index projection, filter expression, projection),
    reading only the partition of a table query and comparing plain values. Anything else (legacy
    ``KeyConditions``/``QueryFilter``, multi-attribute keys, tables without a range key, validation errors) is
    moto's own code. ``tests/processors/test_moto_query.py`` compares both on the same data.
    """
    import copy

    from moto.dynamodb.comparisons import OpDefault
    from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, Table

    if getattr(Table, "_alleycat_query_patched", False):
        return
    original_query = Table.query

    def query(
        self: Any,
        hash_key: Any,
        range_comparison: str | None,
        range_objs: list[Any],
        limit: int,
        exclusive_start_key: dict[str, Any] | None,
        scan_index_forward: bool,
        projection_expressions: list[list[str]] | None,
        index_name: str | None = None,
        consistent_read: bool = False,
        filter_expression: Any = None,
        hash_key_conditions: list[tuple[str, Any]] | None = None,
        range_key_conditions: list[tuple[str, str, list[Any]]] | None = None,
        **filter_kwargs: Any,
    ) -> tuple[list[Any], int, dict[str, Any] | None]:
        args = (hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward)
        kwargs = dict(
            index_name=index_name,
            consistent_read=consistent_read,
            filter_expression=filter_expression,
            hash_key_conditions=hash_key_conditions,
            range_key_conditions=range_key_conditions,
            **filter_kwargs,
        )
        plan = _query_plan(self, hash_key, index_name, consistent_read, hash_key_conditions, range_key_conditions)
        if plan is None or filter_kwargs:
            return Table._alleycat_unpatched_query(self, *args, projection_expressions, **kwargs)
        index, hash_attrs, range_attrs, range_attr_for_comparison = plan
        try:
            candidates = _query_candidates(self, index, hash_key, hash_key_conditions)
            sort_attrs = self._generate_attr_to_sort_by(hash_attrs, range_attrs)
            # Every candidate has the same hash key value (the first sort attribute): order by the rest.
            candidates.sort(key=_sort_key(sort_attrs[1:]))
            if exclusive_start_key is not None:
                start = _start_after(candidates, exclusive_start_key, sort_attrs, scan_index_forward)
            else:
                start = None
        except (KeyError, TypeError, AttributeError):  # data moto's own code reports (or fails on) in its way
            return Table._alleycat_unpatched_query(self, *args, projection_expressions, **kwargs)
        if scan_index_forward is False:
            candidates.reverse()
        if start is not None:
            candidates = candidates[start:]

        results: list[Any] = []
        result_size = 0
        scanned_count = 0
        last_evaluated_key = None
        for result in candidates:
            size = _item_size(result)
            if len(results) == limit or result_size + size > RESULT_SIZE_LIMIT:
                last_evaluated_key = self._get_last_evaluated_key(results[-1], index_name)
                break
            if not range_comparison:
                results.append(result)
                result_size += size
                scanned_count += 1
                continue
            if range_attr_for_comparison and result.attrs.get(range_attr_for_comparison):
                if result.attrs[range_attr_for_comparison].compare(range_comparison, range_objs):
                    results.append(result)
                    result_size += size
                    scanned_count += 1
            elif not index_name:
                if result.range_key.compare(range_comparison, range_objs):
                    results.append(result)
                    result_size += size
                    scanned_count += 1

        projects_all = index is None or (index.projection or {}).get("ProjectionType") in (None, "ALL")
        no_filter = filter_expression is None or type(filter_expression) is OpDefault  # OpDefault: no expression
        if projection_expressions and no_filter and projects_all:
            # moto deep-copies, then projects into new items: projecting alone gives the same items.
            return [_projected_item(r, projection_expressions) for r in results], scanned_count, last_evaluated_key
        results = copy.deepcopy(results)
        if index is not None:
            results = [index.project(r) for r in results]
        if filter_expression is not None:
            results = [item for item in results if filter_expression.expr(item)]
        if projection_expressions:
            results = [r.project(projection_expressions) for r in results]
        return results, scanned_count, last_evaluated_key

    Table.query = query
    Table._alleycat_unpatched_query = original_query  # for the tests that compare both
    Table._alleycat_query_patched = True


def _query_plan(
    table: Any,
    hash_key: Any,
    index_name: str | None,
    consistent_read: bool,
    hash_key_conditions: list[tuple[str, Any]] | None,
    range_key_conditions: list[tuple[str, str, list[Any]]] | None,
) -> tuple[Any, list[str], list[str | None], str | None] | None:
    """(index or None, hash attrs, range attrs, range attribute compared) as moto's query builds them, or
    ``None`` for a query the fast path leaves to moto."""
    from moto.dynamodb.models.table import GlobalSecondaryIndex

    if not table.range_key_attr or len(range_key_conditions or ()) > 1:
        return None
    last_range_key_name = range_key_conditions[-1][0] if range_key_conditions else None
    if not index_name:
        if hash_key is None:
            return None
        return None, [table.hash_key_attr], [table.range_key_attr], last_range_key_name
    index = next((i for i in table.all_indexes() if i.name == index_name), None)
    if index is None or (consistent_read and isinstance(index, GlobalSecondaryIndex)):
        return None  # moto's own error
    hash_keys = [key["AttributeName"] for key in index.schema if key["KeyType"] == "HASH"]
    range_keys = [key["AttributeName"] for key in index.schema if key["KeyType"] == "RANGE"]
    if len(hash_keys) != 1 or len(range_keys) != 1 or len(hash_key_conditions or ()) != 1:
        return None
    if hash_key_conditions[0][0] != hash_keys[0]:
        return None
    return (
        index,
        [hash_keys[0], table.hash_key_attr],
        [range_keys[0], table.range_key_attr],
        last_range_key_name or range_keys[0],
    )


def _query_candidates(table: Any, index: Any, hash_key: Any, hash_key_conditions: Any) -> list[Any]:
    """The items a query looks at: the partition of a table query; for an index, the items with its hash key
    value and a range key (a pass over the table without building a value per item)."""
    if index is None:
        partition = table.items.get(hash_key)
        return list(partition.values()) if partition else []
    ((name, expected),) = hash_key_conditions
    range_name = next(key["AttributeName"] for key in index.schema if key["KeyType"] == "RANGE")
    found = []
    # Snapshots (one C call each, under the GIL): a PutItem served by another thread cannot break the pass.
    partitions = [list(partition.values()) for partition in list(table.items.values())]
    if expected.type == "S":  # the common case, compared inline
        wanted = expected.value
        for partition in partitions:
            for item in partition:
                attrs = item.attrs
                value = attrs.get(name)
                if value is not None and value.value == wanted and value.type == "S" and range_name in attrs:
                    found.append(item)
        return found
    for partition in partitions:
        for item in partition:
            attrs = item.attrs
            value = attrs.get(name)
            if value is not None and _same_value(value, expected) and attrs.get(range_name) is not None:
                found.append(item)
    return found


def _start_after(items: list[Any], exclusive_start_key: dict[str, Any], sort_attrs: list[str], forward: bool) -> int:
    """Index (in query order) of the first item after ``ExclusiveStartKey``: moto's ``_item_comes_before_dct``
    with plain values. ``items`` are in ascending order."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    start = [_sort_value(DynamoType(exclusive_start_key[name])) for name in sort_attrs]
    ordered = items if forward else items[::-1]
    for position, item in enumerate(ordered):
        before = True
        for name, wanted in zip(sort_attrs, start, strict=True):
            value = item.attrs.get(name)
            if value is not None and _sort_value(value) != wanted:
                before = (_sort_value(value) < wanted) == forward
                break
        if not before:
            return position
    return len(items)


def _patch_dynamodb_items_response() -> None:
    """Write the items of an answer (Query's page, GetItem's item) with one call per item instead of one per value.

    moto 5.2 first copies every value into a plain dict (``dynamo_to_dict``, a chain of type checks per value),
    then its serializer visits each value of an item map through its botocore shape. Scalar values (S, N, BOOL,
    NULL) become their wire form directly and a map of attribute values is written in one step with
    ``_wire_attribute``; anything else takes moto's own path. Same JSON out, about 3 ms less for 100 results.
    """
    from moto.core.serialize import JSONSerializer
    from moto.dynamodb import responses
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict

    if getattr(responses, "_alleycat_items_patched", False):
        return
    original_to_dict = responses.dynamo_to_dict
    scalars = frozenset({"S", "N", "BOOL", "NULL"})
    mappings = (dict, LimitedSizeDict)

    def dynamo_to_dict(obj: Any) -> Any:
        kind = type(obj)
        if kind is DynamoType and obj.type in scalars and type(obj.value) in (str, bool):
            return {obj.type: obj.value}
        if kind in mappings:
            out = {}
            for key, value in obj.items():
                if type(value) is DynamoType and value.type in scalars and type(value.value) in (str, bool):
                    out[key] = {value.type: value.value}
                else:
                    out[key] = dynamo_to_dict(value)
            return out
        if kind is list:
            return [dynamo_to_dict(value) for value in obj]
        return original_to_dict(obj)

    original_map = JSONSerializer._serialize_type_map

    def serialize_map(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if getattr(shape.value, "name", None) == "AttributeValue" and all(v is not None for v in value.values()):
            wire = {}
            for name, v in value.items():
                # dynamo_to_dict's fresh {"S": text}, {"N": text}, {"BOOL": b}, {"NULL": True} is already wire form
                if type(v) is dict and len(v) == 1 and ("S" in v or "N" in v or "BOOL" in v or "NULL" in v):
                    inner = next(iter(v.values()))
                    if type(inner) is str or type(inner) is bool:
                        wire[name] = v
                        continue
                wire[name] = _wire_attribute(v)
            serialized[self.get_serialized_name(shape, key)] = wire
            return
        original_map(self, serialized, value, shape, key)

    responses.dynamo_to_dict = dynamo_to_dict
    JSONSerializer._serialize_type_map = serialize_map
    responses._alleycat_unpatched = (original_to_dict, original_map)  # for the tests that compare both
    responses._alleycat_patched = (dynamo_to_dict, serialize_map)
    responses._alleycat_items_patched = True


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

    DynamoDBBackend.update_item = update_item
    DynamoDBBackend._alleycat_simple_update = True


def _patch_kinesis_get_records_response() -> None:
    """Kinesis GetRecords answered with one ``json.dumps`` instead of moto's generic serializer.

    moto 5.2 turns each record into a dict (base64-decoding its data), then its serializer walks the
    botocore shape of every field of every record and base64-encodes the data again: about as much
    time as everything else of a 1,000-record GetRecords, which the aggregator and Firehose each call
    every second. The stored data is already the base64 text the producer sent, so it goes out as is;
    the answer has moto's fields and formats (``ApproximateArrivalTimestamp`` in epoch seconds,
    ``MillisBehindLatest``; ``NextShardIterator`` left out at the end of a closed shard). Errors
    (expired or bad iterator) are raised by moto's backend as before.
    """
    from moto.core.serialize import TimestampSerializer
    from moto.kinesis.responses import KinesisResponse

    if getattr(KinesisResponse, "_alleycat_patched", False):
        return
    epoch = TimestampSerializer._timestamp_unixtimestamp  # moto's own: epoch seconds, milliseconds kept

    def data_text(data: Any) -> str:
        return data if isinstance(data, str) else base64.b64encode(base64.b64decode(data)).decode()

    def get_records(self: Any) -> tuple[str, dict[str, Any]]:
        next_iterator, records, behind = self.kinesis_backend.get_records(
            self._get_param("StreamARN"), self._get_param("ShardIterator"), self._get_param("Limit")
        )
        answer: dict[str, Any] = {
            "Records": [
                {
                    "Data": data_text(record.data),
                    "PartitionKey": record.partition_key,
                    "SequenceNumber": str(record.sequence_number),
                    "ApproximateArrivalTimestamp": epoch(record.created_at_datetime),
                }
                for record in records
            ],
            "MillisBehindLatest": behind,
        }
        if next_iterator is not None:
            answer["NextShardIterator"] = next_iterator
        return json.dumps(answer), {"status": 200, "Content-Type": "application/x-amz-json-1.1"}

    KinesisResponse.get_records = get_records
    KinesisResponse._alleycat_patched = True


def _patch_dynamodb_streams_get_records_response() -> None:
    """DynamoDB Streams GetRecords answered with one ``json.dumps`` instead of moto's generic serializer.

    The records are moto's own dicts (``StreamRecord.to_json``: images already in DynamoDB JSON); each
    image value goes out through ``_wire_attribute`` and ``ApproximateCreationDateTime`` in epoch
    seconds as moto writes it. In a 1,000-racer race history rewrites a per-second item of every
    racer every Firehose object, each with both images of up to an hour of seconds, and finals and
    publisher each read all of them: the generic serializer walked every attribute of every image.
    """
    from moto.core.serialize import TimestampSerializer
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    if getattr(DynamoDBStreamsHandler, "_alleycat_patched", False):
        return
    epoch = TimestampSerializer._timestamp_unixtimestamp

    def image(attributes: dict[str, Any]) -> dict[str, Any]:
        return {name: _wire_attribute(value) for name, value in attributes.items()}

    def record_json(record: dict[str, Any]) -> dict[str, Any]:
        source = record["dynamodb"]
        dynamodb = dict(source)
        when = source.get("ApproximateCreationDateTime")
        if when is not None and not isinstance(when, int | float):
            dynamodb["ApproximateCreationDateTime"] = epoch(when)
        for name in ("Keys", "NewImage", "OldImage"):
            if name in source:
                dynamodb[name] = image(source[name])
        return {**record, "dynamodb": dynamodb}

    def get_records(self: Any) -> tuple[str, dict[str, Any]]:
        limit = self._get_param("Limit")
        result = self.backend.get_records(self._get_param("ShardIterator"), 1000 if limit is None else limit)
        answer = {
            "NextShardIterator": result["NextShardIterator"],
            "Records": [record_json(record) for record in result["Records"]],
        }
        return json.dumps(answer), {"status": 200, "Content-Type": "application/x-amz-json-1.0"}

    DynamoDBStreamsHandler.get_records = get_records
    DynamoDBStreamsHandler._alleycat_patched = True


def _patch_dispatcher() -> None:
    """Remember which backend serves a host: moto 5.2 finds it again on every request, under one lock.

    ``DomainDispatcherApplication.get_backend_for_host`` lists moto's package directory (``os.listdir``
    plus an ``isdir`` per entry, ~200 system calls) for each request before matching the URL patterns,
    while holding the dispatcher's lock, so every request of every service queues behind it. The
    answer depends on the host string alone and moto's modules do not change while it runs.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    if getattr(DomainDispatcherApplication, "_alleycat_patched", False):
        return
    original = DomainDispatcherApplication.get_backend_for_host
    backends: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        try:
            return backends[host]
        except KeyError:
            backend = backends[host] = original(self, host)
            return backend

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host
    DomainDispatcherApplication._alleycat_patched = True


def main(argv: Sequence[str] | None = None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    port = int(args[0] if args else os.environ.get("ALLEYCAT_AWS_PORT") or DEFAULT_PORT)
    patch_moto()
    _patch_dispatcher()
    _patch_dynamodb_simple_update()
    _patch_kinesis_get_records_response()
    _patch_dynamodb_streams_get_records_response()
    import logging

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    # One access-log line per request would drown the console of ``make run``.
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    os.environ.setdefault("MOTO_PORT", str(port))
    signal.signal(signal.SIGTERM, _exit_after_grace)
    print(f"embedded AWS endpoint (moto) on http://{HOST}:{port}", flush=True)
    run_simple(
        HOST, port, DomainDispatcherApplication(create_backend_app), threaded=True, request_handler=MotoRequestHandler
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
