"""The site's channel layer: channels_redis's pub/sub layer, with groups only.

Channels gives every consumer its own channel, and ``RedisPubSubChannelLayer`` SUBSCRIBEs to each one
in Redis (one command per connect, serialized behind the layer's lock on one connection). Nothing in
Alleycat sends to a single consumer's channel: the publisher and the rotation only ``group_send``.
Measured with bench/bench_viewers.py on a busy 2-core machine, those per-consumer subscriptions
were what held 1,000 connecting viewers back (about 25 a second got through). This layer keeps each
consumer's channel in memory only; a group is still subscribed once per process, and the wire format
of groups (``processors/channel_wire.py``) is unchanged. ``channel_layer.send`` to a specific channel
of another process is therefore not supported.

channels_redis hands the same message bytes to every consumer of a group and each consumer
deserializes them again (msgpack of the top rows: the second largest cost in the web process at
1,000 viewers). This layer decodes a group message once and gives each consumer a shallow copy;
consumers treat the nested rows as read-only.
"""

from __future__ import annotations

import asyncio

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer
from channels_redis.utils import _wrap_close


class GroupsOnlyPubSubLoopLayer(RedisPubSubLoopLayer):
    async def _subscribe_to_channel(self, channel):
        self.channels[channel] = asyncio.Queue()


class GroupsOnlyPubSubChannelLayer(RedisPubSubChannelLayer):
    #: decoded messages by their bytes: the same bytes object reaches every consumer of a group
    DECODED_KEPT = 32

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._decoded: dict[bytes, dict] = {}

    def deserialize(self, message):
        decoded = self._decoded
        found = decoded.get(message)
        if found is None:
            found = super().deserialize(message)
            if len(decoded) >= self.DECODED_KEPT:
                decoded.pop(next(iter(decoded)))
            decoded[message] = found
        return dict(found)

    def _get_layer(self):
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = GroupsOnlyPubSubLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
        return layer
