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
- retention: moto keeps every Kinesis record and every table-stream record for ever (built for short
  unit tests); here records older than ``ALLEYCAT_MOTO_RETENTION_SECONDS`` (default 900) leave the
  Kinesis shards and the table streams, and a table stream keeps at most its newest
  ``ALLEYCAT_MOTO_TABLE_STREAM_RECORDS`` (default 20000), as the real services' retention does (24 h
  there), so that a run of hours has bounded memory. A reader positioned before the oldest kept
  record continues at the oldest one (TRIM_HORIZON semantics). Why 15 minutes: at 1,000 racers the
  Kinesis records of an hour took ~3 GB, and a live item's stream record (both images of a ~70 KB
  board) ~190 KB; the local readers are seconds behind, and a stack stopped for longer than that
  resumes from its checkpoints with whatever is still kept (the journal replays the trims too).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import threading
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

    _bounded_noncurrent_versions(_int_env("ALLEYCAT_MOTO_NONCURRENT_VERSIONS", 3))
    _untracked_records()
    replace(Shard, "put_record", put_record)
    replace(Stream, "get_shard_for_key", get_shard_for_key)
    replace(StreamShard, "add", add)
    replace(StreamShard, "get", get)
    replace(Shard, "_alleycat_fixed", True)


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


def _untracked_new(cls: type, *_args: Any, **_kwargs: Any) -> Any:
    return object.__new__(cls)


def _untracked_records() -> None:
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import StreamRecord
    from moto.kinesis.models import Record

    for model in (Record, Item, StreamRecord):
        replace(model, "__new__", staticmethod(_untracked_new))
