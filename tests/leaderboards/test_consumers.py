"""WebSocket consumers through the real ASGI application (origin validation, auth, routing).

Pushed messages are built by the publisher's own ``processors.publishing.standings_message``.
"""

from __future__ import annotations

import json

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from alleycat_site.asgi import application
from leaderboards import boards
from processors import channel_wire, clients
from processors.publishing import board
from processors.publishing import standings_message as publisher_message
from processors.table import LiveRow, LiveStandings
from races.events import race_event_send, race_payload
from races.models import Race
from tests.leaderboards.conftest import seed_live

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

ORIGIN = (b"origin", b"http://localhost")


def _standings(race: Race, count: int, *, version: int = 5) -> LiveStandings:
    rows = [LiveRow(i, f"Racer {i}", float(10_000 - i), 120, 50.0, False) for i in range(1, count + 1)]
    return LiveStandings(race.pk, race.race_class_id, rows, version, 1_764_172_800_000)


async def _connect(path: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=[ORIGIN, (b"host", b"localhost")])
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def _push(group: str, message: dict) -> None:
    await get_channel_layer().group_send(group, message)


class TestRaceStandingsConsumer:
    async def test_snapshot_on_connect_then_pushed_updates(self, table, running_race):
        await sync_to_async(seed_live)(
            table, running_race, {1: ("Ada", {1: 10.0, 2: 20.0}, None), 2: ("Bo", {1: 50.0}, None)}
        )
        communicator = await _connect(f"/ws/races/{running_race.pk}/?racer=1")
        snapshot = await communicator.receive_json_from()
        assert snapshot["type"] == "snapshot"
        assert snapshot["race"]["id"] == running_race.pk and snapshot["race"]["status"] == "active"
        assert snapshot["total"] == 2 and snapshot["version"] == 1
        assert [(r["rank"], r["racer_id"], r["score"]) for r in snapshot["rows"]] == [(1, 2, 50.0), (2, 1, 30.0)]
        assert snapshot["racer"]["racer_id"] == 1 and snapshot["racer"]["rank"] == 2

        await _push(f"race.{running_race.pk}", publisher_message(_standings(running_race, 3, version=2)))
        update = await communicator.receive_json_from()
        assert update["type"] == "standings" and update["version"] == 2 and update["total"] == 3
        assert [r["racer_id"] for r in update["rows"]] == [1, 2, 3]
        assert update["racer"]["racer_id"] == 1 and "tail" not in update

        # An update older than what the client has is dropped; race events pass through.
        await _push(f"race.{running_race.pk}", publisher_message(_standings(running_race, 3, version=2)))
        await _push(f"race.{running_race.pk}", {"type": "race.finished", "race": race_payload(running_race)})
        finished = await communicator.receive_json_from()
        assert finished == {"type": "race.finished", "race": race_payload(running_race)}
        assert await communicator.receive_nothing()
        await communicator.disconnect()

    async def test_bounded_message_for_1000_racers_with_own_row_beyond_the_top(
        self, table, running_race, redis_url, settings
    ):
        # The publisher's own pipeline writes the board and publishes; the consumer reads the board once.
        settings.REDIS_URL = redis_url
        communicator = await _connect(f"/ws/races/{running_race.pk}/?racer=750")
        await communicator.receive_json_from()  # empty snapshot: no live item yet
        standings = _standings(running_race, 1000)
        message = publisher_message(standings, top_rows=100)
        assert "tail" not in message and len(message["rows"]) == 100
        client = redis.Redis.from_url(redis_url)
        client.set(channel_wire.board_key(running_race.pk, 5), channel_wire.encode(board(standings)), ex=30)
        relay = boards.get_relay()
        fetches = relay.fetches
        await _push(f"race.{running_race.pk}", message)
        raw = await communicator.receive_from()
        update = json.loads(raw)
        assert update["total"] == 1000
        assert len(update["rows"]) == 100 and update["rows"][-1]["rank"] == 100
        assert update["racer"] == {
            "rank": 750,
            "racer_id": 750,
            "name": "Racer 750",
            "score": 9250.0,
            "second": 120,
            "output": 50.0,
            "finished": False,
        }
        assert len(raw) < 15_000  # ~100 rows, not 1,000
        assert relay.fetches == fetches + 1
        await communicator.disconnect()

    async def test_own_row_of_many_viewers_costs_one_board_read_per_version(
        self, table, running_race, redis_url, settings
    ):
        settings.REDIS_URL = redis_url
        viewers = [await _connect(f"/ws/races/{running_race.pk}/?racer={200 + i}") for i in range(20)]
        for viewer in viewers:
            await viewer.receive_json_from()
        standings = _standings(running_race, 300, version=9)
        redis.Redis.from_url(redis_url).set(
            channel_wire.board_key(running_race.pk, 9), channel_wire.encode(board(standings)), ex=30
        )
        relay = boards.get_relay()
        fetches = relay.fetches
        await _push(f"race.{running_race.pk}", publisher_message(standings, top_rows=100))
        for i, viewer in enumerate(viewers):
            update = await viewer.receive_json_from(timeout=5)
            assert update["racer"]["racer_id"] == 200 + i and update["racer"]["rank"] == 200 + i
            await viewer.disconnect()
        assert relay.fetches == fetches + 1

    async def test_anything_a_viewer_sends_is_ignored(self, table, running_race):
        communicator = await _connect(f"/ws/races/{running_race.pk}/")
        await communicator.receive_json_from()
        await communicator.send_to(text_data="not json {")
        await communicator.send_to(bytes_data=b"\x00\xff")
        await communicator.send_to(text_data='{"type": "x"}')
        assert await communicator.receive_nothing()
        await _push(f"race.{running_race.pk}", publisher_message(_standings(running_race, 2, version=7)))
        assert (await communicator.receive_json_from())["version"] == 7  # still connected and served
        await communicator.disconnect()

    async def test_rows_are_capped_even_if_the_publisher_sends_more(self, table, running_race, monkeypatch):
        monkeypatch.setenv("ALLEYCAT_TOP_ROWS", "10")
        clients.clear()  # configuration is read once per process
        communicator = await _connect(f"/ws/races/{running_race.pk}/")
        await communicator.receive_json_from()
        await _push(f"race.{running_race.pk}", publisher_message(_standings(running_race, 50), top_rows=50))
        update = await communicator.receive_json_from()
        assert len(update["rows"]) == 10 and update["racer"] is None and update["total"] == 50
        await communicator.disconnect()

    async def test_foreign_origin_is_rejected(self, running_race):
        communicator = WebsocketCommunicator(
            application, f"/ws/races/{running_race.pk}/", headers=[(b"origin", b"http://evil.example")]
        )
        connected, _ = await communicator.connect()
        assert not connected

    async def test_unknown_race_and_bad_racer_are_closed_with_a_code(self, running_race):
        communicator = await _connect("/ws/races/999999/")
        assert await communicator.receive_output() == {"type": "websocket.close", "code": 4404}
        communicator = await _connect(f"/ws/races/{running_race.pk}/?racer=abc")
        assert await communicator.receive_output() == {"type": "websocket.close", "code": 4400}

    async def test_store_unavailable_sends_an_error_and_keeps_listening(self, unreachable_aws, running_race):
        communicator = await _connect(f"/ws/races/{running_race.pk}/")
        error = await communicator.receive_json_from(timeout=20)
        assert error["type"] == "error" and error["code"] == "service_unavailable"
        await _push(f"race.{running_race.pk}", publisher_message(_standings(running_race, 2, version=1)))
        assert (await communicator.receive_json_from())["type"] == "standings"
        await communicator.disconnect()


