"""The site's Redis channel layer survives idle consumers (regression: redis-py 8's 5 s read timeout)."""

from channels_redis.core import RedisChannelLayer
from channels_redis.utils import create_pool, decode_hosts
from django.conf import settings as django_settings


def test_socket_read_timeout_outlasts_the_layers_blocking_receive(settings, monkeypatch):
    # The production settings module (test settings swap in the in-memory layer).
    import importlib

    import alleycat_site.settings as production_settings

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6399/0")
    reloaded = importlib.reload(production_settings)
    try:
        config = reloaded.CHANNEL_LAYERS["default"]
        assert config["BACKEND"] == "channels_redis.core.RedisChannelLayer"
        (host,) = decode_hosts(config["CONFIG"]["hosts"])
        pool = create_pool(host)
        # BZPOPMIN blocks for brpop_timeout seconds; a shorter socket read timeout would raise
        # redis.exceptions.TimeoutError inside every consumer that waits that long for a message.
        assert pool.connection_kwargs["socket_timeout"] > RedisChannelLayer.brpop_timeout
        assert pool.connection_kwargs["host"] == "127.0.0.1"
    finally:
        monkeypatch.delenv("REDIS_URL")
        importlib.reload(production_settings)
    assert django_settings.CHANNEL_LAYERS  # the running test settings are untouched
