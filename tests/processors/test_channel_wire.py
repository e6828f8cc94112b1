"""``processors.channel_wire`` speaks the site's channel layer: a real Channels consumer, on the real
``RedisPubSubChannelLayer`` and a real Redis, receives what the Django-free module publishes."""

from __future__ import annotations

import asyncio

import pytest
import redis
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.testing import WebsocketCommunicator
from channels_redis.pubsub import RedisPubSubLoopLayer
from channels_redis.serializers import registry

from processors import channel_wire


class GroupEcho(AsyncJsonWebsocketConsumer):
    groups = ["race.42"]

    async def standings_update(self, event):
        await self.send_json(event)


@pytest.mark.asyncio
async def test_published_group_message_reaches_a_real_consumer(redis_url: str, settings) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": [redis_url]}}
    }
    communicator = WebsocketCommunicator(GroupEcho.as_asgi(), "/")
    connected, _ = await communicator.connect()
    assert connected
    await asyncio.sleep(0.3)  # the layer's SUBSCRIBE is sent, not confirmed: let Redis register it
    message = {"type": "standings.update", "race_id": 42, "rows": [{"rank": 1, "name": "Ada", "score": 1.5}]}

    receivers = await asyncio.to_thread(channel_wire.group_send, redis.Redis.from_url(redis_url), "race.42", message)

    assert receivers == 1  # one subscribed process, whatever the number of its consumers
    assert await communicator.receive_json_from(timeout=5) == message
    await communicator.disconnect()


def test_wire_names_match_the_layer() -> None:
    layer = RedisPubSubLoopLayer(hosts=["redis://127.0.0.1:1"])
    assert channel_wire.group_channel("class.3") == layer._get_group_channel_name("class.3")
    serializer = registry.get_serializer("msgpack")
    message = {"type": "race.started", "race": {"id": 1, "class_id": 2}}
    assert channel_wire.encode(message) == serializer.serialize(message)
    assert channel_wire.decode(channel_wire.encode(message)) == message