class TestClassStandingsConsumer:
    async def test_follows_the_current_race(self, table, running_race, make_race, race_class):
        await sync_to_async(seed_live)(table, running_race, {1: ("Ada", {1: 10.0}, None)})
        communicator = await _connect(f"/ws/classes/{race_class.pk}/?racer=1")
        snapshot = await communicator.receive_json_from()
        assert snapshot["type"] == "snapshot" and snapshot["race_id"] == running_race.pk
        assert snapshot["racer"]["racer_id"] == 1

        await _push(f"class.{race_class.pk}", publisher_message(_standings(running_race, 2, version=2)))
        assert (await communicator.receive_json_from())["race_id"] == running_race.pk

        # Rotation: the old race ends, the next starts; the client gets the event and a new snapshot.
        now = timezone.now()
        await sync_to_async(Race.objects.filter(pk=running_race.pk).update)(ends_at=now, status=Race.Status.FINISHED)
        following = await sync_to_async(make_race)(start_minutes=0, status=Race.Status.ACTIVE)
        await sync_to_async(seed_live)(table, following, {9: ("Kai", {1: 70.0}, None)})
        assert await sync_to_async(race_event_send)(kind="race.started", race=following)  # rotation's own push
        started = await communicator.receive_json_from()
        assert started["type"] == "race.started" and started["race"]["id"] == following.pk
        switched = await communicator.receive_json_from()
        assert switched["type"] == "snapshot" and switched["race_id"] == following.pk
        assert [r["racer_id"] for r in switched["rows"]] == [9] and switched["racer"] is None

        # A late update of the finished race is not shown; the new race's are.
        await _push(f"class.{race_class.pk}", publisher_message(_standings(running_race, 2, version=3)))
        await _push(f"class.{race_class.pk}", publisher_message(_standings(following, 4, version=2)))
        update = await communicator.receive_json_from()
        assert update["race_id"] == following.pk and update["total"] == 4
        assert await communicator.receive_nothing()
        await communicator.disconnect()

    async def test_between_races_then_adopts_a_race_whose_update_comes_first(self, table, make_race, race_class):
        communicator = await _connect(f"/ws/classes/{race_class.pk}/")
        empty = await communicator.receive_json_from()
        assert empty["type"] == "snapshot" and empty["race"] is None and empty["rows"] == []
        race = await sync_to_async(make_race)(start_minutes=-0.1, status=Race.Status.SCHEDULED)
        await sync_to_async(seed_live)(table, race, {3: ("Cleo", {1: 12.0}, None)})
        await _push(f"class.{race_class.pk}", publisher_message(_standings(race, 1, version=1)))
        adopted = await communicator.receive_json_from()
        assert adopted["type"] == "snapshot" and adopted["race_id"] == race.pk
        assert adopted["race"]["status"] == "active"
        # A race of the class that is not running now is ignored.
        later = await sync_to_async(make_race)(start_minutes=60)
        await _push(f"class.{race_class.pk}", publisher_message(_standings(later, 1, version=9)))
        assert await communicator.receive_nothing()
        await communicator.disconnect()

    async def test_unknown_class(self):
        communicator = await _connect("/ws/classes/4242/")
        assert await communicator.receive_output() == {"type": "websocket.close", "code": 4404}


