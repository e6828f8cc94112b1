"""Fixes of moto's behaviour, always applied: without them the local pipeline loses or keeps records.

Each fix names the moto behaviour it works around, as of moto 5.2.5 (the pinned version): at each
upgrade of the pin, check whether moto still behaves so. ``tests/processors/local/test_endpoint.py``
checks them through the server (concurrent puts keep every record; new records go to open shards
after resharding; records older than a retention of seconds leave both kinds of stream).

- ``put_record``: moto numbers a Kinesis record "newest + 1" without a lock, so two PutRecords calls
  served by two threads at once can get the same sequence number and one record silently replaces
  the other (moto's ``Shard.put_record``; its server serves requests in threads).
- ``get_shard_for_key``: after UpdateShardCount moto routes keys to the first shard whose hash range
  matches — the *closed* parent, where no reader looks any more — and misses the last hash key of
  every range (``Stream.get_shard_for_key`` compares with ``<`` against ``ending_hash``).
- resharding: moto's split moves the parent's records into the children and its merge copies
  them, so readers see every earlier record twice; here parents keep their records
  (``_parents_keep_their_records``).
- noncurrent versions: moto keeps every version of an object in a versioned bucket for ever (it
  applies no lifecycle rule); the history bucket gets a new version of ``class-<id>.json.gz`` (a few
  MB at 1,000 racers) for every delivered object, ~12 MB a minute in a 1,000-racer race. Here a
  put keeps the newest ``ALLEYCAT_MOTO_NONCURRENT_VERSIONS`` (default 3) noncurrent versions of its
  key, as the template's ``NoncurrentVersionExpiration`` would (after days, there).
- instance tracking: moto appends every model object it creates to a list on its class
  (``BaseModel.__new__``, ``instances_tracked``, for its dashboard), so no Kinesis record, table item
  or table-stream record is ever freed, whatever is trimmed or overwritten: the endpoint grew by
  ~0.7 KB per record put (2.8 GB after 30 minutes of 1,000 racers). Here those three kinds are not
  tracked (they are the ones a run creates by the million; the dashboard does not list them).
- transactions: moto deep-copies every table a TransactWriteItems names, to roll back, which costs
  0.3 s a transaction at 1,000 items and fails when another thread writes meanwhile; here the
  conditions are checked first and every DynamoDB write takes one lock (``_atomic_transactions``).
- Kinesis metrics: moto's PutRecords also puts two data points (IncomingBytes, IncomingRecords)
  into its CloudWatch backend, kept for ever (7,458 after 30 minutes of 1,000 racers); nothing here
  reads CloudWatch (the runner's status file has the pipeline's figures), so they are not put
  (``_no_kinesis_metric_data``).
- table-stream iterators: moto keeps every one it hands out (one per GetRecords) for ever; here
  they expire after 15 minutes as on AWS (``_expiring_table_stream_iterators``).
- retention: moto keeps every Kinesis record and every table-stream record for ever (built for short
  unit tests); here records older than ``ALLEYCAT_MOTO_RETENTION_SECONDS`` (default 900) leave the
  Kinesis shards and the table streams, and a table stream keeps at most its newest
  ``ALLEYCAT_MOTO_TABLE_STREAM_RECORDS`` (default 20000), as the real services' retention does (24 h
  there), so that a run of hours has bounded memory. A reader positioned before the oldest kept
  record continues at the oldest one (TRIM_HORIZON semantics). Why 15 minutes: at 1,000 racers the
  Kinesis records of an hour took ~3 GB, and a live item's stream record (both images of a ~70 KB
  board) ~190 KB; the local readers are seconds behind, and a stack stopped for longer than that
  resumes from its checkpoints with whatever is still kept (the journal replays the trims too).
- object bodies: moto keeps every S3 object's body in memory (a ``SpooledTemporaryFile`` that moves
  to disk only past ~5 MB); the delivery bucket gets every Firehose object (~3 MB a minute at 1,000
  racers, kept for ``DeliveryRetentionDays`` on AWS), so the endpoint grew with every minute of
  racing. With a state directory (``make run``) bodies of ``ALLEYCAT_MOTO_BODY_SPILL_BYTES`` (default
  64 KiB) and more live in files of their own under ``<state>/bodies/``, opened per read and write
  (no file descriptor held per object); smaller ones stay in memory (``keep_object_bodies_on_disk``).
"""

