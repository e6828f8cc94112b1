"""End to end through the browser's door: simulator → pipeline → publisher → Redis → WebSocket consumer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import boto3
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from alleycat_site.asgi import application
from processors import clients
from processors.local.bootstrap import bootstrap
from processors.local.simulator import RaceSpec, Simulator, profiles
from processors.local.template import load_local_settings
from tests.factories import RaceFactory
from tests.pipeline.test_pipeline import expected_figures, publish

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def site_on_the_pipeline(pipeline_env, redis_url, settings) -> Iterator[None]:
    """The Django site reading this test's endpoint and Redis (clients are cached per process)."""
    host = {"address": redis_url, "socket_timeout": 5}
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "alleycat_site.channel_layer.GroupsOnlyPubSubChannelLayer", "CONFIG": {"hosts": [host]}}
    }
    settings.REDIS_URL = redis_url
    clients.clear()
    yield
    clients.clear()


async def test_a_websocket_subscriber_sees_the_race_standings_up_to_the_last_second(
    site_on_the_pipeline, runner_process
):
    resources = await sync_to_async(bootstrap)(None, load_local_settings())
    now = timezone.now()
    race = await sync_to_async(RaceFactory)(starts_at=now - timedelta(seconds=5), ends_at=now + timedelta(minutes=5))
    runner = await sync_to_async(runner_process)()
    ws = WebsocketCommunicator(
        application, f"/ws/races/{race.pk}/", headers=[(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    )
    connected, _ = await ws.connect()
    assert connected
    first = await ws.receive_json_from(timeout=10)
    assert first["type"] in ("snapshot", "error")  # no live item yet: an empty snapshot

    spec = RaceSpec(race_id=race.pk, class_id=race.race_class_id, first_second=1, last_second=20)
    await sync_to_async(publish)(resources, spec)
    simulator = Simulator(boto3.client("kinesis"), resources.stream_name)
    result = await asyncio.to_thread(
        simulator.play, spec, profiles((racer_id, None) for racer_id in range(301, 326)), speed=10, collect=True
    )
    scores, _ = expected_figures(result.messages)

    deadline = asyncio.get_running_loop().time() + 45
    last = None
    while asyncio.get_running_loop().time() < deadline:
        message = await ws.receive_json_from(timeout=45)
        if message["type"] != "standings":
            continue
        last = message
        if message["total"] == 25 and all(row["second"] == 20 for row in message["rows"]):
            break
    else:
        pytest.fail(f"no complete standings over the WebSocket; last: {last}\n{runner.output()[-4000:]}")
    await ws.disconnect()
    assert last["race_id"] == race.pk
    assert {row["racer_id"]: row["score"] for row in last["rows"]} == pytest.approx(scores, abs=1e-6)
    assert await sync_to_async(runner.stop)() == 0
