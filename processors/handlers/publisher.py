"""Publisher: the table's DynamoDB stream -> standings pushed to the Channels groups of race and class.

For every live item that changed (NEW_IMAGE differs from OLD_IMAGE), the newest image of each race
in the batch is turned into ``LiveStandings`` by the table module and sent as one ``standings.update``
message (``processors.publishing``, top rows only) to ``race.<race_id>`` and ``class.<class_id>``.
A race whose board is split in parts (``processors.table.items``) has no image with every racer: for
each such race changed in the batch the standings are read once from the table (summary + one
BatchGetItem of the parts), whichever of its parts changed and however often.

How it reaches Redis: ``processors.channel_wire`` writes channels_redis's pub/sub layer format (the
layer the site uses, ``CHANNEL_LAYERS`` in ``alleycat_site/settings.py``) with plain redis-py, so this
handler needs no Django. Per race and change, one pipelined round trip: ``SET`` of the compact whole
board (only when there are more racers than top rows; consumers read it for a viewer's own row) and
two ``PUBLISH``. The cost is the same whatever the number of browsers watching.

Redis unreachable (or ``REDIS_URL`` unset): logged, counted in ``StandingsNotSent``, and the batch
still succeeds: standings are a live view, the next change of the item carries the full standings
again, and holding up the table's stream would also hold up nothing useful.
"""

from __future__ import annotations

import time
from typing import Any

import redis
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from redis.exceptions import RedisError

from processors import channel_wire
from processors.clients import cached
from processors.config import get_config, redis_url
from processors.observability import RECORDS_CORRELATION_PATH, count, logger, metrics, tracer
from processors.publishing import board, class_group, race_group, standings_message
from processors.table import (
    LiveStandings,
    ResultsTable,
    get_results_table,
    is_live_image,
    is_live_part_image,
    live_header,
    live_standings_from_item,
)

SOCKET_TIMEOUT_SECONDS = 2.0


@cached
def get_redis() -> redis.Redis | None:
    """A redis-py client (connections are made on first use and kept warm across invocations), None without
    REDIS_URL."""
    # REDIS_URL locally; on AWS the SSM SecureString named by ALLEYCAT_REDIS_URL_PARAMETER
    url = redis_url(get_config())
    if not url:
        return None
    return redis.Redis.from_url(
        url, socket_connect_timeout=SOCKET_TIMEOUT_SECONDS, socket_timeout=SOCKET_TIMEOUT_SECONDS
    )


def changed_standings(records: list[dict[str, Any]], table: ResultsTable | None = None) -> list[LiveStandings]:
    """Newest standings per race among the records whose live item changed, ordered by race id.

    A split board's races are read from ``table`` (default: the handlers' table), once per race.
    """
    newest: dict[int, LiveStandings] = {}
    split: set[int] = set()
    for record in records:
        change = record.get("dynamodb", {})
        new_image = change.get("NewImage")
        if record.get("eventName") == "REMOVE" or not is_live_image(new_image):
            continue
        if change.get("OldImage") == new_image:
            continue
        if is_live_part_image(new_image):
            split.add(live_header(new_image)[0])
            continue
        standings = live_standings_from_item(new_image)
        current = newest.get(standings.race_id)
        if current is None or standings.version > current.version:
            newest[standings.race_id] = standings
    if split:
        table = table or get_results_table()
        for race_id in split:
            read = table.live_standings(race_id)
            if read is not None:
                newest[race_id] = read
    return [newest[race_id] for race_id in sorted(newest)]


def publish(client: redis.Redis | None, standings: list[LiveStandings], top: int) -> tuple[int, int, str | None]:
    """Board and group messages of each race, in one pipeline; returns (sent, to send, error). Never raises
    for an unreachable Redis."""
    if not standings:
        return 0, 0, None
    if client is None:
        return 0, 2 * len(standings), "REDIS_URL is not set"
    pipe = client.pipeline(transaction=False)
    for item in standings:
        message = standings_message(item, top)
        if message["total"] > len(message["rows"]):
            # Before the publishes (same connection, in order): a consumer that reads the board on a
            # message always finds it.
            key = channel_wire.board_key(item.race_id, item.version)
            pipe.set(key, channel_wire.encode(board(item)), ex=channel_wire.BOARD_TTL_SECONDS)
        channel_wire.group_send(pipe, race_group(item.race_id), message)
        channel_wire.group_send(pipe, class_group(item.class_id), message)
    try:
        pipe.execute()
    except (RedisError, OSError) as exc:
        return 0, 2 * len(standings), f"{type(exc).__name__}: {str(exc)[:200]}"
    return 2 * len(standings), 2 * len(standings), None


def handle(
    event: DynamoDBStreamEvent, client: redis.Redis | None, *, top_rows: int, table: ResultsTable | None = None
) -> dict[str, Any]:
    """Publish the changed standings of the batch; never fails it (``batchItemFailures`` stays empty)."""
    started = time.perf_counter()
    records = event.get("Records") or []
    standings = changed_standings(records, table)
    sent, total, error = publish(client, standings, top_rows)
    count("RecordsIn", len(records))
    count("StandingsSent", sent)
    summary = {
        "records": len(records),
        "races": [item.race_id for item in standings],
        "sent": sent,
        "notSent": total - sent,
        "durationMs": round((time.perf_counter() - started) * 1000, 1),
    }
    if error is None:
        logger.info("standings published", extra=summary)
    else:
        count("StandingsNotSent", total - sent)
        logger.warning("standings not sent: Redis unavailable", extra={**summary, "error": error})
    return {"batchItemFailures": []}


@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(correlation_id_path=RECORDS_CORRELATION_PATH, clear_state=True)
@event_source(data_class=DynamoDBStreamEvent)
def lambda_handler(event: DynamoDBStreamEvent, context: LambdaContext) -> dict[str, Any]:
    return handle(event, get_redis(), top_rows=get_config().top_rows)
