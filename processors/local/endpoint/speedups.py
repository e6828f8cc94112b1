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
Measured and dropped, no figure moved without them: a cache of moto's dispatcher's backend lookup
and Kinesis GetRecords written with one ``json.dumps`` (endpoint CPU 52 s vs 51 s), both at 1,000
racers — both came back for 10,000 racers, where they do move the figures (``_backend_names_once``,
``_kinesis_json_answers``); a projection of top-level scalar attributes copied without moto's JSON
round trip (a results page of 1,000 items: moto's CPU 152-159 ms vs 269-294 ms, but the figure it
was for, the 2,000-racer race's results read through the API, went 5.0-5.4 s -> 5.8 s: the finals'
writes set it); DynamoDB Streams GetRecords likewise (it served the per-second items of history,
which no table-stream reader wants: moving those items out of the streamed table is the cure). Removed when
its target went: UpdateItem ``SET #a = :a, ...`` without moto's expression validator, for history's
one UpdateItem per racer per object, which became one BatchWriteItem per 25 racers; every UpdateItem
left carries a condition, which that path never took.
"""

from __future__ import annotations

import base64
import logging
import os
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


_INDEX = object()  # a query of an index: any partition of the table may hold a match


def _patch_dynamodb_query_scope() -> None:
    """Query reads the one partition it asks for; an index query scans the table without sorting it first.

    moto 5.2 answers every Query from ``Table.all_items()``: every item of the table, sorted by
    key (Python comparisons of ``DynamoType``), then filtered, then sorted again by the keys that
    matter (``Table.query``). The first sort decides nothing: the second orders the matches
    completely (the index's keys, then the table's, which are unique). Here, for the duration of
    a ``Table.query`` call on this thread, ``all_items`` gives a base-table query the items of its
    partition only and an index query every item unsorted; everything else (matching, order,
    pages, limits, errors) is moto's code. Scans and exports still get the sorted table.

    Figure (a whole 1,000-racer race with the outside producer, the second race of a ``make run``,
    2,208 items in the table, load ~4): the aggregator's per-window settle check (one index Query
    of the races due, one Query of the shards' watermarks) took 860 ms and 1,120 ms, the aggregator
    fell 305 s behind and no result was complete 300 s after the race. On an idle endpoint with 3,000
    result items the same two Queries take 15 ms and 5 ms with it, 35 ms and 31 ms without (medians
    of 7); the whole race again with it: bench/README.md, "An outside producer against make run".
    """
    import threading

    from moto.dynamodb.models.table import Table

    if getattr(Table, "_alleycat_query_scope", False):
        return
    original_query = Table.query
    original_all_items = Table.all_items
    scope = threading.local()

    def all_items(self: Any) -> list:
        wanted = getattr(scope, "key", None)
        if wanted is None or getattr(scope, "table", None) is not self:
            return original_all_items(self)
        if wanted is _INDEX:
            if self.range_key_attr:
                return [item for partition in self.items.values() for item in partition.values()]
            return list(self.items.values())
        partition = self.items.get(wanted)
        if partition is None:
            return []
        return list(partition.values()) if self.range_key_attr else [partition]

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs["index_name"] if "index_name" in kwargs else (args[6] if len(args) > 6 else None)
        scope.table, scope.key = self, (_INDEX if index_name else hash_key)
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            scope.table = scope.key = None

    replace(Table, "all_items", all_items)
    replace(Table, "query", query)
    replace(Table, "_alleycat_query_scope", True)


def _kinesis_json_answers() -> None:
    """Kinesis GetRecords and PutRecords answered with one orjson write of what moto's backend returns.

    moto 5.2 writes every answer through its generic serializer, which walks the botocore shape of
    each member of each record (attribute pickers, a timestamp conversion, and for GetRecords a
    base64 decode by ``Record.to_json`` then an encode again of the data moto keeps as base64).
    Here the answer is the same JSON: a record's ``Data`` as moto stores it (the request's base64),
    its arrival in epoch seconds truncated to milliseconds as moto's ``unixtimestamp`` writes it
    (whole seconds + milliseconds / 1000, from the record's datetime), and the backend's PutRecords
    entries as they are. Errors are moto's (raised by the backend as before).

    Figure (10,000 racers x 60 s, 4 shards, bench/README.md "10,000 racers faster than real time"):
    without it the endpoint spends 3.7x the CPU (80.5 s vs 21.5 s) and the 60 race seconds take
    96 s instead of 41 s (0.62x real time instead of 1.45x). At 1,000 racers no figure moved when
    only GetRecords was written so (endpoint CPU 52 s vs 51 s, an earlier measurement): the cost
    is per record, and 10,000 racers put ten times the records through both calls.
    """
    import datetime

    import orjson
    from moto.kinesis.responses import KinesisResponse

    headers = {"Content-Type": "application/x-amz-json-1.1"}
    epoch = datetime.datetime(1970, 1, 1)  # moto's record times are naive UTC
    millisecond = datetime.timedelta(milliseconds=1)

    def arrival(record: Any) -> int | float:
        moment = record.created_at_datetime
        seconds, milliseconds = divmod((moment - epoch) // millisecond, 1000)
        return seconds + milliseconds / 1000.0 if moment.microsecond else seconds

    def get_records(self: Any) -> tuple[int, dict, bytes]:
        next_iterator, records, behind = self.kinesis_backend.get_records(
            self._get_param("StreamARN"), self._get_param("ShardIterator"), self._get_param("Limit")
        )
        answer = {
            "NextShardIterator": next_iterator,
            "Records": [
                {
                    "Data": record.data,
                    "PartitionKey": record.partition_key,
                    "SequenceNumber": str(record.sequence_number),
                    "ApproximateArrivalTimestamp": arrival(record),
                }
                for record in records
            ],
            "MillisBehindLatest": behind,
        }
        if next_iterator is None:
            del answer["NextShardIterator"]
        return 200, dict(headers), orjson.dumps(answer)

    def put_records(self: Any) -> tuple[int, dict, bytes]:
        answer = self.kinesis_backend.put_records(
            self._get_param("StreamARN"), self._get_param("StreamName"), self._get_param("Records")
        )
        return 200, dict(headers), orjson.dumps(answer)

    replace(KinesisResponse, "get_records", get_records)
    replace(KinesisResponse, "put_records", put_records)


def _xml_request_ids_only() -> None:
    """The request id is put into XML answers only: JSON answers are not searched for ``<RequestId>``.

    moto 5.2 runs ``re.sub(r"(?<=<RequestId>).*(?=</RequestId>)", ...)`` over every answer's body,
    a look-behind at each character of a JSON body that cannot match. Here the substitution runs
    only when the body holds ``<RequestId>``; the ``x-amzn-requestid`` header is set as before.
    (Kinesis answers are bytes now, which the ``re.sub`` refuses at once; what is left are the
    DynamoDB answers: table-stream images of the board parts, BatchGetItem of the standings.)

    Figure (10,000 racers x 60 s, 4 shards, three runs each way interleaved with the others, see
    bench/README.md "10,000 racers faster than real time"): without it the endpoint spends 24.3,
    24.7 and 28.8 s of CPU against 21.5-23.0 s with every speedup; without it and the next one
    25.8 and 27.1 s. Real time held either way (1.15-1.36x without it, 1.36-1.45x with).
    """
    from moto.core.responses import BaseResponse

    original = BaseResponse._enrich_response

    def enrich_response(headers: dict[str, str], body: Any) -> tuple[dict[str, str], Any]:
        if isinstance(body, str) and "<RequestId>" in body:
            return original(headers, body)
        return original(headers, "")[0], body

    replace(BaseResponse, "_enrich_response", staticmethod(enrich_response))


def _backend_names_once() -> None:
    """moto's server lists its own package's directories once, not on every request.

    ``DomainDispatcherApplication.get_backend_for_host`` asks ``backends.list_of_moto_modules()``
    whether the request's host is a backend name: a ``listdir`` and ~180 ``isdir`` calls of moto's
    package directory per request, which never changes while the server runs.

    Figure (as above): without it the endpoint spends 24.4, 24.9 and 25.7 s of CPU against
    21.5-23.0 s with every speedup (about a tenth; every request paid the listing);
    real time held either way (1.33-1.39x without it). At 1,000 racers a cache of the same lookup
    moved no figure (below).
    """
    from moto import backends

    names = tuple(backends.list_of_moto_modules())
    replace(backends, "list_of_moto_modules", lambda: iter(names))


SPEEDUPS: dict[str, Callable[[], None]] = {
    "linear_kinesis_shards": _linear_kinesis_shards,
    "attribute_value_serialisation": _patch_attribute_value_serialisation,
    "dynamodb_query_scope": _patch_dynamodb_query_scope,
    "kinesis_json_answers": _kinesis_json_answers,
    "xml_request_ids_only": _xml_request_ids_only,
    "backend_names_once": _backend_names_once,
}
