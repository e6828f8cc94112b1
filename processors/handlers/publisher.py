"""Publisher: the table's DynamoDB stream -> standings pushed to the Channels groups of race and class.

For every live item that changed (NEW_IMAGE differs from OLD_IMAGE), the newest image of each race
in the batch is turned into ``LiveStandings`` by the table module and sent as a ``standings.update``
message (``processors.publishing``) to ``race.<raceId>`` and ``class.<classId>``.

How it reaches Redis: through ``channels_redis.core.RedisChannelLayer``, the layer the Django site
uses (same class, prefix and capacity; see ``CHANNEL_LAYERS`` in ``alleycat_site/settings.py``), so
the wire format (group sorted sets, msgpack, channel lists) is channels_redis's own and cannot drift.
This module imports no Django; ``channels.layers`` (the layer's base class) imports ``django.conf``
transitively without configuring settings. That is unavoidable when using the layer class itself,
and preferable to re-implementing channels_redis's Redis protocol here.

Redis unreachable (or ``REDIS_URL`` unset): logged, counted in ``StandingsNotSent``, and the batch
still succeeds: standings are a live view, the next change of the item carries the full standings
again, and holding up the table's stream would also hold up nothing useful. Each invocation runs its
sends on a fresh event loop with short socket timeouts, so the next invocation reconnects.
"""

from __future__ import annotations

import asyncio
import os
import time
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from redis.exceptions import RedisError

from processors.config import redis_url
from processors.observability import RECORDS_CORRELATION_PATH, count, logger, metrics, tracer
from processors.publishing import DEFAULT_TOP_ROWS, class_group, race_group, standings_message
from processors.table import LiveStandings, is_live_image, live_standings_from_item

# Must match CHANNEL_LAYERS in alleycat_site/settings.py (prefix is channels_redis's default "asgi").
CHANNEL_CAPACITY = 1500
CHANNEL_EXPIRY_SECONDS = 30
SOCKET_TIMEOUT_SECONDS = 2.0
SEND_TIMEOUT_SECONDS = 5.0


@lru_cache(maxsize=1)
def top_rows() -> int:
    return int(os.environ.get("ALLEYCAT_TOP_ROWS") or DEFAULT_TOP_ROWS)


@lru_cache(maxsize=1)
def get_channel_layer() -> Any | None:
    """The Redis channel layer (configuration only; connections are per event loop), None without REDIS_URL."""
    url = redis_url()  # REDIS_URL locally; on AWS the SSM SecureString named by ALLEYCAT_REDIS_URL_PARAMETER
    if not url:
        return None
    from channels_redis.core import RedisChannelLayer  # imports channels.layers, hence django.conf

    host = {"address": url, "socket_connect_timeout": SOCKET_TIMEOUT_SECONDS, "socket_timeout": SOCKET_TIMEOUT_SECONDS}
    return RedisChannelLayer(hosts=[host], capacity=CHANNEL_CAPACITY, expiry=CHANNEL_EXPIRY_SECONDS)


def changed_standings(records: list[dict[str, Any]]) -> list[LiveStandings]:
    """Newest standings per race among the records whose live item changed, ordered by race id."""
    newest: dict[int, LiveStandings] = {}
    for record in records:
        change = record.get("dynamodb", {})
        new_image = change.get("NewImage")
        if record.get("eventName") == "REMOVE" or not is_live_image(new_image):
            continue
        if change.get("OldImage") == new_image:
            continue
        standings = live_standings_from_item(new_image)
        current = newest.get(standings.race_id)
        if current is None or standings.version > current.version:
            newest[standings.race_id] = standings
    return [newest[race_id] for race_id in sorted(newest)]


async def _send_all(layer: Any, messages: list[tuple[str, dict[str, Any]]]) -> int:
    sent = 0
    for group, message in messages:
        await layer.group_send(group, message)
        sent += 1
    return sent


def publish(messages: list[tuple[str, dict[str, Any]]]) -> tuple[int, str | None]:
    """Send (group, message) pairs; returns (sent, error). Never raises for an unreachable Redis."""
    if not messages:
        return 0, None
    layer = get_channel_layer()
    if layer is None:
        return 0, "REDIS_URL is not set"
    loop = asyncio.new_event_loop()
    sent = 0
    try:
        sent = loop.run_until_complete(asyncio.wait_for(_send_all(layer, messages), SEND_TIMEOUT_SECONDS))
        return sent, None
    except (RedisError, OSError, TimeoutError) as exc:
        return sent, f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        try:
            loop.close()  # channels_redis wraps close() to close this loop's connections
        except (RedisError, OSError, RuntimeError) as exc:
            logger.debug("closing Redis connections failed", extra={"error": str(exc)[:200]})


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(correlation_id_path=RECORDS_CORRELATION_PATH, clear_state=True)
@event_source(data_class=DynamoDBStreamEvent)
def lambda_handler(event: DynamoDBStreamEvent, context: LambdaContext) -> dict[str, Any]:
    started = time.perf_counter()
    records = event.get("Records") or []
    standings = changed_standings(records)
    rows = top_rows()
    messages: list[tuple[str, dict[str, Any]]] = []
    for item in standings:
        message = standings_message(item, rows)
        messages.append((race_group(item.race_id), message))
        messages.append((class_group(item.class_id), message))
    sent, error = publish(messages)
    count("RecordsIn", len(records))
    count("StandingsSent", sent)
    summary = {
        "records": len(records),
        "races": [item.race_id for item in standings],
        "sent": sent,
        "notSent": len(messages) - sent,
        "durationMs": round((time.perf_counter() - started) * 1000, 1),
    }
    if error is None:
        logger.info("standings published", extra=summary)
    else:
        count("StandingsNotSent", len(messages) - sent)
        logger.warning("standings not sent: Redis unavailable", extra={**summary, "error": error})
    return {"batchItemFailures": []}