class TestConnectionLimit:
    async def test_sockets_beyond_the_limit_per_address_are_closed_with_4429(self, table, running_race, settings):
        settings.ALLEYCAT_WS_MAX_PER_ADDRESS = 2
        path = f"/ws/races/{running_race.pk}/"
        first, second = await _connect(path), await _connect(path)
        third = await _connect(path)  # accepted, so that the browser sees the code, then closed
        assert await third.receive_output() == {"type": "websocket.close", "code": 4429}
        await first.disconnect()
        fourth = await _connect(path)  # a slot is free again
        assert (await fourth.receive_json_from())["type"] == "snapshot"
        for communicator in (second, fourth):
            await communicator.disconnect()


class TestSharedStandingsText:
    """The standings text is encoded once per version and is exactly the message's JSON."""

    async def test_same_text_as_the_whole_message_encoded_per_consumer(self, monkeypatch):
        from leaderboards import consumers

        standings = LiveStandings(
            4, 2, [LiveRow(i, f"R{i}", float(500 - i), 30, 1.5, i == 3) for i in range(1, 9)], 7, 1
        )
        event = {"type": "standings.update", **publisher_message(standings, top_rows=5)}
        shared = consumers.SharedStandingsText()
        encodes = []
        original = consumers.json.dumps
        monkeypatch.setattr(consumers.json, "dumps", lambda value: encodes.append(value) or original(value))
        for racer_id in (2, 4, None):
            text = await shared.text(event, top=5, racer_id=racer_id)
            expected = await consumers.standings_message(event, top=5, racer_id=racer_id)
            assert json.loads(text) == expected
            assert text == original(expected)
        # one encode of the shared part, then only each consumer's own row
        whole = [value for value in encodes if isinstance(value, dict) and "rows" in value]
        assert len(whole) == 1
        assert len(await shared.text(event | {"version": 8}, top=5, racer_id=2)) > 0
        assert len([value for value in encodes if isinstance(value, dict) and "rows" in value]) == 2

    async def test_keeps_a_bounded_number_of_versions(self):
        from leaderboards import consumers

        shared = consumers.SharedStandingsText(size=4)
        for version in range(1, 20):
            shared.head({"race_id": 1, "version": version, "rows": []}, 100)
        assert len(shared.texts) == 4
