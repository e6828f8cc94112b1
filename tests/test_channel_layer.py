"""The site's channel layer (production settings): channels_redis's pub/sub layer, one PUBLISH per
group_send, and an idle subscriber outlives the socket read timeout (regression: redis-py 8's 5 s)."""

import asyncio
import importlib

import pytest
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings as django_settings


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
    assert config["BACKEND"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    assert django_settings.CHANNEL_LAYERS  # the running test settings are untouched
    layer = RedisPubSubChannelLayer(**config["CONFIG"])
    channel = await layer.new_channel()
    await layer.group_add("race.7", channel)
    (host,) = config["CONFIG"]["hosts"]
    await asyncio.sleep(host["socket_timeout"] + 1)  # nothing arrives for longer than a read may take
    await layer.group_send("race.7", {"type": "standings.update", "version": 2})
    assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "standings.update", "version": 2}
    await layer.flush()
