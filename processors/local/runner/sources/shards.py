"""Reading every shard of a stream, resharding included (the adapters: :mod:`.kinesis`, :mod:`.dynamodb`).

:class:`ShardSet` keeps one cursor per shard, lists shards again every few seconds (and at once
when a shard has been read to its end) to find shards created by resharding (UpdateShardCount,
SplitShard, MergeShards, DynamoDB's shard rollover), and reads a child only after its parents are
read to their end, as Lambda does, so that the records of one partition key stay in order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from botocore.exceptions import ClientError

SHARD_LIST_SECONDS = 5.0


@dataclass(frozen=True)
class ShardInfo:
    shard_id: str
    parents: tuple[str, ...]
    closed: bool


class StreamAdapter(Protocol):
    kind: str  # "kinesis" | "dynamodb"
    arn: str
    identity: str  # changes when the stream is deleted and created again

    def list_shards(self) -> list[ShardInfo]: ...

    def iterator(self, shard_id: str, after: str | None, starting_position: str) -> str: ...

    def get_records(self, iterator: str, limit: int) -> tuple[list[dict], str | None, int | None]: ...

    @staticmethod
    def sequence(raw: dict) -> str: ...

    @staticmethod
    def arrival(raw: dict) -> float: ...


@dataclass
class ShardCursor:
    """Reading position in one shard. ``position`` is the last sequence number read (in memory)."""

    shard_id: str
    parents: tuple[str, ...] = ()
    closed: bool = False
    position: str | None = None
    iterator: str | None = None
    drained: bool = False  # read to the end of a closed shard
    finished: bool = False  # drained and everything read is processed (checkpointed)
    lag_ms: int = 0


class ShardSet:
    """The shards of one stream for one consumer, with parent-before-child ordering."""

    def __init__(self, stream: StreamAdapter, *, starting_position: str, checkpoint: dict[str, dict]) -> None:
        self.stream = stream
        self.starting_position = starting_position
        self.cursors: dict[str, ShardCursor] = {}
        for shard_id, saved in checkpoint.items():
            self.cursors[shard_id] = ShardCursor(
                shard_id,
                position=saved.get("sequenceNumber"),
                finished=bool(saved.get("finished")),
                drained=bool(saved.get("finished")),
            )
        self._listed_at = 0.0
        self._listed: set[str] = set()

    def refresh(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._listed_at < SHARD_LIST_SECONDS:
            return
        self._listed_at = now
        shards = self.stream.list_shards()
        self._listed = {shard.shard_id for shard in shards}
        for shard in shards:
            cursor = self.cursors.get(shard.shard_id)
            if cursor is None:
                cursor = self.cursors[shard.shard_id] = ShardCursor(shard.shard_id)
            cursor.parents = shard.parents
            cursor.closed = shard.closed

    def readable(self) -> list[ShardCursor]:
        """Shards to read now: listed, not finished, and every parent finished (or expired from the stream)."""

        def parent_done(parent: str) -> bool:
            cursor = self.cursors.get(parent)
            return parent not in self._listed or (cursor is not None and cursor.finished)

        return [
            cursor
            for shard_id, cursor in sorted(self.cursors.items())
            if shard_id in self._listed and not cursor.finished and all(parent_done(p) for p in cursor.parents)
        ]

    def starting_position_for(self, cursor: ShardCursor) -> str:
        # A child shard starts at its beginning: its parent's records were all read.
        if cursor.parents and any(parent in self.cursors for parent in cursor.parents):
            return "TRIM_HORIZON"
        return self.starting_position

    def read(self, cursor: ShardCursor, limit: int) -> list[dict]:
        """Up to ``limit`` new records of the shard (advances the in-memory position)."""
        if cursor.drained:
            return []
        for attempt in range(2):
            if cursor.iterator is None:
                cursor.iterator = self.stream.iterator(
                    cursor.shard_id, cursor.position, self.starting_position_for(cursor)
                )
            try:
                records, next_iterator, behind = self.stream.get_records(cursor.iterator, limit)
                break
            except ClientError as error:
                if error.response["Error"]["Code"] != "ExpiredIteratorException" or attempt:
                    raise
                cursor.iterator = None
        cursor.iterator = next_iterator
        if records:
            cursor.position = self.stream.sequence(records[-1])
        if next_iterator is None or (not records and cursor.closed and not behind):
            cursor.drained = True
            # Its children (resharding) take its records from here on: list them on the next pass, not
            # up to SHARD_LIST_SECONDS later (every record put since the reshard would wait that long).
            self._listed_at = float("-inf")
        return records

    def checkpoint_state(self, processed: dict[str, str]) -> dict[str, dict]:
        """The checkpoint to save: per shard the last processed sequence number (``processed``) and ``finished``."""
        return {
            shard_id: {"sequenceNumber": processed.get(shard_id), "finished": cursor.finished}
            for shard_id, cursor in self.cursors.items()
        }
