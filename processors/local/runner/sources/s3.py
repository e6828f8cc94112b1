"""S3 notifications: new objects of a bucket (prefix/suffix filter) → an asynchronous invoke per object."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from processors.local import events
from processors.local.checkpoints import CheckpointStore
from processors.local.runner.delivery import DeadLetters, Stopped, retrying
from processors.local.runner.invoke import Invoke
from processors.local.runner.sources.base import SourceThread, checkpoint_name
from processors.local.runner.stats import SourceStats
from processors.local.template import EventSourceSettings

logger = logging.getLogger(__name__)

S3_LOOKBACK_SECONDS = 3 * 3600


class S3NotificationSource(SourceThread):
    """Object-created notifications of a bucket (prefix/suffix filter) → an asynchronous invoke per object."""

    def __init__(
        self,
        *,
        mapping: EventSourceSettings,
        s3: Any,
        invoker: Invoke,
        dead_letters: DeadLetters,
        region: str,
        stop: threading.Event,
    ) -> None:
        super().__init__(f"{mapping.function}<-s3:{mapping.source}", stop)
        self.mapping = mapping
        self.s3 = s3
        self.invoke = invoker
        self.dead_letters = dead_letters
        self.region = region
        self.checkpoints = CheckpointStore(checkpoint_name(mapping.function, mapping.name))
        self.stats = SourceStats(
            name=f"{mapping.function} ← s3://{mapping.source}/{mapping.s3_prefix}",
            function=mapping.function,
            kind="s3",
            source=mapping.source,
            extra={"objects": 0},
        )
        self.identity = ""
        self.seen: dict[str, float] = {}

    def reset(self) -> None:
        self.identity = ""

    def _identity(self) -> str:
        for bucket in self.s3.list_buckets().get("Buckets", []):
            if bucket["Name"] == self.mapping.source:
                return f"{bucket['Name']}@{events.epoch_seconds(bucket['CreationDate']):.3f}"
        raise RuntimeError(f"bucket {self.mapping.source} does not exist")

    def loop(self) -> None:
        while not self.stop.is_set():
            if not self.identity:
                self.identity = self._identity()
                self.seen = dict(self.checkpoints.load(self.identity).get("seen", {}))
            self.stats.shards = 1
            for obj in self._new_objects():
                if self.stop.is_set():
                    return
                self._notify(obj)
            self.stop.wait(self.poll_seconds)

    def _new_objects(self) -> list[dict]:
        prefix = self.mapping.s3_prefix
        lookback = datetime.fromtimestamp(time.time() - S3_LOOKBACK_SECONDS, UTC)
        kwargs: dict[str, Any] = {"Bucket": self.mapping.source, "Prefix": prefix}
        kwargs["StartAfter"] = f"{prefix}{lookback:%Y/%m/%d/%H}"  # Firehose keys start with the UTC hour
        found: list[dict] = []
        while True:
            response = self.s3.list_objects_v2(**kwargs)
            for obj in response.get("Contents", []):
                key = obj["Key"]
                if key.endswith(self.mapping.s3_suffix) and key not in self.seen:
                    found.append(obj)
            if not response.get("IsTruncated"):
                break
            kwargs["ContinuationToken"] = response["NextContinuationToken"]
        return sorted(found, key=lambda obj: (obj["LastModified"], obj["Key"]))

    def _notify(self, obj: dict) -> None:
        event = events.s3_put_event(
            bucket=self.mapping.source,
            key=obj["Key"],
            size=obj["Size"],
            etag=obj.get("ETag", ""),
            region=self.region,
            configuration_id=self.mapping.name,
        )
        self.stats.lag_ms = int((time.time() - events.epoch_seconds(obj["LastModified"])) * 1000)
        retries = self.mapping.maximum_retry_attempts if self.mapping.maximum_retry_attempts >= 0 else 2
        try:
            for attempt in retrying(retries + 1, self.stop, scale=10):  # asynchronous invokes wait longer
                with attempt:
                    self.stats.invocations += 1
                    try:
                        self.invoke(event)
                    except Exception as exc:
                        self.stats.error(exc)
                        number = attempt.retry_state.attempt_number
                        error = f"{type(exc).__name__}: {exc}"
                        logger.warning("%s: %s failed (attempt %d): %s", self.name, obj["Key"], number, error[:300])
                        raise
            self.stats.records += 1
            self.stats.extra["objects"] += 1
        except Stopped:
            return  # stopping: not marked seen, so it is notified again after a restart
        except Exception as exc:
            body = events.async_failure_record(
                region=self.region,
                function=self.mapping.function,
                event=event,
                invoke_count=retries + 1,
                error=f"{type(exc).__name__}: {exc}",
            )
            self.dead_letters.send(self.mapping.on_failure, body)
            self.stats.dead_letters += 1
        now = time.time()
        self.seen[obj["Key"]] = now
        self.seen = {key: at for key, at in self.seen.items() if at > now - S3_LOOKBACK_SECONDS - 3600}
        self.checkpoints.save(self.identity, {}, seen=self.seen)
