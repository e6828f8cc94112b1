"""The shared cache (Redis): throttle counters and settled results pages, seen by every web process.

Django's built-in ``RedisCache``, except that a Redis outage degrades instead of failing the request:
a read misses, a write is dropped (logged). Throttling fails open for those seconds and a settled page is
read from DynamoDB again; the site keeps answering while Redis restarts.
"""

from __future__ import annotations

import logging
import time
from functools import wraps

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
_LOG_EVERY_SECONDS = 10.0


def _degrade(default):
    def decorate(method):
        @wraps(method)
        def wrapper(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except _REDIS_DOWN as exc:
                now = time.monotonic()
                if now - self._last_warning >= _LOG_EVERY_SECONDS:
                    self._last_warning = now
                    logger.warning("Shared cache unreachable (%s: %s): degrading", method.__name__, exc)
                return default(args, kwargs)

        return wrapper

    return decorate


def _default_arg(args, kwargs):
    # get(key, default=None): the caller's default on a miss
    return kwargs.get("default", args[1] if len(args) > 1 else None)


def _constant(value):
    return lambda args, kwargs: value


def _empty(factory):
    return lambda args, kwargs: factory()


class ResilientRedisCache(RedisCache):
    _last_warning = float("-inf")

    get = _degrade(_default_arg)(RedisCache.get)
    get_many = _degrade(_empty(dict))(RedisCache.get_many)
    has_key = _degrade(_constant(False))(RedisCache.has_key)
    set = _degrade(_constant(None))(RedisCache.set)
    set_many = _degrade(_empty(list))(RedisCache.set_many)
    add = _degrade(_constant(False))(RedisCache.add)
    touch = _degrade(_constant(False))(RedisCache.touch)
    delete = _degrade(_constant(False))(RedisCache.delete)
    delete_many = _degrade(_constant(None))(RedisCache.delete_many)
