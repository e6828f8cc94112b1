"""Per-process relay of whole race boards, for viewers who follow one racer beyond the top rows.

The group message carries only the top rows (``processors.publishing``); the publisher stores the
compact board of each race version under ``processors.channel_wire.board_key``. When a message
arrives and some consumer in this process needs a row that is not in it, the first one fetches the
board from Redis and every other consumer of this process awaits the same fetch: one GET per race
version per process, however many of its viewers follow a racer. The index (racer id -> row) is
built once per version, so each consumer's lookup is a dict access.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import RedisError

from processors import channel_wire
from processors.publishing import BOARD_FIELDS

from .connections import per_event_loop

logger = logging.getLogger(__name__)

KEEP_VERSIONS = 16  # a few races at a few versions each; older ones are never asked for again
REDIS_TIMEOUT_SECONDS = 2.0
POOL_SIZE = 32  # per process and event loop; more concurrent callers wait for a connection, none fails


@per_event_loop
def get_redis() -> aioredis.Redis:
    """The web process's async Redis client (boards, ride rate limits), one per event loop.

    A blocking pool: a connect storm larger than the pool waits briefly for a connection instead of
    failing with ``MaxConnectionsError``.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.REDIS_URL,
        max_connections=POOL_SIZE,
        timeout=REDIS_TIMEOUT_SECONDS * 5,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
    )
    return aioredis.Redis(connection_pool=pool)


def _index(data: bytes | None) -> dict[int, dict[str, Any]]:
    if not data:
        return {}
    index: dict[int, dict[str, Any]] = {}
    for position, entry in enumerate(channel_wire.decode(data)):
        if len(entry) == len(BOARD_FIELDS):
            index[entry[0]] = {"rank": position + 1, **dict(zip(BOARD_FIELDS, entry, strict=True))}
    return index


class BoardRelay:
    """Boards of recent race versions of this process, fetched once each (single flight)."""

    def __init__(self) -> None:
        self._boards: OrderedDict[tuple[int, int], asyncio.Future] = OrderedDict()
        self.fetches = 0

    async def row(self, race_id: int, version: int, racer_id: int) -> dict[str, Any] | None:
        key = (race_id, version)
        future = self._boards.get(key)
        if future is None:
            future = asyncio.ensure_future(self._fetch(race_id, version))
            self._boards[key] = future
            while len(self._boards) > KEEP_VERSIONS:
                self._boards.popitem(last=False)
        index = await asyncio.shield(future)
        return index.get(racer_id)

    async def _fetch(self, race_id: int, version: int) -> dict[int, dict[str, Any]]:
        self.fetches += 1
        try:
            data = await get_redis().get(channel_wire.board_key(race_id, version))
        except (RedisError, OSError) as exc:
            logger.warning("Board of race %s version %s not read: %s", race_id, version, exc)
            self._boards.pop((race_id, version), None)  # the next message may try again
            return {}
        return _index(data)


# This process's relay, one per event loop: its futures belong to that loop.
get_relay = per_event_loop(BoardRelay)
