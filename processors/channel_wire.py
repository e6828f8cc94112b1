"""Publish to a Channels group in ``channels_redis.pubsub.RedisPubSubChannelLayer``'s wire format, without Django.

The site's channel layer (``CHANNEL_LAYERS`` in ``alleycat_site/settings.py``) is channels_redis's pub/sub
layer. Its ``group_send(group, message)`` is exactly one Redis command::

    PUBLISH <prefix>__group__<group> msgpack.packb(message)

(``RedisPubSubLoopLayer._get_group_channel_name`` and ``MsgPackSerializer`` in channels_redis 4.3; no
random prefix, no encryption, one shard). Every ASGI process subscribes once per group that any of its
consumers joined and hands the message to its local consumers, so one publish costs Redis the same
whether one browser watches or ten thousand. ``tests/processors/test_channel_wire.py`` proves that a
real Channels consumer on the real layer receives what this module publishes.

Why not the layer class itself: ``channels_redis`` imports ``channels.layers`` and with it Django; the
Lambda publisher must not need Django. Plain redis-py and msgpack are all it takes.

The publisher also keeps the whole ranked board of each race version in Redis (``board_key``), so a
consumer whose viewer follows one racer (``?racer=``) can find that racer's row without the group
message carrying every row: each web process fetches one board per race version, whatever the number
of its viewers (``leaderboards/boards.py``).
"""

from __future__ import annotations

from typing import Any

import msgpack

DEFAULT_PREFIX = "asgi"  # channels_redis's default; CHANNEL_LAYERS sets no other
BOARD_PREFIX = "alleycat:board"
BOARD_TTL_SECONDS = 30  # long enough for every process to fetch it; a race version lives about a second


def group_channel(group: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The Redis pub/sub channel of a Channels group (``RedisPubSubLoopLayer._get_group_channel_name``)."""
    return f"{prefix}__group__{group}"


def encode(message: dict[str, Any] | list[Any]) -> bytes:
    """The layer's message serialization (``channels_redis.serializers.MsgPackSerializer``)."""
    return msgpack.packb(message)


def decode(data: bytes) -> Any:
    return msgpack.unpackb(data)


def board_key(race_id: int, version: int) -> str:
    return f"{BOARD_PREFIX}:{int(race_id)}:{int(version)}"


def group_send(client: Any, group: str, message: dict[str, Any], prefix: str = DEFAULT_PREFIX) -> int:
    """``group_send`` through a redis-py client or pipeline; returns the number of subscribed processes."""
    return client.publish(group_channel(group, prefix), encode(message))
