"""What every event source shares: a thread that never dies silently, and the one shard-polling loop."""

from __future__ import annotations

import logging
import threading
import traceback

from processors.local.checkpoints import CheckpointStore
from processors.local.runner.config import float_env
from processors.local.runner.sources.shards import ShardCursor, ShardSet, StreamAdapter
from processors.local.runner.stats import SourceStats

logger = logging.getLogger(__name__)


def checkpoint_name(*parts: str) -> str:
    return "-".join(part.replace("/", "_").replace(":", "_") for part in parts)


class SourceThread(threading.Thread):
    stats: SourceStats

    def __init__(self, name: str, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.stop = stop
        self.poll_seconds = float_env("ALLEYCAT_RUNNER_POLL_SECONDS", 1.0)
        self.failed: BaseException | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.loop()
                return
            except Exception as exc:  # a source never dies silently: log, count, wait, resume
                if self.stop.is_set():
                    logger.info("%s: stopped during a call (%s); it resumes from its checkpoint", self.name, exc)
                    return
                self.stats.error(exc)
                logger.error("%s: %s\n%s", self.name, exc, traceback.format_exc(limit=5))
                self.stop.wait(2.0)
                self.reset()

    def loop(self) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Drop in-memory progress after an unexpected error; the next loop resumes from the checkpoint."""


class ShardPollingSource(SourceThread):
    """A source that reads a stream shard by shard (Kinesis and table-stream mappings, Firehose).

    One loop for all: list the shards now and then, read each readable shard (parents before
    children) up to ``read_limit`` records, hand them to :meth:`handle`, and wait :meth:`idle_wait`
    (``poll_seconds``) unless a shard had more to read. :meth:`after_pass` and :meth:`on_stop` are the hooks.
    """

    stream: StreamAdapter
    checkpoints: CheckpointStore
    read_limit: int
    starting_position: str

    def reset(self) -> None:
        saved = self.checkpoints.load(self.stream.identity)["shards"]
        self.shards = ShardSet(self.stream, starting_position=self.starting_position, checkpoint=saved)
        self.processed: dict[str, str] = {sid: s["sequenceNumber"] for sid, s in saved.items() if s["sequenceNumber"]}

    def _save(self) -> None:
        """Persist where every shard has been read up to (after a successful batch)."""
        self.checkpoints.save(self.stream.identity, self.shards.checkpoint_state(self.processed))

    def loop(self) -> None:
        while not self.stop.is_set():
            self.shards.refresh()
            readable = self.shards.readable()
            self.stats.shards = len(readable)
            busy = False
            for cursor in readable:
                if self.stop.is_set():
                    break
                records = self.shards.read(cursor, self.read_limit)
                busy = busy or len(records) >= self.read_limit
                self.handle(cursor, records)
            if self.stop.is_set():
                break
            self.after_pass()
            if not busy:
                self.stop.wait(self.idle_wait())
        self.on_stop()

    def idle_wait(self) -> float:
        """Seconds to wait before the next pass when no shard had more to read."""
        return self.poll_seconds

    def handle(self, cursor: ShardCursor, records: list[dict]) -> None:
        raise NotImplementedError

    def after_pass(self) -> None:
        """After every shard was read once."""

    def on_stop(self) -> None:
        """When the runner stops (not after an error: the checkpoint is where to resume then)."""
