"""The ride WebSocket: only the logged-in racer, the pipeline's validation, a rate limit, onto Kinesis (moto)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import timedelta

import boto3
import pytest
import redis
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from alleycat_site.asgi import application
from leaderboards import ride
from races.models import Race, RaceClass, Racer

STREAM = "alleycat-bikes-ride-test"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_kinesis_client():
    ride.get_kinesis_client.cache_clear()
    yield
    ride.get_kinesis_client.cache_clear()


@pytest.fixture(autouse=True)
def _rate_limits_in_redis(redis_url, settings):
    """The per-racer buckets live in the test Redis; every test starts with full buckets."""
    settings.REDIS_URL = redis_url
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("alleycat:ride:rate:*"):
        client.delete(key)


@pytest.fixture
def stream(aws, settings):
    """A one-shard Kinesis stream on moto, named in settings as ALLEYCAT_STREAM."""
    settings.ALLEYCAT_STREAM = STREAM
    client = boto3.client("kinesis")
    client.create_stream(StreamName=STREAM, ShardCount=1)
    client.get_waiter("stream_exists").wait(StreamName=STREAM, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    return client


def stream_records(client) -> list[dict]:
    shard = client.list_shards(StreamName=STREAM)["Shards"][0]["ShardId"]
    iterator = client.get_shard_iterator(StreamName=STREAM, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    return client.get_records(ShardIterator=iterator["ShardIterator"])["Records"]


@pytest.fixture
def race_class():
    return RaceClass.objects.create(name="Sprint", display_order=1)


@pytest.fixture
def current_race(race_class):
    starts_at = timezone.now().replace(microsecond=0) - timedelta(seconds=41)
    return Race.objects.create(
        race_class=race_class, starts_at=starts_at, ends_at=starts_at + timedelta(minutes=5), status="active"
    )


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@pytest.fixture
def rider():
    user = get_user_model().objects.create_user("rider", password="pw-for-tests")
    Racer.objects.create(racer_id=1, name="Ada Pedal", user=user)
    Racer.objects.create(racer_id=2, name="Bo Spoke")
    return session_cookie(user)


def communicator(cookie: bytes | None = None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, "/ws/ride/", headers=headers)


def reading(**overrides) -> dict:
    return {"event": "update", "racerId": 1, "classId": 1, "cadence": 90, "resistance": 40, **overrides}


async def test_anonymous_is_closed_with_4401():
    ws = communicator()
    connected, _ = await ws.connect()
    assert connected
    assert await ws.receive_output(timeout=2) == {"type": "websocket.close", "code": ride.CLOSE_NOT_LOGGED_IN}


async def test_user_without_racer_is_closed_with_4403():
    user = await get_user_model().objects.acreate(username="viewer")
    cookie = await _async_cookie(user)
    ws = communicator(cookie)
    await ws.connect()
    assert await ws.receive_output(timeout=2) == {"type": "websocket.close", "code": ride.CLOSE_NO_RACER}


async def _async_cookie(user) -> bytes:
    from asgiref.sync import sync_to_async

    return await sync_to_async(session_cookie)(user)


async def test_valid_reading_lands_on_the_stream_for_the_current_race(rider, current_race, stream):
    ws = communicator(rider)
    assert (await ws.connect())[0]
    await ws.send_to(
        text_data=json.dumps(reading(classId=current_race.race_class_id, deviceTimestamp=1_764_000_000_123))
    )
    ack = json.loads(await ws.receive_from(timeout=5))
    await ws.disconnect()
    assert ack["type"] == "ack"
    assert ack["race_id"] == current_race.pk
    assert 41 <= ack["second"] <= 43  # the race clock, not the browser's
    assert ack["output"] == round((90 + 35) * (40 + 65) / 100, 4)
    records = stream_records(stream)
    assert len(records) == 1
    assert records[0]["PartitionKey"] == f"{current_race.pk}:1"  # race and racer: a race spreads over shards
    message = json.loads(records[0]["Data"])
    assert message == {
        "event": "update",
        "deviceTimestamp": 1_764_000_000_123,
        "racerId": 1,
        "classId": current_race.race_class_id,
        "cadence": 90,
        "resistance": 40,
        "name": "Ada Pedal",
        "raceId": current_race.pk,
        "second": ack["second"],
    }


async def test_other_racers_id_is_rejected(rider, current_race, stream):
    ws = communicator(rider)
    await ws.connect()
    await ws.send_to(text_data=json.dumps(reading(racerId=2, classId=current_race.race_class_id)))
    error = json.loads(await ws.receive_from(timeout=5))
    await ws.disconnect()
    assert error["type"] == "error" and error["code"] == "wrong_racer"
    assert stream_records(stream) == []


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"cadence": 300}, "out_of_range"),
        ({"resistance": "high"}, "wrong_type"),
        ({"event": "sprint"}, "unknown_event"),
        ({"classId": "1"}, "wrong_type"),
        ({"racerId": None}, "wrong_type"),
    ],
)
async def test_invalid_reading_is_an_error_frame(rider, current_race, stream, overrides, reason):
    ws = communicator(rider)
    await ws.connect()
    await ws.send_to(text_data=json.dumps({**reading(classId=current_race.race_class_id), **overrides}))
    error = json.loads(await ws.receive_from(timeout=5))
    assert error["type"] == "error" and error["code"] == "invalid" and error["reason"] == reason
    # the connection stays open for the next, valid reading
    await ws.send_to(text_data=json.dumps(reading(classId=current_race.race_class_id)))
    assert json.loads(await ws.receive_from(timeout=5))["type"] == "ack"
    await ws.disconnect()
    assert len(stream_records(stream)) == 1


async def test_missing_racer_id_is_invalid(rider, current_race, stream):
    ws = communicator(rider)
    await ws.connect()
    message = reading(classId=current_race.race_class_id)
    del message["racerId"]
    await ws.send_to(text_data=json.dumps(message))
    error = json.loads(await ws.receive_from(timeout=5))
    await ws.disconnect()
    assert error["code"] == "invalid" and error["reason"] == "missing_field" and "racerId" in error["detail"]


async def test_not_json_is_an_error_frame(rider, current_race):
    ws = communicator(rider)
    await ws.connect()
    await ws.send_to(text_data="{cadence: 90")
    assert json.loads(await ws.receive_from(timeout=5))["code"] == "not_json"
    await ws.send_to(text_data="[1, 2]")
    assert json.loads(await ws.receive_from(timeout=5))["code"] == "not_json"
    await ws.disconnect()


async def test_class_without_current_race(rider, race_class, stream):
    ws = communicator(rider)
    await ws.connect()
    await ws.send_to(text_data=json.dumps(reading(classId=race_class.pk)))
    error = json.loads(await ws.receive_from(timeout=5))
    await ws.disconnect()
    assert error["code"] == "no_current_race"
    assert stream_records(stream) == []


async def test_flood_is_rate_limited(rider, current_race, stream):
    ws = communicator(rider)
    await ws.connect()
    for _ in range(6):
        await ws.send_to(text_data=json.dumps(reading(classId=current_race.race_class_id)))
    replies = [json.loads(await ws.receive_from(timeout=5)) for _ in range(6)]
    codes = [reply.get("code", reply["type"]) for reply in replies]
    assert codes[: ride.BURST] == ["ack"] * ride.BURST
    assert codes[ride.BURST :] == ["rate_limited"] * (6 - ride.BURST)
    assert len(stream_records(stream)) == ride.BURST
    # one a second is always allowed again
    await asyncio.sleep(1 / ride.RATE_PER_SECOND + 0.05)
    await ws.send_to(text_data=json.dumps(reading(classId=current_race.race_class_id)))
    assert json.loads(await ws.receive_from(timeout=5))["type"] == "ack"
    await ws.disconnect()


async def test_missing_stream_is_an_error_frame_not_a_crash(rider, current_race, aws, settings):
    settings.ALLEYCAT_STREAM = "no-such-stream"
    ws = communicator(rider)
    await ws.connect()
    await ws.send_to(text_data=json.dumps(reading(classId=current_race.race_class_id)))
    error = json.loads(await ws.receive_from(timeout=10))
    assert error["code"] == "stream_unavailable"
    await ws.disconnect()


class TestTokenBucket:
    def test_sustains_the_rate_after_the_burst(self):
        now = [0.0]
        bucket = ride.TokenBucket(rate=1.0, burst=2, clock=lambda: now[0])
        assert [bucket.take() for _ in range(3)] == [True, True, False]
        now[0] += 0.5
        assert bucket.take() is False
        now[0] += 0.5
        assert bucket.take() is True
        now[0] += 100
        assert [bucket.take() for _ in range(3)] == [True, True, False]


async def test_a_reading_of_a_race_that_has_ended_is_refused_not_put_in_the_next_race(rider, current_race, stream):
    # GIVEN a rider whose race has just been replaced by the next one
    ws = communicator(rider)
    assert (await ws.connect())[0]
    ended_race_id = current_race.pk + 1000
    # WHEN the browser's late "final" still names the race it rode in
    await ws.send_to(
        text_data=json.dumps(reading(classId=current_race.race_class_id, event="final", raceId=ended_race_id))
    )
    error = json.loads(await ws.receive_from(timeout=5))
    # THEN it is refused and nothing reaches the stream; naming the current race is accepted
    assert error["type"] == "error" and error["code"] == "race_over" and error["race_id"] == ended_race_id
    assert stream_records(stream) == []
    await ws.send_to(text_data=json.dumps(reading(classId=current_race.race_class_id, raceId=current_race.pk)))
    ack = json.loads(await ws.receive_from(timeout=5))
    await ws.disconnect()
    assert ack["type"] == "ack" and ack["race_id"] == current_race.pk
    assert len(stream_records(stream)) == 1


@pytest.fixture
def second_rider(rider):
    user = get_user_model().objects.create_user("rider-two", password="pw-for-tests")
    Racer.objects.filter(racer_id=2).update(user=user)
    return session_cookie(user)


async def test_rate_limit_holds_per_racer_across_sockets(rider, current_race, stream):
    # GIVEN one racer with three sockets open
    sockets = [communicator(rider) for _ in range(3)]
    for ws in sockets:
        assert (await ws.connect())[0]
    # WHEN each socket sends two readings at once (six in all)
    for ws in sockets:
        for _ in range(2):
            await ws.send_to(text_data=json.dumps(reading(classId=current_race.race_class_id)))
    replies = [json.loads(await ws.receive_from(timeout=5)) for ws in sockets for _ in range(2)]
    for ws in sockets:
        await ws.disconnect()
    # THEN only the racer's burst is accepted, not a burst per socket
    assert sum(reply["type"] == "ack" for reply in replies) == ride.BURST
    assert sum(reply.get("code") == "rate_limited" for reply in replies) == 6 - ride.BURST
    assert len(stream_records(stream)) == ride.BURST


async def test_a_blocked_put_delays_neither_another_rider_nor_a_viewers_connect(
    rider, second_rider, current_race, stream, table, monkeypatch
):
    # GIVEN a stream whose put hangs for racer 1's readings (and only theirs)
    release = threading.Event()
    real_put = ride.put_records

    def put_records(records):
        if any(record["PartitionKey"].endswith(":1") for record in records):
            release.wait(20)
        return real_put(records)

    monkeypatch.setattr(ride, "put_records", put_records)
    first, second = communicator(rider), communicator(second_rider)
    assert (await first.connect())[0] and (await second.connect())[0]
    try:
        await first.send_to(text_data=json.dumps(reading(classId=current_race.race_class_id)))
        await asyncio.sleep(0.3)  # racer 1's batch is on its way and stuck

        # WHEN another racer rides and a viewer connects
        started = time.monotonic()
        await second.send_to(text_data=json.dumps(reading(racerId=2, classId=current_race.race_class_id)))
        ack = json.loads(await second.receive_from(timeout=5))
        acked_after = time.monotonic() - started
        headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
        viewer = WebsocketCommunicator(application, f"/ws/races/{current_race.pk}/", headers=headers)
        started = time.monotonic()
        assert (await viewer.connect(timeout=5))[0]
        assert json.loads(await viewer.receive_from(timeout=5))["type"] == "snapshot"
        viewer_after = time.monotonic() - started

        # THEN both are served at once, while racer 1 still waits
        assert ack["type"] == "ack" and acked_after < 1.0
        assert viewer_after < 1.0
        assert await first.receive_nothing(timeout=0.2)
        await viewer.disconnect()
    finally:
        release.set()
    assert json.loads(await first.receive_from(timeout=10))["type"] == "ack"
    await first.disconnect()
    await second.disconnect()


async def test_a_failed_put_is_reported_to_its_rider_only(rider, second_rider, current_race, stream, monkeypatch):
    # GIVEN Kinesis refusing racer 1's record in a batch shared with racer 2
    real_put = ride.put_records
    batches = []

    def put_records(records):
        batches.append([record["PartitionKey"] for record in records])
        refused = {
            i: "ProvisionedThroughputExceededException: slow down"
            for i, record in enumerate(records)
            if record["PartitionKey"].endswith(":1")
        }
        put = real_put([r for i, r in enumerate(records) if i not in refused])
        assert put == {}
        return refused

    monkeypatch.setattr(ride, "put_records", put_records)
    first, second = communicator(rider), communicator(second_rider)
    assert (await first.connect())[0] and (await second.connect())[0]
    await first.send_to(text_data=json.dumps(reading(classId=current_race.race_class_id)))
    await second.send_to(text_data=json.dumps(reading(racerId=2, classId=current_race.race_class_id)))
    replies = [json.loads(await first.receive_from(timeout=10)), json.loads(await second.receive_from(timeout=10))]
    await first.disconnect()
    await second.disconnect()
    assert replies[0]["code"] == "stream_unavailable"
    assert replies[1]["type"] == "ack"
    assert len(batches) == 1 and sorted(batches[0]) == sorted([f"{current_race.pk}:1", f"{current_race.pk}:2"])
    assert [record["PartitionKey"] for record in stream_records(stream)] == [f"{current_race.pk}:2"]
