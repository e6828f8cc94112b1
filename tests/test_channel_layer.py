"""The site's channel layer (production settings): channels_redis's pub/sub layer, one PUBLISH per
group_send, and an idle subscriber outlives the socket read timeout (regression: redis-py 8's 5 s)."""

import asyncio
import importlib

import pytest
import redis
from django.conf import settings as django_settings

from alleycat_site.channel_layer import GroupsOnlyPubSubChannelLayer


def _production_layer_config(monkeypatch, redis_url):
    import alleycat_site.settings as production_settings

    monkeypatch.setenv("REDIS_URL", redis_url)
    try:
        return importlib.reload(production_settings).CHANNEL_LAYERS["default"]
    finally:
        monkeypatch.delenv("REDIS_URL")
        importlib.reload(production_settings)


@pytest.mark.asyncio
async def test_idle_subscriber_outlives_the_socket_timeout(redis_url, monkeypatch):
    config = _production_layer_config(monkeypatch, redis_url)
    assert config["BACKEND"] == "alleycat_site.channel_layer.GroupsOnlyPubSubChannelLayer"
    assert django_settings.CHANNEL_LAYERS  # the running test settings are untouched
    layer = GroupsOnlyPubSubChannelLayer(**config["CONFIG"])
    channel = await layer.new_channel()
    await layer.group_add("race.7", channel)
    (host,) = config["CONFIG"]["hosts"]
    await asyncio.sleep(host["socket_timeout"] + 1)  # nothing arrives for longer than a read may take
    await layer.group_send("race.7", {"type": "standings.update", "version": 2})
    assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "standings.update", "version": 2}
    # Consumers' own channels are not subscribed in Redis (groups are): connects cost Redis nothing.
    client = redis.Redis.from_url(redis_url)
    assert [name.decode() for name in client.pubsub_channels()] == ["asgi__group__race.7"]
    await layer.flush()


@pytest.mark.asyncio
async def test_a_group_message_is_decoded_once_for_all_its_consumers(redis_url, monkeypatch):
    config = _production_layer_config(monkeypatch, redis_url)
    layer = GroupsOnlyPubSubChannelLayer(**config["CONFIG"])
    decoded = []
    original = type(layer._serializer).deserialize

    def counting(serializer, message):
        decoded.append(message)
        return original(serializer, message)

    monkeypatch.setattr(type(layer._serializer), "deserialize", counting)
    channels = [await layer.new_channel() for _ in range(50)]
    for channel in channels:
        await layer.group_add("race.9", channel)
    event = {"type": "standings.update", "version": 3, "rows": [{"racer_id": 1, "score": 2.5}]}
    await layer.group_send("race.9", event)
    received = [await asyncio.wait_for(layer.receive(channel), 5) for channel in channels]
    assert received == [event] * 50
    assert len(decoded) == 1  # not once per consumer
    # each consumer has a dict of its own (a consumer adding a key does not change the others')
    received[0]["extra"] = True
    assert "extra" not in received[1]
    await layer.group_send("race.9", event | {"version": 4})
    assert (await asyncio.wait_for(layer.receive(channels[0]), 5))["version"] == 4
    assert len(decoded) == 2
    await layer.flush()
