"""Configuration from environment variables, read once (names: docs/contracts.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

DEFAULT_TABLE = "alleycat"
DEFAULT_DEAD_LETTER_QUEUE_NAME = "alleycat-dead-letter"
DEFAULT_MAX_RACERS_PER_RACE = 1000


@dataclass(frozen=True, slots=True)
class Config:
    table_name: str
    dead_letter_queue_url: str | None
    # Above this many pending (race, racer, second) entries the aggregator writes out early,
    # which keeps the tumbling-window state far below Lambda's 1 MB limit.
    max_pending_seconds: int
    # A race takes at most this many racers (race_full beyond). 1,000 is the largest race the live
    # item's layout is proven to hold at every race length (processors/table/items.py docstring:
    # 1,000 racers with 64-character names and up to ~290 bytes of counted seconds each fit).
    max_racers_per_race: int
    # A shard whose aggregator has written nothing for this long counts as caught up when deciding
    # whether a race can settle (an idle shard has nothing pending; see docs/contracts.md).
    shard_idle_seconds: int


@lru_cache(maxsize=1)
def get_config() -> Config:
    return Config(
        table_name=os.environ.get("ALLEYCAT_TABLE") or DEFAULT_TABLE,
        dead_letter_queue_url=os.environ.get("ALLEYCAT_DEAD_LETTER_QUEUE_URL") or None,
        max_pending_seconds=int(os.environ.get("ALLEYCAT_MAX_PENDING_SECONDS") or 20_000),
        max_racers_per_race=int(os.environ.get("ALLEYCAT_MAX_RACERS_PER_RACE") or DEFAULT_MAX_RACERS_PER_RACE),
        shard_idle_seconds=int(os.environ.get("ALLEYCAT_SHARD_IDLE_SECONDS") or 60),
    )


REDIS_URL_PARAMETER_ENV = "ALLEYCAT_REDIS_URL_PARAMETER"
# The URL is read once per cold start and again at most every 5 minutes (a rotated password arrives).
REDIS_URL_PARAMETER_MAX_AGE_SECONDS = 300


def redis_url() -> str | None:
    """The Redis URL of the Channels layer: ``REDIS_URL`` (locally), else the SSM SecureString parameter
    named by ``ALLEYCAT_REDIS_URL_PARAMETER`` (on AWS: the URL may carry a password, so it never sits in
    the function's environment), else None (nothing to publish to)."""
    url = os.environ.get("REDIS_URL")
    if url:
        return url
    name = os.environ.get(REDIS_URL_PARAMETER_ENV)
    if not name:
        return None
    # Imported here: only the publisher on AWS needs it (Powertools Parameters, cached per max_age).
    from aws_lambda_powertools.utilities.parameters import get_parameter

    return get_parameter(name, decrypt=True, max_age=REDIS_URL_PARAMETER_MAX_AGE_SECONDS) or None
