"""An event source mapping of a stream (Kinesis or a table's stream): what both kinds share.

The kinds differ in their record shape only: :mod:`.kinesis` and :mod:`.dynamodb` say how a
record becomes an event record, what a filter pattern sees and how big it is.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from processors.local import events, filters
from processors.local.checkpoints import CheckpointStore
from processors.local.runner.delivery import DeadLetters
from processors.local.runner.invoke import Invoke
from processors.local.runner.sources.base import checkpoint_name
from processors.local.runner.sources.shards import ShardCursor, StreamAdapter
from processors.local.runner.stats import SourceStats
from processors.local.runner.windows import TumblingWindows, Window
from processors.local.template import EventSourceSettings

logger = logging.getLogger(__name__)


class StreamMappingSource(TumblingWindows):
    """One Kinesis or DynamoDB-stream event source mapping of the template."""

    def __init__(
        self,
        *,
        mapping: EventSourceSettings,
        stream: StreamAdapter,
        invoker: Invoke,
        dead_letters: DeadLetters,
        region: str,
        stop: threading.Event,
    ) -> None:
        super().__init__(f"{mapping.function}<-{mapping.name}", stop)
        self.mapping = mapping
        self.stream = stream
        self.invoke = invoker
        self.dead_letters = dead_letters
        self.region = region
        self.window_seconds = mapping.tumbling_window_seconds
        self.read_limit = mapping.batch_size
        self.starting_position = mapping.starting_position
        self.checkpoints = CheckpointStore(checkpoint_name(mapping.function, mapping.name))
        self.stats = SourceStats(
            name=f"{mapping.function} ← {mapping.source}",
            function=mapping.function,
            kind=mapping.kind,
            source=mapping.source,
        )
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.windows: dict[str, Window] = {}

    # -- what the kinds define

    def event_record(self, cursor: ShardCursor, raw: dict) -> dict:
        """The record as the function's event carries it."""
        raise NotImplementedError

    def filter_view(self, cursor: ShardCursor, raw: dict) -> dict:
        """What a FilterCriteria pattern is matched against."""
        raise NotImplementedError

    # -- a shard's records

    def handle(self, cursor: ShardCursor, records: list[dict]) -> None:
        now = time.time()
        cursor.lag_ms = int((now - self.stream.arrival(records[-1])) * 1000) if records else 0
        self.stats.lag_ms = max((c.lag_ms for c in self.shards.readable()), default=0)
        records = self._drop_expired(cursor, records)
        if self.window_seconds:
            self._handle_windowed(cursor, records)
        elif records:
            self._deliver_filtered(cursor, records)
        if cursor.drained and not self.stop.is_set():
            window = self.windows.pop(cursor.shard_id, None)
            if window is not None:
                self._close_window(cursor, window)
            cursor.finished = True
            self._save()
            logger.info("%s: shard %s read to its end", self.name, cursor.shard_id)

    def _drop_expired(self, cursor: ShardCursor, records: list[dict]) -> list[dict]:
        max_age = self.mapping.maximum_record_age_seconds
        if max_age < 0 or not records:
            return records
        cutoff = time.time() - max_age
        expired = [raw for raw in records if self.stream.arrival(raw) < cutoff]
        if not expired:
            return records
        self._dead_letter(cursor, expired, 0, "RecordAgeExceeded", "")
        if not self.window_seconds:
            self.processed[cursor.shard_id] = self.stream.sequence(expired[-1])
        return [raw for raw in records if self.stream.arrival(raw) >= cutoff]

    def _deliver_filtered(self, cursor: ShardCursor, records: list[dict]) -> None:
        """Lambda's event filtering: only records matching a FilterCriteria pattern are delivered.

        The others count as processed: once the kept records are done (or dead-lettered), the
        checkpoint moves to the end of the batch, also when nothing was kept.
        """
        if not self.mapping.filters:
            self._deliver(cursor, records, None)
            return
        kept = [raw for raw in records if filters.matches(self.mapping.filters, self.filter_view(cursor, raw))]
        self.stats.extra["filteredOut"] = self.stats.extra.get("filteredOut", 0) + len(records) - len(kept)
        if kept and not self._deliver(cursor, kept, None):
            return  # stopped mid-batch: the checkpoint stays where the delivered records left it
        self.processed[cursor.shard_id] = self.stream.sequence(records[-1])
        self._save()

    def _invoke(self, cursor: ShardCursor, batch: list[dict], window: Window | None, *, final: bool) -> Any:
        records = [self.event_record(cursor, raw) for raw in batch]
        if window is not None:
            event = events.tumbling_window_event(
                records,
                window_start=window.start,
                window_end=window.end,
                state=window.state,
                shard_id=cursor.shard_id,
                source_arn=self.stream.arn,
                final=final,
            )
        else:
            event = {"Records": records}
        self.stats.invocations += 1
        response = self.invoke(event)
        if window is not None:
            state = response.get("state") if isinstance(response, dict) else None
            window.state = state if isinstance(state, dict) else {}
        return response