from __future__ import annotations

import datetime
import hashlib
import io
import itertools
import os
import shutil
import threading
import weakref
from pathlib import Path
from typing import Any

from processors.local.endpoint import replace

_TRIM_EVERY = 500


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def apply() -> None:
    from moto.core import utils
    from moto.dynamodb.models.table import StreamShard
    from moto.kinesis.exceptions import InvalidArgumentError
    from moto.kinesis.models import Shard, Stream

    if getattr(Shard, "_alleycat_fixed", False):
        return
    retention = _int_env("ALLEYCAT_MOTO_RETENTION_SECONDS", 900)
    stream_records = _int_env("ALLEYCAT_MOTO_TABLE_STREAM_RECORDS", 20_000)
    original_put = Shard.put_record
    put_lock = threading.Lock()

    def put_record(self: Any, partition_key: str, data: str, explicit_hash_key: str) -> str:
        with put_lock:
            sequence = original_put(self, partition_key, data, explicit_hash_key)
        if int(sequence) % _TRIM_EVERY == 0:
            cutoff = utils.unix_time() - retention  # moto's clock: the same again when a journal is replayed
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

    original_add = StreamShard.add

    def add(self: Any, old: Any, new: Any) -> None:
        original_add(self, old, new)
        cutoff = utils.utcnow() - datetime.timedelta(seconds=retention)  # moto's clock, as above
        excess = max(0, len(self.items) - stream_records)
        while (
            excess < len(self.items) - 1
            and self.items[excess].record["dynamodb"]["ApproximateCreationDateTime"] < cutoff
        ):
            excess += 1
        if excess > 0:
            del self.items[:excess]
            self.starting_sequence_number += excess

    def get(self: Any, start: int, quantity: int) -> list[dict]:
        # moto indexes its list with ``start - starting_sequence_number``: after trimming, a position
        # before the oldest kept record would be a negative index (records from the end).
        offset = max(0, start - self.starting_sequence_number)
        return [item.to_json() for item in self.items[offset : offset + quantity]]

    _parents_keep_their_records(Stream)
    _bounded_noncurrent_versions(_int_env("ALLEYCAT_MOTO_NONCURRENT_VERSIONS", 3))
    _untracked_records()
    _atomic_transactions()
    _no_kinesis_metric_data()
    replace(Shard, "put_record", put_record)
    replace(Stream, "get_shard_for_key", get_shard_for_key)
    replace(StreamShard, "add", add)
    replace(StreamShard, "get", get)
    replace(Shard, "_alleycat_fixed", True)


def _parents_keep_their_records(stream_class: Any) -> None:
    """Resharding leaves a parent shard's records where they are, as Kinesis does.

    moto's ``split_shard`` moves every record of the parent into the children (put again: new
    sequence numbers, new arrival times) and its ``merge_shards`` copies both parents' records into
    the child, so a reader that finishes the parents and then reads the children from their
    horizon gets every earlier record a second time: a 1,000-racer race resharded from 2 to 4
    shards at its 150th second had the aggregator read 494,000 records for 330,000 put, and fall
    96 s behind. Here the parents keep their records and the children start empty.
    """
    from collections import OrderedDict

    def hiding_records(original: Any, *names: str) -> Any:
        def reshard(self: Any, *args: Any, **kwargs: Any) -> Any:
            ids = [*args[: len(names)], *(kwargs[name] for name in names[len(args) :] if name in kwargs)]
            shards = [self.shards[shard_id] for shard_id in ids if shard_id in self.shards]
            kept = [(shard, shard.records) for shard in shards]
            for shard in shards:
                shard.records = OrderedDict()  # nothing for moto to move or copy
            try:
                return original(self, *args, **kwargs)
            finally:
                for shard, records in kept:
                    shard.records = records

        return reshard

    replace(stream_class, "split_shard", hiding_records(stream_class.split_shard, "shard_to_split"))
    replace(
        stream_class,
        "merge_shards",
        hiding_records(stream_class.merge_shards, "shard_to_merge", "adjacent_shard_to_merge"),
    )


