"""DynamoDB streams: a table stream's shards, and an event source mapping reading them."""

from __future__ import annotations

from typing import Any

from processors.local import events
from processors.local.events import epoch_seconds
from processors.local.runner.sources.mapping import StreamMappingSource
from processors.local.runner.sources.shards import ShardCursor, ShardInfo


class DynamoDBStream:
    kind = "dynamodb"

    def __init__(self, client: Any, arn: str) -> None:
        self.client = client
        self.arn = arn
        self.identity = arn  # the ARN ends in the stream label (a timestamp): new stream, new ARN

    def list_shards(self) -> list[ShardInfo]:
        shards: list[ShardInfo] = []
        kwargs: dict[str, Any] = {"StreamArn": self.arn}
        while True:
            description = self.client.describe_stream(**kwargs)["StreamDescription"]
            for shard in description.get("Shards", []):
                parents = (shard["ParentShardId"],) if shard.get("ParentShardId") else ()
                closed = "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})
                shards.append(ShardInfo(shard["ShardId"], parents, closed))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            kwargs = {"StreamArn": self.arn, "ExclusiveStartShardId": last}

    def iterator(self, shard_id: str, after: str | None, starting_position: str) -> str:
        if after is not None:
            kwargs = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
        else:
            kwargs = {"ShardIteratorType": starting_position}
        return self.client.get_shard_iterator(StreamArn=self.arn, ShardId=shard_id, **kwargs)["ShardIterator"]

    def get_records(self, iterator: str, limit: int) -> tuple[list[dict], str | None, int | None]:
        response = self.client.get_records(ShardIterator=iterator, Limit=min(limit, 1000))
        return response["Records"], response.get("NextShardIterator"), None

    @staticmethod
    def sequence(raw: dict) -> str:
        return raw["dynamodb"]["SequenceNumber"]

    @staticmethod
    def arrival(raw: dict) -> float:
        return epoch_seconds(raw["dynamodb"]["ApproximateCreationDateTime"])


class DynamoDBMappingSource(StreamMappingSource):
    """A table-stream event source mapping (finals and publisher ← the table's stream)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Lambda polls a DynamoDB stream's shards four times a second (a Kinesis shard once a second).
        self.poll_seconds = min(self.poll_seconds, 0.25)

    def event_record(self, cursor: ShardCursor, raw: dict) -> dict:
        return events.dynamodb_record(raw, stream_arn=self.stream.arn, region=self.region)

    def filter_view(self, cursor: ShardCursor, raw: dict) -> dict:
        if not self._filters_read_images:
            # Keys only: converting both images of a big item for a pattern on its key is wasted work.
            return {
                "eventName": raw["eventName"],
                "eventSource": "aws:dynamodb",
                "dynamodb": {"Keys": events.lambda_image(raw["dynamodb"]["Keys"])},
            }
        return self.event_record(cursor, raw)

    @property
    def _filters_read_images(self) -> bool:
        return any(set(pattern.get("dynamodb", {})) - {"Keys"} for pattern in self.mapping.filters) or any(
            set(pattern) - {"dynamodb", "eventName", "eventSource"} for pattern in self.mapping.filters
        )

    def record_size(self, raw: dict) -> int:
        return int(raw["dynamodb"].get("SizeBytes", 0)) + 400
