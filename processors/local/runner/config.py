"""The runner's settings read from the environment, and the template parameters they override."""

from __future__ import annotations

import os
from collections.abc import Mapping

from botocore.config import Config

# Template parameters that the shared environment variables (docs/contracts.md) override.
PARAMETER_ENV = {
    "StreamName": "ALLEYCAT_STREAM",
    "TableName": "ALLEYCAT_TABLE",
    "DeliveryBucketName": "ALLEYCAT_DELIVERY_BUCKET",
    "HistoryBucketName": "ALLEYCAT_HISTORY_BUCKET",
    "FirehoseName": "ALLEYCAT_FIREHOSE",
    "TopRows": "ALLEYCAT_TOP_ROWS",
    "TumblingWindowInSeconds": "ALLEYCAT_TUMBLING_WINDOW_SECONDS",
    "StreamShardCount": "ALLEYCAT_STREAM_SHARDS",
    "MaxRacersPerRace": "ALLEYCAT_MAX_RACERS_PER_RACE",
    "LiveBoardParts": "ALLEYCAT_LIVE_BOARD_PARTS",
    "AggregatorBatchSize": "ALLEYCAT_AGGREGATOR_BATCH_SIZE",
    "DeliveryBufferMB": "ALLEYCAT_DELIVERY_BUFFER_MB",
}
CLIENT_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60)


def template_parameters_from_env(environ: Mapping[str, str] = os.environ) -> dict:
    """Template parameter overrides taken from the shared environment variables that are set."""
    return {parameter: environ[name] for parameter, name in PARAMETER_ENV.items() if environ.get(name)}


def float_env(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default