def _bounded_noncurrent_versions(keep: int) -> None:
    from moto.s3.models import S3Backend

    original = S3Backend.put_object

    def put_object(self: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        new_key = original(self, bucket_name, key_name, *args, **kwargs)
        bucket = self.get_bucket(bucket_name)
        if bucket.is_versioned:
            versions = bucket.keys.getlist(key_name, [])
            if len(versions) > keep + 1:
                bucket.keys.setlist(key_name, versions[-(keep + 1) :])  # moto disposes of the others
        return new_key

    replace(S3Backend, "put_object", put_object)


def _no_kinesis_metric_data() -> None:
    from moto.kinesis.models import KinesisBackend

    def send_stream_metrics(self: Any, stream_name: str, incoming_bytes: int, incoming_records: int) -> None:
        return None

    replace(KinesisBackend, "_send_stream_metrics", send_stream_metrics)


def _untracked_new(cls: type, *_args: Any, **_kwargs: Any) -> Any:
    return object.__new__(cls)


def _untracked_records() -> None:
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import StreamRecord
    from moto.dynamodbstreams.models import ShardIterator
    from moto.kinesis.models import Record

    for model in (Record, Item, StreamRecord, ShardIterator):
        replace(model, "__new__", staticmethod(_untracked_new))
    _expiring_table_stream_iterators()


def _expiring_table_stream_iterators() -> None:
    """A table-stream shard iterator expires ``ALLEYCAT_MOTO_ITERATOR_SECONDS`` (default 900: 15 minutes,
    as on AWS) after it is handed out; GetRecords with an expired one answers ExpiredIteratorException.

    moto keeps every iterator it ever returned (``DynamoDBStreamsBackend.shard_iterators``), and
    each GetRecords returns a new one: the runner's table-stream readers poll a few times a second,
    ~12,000 iterators (~1.5 KB each) in 30 minutes, never freed.
    """
    from moto.core import utils
    from moto.core.exceptions import JsonRESTError
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend, ShardIterator

    lifetime = _int_env("ALLEYCAT_MOTO_ITERATOR_SECONDS", 900)
    original_init = ShardIterator.__init__

    def __init__(self: Any, streams_backend: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, streams_backend, *args, **kwargs)
        self.alleycat_created = now = utils.unix_time()
        iterators = streams_backend.shard_iterators  # in the order they were handed out
        while iterators:
            oldest = next(iter(iterators))
            if now - getattr(iterators[oldest], "alleycat_created", 0.0) < lifetime:
                break
            del iterators[oldest]

    def get_records(self: Any, iterator_arn: str, limit: int) -> dict[str, Any]:
        iterator = self.shard_iterators.get(iterator_arn)
        if iterator is None or utils.unix_time() - getattr(iterator, "alleycat_created", 0.0) >= lifetime:
            raise JsonRESTError("ExpiredIteratorException", "Iterator expired. The iterator was created too long ago.")
        return iterator.get(limit)

    replace(ShardIterator, "__init__", __init__)
    replace(DynamoDBStreamsBackend, "get_records", get_records)


def _atomic_transactions() -> None:
    """TransactWriteItems checks every condition first and writes only if all hold, under one lock that
    every DynamoDB write takes.

    moto copies (``copy.deepcopy``) every table a transaction names before it writes, to put the copy
    back if an action fails. That copy is of the whole table with its stream records: 0.3 s for a
    transaction at 1,000 items, growing with the table (finals sends 20 at a 1,000-racer race's end,
    into a table of every race so far), and it is not thread-safe: a write served by another thread
    meanwhile fails the copy (``dictionary changed size during iteration``, a 500). Here the actions'
    targets are read and their conditions evaluated first (DynamoDB's answer if one fails: the
    cancellation reasons, nothing written); then the actions are applied. An action that fails while
    being applied (an item too large, say) puts back the items already written and drops the stream
    records they added, so the transaction stays all or nothing. The lock makes check-then-write one
    step for other writers too (moto's own conditional writes check and write without one).
    """
    import copy

    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()

    def locked(original: Any) -> Any:
        def write(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return original(self, *args, **kwargs)

        return write

    for name in ("put_item", "update_item", "delete_item"):
        replace(DynamoDBBackend, name, locked(getattr(DynamoDBBackend, name)))

    def check(self: Any, item: dict[str, Any], targets: set[tuple[str, str]]) -> tuple[str, dict, Any, dict, Any]:
        """(kind, action, table, key, the item now) of one action whose condition holds."""
        if len(item) > 1:
            raise TransactWriteSingleOpException
        kind, action = next(iter(item.items()))
        if kind not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise ValueError("Unsupported transaction operation")
        table = self.get_table(action["TableName"])
        if kind == "Put":
            attributes = action["Item"]
            key = {table.hash_key_attr: attributes[table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attributes[table.range_key_attr]
        else:
            key = action["Key"]
        target = (str(action["TableName"]), str(dict(sorted(key.items()))))
        if target in targets:
            raise MultipleTransactionsException()
        targets.add(target)
        current = self.get_item(action["TableName"], key)
        condition = action.get("ConditionExpression")
        if condition is not None:
            holds = get_filter_expression(
                condition, action.get("ExpressionAttributeNames"), action.get("ExpressionAttributeValues")
            ).expr(current)
            if not holds:
                old = None
                if action.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    old = current.to_json()["Attributes"]
                failed = ConditionalCheckFailed(item=old)
                failed.alleycat_old = old  # type: ignore[attr-defined]  # for the cancellation reason
                raise failed
        # An update changes the item in place: keep a copy to put back. A put or delete replaces it.
        return kind, action, table, key, copy.deepcopy(current) if kind == "Update" else current

    def apply_action(self: Any, kind: str, action: dict[str, Any], key: dict[str, Any]) -> None:
        if kind == "Put":
            self.put_item(action["TableName"], action["Item"])
        elif kind == "Delete":
            self.delete_item(action["TableName"], key)
        elif kind == "Update":
            self.update_item(
                action["TableName"],
                key,
                update_expression=action["UpdateExpression"],
                expression_attribute_names=action.get("ExpressionAttributeNames"),
                expression_attribute_values=action.get("ExpressionAttributeValues"),
            )

    def put_back(self: Any, applied: list[tuple[Any, dict, Any]], streams: dict[int, tuple[Any, int]]) -> None:
        for table, key, before in reversed(applied):
            hash_value, range_value = self.get_keys_value(table, key)
            if range_value is not None:
                if before is None:
                    table.items[hash_value].pop(range_value, None)
                else:
                    table.items[hash_value][range_value] = before
            elif before is None:
                table.items.pop(hash_value, None)
            else:
                table.items[hash_value] = before
        for shard, written_before in streams.values():  # records ever added = trimmed + kept
            del shard.items[max(0, written_before - shard.starting_sequence_number) :]

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        with lock:
            planned = []
            errors: list[tuple[Any, Any, Any]] = []
            targets: set[tuple[str, str]] = set()
            for item in transact_items:
                try:
                    planned.append(check(self, item, targets))
                    errors.append((None, None, None))
                except (MultipleTransactionsException, MockValidationException, TransactWriteSingleOpException):
                    raise
                except ConditionalCheckFailed as exc:
                    errors.append(("ConditionalCheckFailed", str(exc.message), getattr(exc, "alleycat_old", None)))
                except Exception as exc:  # noqa: BLE001 - moto reports any other failure as the action's reason
                    errors.append((type(exc).__name__, str(exc), None))
            if any(code is not None for code, _, _ in errors):
                raise TransactionCanceledException(errors)
            streams = {
                id(shard): (shard, shard.starting_sequence_number + len(shard.items))
                for _, _, table, _, _ in planned
                if (shard := table.stream_shard) is not None
            }
            applied: list[tuple[Any, dict, Any]] = []
            for index, (kind, action, table, key, before) in enumerate(planned):
                try:
                    apply_action(self, kind, action, key)
                except Exception as exc:
                    put_back(self, applied, streams)
                    if isinstance(exc, MockValidationException):
                        raise
                    reasons: list[tuple[Any, Any, Any]] = [(None, None, None)] * len(planned)
                    reasons[index] = (type(exc).__name__, str(exc), None)
                    raise TransactionCanceledException(reasons) from exc
                if kind != "ConditionCheck":
                    applied.append((table, key, before))

    replace(DynamoDBBackend, "transact_write_items", transact_write_items)


class SpilledBody:
    """The file-like body of one moto S3 object (what moto's ``FakeKey`` reads, writes and closes).

    In memory below ``threshold`` bytes; from there on in a file of its own, opened for each call, so
    a million objects hold no file descriptor. The file goes when the body is closed (moto disposes
    of a deleted or replaced object) or freed. A body whose file is gone reads as empty: that happens
    only in a snapshot's forked child when the server deleted the object meanwhile, and the journal
    after the snapshot deletes it again on replay.
    """

    _names = itertools.count()

    def __init__(self, directory: Path, threshold: int) -> None:
        self._directory = directory
        self._threshold = threshold
        self._memory: io.BytesIO | None = io.BytesIO()
        self._path: Path | None = None
        self._position = 0
        self._finalizer: weakref.finalize | None = None

    def seek(self, position: int, whence: int = 0) -> int:
        if whence == 2:
            position += self._size()
        elif whence == 1:
            position += self._position
        self._position = position
        return position

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1) -> bytes:
        if self._memory is not None:
            self._memory.seek(self._position)
            data = self._memory.read(size)
        else:
            try:
                with open(self._path, "rb") as file:  # type: ignore[arg-type]
                    file.seek(self._position)
                    data = file.read(size)
            except FileNotFoundError:
                data = b""
        self._position += len(data)
        return data

    def write(self, data: bytes) -> int:
        if self._memory is not None:
            self._memory.seek(self._position)
            self._memory.write(data)
            self._position += len(data)
            if self._size() >= self._threshold:
                self._to_file()
            return len(data)
        with open(self._path, "r+b") as file:  # type: ignore[arg-type]
            file.seek(self._position)
            file.write(data)
        self._position += len(data)
        return len(data)

    def truncate(self, size: int | None = None) -> int:
        size = self._position if size is None else size
        if self._memory is not None:
            return self._memory.truncate(size)
        with open(self._path, "r+b") as file:  # type: ignore[arg-type]
            return file.truncate(min(size, file.seek(0, 2)))  # never longer, as an in-memory body

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._memory = io.BytesIO()
        self._path = self._finalizer = None

    @property
    def on_disk(self) -> bool:
        return self._path is not None

    def _size(self) -> int:
        if self._memory is not None:
            with self._memory.getbuffer() as view:
                return view.nbytes
        return os.path.getsize(self._path)  # type: ignore[arg-type]

    def _to_file(self) -> None:
        # (made here, not once: persistence.restore may move the state directory aside before replaying)
        self._directory.mkdir(parents=True, exist_ok=True)
        path = self._directory / f"{os.getpid()}-{next(self._names)}"
        path.write_bytes(self._memory.getvalue())  # type: ignore[union-attr]
        self._memory, self._path = None, path
        self._finalizer = weakref.finalize(self, _unlink, path)  # (a snapshot's child leaves by os._exit)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def keep_object_bodies_on_disk(directory: Path) -> None:
    """S3 object bodies from ``ALLEYCAT_MOTO_BODY_SPILL_BYTES`` up in files under ``directory`` (emptied
    first: the snapshot and the journal hold every body; these files are only their resident copy)."""
    import types

    from moto.s3 import models

    threshold = _int_env("ALLEYCAT_MOTO_BODY_SPILL_BYTES", 64 * 1024)
    shutil.rmtree(directory, ignore_errors=True)

    def spooled(*_args: Any, **_kwargs: Any) -> SpilledBody:
        return SpilledBody(directory, threshold)

    replace(models, "tempfile", types.SimpleNamespace(SpooledTemporaryFile=spooled))
