"""Configuration from environment variables, read once (names: docs/contracts.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

DEFAULT_TABLE = "alleycat"
DEFAULT_DEAD_LETTER_QUEUE_NAME = "alleycat-dead-letter"


@dataclass(frozen=True, slots=True)
class Config:
    table_name: str
    dead_letter_queue_url: str | None
    # Above this many pending (race, racer, second) entries the aggregator writes out early,
    # which keeps the tumbling-window state far below Lambda's 1 MB limit.
    max_pending_seconds: int


@lru_cache(maxsize=1)
def get_config() -> Config:
    return Config(
        table_name=os.environ.get("ALLEYCAT_TABLE") or DEFAULT_TABLE,
        dead_letter_queue_url=os.environ.get("ALLEYCAT_DEAD_LETTER_QUEUE_URL") or None,
        max_pending_seconds=int(os.environ.get("ALLEYCAT_MAX_PENDING_SECONDS") or 20_000),
    )
