"""Configuration from environment variables, read once and validated (names: docs/contracts.md).

The same names locally and on AWS. ``get_config()`` is the only reader of the environment in
``processors/`` (Powertools reads its own ``POWERTOOLS_*`` variables); it is cached with the clients
(``processors.clients.clear()`` forgets it). Django reads the pipeline's names through it too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from processors.clients import cached

DEFAULT_TABLE = "alleycat"
DEFAULT_HISTORY_BUCKET = "alleycat-history"
DEFAULT_DEAD_LETTER_QUEUE_NAME = "alleycat-dead-letter"
DEFAULT_MAX_RACERS_PER_RACE = 1000
DEFAULT_TOP_ROWS = 100
REDIS_URL_PARAMETER_ENV = "ALLEYCAT_REDIS_URL_PARAMETER"
# The URL is read once per cold start and again at most every 5 minutes (a rotated password arrives).
REDIS_URL_PARAMETER_MAX_AGE_SECONDS = 300


class ConfigError(ValueError):
    """An environment variable holds a value the pipeline cannot use."""


@dataclass(frozen=True, slots=True)
class Config:
    table_name: str
    # The class history objects ("All time" ghost): s3://<history_bucket>/class-<id>.json.gz.
    history_bucket: str
    dead_letter_queue_url: str | None
    # Above this many pending (race, racer, second) entries the aggregator writes out early,
    # which keeps the tumbling-window state far below Lambda's 1 MB limit.
    max_pending_seconds: int
    # A race takes at most this many racers (race_full beyond). 1,000 is the largest race the live
    # item's layout is proven to hold at every race length (processors/table/items.py docstring:
    # 1,000 racers with 64-character names and up to ~290 bytes of counted seconds each fit).
    max_racers_per_race: int
    # Parts of a new race's live board (1: one item, up to a few thousand racers; see processors/table/items.py).
    live_board_parts: int
    # A shard whose aggregator has written nothing for this long counts as caught up when deciding
    # whether a race can settle (an idle shard has nothing pending; see docs/contracts.md).
    shard_idle_seconds: int
    # Rows of a standings message: what the publisher sends and what a browser is sent.
    top_rows: int
    # The Channels layer's Redis: REDIS_URL (locally), else the SSM SecureString parameter named here (on
    # AWS: the URL may carry a password, so it never sits in the function's environment).
    redis_url: str | None
    redis_url_parameter: str | None


def _positive_int(name: str, default: int) -> int:
    text = os.environ.get(name) or ""
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r}: expected a whole number") from None
    if value < 1:
        raise ConfigError(f"{name}={value}: expected at least 1")
    return value


@cached
def get_config() -> Config:
    return Config(
        table_name=os.environ.get("ALLEYCAT_TABLE") or DEFAULT_TABLE,
        history_bucket=os.environ.get("ALLEYCAT_HISTORY_BUCKET") or DEFAULT_HISTORY_BUCKET,
        dead_letter_queue_url=os.environ.get("ALLEYCAT_DEAD_LETTER_QUEUE_URL") or None,
        max_pending_seconds=_positive_int("ALLEYCAT_MAX_PENDING_SECONDS", 20_000),
        max_racers_per_race=_positive_int("ALLEYCAT_MAX_RACERS_PER_RACE", DEFAULT_MAX_RACERS_PER_RACE),
        live_board_parts=_positive_int("ALLEYCAT_LIVE_BOARD_PARTS", 1),
        shard_idle_seconds=_positive_int("ALLEYCAT_SHARD_IDLE_SECONDS", 60),
        top_rows=_positive_int("ALLEYCAT_TOP_ROWS", DEFAULT_TOP_ROWS),
        redis_url=os.environ.get("REDIS_URL") or None,
        redis_url_parameter=os.environ.get(REDIS_URL_PARAMETER_ENV) or None,
    )


def redis_url(config: Config) -> str | None:
    """The Redis URL of the Channels layer: ``REDIS_URL``, else the SSM parameter's value, else None (nothing
    to publish to)."""
    if config.redis_url:
        return config.redis_url
    if not config.redis_url_parameter:
        return None
    # Imported here: only the publisher on AWS needs it (Powertools Parameters, cached per max_age).
    from aws_lambda_powertools.utilities.parameters import get_parameter

    return get_parameter(config.redis_url_parameter, decrypt=True, max_age=REDIS_URL_PARAMETER_MAX_AGE_SECONDS) or None
