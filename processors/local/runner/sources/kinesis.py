"""Kinesis data streams: the stream's shards, and an event source mapping reading them."""

from __future__ import annotations

from typing import Any

from processors.local import events, filters
from processors.local.events import epoch_seconds
from processors.local.runner.sources.mapping import StreamMappingSource
from processors.local.runner.sources.shards import ShardCursor, ShardInfo


class KinesisStream:
    kind = "kinesis"

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name
        summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        self.arn = summary["StreamARN"]
        self.identity = f"{self.arn}@{epoch_seconds(summary['StreamCreationTimestamp']):.3f}"

    def list_shards(self) -> list[ShardInfo]:
        shards: list[ShardInfo] = []
        kwargs: dict[str, Any] = {"StreamName": self.name}
        while True:
            response = self.client.list_shards(**kwargs)
            for shard in response["Shards"]:
                parents = tuple(p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p)
                closed = "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})
                shards.append(ShardInfo(shard["ShardId"], parents, closed))
            token = response.get("NextToken")
            if not token:
                return shards
            kwargs = {"NextToken": token}

    def iterator(self, shard_id: str, after: str | None, starting_position: str) -> str:
        if after is not None:
            kwargs = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after}
        else:
            kwargs = {"ShardIteratorType": starting_position}
        return self.client.get_shard_iterator(StreamName=self.name, ShardId=shard_id, **kwargs)["ShardIterator"]

    def get_records(self, iterator: str, limit: int) -> tuple[list[dict], str | None, int | None]:
        response = self.client.get_records(ShardIterator=iterator, Limit=min(limit, 10_000))
        return response["Records"], response.get("NextShardIterator"), response.get("MillisBehindLatest")

    @staticmethod
    def sequence(raw: dict) -> str:
        return raw["SequenceNumber"]

    @staticmethod
    def arrival(raw: dict) -> float:
        return epoch_seconds(raw["ApproximateArrivalTimestamp"])


class KinesisMappingSource(StreamMappingSource):
    """A Kinesis event source mapping (the aggregator ← the bike stream)."""

    def event_record(self, cursor: ShardCursor, raw: dict) -> dict:
        return events.kinesis_record(
            raw,
            shard_id=cursor.shard_id,
            stream_arn=self.stream.arn,
            region=self.region,
            function=self.mapping.function,
        )

    def filter_view(self, cursor: ShardCursor, raw: dict) -> dict:
        return filters.kinesis_filter_view(self.event_record(cursor, raw))

    def record_size(self, raw: dict) -> int:
        return events.base64_size(raw["Data"]) + 400  # base64 in the payload, plus the record's fields
