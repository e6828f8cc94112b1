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
- records older than ``ALLEYCAT_MOTO_RETENTION_SECONDS`` (default 3600) leave the Kinesis shards,
  and a table stream keeps its newest ``ALLEYCAT_MOTO_TABLE_STREAM_RECORDS`` (default 20000)
  records, as the real services' retention does, so memory stays bounded.

Sequence numbers, iterators and responses keep moto's formats; a reader positioned before the
oldest kept record continues at the oldest one (TRIM_HORIZON semantics).
"""

from __future__ import annotations

import base64
import hashlib
import os
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


def main(argv: Sequence[str] | None = None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    port = int(args[0] if args else os.environ.get("ALLEYCAT_AWS_PORT") or DEFAULT_PORT)
    patch_moto()
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
